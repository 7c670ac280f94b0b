//! Conversations: rooms, direct conversations and the global feed, their
//! lines in id order without duplicates, unread counts and mentions, the
//! "new messages" marker, the in-memory cap, and switching between them.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};

use chat_shared::{
    DmMessage, FeedMessage, JoinAck, RoomMessage, canonical_room, is_valid_username,
    sanitize_for_display, username_key,
};
use tokio::time::Instant;

use super::changes::LineChanges;
use super::{Effect, State, notify};
use crate::msg::id_order;

/// A conversation: a room, a direct conversation with one user, or the
/// global feed (global and broadcast messages).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvId {
    Feed,
    Room(String),
    /// Keyed by the peer's username as first seen (compared case-insensitively).
    Dm(String),
}

impl ConvId {
    /// The name shown in the conversations pane.
    pub fn label(&self) -> String {
        match self {
            ConvId::Feed => "* feed".to_owned(),
            ConvId::Room(r) => r.clone(),
            ConvId::Dm(u) => format!("@{u}"),
        }
    }
}

/// Where an own message is on its way to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting in the outbox for the session to come back, or for the
    /// server's rate limit to let it through.
    Queued,
    /// Sent, no ack yet.
    Pending,
    /// Acked (or echoed) by the server.
    Sent,
    /// Acked with `queued: true`: the server keeps it for this user, who is
    /// offline, until they connect.
    Held(String),
    /// Refused or timed out: the error code.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A message from someone else.
    Chat,
    /// A message of mine.
    Own(Delivery),
    /// A line from this client (help, /rooms, /who, notices).
    System,
}

/// One line of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The server's id; `None` for own messages before their ack and for
    /// system lines.
    pub id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    pub from: String,
    /// Already sanitised for display.
    pub text: String,
    pub kind: EntryKind,
    /// A broadcast (everyone but the sender) rather than a global message.
    pub broadcast: bool,
    /// An action line (`/me waves`: shown as `* alice waves`).
    pub action: bool,
    /// Someone else's line that names me.
    pub mention: bool,
    /// This client's sequence number for own messages (0 otherwise).
    pub local: u64,
    /// The server session epoch the id belongs to (see [`super::session::Session::epoch`]).
    pub epoch: u32,
    /// Unique per entry in this client, increasing in arrival order: what
    /// the "new messages" marker points at.
    pub seq: u64,
    /// The view's memo of how many rows this entry wraps to, and at which
    /// width (`width << 16 | rows`, 0: not known). Cleared when the line
    /// changes; lets a draw skip the lines it does not show.
    pub wrapped: std::cell::Cell<u32>,
    /// (v3) What it answers, and its edits, deletion and reactions (see
    /// [`super::changes`]).
    pub changes: LineChanges,
}

impl Entry {
    /// Changes the delivery state (and forgets the wrapped height, which
    /// the state's suffix changes).
    pub fn set_kind(&mut self, kind: EntryKind) {
        self.kind = kind;
        self.wrapped.set(0);
    }
}

/// How far back a conversation's history is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backlog {
    /// Older messages may exist on the server.
    #[default]
    Unknown,
    /// A `history` request is on its way ("loading…").
    Loading,
    /// The server said there is nothing older ("beginning of history").
    Complete,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: ConvId,
    pub entries: VecDeque<Entry>,
    pub unread: usize,
    pub mentioned: bool,
    /// Lines scrolled up from the bottom.
    pub scroll: usize,
    /// Room members by name (rooms only).
    pub members: BTreeSet<String>,
    /// The room's member count as the server last said.
    pub member_count: Option<u64>,
    /// Who is typing here, and until when it is shown.
    pub typing: BTreeMap<String, Instant>,
    /// The `seq` of the first line that arrived while I was elsewhere, or
    /// (v3) of the first message from others after the read marker: the
    /// "new messages" line is drawn above it (see [`super::markers`]).
    pub unread_marker: Option<u64>,
    pub backlog: Backlog,
    /// (v3) Rooms: the topic, private, roles, and whether I was put out
    /// (see [`super::moderation`]).
    pub room: super::room_state::RoomState,
    /// `/showblocked`: the lines of blocked users are shown here.
    pub show_blocked: bool,
    /// The ids held, each with the epochs and contents it was seen with, so
    /// that a duplicate is found without a scan of the lines.
    ids: HashMap<String, Vec<(u32, u64)>>,
}

