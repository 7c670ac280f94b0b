//! [`RedisStore`]: the store on a Redis server that several nodes share
//! (`--redis-url`). Every write is one round trip (a Lua script or one
//! command), and its [`Committed`] is resolved when Redis has answered:
//! what Redis keeps across its own restart depends on its persistence
//! setting (see the README, "Several nodes").
//!
//! Layout (every key starts with `chat:`):
//! - `epoch`: a random value written once by the first node. A Redis that
//!   lost its data has none (or another one): the nodes notice, raise the
//!   id head past every id they have seen, and count everything older as
//!   pruned, so that replays say `truncated` instead of leaving gaps.
//! - `head`: the last id handed out; the append script increments it, so
//!   ids are one order for the whole cluster. `pruned`: the highest id
//!   retention removed.
//! - `log`: every message, a sorted set scored by id whose members are the
//!   message as JSON (`{"id":…,"ts":…,…}`). The same member is added to the
//!   indexes a read needs: `room:<room>`, `feed` (global and broadcast),
//!   `dm:<a>:<b>` (the pair's keys in order) and `inbox:<key>` (DMs to a
//!   user). The member lists its index keys (`ix`) so that retention can
//!   remove it everywhere.
//! - `session:<token>`: a hash `{node, rec, user}`: the session (with its
//!   `session:list` meta), the node that holds it, and (v3) its user's
//!   key. A node only changes or deletes sessions it holds (or new ones),
//!   so a node that lost a session to another cannot overwrite it.
//!   `sessions`: the set of tokens. A session in its window expires with
//!   it; a live one after [`LIVE_SESSION_TTL`], which its node keeps
//!   pushing back, so a dead node's sessions do not stay forever.
//! - (v3) `user-sessions:<key>`: the tokens of a user's sessions, kept by
//!   the session scripts (a put adds the token and takes it from the set of
//!   the name it had before a rename; a delete removes it). A session that
//!   expired (its window ended, its node died) leaves its token behind:
//!   reading the set drops those whose `session:` key is gone, and so does
//!   the user's next put.
//! - (v3) `markers:<key>`: a hash, a user's read markers, [`marker_key`] →
//!   id, only ever raised (a script).
//! - (v3) `conversations:<key>`: a sorted set of the user's DM peers (their
//!   keys), scored by the newest DM between the two either way, and
//!   `peer-names:<key>`: a hash, peer key → display name as in that DM.
//!   The append script keeps both sides of a DM up to date in the same
//!   step as the DM; retention drops a conversation with its newest DM.
//! - `account:<key>`: a hash `{username, hash, rooms, seen, created}`;
//!   `accounts`: the set of keys.
//! - `alive:<node>`: the node's last heartbeat (wall-clock ms).
//! - The channel `chat:messages` carries each message as stored, published
//!   by the append script itself: subscribers see messages in id order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chat_shared::username_key;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use super::{
    AccountChange, AccountRecord, Change, ChangeOp, Committed, ConversationRecord, Destination,
    Folded, MarkerAt, MessageRecord, Page, ReactionRecord, SessionMeta, SessionRecord, Startup,
    Store, StoreError, TokenRecord, marker_key, now_ms,
};

/// The channel every appended message is published on.
pub const MESSAGES_CHANNEL: &str = "chat:messages";

/// How often a node checks Redis (and its epoch) and refreshes its
/// heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a live session's record lasts unless pushed back: its node
/// does that every quarter of it. A node that dies stops, and its sessions'
/// records go within this (their recovery window, counted from the node's
/// last heartbeat, is shorter).
pub const LIVE_SESSION_TTL: Duration = Duration::from_secs(3600);

/// (v3) Under Sentinel, how long a write waits for a replica to confirm
/// it (`WAIT`) before it is acknowledged anyway.
pub const REPLICA_WAIT: Duration = Duration::from_millis(500);

/// How long one Redis request may take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Messages one run of the retention script removes at most: Redis runs
/// nothing else meanwhile.
const PRUNE_BATCH: u64 = 1000;

/// Ids skipped when a Redis that lost its data is taken up again: more than
/// one node can have handed out meanwhile.
const ID_GAP_AFTER_LOSS: u64 = 1 << 20;

/// (v3) How many times a change is tried when its target changes under
/// it (another change in between).
const CHANGE_TRIES: u32 = 8;

/// (v3) Most messages one read of an unread count fetches: a count reads
/// pages of this many until it reaches its cap or the end.
const UNREAD_PAGE: u64 = 250;

const APPEND: &str = r#"
-- KEYS: epoch, head, log, then the message's indexes, then for a DM the
-- recipient's conversations and peer names, and the sender's.
-- ARGV: the epoch expected, the id (0: the next one), the body without
-- its id, the channel to publish on, how many indexes, then for a DM the
-- sender's key and name and the recipient's key and name.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('EPOCH the store lost its data')
end
local id = tonumber(ARGV[2])
if id == 0 then
  id = redis.call('INCR', KEYS[2])
else
  local head = tonumber(redis.call('GET', KEYS[2]) or '0')
  if id > head then redis.call('SET', KEYS[2], ARGV[2]) end
end
local msg = '{"id":' .. string.format('%d', id) .. ',' .. string.sub(ARGV[3], 2)
local last = 3 + tonumber(ARGV[5])
for i = 3, last do redis.call('ZADD', KEYS[i], id, msg) end
if #KEYS > last then
  -- A DM: each side's conversation with the other moves up to it (never
  -- back, for a late one), with the peer's name as this DM has it. The
  -- recipient's side first: a DM to oneself is named by its sender.
  if redis.call('ZADD', KEYS[last + 1], 'GT', 'CH', id, ARGV[6]) == 1 then
    redis.call('HSET', KEYS[last + 2], ARGV[6], ARGV[7])
  end
  if redis.call('ZADD', KEYS[last + 3], 'GT', 'CH', id, ARGV[8]) == 1 then
    redis.call('HSET', KEYS[last + 4], ARGV[8], ARGV[9])
  end
end
redis.call('PUBLISH', ARGV[4], msg)
return id
"#;

const START: &str = r#"
-- KEYS: epoch, head, pruned. ARGV: a fresh epoch, the id to raise the
-- head to if the data was lost (0: this node has seen no id), the epoch
-- this node worked in ('' at start). Returns {epoch, head, pruned, 1 if
-- the epoch is new}. Without an epoch (a new or emptied Redis) the fresh
-- one is set; when it is not the one this node knew, Redis lost its data
-- meanwhile and the head and the pruned mark are raised, so that no id is
-- handed out twice and replays of what was lost say `truncated`.
local epoch = redis.call('GET', KEYS[1])
local fresh = 0
if not epoch then
  epoch = ARGV[1]
  fresh = 1
  redis.call('SET', KEYS[1], epoch)
end
local raise = tonumber(ARGV[2])
if raise > 0 and epoch ~= ARGV[3] then
  local head = tonumber(redis.call('GET', KEYS[2]) or '0')
  if raise > head then redis.call('SET', KEYS[2], ARGV[2]) end
  local pruned = tonumber(redis.call('GET', KEYS[3]) or '0')
  if raise > pruned then redis.call('SET', KEYS[3], ARGV[2]) end
end
return {epoch, tonumber(redis.call('GET', KEYS[2]) or '0'),
        tonumber(redis.call('GET', KEYS[3]) or '0'), fresh}
"#;

const PUT_SESSION: &str = r#"
-- KEYS: session, sessions, the user's sessions. ARGV: record, node,
-- expiry (ms, absolute), token, the user's key.
local owner = redis.call('HGET', KEYS[1], 'node')
if owner and owner ~= ARGV[2] then return 0 end
local was = redis.call('HGET', KEYS[1], 'user')
if was and was ~= ARGV[5] then
  -- Renamed: the token leaves the set of the name it had.
  redis.call('SREM', 'chat:user-sessions:' .. was, ARGV[4])
