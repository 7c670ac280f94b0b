//! Several nodes on one Redis (`--redis-url`): what a node needs to know
//! about the others. The durable part (messages, ids, sessions, accounts)
//! is the [`RedisStore`]; this module holds what goes between live nodes:
//!
//! - The message feed ([`Feed`]): every message any node appends is
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
//! - Presence: each node publishes its users and room counts in
//!   `chat:node:<id>` (expiring with its heartbeat); `presence:get` and
//!   `room:list` add up the nodes that are alive.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::username_key;
use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::sync::{mpsc, watch};

use crate::live::NodePresence;
use crate::store::redis::{HEARTBEAT_INTERVAL, LIVE_SESSION_TTL, MESSAGES_CHANNEL, decode};
use crate::store::{MessageRecord, RedisStore, StoreError};

/// The channel of control messages between nodes.
pub const CONTROL_CHANNEL: &str = "chat:control";

/// How long a sender's ack waits for its own node to deliver the message
/// (the message is stored by then: this only keeps "ack after delivery"
/// as on a single node, and gives up if the feed is reconnecting).
pub const DELIVERY_WAIT: Duration = Duration::from_secs(2);

/// Missed messages read from the store at once.
const CATCH_UP_BATCH: usize = 1000;

/// A node's presence record lives this many heartbeats past the last one.
const NODE_TTL_BEATS: u32 = 3;

/// A random node name (`node-` and 8 hex digits).
pub fn random_node_id() -> String {
    format!("node-{:08x}", rand::random::<u32>())
}

/// What the feed hands the node: messages in id order, and takeovers.
#[derive(Debug)]
pub enum FeedEvent {
    Message(Arc<MessageRecord>),
    /// Another node took the session with this token over.
    Claimed {
        token: String,
    },
    /// A password login on another node took the name `key` from
    /// whichever session held it.
    Evicted {
        key: String,
    },
    /// A presence change on another node, its counts the cluster's.
    Presence(chat_shared::Presence),
    /// A typing indicator from a user on another node.
    Typing(chat_shared::TypingNotice),
}

/// This node's link to the others. See the module doc.
pub struct Cluster {
    pub redis: RedisStore,
    /// The id up to which this node has delivered (for acks).
    delivered: watch::Sender<u64>,
    /// Control messages to publish, in order (presence, typing).
    outbox: mpsc::UnboundedSender<String>,
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

    /// Takes the username `key` for this node: false when another node's
    /// user has it. `ttl` is how long it stays taken without a heartbeat.
    pub async fn claim_name(&self, display: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut con = self.redis.connection();
        let name = format!("chat:name:{}", username_key(display));
        let node = self.node();
        let set: Option<String> = redis::cmd("SET")
            .arg(&name)
            .arg(format!("{node} {display}"))
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        Ok(set.is_none_or(|holder| holder.split(' ').next() == Some(node)))
    }

    /// The display name of `key` if some node's user holds it.
    pub async fn holder(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut con = self.redis.connection();
        let v: Option<String> = con
            .get(format!("chat:name:{key}"))
            .await
            .map_err(unavailable)?;
        Ok(v.and_then(|v| v.split_once(' ').map(|(_, d)| d.to_owned())))
    }

