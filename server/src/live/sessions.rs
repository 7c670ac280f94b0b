//! Users and their sessions: who holds which name, by which token, with
//! which live socket, and what a disconnect changes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chat_shared::{ErrorCode, username_key};
use socketioxide::socket::Sid;

use super::order::Delivering;
use super::{ChatState, Inner, SessionOp};
use crate::clock::now_ms;
use crate::store::{AccountChange, SessionRecord};

#[derive(Debug)]
pub(super) struct User {
    pub(super) username: String,
    pub(super) token: String,
    /// Rooms, each with the log sequence number at which they were joined
    /// (a restore replays only what came after the join).
    pub(super) rooms: BTreeMap<String, u64>,
    /// The live socket, if any.
    pub(super) sid: Option<Sid>,
    /// The live socket missed a message (its queue was full) and its
    /// transport is being ended: nothing more is delivered to it live, so
    /// that its client's offset never skips a message.
    pub(super) lagging: bool,
    pub(super) connected_at: u64,
    /// The log head when the session began: nothing older is replayed.
    pub(super) since: u64,
    /// A new number (unique in the process, never 0) at every disconnect
    /// and resume: a window's end only ends the absence it was noted for.
    pub(super) absence: u64,
    /// Wall-clock ms when the recovery window ends; `None` while live.
    pub(super) window_ends_at: Option<u64>,
    /// The session belongs to an account.
    pub(super) account: bool,
    /// The live socket is caught up and in its rooms: DMs go to it live.
    /// Until then they reach it through its catch-up, so that none is sent
    /// twice or ahead of the `session` event.
    pub(super) ready: bool,
}

impl User {
    pub(super) fn record(&self) -> SessionRecord {
        SessionRecord {
            token: self.token.clone(),
            username: self.username.clone(),
            since: self.since,
            rooms: self.rooms.clone(),
            window_ends_at: self.window_ends_at,
            account: self.account,
            meta: Default::default(),
        }
    }