end
redis.call('HSET', KEYS[1], 'node', ARGV[2], 'rec', ARGV[1], 'user', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
-- The user's sessions that expired meanwhile leave the set.
for _, t in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('EXISTS', 'chat:session:' .. t) == 0 then redis.call('SREM', KEYS[3], t) end
end
redis.call('SADD', KEYS[3], ARGV[4])
return 1
"#;

const DELETE_SESSION: &str = r#"
-- KEYS: session, sessions. ARGV: node, token. The session's username is
-- free again on every node, if this node held it.
local owner = redis.call('HGET', KEYS[1], 'node')
if owner and owner ~= ARGV[1] then return 0 end
local rec = redis.call('HGET', KEYS[1], 'rec')
if rec then
  local name = 'chat:name:' .. string.lower(cjson.decode(rec).username)
  local holder = redis.call('GET', name)
  if holder and string.match(holder, '^%S+') == ARGV[1] then redis.call('DEL', name) end
end
local user = redis.call('HGET', KEYS[1], 'user')
if user then redis.call('SREM', 'chat:user-sessions:' .. user, ARGV[2]) end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"#;

const PUT_MARKER: &str = r#"
-- KEYS: the user's markers. ARGV: the place, the id. Moves the marker
-- forward only; returns it as it stands after.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"#;

const CLAIM_SESSION: &str = r#"
-- KEYS: session. ARGV: node. {record, the node that held it}; the
-- session is the node's from now on.
local rec = redis.call('HGET', KEYS[1], 'rec')
if not rec then return false end
local owner = redis.call('HGET', KEYS[1], 'node') or ''
redis.call('HSET', KEYS[1], 'node', ARGV[1])
return {rec, owner}
"#;

const CREATE_ACCOUNT: &str = r#"
-- KEYS: account, accounts. ARGV: key, username, hash, rooms, seen, created.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'username', ARGV[2], 'hash', ARGV[3], 'rooms', ARGV[4],
  'seen', ARGV[5], 'created', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"#;

const UPDATE_ACCOUNT: &str = r#"
-- KEYS: account. ARGV: field, value. `seen` is only ever raised.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == 'seen' then
  local seen = tonumber(redis.call('HGET', KEYS[1], 'seen') or '0')
  if tonumber(ARGV[2]) <= seen then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

/// (v3) Appends a change and applies it to its target. See
/// `RedisStore::run_change`.
const CHANGE: &str = r#"
-- KEYS: epoch, head, log, the change's indexes (ARGV[5] of them), the
-- target's indexes (ARGV[6] of them), the target's set of edits.
-- ARGV: the epoch expected, the id (0: the next one), the change's body
-- without its id, the channel, the two counts, 'edit', 'delete' or '',
-- then triples (score, member as read, member to put instead): the
-- target, and for a deletion its edits with their text erased.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('EPOCH the store lost its data')
end
local nc = tonumber(ARGV[5])
local nt = tonumber(ARGV[6])
local edits = KEYS[4 + nc + nt]
for i = 8, #ARGV, 3 do
  local now = redis.call('ZRANGE', KEYS[3], ARGV[i], ARGV[i], 'BYSCORE')
  if now[1] ~= ARGV[i + 1] then
    return redis.error_reply('CONFLICT the message changed meanwhile')
  end
end
local id = tonumber(ARGV[2])
if id == 0 then
  id = redis.call('INCR', KEYS[2])
else
  local head = tonumber(redis.call('GET', KEYS[2]) or '0')
  if id > head then redis.call('SET', KEYS[2], ARGV[2]) end
end
local msg = '{"id":' .. string.format('%d', id) .. ',' .. string.sub(ARGV[3], 2)
for i = 3, 3 + nc do redis.call('ZADD', KEYS[i], id, msg) end
for i = 8, #ARGV, 3 do
  redis.call('ZREM', KEYS[3], ARGV[i + 1])
  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 2])
  for k = 4 + nc, 3 + nc + nt do
    redis.call('ZREM', KEYS[k], ARGV[i + 1])
    redis.call('ZADD', KEYS[k], ARGV[i], ARGV[i + 2])
  end
end
if ARGV[7] == 'edit' then
  redis.call('SADD', edits, id)
elseif ARGV[7] == 'delete' then
  redis.call('DEL', edits)
end
redis.call('PUBLISH', ARGV[4], msg)
return id
"#;

const PRUNE: &str = r#"
-- KEYS: log, pruned. ARGV: the cutoff ts, the most to remove. Removes the
-- oldest messages while they are older than the cutoff, from the log and
-- their indexes. Returns {pruned, how many were removed}: the caller runs
-- it again while it removed its most, so Redis is never held long.
local cutoff = tonumber(ARGV[1])
local most = tonumber(ARGV[2])
local pruned = tonumber(redis.call('GET', KEYS[2]) or '0')
local removed = 0
local done = false
while not done and removed < most do
  local batch = redis.call('ZRANGE', KEYS[1], 0, 255)
  if #batch == 0 then break end
  for _, m in ipairs(batch) do
    local d = cjson.decode(m)
    if d.ts >= cutoff or removed >= most then done = true break end
    redis.call('ZREM', KEYS[1], m)
    for _, k in ipairs(d.ix) do redis.call('ZREM', k, m) end
    if d.kind == 'dm' then
      -- A conversation whose newest DM this is goes with it.
      local a, b = string.lower(d.from), string.lower(d.to)
      for _, side in ipairs({{a, b}, {b, a}}) do
        local conv = 'chat:conversations:' .. side[1]
        if tonumber(redis.call('ZSCORE', conv, side[2]) or '-1') == d.id then
          redis.call('ZREM', conv, side[2])
          redis.call('HDEL', 'chat:peer-names:' .. side[1], side[2])
        end
      end
    end
    if d.id > pruned then pruned = d.id end
    removed = removed + 1
  end
end
redis.call('SET', KEYS[2], string.format('%d', pruned))
return {pruned, removed}
"#;

/// The scripts, loaded once (each is sent by its hash, and in full only
/// when Redis does not know it yet).
struct Scripts {
    append: redis::Script,
    start: redis::Script,
    put_session: redis::Script,
    delete_session: redis::Script,
    claim_session: redis::Script,
    create_account: redis::Script,
    update_account: redis::Script,
    prune: redis::Script,
    put_marker: redis::Script,
    change: redis::Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
        append: redis::Script::new(APPEND),
        start: redis::Script::new(START),
        put_session: redis::Script::new(PUT_SESSION),
        delete_session: redis::Script::new(DELETE_SESSION),
        claim_session: redis::Script::new(CLAIM_SESSION),
        create_account: redis::Script::new(CREATE_ACCOUNT),
        update_account: redis::Script::new(UPDATE_ACCOUNT),
        prune: redis::Script::new(PRUNE),
        change: redis::Script::new(CHANGE),
        put_marker: redis::Script::new(PUT_MARKER),
    });
    &SCRIPTS
}

/// A message as Redis keeps it. `ix` lists the index keys it is in.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    #[serde(default, skip_serializing)]
    id: u64,
    ts: u64,
    #[serde(borrow)]
    from: std::borrow::Cow<'a, str>,
    kind: Kind,
    /// The room or the recipient, for rooms and DMs.
    #[serde(default, borrow)]
    to: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
    #[serde(default)]
    action: bool,
    /// (v3) A room event (see [`MessageRecord::note`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    note: bool,
    #[serde(default)]
    ix: Vec<String>,
    /// (v3) The public id of the session that sent it, so that the node
    /// holding that session skips its socket when it delivers the message
    /// from the feed (a DM or broadcast goes to the sender's other
    /// sessions, not back to the one that sent it). Never a socket id.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    origin: Option<std::borrow::Cow<'a, str>>,
    /// (v3) The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    re: Option<u64>,
    /// (v3) A change: the message it changes, and what it does (`edit`,
    /// `delete`, `react`; a reaction's `emoji` and `on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    op: Option<chat_shared::ChangeKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    emoji: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on: Option<bool>,
    /// (v3) A message as its changes left it (see [`super::Folded`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edited: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reactions: Vec<ReactionRecord>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Room,
    Dm,
    Global,
    Broadcast,
}

/// A session as Redis keeps it.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    token: String,
    username: String,
    since: u64,
    rooms: BTreeMap<String, u64>,
    window_ends_at: Option<u64>,
    account: bool,
    /// (v3) What `session:list` shows of it; absent in a record written
    /// before v3, which reads as empty.
    #[serde(default)]
    meta: StoredMeta,
}

