//! A handshake's outcome, read top to bottom in [`ChatState::admit_as`]:
//! a session token resumes its session; otherwise an account's password
//! opens another session of the account (v3), ending its least recently
//! active one beyond `--max-sessions-per-account`; then, if the name is
//! free and the server is not full, a fresh session starts (for an
//! account, in its remembered rooms).

use std::collections::HashMap;

use chat_shared::{Auth, ConnectRefusal, ErrorCode, username_key};
use rand::RngCore;
use socketioxide::socket::Sid;

use super::sessions::{Session, User};
use super::writer::Written;
use super::{ChatState, Inner, SessionOp};
use crate::store::{AccountChange, SessionMeta};

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
        /// (v3) The API token that proved it, if one did (not a password).
        token_id: Option<String>,
    },
    /// An account was just created for the name: the session (resumed by
    /// its token, or fresh) becomes the account's.
    Registered,
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
    /// or (v3) that of the account's least recently active session, ended
    /// for this one beyond the limit: to be told `session_replaced` and
    /// disconnected.
    pub replaced: Option<Sid>,
    pub rooms: Vec<String>,
    /// The session belongs to an account.
    pub account: bool,
    /// A fresh account session: the DMs after this id (and up to the
    /// session's start) are delivered as replayed.
    pub queued_after: Option<u64>,
    /// (v3) The first session of the user to come up: presence says it
    /// arrived. False when another client of the account is connected.
    pub first: bool,
    /// (v3) The session's public id (`session:list`), never its token.
    pub session_id: String,
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token() -> String {
    random_hex(24)
}

fn server_full() -> ConnectRefusal {
    ConnectRefusal::new(ErrorCode::ServerFull, "the server is full")
}

impl ChatState {
    /// Decides a guest's `/chat` handshake (or a resume by token).
    pub fn admit(&self, auth: &Auth, sid: Sid) -> Result<Admission, ConnectRefusal> {
        self.admit_as(auth, sid, Login::Guest, None)
    }

    /// Decides a `/chat` handshake whose name was proved by `login` and,
    /// on success, makes `sid` a live socket of the user. The username
    /// must already be valid; `from` is the client's address.
    pub fn admit_as(
        &self,
        auth: &Auth,
        sid: Sid,
        login: Login,
        from: Option<std::net::IpAddr>,
    ) -> Result<Admission, ConnectRefusal> {
        let key = username_key(&auth.username);
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(token) = auth.session.as_ref()
            && let Some(owner) = inner.sessions.by_token.get(token).cloned()
        {
            if owner != key {
                return Err(ConnectRefusal::new(
                    ErrorCode::InvalidSession,
                    "that session belongs to another username",
                ));
            }
            return self.resume(inner, key, token, sid, &login);
        }
        let meta = SessionMeta {
            id: random_hex(8),
            client: auth.client.as_deref().and_then(chat_shared::client_label),
            address: from.map(|a| a.to_string()),
            connected_at: crate::clock::now_ms(),
            token_id: match &login {
                Login::Account { token_id, .. } => token_id.clone(),
                _ => None,
            },
        };
        if let Login::Account { .. } = login
            && inner.sessions.users.get(&key).is_some_and(|u| u.account)
        {
            return self.another_session(inner, key, sid, login, meta);
        }
        let replaced = self.take_name(inner, &key, &login)?;
        if inner.sessions.users.contains_key(&key) {
            return Err(ConnectRefusal::new(
                ErrorCode::UsernameTaken,
                format!("{} is in use", auth.username),
            ));
        }
        if self.full(inner.sessions.online) {
            return Err(server_full());
        }
        Ok(self.begin(inner, key, &auth.username, sid, login, replaced, meta))
    }

    /// `--max-connections` users are online already.
    fn full(&self, online: u64) -> bool {
        let max = self.config.max_connections;
        max > 0 && online >= max as u64
    }

    /// The token's session becomes `sid`'s; a socket that held it before
    /// is handed back in the admission, to be told.
    fn resume(
        &self,
        inner: &mut Inner,
        key: String,
        token: &str,
        sid: Sid,
        login: &Login,
    ) -> Result<Admission, ConnectRefusal> {
        let online = inner.sessions.online;
        let missing = || ConnectRefusal::new(ErrorCode::Internal, "session without a user");
        let user = inner.sessions.users.get_mut(&key).ok_or_else(missing)?;
        let was_live = user.live();
        if !was_live && self.full(online) {
            return Err(server_full());
        }
        // A takeover of this session's own half-open socket still says the
        // user arrived, unless another of its clients is connected.
        let others_live = user
            .sessions
            .iter()
            .any(|s| s.token != token && s.sid.is_some());
        let absence = self.next_absence();
        let session = user.session_mut(token).ok_or_else(missing)?;
        let session_id = session.meta.id.clone();
        let replaced = session.sid.replace(sid);
        session.lagging = false;
        session.ready = false;
        session.absence = absence;
        session.window_ends_at = None;
        session
            .last_active
            .store(crate::clock::now_ms(), std::sync::atomic::Ordering::Relaxed);
        user.account = user.account || !matches!(login, Login::Guest);
        let admission = Admission {
            key: key.clone(),
            username: user.username.clone(),
            token: token.to_owned(),
            recovered: true,
            replaced,
            rooms: user.rooms.keys().cloned().collect(),
            account: user.account,
            queued_after: None,
            first: !others_live,
            session_id,
        };
        for s in &user.sessions {
            self.persist(SessionOp::Put(user.record(s)));
        }
        if matches!(login, Login::Registered) {
            let rooms = AccountChange::Rooms(admission.rooms.clone());
            self.persist_account(&mut inner.written, &key, rooms);
        }
        if !was_live {
            inner.sessions.online += 1;
            for room in &admission.rooms {
                inner.rooms.enter(room, &key);
            }
        }
        Ok(admission)
    }

