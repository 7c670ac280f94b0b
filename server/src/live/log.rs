//! The messages this process numbered, newest last (older ones are read
//! from the store), the head they are measured against, and what a
//! resumed session missed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chat_shared::username_key;

use super::order::{Delivering, Numbering};
use super::sessions::User;
use super::{ChatState, Inner};
use crate::clock::now_ms;
use crate::store::{Destination, MessageRecord};

/// The log's part of the state.
#[derive(Debug, Default)]
pub(super) struct Log {
    /// The messages numbered by this process, newest last (older ones
    /// are read from the store).
    messages: VecDeque<Arc<MessageRecord>>,
    /// The id of the last message recorded (committed and delivered):
    /// replays, offsets and room joins are measured against it.
    pub(super) head: u64,
    /// The last id [numbered](ChatState::number); above `head` while
    /// writes are waiting for their commit.
    issued: u64,
}

impl Log {
    /// The oldest id the log holds (past the head when it holds none).
    fn first(&self) -> u64 {
        self.messages
            .front()
            .map_or(self.head.saturating_add(1), |m| m.id)
    }

    /// The position of the first message newer than `id`.
    fn after(&self, id: u64) -> usize {
        self.messages.partition_point(|m| m.id <= id)
    }

    /// (v3) Applies `change` to the message it targets, if the log holds
    /// it (see [`MessageRecord::fold_into`]).
    fn fold(&mut self, change: &MessageRecord) {
        MessageRecord::fold_into(&mut self.messages, change);
    }

    /// (v3) The message `id` as the log holds it now, if it does.
    pub(super) fn get(&self, id: u64) -> Option<Arc<MessageRecord>> {
        let at = self.messages.partition_point(|m| m.id < id);
        self.messages.get(at).filter(|m| m.id == id).cloned()
    }

    /// Takes up the head the store kept.
    pub(super) fn start_at(&mut self, head: u64) {
        self.head = self.head.max(head);
        self.issued = self.issued.max(head);
    }
}

/// Missed messages for a resumed session: those numbered by this process
/// (`messages`) and, before them, a range to read from the store.
#[derive(Debug, Default)]
pub struct Replay {
    pub messages: Vec<Arc<MessageRecord>>,
    /// Retention removed some of them.
    pub truncated: bool,
    /// The log head the list goes up to.
    pub upto: u64,
    /// `(after, upto)`: the ids older than this process's log that the
    /// store holds, to be read and sent first.
    pub stored: Option<(u64, u64)>,
    /// The user's rooms with their join ids, to filter what the store holds.
    pub rooms: BTreeMap<String, u64>,
}

impl ChatState {
    /// (v3) The last id handed out: an id above it was never issued.
    pub fn issued(&self) -> u64 {
        let inner = self.lock();
        inner.log.issued.max(inner.log.head)
    }

    pub fn set_pruned_upto(&self, id: u64) {
        self.pruned_upto.fetch_max(id, Ordering::Relaxed);
    }

    /// Gives a message its id, without keeping it: it is kept (and
    /// delivered) by [`record_numbered`](Self::record_numbered) once its
    /// write has committed. The numbering order is the store's write
    /// order.
    pub fn number(&self, _: &Numbering<'_>, mut draft: MessageRecord) -> Arc<MessageRecord> {
        let mut inner = self.lock();
        inner.log.issued = inner.log.issued.max(inner.log.head) + 1;
        draft.id = inner.log.issued;
        draft.ts = now_ms();
        Arc::new(draft)
    }

    /// Numbers a message and keeps it at once, for tests of the log.
    #[cfg(test)]
    pub fn record(
        &self,
        from: &str,
        text: &str,
        dest: Destination,
        action: bool,
    ) -> Arc<MessageRecord> {
        let order = super::DeliveryOrder::default();
        let draft = MessageRecord {
            action,
            ..MessageRecord::new(0, 0, from, dest, text)
        };
        let msg = self.number(&order.number_now(), draft);
        self.record_numbered(&order.hold(), &msg);
        msg
    }

