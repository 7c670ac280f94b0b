//! [`MemoryStore`]: the store's semantics with nothing on disk. Writes are
//! "durable" as soon as they are applied, so every [`Committed`] is already
//! resolved. Used by `--store memory` (a throwaway server, load tests) and
//! by tests; nothing survives the process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chat_shared::username_key;

use super::{
    AccountChange, AccountRecord, Committed, ConversationRecord, Destination, MarkerAt,
    MessageRecord, Page, SessionRecord, Startup, Store, StoreError, TokenRecord, now_ms,
};

/// Messages in id order, bounded to the newest `capacity`; sessions by
/// token.
#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Ascending by id.
    messages: VecDeque<Arc<MessageRecord>>,
    sessions: HashMap<String, SessionRecord>,
    /// Accounts by username key.
    accounts: BTreeMap<String, AccountRecord>,
    /// The largest id appended, pruned or not.
    head: u64,
    /// The highest id dropped, by capacity or by retention.
    pruned_upto: u64,
    /// (v3) Moderation settings by (scope, field), and their version.
    settings: BTreeMap<(String, String), String>,
    settings_version: u64,
    /// (v3) Read markers by user key.
    markers: HashMap<String, BTreeMap<MarkerAt, u64>>,
    /// (v3) User key → the other user's key → its name and the newest DM
    /// between them, kept as DMs are appended, so that listing a user's
    /// conversations at connect does not read the whole log. A pair whose
    /// newest DM is gone (id at most `pruned_upto`) is left out.
    conversations: HashMap<String, HashMap<String, (String, u64)>>,
    /// (v3) API tokens by hash.
    tokens: HashMap<String, TokenRecord>,
}

