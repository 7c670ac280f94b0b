//! [`SqliteStore`]: the default store, one SQLite file (`DIR/chat.db`).
//!
//! Writes: every write goes through one dedicated writer thread, fed by a
//! queue of at most [`WRITE_QUEUE_BOUND`] writes. The thread does group
//! commit: it blocks for the first write, takes whatever else is already
//! queued (up to [`MAX_BATCH`]), applies them all in one transaction and
//! commits once, then resolves each write's [`Committed`]. With
//! `synchronous=FULL` a commit costs an fsync (a few ms on a disk, about
//! 270 a second here), so one commit per message would cap the whole
//! server at that rate; grouped, the same fsync carries hundreds. Commits
//! also start at most every [`COMMIT_SPACING`], so that a fast fsync does
//! not turn a busy queue into many small commits.
//!
//! Reads run on a small pool of read-only connections inside
//! `spawn_blocking`. In WAL mode they never wait for the writer and see
//! only committed transactions.
//!
//! The async side never touches the database: it takes a queue slot (a
//! semaphore permit, which is where back-pressure waits), sends on a
//! channel, and gets a [`Committed`] to await or to hand a callback.
//!
//! Schema: versioned with `PRAGMA user_version`. Each step from version
//! `n` to `n + 1` is a function in [`MIGRATIONS`], run in one transaction
//! together with the `user_version` bump, so a crash mid-migration leaves
//! the previous version whole. To change the schema, append a step and
//! bump [`SCHEMA_VERSION`]; never edit a step that has shipped. A database
//! of a newer version is refused ([`StoreError::NewerSchema`]) rather than
//! guessed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chat_shared::username_key;
use rusqlite::types::Type;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Params, Row, Transaction, TransactionBehavior, params,
};
use tokio::sync::{Semaphore, oneshot};

use super::{
    AccountChange, AccountRecord, Change, ChangeOp, Committed, ConversationRecord, Destination,
    Folded, ID_GAP_AFTER_CRASH, MarkerAt, MessageRecord, Page, ReactionRecord, Resolver,
    SessionMeta, SessionRecord, Startup, Store, StoreError, TokenRecord, marker_key, now_ms,
};

/// The schema version this code reads and writes.
pub const SCHEMA_VERSION: u32 = 7;

/// Most writes queued and not yet committed. A full queue makes `append`
/// wait (back-pressure on senders rather than unbounded memory). It also
/// bounds how many delivered ids a crash can lose, which is what
/// [`ID_GAP_AFTER_CRASH`] must exceed.
pub const WRITE_QUEUE_BOUND: usize = 4096;

/// Most writes in one transaction. Past a few hundred a commit is no
/// longer fsync-bound (measured: 16 a commit ~4 000 msg/s, 256 ~36 000/s),
/// and a bigger batch only makes the first write in it wait longer.
pub const MAX_BATCH: usize = 512;

/// The least time from one commit's start to the next. Where an fsync is
/// cheap (a VM's disk, an SSD with a write cache) the writer would
/// otherwise commit as soon as anything is queued: about 930 commits a
/// second of ~32 DMs each at 30 000 DMs/s, each commit rewriting every
/// index leaf its few rows touch and paying an fsync. Spaced, the same
/// load commits ~250 times a second in batches of ~120: server CPU at
/// 30 000 DMs/s went from 96 % to 80-86 % of a core (BENCHMARKS.md). The
/// writer sleeps the spacing out rather than waiting on the queue, so that
/// senders do not wake it once per write (futex calls in 3 s at 35-40 000
/// DMs/s: 10 561 before, 164 after). A lone write that comes
/// after a quiet moment commits at once; where the fsync itself takes
/// longer than this, the spacing never adds a wait. It applies only after
/// a commit of at least [`SPACE_FROM`] writes: a light load (one or two
/// writes a commit) keeps sub-millisecond acks.
const COMMIT_SPACING: Duration = Duration::from_millis(4);

/// The batch size from which the next commit is spaced.
const SPACE_FROM: usize = 8;

/// How far past the DM watermark ids may run while DMs wait there
/// before the writer moves them into `dm_index` (see [`v2_to_v3`]). A
/// move of this many ids dirties about one leaf page per recipient rather
/// than one per DM; it also bounds what a read of one recipient's DMs
/// scans past the watermark.
const DM_TAIL_IDS: u64 = 8192;

/// The page cache of the writer's connection, in KiB.
const WRITER_CACHE_KIB: i64 = 16 * 1024;

/// (v3) The least time between two checkpoints that empty the WAL after
/// deletions (see `Writer::erase`): a deleted text is gone from the files
/// within about this long of its commit.
const ERASE_SPACING: Duration = Duration::from_millis(500);

/// WAL pages written between automatic checkpoints (about 40 MiB).
const CHECKPOINT_PAGES: i64 = 10_000;

/// How often the writer records that the process is alive (`alive_ms`),
/// on a batch or, when idle, on its own. A restart after a crash uses the
/// last beat as the moment live sessions lost their sockets, so this is
/// the precision of their recovery windows.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Idle read connections kept open; reads beyond that open their own.
const READ_POOL_MAX: usize = 4;

/// How long a connection waits for another's lock before failing: only
/// matters while an old instance still closes (tests, a quick restart).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database file inside the data directory.
const DB_FILE: &str = "chat.db";

// Keys of the `meta` table.
/// The largest id handed out that the store knows of.
const META_HEAD: &str = "head";
/// The highest id ever deleted by `prune`.
const META_PRUNED: &str = "pruned_upto";
/// 1 after a clean `close`, 0 from `startup` on: 0 at the next start means
/// the process died.
const META_CLEAN: &str = "clean";
/// The heartbeat: wall-clock ms of the last sign of life.
const META_ALIVE: &str = "alive_ms";
/// Every DM with an id up to this is in `dm_index` (and, from version 5,
/// counted in `conversations`); those past it are only in `messages`.
/// Written as a literal in [`v2_to_v3`].
const META_DM_INDEXED: &str = "dm_indexed_upto";

/// One schema step: version `i` to `i + 1` is `MIGRATIONS[i]`.
type Migration = fn(&Transaction) -> rusqlite::Result<()>;

/// Every schema step, in order. See the module doc.
const MIGRATIONS: [Migration; SCHEMA_VERSION as usize] = [
    v0_to_v1, v1_to_v2, v2_to_v3, v3_to_v4, v4_to_v5, v5_to_v6, v6_to_v7,
];

/// Version 1: messages, sessions, meta.
///
/// Each index serves one query shape (checked by a test on the query
/// plans): `messages_room` a room's history and a replay's rooms,
/// `messages_dm_to` (replaced by the table `dm_index` in version 3) a
/// replay's DMs (those to one user), `messages_dm_pair` (dropped in
/// version 2) `dm_history`, `messages_feed` a replay's globals and
/// broadcasts, `messages_ts` retention.
fn v0_to_v1(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE messages (
             id        INTEGER PRIMARY KEY,
             ts        INTEGER NOT NULL,
             kind      TEXT    NOT NULL CHECK (kind IN ('room', 'dm', 'global', 'broadcast')),
             from_name TEXT    NOT NULL,
             from_key  TEXT    NOT NULL,
             room      TEXT,
             to_name   TEXT,
             to_key    TEXT,
             text      TEXT    NOT NULL,
             action    INTEGER NOT NULL DEFAULT 0
         );
         CREATE INDEX messages_room ON messages (room, id) WHERE room IS NOT NULL;
         CREATE INDEX messages_dm_to ON messages (to_key, id) WHERE to_key IS NOT NULL;
         CREATE INDEX messages_dm_pair ON messages (to_key, from_key, id)
             WHERE to_key IS NOT NULL;
         CREATE INDEX messages_feed ON messages (kind, id)
             WHERE room IS NULL AND to_key IS NULL;
         CREATE INDEX messages_ts ON messages (ts);

         CREATE TABLE sessions (
             token          TEXT PRIMARY KEY,
             username       TEXT    NOT NULL,
             since          INTEGER NOT NULL,
             window_ends_at INTEGER
         ) WITHOUT ROWID;
         CREATE TABLE session_rooms (
             token     TEXT    NOT NULL,
             room      TEXT    NOT NULL,
             joined_at INTEGER NOT NULL,
             PRIMARY KEY (token, room)
         ) WITHOUT ROWID;

         CREATE TABLE meta (
             key   TEXT PRIMARY KEY,
             value INTEGER NOT NULL
         ) WITHOUT ROWID;",
    )
}

/// Version 1's step, for the test that migrates a version 1 database.
#[cfg(test)]
pub(super) fn v0_to_v1_for_tests(tx: &Transaction) -> rusqlite::Result<()> {
    v0_to_v1(tx)
}

/// Version 2: accounts, and which sessions belong to one. An account's
/// rooms are a JSON array of canonical room names (read and written whole,
/// never searched). Also drops `messages_dm_pair`: every DM wrote a leaf
/// page of it as well as one of `messages_dm_to`, which capped the writer
/// at about half the DMs per second (measured: 22-25 000 rows/s with it,
/// 35-50 000 without, in commits of 512). `dm_history` now walks one
/// recipient's DMs in `messages_dm_to` and keeps those from the other.
fn v1_to_v2(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DROP INDEX messages_dm_pair;
         CREATE TABLE accounts (
             key        TEXT    PRIMARY KEY,
             username   TEXT    NOT NULL,
             hash       TEXT    NOT NULL,
             rooms      TEXT    NOT NULL DEFAULT '[]',
             seen       INTEGER NOT NULL DEFAULT 0,
             created_ms INTEGER NOT NULL
         ) WITHOUT ROWID;
         ALTER TABLE sessions ADD COLUMN account INTEGER NOT NULL DEFAULT 0;",
    )
}

