//! The session: the connection as the status bar tells it, what the network
//! task reports (attempts, failures, refusals, acks, server events), the
//! `session` event (recovered or fresh, re-joins after a fresh one), and a
//! taken username that the user replaces without quitting.

use std::collections::HashMap;

use chat_shared::{
    AckError, ChatError, ClientEvent, ConnectRefusal, ErrorCode, RoomRequest, ServerEvent,
    SessionInfo, canonical_room, sanitize_for_display,
};
use tokio::time::Instant;

use super::conversations::{dm_message, feed_message, joined, room_message};
use super::{
    ConvId, Effect, RECOVERED_SHOWN, Removed, Request, State, account, backlog, blocking,
    change_commands, changes, clients, markers, moderation, outbox, presence, refusals,
    room_events, typing,
};
use crate::msg::{AckReply, ConnectFailure, NetEvent, ends_session};

/// The connection as the status bar tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    Connecting {
        attempt: u32,
    },
    Connected,
    Reconnecting {
        attempt: u32,
        last_contact: Option<Instant>,
    },
    Refused {
        reason: String,
        retrying: bool,
    },
    /// (v3) The server ended the session (a kick or a ban from the server,
    /// the session ended from another client): the client waits for
    /// `/reconnect`.
    Ended {
        why: String,
    },
}

/// The session's part of the state.
#[derive(Debug)]
pub struct Session {
    /// True between a `session` event and the next connection loss: requests
    /// go out only then; otherwise own messages wait in the outbox.
    pub live: bool,
    /// Whether a session was ever established (connecting vs reconnecting).
    pub had_session: bool,
    /// The server refused my username as taken (until the next session).
    pub(super) name_taken: bool,
    /// `(missed, truncated, shown until)` after a recovered session.
    pub recovered: Option<(u64, bool, Instant)>,
    /// Bumped by every fresh (not recovered) session after the first: ids
    /// are only comparable within one epoch, since a fresh session may be a
    /// restarted server that numbers messages from the start again.
    pub epoch: u32,
    /// (v3) My server role, as the `session` event says; `None` from a v2
    /// server (which knows no roles, moderation, blocks or renames).
    pub role: Option<chat_shared::Role>,
    /// Requests waiting for their ack, by request id.
    pub(super) requests: HashMap<u64, Request>,
    pub(super) next_req: u64,
}

impl Session {
    pub(super) fn new() -> Session {
        Session {
            live: false,
            had_session: false,
            name_taken: false,
            recovered: None,
            epoch: 0,
            role: None,
            requests: HashMap::new(),
            next_req: 1,
        }
    }
}

impl State {
    /// The status bar's text, as the user reads it.
    pub fn status_text(&self) -> String {
        let why = match &self.last_failure {
            Some(f) if !self.session.live => format!(": {}", f.describe()),
            _ => String::new(),
        };
        match &self.conn {
            Conn::Connecting { attempt } if *attempt <= 1 => {
                format!("connecting to {}…", self.server)
            }
            Conn::Connecting { attempt } => {
                format!("connecting to {} (attempt {attempt}){why}", self.server)
            }
            Conn::Connected => match self.session.recovered {
                Some((missed, truncated, until)) if until > self.now => format!(
                    "connected as {} · recovered ({missed} missed{})",
                    self.me,
                    if truncated { ", some lost" } else { "" }
                ),
                _ => format!("connected as {}", self.me),
            },
            Conn::Reconnecting {
                attempt,
                last_contact,
            } => match last_contact {
                Some(at) => format!(
                    "reconnecting (attempt {attempt}, last contact {} s ago){why}",
                    self.now.saturating_duration_since(*at).as_secs()
                ),
                None => format!("reconnecting (attempt {attempt}){why}"),
            },
            Conn::Refused { reason, retrying } => {
                format!(
                    "refused ({reason}){}",
                    if *retrying { ", retrying" } else { "" }
                )
            }
            Conn::Ended { why } => format!("{why} · /reconnect to try again"),
        }
    }

    /// Whether the server refused my username as taken: the next line typed
    /// is taken as another name to try.
    pub fn name_taken(&self) -> bool {
        !self.session.live && self.session.name_taken
    }
}

