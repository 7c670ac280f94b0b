//! A handshake's outcome, read top to bottom in [`ChatState::admit_as`]:
//! a session token resumes its session; otherwise an account's password
//! takes the name from whichever session holds it; then, if the name is
//! free and the server is not full, a fresh session starts (for an
//! account, in its remembered rooms).

use std::collections::HashMap;

use chat_shared::{Auth, ConnectRefusal, ErrorCode, username_key};
use rand::RngCore;
use socketioxide::socket::Sid;

use super::sessions::User;
use super::writer::Written;
use super::{ChatState, Inner, SessionOp};
use crate::store::AccountChange;

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

fn token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn server_full() -> ConnectRefusal {
    ConnectRefusal::new(ErrorCode::ServerFull, "the server is full")
}

impl ChatState {
    /// Decides a guest's `/chat` handshake (or a resume by token).
    pub fn admit(&self, auth: &Auth, sid: Sid) -> Result<Admission, ConnectRefusal> {
        self.admit_as(auth, sid, Login::Guest)
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
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Some(owner) = auth
            .session
            .as_ref()
            .and_then(|t| inner.sessions.by_token.get(t))
            .cloned()
        {
            if owner != key {
                return Err(ConnectRefusal::new(
                    ErrorCode::InvalidSession,
                    "that session belongs to another username",
                ));
            }
            return self.resume(inner, key, sid, &login);
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
        Ok(self.begin(inner, key, &auth.username, sid, login, replaced))
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
        sid: Sid,
        login: &Login,
    ) -> Result<Admission, ConnectRefusal> {
        let online = inner.sessions.online;
        let user =
            inner.sessions.users.get_mut(&key).ok_or_else(|| {
                ConnectRefusal::new(ErrorCode::Internal, "session without a user")
            })?;
        let replaced = user.sid.replace(sid);
        user.lagging = false;
        user.ready = false;
        if replaced.is_none() && self.full(online) {
            user.sid = None;
            return Err(server_full());
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
            self.persist_account(&mut inner.written, &key, rooms);
        }
        if replaced.is_none() {
            inner.sessions.online += 1;
            for room in &admission.rooms {
                inner.rooms.enter(room, &key);
            }
        }
        Ok(admission)
    }

    /// The owner's password takes the name from whichever session
    /// holds it (their own, left half-open or on another device). Returns
    /// that session's live socket, to be told.
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
        let live = old.sid;
        if live.is_none() && self.full(inner.sessions.online) {
            return Err(server_full());
        }
        self.end_session(inner, key);
        Ok(live)
    }

    /// A fresh session for a free name, `sid` its live socket.
    fn begin(
        &self,
        inner: &mut Inner,
        key: String,
        name: &str,
        sid: Sid,
        login: Login,
        replaced: Option<Sid>,
    ) -> Admission {
        let token = token();
        let head = inner.log.head;
        let account = !matches!(login, Login::Guest);
        let display = match &login {
            Login::Account { username, .. } => username.clone(),
            _ => name.to_owned(),
        };
        let mut user = User::fresh(&display, token.clone(), sid, head, account);
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
        self.persist(SessionOp::Put(user.record()));
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
