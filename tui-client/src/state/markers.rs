//! (v3) Read markers: where this account stopped reading each room and DM
//! conversation. The server keeps one marker per conversation for the
//! account and shares it with all of its clients.
//!
//! - At connect, `session.markers` gives each conversation's marker and
//!   how many messages from others came after it: the conversations pane
//!   shows those counts at once, without fetching any history, and a DM
//!   conversation with unread messages is listed before a line of it
//!   arrives ([`from_session`]). Messages replayed after the `session`
//!   event are in that count already and do not add to it.
//! - A conversation is marked read (`read:mark`) once the person has seen
//!   its newest message: the conversation is open, scrolled to the bottom,
//!   and the terminal has the focus ([`after_update`]). Only messages count
//!   (not notices or room events). At most one `read:mark` per
//!   conversation is on its way: a newer id seen meanwhile waits as the
//!   pending one, replaced by newer ones still, and goes once the ack has
//!   come and [`READ_MARK_EVERY`] has passed since the last, so that a
//!   busy room costs one request a second, not one per line. An id that
//!   is not newer than the marker known (or than one sent already) is never
//!   sent.
//! - A `read:marker` from another client of mine clears here what it read,
//!   at once ([`moved_elsewhere`]).
//! - The "new messages" divider sits at the marker: above the first
//!   message from others after it ([`refresh_divider`]). While a
//!   conversation is open its divider stays where it was when I came, so
//!   that what was new stays marked while I read it: my own marks do not
//!   move it, another client's do. Leaving a conversation moves it to where
//!   I had read up to (none, when I read it all).
//!
//! A conversation whose marker the server never said (a v2 server, a room
//! joined since the session began) keeps the v2 behaviour: the divider
//! above the first line that came while I was elsewhere.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use chat_shared::sessions::Conversation as At;
use chat_shared::{
    AckError, ClientEvent, Marker, ReadMarkRequest, ReadMarker, canonical_room, is_valid_username,
    username_key,
};
use tokio::time::Instant;

use super::{Backlog, ConvId, Conversation, Effect, EntryKind, Request, State};
use crate::msg::{AckReply, id_order};

/// The least time between two `read:mark`s of one conversation: newer
/// ids seen meanwhile wait and go together as one.
pub const READ_MARK_EVERY: Duration = Duration::from_secs(1);

/// What this client knows of the account's read markers, by conversation
/// (rooms by name, DMs by the peer's username key). Kept apart from the
/// conversations: a DM conversation the pane does not list still has a
/// marker, which says whether its replayed messages are news.
#[derive(Debug, Default)]
pub struct Markers {
    by: HashMap<At, ReadMark>,
    /// The server answered `unknown_event` to a `read:mark` (it speaks
    /// roles but not read markers): none is sent again this session.
    unknown: bool,
}

/// One conversation's marker, and the `read:mark` on its way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadMark {
    /// The marker as the server last told it (`session`, an ack, a
    /// `read:marker`): the id of the last message read; `None`: nothing
    /// read yet, or not known.
    pub marker: Option<String>,
    /// This session's `markers` listed the conversation: its unread count
    /// holds the messages replayed after the `session` event.
    pub listed: bool,
    /// The newest id sent in a `read:mark` this session.
    sent: Option<String>,
    /// The id of the `read:mark` on its way; its ack clears it.
    in_flight: Option<String>,
    /// A newer id seen while one was on its way, or before
    /// [`READ_MARK_EVERY`] had passed: the next one to go.
    pending: Option<String>,
    /// When the next `read:mark` may go.
    next_at: Option<Instant>,
    /// The conversation is open and nothing was marked read here since it
    /// was opened: history arriving may still place its divider.
    fresh_open: bool,
}

impl ReadMark {
    /// How far this client has read: the marker, or what it sent or is
    /// about to send.
    fn read_to(&self) -> Option<&str> {
        latest(
            latest(self.marker.as_deref(), self.sent.as_deref()),
            self.pending.as_deref(),
        )
    }

    /// Whether the read point is known (a v3 server said it, or this
    /// client marked something read); otherwise the v2 behaviour holds.
    fn known(&self) -> bool {
        self.listed || self.read_to().is_some()
    }
}

