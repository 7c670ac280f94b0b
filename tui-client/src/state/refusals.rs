//! How a refusal is said: the one place that turns the server's `{code,
//! message, context}`, and the request it answers when the client knows
//! it, into plain words naming what was missing: "only ops of #ops can
//! kick bob", "#leadership is invite-only: ask an op for an invite", "you
//! are banned from #general until 14:05 (spam)", "you are muted in
//! #general for 9 more minutes", "you cannot DM bob: one of you blocks the
//! other".
//!
//! Every refusal reaches the client twice: as `chat:error` and in the
//! ack. The ack knows the request (the room, the user, the action), so the
//! refusals it can word better are told from there ([`worded_by_ack`]),
//! and their `chat:error` copy says nothing.

use chat_shared::{
    ChatError, ClientEvent, ErrorCode, RoomRole, canonical_room, names, sanitize_for_display,
};
use serde_json::Value;

use super::{State, when};

/// The (v3) requests whose refusals are told from their ack.
const TOLD_BY_ACK: [&str; 19] = [
    names::ROOM_INFO,
    names::ROOM_SETTINGS,
    names::ROOM_INVITE,
    names::ROOM_KICK,
    names::ROOM_BAN,
    names::ROOM_UNBAN,
    names::ROOM_MUTE,
    names::ROOM_UNMUTE,
    names::ROOM_ROLE,
    names::USER_KICK,
    names::USER_BAN,
    names::USER_UNBAN,
    names::USER_MUTE,
    names::USER_UNMUTE,
    names::USER_BANS,
    names::USER_ROLE,
    names::USER_BLOCK,
    names::USER_UNBLOCK,
    names::USER_RENAME,
];

/// (v3) Requests of several clients per account whose refusals are told
/// from their ack ([`super::clients`]), or not at all: a `read:mark` is
/// the client's own doing, not the person's.
const TOLD_BY_CLIENTS: [&str; 3] = [names::SESSION_LIST, names::SESSION_END, names::READ_MARK];

/// (v3) Changes to messages, whose refusals are told from their ack (see
/// [`super::change_commands`]).
const TOLD_BY_CHANGES: [&str; 3] = [
    names::MESSAGE_EDIT,
    names::MESSAGE_DELETE,
    names::MESSAGE_REACT,
];

const MESSAGE_EVENTS: [&str; 4] = [
    names::ROOM_MESSAGE,
    names::DM_MESSAGE,
    names::GLOBAL_MESSAGE,
    names::BROADCAST_MESSAGE,
];

/// Whether the ack of the request this `chat:error` refuses tells it (so
/// the event itself says nothing): every moderation request, `/sessions`
/// and `read:mark`, (v3) edits, deletions and reactions, a join refused
/// `invite_only` or `banned`, a message refused `muted` or `blocked`.
pub(super) fn worded_by_ack(e: &ChatError) -> bool {
    let Some(event) = e.event() else {
        return false;
    };
    TOLD_BY_ACK.contains(&event)
        || TOLD_BY_CLIENTS.contains(&event)
        || TOLD_BY_CHANGES.contains(&event)
        || (event == names::ROOM_JOIN
            && matches!(e.code, ErrorCode::InviteOnly | ErrorCode::Banned))
        || (MESSAGE_EVENTS.contains(&event)
            && matches!(e.code, ErrorCode::Muted | ErrorCode::Blocked))
}

fn context_str(e: &ChatError, key: &str) -> Option<String> {
    e.context
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(sanitize_for_display)
}

/// `context.until` (ms since the Unix epoch; null: no end).
pub(super) fn context_until(e: &ChatError) -> Option<u64> {
    e.context.get("until").and_then(Value::as_u64)
}