pub(super) fn net_event(state: &mut State, ev: NetEvent, fx: &mut Vec<Effect>) {
    match ev {
        NetEvent::Connecting {
            attempt,
            last_contact,
        } => {
            state.session.live = false;
            outbox::mark_queued(state);
            if attempt <= 1 {
                state.last_failure = None;
            }
            state.conn = if state.session.had_session {
                Conn::Reconnecting {
                    attempt,
                    last_contact,
                }
            } else {
                Conn::Connecting { attempt }
            };
        }
        NetEvent::Failed { failure } => {
            state.session.live = false;
            if state.last_failure.as_ref() != Some(&failure) && failure != ConnectFailure::Other {
                state.toast(failure.describe());
            }
            state.last_failure = Some(failure);
        }
        NetEvent::Refused { refusal, retrying } => {
            state.session.live = false;
            refused(state, &refusal, retrying);
        }
        NetEvent::Server(ev) => server_event(state, ev, fx),
        NetEvent::Ack { req, result } => ack(state, req, result, fx),
        NetEvent::Presence(snapshot) => presence::apply_snapshot(state, &snapshot),
    }
}

fn refused(state: &mut State, refusal: &ConnectRefusal, retrying: bool) {
    if matches!(
        refusal.code,
        ErrorCode::Kicked | ErrorCode::Banned | ErrorCode::SessionEnded
    ) {
        // The `chat:error` that ended the session said it already; a ban
        // found at connect time says it here.
        if !matches!(state.conn, Conn::Ended { .. }) {
            let what = match refusal.code {
                ErrorCode::Banned => "banned from the server",
                ErrorCode::Kicked => "kicked from the server",
                _ => "session ended",
            };
            let why = format!("{what}: {}", sanitize_for_display(&refusal.message));
            state.toast(why.clone());
            state.conn = Conn::Ended { why };
        }
        return;
    }
    state.conn = Conn::Refused {
        reason: refusal.to_string(),
        retrying,
    };
    if account::refused(state, refusal) {
        return;
    }
    if refusal.code == ErrorCode::UsernameTaken {
        state.session.name_taken = true;
        state.toast(format!(
            "{} is taken: type another name and press Enter (or wait: it may free up)",
            state.me
        ));
    } else {
        state.toast(format!("connection refused: {refusal}"));
    }
}

fn server_event(state: &mut State, ev: ServerEvent, fx: &mut Vec<Effect>) {
    match ev {
        ServerEvent::Session(s) => session(state, s, fx),
        ServerEvent::RoomMessage(m) => room_message(state, m, fx),
        ServerEvent::DmMessage(m) => dm_message(state, m, false, fx),
        ServerEvent::GlobalMessage(m) => feed_message(state, m, false, fx),
        ServerEvent::BroadcastMessage(m) => feed_message(state, m, true, fx),
        ServerEvent::Typing(t) => typing::typing(state, t),
        ServerEvent::Presence(p) => presence::presence(state, p, fx),
        ServerEvent::Error(e) => chat_error(state, &e),
        // Admin events never come on /chat; nothing to show.
        ServerEvent::AdminSnapshot(_) | ServerEvent::AdminEvent(_) | ServerEvent::AdminStats(_) => {
        }
        ServerEvent::RoomEvent(e) => room_events::room_event(state, e, fx),
        ServerEvent::RoomInvited(i) => room_events::invited(state, i, fx),
        // (v3) Several clients per account.
        ServerEvent::RoomJoined(r) => clients::room_joined(state, r, fx),
        ServerEvent::RoomLeft(r) => clients::room_left(state, r, fx),
        ServerEvent::ReadMarker(m) => markers::moved_elsewhere(state, m),
        // (v3) A message was edited, deleted or reacted to.
        ServerEvent::MessageUpdate(u) => changes::message_update(state, u),
    }
}