    /// (v3) A password login of an account that has sessions here opens
    /// another one, in the account's rooms; beyond the limit, the least
    /// recently active session (live or in its window) ends for it.
    fn another_session(
        &self,
        inner: &mut Inner,
        key: String,
        sid: Sid,
        login: Login,
        meta: SessionMeta,
    ) -> Result<Admission, ConnectRefusal> {
        let online = inner.sessions.online;
        let max = self.config.max_sessions_per_account as usize;
        let Some(user) = inner.sessions.users.get(&key) else {
            return Err(ConnectRefusal::new(
                ErrorCode::Internal,
                "account without a user",
            ));
        };
        let was_live = user.live();
        if !was_live && self.full(online) {
            return Err(server_full());
        }
        let oldest = (user.sessions.len() >= max)
            .then(|| {
                user.sessions
                    .iter()
                    .min_by_key(|s| s.last_active.load(std::sync::atomic::Ordering::Relaxed))
                    .map(|s| s.token.clone())
            })
            .flatten();
        let replaced = oldest.and_then(|t| self.end_session(inner, &key, &t));
        let head = inner.log.head;
        let token = token();
        let was_live = inner.sessions.users.get(&key).is_some_and(User::live);
        let Some(user) = inner.sessions.users.get_mut(&key) else {
            // The only session was the one ended (a limit of 1): this one
            // starts over as the first.
            let name = match &login {
                Login::Account { username, .. } => username.clone(),
                _ => key.clone(),
            };
            return Ok(self.begin(inner, key, &name, sid, login, replaced, meta));
        };
        let session_id = meta.id.clone();
        user.sessions
            .push(Session::fresh(token.clone(), sid, head, meta));
        if let Some(s) = user.session(&token) {
            self.persist(SessionOp::Put(user.record(s)));
        }
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        let username = user.username.clone();
        inner.sessions.by_token.insert(token.clone(), key.clone());
        if !was_live {
            inner.sessions.online += 1;
            for room in &rooms {
                inner.rooms.enter(room, &key);
            }
        }
        Ok(Admission {
            key,
            username,
            token,
            // Not a resume: the account's other sessions got its DMs, and
            // its rooms are the account's.
            recovered: false,
            replaced,
            rooms,
            account: true,
            queued_after: None,
            first: !was_live,
            session_id,
        })
    }

    /// The owner's password takes the name from a guest session that
    /// holds it (a name that became an account meanwhile). Returns that
    /// session's live socket, to be told.
    fn take_name(
        &self,
        inner: &mut Inner,
        key: &str,
        login: &Login,
    ) -> Result<Option<Sid>, ConnectRefusal> {
        let Login::Account { .. } = login else {
            return Ok(None);
        };
        let Some(old) = inner.sessions.users.get(key) else {
            return Ok(None);
        };
        if !old.live() && self.full(inner.sessions.online) {
            return Err(server_full());
        }
        Ok(self.end_user(inner, key).into_iter().next())
    }

    /// A fresh session for a free name, `sid` its live socket.
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &self,
        inner: &mut Inner,
        key: String,
        name: &str,
        sid: Sid,
        login: Login,
        replaced: Option<Sid>,
        meta: SessionMeta,
    ) -> Admission {
        let token = token();
        let head = inner.log.head;
        let account = !matches!(login, Login::Guest);
        let display = match &login {
            Login::Account { username, .. } => username.clone(),
            _ => name.to_owned(),
        };
        let mut user = User::new(&display, account);
        let session_id = meta.id.clone();
        user.sessions
            .push(Session::fresh(token.clone(), sid, head, meta));
        let mut queued_after = None;
        if let Login::Account { rooms, seen, .. } = login {
            let seen = self.rejoin(&inner.written, &key, &mut user, rooms, seen, head);
            queued_after = Some(seen);
        }
        for room in user.rooms.keys() {
            inner.rooms.hold(room);
            inner.rooms.enter(room, &key);
        }
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        if let Some(s) = user.session(&token) {
            self.persist(SessionOp::Put(user.record(s)));
        }
        inner.sessions.users.insert(key.clone(), user);
        inner.sessions.by_token.insert(token.clone(), key.clone());
        inner.sessions.online += 1;
        Admission {
            key,
            username: display,
            token,
            recovered: false,
            replaced,
            rooms,
            account,
            queued_after,
            first: true,
            session_id,
        }
    }

    /// Puts a fresh account session in the account's remembered rooms,
    /// each joined now (at `head`), and returns the id its queued DMs come
    /// after. What this process wrote last wins over what the store
    /// returned (see [`Written`]).
    fn rejoin(
        &self,
        written: &HashMap<String, Written>,
        key: &str,
        user: &mut User,
        mut rooms: Vec<String>,
        mut seen: u64,
        head: u64,
    ) -> u64 {
        if let Some(w) = written.get(key) {
            seen = seen.max(w.seen);
            if let Some(r) = &w.rooms {
                rooms.clone_from(r);
            }
        }
        for room in rooms
            .iter()
            .filter_map(|r| chat_shared::canonical_room(r))
            .take(self.config.max_rooms_per_user)
        {
            user.rooms.insert(room, head);
        }
        seen
    }
}
