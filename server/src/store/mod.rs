//! The store: the one seam behind which everything that must outlive the
//! process lives (messages with their ids, sessions, accounts, the id
//! head). The chat
//! code speaks only the records and the few async methods of [`Store`];
//! which backend stands behind them is decided once, at start.
//!
//! Layout:
//! - `mod.rs`: the records ([`MessageRecord`], [`SessionRecord`],
//!   [`Startup`]), [`Committed`], [`StoreError`] and the [`Store`] trait.
//! - `memory.rs`: [`MemoryStore`], everything in memory (`--store memory`,
//!   tests). Nothing survives the process.
//! - `sqlite.rs`: [`SqliteStore`], the default: one embedded database file,
//!   one writer thread doing group commit, a small pool of readers.
//! - `redis.rs`: [`RedisStore`], on a Redis server that several nodes
//!   share (`--redis-url`): ids come from Redis, one order for the cluster.
//! - `sentinel.rs`: (v3) the Redis store under Sentinel: which server is
//!   the primary, and real Sentinels for tests.
//! - `faulty.rs`: [`FaultyStore`], a wrapper that makes writes fail on
//!   demand, so tests can inject a full disk through the seam.
//!
//! Ordering and durability: the server numbers a message and enqueues its
//! write under one lock, so the write queue is in id order, and delivers it
//! only once the write has committed ([`Committed::on_success`], run in
//! commit order). So a message refused `unavailable` reached nobody, and
//! the ack (`ok:true`) and every delivery speak of a durable message.
//! [`Store::startup`] still skips [`ID_GAP_AFTER_CRASH`] ids after a crash:
//! ids numbered for writes that never committed are never handed out again.

mod faulty;
mod memory;
pub mod redis;
pub mod sentinel;
mod sqlite;

#[cfg(test)]
mod tests;

pub use faulty::FaultyStore;
pub use memory::MemoryStore;
pub use redis::RedisStore;
pub use sqlite::{HEARTBEAT_INTERVAL, MAX_BATCH, SCHEMA_VERSION, SqliteStore, WRITE_QUEUE_BOUND};

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chat_shared::{MessageKind, username_key};
use serde::ser::{SerializeStruct, Serializer};

/// How many ids [`Store::startup`] skips after a crash. Ids are numbered
/// before their write commits, so up to a full write queue of them may
/// have been numbered without being stored; skipping more than that keeps
/// every id unique and increasing, whatever became of them. At 2^20 ids a crash,
/// SQLite's 63-bit integers last 2^43 crashes.
pub const ID_GAP_AFTER_CRASH: u64 = 1 << 20;

// The gap must cover every write that can be queued but not committed.
const _: () = assert!(ID_GAP_AFTER_CRASH > WRITE_QUEUE_BOUND as u64);

// Session windows and the heartbeat must keep meaning across restarts,
// which a monotonic clock does not: the backends stamp with the wall clock.
pub(crate) use crate::clock::now_ms;

/// Where a message went. Usernames compare by [`username_key`]; the names
/// kept here are display names, which keep their case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Destination {
    /// A room, by its canonical name (`#general`).
    Room(String),
    /// A direct message to one user (display name).
    Dm { to: String },
    /// `global:message`: every `/chat` socket, the sender included.
    #[default]
    Global,
    /// `broadcast:message`: every `/chat` socket but the sender's.
    Broadcast,
}

/// One message as stored and delivered. Holds nothing node-local (no
/// socket id), so any node can deliver it from the store.
///
/// (v3) The same sequence also numbers room events (`note`) and changes
/// to messages (`change`); a message itself carries its state as the
/// changes so far left it (`folded`), so that a history page is read in
/// one pass, whatever was edited or reacted to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageRecord {
    /// Unique and increasing across restarts (and nodes).
    pub id: u64,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    /// The sender's display name (of a change: who made it).
    pub from: String,
    /// Of a change: the audience of its target (see [`Change`]).
    pub dest: Destination,
    /// Of an edit: the new text; of a reaction or deletion: empty.
    pub text: String,
    /// An IRC-style `/me` line.
    pub action: bool,
    /// (v3) A room event rather than a message: `from` is who acted,
    /// `dest` its room, and `text` the rest of the event as a JSON object
    /// ([`MessageRecord::note_text`]; the id, time, room and author are
    /// this record's). Delivered as `room:event`, replayed like a
    /// message, left out of `history` unless asked for.
    pub note: bool,
    /// (v3) The message this one answers.
    pub reply_to: Option<u64>,
    /// (v3) A change to another message rather than a message: delivered
    /// as `message:update`, replayed like a message, never in `history`.
    pub change: Option<Box<Change>>,
    /// (v3) What changes did to this message so far; `None` for one
    /// never changed (most of them).
    pub folded: Option<Box<Folded>>,
}

