//! (v3) This account on several clients at once: `/sessions` lists them,
//! `/sessions end ID` ends one, and a room joined or left on another
//! client (`room:joined`, `room:left`) is joined or left here too, with a
//! line saying so. (A DM sent from another client shows as mine in
//! [`super::conversations`]; read markers follow in [`super::markers`].)
//!
//! `/sessions` shows one line per session, oldest first:
//!
//! ```text
//! your sessions (2):
//!   3f9a1c  chat-tui on laptop · 192.0.2.7 · connected 2 hours ago · live (this one)
//!   77b2e0  chat-tui on desk · 198.51.100.4 · connected 3 days ago · away, last active 5 minutes ago
//!   /sessions end ID ends one (the start of its id is enough)
//! ```
//!
//! The short id is the shortest start of the ids, from [`SHORT_ID`]
//! characters on, that tells them apart; `/sessions end` takes any start
//! of an id that names one session only. It asks for the list again first,
//! so an id is matched against the sessions as they are.

use chat_shared::{
    AckError, ClientEvent, ErrorCode, RoomChanged, SessionEndRequest, SessionSummary,
    canonical_room, sanitize_for_display,
};

use super::{ConvId, Effect, Request, State, backlog, markers, refusals, room_events, room_state};
use crate::msg::AckReply;

/// The fewest characters of a session id `/sessions` shows.
pub const SHORT_ID: usize = 6;

/// `/sessions`: asks the server for this account's sessions.
pub(super) fn list(state: &mut State, fx: &mut Vec<Effect>) {
    ask_list(state, None, fx);
}

/// `/sessions end ID`: asks for the list first, to find the session that
/// `start` names.
pub(super) fn end(state: &mut State, start: String, fx: &mut Vec<Effect>) {
    ask_list(state, Some(start), fx);
}

fn ask_list(state: &mut State, end: Option<String>, fx: &mut Vec<Effect>) {
    if !state.session.live {
        state.toast("not connected: /sessions later");
        return;
    }
    fx.push(state.request(Request::Sessions { end }, ClientEvent::SessionList));
}

/// The shortest starts of `ids`, at least [`SHORT_ID`] characters (or the
/// whole id), that tell them apart.
pub fn short_ids(ids: &[&str]) -> Vec<String> {
    let cut = |id: &str, n: usize| id.chars().take(n).collect::<String>();
    let longest = ids.iter().map(|i| i.chars().count()).max().unwrap_or(0);
    let mut n = SHORT_ID;
    while n < longest {
        let mut shown: Vec<String> = ids.iter().map(|i| cut(i, n)).collect();
        shown.sort();
        shown.dedup();
        if shown.len() == ids.len() {
            break;
        }
        n += 1;
    }
    ids.iter().map(|i| cut(i, n)).collect()
}

/// How a session is named in a confirmation: `77b2e0 (chat-tui on desk)`.
fn named(short: &str, s: &SessionSummary) -> String {
    match s.client.as_deref().map(sanitize_for_display) {
        Some(label) if !label.is_empty() => format!("{short} ({label})"),
        _ => short.to_owned(),
    }
}

/// One session as a line of `/sessions`.
fn session_line(state: &State, short: &str, width: usize, s: &SessionSummary) -> String {
    let label = s
        .client
        .as_deref()
        .map(sanitize_for_display)
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "no label".to_owned());
    let address = s
        .address
        .as_deref()
        .map(sanitize_for_display)
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "address unknown".to_owned());
    let since = super::when::ago(state, s.connected_at);
    let how = if s.live {
        "live".to_owned()
    } else {
        format!(
            "away, last active {}",
            super::when::ago(state, s.last_active_at)
        )
    };
    let this = if s.current { " (this one)" } else { "" };
    format!("  {short:<width$}  {label} · {address} · connected {since} · {how}{this}")
}

/// The answer to `session:list`: shown, or the session `/sessions end`
/// named ended.
pub(super) fn listed(
    state: &mut State,
    end: Option<String>,
    result: Result<AckReply, AckError>,
    fx: &mut Vec<Effect>,
) {
    let mut sessions = match result {
        Ok(AckReply::Sessions(list)) => list.sessions,
        Ok(_) => return,
        Err(e) => return refused(state, &ClientEvent::SessionList, e),
    };
    sessions.sort_by_key(|s| s.connected_at);
    let ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
    let shorts = short_ids(&ids);
    match end {
        None => show(state, &sessions, &shorts),
        Some(start) => end_named(state, &sessions, &shorts, &start, fx),
    }
}