impl State {
    /// The read marker of `conv` as this client knows it (rooms and DMs).
    pub fn read_mark(&self, conv: &ConvId) -> Option<&ReadMark> {
        key_of(conv).and_then(|k| self.markers.by.get(&k))
    }
}

/// Whether `id` comes after `than` (no `than`: nothing read, so it does).
/// This server's ids are decimal; two that cannot be compared count as
/// newer when they differ.
fn newer(id: &str, than: Option<&str>) -> bool {
    match than {
        None => true,
        Some(t) => match id_order(id, t) {
            Some(o) => o == Ordering::Greater,
            None => id != t,
        },
    }
}

/// The later of two read points.
fn latest<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(x), Some(y)) if newer(y, Some(x)) => Some(y),
        (Some(x), _) => Some(x),
        (None, y) => y,
    }
}

/// The key of a conversation's marker: rooms by name, DMs by the peer's
/// username key; the feed has none.
fn key_of(conv: &ConvId) -> Option<At> {
    match conv {
        ConvId::Room(r) => Some(At::Room(r.clone())),
        ConvId::Dm(u) => Some(At::With(username_key(u))),
        ConvId::Feed => None,
    }
}

/// The key of a conversation named on the wire, if it names one.
fn key_from_wire(at: &At) -> Option<At> {
    match at {
        At::Room(r) => canonical_room(r).map(At::Room),
        At::With(u) => is_valid_username(u).then(|| At::With(username_key(u))),
    }
}

/// The conversation of a key, if this client holds it.
fn conv_of(state: &State, key: &At) -> Option<ConvId> {
    state
        .convs
        .iter()
        .find(|c| key_of(&c.id).as_ref() == Some(key))
        .map(|c| c.id.clone())
}

/// A key as sent in `read:mark`: a DM names the peer as the pane shows it.
fn wire(state: &State, key: &At) -> At {
    match (key, conv_of(state, key)) {
        (At::With(_), Some(ConvId::Dm(u))) => At::With(u),
        _ => key.clone(),
    }
}

/// The newest message of `c` in this epoch (mine or someone's; not a
/// notice nor a room event).
fn newest_message(c: &Conversation, epoch: u32) -> Option<&str> {
    c.entries
        .iter()
        .rev()
        .find(|e| {
            e.id.is_some()
                && e.epoch == epoch
                && matches!(e.kind, EntryKind::Chat | EntryKind::Own(_))
        })
        .and_then(|e| e.id.as_deref())
}

/// Puts the divider of `conv` above its first message from others after
/// `after` (`None`: after nothing, so the first of all), or takes it away
/// when there is none. Walks up from the bottom, so it costs the lines
/// after the marker.
fn divider_after(state: &mut State, conv: &ConvId, after: Option<&str>) {
    let epoch = state.session.epoch;
    let Some(c) = state.conv(conv) else { return };
    let mut first = None;
    for e in c.entries.iter().rev() {
        let Some(id) = e.id.as_deref() else { continue };
        if e.epoch != epoch || !newer(id, after) {
            break;
        }
        if e.kind == EntryKind::Chat && !state.is_blocked(&e.from) {
            first = Some(e.seq);
        }
    }
    if let Some(c) = state.conv_mut(conv) {
        c.unread_marker = first;
    }
}

/// The messages from others after `after` in `conv`, if the lines loaded
/// reach back to it (or to the beginning of history); `None` when older
/// lines not loaded could count too.
fn unread_after(state: &State, conv: &ConvId, after: &str) -> Option<usize> {
    let epoch = state.session.epoch;
    let c = state.conv(conv)?;
    let mut n = 0;
    for e in c.entries.iter().rev() {
        let Some(id) = e.id.as_deref() else { continue };
        if e.epoch != epoch || !newer(id, Some(after)) {
            return Some(n);
        }
        if e.kind == EntryKind::Chat && !state.is_blocked(&e.from) {
            n += 1;
        }
    }
    (c.backlog == Backlog::Complete).then_some(n)
}

