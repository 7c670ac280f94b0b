//! The message feed: every message any node appends is published by the
//! append script on `chat:messages`, in id order; this follows it, reads
//! from the store whatever it missed, and hands the node every message
//! once, in id order, with the control messages of the other nodes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{CONTROL_CHANNEL, unavailable};
use crate::store::redis::{MESSAGES_CHANNEL, decode, decode_origin};
use crate::store::{MessageRecord, RedisStore, StoreError};

/// Missed messages read from the store at once.
const CATCH_UP_BATCH: usize = 1000;

/// What the feed hands the node: messages in id order, and takeovers.
#[derive(Debug)]
pub enum FeedEvent {
    /// With (v3) the public id of the session that sent it, when the
    /// message came live (a catch-up read from the store does not say).
    Message(Arc<MessageRecord>, Option<String>),
    /// Another node took the session with this token over.
    Claimed { token: String },
    /// (v3) A server kick or ban on another node: the session of `key`
    /// ends here too, its socket told `error`.
    Ended {
        key: String,
        error: chat_shared::ChatError,
    },
    /// (v3) Another node changed a moderation setting.
    Settings,
    /// (v3) Something an account's session on another node did that its
    /// sessions here follow.
    Account(AccountNote),
    /// A presence change on another node, its counts the cluster's.
    Presence(chat_shared::Presence),
    /// A typing indicator from a user on another node.
    Typing(chat_shared::TypingNotice),
}
/// (v3) What an account's session on one node did that its sessions on
/// the others follow: membership is the account's, markers follow it, and
/// `session:end` ends a session wherever it is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AccountNote {
    /// The account joined `room`.
    Joined { key: String, room: String },
    /// The account left `room`.
    Left { key: String, room: String },
    /// The account's read marker moved.
    Marker {
        key: String,
        marker: chat_shared::ReadMarker,
    },
    /// The session `token` was ended with `session:end`, or (`replaced`)
    /// by a login beyond the account's session limit.
    End {
        key: String,
        token: String,
        #[serde(default)]
        replaced: bool,
    },
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
                (Some("settings"), Some(_), _) => Some(FeedEvent::Settings),
                (Some("ended"), Some(_), Some(json)) => {
                    #[derive(serde::Deserialize)]
                    struct Ended {
                        key: String,
                        error: chat_shared::ChatError,
                    }
                    serde_json::from_str::<Ended>(json)
                        .ok()
                        .map(|e| FeedEvent::Ended {
                            key: e.key,
                            error: e.error,
                        })
                }
                (Some("account"), Some(_), Some(json)) => {
                    serde_json::from_str(json).ok().map(FeedEvent::Account)
                }
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
        let origin = decode_origin(&payload);
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
        if tx.send(FeedEvent::Message(m, origin)).await.is_err() {
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
            if tx.send(FeedEvent::Message(m, None)).await.is_err() {
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