/// (v3) A session's [`SessionMeta`] as Redis keeps it.
#[derive(Serialize, Deserialize, Default)]
struct StoredMeta {
    #[serde(default)]
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(default)]
    connected_at: u64,
    /// (v3) The API token that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_id: Option<String>,
}

impl From<&SessionRecord> for StoredSession {
    fn from(s: &SessionRecord) -> Self {
        StoredSession {
            token: s.token.clone(),
            username: s.username.clone(),
            since: s.since,
            rooms: s.rooms.clone(),
            window_ends_at: s.window_ends_at,
            account: s.account,
            meta: StoredMeta {
                id: s.meta.id.clone(),
                client: s.meta.client.clone(),
                address: s.meta.address.clone(),
                connected_at: s.meta.connected_at,
                token_id: s.meta.token_id.clone(),
            },
        }
    }
}

impl From<StoredSession> for SessionRecord {
    fn from(s: StoredSession) -> Self {
        SessionRecord {
            token: s.token,
            username: s.username,
            since: s.since,
            rooms: s.rooms,
            window_ends_at: s.window_ends_at,
            account: s.account,
            meta: SessionMeta {
                id: s.meta.id,
                client: s.meta.client,
                address: s.meta.address,
                connected_at: s.meta.connected_at,
                token_id: s.meta.token_id,
            },
        }
    }
}

fn key(parts: &[&str]) -> String {
    let mut k = String::from("chat");
    for p in parts {
        k.push(':');
        k.push_str(p);
    }
    k
}

/// `script` with the keys every numbering script (append, change) takes
/// first: the epoch, the head, the log.
fn numbering(script: &redis::Script) -> redis::ScriptInvocation<'_> {
    let mut inv = script.prepare_invoke();
    inv.key(key(&["epoch"]))
        .key(key(&["head"]))
        .key(key(&["log"]));
    inv
}

/// The index keys of a message.
fn indexes(dest: &Destination, from: &str) -> Vec<String> {
    match dest {
        Destination::Room(room) => vec![key(&["room", room])],
        Destination::Dm { to } => {
            let (a, b) = (username_key(from), username_key(to));
            let pair = if a <= b {
                [a, b.clone()]
            } else {
                [b.clone(), a]
            };
            vec![key(&["dm", &pair[0], &pair[1]]), key(&["inbox", &b])]
        }
        Destination::Global | Destination::Broadcast => vec![key(&["feed"])],
    }
}

fn dm_pair_key(a: &str, b: &str) -> String {
    if a <= b {
        key(&["dm", a, b])
    } else {
        key(&["dm", b, a])
    }
}

/// The JSON body of `msg` without its id (the append script adds it).
fn encode(msg: &MessageRecord, origin: Option<&str>) -> String {
    let (kind, to) = match &msg.dest {
        Destination::Room(r) => (Kind::Room, Some(r.as_str().into())),
        Destination::Dm { to } => (Kind::Dm, Some(to.as_str().into())),
        Destination::Global => (Kind::Global, None),
        Destination::Broadcast => (Kind::Broadcast, None),
    };
    let (target, op, emoji, on) = match msg.change.as_deref() {
        None => (None, None, None, None),
        Some(c) => match &c.op {
            ChangeOp::React { emoji, on } => (
                Some(c.target),
                Some(c.op.kind()),
                Some(emoji.clone()),
                Some(*on),
            ),
            op => (Some(c.target), Some(op.kind()), None, None),
        },
    };
    let folded = msg.folded.as_deref();
    let body = Stored {
        id: 0,
        ts: msg.ts,
        from: msg.from.as_str().into(),
        kind,
        to,
        text: msg.text.as_str().into(),
        action: msg.action,
        note: msg.note,
        ix: indexes(&msg.dest, &msg.from),
        origin: origin.map(Into::into),
        re: msg.reply_to,
        target,
        op,
        emoji,
        on,
        edited: folded.and_then(|f| f.edited),
        deleted: folded.is_some_and(|f| f.deleted),
        reactions: folded.map(|f| f.reactions.clone()).unwrap_or_default(),
    };
    // Plain strings and numbers: this cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

/// `msg` as a member of the log and its indexes: its body with its id
/// first, as the append script writes it.
fn member(msg: &MessageRecord) -> String {
    let body = encode(msg, None);
    format!("{{\"id\":{},{}", msg.id, &body[1..])
}

/// Reads a message as stored (and as published).
pub fn decode(raw: &str) -> Option<Arc<MessageRecord>> {
    let s: Stored = serde_json::from_str(raw).ok()?;
    let dest = match (s.kind, s.to) {
        (Kind::Room, Some(r)) => Destination::Room(r.into_owned()),
        (Kind::Dm, Some(to)) => Destination::Dm {
            to: to.into_owned(),
        },
        (Kind::Global, _) => Destination::Global,
        (Kind::Broadcast, _) => Destination::Broadcast,
        _ => return None,
    };
    let change = match (s.target, s.op) {
        (Some(target), Some(kind)) => Some(Box::new(Change {
            target,
            op: match kind {
                chat_shared::ChangeKind::Edit => ChangeOp::Edit,
                chat_shared::ChangeKind::Delete => ChangeOp::Delete,
                chat_shared::ChangeKind::React => ChangeOp::React {
                    emoji: s.emoji.unwrap_or_default(),
                    on: s.on.unwrap_or(true),
                },
            },
        })),
        _ => None,
    };
    let folded = (s.edited.is_some() || s.deleted || !s.reactions.is_empty()).then(|| {
        Box::new(Folded {
            edited: s.edited,
            deleted: s.deleted,
            reactions: s.reactions,
        })
    });
    Some(Arc::new(MessageRecord {
        id: s.id,
        ts: s.ts,
        from: s.from.into_owned(),
        dest,
        text: s.text.into_owned(),
        action: s.action,
        note: s.note,
        reply_to: s.re,
        change,
        folded,
    }))
}

/// (v3) The session a message as published came from (see
/// `Stored::origin`).
pub fn decode_origin(raw: &str) -> Option<String> {
    let s: Stored = serde_json::from_str(raw).ok()?;
    s.origin.map(std::borrow::Cow::into_owned)
}

fn decode_all(raw: Vec<String>) -> Vec<Arc<MessageRecord>> {
    raw.iter().filter_map(|r| decode(r)).collect()
}

/// A new epoch: random, so that two Redis lives never share one.
fn random_epoch() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// Shared by the store and its heartbeat task.
struct Inner {
    /// The connection to the primary; replaced when a failover moves it
    /// (Sentinel).
    con: std::sync::RwLock<ConnectionManager>,
    /// The primary's URL now.
    primary: Mutex<String>,
    /// (v3) The Sentinels to ask which server is the primary, if the URL
    /// named them.
    sentinel: Option<super::sentinel::SentinelUrl>,
    /// Writes not yet known to be on a replica were acknowledged anyway
    /// (no replica answered `WAIT` in time): said once, until one does.
    unreplicated: AtomicBool,
    /// (v3) Replicas connected to the primary, as of the last heartbeat:
    /// with none (the one a failover promoted has not got its own yet),
    /// writes do not wait for one.
    replicas: std::sync::atomic::AtomicU64,
    node: String,
    healthy: AtomicBool,
    closed: AtomicBool,
    /// The epoch this node works in (empty before `startup`).
    epoch: Mutex<String>,
    /// The largest id this node has seen: a Redis that lost its data is
    /// taken up again above it.
    known_head: std::sync::atomic::AtomicU64,
    /// Raised when a lost Redis was taken up again: everything up to it is
    /// gone.
    lost_upto: std::sync::atomic::AtomicU64,
}

/// See the module doc. Cloning is cheap: the clones share one connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
    url: String,
}