    /// Takes the username `key` whatever node had it (a session resumed
    /// here from another node).
    pub async fn take_name(&self, display: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let value = format!("{} {display}", self.node());
        let _: () = con
            .pset_ex(
                format!("chat:name:{}", username_key(display)),
                value,
                ttl.as_millis() as u64,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Lets `key` go if this node holds it (a refused admission).
    pub async fn release_name(&self, key: &str) {
        let mut con = self.redis.connection();
        let _: redis::RedisResult<i64> = redis::Script::new(
            "local v = redis.call('GET', KEYS[1]) if v and string.match(v, '^%S+') == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        )
        .key(format!("chat:name:{key}"))
        .arg(self.node())
        .invoke_async(&mut con)
        .await;
    }

    /// Tells the other nodes that this node holds the session `token` now.
    pub async fn announce_claim(&self, token: &str) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let _: i64 = con
            .publish(CONTROL_CHANNEL, format!("claimed {} {token}", self.node()))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Tells the other nodes that a password login here took the name
    /// `key`: the session holding it elsewhere ends.
    pub async fn announce_eviction(&self, key: &str) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let _: i64 = con
            .publish(CONTROL_CHANNEL, format!("evicted {} {key}", self.node()))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The heartbeat's share of the cluster: keeps this node's names
    /// (`names`: the display names of the users it holds, live or in their
    /// window) taken, and publishes its presence.
    pub async fn beat(
        &self,
        names: &[String],
        presence: &NodePresence,
        name_ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let node_ttl = HEARTBEAT_INTERVAL * NODE_TTL_BEATS;
        let script = redis::Script::new(KEEP_NAMES);
        let mut keep = script.prepare_invoke();
        keep.arg(self.node()).arg(name_ttl.as_millis() as u64);
        for n in names {
            keep.key(format!("chat:name:{}", username_key(n))).arg(n);
        }
        let _: i64 = keep.invoke_async(&mut con).await.map_err(unavailable)?;
        let body = serde_json::to_string(presence).unwrap_or_default();
        let _: () = redis::pipe()
            .pset_ex(
                format!("chat:node:{}", self.node()),
                body,
                node_ttl.as_millis() as u64,
            )
            .ignore()
            .sadd("chat:nodes", self.node())
            .ignore()
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Pushes back the expiry of live sessions' records (see
    /// [`LIVE_SESSION_TTL`]).
    pub async fn keep_sessions(&self, tokens: &[String]) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut con = self.redis.connection();
        let mut pipe = redis::pipe();
        for t in tokens {
            pipe.pexpire(
                format!("chat:session:{t}"),
                LIVE_SESSION_TTL.as_millis() as i64,
            )
            .ignore();
        }
        pipe.query_async::<()>(&mut con).await.map_err(unavailable)
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
            .srem("chat:nodes", self.node())
            .ignore()
            .query_async(&mut con)
            .await;
    }
}

const KEEP_NAMES: &str = r#"
-- KEYS: the names this node holds. ARGV: node, ttl (ms), then each
-- name's display form. A name that expired is taken again; one another
-- node took meanwhile stays theirs.
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v or string.match(v, '^%S+') == ARGV[1] then
    redis.call('SET', k, ARGV[1] .. ' ' .. ARGV[i + 2], 'PX', ARGV[2])
  end
end
return #KEYS
"#;

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// The feed: see the module doc.
pub struct Feed;

impl Feed {
    /// Starts following the cluster's messages after the id `after`.
    /// The receiver gets every later message once, in id order, and the
    /// takeovers announced by other nodes. The task ends with the
    /// receiver.
    pub fn start(redis: RedisStore, after: u64) -> mpsc::Receiver<FeedEvent> {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(follow(redis, tx, after));
        rx
    }
}

async fn follow(redis: RedisStore, tx: mpsc::Sender<FeedEvent>, mut last: u64) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if redis.is_closed() {
            return;
        }
        match subscribed(&redis, &tx, &mut last, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(node = %redis.node(), "message feed: {e}; reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One subscription's life. `Ok` when the receiver is gone.
async fn subscribed(
    redis: &RedisStore,
    tx: &mpsc::Sender<FeedEvent>,
    last: &mut u64,
    backoff: &mut Duration,
) -> Result<(), StoreError> {
    let client = redis.client()?;
    let mut pubsub = client.get_async_pubsub().await.map_err(unavailable)?;
    pubsub
        .subscribe(&[MESSAGES_CHANNEL, CONTROL_CHANNEL])
        .await
        .map_err(unavailable)?;
    let mut stream = pubsub.into_on_message();
    // Subscribed: whatever is published from now on arrives here, so what
    // the store holds past `last` is everything missed.
    if !catch_up(redis, tx, last, None).await? {
        return Ok(());
    }
    *backoff = Duration::from_millis(100);
    while let Some(msg) = stream.next().await {
        if redis.is_closed() {
            return Ok(());
        }
        let Ok(payload) = msg.get_payload::<String>() else {
            continue;
        };
        if msg.get_channel_name() == CONTROL_CHANNEL {
            let mut words = payload.splitn(3, ' ');
            let event = match (words.next(), words.next(), words.next()) {
                (_, Some(node), _) if node == redis.node() => None,
                (Some("claimed"), Some(_), Some(token)) => Some(FeedEvent::Claimed {
                    token: token.to_owned(),
                }),
                (Some("evicted"), Some(_), Some(key)) => Some(FeedEvent::Evicted {
                    key: key.to_owned(),
                }),
                (Some("presence"), Some(_), Some(json)) => {
                    serde_json::from_str(json).ok().map(FeedEvent::Presence)
                }
                (Some("typing"), Some(_), Some(json)) => {
                    serde_json::from_str(json).ok().map(FeedEvent::Typing)
                }
                _ => None,
            };
            if let Some(event) = event
                && tx.send(event).await.is_err()
            {
                return Ok(());
            }
            continue;
        }
        let Some(m) = decode(&payload) else {
            tracing::warn!("message feed: a message that does not parse");
            continue;
        };
        if m.id <= *last {
            continue; // read from the store already
        }
        if m.id > *last + 1 && !catch_up(redis, tx, last, Some(m.id - 1)).await? {
            return Ok(());
        }
        *last = m.id;
        redis.saw(m.id);
        if tx.send(FeedEvent::Message(m)).await.is_err() {
            return Ok(());
        }
    }
    Err(StoreError::Unavailable("the subscription ended".into()))
}

/// Hands on what the store holds after `last` (up to `upto`). False when
/// the receiver is gone.
async fn catch_up(
    redis: &RedisStore,
    tx: &mpsc::Sender<FeedEvent>,
    last: &mut u64,
    upto: Option<u64>,
) -> Result<bool, StoreError> {
    loop {
        let batch = redis.range(*last, upto, CATCH_UP_BATCH).await?;
        let n = batch.len();
        for m in batch {
            *last = m.id;
            redis.saw(m.id);
            if tx.send(FeedEvent::Message(m)).await.is_err() {
                return Ok(false);
            }
        }
        if n < CATCH_UP_BATCH {
            if let Some(u) = upto {
                *last = (*last).max(u);
            }
            return Ok(true);
        }
    }
}