impl MemoryStore {
    /// Keeps the newest `capacity` messages; older ones count as pruned
    /// (0 keeps none: every message is pruned as it arrives).
    pub fn new(capacity: usize) -> Self {
        MemoryStore {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The lock is only held for plain data updates, none of which can
    /// leave the data half-changed: a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The newest `limit` of `matching` (given newest first), oldest first, and
/// whether more matched.
fn newest_first_page<'a>(
    matching: impl Iterator<Item = &'a Arc<MessageRecord>>,
    limit: usize,
) -> Page {
    let mut page: Vec<_> = Vec::with_capacity(limit.min(256));
    let mut more = false;
    for m in matching {
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(Arc::clone(m));
    }
    page.reverse();
    (page, more)
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn startup(&self) -> Result<Startup, StoreError> {
        let now = now_ms();
        let mut inner = self.lock();
        inner
            .sessions
            .retain(|_, s| s.window_ends_at.is_none_or(|end| end > now));
        let mut sessions: Vec<_> = inner.sessions.values().cloned().collect();
        sessions.sort_by(|a, b| a.token.cmp(&b.token));
        Ok(Startup {
            head: inner.head,
            sessions,
            pruned_upto: inner.pruned_upto,
            // No previous process: nothing was alive before this one.
            last_alive_ms: None,
        })
    }

    async fn append(&self, msg: Arc<MessageRecord>) -> Result<Committed, StoreError> {
        let mut inner = self.lock();
        inner.head = inner.head.max(msg.id);
        // Callers append in id order; an out-of-order id still lands in
        // its place, so that every read can rely on the order.
        // The usual case, the newest id, skips the binary search (whose
        // every step reads another message: 4-5 % of the server's CPU at
        // 50 000 DMs/s).
        if msg.change.is_some() {
            // (v3) The target as the change leaves it.
            MessageRecord::fold_into(&mut inner.messages, &msg);
        } else if let Destination::Dm { to } = &msg.dest {
            let (from_key, to_key) = (username_key(&msg.from), username_key(to));
            for (me, peer, name) in [
                (from_key.clone(), &to_key, to),
                (to_key.clone(), &from_key, &msg.from),
            ] {
                // A known pair (the usual case) allocates nothing.
                let peers = inner.conversations.entry(me).or_default();
                match peers.get_mut(peer.as_str()) {
                    Some(entry) if msg.id > entry.1 => {
                        entry.1 = msg.id;
                        if entry.0 != *name {
                            entry.0.clone_from(name);
                        }
                    }
                    Some(_) => {}
                    None => {
                        peers.insert(peer.clone(), (name.clone(), msg.id));
                    }
                }
            }
        }
        if inner.messages.back().is_none_or(|last| last.id < msg.id) {
            inner.messages.push_back(msg);
        } else {
            let at = inner.messages.partition_point(|m| m.id < msg.id);
            inner.messages.insert(at, msg);
        }
        while inner.messages.len() > self.capacity {
            if let Some(old) = inner.messages.pop_front() {
                inner.pruned_upto = inner.pruned_upto.max(old.id);
            }
        }
        Ok(Committed::ready(Ok(())))
    }

    async fn put_session(&self, session: &SessionRecord) -> Result<Committed, StoreError> {
        self.lock()
            .sessions
            .insert(session.token.clone(), session.clone());
        Ok(Committed::ready(Ok(())))
    }

    async fn delete_session(&self, token: &str) -> Result<Committed, StoreError> {
        self.lock().sessions.remove(token);
        Ok(Committed::ready(Ok(())))
    }

    async fn replay(
        &self,
        user_key: &str,
        rooms: &BTreeMap<String, u64>,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
        let inner = self.lock();
        let end = inner.messages.partition_point(|m| m.id <= upto);
        let matching = inner
            .messages
            .range(..end)
            .rev()
            .take_while(|m| m.id > after)
            // DMs by recipient, as the other backends find them: a
            // user's own changes of DMs come from the node's log only.
            .filter(|m| {
                m.is_for(user_key, rooms, after)
                    && !matches!(&m.dest, Destination::Dm { to } if username_key(to) != user_key)
            });
        Ok(newest_first_page(matching, limit).0)
    }

    async fn message(&self, id: u64) -> Result<Option<Arc<MessageRecord>>, StoreError> {
        let inner = self.lock();
        let at = inner.messages.partition_point(|m| m.id < id);
        Ok(inner.messages.get(at).filter(|m| m.id == id).cloned())
    }

    async fn room_entries(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        events: bool,
    ) -> Result<Page, StoreError> {
        let inner = self.lock();
        let end = before.map_or(inner.messages.len(), |b| {
            inner.messages.partition_point(|m| m.id < b)
        });
        let matching = inner.messages.range(..end).rev().filter(|m| {
            (m.is_message() || (events && m.note))
                && matches!(&m.dest, Destination::Room(r) if r == room)
        });
        Ok(newest_first_page(matching, limit))
    }

    async fn dm_history(
        &self,
        a_key: &str,
        b_key: &str,
        before: Option<u64>,
        after: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let inner = self.lock();
        let end = before.map_or(inner.messages.len(), |b| {
            inner.messages.partition_point(|m| m.id < b)
        });
        let between = |m: &&Arc<MessageRecord>| match &m.dest {
            Destination::Dm { to } if m.is_message() => {
                let (from, to) = (username_key(&m.from), username_key(to));
                (from == a_key && to == b_key) || (from == b_key && to == a_key)
            }
            _ => false,
        };
        let matching = inner
            .messages
            .range(..end)
            .rev()
            .take_while(|m| m.id > after)
            .filter(between);
        Ok(newest_first_page(matching, limit))
    }

    async fn queued_dms(
        &self,
        user_key: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
        let inner = self.lock();
        let end = inner.messages.partition_point(|m| m.id <= upto);
        let matching = inner
            .messages
            .range(..end)
            .rev()
            .take_while(|m| m.id > after)
            .filter(|m| matches!(&m.dest, Destination::Dm { to } if username_key(to) == user_key));
        Ok(newest_first_page(matching, limit).0)
    }

    async fn account(&self, key: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.get(key).cloned())
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.values().cloned().collect())
    }

    async fn create_account(&self, account: &AccountRecord) -> Result<Committed, StoreError> {
        let key = username_key(&account.username);
        let mut inner = self.lock();
        if inner.accounts.contains_key(&key) {
            let taken = StoreError::AccountExists(account.username.clone());
            return Ok(Committed::ready(Err(taken)));
        }
        inner.accounts.insert(key, account.clone());
        Ok(Committed::ready(Ok(())))
    }

    async fn update_account(
        &self,
        key: &str,
        change: AccountChange,
    ) -> Result<Committed, StoreError> {
        if let Some(a) = self.lock().accounts.get_mut(key) {
            match change {
                AccountChange::Password(hash) => a.hash = hash,
                AccountChange::Rooms(rooms) => a.rooms = rooms,
                AccountChange::Seen(seen) => a.seen = a.seen.max(seen),
            }
        }
        Ok(Committed::ready(Ok(())))
    }

    async fn delete_account(&self, key: &str) -> Result<Committed, StoreError> {
        let mut inner = self.lock();
        inner.accounts.remove(key);
        inner.tokens.retain(|_, t| t.user_key != key);
        Ok(Committed::ready(Ok(())))
    }

    async fn put_token(&self, token: &TokenRecord) -> Result<Committed, StoreError> {
        self.lock().tokens.insert(token.hash.clone(), token.clone());
        Ok(Committed::ready(Ok(())))
    }

