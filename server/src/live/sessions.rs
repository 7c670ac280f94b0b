//! Users and their sessions: who holds which name, by which tokens, with
//! which live sockets, and what a disconnect changes.
//!
//! (v3) A user (an account, or a guest name) has one or more sessions,
//! each with its own token, socket and offset: an account may be on
//! several clients at once (`--max-sessions-per-account`), a guest on one.
//! What belongs to the person is kept once, on the [`User`]: its rooms
//! (membership is the account's), its name. Presence counts users, not
//! sessions: a user is online while any of its sessions has a socket.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chat_shared::{ErrorCode, username_key};
use socketioxide::socket::Sid;

use super::order::Delivering;
use super::{ChatState, Inner, SessionOp};
use crate::clock::now_ms;
use crate::store::{AccountChange, MarkerAt, SessionMeta, SessionRecord};

/// One client's session.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) token: String,
    /// The live socket, if any.
    pub(super) sid: Option<Sid>,
    /// The live socket missed a message (its queue was full) and its
    /// transport is being ended: nothing more is delivered to it live, so
    /// that its client's offset never skips a message.
    pub(super) lagging: bool,
    /// The live socket is caught up and in its rooms: DMs go to it live.
    /// Until then they reach it through its catch-up, so that none is sent
    /// twice or ahead of the `session` event.
    pub(super) ready: bool,
    /// The log head when the session began: nothing older is replayed.
    pub(super) since: u64,
    /// A new number (unique in the process, never 0) at every disconnect
    /// and resume: a window's end only ends the absence it was noted for.
    pub(super) absence: u64,
    /// Wall-clock ms when the recovery window ends; `None` while live.
    pub(super) window_ends_at: Option<u64>,
    /// Wall-clock ms of its last request or connect: the least recently
    /// active session is the one a login beyond the limit ends. Shared
    /// with its socket's context, which stamps it on every request
    /// without taking the state's lock.
    pub(super) last_active: Arc<AtomicU64>,
    /// What `session:list` shows (public id, label, address, start).
    pub(super) meta: SessionMeta,
}

impl Session {
    pub(super) fn fresh(token: String, sid: Sid, since: u64, meta: SessionMeta) -> Session {
        Session {
            token,
            sid: Some(sid),
            lagging: false,
            ready: false,
            since,
            absence: 0,
            window_ends_at: None,
            last_active: Arc::new(AtomicU64::new(now_ms())),
            meta,
        }
    }

    /// A socket may get messages live.
    fn deliverable(&self) -> Option<Sid> {
        self.sid.filter(|_| self.ready && !self.lagging)
    }
}

/// An account, or a guest name, with its sessions.
#[derive(Debug)]
pub(super) struct User {
    pub(super) username: String,
    /// Rooms, each with the log sequence number at which they were joined
    /// (a restore replays only what came after the join).
    pub(super) rooms: BTreeMap<String, u64>,
    /// The user is an account (it logged in or registered).
    pub(super) account: bool,
    /// Never empty: a user with no session left is removed.
    pub(super) sessions: Vec<Session>,
    /// (v3) A guest's read markers, for the life of its session (an
    /// account's are in the store).
    pub(super) markers: BTreeMap<MarkerAt, u64>,
}

impl User {
    pub(super) fn new(username: &str, account: bool) -> User {
        User {
            username: username.to_owned(),
            rooms: BTreeMap::new(),
            account,
            sessions: Vec::new(),
            markers: BTreeMap::new(),
        }
    }

    /// The stored form of one of its sessions.
    pub(super) fn record(&self, s: &Session) -> SessionRecord {
        SessionRecord {
            token: s.token.clone(),
            username: self.username.clone(),
            since: s.since,
            rooms: self.rooms.clone(),
            window_ends_at: s.window_ends_at,
            account: self.account,
            meta: s.meta.clone(),
        }
    }

    /// Whether any session has a socket.
    pub(super) fn live(&self) -> bool {
        self.sessions.iter().any(|s| s.sid.is_some())
    }

    pub(super) fn session(&self, token: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.token == token)
    }

    pub(super) fn session_mut(&mut self, token: &str) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.token == token)
    }

    fn by_sid_mut(&mut self, sid: Sid) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.sid == Some(sid))
    }

    /// The sockets that get messages live.
    fn deliverable(&self) -> Vec<Sid> {
        self.sessions
            .iter()
            .filter_map(Session::deliverable)
            .collect()
    }
}