/// Version 3: DMs are found by recipient in `dm_index`, a table the
/// writer fills in bulk, instead of the index `messages_dm_to`, which
/// every DM's insert updated. With 1 000 recipients a commit of ~150 DMs
/// dirtied ~150 leaves of that index, each written whole to the WAL and
/// again by the checkpoint: most of the writer's work per DM. Now a DM
/// goes into `messages` alone (appended in id order, a few pages a
/// commit), and once the ids past the watermark `dm_indexed_upto` reach
/// [`DM_TAIL_IDS`] the writer copies the DMs past it into `dm_index`,
/// sorted by recipient, in the same transaction as the batch that crossed
/// the line, and raises the watermark. A read of one recipient's DMs
/// searches `dm_index` up to the watermark and the messages past it by id
/// (at most [`DM_TAIL_IDS`] of them), in one read transaction.
fn v2_to_v3(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DROP INDEX messages_dm_to;
         CREATE TABLE dm_index (
             to_key TEXT    NOT NULL,
             id     INTEGER NOT NULL,
             PRIMARY KEY (to_key, id)
         ) WITHOUT ROWID;
         INSERT INTO dm_index (to_key, id)
             SELECT to_key, id FROM messages WHERE to_key IS NOT NULL ORDER BY to_key, id;
         INSERT INTO meta (key, value)
             SELECT 'dm_indexed_upto', coalesce(max(id), 0) FROM messages;",
    )
}

/// Version 4 (v3 of the contract): moderation settings (roles, room
/// settings, bans, mutes, invites, blocks), small records by scope and
/// field, and `settings_version` in `meta`, raised by every change to
/// them, so that a server notices a change from another process by
/// reading one row. Room events are messages with `action` 2.
fn v3_to_v4(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE settings (
             scope TEXT NOT NULL,
             field TEXT NOT NULL,
             value TEXT NOT NULL,
             PRIMARY KEY (scope, field)
         ) WITHOUT ROWID;
         INSERT OR IGNORE INTO meta (key, value) VALUES ('settings_version', 0);",
    )
}

/// Version 5 (v3 of the contract): what `session:list`, read markers,
/// unread counts and the list of DM conversations need.
///
/// - `sessions` gains the session's [`SessionMeta`] (`public_id`,
///   `client`, `address`, `connected_at`) and its owner's key `user_key`,
///   indexed by `sessions_user`, so that an account's sessions are one
///   index search rather than a scan of every session. Existing rows get
///   `lower(username)`, which is [`username_key`] (ASCII lower case).
/// - `markers (user_key, at, id)`: a user's read markers, `at` the
///   [`marker_key`]. Small and written only on `read:mark`.
/// - `conversations (lo_key, hi_key, lo_name, hi_name, last_id)`: each
///   pair of users who exchanged DMs (keys in order), their names as the
///   newest DM between them has them, and its id; `conversations_hi` finds
///   a user's pairs on the `hi_key` side (the primary key, on the `lo_key`
///   side). Without it a user's conversations would mean every DM they ever
///   sent, and DMs are only found by recipient (`dm_index`): listing them on
///   each connect would scan the history.
///
///   It is kept the way `dm_index` is (see [`v2_to_v3`]), not on each DM's
///   insert: when the writer moves the DM tail into `dm_index` it also
///   folds the tail's DMs into `conversations`, one upsert per pair, sorted,
///   in the same transaction; a DM that arrives below the watermark
///   updates its pair at once. So a DM's insert costs nothing more; a
///   per-DM (or per-batch) upsert would dirty a leaf of this table for each
///   of a commit's distinct pairs, every commit, the cost that version 3
///   took off `messages_dm_to`. One row a pair rather than one a side
///   halves what a fold writes (the index holds no `last_id` or name, so
///   an update of a known pair leaves it alone).
///
///   What it costs the writer depends on how many distinct pairs a tail
///   holds. Measured with 400 000 DMs queued as fast as the writer takes
///   them (release build, 2 cores, about 100 000 DMs/s without the fold):
///   500 pairs, 0-10 % fewer DMs a second; 20 000 pairs, 20 % fewer;
///   100 000 pairs, 35 % fewer; pairs drawn at random among 1 000 users
///   (nearly every DM a new pair), 60 % fewer: a fold then upserts 6 000
///   to 8 000 pairs at ~5 µs each. An upsert per commit would do at least
///   as many (only repeats within one commit collapse) and dirty the
///   table's pages every commit rather than every move.
///
///   A reader takes the user's pairs (two index ranges, as many rows as
///   the user has peers) and the DMs past the watermark (at most
///   [`DM_TAIL_IDS`] ids, which a replay reads anyway), in one read
///   transaction. Filled here from every stored DM.
fn v4_to_v5(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "ALTER TABLE sessions ADD COLUMN user_key TEXT NOT NULL DEFAULT '';
         ALTER TABLE sessions ADD COLUMN public_id TEXT NOT NULL DEFAULT '';
         ALTER TABLE sessions ADD COLUMN client TEXT;
         ALTER TABLE sessions ADD COLUMN address TEXT;
         ALTER TABLE sessions ADD COLUMN connected_at INTEGER NOT NULL DEFAULT 0;
         UPDATE sessions SET user_key = lower(username);
         CREATE INDEX sessions_user ON sessions (user_key);

         CREATE TABLE markers (
             user_key TEXT    NOT NULL,
             at       TEXT    NOT NULL,
             id       INTEGER NOT NULL,
             PRIMARY KEY (user_key, at)
         ) WITHOUT ROWID;

         CREATE TABLE conversations (
             lo_key  TEXT    NOT NULL,
             hi_key  TEXT    NOT NULL,
             lo_name TEXT    NOT NULL,
             hi_name TEXT    NOT NULL,
             last_id INTEGER NOT NULL,
             PRIMARY KEY (lo_key, hi_key)
         ) WITHOUT ROWID;
         CREATE INDEX conversations_hi ON conversations (hi_key);",
    )?;
    tx.execute(FOLD_CONVERSATIONS, [0])?;
    Ok(())
}

/// Version 6 (v3 of the contract): replies, edits, deletions and
/// reactions.
///
/// - A change is a row of `messages` like any message (so that a replay
///   finds it by the same indexes, in order), with `action` 3 (edit: the
///   new `text`), 4 (delete), 5 or 6 (a reaction added or taken back:
///   the emoji in `text`), and `target` the id of the message it changes.
///   `messages_target` (partial: only changes have a `target`) finds a
///   message's edits when it is deleted, to erase their text.
/// - A message carries its state as its changes left it, written by the
///   writer in the same transaction as each change: `text` as last
///   edited, `edited` (ms), `deleted`, `reactions` (JSON, `[{emoji,
///   users}]`, NULL when none). So a history page stays one search of
///   `messages_room` (or `dm_index`), whatever was changed; `action < 2`
///   keeps changes and room events out of it.
/// - `reply_to`: the message a message answers.
fn v5_to_v6(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "ALTER TABLE messages ADD COLUMN reply_to INTEGER;
         ALTER TABLE messages ADD COLUMN target INTEGER;
         ALTER TABLE messages ADD COLUMN edited INTEGER;
         ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE messages ADD COLUMN reactions TEXT;
         CREATE INDEX messages_target ON messages (target) WHERE target IS NOT NULL;",
    )
}

/// `action` of a change row: an edit, a deletion, a reaction added, one
/// taken back (see [`v5_to_v6`]).
const ACTION_EDIT: i64 = 3;
const ACTION_DELETE: i64 = 4;
const ACTION_REACT_ON: i64 = 5;
const ACTION_REACT_OFF: i64 = 6;

/// Version 7 (v3 of the contract): API tokens (the HTTP API): each account's tokens, found by the
/// SHA-256 of the token (`hash`, unique) and listed by account
/// (`api_tokens_user`); a session remembers the token that opened it
/// (`sessions.token_id`), so that revoking the token ends it.
fn v6_to_v7(tx: &Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE api_tokens (
             id           TEXT    PRIMARY KEY,
             user_key     TEXT    NOT NULL,
             hash         TEXT    NOT NULL UNIQUE,
             label        TEXT    NOT NULL,
             created_ms   INTEGER NOT NULL,
             last_used_ms INTEGER
         );
         CREATE INDEX api_tokens_user ON api_tokens (user_key, created_ms);
         ALTER TABLE sessions ADD COLUMN token_id TEXT;",
    )
}

/// Folds the DMs with an id above ?1 into `conversations`: per pair the
/// newest DM (SQLite takes the bare columns from the row that gave
/// `max(id)`), sorted by key so that the writes walk the table once; a
/// pair only ever moves to a newer DM.
const FOLD_CONVERSATIONS: &str = "
    INSERT INTO conversations (lo_key, hi_key, lo_name, hi_name, last_id)
    SELECT lo_key, hi_key, lo_name, hi_name, last_id FROM (
        SELECT min(from_key, to_key) AS lo_key, max(from_key, to_key) AS hi_key,
               CASE WHEN from_key <= to_key THEN from_name ELSE to_name END AS lo_name,
               CASE WHEN from_key <= to_key THEN to_name ELSE from_name END AS hi_name,
               max(id) AS last_id
        FROM messages WHERE id > ?1 AND to_key IS NOT NULL AND action < 2
        GROUP BY min(from_key, to_key), max(from_key, to_key)
    ) WHERE true ORDER BY lo_key, hi_key
    ON CONFLICT (lo_key, hi_key) DO UPDATE
        SET lo_name = excluded.lo_name, hi_name = excluded.hi_name, last_id = excluded.last_id
        WHERE excluded.last_id > conversations.last_id";

/// A DM's pair into `conversations` (a DM below the watermark): ?1 the
/// sender's key, ?2 its name, ?3 the recipient's key, ?4 its name, ?5 the
/// DM's id.
const UPSERT_CONVERSATION: &str = "
    INSERT INTO conversations (lo_key, hi_key, lo_name, hi_name, last_id)
    VALUES (min(?1, ?3), max(?1, ?3), CASE WHEN ?1 <= ?3 THEN ?2 ELSE ?4 END,
            CASE WHEN ?1 <= ?3 THEN ?4 ELSE ?2 END, ?5)
    ON CONFLICT (lo_key, hi_key) DO UPDATE
        SET lo_name = excluded.lo_name, hi_name = excluded.hi_name, last_id = excluded.last_id
        WHERE excluded.last_id > conversations.last_id";

/// Version 2's step, for the test that migrates a version 2 database.
#[cfg(test)]
pub(super) fn v1_to_v2_for_tests(tx: &Transaction) -> rusqlite::Result<()> {
    v1_to_v2(tx)
}

/// Every step up to version `to`, for tests that build an older database.
#[cfg(test)]
pub(super) fn migrate_for_tests(tx: &Transaction, to: u32) -> rusqlite::Result<()> {
    for step in &MIGRATIONS[..to as usize] {
        step(tx)?;
    }
    tx.pragma_update(None, "user_version", to)
}