fn session(state: &mut State, mut s: SessionInfo, fx: &mut Vec<Effect>) {
    let read_markers = std::mem::take(&mut s.markers);
    state.me = s.username.clone();
    state.session.role = s.role;
    if s.role.is_some() {
        // A v3 server keeps the blocks (a v2 one knows none: those made
        // here stay).
        blocking::set_list(state, s.blocked.clone());
    }
    state.session.live = true;
    state.session.name_taken = false;
    state.last_failure = None;
    state.conn = Conn::Connected;
    let rooms_before = state.rooms();
    if s.recovered {
        state.session.recovered = Some((s.missed, s.truncated, state.now + RECOVERED_SHOWN));
    } else {
        state.session.recovered = None;
    }
    for room in &s.rooms {
        if let Some(room) = canonical_room(room) {
            let conv = ConvId::Room(room.clone());
            let new = state.conv(&conv).is_none();
            state.ensure_conv(&conv);
            room_events::back_in(state, &conv);
            // A fresh session of an account starts in its remembered rooms:
            // show what was said there lately, and who holds which role.
            if new && !s.recovered {
                backlog::fetch_older_of(state, conv, fx);
                super::room_state::learn_room(state, &room, fx);
            }
        }
    }
    if !s.recovered && state.session.had_session {
        state.session.epoch += 1;
        // A fresh session after a loss: a guest's rooms were forgotten;
        // join them again (the history in the acks fills what it can). An
        // account's rooms are the server's to say (v3): one it no longer
        // lists was left or taken away meanwhile, and is not joined again
        // behind the person's back.
        let account = s.role.is_some_and(|r| r != chat_shared::Role::Guest);
        for room in rooms_before {
            // A room I was put out of stays out until I `/join` it.
            let out = state.removed_from(&ConvId::Room(room.clone())).is_some();
            if !s.rooms.contains(&room) && !out && account {
                state.system(
                    &ConvId::Room(room.clone()),
                    format!("you are no longer in {room}: /join {room} to come back"),
                );
            } else if !s.rooms.contains(&room) && !out {
                let ev = ClientEvent::RoomJoin(RoomRequest { room: room.clone() });
                state.outbox.rejoins += 1;
                fx.push(state.request(
                    Request::Join {
                        room,
                        switch: false,
                        rejoin: true,
                    },
                    ev,
                ));
            }
        }
        state.toast("session not recovered: messages sent meanwhile may be missing");
    }
    // (v3) The unread counts and read markers, as the server keeps them.
    markers::from_session(state, read_markers);
    if !state.session.had_session {
        // The rooms of the configuration, joined once per run.
        let auto: Vec<String> = state
            .autojoin
            .drain(..)
            .filter_map(|r| canonical_room(&r))
            .collect();
        let first = auto.first().cloned();
        for room in auto {
            if state.conv(&ConvId::Room(room.clone())).is_some() {
                continue;
            }
            let switch = Some(&room) == first.as_ref();
            let ev = ClientEvent::RoomJoin(RoomRequest { room: room.clone() });
            fx.push(state.request(
                Request::Join {
                    room,
                    switch,
                    rejoin: false,
                },
                ev,
            ));
        }
    }
    state.session.had_session = true;
    // Whatever was on its way went with the old connection; its ack (or
    // timeout) still settles that line. The outbox goes out in order, after
    // any re-joins.
    state.outbox.in_flight = None;
    fx.push(state.request(Request::Refresh, ClientEvent::PresenceGet));
    outbox::pump(state, fx);
}

fn chat_error(state: &mut State, e: &ChatError) {
    // The outbox retries what the rate limit refused: nothing to tell.
    let message_event = matches!(
        e.event(),
        Some("room:message" | "dm:message" | "global:message" | "broadcast:message")
    );
    if message_event && outbox::retry_after(e).is_some() {
        return;
    }
    // The answer to the request says it, knowing what was asked.
    if refusals::worded_by_ack(e) {
        return;
    }
    if ends_session(e) {
        room_events::ended(state, e);
        return;
    }
    let text = refusals::explain(state, e, None);
    state.toast(text);
}