/// (v3) A change to the message `target`. As a record, it is numbered in
/// the message sequence; its `dest` is who must hear of it: the target's
/// room, the other side of a DM (`from` being who changed it), or
/// everyone (`Global`, for a global or a broadcast message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub target: u64,
    pub op: ChangeOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOp {
    /// The record's `text` replaces the target's.
    Edit,
    /// Erases the target's text; its edits lose theirs.
    Delete,
    /// The record's author adds (`on`) or takes back one reaction.
    React { emoji: String, on: bool },
}

impl ChangeOp {
    pub fn kind(&self) -> chat_shared::ChangeKind {
        match self {
            ChangeOp::Edit => chat_shared::ChangeKind::Edit,
            ChangeOp::Delete => chat_shared::ChangeKind::Delete,
            ChangeOp::React { .. } => chat_shared::ChangeKind::React,
        }
    }
}

/// (v3) A message's state after its changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Folded {
    /// When it was last edited (ms).
    pub edited: Option<u64>,
    /// Deleted: its text is gone.
    pub deleted: bool,
    /// One entry per emoji held by at least one user, in the order they
    /// were first added.
    pub reactions: Vec<ReactionRecord>,
}

/// (v3) Who holds one emoji on a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReactionRecord {
    pub emoji: String,
    /// Display names, in the order they reacted; one per user.
    pub users: Vec<String>,
}

impl MessageRecord {
    /// A plain message.
    pub fn new(id: u64, ts: u64, from: &str, dest: Destination, text: &str) -> Self {
        MessageRecord {
            id,
            ts,
            from: from.to_owned(),
            dest,
            text: text.to_owned(),
            ..Default::default()
        }
    }

    /// A message a change may target (not a room event or a change).
    pub fn is_message(&self) -> bool {
        !self.note && self.change.is_none()
    }

    pub fn deleted(&self) -> bool {
        self.folded.as_ref().is_some_and(|f| f.deleted)
    }

    pub fn edited(&self) -> Option<u64> {
        self.folded.as_ref().and_then(|f| f.edited)
    }

    pub fn reactions(&self) -> &[ReactionRecord] {
        self.folded.as_ref().map_or(&[], |f| &f.reactions)
    }

    /// The message as `change` leaves it: `None` when it changes nothing
    /// (a change of another message, an edit or reaction of a deleted
    /// one, a reaction already held or not held).
    pub fn folded_with(&self, change: &MessageRecord) -> Option<MessageRecord> {
        let c = change.change.as_deref()?;
        if c.target != self.id || !self.is_message() || self.deleted() {
            return None;
        }
        let mut next = self.clone();
        let f = next.folded.get_or_insert_with(Default::default);
        match &c.op {
            ChangeOp::Edit => {
                next.text.clone_from(&change.text);
                f.edited = Some(change.ts);
            }
            ChangeOp::Delete => {
                next.text.clear();
                f.deleted = true;
                f.edited = None;
                f.reactions.clear();
            }
            ChangeOp::React { emoji, on } => {
                let who = username_key(&change.from);
                let at = f.reactions.iter().position(|r| r.emoji == *emoji);
                let holds =
                    at.is_some_and(|i| f.reactions[i].users.iter().any(|u| username_key(u) == who));
                match (on, at) {
                    (true, _) if holds => return None,
                    (true, Some(i)) => f.reactions[i].users.push(change.from.clone()),
                    (true, None) => f.reactions.push(ReactionRecord {
                        emoji: emoji.clone(),
                        users: vec![change.from.clone()],
                    }),
                    (false, Some(i)) if holds => {
                        f.reactions[i].users.retain(|u| username_key(u) != who);
                        if f.reactions[i].users.is_empty() {
                            f.reactions.remove(i);
                        }
                    }
                    (false, _) => return None,
                }
            }
        }
        Some(next)
    }

    /// An edit of the message `target` with its text erased (the target
    /// was deleted); `None` for any other record.
    pub fn erased_edit_of(&self, target: u64) -> Option<MessageRecord> {
        let c = self.change.as_deref()?;
        (c.target == target && c.op == ChangeOp::Edit && !self.text.is_empty()).then(|| {
            let mut erased = self.clone();
            erased.text.clear();
            erased
        })
    }