/// Selects whole messages; `$rest` is the `WHERE … ORDER BY … LIMIT …`.
macro_rules! select_messages {
    ($rest:literal) => {
        concat!(
            "SELECT id, ts, kind, from_name, room, to_name, text, action,
                    reply_to, target, edited, deleted, reactions FROM messages ",
            $rest
        )
    };
}

/// `room_history`: ?1 room, ?2 before, ?3 limit.
/// Room events (`action` 2) and changes (3 and up) are left out:
/// history holds messages.
const ROOM_PAGE: &str =
    select_messages!("WHERE room = ?1 AND id < ?2 AND action < 2 ORDER BY id DESC LIMIT ?3");
/// `room_entries` with events: the same, room events included.
const ROOM_PAGE_EVENTS: &str =
    select_messages!("WHERE room = ?1 AND id < ?2 AND action < 3 ORDER BY id DESC LIMIT ?3");
/// (v3) Erases the text of the edits (?2) of the message ?1, found
/// through `messages_target`.
const ERASE_EDITS: &str =
    "UPDATE messages SET text = '' WHERE target = ?1 AND action = ?2 AND text <> ''";
/// (v3) One message by id.
const MESSAGE_BY_ID: &str = select_messages!("WHERE id = ?1");
/// A replay's room: ?1 room, ?2 after, ?3 upto, ?4 limit.
const ROOM_RANGE: &str =
    select_messages!("WHERE room = ?1 AND id > ?2 AND id <= ?3 ORDER BY id DESC LIMIT ?4");
/// DMs to one user up to the watermark, through `dm_index`: ?1 recipient
/// key, ?2 after, ?3 below (at most the watermark + 1), ?4 a sender to
/// keep (NULL: any, changes included, as a replay wants them; given:
/// messages only, as history wants them), ?5 limit.
const DM_INDEXED: &str = "SELECT m.id, m.ts, m.kind, m.from_name, m.room, m.to_name, m.text,
         m.action, m.reply_to, m.target, m.edited, m.deleted, m.reactions
     FROM dm_index d JOIN messages m ON m.id = d.id
     WHERE d.to_key = ?1 AND d.id > ?2 AND d.id < ?3
         AND (?4 IS NULL OR (m.from_key = ?4 AND m.action < 2))
     ORDER BY d.id DESC LIMIT ?5";
/// DMs to one user past the watermark, by id in `messages`: the same
/// parameters, ?2 at least the watermark.
const DM_TAIL: &str = select_messages!(
    "WHERE id > ?2 AND id < ?3 AND to_key = ?1 AND (?4 IS NULL OR (from_key = ?4 AND action < 2))
     ORDER BY id DESC LIMIT ?5"
);
/// (v3) A user's conversations as folded up to the watermark, those where
/// the user is the pair's `hi_key` then those where it is its `lo_key`:
/// ?1 the user, ?2 after. Two index ranges, a row per peer.
const CONVERSATIONS: [&str; 2] = [
    "SELECT lo_key, lo_name, last_id FROM conversations WHERE hi_key = ?1 AND last_id > ?2",
    "SELECT hi_key, hi_name, last_id FROM conversations WHERE lo_key = ?1 AND last_id > ?2",
];
/// (v3) The DMs either way of ?1 with an id above ?2 (at least the
/// watermark, so at most [`DM_TAIL_IDS`] ids), newest first: what
/// `conversations` does not hold yet.
const CONVERSATIONS_TAIL: &str = "SELECT from_key, from_name, to_key, to_name, id FROM messages
     WHERE id > ?2 AND to_key IS NOT NULL AND (to_key = ?1 OR from_key = ?1) AND action < 2
     ORDER BY id DESC";
/// (v3) The newest DM between ?1 and ?2 as folded into `conversations`.
const CONVERSATION_LAST: &str =
    "SELECT last_id FROM conversations WHERE lo_key = min(?1, ?2) AND hi_key = max(?1, ?2)";
/// (v3) Unread in a room: messages of ?1 above ?2 not from ?3 and not room
/// events, at most ?4 (the limit bounds the work, not only the answer).
const UNREAD_ROOM: &str = "SELECT count(*) FROM (SELECT 1 FROM messages
     WHERE room = ?1 AND id > ?2 AND action < 2 AND from_key <> ?3 LIMIT ?4)";
/// (v3) Unread DMs to ?1 from ?2 with ?3 < id <= ?4 (the watermark),
/// through `dm_index`, at most ?5.
const UNREAD_DM_INDEXED: &str = "SELECT count(*) FROM (SELECT 1
     FROM dm_index d JOIN messages m ON m.id = d.id
     WHERE d.to_key = ?1 AND d.id > ?3 AND d.id <= ?4 AND m.from_key = ?2 AND m.action < 2
     LIMIT ?5)";
/// (v3) The DMs to ?1 with an id above ?2 (at least the watermark), their
/// senders and ids: unread DMs past the watermark, for every peer at once.
const UNREAD_DM_TAIL: &str =
    "SELECT from_key, id FROM messages WHERE id > ?2 AND to_key = ?1 AND action < 2";
/// A replay's globals or broadcasts: ?1 kind, ?2 after, ?3 upto, ?4 a
/// sender to leave out (NULL: none), ?5 limit. The two `IS NULL` terms
/// repeat the partial index's condition so that SQLite may use it.
const FEED: &str = select_messages!(
    "WHERE room IS NULL AND to_key IS NULL AND kind = ?1 AND id > ?2 AND id <= ?3
     AND (?4 IS NULL OR from_key <> ?4) ORDER BY id DESC LIMIT ?5"
);

/// Most messages in one `INSERT` (a power of two; see [`insert_messages`]).
const INSERT_ROWS: usize = 32;

/// `INSERT INTO messages … VALUES` with `rows` rows of parameters.
fn insert_messages_sql(rows: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    format!(
        "INSERT INTO messages
         (id, ts, kind, from_name, from_key, room, to_name, to_key, text, action,
          reply_to, target)
         VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// The statements of [`insert_messages`], one per power of two up to
/// [`INSERT_ROWS`].
static INSERT_MESSAGES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (0..=INSERT_ROWS.ilog2())
        .map(|k| insert_messages_sql(1 << k))
        .collect()
});

/// One message as the columns of `messages`.
struct MessageRow<'a> {
    id: i64,
    ts: i64,
    kind: &'static str,
    from: &'a str,
    from_key: String,
    room: Option<&'a str>,
    to_name: Option<&'a str>,
    to_key: Option<String>,
    text: &'a str,
    /// 0 a message, 1 an action (`/me`), 2 (v3) a room event, 3 to 6 a
    /// change (see [`v5_to_v6`]).
    action: i64,
    reply_to: Option<i64>,
    target: Option<i64>,
}

impl<'a> MessageRow<'a> {
    fn of(m: &'a MessageRecord) -> Self {
        let (kind, room, to_name, to_key) = match &m.dest {
            Destination::Room(room) => ("room", Some(room.as_str()), None, None),
            Destination::Dm { to } => ("dm", None, Some(to.as_str()), Some(username_key(to))),
            Destination::Global => ("global", None, None, None),
            Destination::Broadcast => ("broadcast", None, None, None),
        };
        let (action, text, target) = match m.change.as_deref() {
            None if m.note => (2, m.text.as_str(), None),
            None => (i64::from(m.action), m.text.as_str(), None),
            Some(c) => {
                let (action, text) = match &c.op {
                    ChangeOp::Edit => (ACTION_EDIT, m.text.as_str()),
                    ChangeOp::Delete => (ACTION_DELETE, ""),
                    ChangeOp::React { emoji, on: true } => (ACTION_REACT_ON, emoji.as_str()),
                    ChangeOp::React { emoji, on: false } => (ACTION_REACT_OFF, emoji.as_str()),
                };
                (action, text, Some(to_sql(c.target)))
            }
        };
        MessageRow {
            id: to_sql(m.id),
            ts: to_sql(m.ts),
            kind,
            from: &m.from,
            from_key: username_key(&m.from),
            room,
            to_name,
            to_key,
            text,
            action,
            reply_to: m.reply_to.map(to_sql),
            target,
        }
    }

    fn params(&self) -> [&dyn rusqlite::ToSql; 12] {
        [
            &self.id,
            &self.ts,
            &self.kind,
            &self.from,
            &self.from_key,
            &self.room,
            &self.to_name,
            &self.to_key,
            &self.text,
            &self.action,
            &self.reply_to,
            &self.target,
        ]
    }
}

/// Inserts messages in statements of up to [`INSERT_ROWS`] rows (one
/// statement's overhead and one cursor over the table's end for many
/// rows, instead of one each). `dm_indexed` as for [`apply`]: a DM at or
/// below it also goes into `dm_index` and `conversations` at once.
fn insert_messages(
    tx: &Transaction,
    msgs: &[&MessageRecord],
    dm_indexed: u64,
) -> rusqlite::Result<()> {
    let mut rest = msgs;
    while !rest.is_empty() {
        // The largest power of two that fits: a handful of statements.
        let k = rest.len().min(INSERT_ROWS).ilog2();
        let (chunk, tail) = rest.split_at(1 << k);
        let rows: Vec<MessageRow> = chunk.iter().map(|m| MessageRow::of(m)).collect();
        let params: Vec<&dyn rusqlite::ToSql> = rows.iter().flat_map(MessageRow::params).collect();
        tx.prepare_cached(&INSERT_MESSAGES[k as usize])?
            .execute(params.as_slice())?;
        for row in &rows {
            if let Some(to_key) = row.to_key.as_ref().filter(|_| row.id <= to_sql(dm_indexed)) {
                tx.prepare_cached("INSERT OR IGNORE INTO dm_index (to_key, id) VALUES (?1, ?2)")?
                    .execute(params![to_key, row.id])?;
                // The next fold only takes DMs past the watermark: this
                // one's pair goes into `conversations` now.
                tx.prepare_cached(UPSERT_CONVERSATION)?.execute(params![
                    row.from_key,
                    row.from,
                    to_key,
                    row.to_name,
                    row.id
                ])?;
            }
        }
        rest = tail;
    }
    Ok(())
}

