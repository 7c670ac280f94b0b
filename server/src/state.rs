//! [`ChatState`]: the one place that knows users, sessions, room
//! membership, the replay log and room history. Handlers call its methods
//! and never keep their own copies, so that a shared store (Redis, for
//! several nodes) can later stand behind the same methods.
//!
//! Membership here is by user, not by socket: a user in their recovery
//! window keeps their rooms (for the restore) but is not counted as a live
//! member until a socket is theirs again.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chat_shared::{
    AdminSnapshot, AdminUser, Auth, ConnectRefusal, ErrorCode, PresenceSnapshot, RoomCount,
    username_key,
};
use rand::RngCore;
use socketioxide::socket::Sid;
use tokio::sync::mpsc;

use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{AccountChange, Destination, MessageRecord, SessionRecord, Startup};

/// What a change to a session means for the store, in the order the
/// changes happened (they are sent under the state's lock).
#[derive(Debug)]
pub enum SessionOp {
    Put(SessionRecord),
    Delete(String),
    /// A change to an account (by key): its rooms, or how far its DMs
    /// reached it.
    Account(String, AccountChange),
    /// Answered once every earlier op has been handed to the store.
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Debug)]
struct User {
    username: String,
    token: String,
    /// Rooms, each with the log sequence number at which they were joined
    /// (a restore replays only what came after the join).
    rooms: BTreeMap<String, u64>,
    /// The live socket, if any.
    sid: Option<Sid>,
    /// The live socket missed a message (its queue was full) and its
    /// transport is being ended: nothing more is delivered to it live, so
    /// that its client's offset never skips a message.
    lagging: bool,
    connected_at: u64,
    /// The log head when the session began: nothing older is replayed.
    since: u64,
    /// A new number (unique in the process, never 0) at every disconnect
    /// and resume: an expiry timer only ends the absence
    /// it was started for.
    absence: u64,
    /// Wall-clock ms when the recovery window ends; `None` while live.
    window_ends_at: Option<u64>,
    /// The session belongs to an account.
    account: bool,
    /// The live socket is caught up and in its rooms: DMs go to it live.
    /// Until then they reach it through its catch-up, so that none is sent
    /// twice or ahead of the `session` event.
    ready: bool,
}

impl User {
    fn record(&self) -> SessionRecord {
        SessionRecord {
            token: self.token.clone(),
            username: self.username.clone(),
            since: self.since,
            rooms: self.rooms.clone(),
            window_ends_at: self.window_ends_at,
            account: self.account,
        }
    }

    fn fresh(username: &str, token: String, sid: Sid, since: u64, account: bool) -> User {
        User {
            username: username.to_owned(),
            token,
            rooms: BTreeMap::new(),
            sid: Some(sid),
            lagging: false,
            connected_at: now_ms(),
            since,
            absence: 0,
            window_ends_at: None,
            account,
            ready: false,
        }
    }
}

/// How a handshake proved its name (see [`ChatState::admit_as`]).
#[derive(Debug, Clone)]
pub enum Login {
    /// No password: a guest name, or a session token (which is its own
    /// proof).
    Guest,
    /// The account's password was right. Without a token that resumes a
    /// session, this starts a fresh one in the account's remembered rooms,
    /// taking the name from whichever session holds it; DMs after `seen`
    /// are delivered to it.
    Account {
        /// The account's display name.
        username: String,
        rooms: Vec<String>,
        seen: u64,
    },
    /// An account was just created for the name: the session (resumed by
    /// its token, or fresh) becomes the account's.
    Registered,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<String, User>,
    /// Session token → user key.
    sessions: HashMap<String, String>,
    /// Room → live members (user keys). A room with none is not listed.
    live: BTreeMap<String, BTreeSet<String>>,
    /// Room → users in it, live or inside their recovery window; the
    /// room's history is kept while this is above zero.
    holders: HashMap<String, usize>,
    /// Users with a live socket.
    online: u64,
    /// The messages numbered by this process, newest last (older ones
    /// are read from the store).
    log: VecDeque<Arc<MessageRecord>>,
    /// The id of the last message recorded (committed and delivered):
    /// replays, offsets and room joins are measured against it.
    head: u64,
    /// The last id [numbered](ChatState::number); above `head` while
    /// writes are waiting for their commit.
    issued: u64,
    /// Per room, its last messages, for `room:join`.
    history: HashMap<String, VecDeque<Arc<MessageRecord>>>,
    /// What this process last wrote of each account's rooms and seen id.
    /// The writes go to the store in order but are not awaited, so a login
    /// right after a logout could read the store before they commit: it
    /// takes these instead.
    written: HashMap<String, Written>,
}

/// See `Inner::written`.
#[derive(Debug, Default, Clone)]
struct Written {
    rooms: Option<Vec<String>>,
    seen: u64,
}