impl Inner {
    fn con(&self) -> ConnectionManager {
        self.con.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A connection manager to `url`, as the store configures them.
fn manager(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client, config)
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the Redis at `url`, as node `node`. Connects lazily:
    /// [`Store::startup`] is the first request, and fails with a clear
    /// error if Redis cannot be reached. Must run inside a tokio runtime
    /// (it starts the heartbeat).
    pub fn open(url: &str, node: &str) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: url.into(),
            reason,
        };
        let sentinel = match super::sentinel::SentinelUrl::parse(url) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => return Err(open_error(e)),
        };
        let primary = match &sentinel {
            None => url.to_owned(),
            Some(s) => s
                .primary_blocking()
                .map_err(|e| open_error(format!("no Sentinel names the primary: {e}")))?,
        };
        let con = manager(&primary).map_err(|e| open_error(e.to_string()))?;
        let inner = Arc::new(Inner {
            con: std::sync::RwLock::new(con),
            primary: Mutex::new(primary),
            sentinel,
            unreplicated: AtomicBool::new(false),
            // Assumed until the first heartbeat says.
            replicas: std::sync::atomic::AtomicU64::new(1),
            node: node.to_owned(),
            healthy: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            epoch: Mutex::new(String::new()),
            known_head: Default::default(),
            lost_upto: Default::default(),
        });
        tokio::spawn(heartbeat(Arc::downgrade(&inner)));
        Ok(RedisStore {
            inner,
            url: url.to_owned(),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The shared connection (it reconnects by itself).
    pub fn connection(&self) -> ConnectionManager {
        self.inner.con()
    }

    /// A client for the same Redis (pub/sub needs its own connection):
    /// the primary as the store knows it now.
    pub fn client(&self) -> Result<redis::Client, StoreError> {
        let primary = self
            .inner
            .primary
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        redis::Client::open(primary.as_str()).map_err(unavailable)
    }

    /// (v3) Under Sentinel, waits (at most [`REPLICA_WAIT`]) until a
    /// replica holds every write made so far on the store's connection,
    /// so that a failover cannot lose what is then acknowledged. A
    /// primary with no replica in time is said in the log, and the write
    /// stands: it is stored and may have been delivered already.
    async fn replicated(&self) {
        if self.inner.sentinel.is_none() {
            return;
        }
        if self.inner.replicas.load(Ordering::Relaxed) == 0 {
            if !self.inner.unreplicated.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "redis: the primary has no replica; until one connects, a failover may lose the latest writes"
                );
            }
            return;
        }
        let mut con = self.inner.con();
        let acked: redis::RedisResult<i64> = redis::cmd("WAIT")
            .arg(1)
            .arg(REPLICA_WAIT.as_millis() as u64)
            .query_async(&mut con)
            .await;
        match acked {
            Ok(n) if n >= 1 => {
                if self.inner.unreplicated.swap(false, Ordering::Relaxed) {
                    tracing::info!("redis: a replica has the writes again");
                }
            }
            Ok(_) | Err(_) => {
                if !self.inner.unreplicated.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "redis: no replica confirmed a write within {REPLICA_WAIT:?}; until one does, a failover may lose the latest writes"
                    );
                }
            }
        }
    }

    /// Notes that this node has seen (and may have delivered) the id
    /// `id`: a Redis that lost its data is taken up again above it.
    pub fn saw(&self, id: u64) {
        self.inner.known_head.fetch_max(id, Ordering::Relaxed);
    }

    /// Up to where messages count as removed after Redis lost its data
    /// while this node ran (0: it did not): a replay from before it is
    /// `truncated`.
    pub fn lost_upto(&self) -> u64 {
        self.inner.lost_upto.load(Ordering::Relaxed)
    }

    /// Appends a message that the store numbers: the next id of the
    /// cluster, in one round trip that also publishes it on
    /// [`MESSAGES_CHANNEL`]. Returns the message with its id.
    /// The members of the set `set` (sorted), each with the hash
    /// `prefix:<member>`, in one pipelined read: the accounts, or the
    /// settings' scopes.
    async fn hashes_of(
        &self,
        set: &str,
        prefix: &str,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, StoreError> {
        let mut members: Vec<String> = self
            .read(async |con| con.smembers(key(&[set])).await)
            .await?;
        members.sort();
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for m in &members {
            pipe.hgetall(key(&[prefix, m]));
        }
        let all: Vec<BTreeMap<String, String>> =
            self.read(async |con| pipe.query_async(con).await).await?;
        Ok(members.into_iter().zip(all).collect())
    }

    pub async fn append_new(
        &self,
        from: &str,
        ts: u64,
        dest: Destination,
        text: &str,
        action: bool,
        note: bool,
    ) -> Result<Arc<MessageRecord>, StoreError> {
        let record = MessageRecord {
            action,
            note,
            ..MessageRecord::new(0, ts, from, dest, text)
        };
        self.append_from(None, record).await
    }

    /// Numbers `record` (its id and time are set here) and appends it,
    /// noting (v3) the public id of the session that sent it for the
    /// nodes' delivery (see `Stored::origin`).
    pub async fn append_from(
        &self,
        origin: Option<&str>,
        mut record: MessageRecord,
    ) -> Result<Arc<MessageRecord>, StoreError> {
        record.ts = now_ms();
        record.id = if record.change.is_some() {
            self.run_change(0, &record, origin).await?
        } else {
            let body = encode(&record, origin);
            self.run_append(0, &body, &record.dest, &record.from)
                .await?
        };
        Ok(Arc::new(record))
    }

    /// (v3) Appends the change `record` (`id` 0: numbered here) and, in
    /// the same script, replaces its target (and, for a deletion, the
    /// target's edits, their text erased) in the log and the indexes.
    /// The replacements are made here from what was read, and the script
    /// applies them only if the members are still the ones read; another
    /// change in between makes it read again.
    async fn run_change(
        &self,
        id: u64,
        record: &MessageRecord,
        origin: Option<&str>,
    ) -> Result<u64, StoreError> {
        let Some(c) = record.change.as_deref() else {
            return Err(StoreError::Unavailable("not a change".into()));
        };
        let body = encode(record, origin);
        let mut tries = 0;
        loop {
            tries += 1;
            let mut swaps: Vec<(u64, String, String)> = Vec::new();
            let found = self.members(&[c.target]).await?;
            let target = found.first().and_then(|raw| decode(raw).map(|m| (raw, m)));
            let mut target_ix = Vec::new();
            if let Some((raw, m)) = &target {
                target_ix = indexes(&m.dest, &m.from);
                if let Some(next) = m.folded_with(record) {
                    swaps.push((m.id, (*raw).clone(), member(&next)));
                }
            }
            let edits_key = key(&["edits", &c.target.to_string()]);
            if c.op == ChangeOp::Delete {
                let ids: Vec<u64> = self
                    .read(async |con| con.smembers(&edits_key).await)
                    .await?;
                for raw in self.members(&ids).await? {
                    if let Some(erased) = decode(&raw).and_then(|e| e.erased_edit_of(c.target)) {
                        swaps.push((erased.id, raw, member(&erased)));
                    }
                }
            }
            self.writable()?;
            let epoch = self.epoch();
            let mut inv = numbering(&scripts().change);
            let change_ix = indexes(&record.dest, &record.from);
            for k in &change_ix {
                inv.key(k);
            }
            for k in &target_ix {
                inv.key(k);
            }
            inv.key(&edits_key);
            let mode = match c.op {
                ChangeOp::Edit => "edit",
                ChangeOp::Delete => "delete",
                ChangeOp::React { .. } => "",
            };
            inv.arg(epoch)
                .arg(id)
                .arg(&body)
                .arg(MESSAGES_CHANNEL)
                .arg(change_ix.len())
                .arg(target_ix.len())
                .arg(mode);
            for (score, old, new) in &swaps {
                inv.arg(score).arg(old).arg(new);
            }
            let mut con = self.inner.con();
            let result: redis::RedisResult<u64> = inv.invoke_async(&mut con).await;
            match result {
                Ok(id) => return Ok(self.numbered(id).await),
                Err(e) if e.code() == Some("CONFLICT") && tries < CHANGE_TRIES => continue,
                Err(e) => {
                    if e.code() != Some("CONFLICT") {
                        self.inner.healthy.store(false, Ordering::Relaxed);
                    }
                    return Err(unavailable(e));
                }
            }
        }
    }

    /// The epoch this node works in (empty before `startup`).
    fn epoch(&self) -> String {
        self.inner
            .epoch
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// After a numbering script succeeded with `id`: the head this node
    /// knows, health, and (Sentinel) a replica's copy.
    async fn numbered(&self, id: u64) -> u64 {
        self.inner.known_head.fetch_max(id, Ordering::Relaxed);
        self.inner.healthy.store(true, Ordering::Relaxed);
        self.replicated().await;
        id
    }

    /// The log's members with these ids (those it holds), in one round
    /// trip.
    async fn members(&self, ids: &[u64]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("ZRANGE")
                .arg(key(&["log"]))
                .arg(id)
                .arg(id)
                .arg("BYSCORE");
        }
        let raw: Vec<Vec<String>> = self.read(async |con| pipe.query_async(con).await).await?;
        Ok(raw.into_iter().flatten().collect())
    }

    async fn run_append(
        &self,
        id: u64,
        body: &str,
        dest: &Destination,
        from: &str,
    ) -> Result<u64, StoreError> {
        self.writable()?;
        let epoch = self.epoch();
        let mut inv = numbering(&scripts().append);
        let ix = indexes(dest, from);
        let n = ix.len();
        for ix in ix {
            inv.key(ix);
        }
        inv.arg(epoch)
            .arg(id)
            .arg(body)
            .arg(MESSAGES_CHANNEL)
            .arg(n);
        if let Destination::Dm { to } = dest {
            // (v3) Both sides' conversations, in the same step.
            let (from_key, to_key) = (username_key(from), username_key(to));
            inv.key(key(&["conversations", &to_key]))
                .key(key(&["peer-names", &to_key]))
                .key(key(&["conversations", &from_key]))
                .key(key(&["peer-names", &from_key]))
                .arg(from_key)
                .arg(from)
                .arg(to_key)
                .arg(to);
        }
        let mut con = self.inner.con();
        let result: redis::RedisResult<u64> = inv.invoke_async(&mut con).await;
        match result {
            Ok(id) => Ok(self.numbered(id).await),
            Err(e) => {
                self.inner.healthy.store(false, Ordering::Relaxed);
                if e.code() == Some("EPOCH") {
                    // The heartbeat takes the new Redis up; until then
                    // writes are refused.
                    tracing::warn!("redis lost its data: taking it up again");
                }
                Err(unavailable(e))
            }
        }
    }

    fn writable(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        Ok(())
    }

    /// Runs a write and keeps `healthy` in step with its outcome.
    async fn write<T: redis::FromRedisValue>(
        &self,
        f: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.writable()?;
        let mut con = self.inner.con();
        let result = f(&mut con).await;
        self.inner.healthy.store(result.is_ok(), Ordering::Relaxed);
        if result.is_ok() {
            self.replicated().await;
        }
        result.map_err(unavailable)
    }

    async fn read<T: redis::FromRedisValue>(
        &self,
        f: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut con = self.inner.con();
        f(&mut con).await.map_err(unavailable)
    }

    /// The session `token`, whichever node holds it.
    pub async fn session(&self, token: &str) -> Result<Option<SessionRecord>, StoreError> {
        let raw: Option<String> = self
            .read(async |con| con.hget(key(&["session", token]), "rec").await)
            .await?;
        Ok(raw
            .and_then(|r| serde_json::from_str::<StoredSession>(&r).ok())
            .map(Into::into))
    }

    /// Whether [`close`](Store::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }

    /// Takes the session `token` over for this node: it is the node's to
    /// change from now on. The record and the node that held it; `None`
    /// if there is no such session.
    pub async fn claim_session(
        &self,
        token: &str,
    ) -> Result<Option<(SessionRecord, String)>, StoreError> {
        let node = self.inner.node.clone();
        let k = key(&["session", token]);
        let raw: Option<(String, String)> = self
            .write(async |con| {
                scripts()
                    .claim_session
                    .key(k)
                    .arg(node)
                    .invoke_async(con)
                    .await
            })
            .await?;
        Ok(raw.and_then(|(r, owner)| {
            let rec = serde_json::from_str::<StoredSession>(&r).ok()?;
            Some((rec.into(), owner))
        }))
    }

    /// The last heartbeat of `node` (wall-clock ms), if it ever beat.
    pub async fn last_alive(&self, node: &str) -> Result<Option<u64>, StoreError> {
        self.read(async |con| con.get(key(&["alive", node])).await)
            .await
    }

    /// The messages with `after < id <= upto` (`None`: no upper bound),
    /// oldest first, at most `limit` (the oldest): what a subscriber
    /// missed.
    pub async fn range(
        &self,
        after: u64,
        upto: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
        let upto = upto.map_or_else(|| "+inf".to_owned(), |u| u.to_string());
        let raw: Vec<String> = self
            .read(async |con| {
                redis::cmd("ZRANGE")
                    .arg(key(&["log"]))
                    .arg(format!("({after}"))
                    .arg(upto)
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(con)
                    .await
            })
            .await?;
        Ok(decode_all(raw))
    }

    /// The newest `limit` members of `key` with `lo < score < hi` (`hi`
    /// `None`: no upper bound; `inclusive_hi`: `<=`), newest first.
    fn newest_cmd(
        key: &str,
        lo: u64,
        hi: Option<u64>,
        inclusive_hi: bool,
        limit: usize,
    ) -> redis::Cmd {
        let hi = match hi {
            None => "+inf".to_owned(),
            Some(h) if inclusive_hi => h.to_string(),
            Some(h) => format!("({h}"),
        };
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(key)
            .arg(hi)
            .arg(format!("({lo}"))
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        cmd
    }

    async fn page(&self, cmd: redis::Cmd, limit: usize) -> Result<Page, StoreError> {
        let raw: Vec<String> = self.read(async |con| cmd.query_async(con).await).await?;
        let mut msgs = decode_all(raw);
        let more = msgs.len() > limit;
        msgs.truncate(limit);
        msgs.reverse();
        Ok((msgs, more))
    }

    /// Starts a new epoch if Redis has none (a new or emptied Redis),
    /// raising the head above what this node has seen. Returns whether
    /// the epoch is new.
    async fn take_up(&self) -> Result<(String, u64, u64, bool), StoreError> {
        let known = self.inner.known_head.load(Ordering::Relaxed);
        let raise = if known > 0 {
            known.saturating_add(ID_GAP_AFTER_LOSS)
        } else {
            0
        };
        let fresh_epoch = random_epoch();
        let previous = self
            .inner
            .epoch
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let (epoch, head, pruned, fresh): (String, u64, u64, u8) = self
            .read(async |con| {
                scripts()
                    .start
                    .key(key(&["epoch"]))
                    .key(key(&["head"]))
                    .key(key(&["pruned"]))
                    .arg(fresh_epoch)
                    .arg(raise)
                    .arg(previous)
                    .invoke_async(con)
                    .await
            })
            .await?;
        if let Ok(mut e) = self.inner.epoch.lock() {
            e.clone_from(&epoch);
        }
        self.inner.known_head.fetch_max(head, Ordering::Relaxed);
        Ok((epoch, head, pruned, fresh == 1))
    }
}