    /// (v3) Applies the change `change` to its target in `messages` (in
    /// id order), if they hold it; a deletion also erases the text of the
    /// target's edits there. The memory store, the node's log and a room's
    /// recent history all keep messages this way.
    pub fn fold_into(
        messages: &mut std::collections::VecDeque<Arc<MessageRecord>>,
        change: &MessageRecord,
    ) {
        let Some(c) = change.change.as_deref() else {
            return;
        };
        let at = messages.partition_point(|m| m.id < c.target);
        if let Some(m) = messages.get_mut(at).filter(|m| m.id == c.target)
            && let Some(next) = m.folded_with(change)
        {
            *m = Arc::new(next);
        }
        if c.op == ChangeOp::Delete {
            for m in messages.range_mut(at..) {
                if let Some(erased) = m.erased_edit_of(c.target) {
                    *m = Arc::new(erased);
                }
            }
        }
    }

    /// The two sides of a DM, sorted by key: `message:update`'s `dm`.
    fn dm_pair(&self) -> Option<[&str; 2]> {
        let Destination::Dm { to } = &self.dest else {
            return None;
        };
        let (a, b) = (self.from.as_str(), to.as_str());
        Some(if username_key(a) <= username_key(b) {
            [a, b]
        } else {
            [b, a]
        })
    }

    /// What a room event keeps in `text`: its fields but the id, time,
    /// room and author, which the record holds.
    pub fn note_text(ev: &chat_shared::RoomEvent) -> String {
        let mut v = serde_json::to_value(ev).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for k in ["id", "ts", "room", "by", "replayed"] {
                o.remove(k);
            }
        }
        v.to_string()
    }

    /// The room event, when this is one (and it reads), with this
    /// record's id, time, room and author.
    pub fn room_note(&self) -> Option<chat_shared::RoomEvent> {
        if !self.note {
            return None;
        }
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.text).ok()?;
        let room = match &self.dest {
            Destination::Room(room) => room.as_str(),
            _ => "",
        };
        fields.insert("id".into(), self.id.to_string().into());
        fields.insert("ts".into(), self.ts.into());
        fields.insert("room".into(), room.into());
        fields.insert("by".into(), self.from.clone().into());
        serde_json::from_value(serde_json::Value::Object(fields)).ok()
    }

    /// The event name it is delivered under.
    pub fn event(&self) -> &'static str {
        use chat_shared::names::*;
        if self.note {
            return ROOM_EVENT;
        }
        if self.change.is_some() {
            return MESSAGE_UPDATE;
        }
        match self.dest {
            Destination::Room(_) => ROOM_MESSAGE,
            Destination::Dm { .. } => DM_MESSAGE,
            Destination::Global => GLOBAL_MESSAGE,
            Destination::Broadcast => BROADCAST_MESSAGE,
        }
    }

    pub fn kind(&self) -> MessageKind {
        match self.dest {
            Destination::Room(_) => MessageKind::Room,
            Destination::Dm { .. } => MessageKind::Dm,
            Destination::Global => MessageKind::Global,
            Destination::Broadcast => MessageKind::Broadcast,
        }
    }

    /// Whether the user `user_key`, in `rooms` (room → id of the last
    /// message when they joined), should get this message in a replay of
    /// what came after `after`. A DM counts only for its recipient: the
    /// sender had its own ack. A broadcast never goes back to its sender.
    /// (v3) A change of a DM counts for both sides: the other one, and
    /// the author's other sessions.
    pub fn is_for(&self, user_key: &str, rooms: &BTreeMap<String, u64>, after: u64) -> bool {
        if self.id <= after {
            return false;
        }
        match &self.dest {
            Destination::Room(room) => rooms.get(room).is_some_and(|&joined| joined < self.id),
            Destination::Dm { to } if self.change.is_some() => {
                username_key(to) == user_key || username_key(&self.from) == user_key
            }
            Destination::Dm { to } => username_key(to) == user_key,
            Destination::Global => true,
            Destination::Broadcast => username_key(&self.from) != user_key,
        }
    }

    fn serialize_as<S: Serializer>(&self, s: S, replayed: bool) -> Result<S::Ok, S::Error> {
        if self.note {
            return self.serialize_note(s, replayed);
        }
        if let Some(change) = &self.change {
            return self.serialize_change(change, s, replayed);
        }
        let fields = 9 + usize::from(self.action) + usize::from(replayed);
        let mut st = s.serialize_struct("Message", fields)?;
        // The contract makes ids opaque strings: a client never does
        // arithmetic on them, and JavaScript could not hold a u64 anyway.
        st.serialize_field("id", &self.id.to_string())?;
        st.serialize_field("ts", &self.ts)?;
        st.serialize_field("from", &self.from)?;
        match &self.dest {
            Destination::Room(room) => st.serialize_field("room", room)?,
            Destination::Dm { to } => st.serialize_field("to", to)?,
            Destination::Global | Destination::Broadcast => {}
        }
        // (v3) A deleted message has no text; every v3 field is left
        // out while unused, so a message nobody changed keeps its v2 shape.
        if !self.deleted() {
            st.serialize_field("text", &self.text)?;
        }
        // Absent means false: a v1 client never sees the field unless
        // someone sends an action.
        if self.action {
            st.serialize_field("action", &true)?;
        }
        if let Some(r) = self.reply_to {
            st.serialize_field("replyTo", &r.to_string())?;
        }
        if let Some(f) = &self.folded {
            if let Some(e) = f.edited {
                st.serialize_field("edited", &e)?;
            }
            if f.deleted {
                st.serialize_field("deleted", &true)?;
            }
            if !f.reactions.is_empty() {
                st.serialize_field("reactions", &WireReactions(&f.reactions))?;
            }
        }
        if replayed {
            st.serialize_field("replayed", &true)?;
        }
        st.end()
    }

    /// A change's wire payload, `message:update`: `{id, ts, target, kind,
    /// by, room?, dm?, text?, emoji?, on?}`.
    fn serialize_change<S: Serializer>(
        &self,
        c: &Change,
        s: S,
        replayed: bool,
    ) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("MessageUpdate", 9)?;
        st.serialize_field("id", &self.id.to_string())?;
        st.serialize_field("ts", &self.ts)?;
        st.serialize_field("target", &c.target.to_string())?;
        st.serialize_field("kind", &c.op.kind())?;
        st.serialize_field("by", &self.from)?;
        if let Destination::Room(room) = &self.dest {
            st.serialize_field("room", room)?;
        }
        if let Some(pair) = self.dm_pair() {
            st.serialize_field("dm", &pair)?;
        }
        match &c.op {
            ChangeOp::Edit => st.serialize_field("text", &self.text)?,
            ChangeOp::Delete => {}
            ChangeOp::React { emoji, on } => {
                st.serialize_field("emoji", emoji)?;
                st.serialize_field("on", on)?;
            }
        }
        if replayed {
            st.serialize_field("replayed", &true)?;
        }
        st.end()
    }
}