/// `" (spam)"` from `context.reason`, or nothing.
fn reason_in_brackets(e: &ChatError) -> String {
    context_str(e, "reason")
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

/// The room and the user a request was about.
fn about(asked: Option<&ClientEvent>) -> (Option<String>, Option<String>) {
    let Some(asked) = asked else {
        return (None, None);
    };
    let (room, user) = match asked {
        ClientEvent::RoomJoin(r) | ClientEvent::RoomInfo(r) => (Some(&r.room), None),
        ClientEvent::RoomMessage(r) => (Some(&r.room), None),
        ClientEvent::DmMessage(r) => (None, Some(&r.to)),
        ClientEvent::RoomSettings(r) => (Some(&r.room), None),
        ClientEvent::RoomInvite(r) | ClientEvent::RoomUnban(r) | ClientEvent::RoomUnmute(r) => {
            (Some(&r.room), Some(&r.user))
        }
        ClientEvent::RoomKick(r) | ClientEvent::RoomBan(r) | ClientEvent::RoomMute(r) => {
            (Some(&r.room), Some(&r.user))
        }
        ClientEvent::RoomRole(r) => (Some(&r.room), Some(&r.user)),
        ClientEvent::UserKick(r) | ClientEvent::UserBan(r) | ClientEvent::UserMute(r) => {
            (None, Some(&r.user))
        }
        ClientEvent::UserUnban(r)
        | ClientEvent::UserUnmute(r)
        | ClientEvent::UserBlock(r)
        | ClientEvent::UserUnblock(r) => (None, Some(&r.user)),
        ClientEvent::UserRole(r) => (None, Some(&r.user)),
        ClientEvent::UserRename(r) => (None, Some(&r.username)),
        _ => (None, None),
    };
    (
        room.and_then(|r| canonical_room(r)),
        user.map(|u| sanitize_for_display(u)),
    )
}

/// What the user tried, as the end of "only ops of #ops can …".
fn action(asked: &ClientEvent, room: &str, user: &str) -> String {
    match asked {
        ClientEvent::RoomSettings(r) => match (r.topic.is_some(), r.private) {
            (true, _) => format!("set the topic of {room}"),
            (false, Some(true)) => format!("make {room} private"),
            (false, Some(false)) => format!("open {room} to everyone"),
            (false, None) => format!("change {room}"),
        },
        ClientEvent::RoomInvite(_) => format!("invite people to {room}"),
        ClientEvent::RoomKick(_) => format!("kick {user}"),
        ClientEvent::RoomBan(_) => format!("ban {user}"),
        ClientEvent::RoomUnban(_) => format!("unban {user}"),
        ClientEvent::RoomMute(_) => format!("mute {user}"),
        ClientEvent::RoomUnmute(_) => format!("unmute {user}"),
        ClientEvent::RoomRole(r) => match r.role {
            RoomRole::Owner => format!("make {user} an owner"),
            RoomRole::Op => format!("make {user} an op"),
            RoomRole::Member => format!("take {user}'s role away"),
        },
        ClientEvent::UserKick(_) => format!("kick {user} from the server"),
        ClientEvent::UserBan(_) => format!("ban {user} from the server"),
        ClientEvent::UserUnban(_) => format!("lift {user}'s server ban"),
        ClientEvent::UserMute(_) => format!("mute {user} on the server"),
        ClientEvent::UserUnmute(_) => format!("lift {user}'s server mute"),
        ClientEvent::UserBans => "list the bans".to_owned(),
        ClientEvent::UserRole(_) => "change server roles".to_owned(),
        ClientEvent::MessageEdit(_) => "edit that message".to_owned(),
        ClientEvent::MessageDelete(_) => "delete that message".to_owned(),
        ClientEvent::MessageReact(_) => "react to that message".to_owned(),
        _ => "do that".to_owned(),
    }
}

/// Who holds the role `context.need` names; `None` for what is not a role.
fn holders(need: &str, room: &str) -> Option<String> {
    Some(match need {
        "op" => format!("ops of {room}"),
        "owner" => format!("owners of {room}"),
        "moderator" => "server moderators".to_owned(),
        "admin" => "server admins".to_owned(),
        _ => return None,
    })
}

fn forbidden(e: &ChatError, asked: Option<&ClientEvent>, room: &str, user: &str) -> String {
    if matches!(asked, Some(ClientEvent::UserRename(_))) {
        return "your name belongs to an account and cannot change (connect with --user NAME for another)"
            .to_owned();
    }
    let what = asked
        .map(|a| action(a, room, user))
        .unwrap_or_else(|| "do that".to_owned());
    let need = context_str(e, "need").map(|need| holders(&need, room));
    match (asked, &need) {
        (Some(ClientEvent::MessageEdit(_)), _) => {
            return "only its author can edit a message".to_owned();
        }
        (Some(ClientEvent::MessageDelete(_)), None | Some(None)) => {
            return "only its author can delete that message (in a room, its ops too; a DM, only its author)"
                .to_owned();
        }
        _ => {}
    }
    match need {
        Some(Some(holders)) => format!("only {holders} can {what}"),
        // Not a role (kicking oneself, say): the server's words.
        Some(None) if !e.message.trim().is_empty() => sanitize_for_display(&e.message),
        _ => format!("you may not {what}"),
    }
}

/// The refusal `e` in plain words; `asked` is the request it answers,
/// when the client knows it.
pub(super) fn explain(state: &State, e: &ChatError, asked: Option<&ClientEvent>) -> String {
    let (asked_room, asked_user) = about(asked);
    let room = asked_room.or_else(|| context_str(e, "room").and_then(|r| canonical_room(&r)));
    let user = asked_user
        .or_else(|| context_str(e, "user"))
        .or_else(|| context_str(e, "to"));
    // A request of the roles and moderation commands (not a message).
    let moderating = asked.is_some_and(|a| TOLD_BY_ACK.contains(&a.name()));
    let changing = asked.is_some_and(|a| TOLD_BY_CHANGES.contains(&a.name()));
    let room_or = |fallback: &str| room.clone().unwrap_or_else(|| fallback.to_owned());
    let user_or = |fallback: &str| user.clone().unwrap_or_else(|| fallback.to_owned());
    match e.code {
        ErrorCode::Forbidden => forbidden(e, asked, &room_or("the room"), &user_or("them")),
        ErrorCode::InviteOnly => format!(
            "{} is invite-only: ask an op for an invite",
            room_or("that room")
        ),
        ErrorCode::Banned => format!(
            "you are banned from {}{}{}",
            room_or("that room"),
            when::until(state, context_until(e)),
            reason_in_brackets(e)
        ),
        ErrorCode::Muted => {
            let (place, lifter) = match &room {
                Some(r) => (format!("in {r}"), "an op"),
                None => ("on the server".to_owned(), "a moderator"),
            };
            let how_long = match context_until(e) {
                Some(until) => format!("for {}", when::left(state, until)),
                None => format!("until {lifter} lifts it"),
            };
            format!("you are muted {place} {how_long}{}", reason_in_brackets(e))
        }
        ErrorCode::Blocked => format!(
            "you cannot DM {}: one of you blocks the other",
            user_or("them")
        ),
        // (v3) Edits, deletions and reactions.
        ErrorCode::MessageNotFound => {
            "that message is gone: it was deleted, or is not one you can see".to_owned()
        }
        ErrorCode::EditWindowPassed => {
            let why = sanitize_for_display(&e.message);
            if why.trim().is_empty() {
                "too late to edit that message: edits are allowed only for a while after sending (/delete still works)".to_owned()
            } else {
                format!("too late to edit that message: {why} (/delete still works)")
            }
        }
        ErrorCode::UnknownEvent if changing => format!(
            "this server does not know {} (it is older than edits, deletions and reactions)",
            e.event().unwrap_or("that request")
        ),
        ErrorCode::InvalidPayload if matches!(asked, Some(ClientEvent::MessageReact(_))) => {
            "the server does not take that as a reaction (one emoji, no spaces)".to_owned()
        }
        // The codes below keep the server's words outside moderation.
        _ if !moderating => {
            let mut text = format!("{}: {}", e.code, sanitize_for_display(&e.message));
            if let Some(ev) = e.event() {
                text.push_str(&format!(" ({})", sanitize_for_display(ev)));
            }
            text
        }
        ErrorCode::UnknownEvent => format!(
            "this server does not know {} (it is older than roles and moderation)",
            e.event().unwrap_or("that request")
        ),
        ErrorCode::InvalidTarget if user.is_some() => {
            format!("{} is a guest: only accounts can hold a role", user_or(""))
        }
        ErrorCode::UserNotFound if user.is_some() => {
            format!("nobody called {} is known to the server", user_or(""))
        }
        ErrorCode::NotMember if user.is_some() && room.is_some() => {
            format!("{} is not in {}", user_or(""), room_or(""))
        }
        ErrorCode::UsernameTaken if matches!(asked, Some(ClientEvent::UserRename(_))) => format!(
            "{} is taken, or is an account's name: try another",
            user_or("that name")
        ),
        _ => format!("{}: {}", e.code, sanitize_for_display(&e.message)),
    }
}

/// The server ending this socket (`kicked`, `banned`, `session_ended`), in
/// plain words for the status bar.
pub(super) fn ended(state: &State, e: &ChatError) -> String {
    let by = context_str(e, "by")
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    let reason = context_str(e, "reason");
    let message = sanitize_for_display(&e.message);
    match e.code {
        ErrorCode::Kicked => match reason {
            Some(r) => format!("kicked from the server{by}: {r}"),
            None if by.is_empty() && !message.is_empty() => {
                format!("kicked from the server: {message}")
            }
            None => format!("kicked from the server{by}"),
        },
        ErrorCode::Banned => {
            let until = match context_until(e) {
                Some(ms) => format!("until {}", when::clock(state, ms)),
                None => "until lifted".to_owned(),
            };
            match reason {
                Some(r) => format!("banned from the server{by}: {r} ({until})"),
                None if by.is_empty() && !message.is_empty() => {
                    format!("banned from the server: {message} ({until})")
                }
                None => format!("banned from the server{by} ({until})"),
            }
        }
        _ => "this session was ended from another of your clients".to_owned(),
    }
}
