//! This node's share of presence, written to Redis as it changes, so that
//! what one node has acknowledged (a connect, a join, a leave, a
//! disconnect) is what every node answers from the next request on.
//!
//! Each change here asks for a write ([`Cluster::sync_presence`]) and
//! waits until a write that includes it is done; one writer task takes
//! every ask pending at once and writes the node's snapshot once, so a
//! storm of changes costs one round trip per batch, not one per change
//! (group commit, as the SQLite writer does for messages). It writes:
//! - `chat:node:<id>`: the node's users and room members (JSON), expiring
//!   [`NODE_TTL_BEATS`] heartbeats on (the heartbeat asks for a write
//!   each beat, which pushes it back): a dead node's users stop counting
//!   within that;
//! - `chat:node-users:<id>`: the keys of the users live here, as a set
//!   with the same expiry, changed by what was added and removed since the
//!   last write: how a DM's sender asks, in one step, whether its
//!   recipient has a live socket on the node that holds its name.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chat_shared::username_key;

use super::{Cluster, DELIVERY_WAIT, NODE_TTL_BEATS, unavailable};
use crate::live::ChatState;
use crate::store::StoreError;
use crate::store::redis::HEARTBEAT_INTERVAL;

/// What the writer and those who wait for it share.
#[derive(Debug)]
pub(super) struct PresenceSync {
    /// The last change asked for.
    asked: AtomicU64,
    kick: tokio::sync::Notify,
    /// The last change written.
    written: tokio::sync::watch::Sender<u64>,
}

impl Default for PresenceSync {
    fn default() -> Self {
        PresenceSync {
            asked: AtomicU64::new(0),
            kick: tokio::sync::Notify::new(),
            written: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// The key of a node's set of live users.
pub fn node_users_key(node: &str) -> String {
    format!("chat:node-users:{node}")
}

impl Cluster {
    /// Writes this node's presence as it is now (after a change made
    /// here) and waits until it is in Redis, at most [`DELIVERY_WAIT`]:
    /// a Redis that does not answer delays the change, never blocks it.
    pub async fn sync_presence(&self) {
        let mine = self.presence_sync.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.presence_sync.kick.notify_one();
        let mut rx = self.presence_sync.written.subscribe();
        let _ = tokio::time::timeout(DELIVERY_WAIT, rx.wait_for(|&w| w >= mine)).await;
    }

    /// Asks for a write without waiting for it (the heartbeat).
    pub fn refresh_presence(&self) {
        self.presence_sync.asked.fetch_add(1, Ordering::SeqCst);
        self.presence_sync.kick.notify_one();
    }

    /// The writer: until the store closes, writes `state`'s presence
    /// whenever a write is asked for.
    pub async fn write_presence(self: Arc<Self>, state: Arc<ChatState>) {
        let mut last: Option<BTreeSet<String>> = None;
        loop {
            self.presence_sync.kick.notified().await;
            if self.redis.is_closed() {
                return;
            }
            // Read the ask before the state: a change made before its ask
            // is in the snapshot taken after it.
            let upto = self.presence_sync.asked.load(Ordering::SeqCst);
            let snapshot = state.node_presence();
            let keys: BTreeSet<String> = snapshot.users.iter().map(|u| username_key(u)).collect();
            match self.put_presence(&snapshot, last.as_ref(), &keys).await {
                Ok(()) => last = Some(keys),
                Err(e) => {
                    // Written whole next time.
                    last = None;
                    tracing::debug!("cluster presence: {e}");
                }
            }
            // Waiters go on either way (see `sync_presence`).
            self.presence_sync.written.send_if_modified(|w| {
                let newer = upto > *w;
                *w = (*w).max(upto);
                newer
            });
        }
    }

    async fn put_presence(
        &self,
        snapshot: &crate::live::NodePresence,
        last: Option<&BTreeSet<String>>,
        keys: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let ttl = (HEARTBEAT_INTERVAL * NODE_TTL_BEATS).as_millis() as u64;
        let body = serde_json::to_string(snapshot).unwrap_or_default();
        let users = node_users_key(self.node());
        let mut pipe = redis::pipe();
        pipe.atomic()
            .pset_ex(format!("chat:node:{}", self.node()), body, ttl)
            .ignore()
            .sadd("chat:nodes", self.node())
            .ignore();
        match last {
            Some(last) => {
                let gone: Vec<&String> = last.difference(keys).collect();
                let new: Vec<&String> = keys.difference(last).collect();
                if !gone.is_empty() {
                    pipe.srem(&users, gone).ignore();
                }
                if !new.is_empty() {
                    pipe.sadd(&users, new).ignore();
                }
            }
            None => {
                pipe.del(&users).ignore();
                if !keys.is_empty() {
                    pipe.sadd(&users, keys.iter().collect::<Vec<_>>()).ignore();
                }
            }
        }
        pipe.pexpire(&users, ttl as i64).ignore();
        pipe.query_async::<()>(&mut con).await.map_err(unavailable)
    }

    /// The user `key` whose name a node holds: its display name, and
    /// whether it has a live socket there (not only a session in its
    /// recovery window). One round trip.
    pub async fn holder_live(&self, key: &str) -> Result<Option<(String, bool)>, StoreError> {
        let mut con = self.redis.connection();
        let found: Option<(String, i64)> = redis::Script::new(HOLDER_LIVE)
            .key(format!("chat:name:{key}"))
            .arg(key)
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        Ok(found.map(|(name, live)| (name, live == 1)))
    }
}

const HOLDER_LIVE: &str = r#"
-- KEYS: the name's key. ARGV: the user's key. Returns nil, or {display
-- name, 1 if the holding node lists the user as live}.
local v = redis.call('GET', KEYS[1])
if not v then return nil end
local node, display = string.match(v, '^(%S+) (.*)$')
if not node then return nil end
local live = redis.call('SISMEMBER', 'chat:node-users:' .. node, ARGV[1])
return {display, live}
"#;