    async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.lock().tokens.get(hash).cloned())
    }

    async fn tokens(&self, key: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let mut found: Vec<TokenRecord> = self
            .lock()
            .tokens
            .values()
            .filter(|t| t.user_key == key)
            .cloned()
            .collect();
        found.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(found)
    }

    async fn delete_token(&self, key: &str, id: &str) -> Result<Committed, StoreError> {
        self.lock()
            .tokens
            .retain(|_, t| !(t.user_key == key && t.id == id));
        Ok(Committed::ready(Ok(())))
    }

    async fn token_used(&self, hash: &str, at_ms: u64) -> Result<Committed, StoreError> {
        if let Some(t) = self.lock().tokens.get_mut(hash) {
            t.last_used_ms = Some(t.last_used_ms.unwrap_or(0).max(at_ms));
        }
        Ok(Committed::ready(Ok(())))
    }

    async fn put_setting(
        &self,
        scope: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<Committed, StoreError> {
        let mut inner = self.lock();
        let k = (scope.to_owned(), field.to_owned());
        match value {
            Some(v) => inner.settings.insert(k, v),
            None => inner.settings.remove(&k),
        };
        inner.settings_version += 1;
        Ok(Committed::ready(Ok(())))
    }

    async fn settings(&self) -> Result<Vec<super::Setting>, StoreError> {
        Ok(self
            .lock()
            .settings
            .iter()
            .map(|((scope, field), v)| (scope.clone(), field.clone(), v.clone()))
            .collect())
    }

    async fn user_sessions(&self, key: &str) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(self
            .lock()
            .sessions
            .values()
            .filter(|s| username_key(&s.username) == key)
            .cloned()
            .collect())
    }

    async fn markers(&self, key: &str) -> Result<BTreeMap<MarkerAt, u64>, StoreError> {
        Ok(self.lock().markers.get(key).cloned().unwrap_or_default())
    }

    async fn put_marker(&self, key: &str, at: &MarkerAt, id: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let m = inner
            .markers
            .entry(key.to_owned())
            .or_default()
            .entry(at.clone())
            .or_default();
        *m = (*m).max(id);
        Ok(*m)
    }

    async fn conversations(
        &self,
        key: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let inner = self.lock();
        let floor = after.max(inner.pruned_upto);
        let mut out: Vec<ConversationRecord> = inner
            .conversations
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(_, (_, last))| *last > floor)
            .map(|(peer_key, (peer, last))| ConversationRecord {
                peer_key: peer_key.clone(),
                peer: peer.clone(),
                last_id: *last,
            })
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.last_id));
        out.truncate(limit);
        Ok(out)
    }

    async fn unread(
        &self,
        key: &str,
        asked: &[(MarkerAt, u64)],
        cap: u64,
    ) -> Result<Vec<u64>, StoreError> {
        // One pass over what is newer than the oldest marker asked, each
        // message counted for the conversation it belongs to (a connect
        // asks for hundreds at once).
        let inner = self.lock();
        let mut index: HashMap<&MarkerAt, Vec<usize>> = HashMap::new();
        for (i, (at, _)) in asked.iter().enumerate() {
            index.entry(at).or_default().push(i);
        }
        let mut counts = vec![0u64; asked.len()];
        let oldest = asked
            .iter()
            .map(|(_, after)| *after)
            .min()
            .unwrap_or(u64::MAX);
        let start = inner.messages.partition_point(|m| m.id <= oldest);
        for m in inner.messages.range(start..) {
            if !m.is_message() {
                continue;
            }
            let from = username_key(&m.from);
            if from == key {
                continue;
            }
            let at = match &m.dest {
                Destination::Room(room) => MarkerAt::Room(room.clone()),
                Destination::Dm { to } if username_key(to) == key => MarkerAt::Dm(from),
                _ => continue,
            };
            for &i in index.get(&at).into_iter().flatten() {
                if m.id > asked[i].1 && counts[i] < cap {
                    counts[i] += 1;
                }
            }
        }
        Ok(counts)
    }

    async fn settings_version(&self) -> Result<u64, StoreError> {
        Ok(self.lock().settings_version)
    }

    async fn prune(&self, older_than_ts: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut pruned = inner.pruned_upto;
        inner.messages.retain(|m| {
            let keep = m.ts >= older_than_ts;
            if !keep {
                pruned = pruned.max(m.id);
            }
            keep
        });
        inner.pruned_upto = pruned;
        // Pairs whose newest DM went: nothing of them is left.
        for peers in inner.conversations.values_mut() {
            peers.retain(|_, (_, last)| *last > pruned);
        }
        inner.conversations.retain(|_, peers| !peers.is_empty());
        Ok(pruned)
    }

    fn healthy(&self) -> bool {
        true
    }

    async fn close(&self) {}
}