/// A message's reactions as the wire has them: `[{emoji, count, users}]`,
/// at most [`REACTION_USERS_MAX`](chat_shared::REACTION_USERS_MAX) names
/// each.
struct WireReactions<'a>(&'a [ReactionRecord]);

impl serde::Serialize for WireReactions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in self.0 {
            let users = &r.users[..r.users.len().min(chat_shared::REACTION_USERS_MAX)];
            seq.serialize_element(&chat_shared::Reaction {
                emoji: r.emoji.clone(),
                count: r.users.len() as u64,
                users: users.to_vec(),
            })?;
        }
        seq.end()
    }
}

impl MessageRecord {
    /// A room event's wire payload: `{id, ts, room, kind, by, user,
    /// reason, until, …}`.
    fn serialize_note<S: Serializer>(&self, s: S, replayed: bool) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut ev = self
            .room_note()
            .ok_or_else(|| S::Error::custom("a stored room event that does not read"))?;
        ev.replayed = replayed.then_some(true);
        serde::Serialize::serialize(&ev, s)
    }
}

/// A message serialises as its wire payload: `{id, ts, from, room, text}`,
/// `{id, ts, from, to, text}` or `{id, ts, from, text}`, plus
/// `action: true` for an action.
impl serde::Serialize for MessageRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_as(s, false)
    }
}

/// A message as sent in a replay: the payload plus `replayed: true`,
/// without copying the message.
#[derive(Debug, Clone, Copy)]
pub struct Replayed<'a>(pub &'a MessageRecord);

impl serde::Serialize for Replayed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_as(s, true)
    }
}

/// A session as stored: it survives restarts, so a client can resume it
/// after the server came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The opaque token the client presents to resume.
    pub token: String,
    /// Display name.
    pub username: String,
    /// The last message id when the session began: nothing older is
    /// replayed.
    pub since: u64,
    /// Room → the last message id when it was joined: a replay of the room
    /// starts after it.
    pub rooms: BTreeMap<String, u64>,
    /// Wall-clock ms when the recovery window ends; `None` while a socket
    /// holds the session. Wall clock, not a monotonic instant, because the
    /// window keeps running while the server is down.
    pub window_ends_at: Option<u64>,
    /// The session belongs to an account (it logged in or registered).
    pub account: bool,
    /// (v3) What `session:list` shows of it.
    pub meta: SessionMeta,
}