/// (v3) Applies the change `m` (already inserted) to its target's row,
/// in the same transaction. Returns whether it was a deletion, whose
/// erased text the WAL still holds until the next checkpoint.
fn fold_change(tx: &Transaction, m: &MessageRecord) -> rusqlite::Result<bool> {
    let Some(c) = m.change.as_deref() else {
        return Ok(false);
    };
    let target = tx
        .prepare_cached(MESSAGE_BY_ID)?
        .query_row([to_sql(c.target)], message_from_row)
        .optional()?;
    if let Some(next) = target.and_then(|t| t.folded_with(m)) {
        let reactions = (!next.reactions().is_empty())
            .then(|| serde_json::to_string(next.reactions()).unwrap_or_default());
        tx.prepare_cached(
            "UPDATE messages SET text = ?2, edited = ?3, deleted = ?4, reactions = ?5
             WHERE id = ?1",
        )?
        .execute(params![
            to_sql(next.id),
            next.text,
            next.edited().map(to_sql),
            next.deleted(),
            reactions
        ])?;
    }
    if c.op != ChangeOp::Delete {
        return Ok(false);
    }
    // The message's earlier edits carried its text too.
    tx.prepare_cached(ERASE_EDITS)?
        .execute(params![to_sql(c.target), ACTION_EDIT])?;
    Ok(true)
}

/// The SQLite store. See the module doc.
pub struct SqliteStore {
    path: PathBuf,
    queue: mpsc::Sender<Op>,
    /// One permit per queue slot: taken before a send, given back by the
    /// writer once the write is committed (or failed).
    slots: Arc<Semaphore>,
    shared: Arc<Shared>,
    readers: Arc<ReadPool>,
}

/// What the writer reports to the async side.
#[derive(Debug)]
struct Shared {
    healthy: AtomicBool,
    commits: AtomicU64,
}

/// A committed batch's outcomes, one per write, in queue order.
type Outcomes = Vec<(Resolver, Result<(), StoreError>)>;

/// How the writer hands out a commit's outcomes. Each outcome wakes the
/// task that waits for it or runs its callback (a message's ack); done
/// from the writer thread, every woken task would go through the runtime's
/// shared queue and might wake a parked worker, and every callback would
/// run on the writer's time. So the writer sends the whole batch to a
/// relay task on the runtime, one wake-up a commit, and the relay settles
/// them from inside the runtime.
enum Outcome {
    Relay(tokio::sync::mpsc::UnboundedSender<Outcomes>),
    /// Opened outside a runtime: the writer resolves them itself.
    Direct,
}

impl Outcome {
    /// The relay on the current runtime, if there is one. It ends when the
    /// writer does.
    fn start() -> Self {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Outcome::Direct;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcomes>();
        runtime.spawn(async move {
            while let Some(outcomes) = rx.recv().await {
                for (done, outcome) in outcomes {
                    done.resolve(outcome);
                }
            }
        });
        Outcome::Relay(tx)
    }

    fn hand_out(&self, outcomes: Outcomes) {
        let outcomes = match self {
            // A relay that is gone (its runtime shut down) hands them back.
            Outcome::Relay(relay) => match relay.send(outcomes) {
                Ok(()) => return,
                Err(tokio::sync::mpsc::error::SendError(back)) => back,
            },
            Outcome::Direct => outcomes,
        };
        for (done, outcome) in outcomes {
            done.resolve(outcome);
        }
    }
}

/// What the writer thread is asked to do, in queue order.
enum Op {
    /// A write that joins the next group commit.
    Write(Write, Resolver),
    /// Runs alone, after the writes queued before it.
    Startup(oneshot::Sender<Result<Startup, StoreError>>),
    Prune(u64, oneshot::Sender<Result<u64, StoreError>>),
    /// Answered once the connection is closed.
    Close(oneshot::Sender<()>),
}

enum Write {
    Append(Arc<MessageRecord>),
    PutSession(SessionRecord),
    DeleteSession(String),
    CreateAccount(AccountRecord),
    UpdateAccount(String, AccountChange),
    DeleteAccount(String),
    /// (v3) scope, field, value (`None` removes it).
    PutSetting(String, String, Option<String>),
    /// (v3) A read marker moved forward: user key, [`marker_key`], id.
    PutMarker(String, String, u64),
    /// (v3) A new API token.
    PutToken(TokenRecord),
    /// (v3) A revoked API token: user key, id.
    DeleteToken(String, String),
    /// (v3) A use of an API token: its hash, wall-clock ms.
    TokenUsed(String, u64),
}

/// A write that ran but was refused by the data (not a failure of the
/// store: the transaction goes on, and the store stays healthy).
type Refusal = Option<StoreError>;

/// A run-time database failure.
fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("database error: {e}"))
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the store is closed or its writer has stopped".into())
}