    /// Keeps a committed message for replay and room history, in id
    /// order: one this node [numbered](Self::number), or (several nodes)
    /// one that came from the cluster's feed. From here on it counts as
    /// delivered: emit it under the same guard.
    pub fn record_numbered(&self, _: &Delivering<'_>, msg: &Arc<MessageRecord>) {
        let mut inner = self.lock();
        inner.log.head = inner.log.head.max(msg.id);
        inner.log.issued = inner.log.issued.max(msg.id);
        if msg.change.is_some() {
            // (v3) A change: what this process keeps of its target (the
            // log, the room's recent history) now shows it.
            inner.log.fold(msg);
            inner.rooms.fold(msg);
        } else {
            inner.rooms.keep(msg, self.config.history);
        }
        if self.config.replay_buffer > 0 {
            if inner.log.messages.len() >= self.config.replay_buffer {
                inner.log.messages.pop_front();
            }
            inner.log.messages.push_back(Arc::clone(msg));
        }
    }

    /// (v3) The message `id`, if this process's log still holds it.
    pub fn logged(&self, id: u64) -> Option<Arc<MessageRecord>> {
        self.lock().log.get(id)
    }

    /// The messages `key`'s session `token` missed after the message
    /// `offset` (or, without a usable offset, since the session began), up
    /// to the current head.
    pub fn replay(&self, key: &str, token: &str, offset: Option<&str>) -> Replay {
        let inner = self.lock();
        let Some(user) = inner.sessions.users.get(key) else {
            return Replay::default();
        };
        let Some(session) = user.session(token) else {
            return Replay::default();
        };
        let since = Self::resume_point(offset, session.since, inner.log.head);
        let first = inner.log.first();
        let stored = (since.saturating_add(1) < first).then(|| (since, first - 1));
        Replay {
            messages: Self::messages_for(&inner, user, key, since),
            truncated: since < self.pruned_upto.load(Ordering::Relaxed),
            upto: inner.log.head,
            stored,
            rooms: user.rooms.clone(),
        }
    }

    /// A fresh account session's queued DMs: those to `key` after `seen`
    /// and up to the session's start (later ones reach it in its
    /// catch-up), from this process's log, and the older range to read
    /// from the store.
    pub fn queued(&self, key: &str, token: &str, seen: u64) -> Replay {
        let inner = self.lock();
        let Some(session) = inner.sessions.users.get(key).and_then(|u| u.session(token)) else {
            return Replay::default();
        };
        let upto = session.since;
        let first = inner.log.first();
        let stored =
            (seen < upto && seen.saturating_add(1) < first).then(|| (seen, (first - 1).min(upto)));
        let start = inner.log.after(seen);
        let messages = inner
            .log
            .messages
            .range(start..)
            .take_while(|m| m.id <= upto)
            .filter(|m| matches!(&m.dest, Destination::Dm { to } if username_key(to) == key))
            .map(Arc::clone)
            .collect();
        Replay {
            messages,
            truncated: seen < self.pruned_upto.load(Ordering::Relaxed),
            upto,
            stored,
            rooms: BTreeMap::new(),
        }
    }

    /// Where a replay starts: after the client's `offset` when it is an id
    /// this server could have issued to this session (a decimal number
    /// between the session's start and the head), otherwise after the
    /// session's start, as if no offset had been sent.
    pub fn resume_point(offset: Option<&str>, since: u64, head: u64) -> u64 {
        offset
            .and_then(|o| o.parse::<u64>().ok())
            .filter(|&o| o <= head)
            .map_or(since, |o| o.max(since))
    }

    /// The messages for `key` after `after`, and the head they go up to:
    /// the last of a resumed socket's catch-up, under the delivery order
    /// so that nothing is delivered meanwhile.
    pub fn catch_up(
        &self,
        _: &Delivering<'_>,
        key: &str,
        after: u64,
    ) -> (Vec<Arc<MessageRecord>>, u64) {
        let inner = self.lock();
        let Some(user) = inner.sessions.users.get(key) else {
            return (Vec::new(), inner.log.head);
        };
        (Self::messages_for(&inner, user, key, after), inner.log.head)
    }

    fn messages_for(inner: &Inner, user: &User, key: &str, after: u64) -> Vec<Arc<MessageRecord>> {
        // The log is ordered by id: skip straight to what is newer.
        let start = inner.log.after(after);
        inner
            .log
            .messages
            .range(start..)
            .filter(|m| m.is_for(key, &user.rooms, after))
            .map(Arc::clone)
            .collect()
    }
}