/// (v3) What `session:list` shows of a session, kept with it so that any
/// node can list an account's sessions. No socket id: `id` is a public
/// handle, made for the session and never its token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMeta {
    pub id: String,
    /// The handshake's `client` label.
    pub client: Option<String>,
    /// The client's address when the session began.
    pub address: Option<String>,
    /// Wall-clock ms when the session began.
    pub connected_at: u64,
    /// (v3) The id of the API token that opened it (`auth.token`), so
    /// that revoking the token ends it.
    pub token_id: Option<String>,
}

/// (v3) An API token of an account. Holds no secret: only the SHA-256 of
/// the token (a token is 192 random bits, so a fast hash is enough: no
/// dictionary can reach it), by which a request's token is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// A public handle (`DELETE /api/v1/tokens/{id}`), never the token.
    pub id: String,
    /// The account's key.
    pub user_key: String,
    /// Hex SHA-256 of the token.
    pub hash: String,
    pub label: String,
    /// Wall-clock ms.
    pub created_ms: u64,
    /// Wall-clock ms of the last use written (see [`Store::token_used`]).
    pub last_used_ms: Option<u64>,
}

/// (v3) Where a read marker sits, as the store keys it: a room by its
/// canonical name (`#ops`), a DM conversation by the other user's
/// [`username_key`] (`@bob`).
pub fn marker_key(at: &MarkerAt) -> String {
    match at {
        MarkerAt::Room(r) => r.clone(),
        MarkerAt::Dm(k) => format!("@{k}"),
    }
}

/// (v3) A room or a DM conversation, for read markers and unread counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MarkerAt {
    /// A room, canonical.
    Room(String),
    /// The DMs with this user (its [`username_key`]).
    Dm(String),
}

impl MarkerAt {
    /// Reads a [`marker_key`] back.
    pub fn parse(s: &str) -> Option<MarkerAt> {
        match s.strip_prefix('@') {
            Some(k) if !k.is_empty() => Some(MarkerAt::Dm(k.to_owned())),
            Some(_) => None,
            None => s.starts_with('#').then(|| MarkerAt::Room(s.to_owned())),
        }
    }
}

/// (v3) One DM conversation of a user, as [`Store::conversations`]
/// returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// The other user's key and display name.
    pub peer_key: String,
    pub peer: String,
    /// The newest DM between the two, either way.
    pub last_id: u64,
}

/// An account: a username only its owner may use. Holds no password, only
/// its salted slow hash, and nothing node-local.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Display name (the key is its [`username_key`]).
    pub username: String,
    /// The password's hash as a PHC string (`$argon2id$…`).
    pub hash: String,
    /// The rooms the account is in, remembered across sessions.
    pub rooms: Vec<String>,
    /// DMs to the account with a larger id reached no socket of it: they
    /// are delivered at its next connect.
    pub seen: u64,
    /// Wall-clock ms of the registration.
    pub created_ms: u64,
}

impl AccountRecord {
    /// A new account of `username` with the password hash `hash`: in no
    /// room yet, nothing seen, created now.
    pub fn new(username: &str, hash: String) -> Self {
        AccountRecord {
            username: username.to_owned(),
            hash,
            rooms: Vec::new(),
            seen: 0,
            created_ms: now_ms(),
        }
    }
}

/// Never shows the hash: a log line must not help an offline guess.
impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("username", &self.username)
            .field("hash", &"<redacted>")
            .field("rooms", &self.rooms)
            .field("seen", &self.seen)
            .field("created_ms", &self.created_ms)
            .finish()
    }
}

/// One field of an account, changed on its own so that a change from the
/// server (rooms, seen) and one from `chat-server account` (the password)
/// never overwrite each other.
#[derive(Clone, PartialEq, Eq)]
pub enum AccountChange {
    Password(String),
    Rooms(Vec<String>),
    /// Raises `seen` (never lowers it).
    Seen(u64),
}

impl std::fmt::Debug for AccountChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountChange::Password(_) => f.write_str("Password(<redacted>)"),
            AccountChange::Rooms(r) => f.debug_tuple("Rooms").field(r).finish(),
            AccountChange::Seen(s) => f.debug_tuple("Seen").field(s).finish(),
        }
    }
}

/// What [`Store::startup`] hands the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Startup {
    /// The largest id that may have been handed out: the first id to use is
    /// `head + 1`.
    pub head: u64,
    /// Sessions whose window has not ended, and those that were live when
    /// the previous process ended (`window_ends_at: None`): the caller
    /// gives those a window from `last_alive_ms`.
    pub sessions: Vec<SessionRecord>,
    /// The highest id ever deleted (retention or capacity): a replay or
    /// history that reaches down to it is `truncated`.
    pub pruned_upto: u64,
    /// The previous process's last sign of life (wall-clock ms), if known:
    /// when its live sessions lost their sockets at the latest.
    pub last_alive_ms: Option<u64>,
}