/// The sessions' part of the state.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// User key → the user holding that name (live or in a window).
    pub(super) users: HashMap<String, User>,
    /// Session token → user key.
    pub(super) by_token: HashMap<String, String>,
    /// Users with a live socket.
    pub(super) online: u64,
}

/// What a disconnect changed, for presence.
#[derive(Debug)]
pub struct Departure {
    pub username: String,
    /// The user's last live session went: presence says it left. False
    /// while another client of the account is still connected.
    pub last: bool,
    /// Each room the user was in, with its live member count after (empty
    /// unless `last`).
    pub rooms: Vec<(String, u64)>,
    pub online: u64,
}

/// A resolved DM or typing target.
#[derive(Debug, Clone)]
pub struct Target {
    pub key: String,
    pub username: String,
    /// The sockets to deliver to live (its sessions' that are ready).
    pub sids: Vec<Sid>,
    /// A socket holds one of its sessions (perhaps still catching up).
    pub live: bool,
}

/// (v3) One session as `session:list` shows it, before the caller marks
/// the current one.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub token: String,
    pub meta: SessionMeta,
    pub last_active: u64,
    pub live: bool,
}

impl ChatState {
    /// Whether a session holds `key`'s name (live or in its window).
    pub fn name_held(&self, key: &str) -> bool {
        self.lock().sessions.users.contains_key(key)
    }

    /// The user key a session token belongs to, if it is known.
    pub fn session_owner(&self, token: &str) -> Option<String> {
        self.lock().sessions.by_token.get(token).cloned()
    }

    /// Users with a live socket.
    pub fn online(&self) -> u64 {
        self.lock().sessions.online
    }

    /// Ends one session of `key` at once (a login took the name or the
    /// session's place, `session:end`): its socket, if any, stops counting;
    /// the caller tells that socket. Returns that socket.
    pub(super) fn end_session(&self, inner: &mut Inner, key: &str, token: &str) -> Option<Sid> {
        self.remove_session(inner, key, token, true)
    }

    /// Takes `key`'s session `token` out of the state (and, with `stored`,
    /// out of the store): a user whose last live session it was goes
    /// offline, one with no session left is forgotten. Returns its socket.
    fn remove_session(
        &self,
        inner: &mut Inner,
        key: &str,
        token: &str,
        stored: bool,
    ) -> Option<Sid> {
        let user = inner.sessions.users.get_mut(key)?;
        let at = user.sessions.iter().position(|s| s.token == token)?;
        let was_live = user.live();
        let old = user.sessions.remove(at);
        let now_live = user.live();
        let empty = user.sessions.is_empty();
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        inner.sessions.by_token.remove(&old.token);
        if stored {
            self.persist(SessionOp::Delete(old.token.clone()));
        }
        if was_live && !now_live {
            inner.sessions.online = inner.sessions.online.saturating_sub(1);
            for room in &rooms {
                inner.rooms.drop_live(room, key);
            }
        }
        if empty {
            inner.sessions.users.remove(key);
            for room in &rooms {
                inner.rooms.release(room);
            }
        }
        old.sid
    }

    /// Ends every session of `key`; returns their sockets.
    pub(super) fn end_user(&self, inner: &mut Inner, key: &str) -> Vec<Sid> {
        let tokens: Vec<String> = inner
            .sessions
            .users
            .get(key)
            .map(|u| u.sessions.iter().map(|s| s.token.clone()).collect())
            .unwrap_or_default();
        tokens
            .iter()
            .filter_map(|t| self.end_session(inner, key, t))
            .collect()
    }

    /// `sid`, one of `key`'s live sockets, is caught up and in its rooms:
    /// DMs go to it live from now on.
    pub fn set_ready(&self, _: &Delivering<'_>, key: &str, sid: Sid) {
        if let Some(s) = self
            .lock()
            .sessions
            .users
            .get_mut(key)
            .and_then(|u| u.by_sid_mut(sid))
        {
            s.ready = true;
        }
    }

    /// Whether `sid` still holds one of `key`'s sessions.
    pub fn is_current(&self, key: &str, sid: Sid) -> bool {
        self.lock()
            .sessions
            .users
            .get(key)
            .is_some_and(|u| u.sessions.iter().any(|s| s.sid == Some(sid)))
    }

    /// (v3) The clock `token`'s socket stamps at each request (see
    /// `Session::last_active`).
    pub fn activity(&self, key: &str, token: &str) -> Arc<AtomicU64> {
        self.lock()
            .sessions
            .users
            .get(key)
            .and_then(|u| u.session(token))
            .map(|s| Arc::clone(&s.last_active))
            .unwrap_or_default()
    }