/// The `session` event's markers: each conversation's marker and unread
/// count; a DM conversation with unread messages is listed. What was on
/// its way went with the old connection: the server's word starts over.
pub(super) fn from_session(state: &mut State, markers: Vec<Marker>) {
    state.markers.unknown = false;
    for m in state.markers.by.values_mut() {
        *m = ReadMark {
            fresh_open: m.fresh_open,
            ..ReadMark::default()
        };
    }
    for m in markers {
        let Some(key) = key_from_wire(&m.at) else {
            continue;
        };
        let conv = match &m.at {
            At::With(u) if m.unread > 0 && !state.is_blocked(u) => Some(state.dm_conv(u)),
            _ => conv_of(state, &key),
        };
        let mark = state.markers.by.entry(key).or_default();
        mark.marker = m.id;
        mark.listed = true;
        if let Some(conv) = conv {
            counted(state, &conv, m.unread);
        }
    }
}

/// The server's count for `conv`: its badge (unless it is open: what is
/// on screen is read), and its divider at the marker.
fn counted(state: &mut State, conv: &ConvId, unread: u64) {
    let active = state.active == *conv;
    let dm = matches!(conv, ConvId::Dm(_));
    if let Some(c) = state.conv_mut(conv)
        && !active
    {
        c.unread = usize::try_from(unread).unwrap_or(usize::MAX);
        // A room's mentions are not in a count; a DM is always one.
        if unread == 0 {
            c.mentioned = false;
        } else if dm {
            c.mentioned = true;
        }
    }
    refresh_divider(state, conv);
}

/// Places the divider of `conv` at its read point, where that is known:
/// always for a conversation that is not open; for the open one only while
/// it has none and nothing was marked read here since it was opened (the
/// lines being read keep theirs). Called when its marker or its lines
/// change (history arriving).
pub(super) fn refresh_divider(state: &mut State, conv: &ConvId) {
    let Some(mark) = key_of(conv).and_then(|k| state.markers.by.get(&k)) else {
        return;
    };
    if !mark.known() {
        return;
    }
    let open = state.active == *conv;
    let no_divider = state.conv(conv).is_some_and(|c| c.unread_marker.is_none());
    if open && !(mark.fresh_open && no_divider) {
        return;
    }
    let after = mark.read_to().map(str::to_owned);
    divider_after(state, conv, after.as_deref());
}

/// `conv` was opened: its divider stays while I read it.
pub(super) fn opened(state: &mut State, conv: &ConvId) {
    if let Some(key) = key_of(conv) {
        state.markers.by.entry(key).or_default().fresh_open = true;
    }
}

/// `conv` was left (another one is open now): its divider moves to where I
/// had read up to, which is none when I read it all; where no marker is
/// known it goes (the v2 behaviour: what was new there has been seen).
pub(super) fn left(state: &mut State, conv: &ConvId) {
    let known = key_of(conv)
        .and_then(|k| state.markers.by.get_mut(&k))
        .map(|m| {
            m.fresh_open = false;
            m.known()
        })
        .unwrap_or(false);
    if known {
        refresh_divider(state, conv);
    } else if let Some(c) = state.conv_mut(conv) {
        c.unread_marker = None;
    }
}

/// What a message arriving in `conv` is to the markers: whether it comes
/// after the read point (so it is news here: it counts, it places the
/// divider, it notifies), and whether the session's count holds it already
/// (a message replayed after a `session` that listed `conv`).
pub(super) fn arriving(state: &State, conv: &ConvId, id: &str, replayed: bool) -> (bool, bool) {
    match state.read_mark(conv) {
        Some(m) => (!m.known() || newer(id, m.read_to()), replayed && m.listed),
        None => (true, false),
    }
}

/// A room left: its marker goes with it (a join starts afresh).
pub(super) fn forget(state: &mut State, conv: &ConvId) {
    if let Some(key) = key_of(conv) {
        state.markers.by.remove(&key);
    }
}

/// A DM peer was renamed: its marker follows the conversation.
pub(super) fn renamed(state: &mut State, from: &str, to: &str) {
    if let Some(m) = state.markers.by.remove(&At::With(username_key(from))) {
        state.markers.by.insert(At::With(username_key(to)), m);
    }
}