/// Ids, timestamps and counts are u64 in Rust and i64 in SQLite. Neither
/// reaches 2^63 in practice; saturating keeps a bad value from wrapping.
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/chat.db`, checks that it is a
    /// chat-server database this version understands, migrates it to
    /// [`SCHEMA_VERSION`] and starts the writer thread. Blocking: call it
    /// before serving (or from `spawn_blocking`). Every failure names the
    /// path and says what to do.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, DM_TAIL_IDS)
    }

    /// [`open`](Self::open) with another [`DM_TAIL_IDS`], for tests that
    /// cross the DM watermark every few messages.
    #[cfg(test)]
    pub(super) fn open_with_dm_tail(dir: &Path, dm_tail_ids: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, dm_tail_ids)
    }

    fn open_with(dir: &Path, dm_tail_ids: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: dir.to_path_buf(),
            reason: format!(
                "cannot create the data directory ({e}): choose another directory or fix its permissions"
            ),
        })?;
        let path = dir.join(DB_FILE);
        let conn = open_writer(&path)?;
        let dm_indexed = get_meta(&conn, META_DM_INDEXED)
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: format!(
                    "cannot read the database ({e}): move it aside or restore a backup"
                ),
            })?
            .unwrap_or(0);
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            commits: AtomicU64::new(0),
        });
        let slots = Arc::new(Semaphore::new(WRITE_QUEUE_BOUND));
        let (queue, rx) = mpsc::channel();
        let writer = Writer {
            conn,
            rx,
            shared: Arc::clone(&shared),
            slots: Arc::clone(&slots),
            head: 0,
            started: false,
            last_beat: Instant::now(),
            last_commit: Instant::now(),
            last_batch: 0,
            dm_indexed,
            // Unknown until the next move: a crash may have left some.
            dm_tail: true,
            dm_tail_ids,
            outcome: Outcome::start(),
            erase_pending: false,
            last_erase: Instant::now(),
        };
        std::thread::Builder::new()
            .name("chat-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(SqliteStore {
            readers: Arc::new(ReadPool {
                path: path.clone(),
                idle: Mutex::new(Vec::new()),
            }),
            path,
            queue,
            slots,
            shared,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Transactions committed so far: with group commit, fewer than the
    /// writes. For tests and metrics.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Takes a queue slot (waiting while the queue is full) and queues
    /// `op`. Queue order is call order.
    async fn enqueue(&self, op: Op) -> Result<(), StoreError> {
        let slot = self.slots.acquire().await.map_err(|_| writer_gone())?;
        // The writer gives the slot back once the op is done.
        slot.forget();
        self.queue.send(op).map_err(|_| {
            self.shared.healthy.store(false, Ordering::Relaxed);
            writer_gone()
        })
    }

    async fn write(&self, write: Write) -> Result<Committed, StoreError> {
        let (done, committed) = Committed::pending();
        self.enqueue(Op::Write(write, done)).await?;
        Ok(committed)
    }

    /// Runs `f` on a read connection, off the async runtime.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

/// Opens the writer's connection and brings the schema up to date.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let fail = |reason: String| StoreError::Open {
        path: path.to_path_buf(),
        reason,
    };
    let corrupt = |e: rusqlite::Error| {
        fail(format!(
            "it is not a chat-server database or is corrupt ({e}): move it aside or restore a backup"
        ))
    };
    let mut conn = Connection::open(path).map_err(|e| {
        fail(format!(
            "cannot open the file ({e}): check the path and its permissions"
        ))
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| fail(e.to_string()))?;
    // Reading the schema cookie reads the header and the schema: a file
    // that is not a database, or whose first pages are damaged, fails here
    // rather than at the first message.
    conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))
        .map_err(corrupt)?;
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(corrupt)?;
    let found = u32::try_from(found).map_err(|_| {
        fail(format!(
            "it has schema version {found}, which no chat-server writes: move it aside or restore a backup"
        ))
    })?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == 0 {
        // Version 0 is a new, empty file. One that already has tables
        // belongs to something else: never migrate into it.
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(corrupt)?;
        if tables > 0 {
            return Err(fail(
                "it is an SQLite database but not a chat-server one: move it aside or choose another directory"
                    .into(),
            ));
        }
    }
    // WAL: readers never wait for the writer, and a commit appends to one
    // file. FULL: a commit is on disk before its ack goes out.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(corrupt)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(fail(format!(
            "cannot use write-ahead logging (journal mode stays {mode}): put the data directory on a local file system"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| fail(e.to_string()))?;
    // A commit appends every page it dirtied to the WAL, and a checkpoint
    // copies them to the database file. DMs dirty a leaf per recipient in
    // the DM indexes, so checkpointing every 1 000 pages (the default) and a
    // 2 MiB page cache made the writer re-read and re-copy the same pages
    // over and over: the DM ceiling went from 20 000 to 30 000/s with these
    // (BENCHMARKS.md). The cache is bounded, so memory does not grow with
    // the history.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(|e| fail(e.to_string()))?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)
        .map_err(|e| fail(e.to_string()))?;
    // (v3) A deleted message's text must leave the file, not only the
    // table: with secure_delete, the space a row (or a rewritten row)
    // gave up is overwritten with zeros. The WAL still holds the pages as
    // they were until a checkpoint empties it (see `Writer::erase`).
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(|e| fail(e.to_string()))?;
    // Every statement the writer runs stays prepared (the default cache
    // of 16 is fewer than it has).
    conn.set_prepared_statement_cache_capacity(64);
    for (version, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = version + 1;
        let migrated = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            step(&tx)?;
            tx.pragma_update(None, "user_version", to_sql(to as u64))?;
            tx.commit()
        })();
        migrated.map_err(|e| {
            fail(format!(
                "cannot migrate the schema to version {to} ({e}): check free space and permissions"
            ))
        })?;
    }
    Ok(conn)
}

/// Runs `f` in one immediate transaction and commits; any error rolls
/// back (dropping an uncommitted transaction does).
fn in_transaction<T>(
    conn: &mut Connection,
    f: impl FnOnce(&Transaction) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

fn get_meta(c: &Connection, key: &str) -> rusqlite::Result<Option<u64>> {
    c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get::<_, i64>(0))
        .optional()
        .map(|v| v.map(from_sql))
}

fn set_meta(tx: &Transaction, key: &str, value: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, to_sql(value)])?;
    Ok(())
}

/// Sets `key` to `value` unless it already holds more.
fn raise_meta(tx: &Transaction, key: &str, value: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
    )?
    .execute(params![key, to_sql(value)])?;
    Ok(())
}

/// Applies one write. `dm_indexed` is the DM watermark: a DM at or below
/// it (one that reached the writer after a higher id) goes into
/// `dm_index` at once, since the next move only takes DMs past it.
fn apply(tx: &Transaction, write: &Write, dm_indexed: u64) -> rusqlite::Result<Refusal> {
    match write {
        Write::Append(m) => insert_messages(tx, &[m], dm_indexed)?,
        Write::PutSession(s) => {
            tx.prepare_cached(
                "INSERT INTO sessions (token, username, since, window_ends_at, account,
                     user_key, public_id, client, address, connected_at, token_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (token) DO UPDATE SET username = excluded.username,
                     since = excluded.since, window_ends_at = excluded.window_ends_at,
                     account = excluded.account, user_key = excluded.user_key,
                     public_id = excluded.public_id, client = excluded.client,
                     address = excluded.address, connected_at = excluded.connected_at,
                     token_id = excluded.token_id",
            )?
            .execute(params![
                s.token,
                s.username,
                to_sql(s.since),
                s.window_ends_at.map(to_sql),
                s.account,
                username_key(&s.username),
                s.meta.id,
                s.meta.client,
                s.meta.address,
                to_sql(s.meta.connected_at),
                s.meta.token_id,
            ])?;
            tx.prepare_cached("DELETE FROM session_rooms WHERE token = ?1")?
                .execute([&s.token])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO session_rooms (token, room, joined_at) VALUES (?1, ?2, ?3)",
            )?;
            for (room, &joined) in &s.rooms {
                insert.execute(params![s.token, room, to_sql(joined)])?;
            }
        }
        Write::DeleteSession(token) => {
            tx.prepare_cached("DELETE FROM session_rooms WHERE token = ?1")?
                .execute([token])?;
            tx.prepare_cached("DELETE FROM sessions WHERE token = ?1")?
                .execute([token])?;
        }
        Write::CreateAccount(a) => {
            let rooms = serde_json::to_string(&a.rooms).unwrap_or_else(|_| "[]".into());
            let created = tx
                .prepare_cached(
                    "INSERT INTO accounts (key, username, hash, rooms, seen, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key) DO NOTHING",
                )?
                .execute(params![
                    username_key(&a.username),
                    a.username,
                    a.hash,
                    rooms,
                    to_sql(a.seen),
                    to_sql(a.created_ms)
                ])?;
            if created == 0 {
                return Ok(Some(StoreError::AccountExists(a.username.clone())));
            }
        }
        Write::UpdateAccount(key, change) => {
            match change {
                AccountChange::Password(hash) => tx
                    .prepare_cached("UPDATE accounts SET hash = ?2 WHERE key = ?1")?
                    .execute(params![key, hash])?,
                AccountChange::Rooms(rooms) => {
                    let rooms = serde_json::to_string(rooms).unwrap_or_else(|_| "[]".into());
                    tx.prepare_cached("UPDATE accounts SET rooms = ?2 WHERE key = ?1")?
                        .execute(params![key, rooms])?
                }
                AccountChange::Seen(seen) => tx
                    .prepare_cached("UPDATE accounts SET seen = max(seen, ?2) WHERE key = ?1")?
                    .execute(params![key, to_sql(*seen)])?,
            };
        }
        Write::DeleteAccount(key) => {
            tx.prepare_cached("DELETE FROM accounts WHERE key = ?1")?
                .execute([key])?;
            tx.prepare_cached("DELETE FROM api_tokens WHERE user_key = ?1")?
                .execute([key])?;
        }
        Write::PutToken(t) => {
            tx.prepare_cached(
                "INSERT INTO api_tokens (id, user_key, hash, label, created_ms, last_used_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                t.id,
                t.user_key,
                t.hash,
                t.label,
                to_sql(t.created_ms),
                t.last_used_ms.map(to_sql)
            ])?;
        }
        Write::DeleteToken(key, id) => {
            tx.prepare_cached("DELETE FROM api_tokens WHERE user_key = ?1 AND id = ?2")?
                .execute([key, id])?;
        }
        Write::TokenUsed(hash, at) => {
            tx.prepare_cached(
                "UPDATE api_tokens SET last_used_ms = max(coalesce(last_used_ms, 0), ?2)
                 WHERE hash = ?1",
            )?
            .execute(params![hash, to_sql(*at)])?;
        }
        Write::PutSetting(scope, field, value) => {
            match value {
                Some(v) => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO settings (scope, field, value) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![scope, field, v])?,
                None => tx
                    .prepare_cached("DELETE FROM settings WHERE scope = ?1 AND field = ?2")?
                    .execute(params![scope, field])?,
            };
            tx.prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'settings_version'")?
                .execute([])?;
        }
        Write::PutMarker(key, at, id) => {
            tx.prepare_cached(
                "INSERT INTO markers (user_key, at, id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_key, at) DO UPDATE SET id = max(id, excluded.id)",
            )?
            .execute(params![key, at, to_sql(*id)])?;
        }
    }
    Ok(None)
}

/// The writer thread: owns the only read-write connection.
struct Writer {
    conn: Connection,
    rx: mpsc::Receiver<Op>,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    /// The largest id this process knows to be handed out: startup's head,
    /// then every append received (committed or not: a failed write's id
    /// was numbered, and is never handed out again).
    head: u64,
    /// Heartbeats begin at startup: until then `alive_ms` still holds the
    /// previous process's last beat, which startup must read first.
    started: bool,
    last_beat: Instant,
    /// When the last group commit began, and how many writes it took.
    last_commit: Instant,
    last_batch: usize,
    /// The DM watermark as committed (`dm_indexed_upto`).
    dm_indexed: u64,
    /// Whether DMs past the watermark may be committed. While none are,
    /// the watermark follows the head, so reads scan nothing past it.
    dm_tail: bool,
    /// [`DM_TAIL_IDS`], or a test's.
    dm_tail_ids: u64,
    outcome: Outcome,
    /// (v3) A deletion has committed whose old text the WAL may still
    /// hold: the next [`erase`](Writer::erase) empties it.
    erase_pending: bool,
    /// When the WAL was last emptied for a deletion.
    last_erase: Instant,
}

impl Writer {
    fn run(self) {
        // The connection is closed (self dropped) before close() returns.
        if let Some(closed) = self.serve() {
            let _ = closed.send(());
        }
    }

    /// Serves the queue until `close` (returns its reply sender) or until
    /// the store is dropped without one, which leaves no clean marker,
    /// as a crash would.
    fn serve(mut self) -> Option<oneshot::Sender<()>> {
        loop {
            let mut wait = HEARTBEAT_INTERVAL.saturating_sub(self.last_beat.elapsed());
            if let Some(due) = self.erase_due_in() {
                wait = wait.min(due);
            }
            let first = match self.rx.recv_timeout(wait) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    self.erase();
                    if self.last_beat.elapsed() >= HEARTBEAT_INTERVAL {
                        self.idle_beat();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            };
            // Group commit: whatever is already queued joins the first
            // write, up to a control op (which runs alone, after them).
            // Commits start at most every COMMIT_SPACING: a write that
            // comes sooner after the last one waits for the rest of it,
            // gathering what arrives meanwhile.
            let spaced = if self.last_batch >= SPACE_FROM {
                self.last_commit + COMMIT_SPACING
            } else {
                self.last_commit
            };
            let mut writes = Vec::new();
            let mut control = None;
            let mut next = Some(first);
            while let Some(op) = next.take() {
                match op {
                    Op::Write(write, done) => {
                        writes.push((write, done));
                        if writes.len() < MAX_BATCH {
                            next = self.rx.try_recv().ok();
                            // Sleeps out the spacing rather than waiting on
                            // the queue: a sender then never has to wake
                            // this thread, once per write, to add to a
                            // batch that is not due yet.
                            let wait = spaced.saturating_duration_since(Instant::now());
                            if next.is_none() && !wait.is_zero() {
                                std::thread::sleep(wait);
                                next = self.rx.try_recv().ok();
                            }
                        }
                    }
                    op => control = Some(op),
                }
            }
            let taken = writes.len() + usize::from(control.is_some());
            if !writes.is_empty() {
                self.last_commit = Instant::now();
                self.last_batch = writes.len();
                self.commit(writes);
                self.erase();
            }
            let closed = match control {
                Some(Op::Startup(reply)) => {
                    let _ = reply.send(self.startup());
                    None
                }
                Some(Op::Prune(older_than, reply)) => {
                    let _ = reply.send(self.prune(older_than));
                    None
                }
                Some(Op::Close(reply)) => {
                    self.close();
                    Some(reply)
                }
                Some(Op::Write(..)) | None => None,
            };
            self.slots.add_permits(taken);
            if closed.is_some() {
                return closed;
            }
        }
    }

    /// Counts a transaction's outcome and keeps `healthy` up to date.
    fn record<T>(&self, result: rusqlite::Result<T>) -> Result<T, StoreError> {
        match result {
            Ok(v) => {
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.shared.healthy.store(true, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                self.shared.healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, "store write failed");
                Err(db(e))
            }
        }
    }

    fn beat_due(&self) -> bool {
        self.started && self.last_beat.elapsed() >= HEARTBEAT_INTERVAL
    }

    fn commit(&mut self, writes: Vec<(Write, Resolver)>) {
        let appended = writes
            .iter()
            .filter_map(|(w, _)| match w {
                Write::Append(m) => Some(m.id),
                _ => None,
            })
            .max();
        if let Some(id) = appended {
            self.head = self.head.max(id);
        }
        let beat = self.beat_due();
        let (dm_indexed, head, tail_ids) = (self.dm_indexed, self.head, self.dm_tail_ids);
        let dm_tail = self.dm_tail
            || writes.iter().any(|(w, _)| {
                matches!(w, Write::Append(m) if m.id > dm_indexed && matches!(m.dest, Destination::Dm { .. }))
            });
        let result = in_transaction(&mut self.conn, |tx| {
            let mut refusals = Vec::with_capacity(writes.len());
            // Runs of messages go in together, in queue order with the
            // other writes.
            let mut run: Vec<&MessageRecord> = Vec::new();
            let mut deleted = false;
            for (write, _) in &writes {
                if let Write::Append(m) = write {
                    refusals.push(None);
                    if m.change.is_none() {
                        run.push(m);
                        continue;
                    }
                    // (v3) A change applies to its target, which may be in
                    // the run before it.
                    run.push(m);
                    insert_messages(tx, &run, dm_indexed)?;
                    run.clear();
                    deleted |= fold_change(tx, m)?;
                    continue;
                }
                insert_messages(tx, &run, dm_indexed)?;
                run.clear();
                refusals.push(apply(tx, write, dm_indexed)?);
            }
            insert_messages(tx, &run, dm_indexed)?;
            // Every DM committed up to `head` is in `dm_index` and
            // `conversations` once the tail is moved (or when there is
            // none): raise the watermark.
            let moved = dm_tail && head.saturating_sub(dm_indexed) >= tail_ids;
            if moved {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO dm_index (to_key, id)
                     SELECT to_key, id FROM messages WHERE id > ?1 AND to_key IS NOT NULL
                     ORDER BY to_key, id",
                )?
                .execute([to_sql(dm_indexed)])?;
                tx.prepare_cached(FOLD_CONVERSATIONS)?
                    .execute([to_sql(dm_indexed)])?;
            }
            let watermark = if moved || !dm_tail {
                head.max(dm_indexed)
            } else {
                dm_indexed
            };
            if watermark != dm_indexed {
                set_meta(tx, META_DM_INDEXED, watermark)?;
            }
            let tail = dm_tail && !moved;
            // The head in meta covers every committed id even after
            // retention deleted the newest messages.
            if let Some(id) = appended {
                raise_meta(tx, META_HEAD, id)?;
            }
            if beat {
                set_meta(tx, META_ALIVE, now_ms())?;
            }
            Ok((refusals, watermark, tail, deleted))
        });
        match self.record(result) {
            Ok((refusals, watermark, tail, deleted)) => {
                self.dm_indexed = watermark;
                self.dm_tail = tail;
                self.erase_pending |= deleted;
                if beat {
                    self.last_beat = Instant::now();
                }
                let outcomes = writes
                    .into_iter()
                    .zip(refusals)
                    .map(|((_, done), refusal)| (done, refusal.map_or(Ok(()), Err)))
                    .collect();
                self.outcome.hand_out(outcomes);
            }
            Err(e) => {
                let outcomes = writes
                    .into_iter()
                    .map(|(_, done)| (done, Err(e.clone())))
                    .collect();
                self.outcome.hand_out(outcomes);
            }
        }
    }

    /// (v3) Empties the WAL after a deletion, so that the erased text is
    /// gone from every file (the database file's pages were overwritten by
    /// `secure_delete` in the checkpoint): at most every [`ERASE_SPACING`],
    /// so that a run of deletions costs one checkpoint. A reader in the
    /// way leaves it pending for the next try.
    fn erase(&mut self) {
        if !self.erase_pending || self.last_erase.elapsed() < ERASE_SPACING {
            return;
        }
        self.last_erase = Instant::now();
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
            Ok(0) => self.erase_pending = false,
            Ok(_) => tracing::debug!("checkpoint after a deletion was blocked: retrying"),
            Err(e) => tracing::warn!(error = %e, "checkpoint after a deletion failed"),
        }
    }

    /// How long until a pending [`erase`](Self::erase) is due.
    fn erase_due_in(&self) -> Option<Duration> {
        self.erase_pending
            .then(|| ERASE_SPACING.saturating_sub(self.last_erase.elapsed()))
    }

    fn idle_beat(&mut self) {
        if self.beat_due() {
            let result = in_transaction(&mut self.conn, |tx| set_meta(tx, META_ALIVE, now_ms()));
            let _ = self.record(result);
        }
        self.last_beat = Instant::now();
    }

    fn startup(&mut self) -> Result<Startup, StoreError> {
        let now = now_ms();
        let known = self.head;
        let result = in_transaction(&mut self.conn, |tx| {
            let stored_head = get_meta(tx, META_HEAD)?;
            let clean = get_meta(tx, META_CLEAN)? == Some(1);
            let pruned_upto = get_meta(tx, META_PRUNED)?.unwrap_or(0);
            let last_alive_ms = get_meta(tx, META_ALIVE)?;
            let max_id: Option<i64> =
                tx.query_row("SELECT max(id) FROM messages", [], |r| r.get(0))?;
            let committed = stored_head
                .unwrap_or(0)
                .max(max_id.map_or(0, from_sql))
                .max(known);
            let fresh = stored_head.is_none() && max_id.is_none();
            // Without the marker, ids above the last committed one may
            // have been delivered before the process died: skip past them.
            let head = if fresh || clean {
                committed
            } else {
                committed.saturating_add(ID_GAP_AFTER_CRASH)
            };
            set_meta(tx, META_HEAD, head)?;
            set_meta(tx, META_CLEAN, 0)?;
            set_meta(tx, META_ALIVE, now)?;

            let now = to_sql(now);
            tx.execute(
                "DELETE FROM session_rooms WHERE token IN
                     (SELECT token FROM sessions WHERE window_ends_at <= ?1)",
                [now],
            )?;
            tx.execute("DELETE FROM sessions WHERE window_ends_at <= ?1", [now])?;
            let mut sessions = BTreeMap::new();
            let mut st = tx.prepare(SELECT_SESSION)?;
            let rows = st.query_map([], session_from_row)?;
            for s in rows {
                let s = s?;
                sessions.insert(s.token.clone(), s);
            }
            let mut st = tx.prepare("SELECT token, room, joined_at FROM session_rooms")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    from_sql(r.get(2)?),
                ))
            })?;
            for row in rows {
                let (token, room, joined) = row?;
                if let Some(s) = sessions.get_mut(&token) {
                    s.rooms.insert(room, joined);
                }
            }
            Ok(Startup {
                head,
                sessions: sessions.into_values().collect(),
                pruned_upto,
                last_alive_ms,
            })
        });
        let startup = self.record(result)?;
        self.head = self.head.max(startup.head);
        self.started = true;
        self.last_beat = Instant::now();
        Ok(startup)
    }

    /// Retention. One transaction: the caller runs it often enough (say
    /// hourly) that each run deletes a modest slice.
    fn prune(&mut self, older_than: u64) -> Result<u64, StoreError> {
        let result = in_transaction(&mut self.conn, |tx| {
            // RETURNING costs what the delete costs; `SELECT max(id) …
            // WHERE ts < ?` would walk back through every kept message.
            let mut deleted = 0;
            let mut dms = Vec::new();
            let mut st =
                tx.prepare("DELETE FROM messages WHERE ts < ?1 RETURNING id, to_key, from_key")?;
            let mut rows = st.query([to_sql(older_than)])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                deleted = deleted.max(from_sql(id));
                if let Some(to_key) = row.get::<_, Option<String>>(1)? {
                    dms.push((to_key, row.get::<_, String>(2)?, id));
                }
            }
            drop(rows);
            drop(st);
            let mut unindex = tx.prepare("DELETE FROM dm_index WHERE to_key = ?1 AND id = ?2")?;
            // (v3) A conversation whose newest DM is gone goes with it, as
            // it would from a store that reads conversations off the
            // messages (older DMs went before it: retention is by age).
            let mut forget = tx.prepare(
                "DELETE FROM conversations
                 WHERE lo_key = min(?1, ?2) AND hi_key = max(?1, ?2) AND last_id = ?3",
            )?;
            for (to_key, from_key, id) in dms {
                unindex.execute(params![to_key, id])?;
                forget.execute(params![to_key, from_key, id])?;
            }
            drop(unindex);
            drop(forget);
            let pruned = get_meta(tx, META_PRUNED)?.unwrap_or(0).max(deleted);
            set_meta(tx, META_PRUNED, pruned)?;
            Ok(pruned)
        });
        self.record(result)
    }

    /// Writes the exact head and the clean marker. Only after a startup:
    /// a process that never started has not applied the previous crash's
    /// gap, and marking it clean would hide that crash.
    fn close(&mut self) {
        if !self.started {
            return;
        }
        let head = self.head;
        let result = in_transaction(&mut self.conn, |tx| {
            raise_meta(tx, META_HEAD, head)?;
            set_meta(tx, META_CLEAN, 1)?;
            set_meta(tx, META_ALIVE, now_ms())
        });
        if self.record(result).is_err() {
            tracing::warn!("no clean-shutdown marker: the next start skips ids as after a crash");
        }
        // Fold the log back into the database file, so that the file is
        // whole on its own (backups that copy only chat.db).
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "checkpoint at shutdown failed");
        }
    }
}