/// Checks Redis every [`HEARTBEAT_INTERVAL`]: health follows whether it
/// answers, the node's `alive` key is refreshed, and a Redis that lost its
/// epoch is taken up again. Ends with the store.
async fn heartbeat(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Relaxed) {
            return;
        }
        let expected = inner.epoch.lock().map(|e| e.clone()).unwrap_or_default();
        if expected.is_empty() {
            continue; // before startup
        }
        if let Some(sentinel) = &inner.sentinel {
            follow_primary(&inner, sentinel).await;
        }
        let mut con = inner.con();
        let alive = key(&["alive", &inner.node]);
        let epoch: redis::RedisResult<Option<String>> = redis::pipe()
            .set_ex(&alive, now_ms(), 24 * 3600)
            .ignore()
            .get(key(&["epoch"]))
            .query_async::<(Option<String>,)>(&mut con)
            .await
            .map(|(e,)| e);
        match epoch {
            Ok(Some(e)) if e == expected => {
                inner.healthy.store(true, Ordering::Relaxed);
            }
            Ok(_) => {
                inner.healthy.store(false, Ordering::Relaxed);
                let store = RedisStore {
                    inner: Arc::clone(&inner),
                    url: String::new(),
                };
                match store.take_up().await {
                    Ok((_, head, pruned, _)) => {
                        inner.lost_upto.fetch_max(pruned, Ordering::Relaxed);
                        tracing::warn!(
                            head,
                            "redis lost its data (its epoch changed): taken up again; ids continue above {head}, older messages count as lost"
                        );
                        inner.healthy.store(true, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!("redis: {e}"),
                }
            }
            Err(e) => {
                if inner.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!("redis unreachable: {e}");
                }
            }
        }
    }
}