/// (v3) One moderation setting: `(scope, field, value)`.
pub type Setting = (String, String, String);

/// A page of history: the messages, oldest first, and whether older ones
/// exist.
pub type Page = (Vec<Arc<MessageRecord>>, bool);

/// Why the store could not do something. Never a panic: a full disk or a
/// broken file is something the server reports and survives.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A write or read failed at run time (disk full, I/O error, the
    /// writer stopped). Clients get `unavailable` and may retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store could not be opened; `reason` says what to do about it.
    #[error("cannot open the store at {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// An account with that name exists already (`create_account`).
    #[error("an account named {0} exists")]
    AccountExists(String),
    /// The database was written by a newer chat-server.
    #[error(
        "the store at {} has schema version {found}, newer than version {supported} \
         that this chat-server understands: run a newer chat-server, or restore a backup",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
}

type CommitResult = Result<(), StoreError>;

/// Resolves once a queued write is durable, or with the reason it is not.
/// The write itself is already queued (in call order) when you hold this:
/// await it after releasing any lock the write was enqueued under, or hand
/// it what to do then with [`then`](Self::then).
#[must_use = "a write is only known to be durable once its Committed resolves"]
#[derive(Debug)]
pub struct Committed(CommittedState);

#[derive(Debug)]
enum CommittedState {
    Ready(Option<CommitResult>),
    Waiting(Arc<std::sync::Mutex<Slot>>),
}

/// Where a pending commit's outcome meets whoever waits for it.
enum Slot {
    /// Not resolved yet; the waker of the task that polled it, if any.
    Waiting(Option<std::task::Waker>),
    /// Not resolved yet; what to run with the outcome.
    Then(Box<dyn FnOnce(CommitResult) + Send>),
    /// Resolved, not yet taken.
    Done(CommitResult),
    /// Taken (or handed to the callback).
    Taken,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Slot::Waiting(_) => "Waiting",
            Slot::Then(_) => "Then",
            Slot::Done(_) => "Done",
            Slot::Taken => "Taken",
        })
    }
}

fn lock(slot: &std::sync::Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer's side of a [`Committed`]. Dropped unresolved (the writer
/// went away with the write), it resolves as unavailable.
#[derive(Debug)]
pub(crate) struct Resolver(Option<Arc<std::sync::Mutex<Slot>>>);

impl Resolver {
    /// Hands the outcome over: wakes the task awaiting it, or runs its
    /// callback here, on the caller's thread.
    pub(crate) fn resolve(mut self, result: CommitResult) {
        if let Some(slot) = self.0.take() {
            settle(&slot, result);
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            settle(
                &slot,
                Err(StoreError::Unavailable(
                    "the store stopped before the write was committed".into(),
                )),
            );
        }
    }
}

fn settle(slot: &std::sync::Mutex<Slot>, result: CommitResult) {
    let mut guard = lock(slot);
    match std::mem::replace(&mut *guard, Slot::Taken) {
        Slot::Waiting(waker) => {
            *guard = Slot::Done(result);
            drop(guard);
            if let Some(w) = waker {
                w.wake();
            }
        }
        Slot::Then(f) => {
            drop(guard);
            f(result);
        }
        // Resolved once already: keep the first outcome.
        done @ (Slot::Done(_) | Slot::Taken) => *guard = done,
    }
}

impl Committed {
    /// Already resolved (a store that writes synchronously, or a refusal).
    pub fn ready(result: CommitResult) -> Self {
        Committed(CommittedState::Ready(Some(result)))
    }

    /// A pending commit and the resolver that settles it.
    pub(crate) fn pending() -> (Resolver, Self) {
        let slot = Arc::new(std::sync::Mutex::new(Slot::Waiting(None)));
        (
            Resolver(Some(Arc::clone(&slot))),
            Committed(CommittedState::Waiting(slot)),
        )
    }

    /// Runs `f` once the write has committed, before the outcome goes on to
    /// whoever holds the returned [`Committed`]; `f` never runs for a write
    /// that failed. Call it where the order of writes is held: the
    /// callbacks run in the store's commit order, which is the queue's.
    /// `f` must not block.
    pub fn on_success(self, f: impl FnOnce() + Send + 'static) -> Committed {
        if let CommittedState::Ready(result) = self.0 {
            let result =
                result.unwrap_or_else(|| Err(StoreError::Unavailable("commit taken twice".into())));
            if result.is_ok() {
                f();
            }
            return Committed::ready(result);
        }
        let (next, after) = Committed::pending();
        self.then(move |result| {
            if result.is_ok() {
                f();
            }
            next.resolve(result);
        });
        after
    }

    /// Runs `f` with the outcome instead of awaiting it: at once if it is
    /// known, otherwise on the thread that resolves it (for the SQLite
    /// store, a task of the runtime that relays the writer's commits). So
    /// no task has to wake up just to pass the outcome on. `f` must not
    /// block.
    pub fn then(self, f: impl FnOnce(CommitResult) + Send + 'static) {
        match self.0 {
            CommittedState::Ready(mut result) => f(result
                .take()
                .unwrap_or_else(|| Err(StoreError::Unavailable("commit taken twice".into())))),
            CommittedState::Waiting(slot) => {
                let mut guard = lock(&slot);
                match std::mem::replace(&mut *guard, Slot::Taken) {
                    Slot::Done(result) => {
                        drop(guard);
                        f(result);
                    }
                    Slot::Waiting(_) => *guard = Slot::Then(Box::new(f)),
                    Slot::Then(_) | Slot::Taken => {
                        drop(guard);
                        f(Err(StoreError::Unavailable("commit taken twice".into())));
                    }
                }
            }
        }
    }
}

impl Future for Committed {
    type Output = CommitResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CommitResult> {
        match &mut self.0 {
            CommittedState::Ready(result) => Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err(StoreError::Unavailable("commit polled twice".into()))),
            ),
            CommittedState::Waiting(slot) => {
                let mut guard = lock(slot);
                match std::mem::replace(&mut *guard, Slot::Taken) {
                    Slot::Done(result) => Poll::Ready(result),
                    Slot::Waiting(_) => {
                        *guard = Slot::Waiting(Some(cx.waker().clone()));
                        Poll::Pending
                    }
                    Slot::Then(_) | Slot::Taken => {
                        Poll::Ready(Err(StoreError::Unavailable("commit polled twice".into())))
                    }
                }
            }
        }
    }
}