/// Read-only connections, opened on demand and kept up to
/// [`READ_POOL_MAX`].
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        // The lock only guards a Vec push or pop: a poisoned one is fine.
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().map_err(db)?,
        };
        let result = f(&conn);
        // A connection that just failed may be broken: let it go.
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < READ_POOL_MAX {
                idle.push(conn);
            }
        }
        result.map_err(db)
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }
}

/// A conversion error for a row that breaks the schema's rules.
fn bad_row(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, what.to_owned().into())
}

fn message_from_row(r: &Row) -> rusqlite::Result<MessageRecord> {
    let kind: String = r.get(2)?;
    let room: Option<String> = r.get(4)?;
    let to: Option<String> = r.get(5)?;
    let dest = match kind.as_str() {
        "room" => Destination::Room(room.ok_or_else(|| bad_row(4, "room message without room"))?),
        "dm" => Destination::Dm {
            to: to.ok_or_else(|| bad_row(5, "dm without recipient"))?,
        },
        "global" => Destination::Global,
        "broadcast" => Destination::Broadcast,
        _ => return Err(bad_row(2, "unknown message kind")),
    };
    let action: i64 = r.get(7)?;
    let text: String = r.get(6)?;
    let target: Option<i64> = r.get(9)?;
    let change = match (target, action) {
        (Some(t), ACTION_EDIT..=ACTION_REACT_OFF) => Some(Box::new(Change {
            target: from_sql(t),
            op: match action {
                ACTION_EDIT => ChangeOp::Edit,
                ACTION_DELETE => ChangeOp::Delete,
                on => ChangeOp::React {
                    emoji: text.clone(),
                    on: on == ACTION_REACT_ON,
                },
            },
        })),
        _ => None,
    };
    let text = match change.as_deref() {
        Some(Change {
            op: ChangeOp::React { .. } | ChangeOp::Delete,
            ..
        }) => String::new(),
        _ => text,
    };
    let edited: Option<i64> = r.get(10)?;
    let deleted: bool = r.get(11)?;
    let reactions: Option<String> = r.get(12)?;
    let reactions: Vec<ReactionRecord> = match reactions {
        Some(json) => serde_json::from_str(&json).map_err(|_| bad_row(12, "reactions"))?,
        None => Vec::new(),
    };
    let folded = (edited.is_some() || deleted || !reactions.is_empty()).then(|| {
        Box::new(Folded {
            edited: edited.map(from_sql),
            deleted,
            reactions,
        })
    });
    Ok(MessageRecord {
        id: from_sql(r.get(0)?),
        ts: from_sql(r.get(1)?),
        from: r.get(3)?,
        dest,
        text,
        action: action == 1,
        note: action == 2,
        reply_to: r.get::<_, Option<i64>>(8)?.map(from_sql),
        change,
        folded,
    })
}