    /// Ends the live socket `sid` of `key`. A planned leave ends its
    /// session; otherwise the session is kept for the recovery window and
    /// ends with it (see [`expiry`](super::expiry)). `None` when `sid`
    /// holds none of the user's sessions (it was taken over): nothing
    /// changes.
    pub fn disconnect(self: &Arc<Self>, key: &str, sid: Sid, planned: bool) -> Option<Departure> {
        let mut inner = self.lock();
        let head = inner.log.head;
        let user = inner.sessions.users.get(key)?;
        let s = user.sessions.iter().find(|s| s.sid == Some(sid))?;
        let (token, lagging) = (s.token.clone(), s.lagging);
        let last = user.sessions.iter().filter(|s| s.sid.is_some()).count() == 1;
        let (account, username) = (user.account, user.username.clone());
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        if planned {
            // Counts, membership and holds follow in `end_session`.
            self.end_session(&mut inner, key, &token);
        } else {
            let absence = self.next_absence();
            let window = self.config.recovery_window;
            let user = inner.sessions.users.get_mut(key)?;
            let s = user.session_mut(&token)?;
            s.sid = None;
            s.ready = false;
            s.absence = absence;
            s.last_active.store(now_ms(), Ordering::Relaxed);
            s.window_ends_at = Some(now_ms().saturating_add(window.as_millis() as u64));
            let user = inner.sessions.users.get(key)?;
            let rec = user.record(user.session(&token)?);
            self.persist(SessionOp::Put(rec));
            self.expire_after(key, absence, window);
            if last {
                inner.sessions.online = inner.sessions.online.saturating_sub(1);
                for room in &rooms {
                    inner.rooms.drop_live(room, key);
                }
            }
        }
        if last && account && !lagging {
            // Every DM so far reached a socket of the account: later ones
            // wait for its next connect (unless a session resumes first).
            self.persist_account(&mut inner.written, key, AccountChange::Seen(head));
        }
        let counts = if last {
            rooms
                .into_iter()
                .map(|room| {
                    let n = inner.rooms.live_count(&room);
                    (room, n)
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(Departure {
            username,
            last,
            rooms: counts,
            online: inner.sessions.online,
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

    /// Marks `sid`, one of `key`'s live sockets, as lagging (see
    /// `Session::lagging`). Returns false if it holds none of its sessions.
    pub fn set_lagging(&self, key: &str, sid: Sid) -> bool {
        let mut inner = self.lock();
        match inner
            .sessions
            .users
            .get_mut(key)
            .and_then(|u| u.by_sid_mut(sid))
        {
            Some(s) => {
                s.lagging = true;
                true
            }
            None => false,
        }
    }

    /// The rooms `key` is in now.
    pub fn rooms_of(&self, key: &str) -> Vec<String> {
        self.lock()
            .sessions
            .users
            .get(key)
            .map(|u| u.rooms.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// (v3) A guest's rename: the session of `old` is `new_key`'s now,
    /// under the display name `new_name`, with its token, rooms and socket.
    /// `username_taken` when another session here holds the new name.
    pub fn rename(&self, old: &str, new_key: &str, new_name: &str) -> Result<(), ErrorCode> {
        let mut inner = self.lock();
        if old != new_key && inner.sessions.users.contains_key(new_key) {
            return Err(ErrorCode::UsernameTaken);
        }
        let mut user = inner
            .sessions
            .users
            .remove(old)
            .ok_or(ErrorCode::Internal)?;
        user.username = new_name.to_owned();
        for s in &user.sessions {
            inner
                .sessions
                .by_token
                .insert(s.token.clone(), new_key.to_owned());
            self.persist(SessionOp::Put(user.record(s)));
        }
        if user.live() {
            for room in user.rooms.keys() {
                inner.rooms.drop_live(room, old);
                inner.rooms.enter(room, new_key);
            }
        }
        inner.sessions.users.insert(new_key.to_owned(), user);
        Ok(())
    }

    /// The live sockets holding `key`'s sessions here.
    pub fn sids_of(&self, key: &str) -> Vec<Sid> {
        self.lock()
            .sessions
            .users
            .get(key)
            .map(|u| u.sessions.iter().filter_map(|s| s.sid).collect())
            .unwrap_or_default()
    }

    /// The keys of the users with a live socket here.
    pub fn live_keys(&self) -> Vec<String> {
        self.lock()
            .sessions
            .users
            .iter()
            .filter(|(_, u)| u.live())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A user who is online or inside a recovery window.
    pub fn target(&self, name: &str) -> Option<Target> {
        self.target_key(&username_key(name))
    }

    /// [`target`](Self::target) by key.
    pub fn target_key(&self, key: &str) -> Option<Target> {
        let inner = self.lock();
        inner.sessions.users.get(key).map(|u| Target {
            key: key.to_owned(),
            username: u.username.clone(),
            sids: u.deliverable(),
            live: u.live(),
        })
    }

    /// When `key`'s session `token` began (the id head then).
    pub fn session_since(&self, key: &str, token: &str) -> u64 {
        self.lock()
            .sessions
            .users
            .get(key)
            .and_then(|u| u.session(token))
            .map_or(u64::MAX, |s| s.since)
    }

    /// The oldest DMs `key` may read: all of them for an account, those of
    /// its current session for a guest.
    pub fn dm_floor(&self, key: &str) -> u64 {
        self.lock().sessions.users.get(key).map_or(u64::MAX, |u| {
            if u.account {
                0
            } else {
                u.sessions.iter().map(|s| s.since).min().unwrap_or(u64::MAX)
            }
        })
    }

    /// Whether `key`'s session belongs to an account.
    pub fn is_account(&self, key: &str) -> bool {
        self.lock()
            .sessions
            .users
            .get(key)
            .is_some_and(|u| u.account)
    }

    /// (v3) `key`'s sessions here, for `session:list`.
    pub fn sessions_of(&self, key: &str) -> Vec<SessionView> {
        self.lock()
            .sessions
            .users
            .get(key)
            .map(|u| {
                u.sessions
                    .iter()
                    .map(|s| SessionView {
                        token: s.token.clone(),
                        meta: s.meta.clone(),
                        last_active: s.last_active.load(Ordering::Relaxed),
                        live: s.sid.is_some(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (v3) Ends `key`'s session `token` here (`session:end`): its token
    /// no longer resumes. Returns its socket, to be told; `None` also
    /// when this node does not hold it.
    pub fn end(&self, key: &str, token: &str) -> (bool, Option<Sid>) {
        let mut inner = self.lock();
        let held = inner
            .sessions
            .users
            .get(key)
            .is_some_and(|u| u.session(token).is_some());
        (held, self.end_session(&mut inner, key, token))
    }

    /// (v3) The socket here of the session with the public id `id` of
    /// the user named `name`, if it is live here.
    pub fn sid_of_session(&self, name: &str, id: &str) -> Option<Sid> {
        self.lock()
            .sessions
            .users
            .get(&username_key(name))?
            .sessions
            .iter()
            .find(|s| s.meta.id == id)?
            .sid
    }

    /// (v3) A guest's read markers.
    pub fn guest_markers(&self, key: &str) -> BTreeMap<MarkerAt, u64> {
        self.lock()
            .sessions
            .users
            .get(key)
            .map(|u| u.markers.clone())
            .unwrap_or_default()
    }

    /// (v3) Moves a guest's marker forward (never back); the marker as it
    /// stands after.
    pub fn put_guest_marker(&self, key: &str, at: &MarkerAt, id: u64) -> u64 {
        let mut inner = self.lock();
        let Some(u) = inner.sessions.users.get_mut(key) else {
            return id;
        };
        let m = u.markers.entry(at.clone()).or_default();
        *m = (*m).max(id);
        *m
    }

    // ------------------------------------------------------------ cluster

    /// Another node took the session `token` over: it is no longer this
    /// node's (nothing is written: the store's record is the other
    /// node's now). Returns the socket that held it here, to be told.
    pub fn release(&self, token: &str) -> Option<Sid> {
        let mut inner = self.lock();
        let key = inner.sessions.by_token.get(token)?.clone();
        self.remove_session(&mut inner, &key, token, false)
    }

    /// The users this node holds (live or in their window): their
    /// names stay taken across the cluster.
    pub fn held_names(&self) -> Vec<String> {
        self.lock()
            .sessions
            .users
            .values()
            .map(|u| u.username.clone())
            .collect()
    }

    /// The tokens of the sessions that have a live socket here.
    pub fn live_tokens(&self) -> Vec<String> {
        self.lock()
            .sessions
            .users
            .values()
            .flat_map(|u| u.sessions.iter())
            .filter(|s| s.sid.is_some())
            .map(|s| s.token.clone())
            .collect()
    }
}