/// (v3) Asks the Sentinels which server is the primary and, if it moved
/// (a failover), moves the store's connection to it. The message feed
/// follows at its next reconnect ([`RedisStore::client`]).
async fn follow_primary(inner: &Inner, sentinel: &super::sentinel::SentinelUrl) {
    let now = match sentinel.primary().await {
        Ok(url) => url,
        Err(e) => {
            tracing::debug!("sentinel: {e}");
            return;
        }
    };
    let moved = {
        let mut primary = inner.primary.lock().unwrap_or_else(|e| e.into_inner());
        (*primary != now).then(|| std::mem::replace(&mut *primary, now.clone()))
    };
    // How many replicas the primary has now (they follow a failover a
    // little after it).
    let mut con = inner.con();
    let info: redis::RedisResult<String> = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut con)
        .await;
    if let Ok(info) = info
        && let Some(n) = info
            .lines()
            .find_map(|l| l.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
    {
        inner.replicas.store(n, Ordering::Relaxed);
    }
    let Some(before) = moved else { return };
    // The new primary's replicas are counted at the next beat.
    inner.replicas.store(0, Ordering::Relaxed);
    match manager(&now) {
        Ok(con) => {
            *inner.con.write().unwrap_or_else(|e| e.into_inner()) = con;
            tracing::warn!(from = %before, to = %now, "redis: the primary moved (failover); following it");
        }
        Err(e) => tracing::warn!("redis: cannot connect to the new primary {now}: {e}"),
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn startup(&self) -> Result<Startup, StoreError> {
        let (_, head, pruned, fresh) = self.take_up().await.map_err(|e| StoreError::Open {
            path: self.url.clone().into(),
            reason: format!("cannot reach Redis: {e}"),
        })?;
        if fresh && head > 0 {
            tracing::warn!("redis had no epoch but ids up to {head}: its data was lost in part");
        }
        let now = now_ms();
        let tokens: Vec<String> = self
            .read(async |con| con.smembers(key(&["sessions"])).await)
            .await?;
        let mut pipe = redis::pipe();
        for token in &tokens {
            pipe.hget(key(&["session", token]), "rec");
        }
        let recs: Vec<Option<String>> = if tokens.is_empty() {
            Vec::new()
        } else {
            self.read(async |con| pipe.query_async(con).await).await?
        };
        let mut sessions = Vec::new();
        let mut gone = Vec::new();
        for (token, rec) in tokens.into_iter().zip(recs) {
            match rec.and_then(|r| serde_json::from_str::<StoredSession>(&r).ok()) {
                Some(s) if s.window_ends_at.is_none_or(|end| end > now) => {
                    sessions.push(SessionRecord::from(s));
                }
                _ => gone.push(token),
            }
        }
        if !gone.is_empty() {
            let _: () = self
                .read(async |con| con.srem(key(&["sessions"]), gone).await)
                .await?;
        }
        sessions.sort_by(|a, b| a.token.cmp(&b.token));
        let last_alive: Option<u64> = self
            .read(async |con| con.get(key(&["alive", &self.inner.node])).await)
            .await?;
        self.inner.healthy.store(true, Ordering::Relaxed);
        Ok(Startup {
            head,
            sessions,
            pruned_upto: pruned,
            last_alive_ms: last_alive,
        })
    }

    async fn append(&self, msg: Arc<MessageRecord>) -> Result<Committed, StoreError> {
        let result = if msg.change.is_some() {
            self.run_change(msg.id, &msg, None).await
        } else {
            let body = encode(&msg, None);
            self.run_append(msg.id, &body, &msg.dest, &msg.from).await
        };
        Ok(Committed::ready(result.map(|_| ())))
    }

    async fn message(&self, id: u64) -> Result<Option<Arc<MessageRecord>>, StoreError> {
        Ok(self
            .members(&[id])
            .await?
            .first()
            .and_then(|raw| decode(raw)))
    }

    async fn put_session(&self, session: &SessionRecord) -> Result<Committed, StoreError> {
        let rec = serde_json::to_string(&StoredSession::from(session)).unwrap_or_default();
        let expires = session
            .window_ends_at
            .unwrap_or_else(|| now_ms() + LIVE_SESSION_TTL.as_millis() as u64);
        let node = self.inner.node.clone();
        let token = session.token.clone();
        let user = username_key(&session.username);
        let result = self
            .write(async |con| {
                scripts()
                    .put_session
                    .key(key(&["session", &token]))
                    .key(key(&["sessions"]))
                    .key(key(&["user-sessions", &user]))
                    .arg(rec)
                    .arg(node)
                    .arg(expires)
                    .arg(&token)
                    .arg(&user)
                    .invoke_async::<i64>(con)
                    .await
            })
            .await;
        Ok(Committed::ready(result.map(|_| ())))
    }

    async fn delete_session(&self, token: &str) -> Result<Committed, StoreError> {
        let node = self.inner.node.clone();
        let result = self
            .write(async |con| {
                scripts()
                    .delete_session
                    .key(key(&["session", token]))
                    .key(key(&["sessions"]))
                    .arg(node)
                    .arg(token)
                    .invoke_async::<i64>(con)
                    .await
            })
            .await;
        Ok(Committed::ready(result.map(|_| ())))
    }

    async fn replay(
        &self,
        user_key: &str,
        rooms: &BTreeMap<String, u64>,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
        if limit == 0 || upto <= after {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (room, &joined) in rooms {
            pipe.add_command(Self::newest_cmd(
                &key(&["room", room]),
                after.max(joined),
                Some(upto),
                true,
                limit,
            ));
        }
        pipe.add_command(Self::newest_cmd(
            &key(&["inbox", user_key]),
            after,
            Some(upto),
            true,
            limit,
        ));
        // Some of the feed may be the user's own broadcasts, which it does
        // not get back: read further.
        pipe.add_command(Self::newest_cmd(
            &key(&["feed"]),
            after,
            Some(upto),
            true,
            limit * 2,
        ));
        let raw: Vec<Vec<String>> = self.read(async |con| pipe.query_async(con).await).await?;
        let mut all: Vec<Arc<MessageRecord>> = raw
            .into_iter()
            .flat_map(decode_all)
            .filter(|m| m.is_for(user_key, rooms, after))
            .collect();
        all.sort_by_key(|m| m.id);
        all.dedup_by_key(|m| m.id);
        if all.len() > limit {
            all.drain(..all.len() - limit);
        }
        Ok(all)
    }

    async fn room_entries(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        events: bool,
    ) -> Result<Page, StoreError> {
        let cmd = Self::newest_cmd(&key(&["room", room]), 0, before, false, limit + 1);
        // History holds messages: room events are left out (a page may
        // then be short; `more` still says whether older entries exist).
        let (mut page, more) = self.page(cmd, limit).await?;
        page.retain(|m| m.is_message() || (events && m.note));
        Ok((page, more))
    }

    async fn dm_history(
        &self,
        a_key: &str,
        b_key: &str,
        before: Option<u64>,
        after: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let cmd = Self::newest_cmd(&dm_pair_key(a_key, b_key), after, before, false, limit + 1);
        // Changes are left out (a page may then be short; `more` still
        // says whether older entries exist).
        let (mut page, more) = self.page(cmd, limit).await?;
        page.retain(|m| m.is_message());
        Ok((page, more))
    }

    async fn queued_dms(
        &self,
        user_key: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
        if limit == 0 || upto <= after {
            return Ok(Vec::new());
        }
        let cmd = Self::newest_cmd(&key(&["inbox", user_key]), after, Some(upto), true, limit);
        Ok(self.page(cmd, limit).await?.0)
    }

    async fn account(&self, k: &str) -> Result<Option<AccountRecord>, StoreError> {
        let fields: BTreeMap<String, String> = self
            .read(async |con| con.hgetall(key(&["account", k])).await)
            .await?;
        Ok(account_from(fields))
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let all = self.hashes_of("accounts", "account").await?;
        Ok(all
            .into_iter()
            .filter_map(|(_, fields)| account_from(fields))
            .collect())
    }

    async fn create_account(&self, account: &AccountRecord) -> Result<Committed, StoreError> {
        let k = username_key(&account.username);
        let rooms = serde_json::to_string(&account.rooms).unwrap_or_default();
        let created: redis::RedisResult<i64> = {
            let mut con = self.inner.con();
            self.writable()?;
            scripts()
                .create_account
                .key(key(&["account", &k]))
                .key(key(&["accounts"]))
                .arg(&k)
                .arg(&account.username)
                .arg(&account.hash)
                .arg(rooms)
                .arg(account.seen)
                .arg(account.created_ms)
                .invoke_async(&mut con)
                .await
        };
        self.inner.healthy.store(created.is_ok(), Ordering::Relaxed);
        Ok(Committed::ready(match created {
            Ok(1) => Ok(()),
            Ok(_) => Err(StoreError::AccountExists(account.username.clone())),
            Err(e) => Err(unavailable(e)),
        }))
    }

    async fn update_account(
        &self,
        k: &str,
        change: AccountChange,
    ) -> Result<Committed, StoreError> {
        let (field, value) = match change {
            AccountChange::Password(hash) => ("hash", hash),
            AccountChange::Rooms(rooms) => {
                ("rooms", serde_json::to_string(&rooms).unwrap_or_default())
            }
            AccountChange::Seen(seen) => ("seen", seen.to_string()),
        };
        let result = self
            .write(async |con| {
                scripts()
                    .update_account
                    .key(key(&["account", k]))
                    .arg(field)
                    .arg(value)
                    .invoke_async::<i64>(con)
                    .await
            })
            .await;
        Ok(Committed::ready(result.map(|_| ())))
    }

    async fn delete_account(&self, k: &str) -> Result<Committed, StoreError> {
        let hashes: Vec<String> = self
            .read(async |con| con.hvals(key(&["user-tokens", k])).await)
            .await?;
        let result = self
            .write(async |con| {
                let mut pipe = redis::pipe();
                pipe.del(key(&["account", k]))
                    .srem(key(&["accounts"]), k)
                    .del(key(&["user-tokens", k]));
                for h in &hashes {
                    pipe.del(key(&["token", h]));
                }
                pipe.query_async::<()>(con).await
            })
            .await;
        Ok(Committed::ready(result))
    }

    /// A token is a hash `token:HASH` (its fields) and an entry id → hash
    /// in its account's `user-tokens:KEY`.
    async fn put_token(&self, t: &TokenRecord) -> Result<Committed, StoreError> {
        let mut fields = vec![
            ("id", t.id.clone()),
            ("user_key", t.user_key.clone()),
            ("label", t.label.clone()),
            ("created_ms", t.created_ms.to_string()),
        ];
        if let Some(at) = t.last_used_ms {
            fields.push(("last_used_ms", at.to_string()));
        }
        let result = self
            .write(async |con| {
                redis::pipe()
                    .atomic()
                    .hset_multiple(key(&["token", &t.hash]), &fields)
                    .hset(key(&["user-tokens", &t.user_key]), &t.id, &t.hash)
                    .query_async::<()>(con)
                    .await
            })
            .await;
        Ok(Committed::ready(result))
    }

    async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let fields: BTreeMap<String, String> = self
            .read(async |con| con.hgetall(key(&["token", hash])).await)
            .await?;
        Ok(token_from(hash, fields))
    }

    async fn tokens(&self, k: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let hashes: Vec<String> = self
            .read(async |con| con.hvals(key(&["user-tokens", k])).await)
            .await?;
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for h in &hashes {
            pipe.hgetall(key(&["token", h]));
        }
        let all: Vec<BTreeMap<String, String>> =
            self.read(async |con| pipe.query_async(con).await).await?;
        let mut found: Vec<TokenRecord> = hashes
            .iter()
            .zip(all)
            .filter_map(|(h, f)| token_from(h, f))
            .filter(|t| t.user_key == k)
            .collect();
        found.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(found)
    }

    async fn delete_token(&self, k: &str, id: &str) -> Result<Committed, StoreError> {
        let hash: Option<String> = self
            .read(async |con| con.hget(key(&["user-tokens", k]), id).await)
            .await?;
        let Some(hash) = hash else {
            return Ok(Committed::ready(Ok(())));
        };
        let result = self
            .write(async |con| {
                redis::pipe()
                    .atomic()
                    .del(key(&["token", &hash]))
                    .hdel(key(&["user-tokens", k]), id)
                    .query_async::<()>(con)
                    .await
            })
            .await;
        Ok(Committed::ready(result))
    }

    /// One script: the time moves forward only, and a revoked token is
    /// not brought back as a stub.
    async fn token_used(&self, hash: &str, at_ms: u64) -> Result<Committed, StoreError> {
        static TOUCH: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                "if redis.call('EXISTS', KEYS[1]) == 1 then
                   local cur = tonumber(redis.call('HGET', KEYS[1], 'last_used_ms') or '0')
                   if tonumber(ARGV[1]) > cur then
                     redis.call('HSET', KEYS[1], 'last_used_ms', ARGV[1])
                   end
                 end
                 return 1",
            )
        });
        let result = self
            .write(async |con| {
                TOUCH
                    .key(key(&["token", hash]))
                    .arg(at_ms)
                    .invoke_async::<i64>(con)
                    .await
            })
            .await;
        Ok(Committed::ready(result.map(|_| ())))
    }

    async fn put_setting(
        &self,
        scope: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<Committed, StoreError> {
        let result = self
            .write(async |con| {
                let mut pipe = redis::pipe();
                pipe.atomic();
                match &value {
                    Some(v) => pipe.hset(key(&["settings", scope]), field, v),
                    None => pipe.hdel(key(&["settings", scope]), field),
                };
                pipe.sadd(key(&["settings"]), scope)
                    .incr(key(&["settings-version"]), 1)
                    .query_async::<()>(con)
                    .await
            })
            .await;
        Ok(Committed::ready(result))
    }

    async fn settings(&self) -> Result<Vec<super::Setting>, StoreError> {
        let all = self.hashes_of("settings", "settings").await?;
        Ok(all
            .into_iter()
            .flat_map(|(scope, fields)| fields.into_iter().map(move |(f, v)| (scope.clone(), f, v)))
            .collect())
    }

    /// The user's set of tokens, then each session's record: a token
    /// whose session is gone (expired, or a record that does not read)
    /// leaves the set.
    async fn user_sessions(&self, k: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let set = key(&["user-sessions", k]);
        let tokens: Vec<String> = self.read(async |con| con.smembers(&set).await).await?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for token in &tokens {
            pipe.hget(key(&["session", token]), "rec");
        }
        let recs: Vec<Option<String>> = self.read(async |con| pipe.query_async(con).await).await?;
        let mut sessions = Vec::new();
        let mut gone = Vec::new();
        for (token, rec) in tokens.into_iter().zip(recs) {
            match rec.and_then(|r| serde_json::from_str::<StoredSession>(&r).ok()) {
                Some(s) => sessions.push(SessionRecord::from(s)),
                None => gone.push(token),
            }
        }
        if !gone.is_empty() {
            let _: () = self.read(async |con| con.srem(&set, gone).await).await?;
        }
        sessions.sort_by(|a, b| a.token.cmp(&b.token));
        Ok(sessions)
    }

    async fn markers(&self, k: &str) -> Result<BTreeMap<MarkerAt, u64>, StoreError> {
        let raw: BTreeMap<String, String> = self
            .read(async |con| con.hgetall(key(&["markers", k])).await)
            .await?;
        raw.into_iter()
            .map(|(at, id)| match (MarkerAt::parse(&at), id.parse::<u64>()) {
                (Some(at), Ok(id)) => Ok((at, id)),
                _ => Err(StoreError::Unavailable(format!(
                    "redis: a read marker of {k} does not read ({at}: {id})"
                ))),
            })
            .collect()
    }

    /// One script: the marker moves forward only, atomically, and is
    /// committed (as Redis commits) when it answers.
    async fn put_marker(&self, k: &str, at: &MarkerAt, id: u64) -> Result<u64, StoreError> {
        let stored: String = self
            .write(async |con| {
                scripts()
                    .put_marker
                    .key(key(&["markers", k]))
                    .arg(marker_key(at))
                    .arg(id)
                    .invoke_async(con)
                    .await
            })
            .await?;
        stored.parse().map_err(|_| {
            StoreError::Unavailable(format!(
                "redis: a read marker of {k} does not read ({stored})"
            ))
        })
    }

    /// The newest `limit` of the user's `conversations:` set above
    /// `after`, then their names.
    async fn conversations(
        &self,
        k: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = Self::newest_cmd(&key(&["conversations", k]), after, None, false, limit);
        cmd.arg("WITHSCORES");
        let peers: Vec<(String, f64)> = self.read(async |con| cmd.query_async(con).await).await?;
        if peers.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<Option<String>> = self
            .read(async |con| {
                redis::cmd("HMGET")
                    .arg(key(&["peer-names", k]))
                    .arg(peers.iter().map(|(p, _)| p).collect::<Vec<_>>())
                    .query_async(con)
                    .await
            })
            .await?;
        peers
            .into_iter()
            .zip(names)
            .map(|((peer_key, score), name)| {
                // Scores are ids, whole and far below 2^53.
                if !(score.is_finite() && score >= 0.0) {
                    return Err(StoreError::Unavailable(format!(
                        "redis: a conversation of {k} has the score {score}"
                    )));
                }
                Ok(ConversationRecord {
                    // Written with the score in one script; should the name
                    // be missing, the key still names the peer.
                    peer: name.unwrap_or_else(|| peer_key.clone()),
                    peer_key,
                    last_id: score as u64,
                })
            })
            .collect()
    }

    /// Reads each conversation's entries past its marker, oldest first, in
    /// pages of [`UNREAD_PAGE`] (one pipeline a round for every count
    /// still going), and counts those from others that are not room
    /// events, until the count reaches `cap` or the entries end. A room
    /// reads `room:<room>`; a DM conversation `dm:<a>:<b>`, its pair.
    async fn unread(
        &self,
        k: &str,
        asked: &[(MarkerAt, u64)],
        cap: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let mut counts = vec![0u64; asked.len()];
        if cap == 0 {
            return Ok(counts);
        }
        let page = cap.min(UNREAD_PAGE);
        // (which count, its key, the offset of its next page)
        let mut going: Vec<(usize, String, u64)> = asked
            .iter()
            .enumerate()
            .filter_map(|(i, (at, _))| match at {
                MarkerAt::Room(room) => Some((i, key(&["room", room]), 0)),
                // One's own DMs are never unread.
                MarkerAt::Dm(peer) if peer == k => None,
                MarkerAt::Dm(peer) => Some((i, dm_pair_key(k, peer), 0)),
            })
            .collect();
        while !going.is_empty() {
            let mut pipe = redis::pipe();
            for (i, zset, offset) in &going {
                pipe.cmd("ZRANGE")
                    .arg(zset)
                    .arg(format!("({}", asked[*i].1))
                    .arg("+inf")
                    .arg("BYSCORE")
                    .arg("LIMIT")
                    .arg(*offset)
                    .arg(page);
            }
            let raw: Vec<Vec<String>> = self.read(async |con| pipe.query_async(con).await).await?;
            let mut next = Vec::new();
            for ((i, zset, offset), members) in going.into_iter().zip(raw) {
                let full = members.len() as u64 == page;
                let others = decode_all(members)
                    .into_iter()
                    .filter(|m| m.is_message() && username_key(&m.from) != k)
                    .count() as u64;
                counts[i] = counts[i].saturating_add(others).min(cap);
                if full && counts[i] < cap {
                    next.push((i, zset, offset + page));
                }
            }
            going = next;
        }
        Ok(counts)
    }

    async fn settings_version(&self) -> Result<u64, StoreError> {
        let v: Option<u64> = self
            .read(async |con| con.get(key(&["settings-version"])).await)
            .await?;
        Ok(v.unwrap_or(0))
    }

    async fn prune(&self, older_than_ts: u64) -> Result<u64, StoreError> {
        loop {
            let (pruned, removed): (u64, u64) = self
                .write(async |con| {
                    scripts()
                        .prune
                        .key(key(&["log"]))
                        .key(key(&["pruned"]))
                        .arg(older_than_ts)
                        .arg(PRUNE_BATCH)
                        .invoke_async(con)
                        .await
                })
                .await?;
            if removed < PRUNE_BATCH {
                return Ok(pruned);
            }
        }
    }

    fn as_redis(&self) -> Option<RedisStore> {
        Some(self.clone())
    }

    fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed) && !self.inner.closed.load(Ordering::Relaxed)
    }

    async fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
    }
}