fn show(state: &mut State, sessions: &[SessionSummary], shorts: &[String]) {
    let conv = state.active.clone();
    state.system(&conv, format!("your sessions ({}):", sessions.len()));
    let width = shorts.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    for (s, short) in sessions.iter().zip(shorts) {
        let line = session_line(state, short, width, s);
        state.system(&conv, line);
    }
    if sessions.len() > 1 {
        state.system(
            &conv,
            "  /sessions end ID ends one (the start of its id is enough)",
        );
    }
}

fn end_named(
    state: &mut State,
    sessions: &[SessionSummary],
    shorts: &[String],
    start: &str,
    fx: &mut Vec<Effect>,
) {
    let found: Vec<usize> = (0..sessions.len())
        .filter(|&i| sessions[i].id.starts_with(start))
        .collect();
    let shown = sanitize_for_display(start);
    match found.as_slice() {
        [] => state.toast(format!(
            "no session of yours has an id starting with {shown} (/sessions lists them)"
        )),
        [i] if sessions[*i].current => {
            state.toast("that is this client's session: /quit ends it");
        }
        [i] => {
            let s = &sessions[*i];
            let request = Request::SessionEnd {
                shown: named(&shorts[*i], s),
            };
            let event = ClientEvent::SessionEnd(SessionEndRequest { id: s.id.clone() });
            fx.push(state.request(request, event));
        }
        several => {
            let names: Vec<&str> = several.iter().map(|&i| shorts[i].as_str()).collect();
            state.toast(format!(
                "{shown} starts several session ids ({}): type more of one",
                names.join(", ")
            ));
        }
    }
}

/// The answer to `session:end`.
pub(super) fn ended(state: &mut State, shown: String, result: Result<AckReply, AckError>) {
    match result {
        Ok(_) => {
            let conv = state.active.clone();
            state.system(&conv, format!("ended session {shown}"));
        }
        Err(AckError::Refused(e)) if e.code == ErrorCode::NotFound => state.toast(format!(
            "session {shown} is not there any more: it ended already (/sessions lists them)"
        )),
        Err(e) => {
            let asked = ClientEvent::SessionEnd(SessionEndRequest { id: shown });
            refused(state, &asked, e);
        }
    }
}

/// A refused or lost `session:list` or `session:end`, in plain words.
fn refused(state: &mut State, asked: &ClientEvent, e: AckError) {
    let text = match e {
        AckError::Refused(e) => match e.code {
            ErrorCode::AuthRequired => format!(
                "/sessions is for accounts, and {} is a guest name: /register makes it one",
                state.me
            ),
            ErrorCode::UnknownEvent => {
                "this server does not know /sessions (it is older than several clients per account)"
                    .to_owned()
            }
            _ => refusals::explain(state, &e, Some(asked)),
        },
        other => format!("request failed: {other}"),
    };
    state.toast(text);
}

/// `room:joined`: another client of mine joined a room. It is listed here
/// too, with a line saying so, and filled as a join of mine would be: its
/// latest lines (`history`), its settings and roles (`room:info`).
pub(super) fn room_joined(state: &mut State, ev: RoomChanged, fx: &mut Vec<Effect>) {
    let Some(room) = canonical_room(&ev.room) else {
        return;
    };
    let conv = ConvId::Room(room.clone());
    state.known_rooms.insert(room.clone());
    let new = state.conv(&conv).is_none();
    // Listed and in it already (my own join was answered first): nothing
    // to do.
    if !new && state.removed_from(&conv).is_none() {
        return;
    }
    state.ensure_conv(&conv);
    room_events::back_in(state, &conv);
    state.system(&conv, format!("joined {room} on another of your clients"));
    if new {
        backlog::fetch_older_of(state, conv, fx);
    }
    room_state::learn_room(state, &room, fx);
}

/// `room:left`: another client of mine left a room. It goes from the
/// conversations here too, and a line in the open one says so.
pub(super) fn room_left(state: &mut State, ev: RoomChanged, fx: &mut Vec<Effect>) {
    let Some(room) = canonical_room(&ev.room) else {
        return;
    };
    let conv = ConvId::Room(room.clone());
    markers::forget(state, &conv);
    if state.conv(&conv).is_none() {
        return;
    }
    state.close_conv(&conv, fx);
    let here = state.active.clone();
    state.system(&here, format!("left {room} on another of your clients"));
}
