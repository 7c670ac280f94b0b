//! (v3) Room events: each moderation action or settings change of a room
//! (`room:event`) as a line of its own in that room's conversation, live
//! or replayed, once per id as messages are, and what it changes here:
//! the topic, private, roles, and my removal by a kick or a ban. Also an
//! invite to a room (`room:invited`), a presence `leave` that removes me,
//! and the server ending my socket (`chat:error` `kicked`, `banned`).

use chat_shared::{
    ChatError, RoomEvent, RoomEventKind, RoomInvited, RoomRole, canonical_room,
    sanitize_for_display, username_key,
};

use super::event_lines::line;
use super::room_state::{Removal, Removed};
use super::{Conn, ConvId, Effect, Entry, EntryKind, State, notify, refusals};

/// A `room:event`, live or replayed: its line once, then its effect.
pub(super) fn room_event(state: &mut State, ev: RoomEvent, fx: &mut Vec<Effect>) {
    let Some(room) = canonical_room(&ev.room) else {
        return;
    };
    let conv = ConvId::Room(room.clone());
    let target = ev.user.clone().unwrap_or_default();
    let before = state
        .conv(&conv)
        .map(|c| c.room.role_of(&target))
        .unwrap_or(RoomRole::Member);
    let text = line(state, &room, &ev, before);
    let about_me = ev.user.as_deref().is_some_and(|u| state.is_me(u))
        && !matches!(ev.kind, RoomEventKind::Invite)
        && !state.is_me(&ev.by);
    let target_is_me = state.is_me(&target);
    let seq = state.next_seq();
    let entry = Entry {
        id: Some(ev.id.clone()),
        ts: ev.ts,
        from: String::new(),
        text: text.clone(),
        kind: EntryKind::System,
        broadcast: false,
        action: false,
        mention: about_me,
        local: 0,
        epoch: state.session.epoch,
        seq,
        wrapped: Default::default(),
        changes: Default::default(),
    };
    let cap = state.max_lines;
    let active = state.active == conv;
    let c = state.ensure_conv(&conv);
    if !c.insert_ordered(entry) {
        // Seen already (a replay of a live one): applied then.
        return;
    }
    c.cap(if c.scroll == 0 {
        cap
    } else {
        cap.saturating_mul(2)
    });
    match ev.kind {
        RoomEventKind::Topic => {
            c.room.topic = sanitize_for_display(ev.topic.as_deref().unwrap_or(""))
        }
        RoomEventKind::Private => c.room.private = ev.private == Some(true),
        RoomEventKind::Role => c
            .room
            .set_role(&target, ev.role.unwrap_or(RoomRole::Member)),
        RoomEventKind::Kick | RoomEventKind::Ban if !target_is_me => {
            let key = username_key(&target);
            c.members.retain(|m| username_key(m) != key);
        }
        _ => {}
    }
    if !about_me {
        return;
    }
    if ev.kind.removes() {
        let why = text.strip_prefix("you were ").unwrap_or(&text).to_owned();
        let how = if ev.kind == RoomEventKind::Ban {
            Removed::Banned
        } else {
            Removed::Kicked
        };
        let removal = Removal { how, why };
        put_out(state, &conv, removal);
        let hint = format!("/join {room} to go back");
        let hint = if ev.kind == RoomEventKind::Ban {
            format!("{hint} once the ban ends")
        } else {
            hint
        };
        state.system(&conv, hint);
    }
    // About me: it counts as news, and asks for attention.
    if let Some(c) = state.conv_mut(&conv)
        && !active
    {
        c.unread += 1;
        c.mentioned = true;
    }
    notify::notify(state, room, text, fx);
}

/// Marks me out of a room: it stays listed and readable, its members are
/// no longer known, and nothing is sent there until `/join`.
fn put_out(state: &mut State, conv: &ConvId, removal: Removal) {
    let c = state.ensure_conv(conv);
    c.room.removed = Some(removal);
    c.members.clear();
    c.member_count = None;
    c.typing.clear();
    if state.typing_sent.as_ref().is_some_and(|(t, _)| t == conv) {
        state.typing_sent = None;
    }
}

/// Out of a room without a room event saying why (a presence `leave` of
/// mine with reason `kick` or `ban`, a re-join refused): marked, with a
/// line, unless its room event said so already.
pub(super) fn left_by_force(state: &mut State, conv: &ConvId, how: Removed) {
    if state.conv(conv).is_none() || state.removed_from(conv).is_some() {
        return;
    }
    let ConvId::Room(room) = conv else { return };
    let line = match how {
        Removed::NotInvited => format!("{room} is invite-only now: ask an op for an invite"),
        _ => format!(
            "you were {} from {room}: /join {room} to go back",
            how.word()
        ),
    };
    let why = how.word().to_owned();
    put_out(state, conv, Removal { how, why });
    state.system(conv, line);
}

/// I am in this room (again): not out of it any more.
pub(super) fn back_in(state: &mut State, conv: &ConvId) {
    if let Some(c) = state.conv_mut(conv) {
        c.room.removed = None;
    }
}

/// `room:invited`: a toast offering the join, and a line that stays.
pub(super) fn invited(state: &mut State, inv: RoomInvited, fx: &mut Vec<Effect>) {
    let Some(room) = canonical_room(&inv.room) else {
        return;
    };
    let by = sanitize_for_display(&inv.by);
    let text = format!("{by} invited you to {room}: /join {room}");
    state.known_rooms.insert(room.clone());
    state.notice(text.clone());
    let conv = state.active.clone();
    state.system(&conv, text.clone());
    notify::notify(state, room, text, fx);
}

/// The server ends this socket (a kick or a ban from the server, or the
/// session ended elsewhere): said plainly, and the client stays off until
/// the user `/reconnect`s.
pub(super) fn ended(state: &mut State, e: &ChatError) {
    let why = refusals::ended(state, e);
    state.toast(why.clone());
    state.session.live = false;
    state.conn = Conn::Ended { why };
}