fn ack(state: &mut State, req: u64, result: Result<AckReply, AckError>, fx: &mut Vec<Effect>) {
    let Some(request) = state.session.requests.remove(&req) else {
        return;
    };
    if state.outbox.in_flight == Some(req) {
        state.outbox.in_flight = None;
    }
    if let Request::Join { rejoin: true, .. } = request {
        state.outbox.rejoins = state.outbox.rejoins.saturating_sub(1);
    }
    match request {
        Request::ReadMark { at, id } => markers::acked(state, &at, &id, result),
        request => ack_result(state, request, result, fx),
    }
    outbox::pump(state, fx);
}

fn ack_result(
    state: &mut State,
    request: Request,
    result: Result<AckReply, AckError>,
    fx: &mut Vec<Effect>,
) {
    match (request, result) {
        (Request::Message(out), Ok(AckReply::Sent(sent))) => {
            outbox::message_acked(state, out, Ok(sent))
        }
        (Request::Message(out), Err(e)) => outbox::message_acked(state, out, Err(e)),
        (Request::Message(out), Ok(_)) => outbox::message_acked(
            state,
            out,
            Err(AckError::Malformed("not a message ack".into())),
        ),
        (Request::Join { switch, .. }, Ok(AckReply::Joined(j))) => joined(state, j, switch, fx),
        (Request::Join { room, rejoin, .. }, Err(AckError::Refused(e)))
            if matches!(e.code, ErrorCode::InviteOnly | ErrorCode::Banned) =>
        {
            let asked = ClientEvent::RoomJoin(RoomRequest { room: room.clone() });
            let text = refusals::explain(state, &e, Some(&asked));
            let conv = ConvId::Room(room);
            if rejoin && state.conv(&conv).is_some() {
                // Put out while I was away: the room stays, marked.
                let how = if e.code == ErrorCode::Banned {
                    Removed::Banned
                } else {
                    Removed::NotInvited
                };
                room_events::left_by_force(state, &conv, how);
                if how == Removed::Banned {
                    state.system(&conv, text.clone());
                }
            }
            state.toast(text);
        }
        (Request::Moderation { event, quiet }, result) => {
            moderation::answered(state, event, quiet, result, fx)
        }
        (Request::Leave(room), Ok(_)) => {
            let conv = ConvId::Room(room);
            markers::forget(state, &conv);
            state.close_conv(&conv, fx);
        }
        (Request::Change { conv, event }, result) => {
            change_commands::answered(state, conv, event, result)
        }
        (Request::Sessions { end }, result) => clients::listed(state, end, result, fx),
        (Request::SessionEnd { shown }, result) => clients::ended(state, shown, result),
        (Request::History(conv), result) => backlog::page(state, conv, result),
        (Request::Rooms, Ok(AckReply::Rooms(list))) => {
            let conv = state.active.clone();
            if list.rooms.is_empty() {
                state.system(&conv, "no rooms yet: /join #name makes one");
            } else {
                let names: Vec<String> = list
                    .rooms
                    .iter()
                    .map(|r| {
                        let private = if r.private == Some(true) {
                            ", private"
                        } else {
                            ""
                        };
                        format!("{} ({}{private})", sanitize_for_display(&r.room), r.members)
                    })
                    .collect();
                state.system(&conv, format!("rooms: {}", names.join(", ")));
            }
            for r in &list.rooms {
                if let Some(room) = canonical_room(&r.room) {
                    state.known_rooms.insert(room);
                }
            }
        }
        (Request::Who, Ok(AckReply::Presence(snap))) => {
            presence::apply_snapshot(state, &snap);
            let conv = state.active.clone();
            let names: Vec<String> = state.users.iter().cloned().collect();
            state.system(
                &conv,
                format!("online ({}): {}", snap.online, names.join(", ")),
            );
        }
        (Request::Refresh, Ok(AckReply::Presence(snap))) => presence::apply_snapshot(state, &snap),
        (Request::Passwd(new), Ok(_)) => account::password_changed(state, new, fx),
        // Refusals also arrive as chat:error, which makes the toast.
        (_, Err(AckError::Refused(_))) => {}
        (Request::Refresh, Err(_)) => {}
        (_, Err(e)) => state.toast(format!("request failed: {e}")),
        (_, Ok(_)) => {}
    }
}
