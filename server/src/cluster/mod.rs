//! Several nodes on one Redis (`--redis-url`): what a node needs to know
//! about the others. The durable part (messages, ids, sessions, accounts)
//! is the [`RedisStore`]; this module holds what goes between live nodes:
//!
//! - The message feed ([`feed`]): every message any node appends is
//!   published by the append script on `chat:messages`, in id order. Each
//!   node subscribes, reads from the store whatever it missed (at start,
//!   after a reconnect, or when an id is skipped), and hands its delivery
//!   loop every message once, in id order. The sender's node delivers its
//!   own messages from the feed too: there is one delivery path.
//! - Control messages on `chat:control`: "node X claimed session T", so
//!   that the node holding T's old socket tells it `session_replaced`;
//!   "node X evicted name K" when a password login there took the name
//!   from a session held elsewhere, which then ends; presence changes and
//!   typing indicators, which each node hands its own sockets (presence
//!   through its own storm guard).
//! - Usernames: `chat:name:<key>` holds the node whose user has the name,
//!   taken with `SET NX` and refreshed by the node's heartbeat, so a dead
//!   node's names come free after the recovery window.
//! - Presence: each node publishes its users and room members in
//!   `chat:node:<id>` (expiring with its heartbeat), written as they
//!   change before the change is acknowledged ([`presence`]), so that
//!   `presence:get`, `room:list`, join acks and DMs' `queued` on any node
//!   see what any node has acknowledged; they add up the nodes that are
//!   alive.
//!
//! Layout: this file holds [`Cluster`], the control messages' publisher
//! and presence; [`feed`] the message feed; [`names`] usernames and the
//! announcements of claims and evictions; [`heartbeat`] the beat that
//! keeps names, sessions and presence alive, and tells a dead node. The
//! three use this file, never the other way.

pub mod feed;
pub mod heartbeat;
pub mod names;
pub mod presence;

use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::{mpsc, watch};

use crate::live::NodePresence;
use crate::store::{RedisStore, StoreError};

/// The channel of control messages between nodes.
pub const CONTROL_CHANNEL: &str = "chat:control";

/// How long a sender's ack waits for its own node to deliver the message
/// (the message is stored by then: this only keeps "ack after delivery"
/// as on a single node, and gives up if the feed is reconnecting).
pub const DELIVERY_WAIT: Duration = Duration::from_secs(2);

/// A node's presence record lives this many heartbeats past the last one.
const NODE_TTL_BEATS: u32 = 3;

/// A random node name (`node-` and 8 hex digits).
pub fn random_node_id() -> String {
    format!("node-{:08x}", rand::random::<u32>())
}

/// This node's link to the others. See the module doc.
pub struct Cluster {
    pub redis: RedisStore,
    /// The id up to which this node has delivered (for acks).
    delivered: watch::Sender<u64>,
    /// Control messages to publish, in order (presence, typing).
    outbox: mpsc::UnboundedSender<String>,
    /// This node's presence writes (see [`presence`]).
    presence_sync: presence::PresenceSync,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.redis.node())
            .finish_non_exhaustive()
    }
}
impl Cluster {
    /// Must run inside a tokio runtime (it starts the publisher of
    /// control messages).
    pub fn new(redis: RedisStore, head: u64) -> Self {
        let (outbox, mut rx) = mpsc::unbounded_channel::<String>();
        let mut con = redis.connection();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                // Presence and typing are best effort: a Redis blip loses
                // some, as a dropped volatile packet would.
                let sent: redis::RedisResult<i64> = con.publish(CONTROL_CHANNEL, msg).await;
                if let Err(e) = sent {
                    tracing::debug!("control message: {e}");
                }
            }
        });
        Cluster {
            redis,
            delivered: watch::Sender::new(head),
            outbox,
            presence_sync: Default::default(),
        }
    }

    /// Adds the other nodes' share (as of their last heartbeat) to a
    /// presence change's counts. Left as it is if Redis cannot say.
    pub async fn count_others(&self, p: &mut chat_shared::Presence) {
        let nodes = match self.presence().await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("cluster presence: {e}");
                return;
            }
        };
        for (node, share) in nodes {
            if node == self.node() {
                continue;
            }
            p.online += share.users.len() as u64;
            if let (Some(members), Some(room)) = (p.members.as_mut(), p.room.as_ref()) {
                *members += share.rooms.get(room).map_or(0, |m| m.len() as u64);
            }
        }
    }

    /// Sends a presence change made here to the other nodes' sockets.
    pub fn forward_presence(&self, p: &chat_shared::Presence) {
        if let Ok(json) = serde_json::to_string(p) {
            let _ = self.outbox.send(format!("presence {} {json}", self.node()));
        }
    }

    /// Sends a typing indicator to the other nodes' sockets.
    pub fn forward_typing(&self, t: &chat_shared::TypingNotice) {
        if let Ok(json) = serde_json::to_string(t) {
            let _ = self.outbox.send(format!("typing {} {json}", self.node()));
        }
    }

    pub fn node(&self) -> &str {
        self.redis.node()
    }

    /// Records that every message up to `id` has been delivered here.
    pub fn delivered(&self, id: u64) {
        self.delivered.send_if_modified(|d| {
            let newer = id > *d;
            *d = (*d).max(id);
            newer
        });
    }

    /// Waits (at most [`DELIVERY_WAIT`]) until this node has delivered `id`.
    pub async fn wait_delivered(&self, id: u64) {
        let mut rx = self.delivered.subscribe();
        let _ = tokio::time::timeout(DELIVERY_WAIT, rx.wait_for(|&d| d >= id)).await;
    }

    /// Every live node's presence (a node whose heartbeat stopped is left
    /// out, and forgotten).
    pub async fn presence(&self) -> Result<Vec<(String, NodePresence)>, StoreError> {
        let mut con = self.redis.connection();
        let nodes: Vec<String> = con.smembers("chat:nodes").await.map_err(unavailable)?;
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = nodes.iter().map(|n| format!("chat:node:{n}")).collect();
        let bodies: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::new();
        let mut dead = Vec::new();
        for (node, body) in nodes.into_iter().zip(bodies) {
            match body.and_then(|b| serde_json::from_str(&b).ok()) {
                Some(p) => out.push((node, p)),
                None => dead.push(node),
            }
        }
        if !dead.is_empty() {
            let _: redis::RedisResult<i64> = con.srem("chat:nodes", dead).await;
        }
        Ok(out)
    }

    /// Removes this node's presence at once (a clean shutdown).
    pub async fn leave(&self) {
        let mut con = self.redis.connection();
        let _: redis::RedisResult<()> = redis::pipe()
            .del(format!("chat:node:{}", self.node()))
            .ignore()
            .del(presence::node_users_key(self.node()))
            .ignore()
            .srem("chat:nodes", self.node())
            .ignore()
            .query_async(&mut con)
            .await;
    }
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}