/// After every input: the open conversation's newest message once it is
/// seen, and the `read:mark`s that are due. Only towards a v3 server, while
/// the session is up.
pub(super) fn after_update(state: &mut State, fx: &mut Vec<Effect>) {
    if !state.session.live || !state.speaks_v3() || state.markers.unknown {
        return;
    }
    seen(state);
    send_due(state, fx);
}

/// The open conversation's newest message becomes the pending mark once
/// the person has seen it: scrolled to the bottom, the terminal focused,
/// and not a room I was put out of.
fn seen(state: &mut State) {
    if !state.viewport.focused {
        return;
    }
    let Some(key) = key_of(&state.active) else {
        return;
    };
    let Some(c) = state.conv(&state.active) else {
        return;
    };
    if c.scroll != 0 || c.room.removed.is_some() {
        return;
    }
    let Some(newest) = newest_message(c, state.session.epoch).map(str::to_owned) else {
        return;
    };
    let mark = state.markers.by.entry(key).or_default();
    if newer(&newest, mark.read_to()) {
        mark.pending = Some(newest);
        mark.fresh_open = false;
    }
}

/// Sends each pending mark whose conversation has none on its way and
/// whose pace allows.
fn send_due(state: &mut State, fx: &mut Vec<Effect>) {
    let now = state.now;
    let due: Vec<At> = state
        .markers
        .by
        .iter()
        .filter(|(_, m)| {
            m.pending.is_some() && m.in_flight.is_none() && m.next_at.is_none_or(|t| t <= now)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in due {
        let at = wire(state, &key);
        let Some(mark) = state.markers.by.get_mut(&key) else {
            continue;
        };
        let Some(id) = mark.pending.take() else {
            continue;
        };
        // Another client may have read further meanwhile.
        if !newer(&id, latest(mark.marker.as_deref(), mark.sent.as_deref())) {
            continue;
        }
        mark.in_flight = Some(id.clone());
        mark.sent = Some(id.clone());
        mark.next_at = Some(now + READ_MARK_EVERY);
        let event = ClientEvent::ReadMark(ReadMarkRequest { at, id: id.clone() });
        fx.push(state.request(Request::ReadMark { at: key, id }, event));
    }
}

/// The answer to a `read:mark`: the marker as it stands. A refusal (a
/// room left meanwhile) or a lost answer is not retried: the next newer
/// message seen is. (An answer from before a reconnect may clear the
/// request of the same id sent since: at worst two go at once.)
pub(super) fn acked(state: &mut State, key: &At, id: &str, result: Result<AckReply, AckError>) {
    if let Err(AckError::Refused(e)) = &result
        && e.code == chat_shared::ErrorCode::UnknownEvent
    {
        state.markers.unknown = true;
    }
    let Some(mark) = state.markers.by.get_mut(key) else {
        return;
    };
    if mark.in_flight.as_deref() == Some(id) {
        mark.in_flight = None;
    }
    if let Ok(AckReply::ReadMarked(m)) = result
        && newer(&m.id, mark.marker.as_deref())
    {
        mark.marker = Some(m.id);
    }
}

/// `read:marker`: another client of mine read up to `id`. What it read is
/// no longer unread here, and the divider moves to the marker.
pub(super) fn moved_elsewhere(state: &mut State, ev: ReadMarker) {
    let Some(key) = key_from_wire(&ev.at) else {
        return;
    };
    let mark = state.markers.by.entry(key.clone()).or_default();
    let ahead = newer(&ev.id, mark.read_to());
    if newer(&ev.id, mark.marker.as_deref()) {
        mark.marker = Some(ev.id.clone());
    }
    // I had read as far here already: nothing changes on screen.
    if !ahead {
        return;
    }
    let Some(conv) = conv_of(state, &key) else {
        return;
    };
    let left = unread_after(state, &conv, &ev.id);
    let dm = matches!(conv, ConvId::Dm(_));
    if let Some(c) = state.conv_mut(&conv) {
        if let Some(n) = left {
            c.unread = c.unread.min(n);
        }
        if c.unread == 0 {
            c.mentioned = false;
        } else if dm {
            c.mentioned = true;
        }
    }
    divider_after(state, &conv, Some(&ev.id));
}