    pub(super) fn fresh(
        username: &str,
        token: String,
        sid: Sid,
        since: u64,
        account: bool,
    ) -> User {
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

/// The sessions' part of the state.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    /// User key → the user holding that name (live or in their window).
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
    /// Each room the user was in, with its live member count after.
    pub rooms: Vec<(String, u64)>,
    pub online: u64,
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

    /// Ends `key`'s session at once (a password login took the name): its
    /// socket, if any, stops counting; the caller tells that socket.
    pub(super) fn end_session(&self, inner: &mut Inner, key: &str) {
        let Some(old) = inner.sessions.users.remove(key) else {
            return;
        };
        inner.sessions.by_token.remove(&old.token);
        self.persist(SessionOp::Delete(old.token.clone()));
        if old.sid.is_some() {
            inner.sessions.online = inner.sessions.online.saturating_sub(1);
        }
        for room in old.rooms.keys() {
            inner.rooms.drop_live(room, key);
            inner.rooms.release(room);
        }
    }

    /// `sid`, `key`'s live socket, is caught up and in its rooms: DMs go to
    /// it live from now on.
    pub fn set_ready(&self, _: &Delivering<'_>, key: &str, sid: Sid) {
        if let Some(u) = self.lock().sessions.users.get_mut(key)
            && u.sid == Some(sid)
        {
            u.ready = true;
        }
    }

    /// Whether `sid` is still the live socket of `key`.
    pub fn is_current(&self, key: &str, sid: Sid) -> bool {
        self.lock()
            .sessions
            .users
            .get(key)
            .is_some_and(|u| u.sid == Some(sid))
    }

    /// Ends the live socket `sid` of `key`. A planned leave ends the
    /// session; otherwise it is kept for the recovery window and ends
    /// with it (see [`expiry`](super::expiry)). `None` when `sid` is no longer the user's socket (it
    /// was taken over): nothing changes.
    pub fn disconnect(self: &Arc<Self>, key: &str, sid: Sid, planned: bool) -> Option<Departure> {
        let mut inner = self.lock();
        let head = inner.log.head;
        let user = inner.sessions.users.get_mut(key)?;
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
            self.persist_account(&mut inner.written, key, AccountChange::Seen(head));
        }
        let user = inner.sessions.users.get_mut(key)?;
        if !planned {
            let window = self.config.recovery_window.as_millis() as u64;
            user.window_ends_at = Some(now_ms().saturating_add(window));
            self.persist(SessionOp::Put(user.record()));
        }
        let absence = user.absence;
        let username = user.username.clone();
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        let token = user.token.clone();
        inner.sessions.online = inner.sessions.online.saturating_sub(1);
        let mut counts = Vec::with_capacity(rooms.len());
        for room in rooms {
            let n = inner.rooms.drop_live(&room, key);
            counts.push((room, n));
        }
        if planned {
            inner.sessions.users.remove(key);
            inner.sessions.by_token.remove(&token);
            self.persist(SessionOp::Delete(token.clone()));
            for (room, _) in &counts {
                inner.rooms.release(room);
            }
        } else {
            self.expire_after(key, absence, self.config.recovery_window);
        }
        Some(Departure {
            username,
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

    /// Marks `sid`, `key`'s live socket, as lagging (see `User::lagging`).
    /// Returns false if it is no longer the user's socket.
    pub fn set_lagging(&self, key: &str, sid: Sid) -> bool {
        let mut inner = self.lock();
        match inner.sessions.users.get_mut(key) {
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
        inner
            .sessions
            .by_token
            .insert(user.token.clone(), new_key.to_owned());
        if user.sid.is_some() {
            for room in user.rooms.keys() {
                inner.rooms.drop_live(room, old);
                inner.rooms.enter(room, new_key);
            }
        }
        self.persist(SessionOp::Put(user.record()));
        inner.sessions.users.insert(new_key.to_owned(), user);
        Ok(())
    }

    /// The live socket holding `key`'s session here, if any.
    pub fn sid_of(&self, key: &str) -> Option<Sid> {
        self.lock().sessions.users.get(key).and_then(|u| u.sid)
    }

    /// The keys of the users with a live socket here.
    pub fn live_keys(&self) -> Vec<String> {
        self.lock()
            .sessions
            .users
            .iter()
            .filter(|(_, u)| u.sid.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A user who is online or inside a recovery window.
    pub fn target(&self, name: &str) -> Option<Target> {
        let key = username_key(name);
        let inner = self.lock();
        inner.sessions.users.get(&key).map(|u| Target {
            key: key.clone(),
            username: u.username.clone(),
            sid: u.sid.filter(|_| u.ready && !u.lagging),
            live: u.sid.is_some(),
        })
    }

    /// When `key`'s session began (the id head then).
    pub fn session_since(&self, key: &str) -> u64 {
        self.lock()
            .sessions
            .users
            .get(key)
            .map_or(u64::MAX, |u| u.since)
    }

    /// The oldest DMs `key` may read: all of them for an account, those of
    /// its current session for a guest.
    pub fn dm_floor(&self, key: &str) -> u64 {
        self.lock()
            .sessions
            .users
            .get(key)
            .map_or(u64::MAX, |u| if u.account { 0 } else { u.since })
    }

    /// Whether `key`'s session belongs to an account.
    pub fn is_account(&self, key: &str) -> bool {
        self.lock()
            .sessions
            .users
            .get(key)
            .is_some_and(|u| u.account)
    }

    // ------------------------------------------------------------ cluster

    /// Another node took the session `token` over: it is no longer this
    /// node's (nothing is written: the store's record is the other
    /// node's now). Returns the socket that held it here, to be told.
    pub fn release(&self, token: &str) -> Option<Sid> {
        let mut inner = self.lock();
        let key = inner.sessions.by_token.remove(token)?;
        let old = inner.sessions.users.remove(&key)?;
        if old.sid.is_some() {
            inner.sessions.online = inner.sessions.online.saturating_sub(1);
        }
        for room in old.rooms.keys() {
            inner.rooms.drop_live(room, &key);
            inner.rooms.release(room);
        }
        old.sid
    }

    /// Ends the session holding `key` here (a password login on another
    /// node took the name), as a password login here would. Returns its
    /// live socket, to be told.
    pub fn evict(&self, key: &str) -> Option<Sid> {
        let mut inner = self.lock();
        let sid = inner.sessions.users.get(key)?.sid;
        self.end_session(&mut inner, key);
        sid
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
            .filter(|u| u.sid.is_some())
            .map(|u| u.token.clone())
            .collect()
    }
}