/// The outcome of a successful handshake.
#[derive(Debug, Clone)]
pub struct Admission {
    pub key: String,
    pub username: String,
    pub token: String,
    /// A session was resumed (identity and rooms restored).
    pub recovered: bool,
    /// The socket that held the session before (a half-open connection),
    /// to be told `session_replaced` and disconnected.
    pub replaced: Option<Sid>,
    pub rooms: Vec<String>,
    /// The session belongs to an account.
    pub account: bool,
    /// A fresh account session: the DMs after this id (and up to the
    /// session's start) are delivered as replayed.
    pub queued_after: Option<u64>,
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

/// What a disconnect changed, for presence.
#[derive(Debug)]
pub struct Departure {
    pub username: String,
    /// Each room the user was in, with its live member count after.
    pub rooms: Vec<(String, u64)>,
    pub online: u64,
}

/// What `room:join` changed.
#[derive(Debug)]
pub struct Joined {
    /// False when the user was a member already (the join is idempotent).
    pub fresh: bool,
    pub members: Vec<String>,
    pub count: u64,
    /// The room's newest messages this process holds (the caller tops up
    /// from the store).
    pub history: Vec<Arc<MessageRecord>>,
}

/// A resolved DM or typing target.
#[derive(Debug, Clone)]
pub struct Target {
    pub key: String,
    pub username: String,
    /// The socket to deliver to live, if any is ready for it.
    pub sid: Option<Sid>,
    /// A socket holds the session (perhaps still catching up).
    pub live: bool,
}

/// Users, sessions, membership, replay log and history. See the module doc.
#[derive(Debug)]
pub struct ChatState {
    pub config: Config,
    inner: Mutex<Inner>,
    started: std::time::Instant,
    admins: AtomicUsize,
    /// Where session changes go to be stored (none in unit tests).
    sessions_out: std::sync::OnceLock<mpsc::UnboundedSender<SessionOp>>,
    /// The highest id retention has removed: a replay from before it is
    /// truncated.
    pruned_upto: AtomicU64,
    /// The last absence number handed out (see `User::absence`).
    absences: AtomicU64,
}

fn token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ChatState {
    pub fn new(config: Config) -> Arc<Self> {
        Arc::new(ChatState {
            config,
            inner: Mutex::new(Inner::default()),
            started: std::time::Instant::now(),
            admins: AtomicUsize::new(0),
            sessions_out: std::sync::OnceLock::new(),
            pruned_upto: AtomicU64::new(0),
            absences: AtomicU64::new(0),
        })
    }

    /// Sends every session change to `out`, in order.
    pub fn persist_sessions(&self, out: mpsc::UnboundedSender<SessionOp>) {
        let _ = self.sessions_out.set(out);
    }

    fn persist(&self, op: SessionOp) {
        if let Some(out) = self.sessions_out.get() {
            let _ = out.send(op);
        }
    }

    /// Queues a change to an account and remembers it (see `Inner::written`).
    fn persist_account(&self, inner: &mut Inner, key: &str, change: AccountChange) {
        let w = inner.written.entry(key.to_owned()).or_default();
        match &change {
            AccountChange::Rooms(rooms) => w.rooms = Some(rooms.clone()),
            AccountChange::Seen(seen) => w.seen = w.seen.max(*seen),
            AccountChange::Password(_) => {}
        }
        self.persist(SessionOp::Account(key.to_owned(), change));
    }

    /// Resolves once every session change so far is with the store.
    pub async fn flush_sessions(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(out) = self.sessions_out.get()
            && out.send(SessionOp::Flush(tx)).is_ok()
        {
            let _ = rx.await;
        }
    }

    pub fn set_pruned_upto(&self, id: u64) {
        self.pruned_upto.fetch_max(id, Ordering::Relaxed);
    }

    /// Takes up what the store kept: the id head, and every session still
    /// inside its window. A session that was live when the previous process
    /// ended gets its window from when that process was last known alive,
    /// so the window keeps running while the server is down.
    pub fn restore(self: &Arc<Self>, startup: &Startup) {
        self.set_pruned_upto(startup.pruned_upto);
        let now = now_ms();
        let window = self.config.recovery_window.as_millis() as u64;
        let mut inner = self.lock();
        inner.head = inner.head.max(startup.head);
        inner.issued = inner.issued.max(startup.head);
        for rec in &startup.sessions {
            let ends = rec
                .window_ends_at
                .unwrap_or_else(|| startup.last_alive_ms.unwrap_or(now).saturating_add(window));
            if ends <= now {
                self.persist(SessionOp::Delete(rec.token.clone()));
                continue;
            }
            let key = username_key(&rec.username);
            if inner.users.contains_key(&key) {
                continue;
            }
            let record = self.take_up(&mut inner, &key, rec, ends, now);
            if rec.window_ends_at.is_none() {
                // Live when the last process ended: its window is new, and
                // what it had been sent is as far as the ids then went.
                self.persist(SessionOp::Put(record));
                if rec.account {
                    self.persist_account(&mut inner, &key, AccountChange::Seen(startup.head));
                }
            }
        }
    }

    /// Makes `rec` a session of this process, away (no socket) until `ends`
    /// (wall-clock ms), when a timer ends it unless a socket came back.
    /// Returns the record as it now stands.
    fn take_up(
        self: &Arc<Self>,
        inner: &mut Inner,
        key: &str,
        rec: &SessionRecord,
        ends: u64,
        now: u64,
    ) -> SessionRecord {
        for room in rec.rooms.keys() {
            *inner.holders.entry(room.clone()).or_default() += 1;
        }
        let user = User {
            username: rec.username.clone(),
            token: rec.token.clone(),
            rooms: rec.rooms.clone(),
            sid: None,
            lagging: false,
            connected_at: 0,
            since: rec.since,
            absence: self.next_absence(),
            window_ends_at: Some(ends),
            account: rec.account,
            ready: false,
        };
        let record = user.record();
        let absence = user.absence;
        inner.sessions.insert(rec.token.clone(), key.to_owned());
        inner.users.insert(key.to_owned(), user);
        let state = Arc::clone(self);
        let key = key.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(ends.saturating_sub(now))).await;
            state.expire(&key, absence);
        });
        record
    }

    /// A number no absence of any user had before: a timer left from an
    /// earlier session of the same name can never end a later one.
    fn next_absence(&self) -> u64 {
        self.absences.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the whole server down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ------------------------------------------------------------ identity

    /// Decides a guest's `/chat` handshake (or a resume by token).
    pub fn admit(&self, auth: &Auth, sid: Sid) -> Result<Admission, ConnectRefusal> {
        self.admit_as(auth, sid, Login::Guest)
    }

    /// Whether a session holds `key`'s name (live or in its window).
    pub fn name_held(&self, key: &str) -> bool {
        self.lock().users.contains_key(key)
    }

    /// The user key a session token belongs to, if it is known.
    pub fn session_owner(&self, token: &str) -> Option<String> {
        self.lock().sessions.get(token).cloned()
    }

    /// Decides a `/chat` handshake whose name was proved by `login` and,
    /// on success, makes `sid` the user's live socket. The username must
    /// already be valid.
    pub fn admit_as(
        &self,
        auth: &Auth,
        sid: Sid,
        login: Login,
    ) -> Result<Admission, ConnectRefusal> {
        let key = username_key(&auth.username);
        let mut inner = self.lock();
        let max = self.config.max_connections;
        let full = |online: u64| max > 0 && online >= max as u64;

        if let Some(owner) = auth
            .session
            .as_ref()
            .and_then(|t| inner.sessions.get(t))
            .cloned()
        {
            if owner != key {
                return Err(ConnectRefusal::new(
                    ErrorCode::InvalidSession,
                    "that session belongs to another username",
                ));
            }
            let online = inner.online;
            let user = inner.users.get_mut(&key).ok_or_else(|| {
                ConnectRefusal::new(ErrorCode::Internal, "session without a user")
            })?;
            let replaced = user.sid.replace(sid);
            user.lagging = false;
            user.ready = false;
            if replaced.is_none() && full(online) {
                user.sid = None;
                return Err(ConnectRefusal::new(
                    ErrorCode::ServerFull,
                    "the server is full",
                ));
            }
            let admission = Admission {
                key: key.clone(),
                username: user.username.clone(),
                token: user.token.clone(),
                recovered: true,
                replaced,
                rooms: user.rooms.keys().cloned().collect(),
                account: user.account || !matches!(login, Login::Guest),
                queued_after: None,
            };
            user.account = admission.account;
            user.absence = self.next_absence();
            user.window_ends_at = None;
            self.persist(SessionOp::Put(user.record()));
            if matches!(login, Login::Registered) {
                let rooms = AccountChange::Rooms(admission.rooms.clone());
                self.persist_account(&mut inner, &key, rooms);
            }
            if replaced.is_none() {
                inner.online += 1;
                for room in &admission.rooms {
                    inner
                        .live
                        .entry(room.clone())
                        .or_default()
                        .insert(key.clone());
                }
            }
            return Ok(admission);
        }

        // The owner's password takes the name from whichever session
        // holds it (their own, left half-open or on another device).
        let mut replaced = None;
        if let Login::Account { .. } = login
            && let Some(old) = inner.users.get(&key)
        {
            let live = old.sid;
            if live.is_none() && full(inner.online) {
                return Err(ConnectRefusal::new(
                    ErrorCode::ServerFull,
                    "the server is full",
                ));
            }
            replaced = live;
            Self::end_session(&mut inner, &key, |op| self.persist(op));
        }
        if inner.users.contains_key(&key) {
            return Err(ConnectRefusal::new(
                ErrorCode::UsernameTaken,
                format!("{} is in use", auth.username),
            ));
        }
        if full(inner.online) {
            return Err(ConnectRefusal::new(
                ErrorCode::ServerFull,
                "the server is full",
            ));
        }
        let token = token();
        let head = inner.head;
        let account = !matches!(login, Login::Guest);
        let display = match &login {
            Login::Account { username, .. } => username.clone(),
            _ => auth.username.clone(),
        };
        let mut user = User::fresh(&display, token.clone(), sid, head, account);
        let mut queued_after = None;
        if let Login::Account {
            mut rooms,
            mut seen,
            ..
        } = login
        {
            if let Some(w) = inner.written.get(&key) {
                seen = seen.max(w.seen);
                if let Some(r) = &w.rooms {
                    rooms.clone_from(r);
                }
            }
            // The account's remembered rooms, each joined now.
            for room in rooms
                .iter()
                .filter_map(|r| chat_shared::canonical_room(r))
                .take(self.config.max_rooms_per_user)
            {
                user.rooms.insert(room, head);
            }
            queued_after = Some(seen);
        }
        for room in user.rooms.keys() {
            *inner.holders.entry(room.clone()).or_default() += 1;
            inner
                .live
                .entry(room.clone())
                .or_default()
                .insert(key.clone());
        }
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        self.persist(SessionOp::Put(user.record()));
        inner.users.insert(key.clone(), user);
        inner.sessions.insert(token.clone(), key.clone());
        inner.online += 1;
        Ok(Admission {
            key,
            username: display,
            token,
            recovered: false,
            replaced,
            rooms,
            account,
            queued_after,
        })
    }

    /// Ends `key`'s session at once (a password login took the name): its
    /// socket, if any, stops counting; the caller tells that socket.
    fn end_session(inner: &mut Inner, key: &str, persist: impl Fn(SessionOp)) {
        let Some(old) = inner.users.remove(key) else {
            return;
        };
        inner.sessions.remove(&old.token);
        persist(SessionOp::Delete(old.token.clone()));
        if old.sid.is_some() {
            inner.online = inner.online.saturating_sub(1);
        }
        for room in old.rooms.keys() {
            Self::drop_live(inner, room, key);
            Self::release_room(inner, room);
        }
    }

    /// `sid`, `key`'s live socket, is caught up and in its rooms: DMs go to
    /// it live from now on. Call under the delivery order.
    pub fn set_ready(&self, key: &str, sid: Sid) {
        if let Some(u) = self.lock().users.get_mut(key)
            && u.sid == Some(sid)
        {
            u.ready = true;
        }
    }

    /// Whether `sid` is still the live socket of `key`.
    pub fn is_current(&self, key: &str, sid: Sid) -> bool {
        self.lock()
            .users
            .get(key)
            .is_some_and(|u| u.sid == Some(sid))
    }

    /// Ends the live socket `sid` of `key`. A planned leave ends the
    /// session; otherwise it is kept for the recovery window and a timer
    /// ends it then. `None` when `sid` is no longer the user's socket (it
    /// was taken over): nothing changes.
    pub fn disconnect(self: &Arc<Self>, key: &str, sid: Sid, planned: bool) -> Option<Departure> {
        let mut inner = self.lock();
        let head = inner.head;
        let user = inner.users.get_mut(key)?;
        if user.sid != Some(sid) {
            return None;
        }
        user.sid = None;
        user.ready = false;
        user.absence = self.next_absence();
        let delivered = user.account && !user.lagging;
        if delivered {
            // Every DM so far reached the socket: later ones wait for the
            // account's next connect (unless this session resumes first).
            self.persist_account(&mut inner, key, AccountChange::Seen(head));
        }
        let user = inner.users.get_mut(key)?;
        if !planned {
            let window = self.config.recovery_window.as_millis() as u64;
            user.window_ends_at = Some(now_ms().saturating_add(window));
            self.persist(SessionOp::Put(user.record()));
        }
        let absence = user.absence;
        let username = user.username.clone();
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        let token = user.token.clone();
        inner.online = inner.online.saturating_sub(1);
        let mut counts = Vec::with_capacity(rooms.len());
        for room in rooms {
            let n = Self::drop_live(&mut inner, &room, key);
            counts.push((room, n));
        }
        if planned {
            inner.users.remove(key);
            inner.sessions.remove(&token);
            self.persist(SessionOp::Delete(token.clone()));
            for (room, _) in &counts {
                Self::release_room(&mut inner, room);
            }
        } else {
            let state = Arc::clone(self);
            let key = key.to_owned();
            let window = self.config.recovery_window;
            // Also called from a drop guard, which may (in theory) run
            // outside the runtime: no timer then, never a panic.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    tokio::time::sleep(window).await;
                    state.expire(&key, absence);
                });
            }
        }
        Some(Departure {
            username,
            rooms: counts,
            online: inner.online,
        })
    }

    /// Lets go of an admission whose socket never connected (its transport
    /// closed between the handshake and the namespace reply): a fresh
    /// session ends at once (its client never learnt the token), a resumed
    /// one goes back to its recovery window. Nothing happens if `sid` is no
    /// longer the user's socket (the usual case: it disconnected normally).
    pub fn abandon(self: &Arc<Self>, key: &str, sid: Sid, fresh: bool) -> bool {
        self.disconnect(key, sid, fresh).is_some()
    }

    /// Marks `sid`, `key`'s live socket, as lagging (see [`User`]). Returns
    /// false if it is no longer the user's socket.
    pub fn set_lagging(&self, key: &str, sid: Sid) -> bool {
        let mut inner = self.lock();
        match inner.users.get_mut(key) {
            Some(u) if u.sid == Some(sid) => {
                u.lagging = true;
                true
            }
            _ => false,
        }
    }

    /// The rooms `key` is in now.
    pub fn rooms_of(&self, key: &str) -> Vec<String> {
        self.lock()
            .users
            .get(key)
            .map(|u| u.rooms.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Ends `key`'s session if it is still the absence `absence` (no socket
    /// came back since). Returns whether it ended.
    pub fn expire(&self, key: &str, absence: u64) -> bool {
        let mut inner = self.lock();
        let Some(user) = inner.users.get(key) else {
            return false;
        };
        if user.sid.is_some() || user.absence != absence {
            return false;
        }
        let token = user.token.clone();
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        inner.users.remove(key);
        inner.sessions.remove(&token);
        self.persist(SessionOp::Delete(token));
        for room in &rooms {
            Self::release_room(&mut inner, room);
        }
        tracing::debug!(user = key, "session expired");
        true
    }

    fn drop_live(inner: &mut Inner, room: &str, key: &str) -> u64 {
        match inner.live.get_mut(room) {
            Some(set) => {
                set.remove(key);
                let n = set.len() as u64;
                if n == 0 {
                    inner.live.remove(room);
                }
                n
            }
            None => 0,
        }
    }

    /// One user fewer holds `room`; its history goes with the last one.
    fn release_room(inner: &mut Inner, room: &str) {
        if let Some(n) = inner.holders.get_mut(room) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.holders.remove(room);
                inner.history.remove(room);
            }
        }
    }

    // ------------------------------------------------------------ recovery

    /// The messages `key` missed after the message `offset` (or, without a
    /// usable offset, since its session began), up to the current head.
    pub fn replay(&self, key: &str, offset: Option<&str>) -> Replay {
        let inner = self.lock();
        let Some(user) = inner.users.get(key) else {
            return Replay::default();
        };
        let since = Self::resume_point(offset, user.since, inner.head);
        let first = inner
            .log
            .front()
            .map_or(inner.head.saturating_add(1), |m| m.id);
        let stored = (since.saturating_add(1) < first).then(|| (since, first - 1));
        Replay {
            messages: Self::messages_for(&inner, user, key, since),
            truncated: since < self.pruned_upto.load(Ordering::Relaxed),
            upto: inner.head,
            stored,
            rooms: user.rooms.clone(),
        }
    }

    /// A fresh account session's queued DMs: those to `key` after `seen`
    /// and up to the session's start (later ones reach it in its
    /// catch-up), from this process's log, and the older range to read
    /// from the store.
    pub fn queued(&self, key: &str, seen: u64) -> Replay {
        let inner = self.lock();
        let Some(user) = inner.users.get(key) else {
            return Replay::default();
        };
        let upto = user.since;
        let first = inner
            .log
            .front()
            .map_or(inner.head.saturating_add(1), |m| m.id);
        let stored =
            (seen < upto && seen.saturating_add(1) < first).then(|| (seen, (first - 1).min(upto)));
        let start = inner.log.partition_point(|m| m.id <= seen);
        let messages = inner
            .log
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

    /// The messages for `key` after `after`, and the head they go up to.
    pub fn catch_up(&self, key: &str, after: u64) -> (Vec<Arc<MessageRecord>>, u64) {
        let inner = self.lock();
        let Some(user) = inner.users.get(key) else {
            return (Vec::new(), inner.head);
        };
        (Self::messages_for(&inner, user, key, after), inner.head)
    }

    fn messages_for(inner: &Inner, user: &User, key: &str, after: u64) -> Vec<Arc<MessageRecord>> {
        // The log is ordered by id: skip straight to what is newer.
        let start = inner.log.partition_point(|m| m.id <= after);
        inner
            .log
            .range(start..)
            .filter(|m| m.is_for(key, &user.rooms, after))
            .map(Arc::clone)
            .collect()
    }

    // ---------------------------------------------------------------- rooms

    /// Joins `key` to `room` (canonical). Idempotent.
    pub fn join(&self, key: &str, room: &str) -> Result<Joined, ErrorCode> {
        let mut inner = self.lock();
        let head = inner.head;
        let max = self.config.max_rooms_per_user;
        let user = inner.users.get_mut(key).ok_or(ErrorCode::Internal)?;
        let fresh = !user.rooms.contains_key(room);
        if fresh {
            if user.rooms.len() >= max {
                return Err(ErrorCode::TooManyRooms);
            }
            user.rooms.insert(room.to_owned(), head);
            self.persist(SessionOp::Put(user.record()));
        }
        let live = user.sid.is_some();
        if fresh && user.account {
            let rooms = AccountChange::Rooms(user.rooms.keys().cloned().collect());
            self.persist_account(&mut inner, key, rooms);
        }
        if fresh {
            *inner.holders.entry(room.to_owned()).or_default() += 1;
        }
        if live {
            inner
                .live
                .entry(room.to_owned())
                .or_default()
                .insert(key.to_owned());
        }
        let members = Self::member_names(&inner, room);
        let history = inner
            .history
            .get(room)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default();
        Ok(Joined {
            fresh,
            count: members.len() as u64,
            members,
            history,
        })
    }

    /// Takes `key` out of `room`; returns the live member count after.
    pub fn leave(&self, key: &str, room: &str) -> Result<u64, ErrorCode> {
        let mut inner = self.lock();
        let user = inner.users.get_mut(key).ok_or(ErrorCode::Internal)?;
        if user.rooms.remove(room).is_none() {
            return Err(ErrorCode::NotMember);
        }
        self.persist(SessionOp::Put(user.record()));
        if user.account {
            let rooms = AccountChange::Rooms(user.rooms.keys().cloned().collect());
            self.persist_account(&mut inner, key, rooms);
        }
        let n = Self::drop_live(&mut inner, room, key);
        Self::release_room(&mut inner, room);
        Ok(n)
    }

    pub fn is_member(&self, key: &str, room: &str) -> bool {
        self.lock()
            .users
            .get(key)
            .is_some_and(|u| u.rooms.contains_key(room))
    }

    fn member_names(inner: &Inner, room: &str) -> Vec<String> {
        inner
            .live
            .get(room)
            .map(|set| {
                set.iter()
                    .filter_map(|k| inner.users.get(k).map(|u| u.username.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Live member count of `room`.
    pub fn members(&self, room: &str) -> u64 {
        self.lock().live.get(room).map_or(0, |s| s.len() as u64)
    }

    /// Users with a live socket.
    pub fn online(&self) -> u64 {
        self.lock().online
    }

    fn room_counts(inner: &Inner) -> Vec<RoomCount> {
        inner
            .live
            .iter()
            .map(|(room, set)| RoomCount {
                room: room.clone(),
                members: set.len() as u64,
            })
            .collect()
    }

    pub fn room_list(&self) -> Vec<RoomCount> {
        Self::room_counts(&self.lock())
    }

    pub fn presence_snapshot(&self) -> PresenceSnapshot {
        let inner = self.lock();
        let mut users: Vec<String> = inner
            .users
            .values()
            .filter(|u| u.sid.is_some())
            .map(|u| u.username.clone())
            .collect();
        users.sort_by_key(|u| username_key(u));
        PresenceSnapshot {
            online: inner.online,
            users,
            rooms: Self::room_counts(&inner),
        }
    }

    // ------------------------------------------------------------- messages

    /// A user who is online or inside a recovery window.
    pub fn target(&self, name: &str) -> Option<Target> {
        let key = username_key(name);
        let inner = self.lock();
        inner.users.get(&key).map(|u| Target {
            key: key.clone(),
            username: u.username.clone(),
            sid: u.sid.filter(|_| u.ready && !u.lagging),
            live: u.sid.is_some(),
        })
    }

    /// This process's newest messages of `room`, oldest first.
    pub fn room_recent(&self, room: &str) -> Vec<Arc<MessageRecord>> {
        self.lock()
            .history
            .get(room)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// When `key`'s session began (the id head then).
    pub fn session_since(&self, key: &str) -> u64 {
        self.lock().users.get(key).map_or(u64::MAX, |u| u.since)
    }

    /// The oldest DMs `key` may read: all of them for an account, those of
    /// its current session for a guest.
    pub fn dm_floor(&self, key: &str) -> u64 {
        self.lock()
            .users
            .get(key)
            .map_or(u64::MAX, |u| if u.account { 0 } else { u.since })
    }

    /// Whether `key`'s session belongs to an account.
    pub fn is_account(&self, key: &str) -> bool {
        self.lock().users.get(key).is_some_and(|u| u.account)
    }

    /// Gives a message its id, without keeping it: it is kept (and
    /// delivered) by [`record_numbered`](Self::record_numbered) once its
    /// write has committed. Call in the numbering order
    /// (`chat::DeliveryOrder::number`), which is the store's write order.
    pub fn number(
        &self,
        from: &str,
        text: &str,
        dest: Destination,
        action: bool,
    ) -> Arc<MessageRecord> {
        let mut inner = self.lock();
        inner.issued = inner.issued.max(inner.head) + 1;
        Arc::new(MessageRecord {
            id: inner.issued,
            ts: now_ms(),
            from: from.to_owned(),
            dest,
            text: text.to_owned(),
            action,
        })
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
        let msg = self.number(from, text, dest, action);
        self.record_numbered(&msg);
        msg
    }

    /// Keeps a committed message for replay and room history, in id
    /// order: one this node [numbered](Self::number), or (several nodes)
    /// one that came from the cluster's feed. From here on it counts as
    /// delivered: call with the delivery order held and emit it there.
    pub fn record_numbered(&self, msg: &Arc<MessageRecord>) {
        let mut inner = self.lock();
        inner.head = inner.head.max(msg.id);
        inner.issued = inner.issued.max(msg.id);
        if let Destination::Room(room) = &msg.dest {
            let keep = self.config.history;
            if keep > 0 && inner.holders.contains_key(room) {
                let h = inner.history.entry(room.clone()).or_default();
                if h.len() >= keep {
                    h.pop_front();
                }
                h.push_back(Arc::clone(msg));
            }
        }
        if self.config.replay_buffer > 0 {
            if inner.log.len() >= self.config.replay_buffer {
                inner.log.pop_front();
            }
            inner.log.push_back(Arc::clone(msg));
        }
    }

    // ------------------------------------------------------------ cluster

    /// Takes up a session that another node held (its node died, or its
    /// socket there is half-open): it becomes this node's, inside its
    /// window (a window from now when it was live there). False when a
    /// session here holds the name already.
    pub fn adopt(self: &Arc<Self>, rec: &SessionRecord) -> bool {
        let now = now_ms();
        let window = self.config.recovery_window.as_millis() as u64;
        let ends = rec
            .window_ends_at
            .filter(|&end| end > now)
            .unwrap_or(now.saturating_add(window));
        let key = username_key(&rec.username);
        let mut inner = self.lock();
        if inner.users.contains_key(&key) {
            return inner.sessions.get(&rec.token) == Some(&key);
        }
        self.take_up(&mut inner, &key, rec, ends, now);
        true
    }

    /// Another node took the session `token` over: it is no longer this
    /// node's (nothing is written: the store's record is the other
    /// node's now). Returns the socket that held it here, to be told.
    pub fn release(&self, token: &str) -> Option<Sid> {
        let mut inner = self.lock();
        let key = inner.sessions.remove(token)?;
        let old = inner.users.remove(&key)?;
        if old.sid.is_some() {
            inner.online = inner.online.saturating_sub(1);
        }
        for room in old.rooms.keys() {
            Self::drop_live(&mut inner, room, &key);
            Self::release_room(&mut inner, room);
        }
        old.sid
    }

    /// Ends the session holding `key` here (a password login on another
    /// node took the name), as a password login here would. Returns its
    /// live socket, to be told.
    pub fn evict(&self, key: &str) -> Option<Sid> {
        let mut inner = self.lock();
        let sid = inner.users.get(key)?.sid;
        Self::end_session(&mut inner, key, |op| self.persist(op));
        sid
    }

    /// The users this node holds (live or in their window): their
    /// names stay taken across the cluster.
    pub fn held_names(&self) -> Vec<String> {
        self.lock()
            .users
            .values()
            .map(|u| u.username.clone())
            .collect()
    }

    /// The tokens of the sessions that have a live socket here.
    pub fn live_tokens(&self) -> Vec<String> {
        self.lock()
            .users
            .values()
            .filter(|u| u.sid.is_some())
            .map(|u| u.token.clone())
            .collect()
    }

    /// This node's live users and room member counts.
    pub fn node_presence(&self) -> crate::cluster::NodePresence {
        let inner = self.lock();
        crate::cluster::NodePresence {
            users: inner
                .users
                .values()
                .filter(|u| u.sid.is_some())
                .map(|u| u.username.clone())
                .collect(),
            rooms: inner
                .live
                .keys()
                .map(|room| (room.clone(), Self::member_names(&inner, room)))
                .collect(),
        }
    }

    // ---------------------------------------------------------------- admin

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Connected `/admin` sockets; admin events are built only when some
    /// admin listens.
    pub fn admins(&self) -> usize {
        self.admins.load(Ordering::Relaxed)
    }

    pub fn admin_joined(&self) {
        self.admins.fetch_add(1, Ordering::Relaxed);
    }

    pub fn admin_left(&self) {
        self.admins.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn room_count(&self) -> u64 {
        self.lock().live.len() as u64
    }

    /// The `/admin` snapshot; `transport_of` names each live socket's
    /// transport (the node knows it, the state does not).
    pub fn admin_snapshot(&self, transport_of: impl Fn(Sid) -> String) -> AdminSnapshot {
        let inner = self.lock();
        let mut users: Vec<AdminUser> = inner
            .users
            .values()
            .filter_map(|u| {
                u.sid.map(|sid| AdminUser {
                    username: u.username.clone(),
                    transport: transport_of(sid),
                    rooms: u.rooms.keys().cloned().collect(),
                    connected_at: u.connected_at,
                })
            })
            .collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        AdminSnapshot {
            online: inner.online,
            users,
            rooms: Self::room_counts(&inner),
            uptime_ms: self.uptime_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn auth(name: &str) -> Auth {
        Auth {
            username: name.into(),
            session: None,
            offset: None,
            ..Default::default()
        }
    }

    fn resume(name: &str, token: &str, offset: Option<&str>) -> Auth {
        Auth {
            username: name.into(),
            session: Some(token.into()),
            offset: offset.map(Into::into),
            ..Default::default()
        }
    }

    fn state() -> Arc<ChatState> {
        ChatState::new(Config::default())
    }

    #[tokio::test]
    async fn usernames_are_unique_case_insensitively() {
        let s = state();
        let a = s.admit(&auth("Alice"), Sid::new()).unwrap();
        assert_eq!(a.username, "Alice");
        assert!(!a.recovered);
        let err = s.admit(&auth("alice"), Sid::new()).unwrap_err();
        assert_eq!(err.code, ErrorCode::UsernameTaken);
        assert_eq!(s.online(), 1);
    }

    #[tokio::test]
    async fn a_session_belongs_to_its_username() {
        let s = state();
        let a = s.admit(&auth("alice"), Sid::new()).unwrap();
        let err = s
            .admit(&resume("bob", &a.token, None), Sid::new())
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidSession);
        // An unknown token is no error: a fresh session if the name is free.
        let b = s.admit(&resume("bob", "nope", None), Sid::new()).unwrap();
        assert!(!b.recovered);
    }

    #[tokio::test(start_paused = true)]
    async fn the_username_is_reserved_for_the_window_then_freed() {
        let s = state();
        let sid = Sid::new();
        let a = s.admit(&auth("alice"), sid).unwrap();
        s.join("alice", "#general").unwrap();
        let d = s.disconnect("alice", sid, false).unwrap();
        assert_eq!(d.rooms, vec![("#general".to_string(), 0)]);
        assert_eq!(s.online(), 0);
        assert_eq!(
            s.admit(&auth("alice"), Sid::new()).unwrap_err().code,
            ErrorCode::UsernameTaken
        );

        tokio::time::sleep(Duration::from_secs(119)).await;
        assert!(s.target("alice").is_some(), "still inside the 120 s window");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(s.target("alice").is_none(), "expired after the window");
        let again = s
            .admit(&resume("alice", &a.token, None), Sid::new())
            .unwrap();
        assert!(!again.recovered, "an expired token gives a fresh session");
        assert!(again.rooms.is_empty());
    }

    /// A timer left from an earlier session of the name must not cut a
    /// later session's window short.
    #[tokio::test(start_paused = true)]
    async fn an_old_timer_does_not_end_a_later_session_of_the_name() {
        let s = state();
        let first = Sid::new();
        let a = s.admit(&auth("alice"), first).unwrap();
        s.disconnect("alice", first, false).unwrap(); // timer for t = 120 s
        let back = Sid::new();
        s.admit(&resume("alice", &a.token, None), back).unwrap();
        s.disconnect("alice", back, true).unwrap(); // planned: the session ends
        tokio::time::sleep(Duration::from_secs(60)).await;
        let later = Sid::new();
        s.admit(&auth("alice"), later).unwrap();
        s.disconnect("alice", later, false).unwrap(); // its window: until t = 180 s
        tokio::time::sleep(Duration::from_secs(70)).await; // t = 130 s
        assert!(
            s.target("alice").is_some(),
            "the later session keeps its whole window"
        );
        tokio::time::sleep(Duration::from_secs(51)).await;
        assert!(s.target("alice").is_none(), "and ends with it");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_inside_the_window_cancels_the_expiry() {
        let s = state();
        let sid = Sid::new();
        let a = s.admit(&auth("alice"), sid).unwrap();
        s.join("alice", "#general").unwrap();
        s.disconnect("alice", sid, false).unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        let back = s
            .admit(&resume("alice", &a.token, None), Sid::new())
            .unwrap();
        assert!(back.recovered);
        assert_eq!(back.rooms, vec!["#general"]);
        assert_eq!(s.members("#general"), 1);
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(
            s.target("alice").is_some(),
            "the old timer must not end the resumed session"
        );
    }

    #[tokio::test]
    async fn a_planned_leave_ends_the_session_at_once() {
        let s = state();
        let sid = Sid::new();
        let a = s.admit(&auth("alice"), sid).unwrap();
        s.disconnect("alice", sid, true).unwrap();
        assert!(s.target("alice").is_none());
        let b = s
            .admit(&resume("alice", &a.token, None), Sid::new())
            .unwrap();
        assert!(!b.recovered);
    }

    #[tokio::test]
    async fn takeover_keeps_one_live_socket() {
        let s = state();
        let old = Sid::new();
        let a = s.admit(&auth("alice"), old).unwrap();
        let new = Sid::new();
        let b = s.admit(&resume("alice", &a.token, None), new).unwrap();
        assert_eq!(b.replaced, Some(old));
        assert_eq!(s.online(), 1);
        assert!(
            s.disconnect("alice", old, false).is_none(),
            "the replaced socket changes nothing"
        );
        assert!(s.is_current("alice", new));
    }

    #[tokio::test]
    async fn replay_is_what_the_user_missed_in_order() {
        let s = state();
        let sid = Sid::new();
        let a = s.admit(&auth("alice"), sid).unwrap();
        s.admit(&auth("bob"), Sid::new()).unwrap();
        s.join("alice", "#a").unwrap();
        s.join("bob", "#a").unwrap();
        s.join("bob", "#b").unwrap();
        let seen = s.record("bob", "seen", Destination::Room("#a".into()), false);
        s.disconnect("alice", sid, false).unwrap();
        s.record("bob", "r1", Destination::Room("#a".into()), false);
        s.record("bob", "other room", Destination::Room("#b".into()), false);
        s.record("bob", "dm", Destination::Dm { to: "Alice".into() }, false);
        s.record("bob", "g", Destination::Global, false);
        s.record("bob", "b", Destination::Broadcast, false);
        s.record("alice", "own broadcast", Destination::Broadcast, false);

        let seen_id = seen.id.to_string();
        s.admit(&resume("alice", &a.token, Some(&seen_id)), Sid::new())
            .unwrap();
        let r = s.replay("alice", Some(&seen_id));
        let texts: Vec<String> = r.messages.iter().map(|m| m.text.clone()).collect();
        assert_eq!(texts, vec!["r1", "dm", "g", "b"]);
        assert!(!r.truncated);
        assert_eq!(r.upto, 7);
    }

    #[tokio::test]
    async fn replay_reads_what_the_log_no_longer_holds_from_the_store() {
        let s = ChatState::new(Config {
            replay_buffer: 3,
            ..Config::default()
        });
        let sid = Sid::new();
        let a = s.admit(&auth("alice"), sid).unwrap();
        s.admit(&auth("bob"), Sid::new()).unwrap();
        s.disconnect("alice", sid, false).unwrap();
        for i in 0..5 {
            s.record("bob", &format!("g{i}"), Destination::Global, false);
        }
        s.admit(&resume("alice", &a.token, None), Sid::new())
            .unwrap();
        let r = s.replay("alice", None);
        assert_eq!(r.messages.len(), 3);
        assert_eq!(r.stored, Some((0, 2)), "ids 1 and 2 come from the store");
        assert!(!r.truncated, "nothing was pruned");
    }

    #[tokio::test]
    async fn rooms_join_leave_and_limits() {
        let s = ChatState::new(Config {
            max_rooms_per_user: 2,
            history: 2,
            ..Config::default()
        });
        s.admit(&auth("alice"), Sid::new()).unwrap();
        s.admit(&auth("bob"), Sid::new()).unwrap();
        assert!(s.join("alice", "#a").unwrap().fresh);
        assert!(
            !s.join("alice", "#a").unwrap().fresh,
            "joining twice is idempotent"
        );
        for t in ["1", "2", "3"] {
            s.record("alice", t, Destination::Room("#a".into()), false);
        }
        let j = s.join("bob", "#a").unwrap();
        assert_eq!(
            j.members,
            vec!["Alice".to_string().to_lowercase(), "bob".into()]
        );
        assert_eq!(j.count, 2);
        assert_eq!(
            j.history
                .iter()
                .map(|m| m.text.as_str())
                .collect::<Vec<_>>(),
            vec!["2", "3"]
        );
        s.join("alice", "#b").unwrap();
        assert_eq!(s.join("alice", "#c").unwrap_err(), ErrorCode::TooManyRooms);
        assert_eq!(s.leave("alice", "#a").unwrap(), 1);
        assert_eq!(s.leave("alice", "#a").unwrap_err(), ErrorCode::NotMember);
        assert_eq!(
            s.room_list(),
            vec![
                RoomCount {
                    room: "#a".into(),
                    members: 1
                },
                RoomCount {
                    room: "#b".into(),
                    members: 1
                },
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn history_lives_while_someone_holds_the_room() {
        let s = state();
        let sid = Sid::new();
        s.admit(&auth("alice"), sid).unwrap();
        s.join("alice", "#a").unwrap();
        s.record("alice", "kept", Destination::Room("#a".into()), false);
        s.disconnect("alice", sid, false).unwrap();
        s.admit(&auth("bob"), Sid::new()).unwrap();
        let j = s.join("bob", "#a").unwrap();
        assert_eq!(j.history.len(), 1, "alice, in her window, still holds #a");
        s.leave("bob", "#a").unwrap();
        tokio::time::sleep(Duration::from_secs(121)).await;
        let j = s.join("bob", "#a").unwrap();
        assert!(
            j.history.is_empty(),
            "the room emptied: its history is no longer kept in memory (the store has it)"
        );
    }

    /// A session taken up from another node: its name is held, it resumes
    /// with its rooms, another node can take it back, and its window ends
    /// when the record said.
    #[tokio::test(start_paused = true)]
    async fn a_session_from_another_node_is_taken_up_and_let_go() {
        let s = state();
        let rec = SessionRecord {
            token: "t".into(),
            username: "Alice".into(),
            since: 0,
            rooms: [("#a".to_string(), 0)].into(),
            window_ends_at: Some(now_ms() + 60_000),
            account: false,
        };
        assert!(s.adopt(&rec));
        assert_eq!(
            s.admit(&auth("alice"), Sid::new()).unwrap_err().code,
            ErrorCode::UsernameTaken
        );
        let sid = Sid::new();
        let back = s.admit(&resume("alice", "t", None), sid).unwrap();
        assert!(back.recovered);
        assert_eq!(back.rooms, ["#a"]);
        assert_eq!(s.members("#a"), 1);
        assert_eq!(s.release("t"), Some(sid), "another node took it");
        assert!(s.target("alice").is_none());
        assert_eq!((s.online(), s.members("#a")), (0, 0));

        assert!(s.adopt(&rec));
        tokio::time::sleep(Duration::from_secs(58)).await;
        assert!(s.target("alice").is_some(), "inside its window");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(s.target("alice").is_none(), "ended with it");
    }

    #[tokio::test]
    async fn server_full() {
        let s = ChatState::new(Config {
            max_connections: 1,
            ..Config::default()
        });
        s.admit(&auth("alice"), Sid::new()).unwrap();
        assert_eq!(
            s.admit(&auth("bob"), Sid::new()).unwrap_err().code,
            ErrorCode::ServerFull
        );
    }
}