/// Selects whole sessions but their rooms (`session_rooms`), for
/// [`session_from_row`].
const SELECT_SESSION: &str = "SELECT token, username, since, window_ends_at, account,
     public_id, client, address, connected_at, token_id FROM sessions";

/// A row of [`SELECT_SESSION`], rooms left empty.
fn session_from_row(r: &Row) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        token: r.get(0)?,
        username: r.get(1)?,
        since: from_sql(r.get(2)?),
        rooms: BTreeMap::new(),
        window_ends_at: r.get::<_, Option<i64>>(3)?.map(from_sql),
        account: r.get(4)?,
        meta: SessionMeta {
            id: r.get(5)?,
            client: r.get(6)?,
            address: r.get(7)?,
            connected_at: from_sql(r.get(8)?),
            token_id: r.get(9)?,
        },
    })
}

const SELECT_TOKEN: &str =
    "SELECT id, user_key, hash, label, created_ms, last_used_ms FROM api_tokens";

fn token_from_row(r: &Row) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        user_key: r.get(1)?,
        hash: r.get(2)?,
        label: r.get(3)?,
        created_ms: from_sql(r.get(4)?),
        last_used_ms: r.get::<_, Option<i64>>(5)?.map(from_sql),
    })
}

const SELECT_ACCOUNT: &str = "SELECT username, hash, rooms, seen, created_ms FROM accounts";

fn account_from_row(r: &Row) -> rusqlite::Result<AccountRecord> {
    let rooms: String = r.get(2)?;
    Ok(AccountRecord {
        username: r.get(0)?,
        hash: r.get(1)?,
        rooms: serde_json::from_str(&rooms).map_err(|_| bad_row(2, "rooms is not a JSON list"))?,
        seen: from_sql(r.get(3)?),
        created_ms: from_sql(r.get(4)?),
    })
}

/// Appends the rows of `sql` to `out`.
fn collect(
    c: &Connection,
    sql: &str,
    params: impl Params,
    out: &mut Vec<MessageRecord>,
) -> rusqlite::Result<()> {
    let mut st = c.prepare_cached(sql)?;
    for m in st.query_map(params, message_from_row)? {
        out.push(m?);
    }
    Ok(())
}

/// Appends the DMs to `to` (from `from` alone, if given) with ids in
/// (`after`, `below`), newest first, at most `limit`: those past the
/// watermark from `messages`, then those below it from `dm_index`. One
/// read transaction, so the watermark and both ranges agree.
fn dms_to(
    c: &Connection,
    to: &str,
    from: Option<&str>,
    after: u64,
    below: u64,
    limit: usize,
    out: &mut Vec<MessageRecord>,
) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    let watermark = get_meta(&tx, META_DM_INDEXED)?.unwrap_or(0);
    // One part: `sql` over ids in (`lo`, `hi`), at most `n`.
    let part = |sql, lo: u64, hi: u64, n: usize, out: &mut Vec<MessageRecord>| {
        if n == 0 || lo.saturating_add(1) >= hi {
            return Ok(());
        }
        let p = params![to, to_sql(lo), to_sql(hi), from, sql_limit(n)];
        collect(&tx, sql, p, out)
    };
    let start = out.len();
    part(DM_TAIL, after.max(watermark), below, limit, out)?;
    let left = limit.saturating_sub(out.len() - start);
    let indexed_below = below.min(watermark.saturating_add(1));
    part(DM_INDEXED, after, indexed_below, left, out)?;
    tx.finish()
}

/// [`dms_to`] from anyone, ids in (`after`, `upto`]: a replay's DMs and
/// those kept for an account.
fn dms_in(
    c: &Connection,
    to: &str,
    after: u64,
    upto: u64,
    limit: usize,
    out: &mut Vec<MessageRecord>,
) -> rusqlite::Result<()> {
    dms_to(c, to, None, after, upto.saturating_add(1), limit, out)
}