fn fingerprint(from: &str, text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    from.hash(&mut h);
    text.hash(&mut h);
    h.finish()
}

impl Conversation {
    pub fn new(id: ConvId) -> Self {
        Conversation {
            id,
            entries: VecDeque::new(),
            unread: 0,
            mentioned: false,
            scroll: 0,
            members: BTreeSet::new(),
            member_count: None,
            typing: BTreeMap::new(),
            unread_marker: None,
            backlog: Backlog::Unknown,
            room: Default::default(),
            show_blocked: false,
            ids: HashMap::new(),
        }
    }

    fn index(&mut self, e: &Entry) {
        if let Some(id) = &e.id {
            self.ids
                .entry(id.clone())
                .or_default()
                .push((e.epoch, fingerprint(&e.from, &e.text)));
        }
    }

    fn unindex(&mut self, e: &Entry) {
        let Some(id) = &e.id else { return };
        let key = (e.epoch, fingerprint(&e.from, &e.text));
        if let Some(seen) = self.ids.get_mut(id) {
            if let Some(p) = seen.iter().position(|k| *k == key) {
                seen.swap_remove(p);
            }
            if seen.is_empty() {
                self.ids.remove(id);
            }
        }
    }

    /// Whether this conversation already holds the message `id`: the same id
    /// in the same epoch, or across epochs the same id, sender and text (a
    /// restarted server numbers from the start again, so an id alone from an
    /// older epoch may name another message).
    pub fn has_message(&self, id: &str, from: &str, text: &str, epoch: u32) -> bool {
        let print = fingerprint(from, text);
        self.ids
            .get(id)
            .is_some_and(|seen| seen.iter().any(|&(ep, p)| ep == epoch || p == print))
    }

    /// (v3) Whether any line holds `id` (of any epoch): a cheap test
    /// before a search of the lines for it.
    pub fn holds_id(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    /// Whether an entry of `epoch` holds `id`.
    pub fn has_id_in_epoch(&self, id: &str, epoch: u32) -> bool {
        self.ids
            .get(id)
            .is_some_and(|seen| seen.iter().any(|&(ep, _)| ep == epoch))
    }

    /// Re-reads the id index after lines were removed in bulk.
    pub fn rebuild_index(&mut self) {
        self.ids.clear();
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            self.index(e);
        }
        self.entries = entries;
    }

    /// Appends a line at the bottom.
    pub fn push(&mut self, entry: Entry) {
        self.index(&entry);
        self.entries.push_back(entry);
    }

    /// (v3) Replaces the text of the line at `pos` (an edit, a deletion),
    /// keeping the id index right and forgetting its wrapped height.
    pub(super) fn retext(&mut self, pos: usize, text: String) {
        let Some(old) = self.entries.get(pos).cloned() else {
            return;
        };
        self.unindex(&old);
        if let Some(e) = self.entries.get_mut(pos) {
            e.text = text;
            e.wrapped.set(0);
        }
        if let Some(e) = self.entries.get(pos).cloned() {
            self.index(&e);
        }
    }

    /// Takes the line at `pos` out.
    pub fn remove(&mut self, pos: usize) -> Option<Entry> {
        let e = self.entries.remove(pos)?;
        self.unindex(&e);
        Some(e)
    }

    /// Drops the oldest lines beyond `cap`; older history can be fetched
    /// again by scrolling up.
    pub fn cap(&mut self, cap: usize) {
        let cap = cap.max(1);
        let mut dropped = false;
        while self.entries.len() > cap {
            if let Some(e) = self.entries.pop_front() {
                self.unindex(&e);
                dropped = true;
            }
        }
        if dropped && self.backlog == Backlog::Complete {
            self.backlog = Backlog::Unknown;
        }
    }

    /// The id of the oldest line from the server (the next `history` page
    /// asks for what is older).
    pub fn oldest_id(&self) -> Option<&str> {
        self.entries.iter().find_map(|e| e.id.as_deref())
    }