/// The seam. `Arc<dyn Store>` is what the server holds.
///
/// Writes (`append`, `put_session`, `delete_session`) go into one queue in
/// call order and return a [`Committed`] at once; they wait only when the
/// queue is full. Reads see committed writes only.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Called once when the server starts: the id head, the sessions to
    /// restore, what retention removed, and when the previous process was
    /// last alive. After a crash the head is pushed [`ID_GAP_AFTER_CRASH`]
    /// past the last committed id (and stored at once); after a clean
    /// [`close`](Store::close) it is exact. Also clears the clean-shutdown
    /// marker, so that the next crash is noticed.
    async fn startup(&self) -> Result<Startup, StoreError>;

    /// Queues a message. The caller assigned its id and enqueues in id
    /// order. (v3) A change is applied to its target in the same write
    /// ([`MessageRecord::folded_with`]); a deletion also erases the
    /// text of the target's earlier edits, from wherever the backend keeps
    /// it (see each backend).
    async fn append(&self, msg: Arc<MessageRecord>) -> Result<Committed, StoreError>;

    /// Queues an upsert of the whole session, rooms included.
    async fn put_session(&self, session: &SessionRecord) -> Result<Committed, StoreError>;

    /// Queues the removal of a session (no error if there is none).
    async fn delete_session(&self, token: &str) -> Result<Committed, StoreError>;

    /// The committed messages with `after < id <= upto` that
    /// [`MessageRecord::is_for`] the user, oldest first; the newest `limit`
    /// of them if there are more. The caller merges its in-flight tail.
    /// (v3) Of DMs, those to the user: its own changes of DMs (which
    /// `is_for` also names) come from the node's log only.
    async fn replay(
        &self,
        user_key: &str,
        rooms: &BTreeMap<String, u64>,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError>;

    /// (v3) The message `id` as its changes left it (a room event or a
    /// change, too), if the store holds it.
    async fn message(&self, id: u64) -> Result<Option<Arc<MessageRecord>>, StoreError>;

    /// The newest `limit` messages of `room` older than the id `before`
    /// (the newest of all when `None`), oldest first, and whether older
    /// ones exist. Room events and changes are left out; each message
    /// comes as its changes left it.
    async fn room_history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.room_entries(room, before, limit, false).await
    }

    /// [`room_history`](Store::room_history), with (v3) the room's events
    /// among the messages when `events` is true.
    async fn room_entries(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        events: bool,
    ) -> Result<Page, StoreError>;

    /// The newest `limit` DMs between the users `a_key` and `b_key`, either
    /// way, with `after < id < before` (`after` 0: no lower bound; `before`
    /// `None`: no upper bound), oldest first, and whether older ones (still
    /// above `after`) exist.
    async fn dm_history(
        &self,
        a_key: &str,
        b_key: &str,
        before: Option<u64>,
        after: u64,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// The DMs to `user_key` with `after < id <= upto`, oldest first; the
    /// newest `limit` of them if there are more (an account's queued DMs).
    async fn queued_dms(
        &self,
        user_key: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError>;

    /// The account of `key` (a [`username_key`]), read from what is
    /// committed: an account added by `chat-server account` while the
    /// server runs is seen at once.
    async fn account(&self, key: &str) -> Result<Option<AccountRecord>, StoreError>;

    /// Every account, by key.
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;

    /// Queues the creation of an account; its [`Committed`] resolves with
    /// [`StoreError::AccountExists`] if the name has one already (checked
    /// in the same transaction, so two registrations cannot both win).
    async fn create_account(&self, account: &AccountRecord) -> Result<Committed, StoreError>;

    /// Queues a change to one field of an account (nothing if it has none).
    async fn update_account(
        &self,
        key: &str,
        change: AccountChange,
    ) -> Result<Committed, StoreError>;

    /// Queues the removal of an account (nothing if it has none). Its
    /// messages stay.
    async fn delete_account(&self, key: &str) -> Result<Committed, StoreError>;

    /// (v3) Queues a change to one moderation setting: `value` `None`
    /// removes it. Settings are small records kept by `scope` (`roles`,
    /// `room:#ops`, `server`, `blocks:alice`) and `field`; each write
    /// raises [`settings_version`](Store::settings_version), so a node
    /// notices a change made elsewhere (another node, or `chat-server
    /// account role` on the data directory) by reading one number.
    async fn put_setting(
        &self,
        scope: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<Committed, StoreError>;

    /// (v3) Every setting, as `(scope, field, value)`.
    async fn settings(&self) -> Result<Vec<Setting>, StoreError>;

    /// (v3) A number that changes whenever a setting does.
    async fn settings_version(&self) -> Result<u64, StoreError>;

    /// (v3) Every session of the account or guest `key`, live or inside
    /// its window, on any node.
    async fn user_sessions(&self, key: &str) -> Result<Vec<SessionRecord>, StoreError>;

    /// (v3) `key`'s read markers: conversation → the id of the last
    /// message read there.
    async fn markers(&self, key: &str) -> Result<BTreeMap<MarkerAt, u64>, StoreError>;

    /// (v3) Moves `key`'s marker at `at` forward to `id` (never back),
    /// committed before it returns; the marker as it stands after.
    async fn put_marker(&self, key: &str, at: &MarkerAt, id: u64) -> Result<u64, StoreError>;

    /// (v3) The DM conversations of `key` with a DM (either way) newer than
    /// the id `after`, newest first, at most `limit`.
    async fn conversations(
        &self,
        key: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    /// (v3) For each `(conversation, after)`, how many messages others
    /// sent there with an id above `after` (room events not counted),
    /// each count stopping at `cap`; in the order asked.
    async fn unread(
        &self,
        key: &str,
        asked: &[(MarkerAt, u64)],
        cap: u64,
    ) -> Result<Vec<u64>, StoreError>;

    /// (v3) Stores a new API token.
    async fn put_token(&self, token: &TokenRecord) -> Result<Committed, StoreError>;

    /// (v3) The token whose hash is `hash`.
    async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// (v3) The account `key`'s tokens, oldest first.
    async fn tokens(&self, key: &str) -> Result<Vec<TokenRecord>, StoreError>;

    /// (v3) Revokes the account `key`'s token `id` (nothing if it has none).
    async fn delete_token(&self, key: &str, id: &str) -> Result<Committed, StoreError>;

    /// (v3) Records a use of the token `hash` at `at_ms` (never moving the
    /// time back). The server calls it at most once a minute a token.
    async fn token_used(&self, hash: &str, at_ms: u64) -> Result<Committed, StoreError>;

    /// Deletes the messages with `ts < older_than_ts` (retention) and
    /// returns `pruned_upto`, the highest id ever deleted.
    async fn prune(&self, older_than_ts: u64) -> Result<u64, StoreError>;

    /// False after a write failed, true again once one succeeds.
    fn healthy(&self) -> bool;

    /// The Redis store, when this is one: several nodes share it, it
    /// numbers messages itself ([`RedisStore::append_new`]) and every node
    /// delivers them from its feed. Memory and SQLite: `None`.
    fn as_redis(&self) -> Option<RedisStore> {
        None
    }

    /// Flushes every queued write, records the exact head and the
    /// clean-shutdown marker, and stops. Writes after this fail.
    async fn close(&self);
}