fn token_from(hash: &str, mut f: BTreeMap<String, String>) -> Option<TokenRecord> {
    Some(TokenRecord {
        id: f.remove("id")?,
        user_key: f.remove("user_key")?,
        hash: hash.to_owned(),
        label: f.remove("label").unwrap_or_default(),
        created_ms: f.remove("created_ms")?.parse().ok()?,
        last_used_ms: f.remove("last_used_ms").and_then(|v| v.parse().ok()),
    })
}

fn account_from(mut f: BTreeMap<String, String>) -> Option<AccountRecord> {
    let num = |v: Option<String>| v.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    Some(AccountRecord {
        username: f.remove("username")?,
        hash: f.remove("hash")?,
        rooms: f
            .remove("rooms")
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default(),
        seen: num(f.remove("seen")),
        created_ms: num(f.remove("created")),
    })
}

/// A throwaway `redis-server` on a free local port, for tests and
/// benchmarks: no snapshots, and append-only persistence only when asked.
/// Killed when dropped.
#[derive(Debug)]
pub struct LocalRedis {
    child: Option<std::process::Child>,
    port: u16,
    dir: std::path::PathBuf,
    aof: bool,
    /// (v3) The primary's port, for a replica.
    replica_of: Option<u16>,
}

impl LocalRedis {
    /// Starts one for a test. `None` (with the reason printed) when
    /// `redis-server` is not installed, unless the `CI` environment
    /// variable is set: under CI a missing Redis is a failure.
    pub fn for_test(dir: &std::path::Path, aof: bool) -> Option<LocalRedis> {
        match LocalRedis::start(dir, aof) {
            Ok(r) => Some(r),
            Err(e)
                if std::env::var_os("CI").is_none() && e.kind() == std::io::ErrorKind::NotFound =>
            {
                eprintln!("skipped: redis-server is not installed ({e}); CI installs it");
                None
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        }
    }

    /// Starts `redis-server` in `dir` (its AOF goes there when `aof`).
    pub fn start(dir: &std::path::Path, aof: bool) -> std::io::Result<LocalRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut r = LocalRedis {
            child: None,
            port,
            dir: dir.to_owned(),
            aof,
            replica_of: None,
        };
        r.spawn()?;
        Ok(r)
    }

    /// (v3) Starts a replica of the Redis on `primary` (port), with an
    /// append-only file synced at every write, in `dir`.
    pub fn start_replica(dir: &std::path::Path, primary: u16) -> std::io::Result<LocalRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut r = LocalRedis {
            child: None,
            port,
            dir: dir.to_owned(),
            aof: true,
            replica_of: Some(primary),
        };
        r.spawn()?;
        Ok(r)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = std::process::Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if self.aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .args(
                self.replica_of
                    .map(|p| {
                        vec![
                            "--replicaof".to_owned(),
                            "127.0.0.1".to_owned(),
                            p.to_string(),
                        ]
                    })
                    .unwrap_or_default(),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        self.child = Some(child);
        // Ready once it answers a PING (polled, with a deadline).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.answers() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(std::io::Error::other("redis-server did not start"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (SIGKILL: whatever was not persisted is lost).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again on the same port and directory.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