    /// Inserts `entry` (which has an id) in id order within its epoch, after
    /// every entry of older epochs and above own messages that still wait
    /// for their ack. Returns false if that message is already here.
    pub fn insert_ordered(&mut self, entry: Entry) -> bool {
        let Some(id) = entry.id.clone() else {
            self.push(entry);
            return true;
        };
        if self.has_message(&id, &entry.from, &entry.text, entry.epoch) {
            return false;
        }
        let mut pos = self.entries.len();
        while pos > 0 {
            let prev = &self.entries[pos - 1];
            if prev.id.is_some() && prev.epoch < entry.epoch {
                break;
            }
            let unacked_own = prev.id.is_none()
                && matches!(
                    prev.kind,
                    EntryKind::Own(Delivery::Pending | Delivery::Queued)
                );
            let after = prev
                .id
                .as_deref()
                .is_some_and(|p| id_order(p, &id) == Some(std::cmp::Ordering::Greater));
            if unacked_own || after {
                pos -= 1;
            } else {
                break;
            }
        }
        self.index(&entry);
        self.entries.insert(pos, entry);
        true
    }

    /// Puts a page of older messages (oldest first) above everything held.
    pub fn prepend(&mut self, older: Vec<Entry>) {
        for e in older.into_iter().rev() {
            let id = e.id.clone().unwrap_or_default();
            if self.has_message(&id, &e.from, &e.text, e.epoch) {
                continue;
            }
            self.index(&e);
            self.entries.push_front(e);
        }
    }
}

impl State {
    pub fn conv(&self, id: &ConvId) -> Option<&Conversation> {
        self.convs.iter().find(|c| &c.id == id)
    }

    pub(super) fn conv_mut(&mut self, id: &ConvId) -> Option<&mut Conversation> {
        self.convs.iter_mut().find(|c| &c.id == id)
    }

    pub fn active_conv(&self) -> &Conversation {
        // The active conversation always exists; the feed is never removed.
        self.conv(&self.active).unwrap_or(&self.convs[0])
    }

    pub(super) fn active_index(&self) -> usize {
        self.convs
            .iter()
            .position(|c| c.id == self.active)
            .unwrap_or(0)
    }

    /// The DM conversation with `user`, matched case-insensitively, created
    /// if needed.
    pub(super) fn dm_conv(&mut self, user: &str) -> ConvId {
        let key = username_key(user);
        if let Some(c) = self
            .convs
            .iter()
            .find(|c| matches!(&c.id, ConvId::Dm(u) if username_key(u) == key))
        {
            return c.id.clone();
        }
        let id = ConvId::Dm(user.to_owned());
        self.convs.push(Conversation::new(id.clone()));
        id
    }

    pub(super) fn ensure_conv(&mut self, id: &ConvId) -> &mut Conversation {
        if let Some(pos) = self.convs.iter().position(|c| &c.id == id) {
            return &mut self.convs[pos];
        }
        self.convs.push(Conversation::new(id.clone()));
        let last = self.convs.len() - 1;
        &mut self.convs[last]
    }

