//! (v3) Moderating from the client: the room
//! commands (`/topic`, `/private`, `/invite`, `/kick`, `/ban`, `/mute`,
//! their lifting, `/op`, `/deop`, `/owner`, `/info`) and the server-wide
//! ones (`/serverkick`, `/serverban`, `/servermute`, their lifting,
//! `/bans`) turned into requests, and what their answers show.
//!
//! What it knows of each room's settings and roles is in
//! [`super::room_state`]; room events and removals are told in
//! [`super::room_events`] (their words in [`super::event_lines`]), blocks in
//! [`super::blocking`], renames in [`super::rename`], and every refusal in
//! [`super::refusals`].

use chat_shared::{
    AckError, BanInfo, ClientEvent, ErrorCode, RoomInfoAck, RoomRequest, RoomRole, RoomRoleRequest,
    RoomSanctionRequest, RoomSettingsRequest, RoomUserRequest, UserSanctionRequest, canonical_room,
    is_valid_username, sanitize_for_display,
};

use super::room_state::role_mark;
use super::{ConvId, Conversation, Effect, Request, State, blocking, refusals, rename, when};
use crate::commands::{Command, Sanction};
use crate::msg::AckReply;

impl Conversation {
    /// The room's members online, owners first, then ops, then the
    /// others, each by name, with its role.
    pub fn ranked_members(&self) -> Vec<(String, RoomRole)> {
        let mut out: Vec<(String, RoomRole)> = self
            .members
            .iter()
            .map(|m| (m.clone(), self.room.role_of(m)))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// Runs a moderation command (`actions` sends nothing else here).
pub(super) fn command(state: &mut State, cmd: Command, fx: &mut Vec<Effect>) {
    match cmd {
        Command::Topic(None) => show_topic(state),
        Command::Topic(Some(topic)) => in_room(state, "/topic", fx, |room| {
            ClientEvent::RoomSettings(RoomSettingsRequest {
                room,
                topic: Some(topic),
                private: None,
            })
        }),
        Command::Private(private) => in_room(state, "/private", fx, |room| {
            ClientEvent::RoomSettings(RoomSettingsRequest {
                room,
                topic: None,
                private: Some(private),
            })
        }),
        Command::Invite(user) => on_user(state, "/invite", &user, fx, |room, user| {
            ClientEvent::RoomInvite(RoomUserRequest { room, user })
        }),
        Command::Kick(s) => room_sanction(state, "kick", s, fx, ClientEvent::RoomKick),
        Command::Ban(s) => room_sanction(state, "ban", s, fx, ClientEvent::RoomBan),
        Command::Mute(s) => room_sanction(state, "mute", s, fx, ClientEvent::RoomMute),
        Command::Unban(user) => on_user(state, "/unban", &user, fx, |room, user| {
            ClientEvent::RoomUnban(RoomUserRequest { room, user })
        }),
        Command::Unmute(user) => on_user(state, "/unmute", &user, fx, |room, user| {
            ClientEvent::RoomUnmute(RoomUserRequest { room, user })
        }),
        Command::SetRole { user, role } => {
            let what = match role {
                RoomRole::Owner => "/owner",
                RoomRole::Op => "/op",
                RoomRole::Member => "/deop",
            };
            on_user(state, what, &user, fx, |room, user| {
                ClientEvent::RoomRole(RoomRoleRequest { room, user, role })
            })
        }
        Command::Info(room) => info(state, room, fx),
        Command::ServerKick(s) => server_sanction(state, "kick", s, fx, ClientEvent::UserKick),
        Command::ServerBan(s) => server_sanction(state, "ban", s, fx, ClientEvent::UserBan),
        Command::ServerMute(s) => server_sanction(state, "mute", s, fx, ClientEvent::UserMute),
        Command::ServerUnban(user) => {
            server_user(state, "/serverunban", &user, fx, ClientEvent::UserUnban)
        }
        Command::ServerUnmute(user) => {
            server_user(state, "/serverunmute", &user, fx, ClientEvent::UserUnmute)
        }
        Command::Bans => ask_bans(state, fx),
        Command::ServerRole { user, role }
            if valid_user(state, &user) && connected(state, "/role") =>
        {
            let req = chat_shared::UserRoleRequest { user, role };
            ask(state, ClientEvent::UserRole(req), fx);
        }
        _ => {}
    }
}

fn ask_bans(state: &mut State, fx: &mut Vec<Effect>) {
    if connected(state, "/bans") {
        ask(state, ClientEvent::UserBans, fx);
    }
}

/// Sends a request the user asked for; its answer comes to [`answered`].
fn ask(state: &mut State, event: ClientEvent, fx: &mut Vec<Effect>) {
    let request = Request::Moderation {
        event: event.clone(),
        quiet: false,
    };
    fx.push(state.request(request, event));
}

fn connected(state: &mut State, what: &str) -> bool {
    if !state.session.live {
        state.toast(format!("not connected: {what} later"));
    }
    state.session.live
}

/// The open room for a room command, or a toast saying why there is none.
fn open_room(state: &mut State, what: &str) -> Option<String> {
    let ConvId::Room(room) = state.active.clone() else {
        state.toast(format!(
            "{what} works in a room: open one first (Alt-1..9, /join #room)"
        ));
        return None;
    };
    if state.removed_from(&state.active).is_some() {
        state.toast(format!(
            "you are not in {room} any more: /join {room} first"
        ));
        return None;
    }
    connected(state, what).then_some(room)
}

fn in_room(
    state: &mut State,
    what: &str,
    fx: &mut Vec<Effect>,
    make: impl FnOnce(String) -> ClientEvent,
) {
    if let Some(room) = open_room(state, what) {
        ask(state, make(room), fx);
    }
}

/// `user` if it is a username, or a toast.
fn valid_user(state: &mut State, user: &str) -> bool {
    let ok = is_valid_username(user);
    if !ok {
        state.toast(format!(
            "invalid_username: {:?} is not a username",
            sanitize_for_display(user)
        ));
    }
    ok
}

fn on_user(
    state: &mut State,
    what: &str,
    user: &str,
    fx: &mut Vec<Effect>,
    make: impl FnOnce(String, String) -> ClientEvent,
) {
    if !valid_user(state, user) {
        return;
    }
    if let Some(room) = open_room(state, what) {
        ask(state, make(room, user.to_owned()), fx);
    }
}

/// Kick, ban and mute never apply to oneself: said before asking.
fn not_me(state: &mut State, verb: &str, user: &str) -> bool {
    if state.is_me(user) {
        state.toast(format!("you cannot {verb} yourself"));
        return false;
    }
    valid_user(state, user)
}

fn room_sanction(
    state: &mut State,
    verb: &str,
    s: Sanction,
    fx: &mut Vec<Effect>,
    make: fn(RoomSanctionRequest) -> ClientEvent,
) {
    if !not_me(state, verb, &s.user) {
        return;
    }
    if let Some(room) = open_room(state, &format!("/{verb}")) {
        let req = RoomSanctionRequest {
            room,
            user: s.user,
            reason: s.reason,
            for_secs: s.for_secs,
        };
        ask(state, make(req), fx);
    }
}

fn server_sanction(
    state: &mut State,
    verb: &str,
    s: Sanction,
    fx: &mut Vec<Effect>,
    make: fn(UserSanctionRequest) -> ClientEvent,
) {
    if !not_me(state, verb, &s.user) || !connected(state, &format!("/server{verb}")) {
        return;
    }
    let req = UserSanctionRequest {
        user: s.user,
        reason: s.reason,
        for_secs: s.for_secs,
    };
    ask(state, make(req), fx);
}

fn server_user(
    state: &mut State,
    what: &str,
    user: &str,
    fx: &mut Vec<Effect>,
    make: fn(chat_shared::UserRequest) -> ClientEvent,
) {
    if valid_user(state, user) && connected(state, what) {
        let req = chat_shared::UserRequest {
            user: user.to_owned(),
        };
        ask(state, make(req), fx);
    }
}

/// `/topic` alone: the open room's topic, as last known.
fn show_topic(state: &mut State) {
    let conv = state.active.clone();
    let ConvId::Room(room) = &conv else {
        state.toast("/topic works in a room: open one first");
        return;
    };
    let line = match state.conv(&conv).map(|c| c.room.topic.clone()) {
        Some(t) if !t.is_empty() => format!("{room} topic: {t}"),
        _ => format!("{room} has no topic (ops set one with /topic text)"),
    };
    state.system(&conv, line);
}

/// `/info [#room]`.
fn info(state: &mut State, room: Option<String>, fx: &mut Vec<Effect>) {
    let room = match room {
        Some(r) => match canonical_room(&r) {
            Some(r) => r,
            None => {
                state.toast(format!("invalid_room: {r:?} is not a room name"));
                return;
            }
        },
        None => match &state.active {
            ConvId::Room(r) => r.clone(),
            _ => {
                state.toast("/info works in a room, or names one: /info #room");
                return;
            }
        },
    };
    if connected(state, "/info") {
        ask(state, ClientEvent::RoomInfo(RoomRequest { room }), fx);
    }
}

/// The answer to a moderation, block or rename request. `quiet`: the
/// client asked by itself, so nothing is said unless it worked.
pub(super) fn answered(
    state: &mut State,
    event: ClientEvent,
    quiet: bool,
    result: Result<AckReply, AckError>,
    fx: &mut Vec<Effect>,
) {
    match result {
        Ok(reply) => succeeded(state, &event, reply, quiet, fx),
        Err(_) if quiet => {}
        Err(AckError::Refused(e)) => match (&event, e.code) {
            (ClientEvent::UserRename(_), ErrorCode::UnknownEvent) => rename::unsupported(state),
            (ClientEvent::UserBlock(_) | ClientEvent::UserUnblock(_), ErrorCode::UnknownEvent) => {
                blocking::locally(state, &event)
            }
            _ => {
                let text = refusals::explain(state, &e, Some(&event));
                state.toast(text);
            }
        },
        Err(e) => state.toast(format!("request failed: {e}")),
    }
}

fn succeeded(
    state: &mut State,
    event: &ClientEvent,
    reply: AckReply,
    quiet: bool,
    fx: &mut Vec<Effect>,
) {
    match reply {
        AckReply::RoomInfo(info) => room_info(state, info, !quiet),
        AckReply::RoomSettings(s) => {
            if let Some(room) = canonical_room(&s.room)
                && let Some(c) = state.conv_mut(&ConvId::Room(room))
            {
                c.room.topic = sanitize_for_display(&s.topic);
                c.room.private = s.private;
            }
        }
        AckReply::RoomRole(r) => {
            if let Some(room) = canonical_room(&r.room)
                && let Some(c) = state.conv_mut(&ConvId::Room(room))
            {
                c.room.set_role(&r.user, r.role);
            }
        }
        AckReply::Bans(b) => bans(state, &b.bans),
        AckReply::Blocked(b) => blocking::answered(state, event, b.blocked),
        AckReply::Renamed(r) => rename::renamed(state, &r.username, fx),
        AckReply::UserRole(r) => {
            let conv = state.active.clone();
            let line = format!(
                "{} is now {} of the server",
                r.user,
                a_role(r.role.as_str())
            );
            state.system(&conv, line);
        }
        // Room actions show as the room event they make; server-wide ones
        // make none, so they are confirmed here.
        _ => server_done(state, event),
    }
}

fn a_role(role: &str) -> String {
    match role {
        "op" | "owner" | "admin" => format!("an {role}"),
        other => format!("a {other}"),
    }
}

/// `: spam`, or nothing.
fn colon_reason(reason: Option<&String>) -> String {
    reason
        .map(|r| format!(": {}", sanitize_for_display(r)))
        .unwrap_or_default()
}

fn for_how_long(secs: Option<u64>) -> String {
    match secs {
        Some(s) => format!("for {}", when::span(s)),
        None => "until lifted".to_owned(),
    }
}

/// The confirmation of a server-wide action.
fn server_done(state: &mut State, event: &ClientEvent) {
    let line = match event {
        ClientEvent::UserKick(r) => format!(
            "{} was kicked from the server{}",
            r.user,
            colon_reason(r.reason.as_ref())
        ),
        ClientEvent::UserBan(r) => format!(
            "{} is banned from the server {}{}",
            r.user,
            for_how_long(r.for_secs),
            colon_reason(r.reason.as_ref())
        ),
        ClientEvent::UserMute(r) => format!(
            "{} is muted on the server {}{}",
            r.user,
            for_how_long(r.for_secs),
            colon_reason(r.reason.as_ref())
        ),
        ClientEvent::UserUnban(r) => format!("{} is no longer banned from the server", r.user),
        ClientEvent::UserUnmute(r) => format!("{} is no longer muted on the server", r.user),
        _ => return,
    };
    let conv = state.active.clone();
    state.system(&conv, line);
}

/// A ban or mute in force, as a line: `bob: banned from #ops by alice
/// until 14:05 (spam)`.
fn ban_line(state: &State, b: &BanInfo) -> String {
    let what = if b.kind == "mute" { "muted" } else { "banned" };
    let place = match (&b.room, what) {
        (Some(r), "muted") => format!("in {}", sanitize_for_display(r)),
        (Some(r), _) => format!("from {}", sanitize_for_display(r)),
        (None, "muted") => "on the server".to_owned(),
        (None, _) => "from the server".to_owned(),
    };
    let reason = b
        .reason
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .map(|r| format!(" ({})", sanitize_for_display(r)))
        .unwrap_or_default();
    format!(
        "{}: {what} {place} by {}{}{reason}",
        sanitize_for_display(&b.user),
        sanitize_for_display(&b.by),
        when::until(state, b.until)
    )
}

/// `/bans`: every ban and mute in force, a line each.
fn bans(state: &mut State, list: &[BanInfo]) {
    let conv = state.active.clone();
    if list.is_empty() {
        state.system(&conv, "no bans or mutes in force");
        return;
    }
    state.system(&conv, format!("bans and mutes in force ({}):", list.len()));
    for b in list {
        let line = format!("  {}", ban_line(state, b));
        state.system(&conv, line);
    }
}

/// A name with the mark of its room role.
fn marked(name: &str, role: RoomRole) -> String {
    format!("{}{}", role_mark(role), sanitize_for_display(name))
}

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names
            .iter()
            .map(|n| sanitize_for_display(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A `room:info` answer: learnt, and shown when the user asked.
fn room_info(state: &mut State, info: RoomInfoAck, show: bool) {
    let Some(room) = canonical_room(&info.room) else {
        return;
    };
    let conv = ConvId::Room(room.clone());
    if let Some(c) = state.conv_mut(&conv) {
        c.room.topic = sanitize_for_display(&info.topic);
        c.room.private = info.private;
        c.room.roles.clear();
        for m in &info.members {
            c.room.set_role(&m.username, m.role);
        }
        for o in &info.ops {
            c.room.set_role(o, RoomRole::Op);
        }
        for o in &info.owners {
            c.room.set_role(o, RoomRole::Owner);
        }
        // (v3) A room joined on another client came without a join ack:
        // who is online there comes from here.
        if c.members.is_empty() {
            c.members = info
                .members
                .iter()
                .filter(|m| m.online && is_valid_username(&m.username))
                .map(|m| m.username.clone())
                .collect();
            c.member_count = Some(c.members.len() as u64);
        }
    }
    if !show {
        return;
    }
    let at = if state.conv(&conv).is_some() {
        conv
    } else {
        state.active.clone()
    };
    let kind = if info.private {
        "private (invite-only)"
    } else {
        "open"
    };
    let topic = match sanitize_for_display(&info.topic) {
        t if t.is_empty() => "no topic".to_owned(),
        t => format!("topic: {t}"),
    };
    state.system(&at, format!("{room}: {kind}, {topic}"));
    state.system(&at, format!("owners: {}", names_or_none(&info.owners)));
    state.system(&at, format!("ops: {}", names_or_none(&info.ops)));
    let mut members = info.members.clone();
    members.sort_by(|a, b| {
        b.role
            .cmp(&a.role)
            .then_with(|| a.username.cmp(&b.username))
    });
    let listed: Vec<String> = members
        .iter()
        .map(|m| {
            let mark = marked(&m.username, m.role);
            if m.online {
                mark
            } else {
                format!("{mark} (offline)")
            }
        })
        .collect();
    state.system(
        &at,
        format!("members ({}): {}", listed.len(), names_or_none(&listed)),
    );
    if let Some(invited) = &info.invited {
        state.system(&at, format!("invited: {}", names_or_none(invited)));
    }
    if let Some(list) = &info.bans {
        if list.is_empty() {
            state.system(&at, "bans and mutes: none");
        } else {
            state.system(&at, "bans and mutes:");
            for b in list {
                let line = format!("  {}", ban_line(state, b));
                state.system(&at, line);
            }
        }
    }
}