/// Newest first in, a page out: the newest `limit`, oldest first, and
/// whether more were found.
fn page(mut newest_first: Vec<MessageRecord>, limit: usize) -> Page {
    let more = newest_first.len() > limit;
    newest_first.truncate(limit);
    newest_first.reverse();
    (newest_first.into_iter().map(Arc::new).collect(), more)
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn startup(&self) -> Result<Startup, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Op::Startup(reply)).await?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn append(&self, msg: Arc<MessageRecord>) -> Result<Committed, StoreError> {
        self.write(Write::Append(msg)).await
    }

    async fn put_session(&self, session: &SessionRecord) -> Result<Committed, StoreError> {
        self.write(Write::PutSession(session.clone())).await
    }

    async fn delete_session(&self, token: &str) -> Result<Committed, StoreError> {
        self.write(Write::DeleteSession(token.to_owned())).await
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
        let user_key = user_key.to_owned();
        let rooms = rooms.clone();
        self.read(move |c| {
            // One index range per source, each cut to `limit`, then
            // merged: cheap however long ago `after` is.
            let n = sql_limit(limit);
            let (lo, hi) = (to_sql(after), to_sql(upto));
            let mut found = Vec::new();
            for (room, &joined) in &rooms {
                let from = after.max(joined);
                if from < upto {
                    collect(
                        c,
                        ROOM_RANGE,
                        params![room, to_sql(from), hi, n],
                        &mut found,
                    )?;
                }
            }
            dms_in(c, &user_key, after, upto, limit, &mut found)?;
            let nobody: Option<&str> = None;
            collect(c, FEED, params!["global", lo, hi, nobody, n], &mut found)?;
            collect(
                c,
                FEED,
                params!["broadcast", lo, hi, user_key, n],
                &mut found,
            )?;
            // The contract's own rule has the last word.
            found.retain(|m| m.is_for(&user_key, &rooms, after));
            found.sort_unstable_by_key(|m| m.id);
            let skip = found.len().saturating_sub(limit);
            Ok(found.into_iter().skip(skip).map(Arc::new).collect())
        })
        .await
    }

    async fn message(&self, id: u64) -> Result<Option<Arc<MessageRecord>>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(MESSAGE_BY_ID)?
                .query_row([to_sql(id)], message_from_row)
                .optional()
        })
        .await
        .map(|m| m.map(Arc::new))
    }

    async fn room_entries(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        events: bool,
    ) -> Result<Page, StoreError> {
        let room = room.to_owned();
        let before = before.map_or(i64::MAX, to_sql);
        let sql = if events { ROOM_PAGE_EVENTS } else { ROOM_PAGE };
        self.read(move |c| {
            let mut found = Vec::new();
            let n = sql_limit(limit.saturating_add(1));
            collect(c, sql, params![room, before, n], &mut found)?;
            Ok(page(found, limit))
        })
        .await
    }

    async fn dm_history(
        &self,
        a_key: &str,
        b_key: &str,
        before: Option<u64>,
        after: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let (a, b) = (a_key.to_owned(), b_key.to_owned());
        let before = before.unwrap_or(u64::MAX);
        self.read(move |c| {
            // Each direction is the DMs to one of them from the other;
            // merge the two.
            let n = limit.saturating_add(1);
            let mut found = Vec::new();
            dms_to(c, &b, Some(&a), after, before, n, &mut found)?;
            if a != b {
                dms_to(c, &a, Some(&b), after, before, n, &mut found)?;
            }
            found.sort_unstable_by_key(|m| std::cmp::Reverse(m.id));
            Ok(page(found, limit))
        })
        .await
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
        let user_key = user_key.to_owned();
        self.read(move |c| {
            let mut found = Vec::new();
            dms_in(c, &user_key, after, upto, limit, &mut found)?;
            found.reverse();
            Ok(found.into_iter().map(Arc::new).collect())
        })
        .await
    }

    async fn account(&self, key: &str) -> Result<Option<AccountRecord>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("{SELECT_ACCOUNT} WHERE key = ?1"))?
                .query_row([key], account_from_row)
                .optional()
        })
        .await
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("{SELECT_ACCOUNT} ORDER BY key"))?;
            st.query_map([], account_from_row)?.collect()
        })
        .await
    }

    async fn create_account(&self, account: &AccountRecord) -> Result<Committed, StoreError> {
        self.write(Write::CreateAccount(account.clone())).await
    }

    async fn update_account(
        &self,
        key: &str,
        change: AccountChange,
    ) -> Result<Committed, StoreError> {
        self.write(Write::UpdateAccount(key.to_owned(), change))
            .await
    }

    async fn delete_account(&self, key: &str) -> Result<Committed, StoreError> {
        self.write(Write::DeleteAccount(key.to_owned())).await
    }

    async fn put_token(&self, token: &TokenRecord) -> Result<Committed, StoreError> {
        self.write(Write::PutToken(token.clone())).await
    }

    async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!("{SELECT_TOKEN} WHERE hash = ?1"))?
                .query_row([hash], token_from_row)
                .optional()
        })
        .await
    }

    async fn tokens(&self, key: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "{SELECT_TOKEN} WHERE user_key = ?1 ORDER BY created_ms, id"
            ))?
            .query_map([key], token_from_row)?
            .collect()
        })
        .await
    }

    async fn delete_token(&self, key: &str, id: &str) -> Result<Committed, StoreError> {
        self.write(Write::DeleteToken(key.to_owned(), id.to_owned()))
            .await
    }

    async fn token_used(&self, hash: &str, at_ms: u64) -> Result<Committed, StoreError> {
        self.write(Write::TokenUsed(hash.to_owned(), at_ms)).await
    }

    async fn put_setting(
        &self,
        scope: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<Committed, StoreError> {
        self.write(Write::PutSetting(scope.to_owned(), field.to_owned(), value))
            .await
    }

    async fn settings(&self) -> Result<Vec<super::Setting>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT scope, field, value FROM settings")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .await
    }

    async fn user_sessions(&self, key: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            // One read transaction: the sessions and their rooms agree.
            let tx = c.unchecked_transaction()?;
            let mut sessions = tx
                .prepare_cached(&format!(
                    "{SELECT_SESSION} WHERE user_key = ?1 ORDER BY token"
                ))?
                .query_map([key], session_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut rooms =
                tx.prepare_cached("SELECT room, joined_at FROM session_rooms WHERE token = ?1")?;
            for s in &mut sessions {
                let rows = rooms.query_map([&s.token], |r| {
                    Ok((r.get::<_, String>(0)?, from_sql(r.get(1)?)))
                })?;
                for row in rows {
                    let (room, joined) = row?;
                    s.rooms.insert(room, joined);
                }
            }
            drop(rooms);
            tx.finish()?;
            Ok(sessions)
        })
        .await
    }

    async fn markers(&self, key: &str) -> Result<BTreeMap<MarkerAt, u64>, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            let mut st = c.prepare_cached("SELECT at, id FROM markers WHERE user_key = ?1")?;
            st.query_map([key], |r| {
                let at: String = r.get(0)?;
                let at = MarkerAt::parse(&at)
                    .ok_or_else(|| bad_row(0, "a read marker's place does not read"))?;
                Ok((at, from_sql(r.get(1)?)))
            })?
            .collect()
        })
        .await
    }

    /// Goes through the writer like every other write (one connection
    /// writes, in group commits), and waits for the commit; then reads the
    /// marker back, which another write may have moved further meanwhile.
    async fn put_marker(&self, key: &str, at: &MarkerAt, id: u64) -> Result<u64, StoreError> {
        let (key, at) = (key.to_owned(), marker_key(at));
        self.write(Write::PutMarker(key.clone(), at.clone(), id))
            .await?
            .await?;
        let stored = self
            .read(move |c| {
                c.prepare_cached("SELECT id FROM markers WHERE user_key = ?1 AND at = ?2")?
                    .query_row(params![key, at], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .await?;
        stored
            .map(from_sql)
            .ok_or_else(|| StoreError::Unavailable("a committed read marker is missing".into()))
    }

    /// The rows of `conversations` (folded up to the watermark) merged
    /// with the DMs past the watermark, in one read transaction: a peer's
    /// newest DM wins.
    async fn conversations(
        &self,
        key: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = key.to_owned();
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let watermark = get_meta(&tx, META_DM_INDEXED)?.unwrap_or(0);
            let mut found: BTreeMap<String, ConversationRecord> = BTreeMap::new();
            let mut st = tx.prepare_cached(CONVERSATIONS_TAIL)?;
            let mut rows = st.query(params![key, to_sql(after.max(watermark))])?;
            // Newest first: a peer's first DM here is its newest.
            while let Some(r) = rows.next()? {
                let to_key: String = r.get(2)?;
                let (peer_key, peer) = if to_key == key {
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?)
                } else {
                    (to_key, r.get::<_, String>(3)?)
                };
                let last_id = from_sql(r.get(4)?);
                found.entry(peer_key.clone()).or_insert(ConversationRecord {
                    peer_key,
                    peer,
                    last_id,
                });
            }
            drop(rows);
            drop(st);
            // The `hi_key` side first: a DM to oneself is a pair of one
            // key, named by its sender (its `lo_name`).
            for sql in CONVERSATIONS {
                let mut st = tx.prepare_cached(sql)?;
                let rows = st.query_map(params![key, to_sql(after)], |r| {
                    Ok(ConversationRecord {
                        peer_key: r.get(0)?,
                        peer: r.get(1)?,
                        last_id: from_sql(r.get(2)?),
                    })
                })?;
                for row in rows {
                    let row = row?;
                    match found.get(&row.peer_key) {
                        Some(newer) if newer.last_id >= row.last_id => {}
                        _ => {
                            found.insert(row.peer_key.clone(), row);
                        }
                    }
                }
            }
            tx.finish()?;
            let mut all: Vec<ConversationRecord> = found.into_values().collect();
            all.sort_unstable_by_key(|c| std::cmp::Reverse(c.last_id));
            all.truncate(limit);
            Ok(all)
        })
        .await
    }

    /// One read transaction for every entry: a room's count is one search
    /// of `messages_room`; a DM's counts the DMs past the watermark (one
    /// scan of the tail for all the DMs asked) and, when `conversations`
    /// says the pair has a DM past the marker below the watermark, those
    /// in `dm_index`. Each count stops at `cap`.
    async fn unread(
        &self,
        key: &str,
        asked: &[(MarkerAt, u64)],
        cap: u64,
    ) -> Result<Vec<u64>, StoreError> {
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        let (key, asked) = (key.to_owned(), asked.to_vec());
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let watermark = get_meta(&tx, META_DM_INDEXED)?.unwrap_or(0);
            let dm_from = asked
                .iter()
                .filter(|(at, _)| matches!(at, MarkerAt::Dm(_)))
                .map(|&(_, after)| after)
                .min();
            // The DMs to the user past the watermark: (sender, id).
            let mut tail: Vec<(String, u64)> = Vec::new();
            if let Some(after) = dm_from {
                let mut st = tx.prepare_cached(UNREAD_DM_TAIL)?;
                let rows = st.query_map(params![key, to_sql(after.max(watermark))], |r| {
                    Ok((r.get::<_, String>(0)?, from_sql(r.get(1)?)))
                })?;
                for row in rows {
                    tail.push(row?);
                }
            }
            let mut counts = Vec::with_capacity(asked.len());
            for (at, after) in &asked {
                let after = *after;
                let n = match at {
                    MarkerAt::Room(room) => tx
                        .prepare_cached(UNREAD_ROOM)?
                        .query_row(params![room, to_sql(after), key, to_sql(cap)], |r| {
                            r.get::<_, i64>(0)
                        })
                        .map(from_sql)?,
                    // One's own DMs are never unread.
                    MarkerAt::Dm(peer) if *peer == key => 0,
                    MarkerAt::Dm(peer) => {
                        let past = tail
                            .iter()
                            .filter(|(from, id)| from == peer && *id > after)
                            .count();
                        let mut n = (past as u64).min(cap);
                        if n < cap && after < watermark {
                            let last = tx
                                .prepare_cached(CONVERSATION_LAST)?
                                .query_row(params![key, peer], |r| r.get::<_, i64>(0))
                                .optional()?
                                .map_or(0, from_sql);
                            if last > after {
                                n += tx
                                    .prepare_cached(UNREAD_DM_INDEXED)?
                                    .query_row(
                                        params![
                                            key,
                                            peer,
                                            to_sql(after),
                                            to_sql(watermark),
                                            to_sql(cap - n)
                                        ],
                                        |r| r.get::<_, i64>(0),
                                    )
                                    .map(from_sql)?;
                            }
                        }
                        n
                    }
                };
                counts.push(n);
            }
            tx.finish()?;
            Ok(counts)
        })
        .await
    }

    async fn settings_version(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT value FROM meta WHERE key = 'settings_version'")?
                .query_row([], |r| r.get::<_, i64>(0))
                .optional()
                .map(|v| v.map_or(0, from_sql))
        })
        .await
    }

    async fn prune(&self, older_than_ts: u64) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Op::Prune(older_than_ts, reply)).await?;
        rx.await.map_err(|_| writer_gone())?
    }

    fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.enqueue(Op::Close(reply)).await.is_ok() {
            // Later writes fail at once instead of queueing behind Close.
            self.slots.close();
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every read query searches an index: none scans the messages table
    /// or sorts in a temporary B-tree.
    #[test]
    fn every_read_uses_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
        for sql in [
            ROOM_PAGE,
            ROOM_PAGE_EVENTS,
            ROOM_RANGE,
            DM_INDEXED,
            DM_TAIL,
            FEED,
            MESSAGE_BY_ID,
            ERASE_EDITS,
        ] {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            // Unbound parameters are NULL: the plan does not depend on them.
            let mut rows = st.raw_query();
            let mut plan = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                plan.push(row.get::<_, String>(3).unwrap());
            }
            assert!(
                !plan.is_empty() && plan.iter().all(|step| step.starts_with("SEARCH")),
                "{sql}\n{plan:#?}"
            );
        }
    }

    /// (v3) The reads of conversations and unread counts search the index
    /// each is meant for: none scans a table or sorts.
    #[test]
    fn conversations_and_unread_search_their_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join(DB_FILE)).unwrap();
        for (sql, index) in [
            (
                CONVERSATIONS[0],
                "conversations USING INDEX conversations_hi (hi_key=?)",
            ),
            (
                CONVERSATIONS[1],
                "conversations USING PRIMARY KEY (lo_key=?)",
            ),
            (
                CONVERSATION_LAST,
                "conversations USING PRIMARY KEY (lo_key=? AND hi_key=?)",
            ),
            (
                CONVERSATIONS_TAIL,
                "messages USING INTEGER PRIMARY KEY (rowid>?)",
            ),
            (
                UNREAD_ROOM,
                "messages USING INDEX messages_room (room=? AND id>?)",
            ),
            (
                UNREAD_DM_INDEXED,
                "d USING PRIMARY KEY (to_key=? AND id>? AND id<?)",
            ),
            (
                UNREAD_DM_TAIL,
                "messages USING INTEGER PRIMARY KEY (rowid>?)",
            ),
            (
                "SELECT token FROM sessions WHERE user_key = ?1 ORDER BY token",
                "sessions USING COVERING INDEX sessions_user (user_key=?)",
            ),
        ] {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let mut rows = st.raw_query();
            let mut plan = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                plan.push(row.get::<_, String>(3).unwrap());
            }
            assert!(
                plan.iter().any(|step| step == &format!("SEARCH {index}")),
                "{sql}\n{plan:#?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|step| step.contains("TEMP B-TREE") || step.starts_with("SCAN m")),
                "{sql}\n{plan:#?}"
            );
        }
    }
}