    /// Joined rooms, in the order of the conversations pane.
    pub fn rooms(&self) -> Vec<String> {
        self.convs
            .iter()
            .filter_map(|c| match &c.id {
                ConvId::Room(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn is_me(&self, name: &str) -> bool {
        username_key(name) == username_key(&self.me)
    }

    pub(super) fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub(super) fn switch_to(&mut self, id: ConvId, fx: &mut Vec<Effect>) {
        let old = self.active.clone();
        if old != id {
            self.stop_typing(fx);
            self.search = None;
        }
        if let Some(c) = self.conv_mut(&id) {
            c.unread = 0;
            c.mentioned = false;
            self.active = id.clone();
        }
        if self.active != old {
            // (v3) The selection is of the conversation left.
            self.selection.clear();
            // Leaving a conversation is having read what I saw of it: its
            // divider goes, or moves to the read marker (see `markers`).
            super::markers::left(self, &old);
            super::markers::opened(self, &id);
        }
    }

    /// Removes a conversation (after `/leave` or `/close`) and goes to the
    /// previous one.
    pub(super) fn close_conv(&mut self, id: &ConvId, fx: &mut Vec<Effect>) {
        if *id == ConvId::Feed {
            return;
        }
        if self.active == *id {
            cycle(self, -1, fx);
        }
        self.convs.retain(|c| &c.id != id);
        if self.conv(&self.active).is_none() {
            self.active = ConvId::Feed;
        }
    }
}

pub(super) fn cycle(state: &mut State, step: isize, fx: &mut Vec<Effect>) {
    let n = state.convs.len() as isize;
    let i = (state.active_index() as isize + step).rem_euclid(n) as usize;
    let id = state.convs[i].id.clone();
    state.switch_to(id, fx);
}

/// A message as it arrived, before it becomes an [`Entry`].
pub(super) struct Incoming<'a> {
    pub id: String,
    pub ts: u64,
    pub from: &'a str,
    pub text: &'a str,
    pub broadcast: bool,
    pub action: bool,
    /// History (a join's or a page): context, not news.
    pub old: bool,
    /// Replayed after a `session` event (v3: the read marker's count may
    /// hold it already).
    pub replayed: bool,
    /// (v3) What it answers, and, from history and replays, how it stands
    /// now: edited, deleted (then `text` is empty), its reactions.
    pub changes: LineChanges,
}

/// Adds a message from the server to `conv`: an echo of one of mine takes
/// the place of the pending line; a duplicate (replay or history) is
/// dropped. A DM of mine is never an echo (the server sends none to the
/// client that sent it): it was sent from another of my clients, and is
/// shown as mine; the one sent here comes back only in its ack, matched by
/// id.
pub(super) fn receive(state: &mut State, conv: ConvId, m: Incoming, fx: &mut Vec<Effect>) {
    let mine = state.is_me(m.from);
    // (v3) Whether it comes after what this account has read, and whether
    // the session's unread count holds it already.
    let (after_marker, counted) = super::markers::arriving(state, &conv, &m.id, m.replayed);
    let active = state.active == conv;
    // A blocked user's line is kept (hidden, see `blocking`), never news.
    let blocked = !mine && state.is_blocked(m.from);
    // (v3) A reply to a line of mine names me as much as my name does.
    let answers_me = super::changes::answers_me(state, &conv, &m.changes);
    let mention = !mine && !blocked && (mentions(m.text, &state.me) || answers_me);
    let is_dm = matches!(conv, ConvId::Dm(_));
    let epoch = state.session.epoch;
    let seq = state.next_seq();
    let cap = state.max_lines;
    let from = sanitize_for_display(m.from);
    let text = sanitize_for_display(m.text);
    let c = state.ensure_conv(&conv);
    c.typing.remove(m.from);
    // Held already (a replay, history): (v3) as it stands now, it may say
    // that it was edited or deleted meanwhile.
    if let Some(pos) = super::changes::held(c, &m.id, &from, &text, epoch, &m.changes) {
        if m.old || m.replayed || m.changes.edited || m.changes.deleted {
            super::changes::apply_snapshot(state, &conv, pos, text, m.changes);
        }
        return;
    }
    let deleted = m.changes.deleted;
    let c = state.ensure_conv(&conv);
    if mine && !is_dm {
        // My own message coming back (room or global): attach the id to the
        // oldest pending line with that text, then put it in id order.
        if let Some(pos) = c.entries.iter().position(|e| {
            e.id.is_none()
                && match &e.kind {
                    EntryKind::Own(Delivery::Pending | Delivery::Queued) => true,
                    // Its ack was lost with the connection, but it got through.
                    EntryKind::Own(Delivery::Failed(code)) => code == "timeout",
                    _ => false,
                }
                && e.text == text
        }) && let Some(mut e) = c.remove(pos)
        {
            e.id = Some(m.id);
            e.ts = m.ts;
            e.epoch = epoch;
            e.set_kind(EntryKind::Own(Delivery::Sent));
            c.insert_ordered(e);
            return;
        }
    }
    let entry = Entry {
        id: Some(m.id),
        ts: m.ts,
        from,
        text,
        kind: if mine {
            EntryKind::Own(Delivery::Sent)
        } else {
            EntryKind::Chat
        },
        broadcast: m.broadcast,
        action: m.action,
        mention,
        local: 0,
        epoch,
        seq,
        wrapped: Default::default(),
        changes: m.changes,
    };
    if !c.insert_ordered(entry) {
        return;
    }
    // Lines someone scrolled up to read are not dropped under them: the
    // cap waits (up to twice over) until they are back at the bottom.
    c.cap(if c.scroll == 0 {
        cap
    } else {
        cap.saturating_mul(2)
    });
    // Read on another client already, or (v3) deleted before it came
    // here: kept, but no news.
    if mine || m.old || blocked || !after_marker || deleted {
        return;
    }
    if !active {
        if !counted {
            c.unread += 1;
        }
        c.mentioned |= mention || is_dm;
        if c.unread_marker.is_none() {
            c.unread_marker = Some(seq);
        }
    }
    if mention || is_dm {
        let title = match &conv {
            ConvId::Dm(u) => format!("@{u}"),
            other => other.label(),
        };
        let body = format!(
            "{}: {}",
            sanitize_for_display(m.from),
            sanitize_for_display(m.text)
        );
        notify::notify(state, title, body, fx);
    }
}

/// Whether `text` names `me` as a word (case-insensitive, `@` optional).
pub fn mentions(text: &str, me: &str) -> bool {
    let me = me.to_lowercase();
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .any(|w| w.trim_end_matches('.') == me)
}

pub(super) fn room_message(state: &mut State, mut m: RoomMessage, fx: &mut Vec<Effect>) {
    let Some(room) = canonical_room(&m.room) else {
        return;
    };
    let changes = LineChanges::folded(
        m.reply_to.take(),
        m.edited,
        m.deleted,
        std::mem::take(&mut m.reactions),
    );
    let incoming = Incoming {
        id: m.id,
        ts: m.ts,
        from: &m.from,
        text: changes.shown_text(&m.text),
        broadcast: false,
        action: m.action == Some(true),
        old: false,
        replayed: m.replayed == Some(true),
        changes,
    };
    receive(state, ConvId::Room(room), incoming, fx);
}

pub(super) fn dm_message(state: &mut State, mut m: DmMessage, old: bool, fx: &mut Vec<Effect>) {
    let peer = if state.is_me(&m.from) {
        m.to.clone()
    } else {
        m.from.clone()
    };
    // A blocked user's DMs never show (the server refuses new ones; these
    // are older ones replayed or paged).
    if !is_valid_username(&peer) || state.is_blocked(&peer) {
        return;
    }
    let conv = state.dm_conv(&peer);
    let changes = LineChanges::folded(
        m.reply_to.take(),
        m.edited,
        m.deleted,
        std::mem::take(&mut m.reactions),
    );
    let incoming = Incoming {
        id: m.id,
        ts: m.ts,
        from: &m.from,
        text: changes.shown_text(&m.text),
        broadcast: false,
        action: m.action == Some(true),
        old,
        replayed: m.replayed == Some(true),
        changes,
    };
    receive(state, conv, incoming, fx);
}

pub(super) fn feed_message(
    state: &mut State,
    mut m: FeedMessage,
    broadcast: bool,
    fx: &mut Vec<Effect>,
) {
    let changes = LineChanges::folded(
        m.reply_to.take(),
        m.edited,
        m.deleted,
        std::mem::take(&mut m.reactions),
    );
    let incoming = Incoming {
        id: m.id,
        ts: m.ts,
        from: &m.from,
        text: changes.shown_text(&m.text),
        broadcast,
        action: m.action == Some(true),
        old: false,
        replayed: m.replayed == Some(true),
        changes,
    };
    receive(state, ConvId::Feed, incoming, fx);
}

pub(super) fn joined(state: &mut State, j: JoinAck, switch: bool, fx: &mut Vec<Effect>) {
    let Some(room) = canonical_room(&j.room) else {
        return;
    };
    let id = ConvId::Room(room.clone());
    let room_name = room.clone();
    state.known_rooms.insert(room);
    let me = state.me.clone();
    let c = state.ensure_conv(&id);
    // (v3) Its settings and my role come with the ack; the others' roles
    // with `room:info`, asked for below. A v2 server says none of them.
    c.room.removed = None;
    c.room.topic = sanitize_for_display(&j.topic);
    c.room.private = j.private;
    if let Some(role) = j.role {
        c.room.set_role(&me, role);
    }
    c.members = j
        .members
        .iter()
        .filter(|u| is_valid_username(u))
        .cloned()
        .collect();
    c.members.insert(me);
    c.member_count = Some(c.members.len() as u64);
    for mut m in j.history {
        // History is context, not news: it never counts as unread.
        let changes = LineChanges::folded(
            m.reply_to.take(),
            m.edited,
            m.deleted,
            std::mem::take(&mut m.reactions),
        );
        let incoming = Incoming {
            id: m.id,
            ts: m.ts,
            from: &m.from,
            text: changes.shown_text(&m.text),
            broadcast: false,
            action: m.action == Some(true),
            old: true,
            replayed: false,
            changes,
        };
        receive(state, id.clone(), incoming, fx);
    }
    super::markers::refresh_divider(state, &id);
    super::room_state::learn_room(state, &room_name, fx);
    if switch {
        state.switch_to(id, fx);
    }
}
