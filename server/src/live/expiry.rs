//! The recovery window. A session whose socket went away stays for
//! `--recovery-window`; a timer started for that absence ends it then,
//! unless a socket came back (a later absence has a new number, which the
//! old timer does not match). Sessions taken up from the store at start,
//! or from another node, begin away, inside their window.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chat_shared::username_key;

use super::sessions::User;
use super::{ChatState, Inner, SessionOp};
use crate::clock::now_ms;
use crate::store::{AccountChange, SessionRecord, Startup};

impl ChatState {
    /// A number no absence of any user had before: a timer left from an
    /// earlier session of the same name can never end a later one.
    pub(super) fn next_absence(&self) -> u64 {
        self.absences.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ends `key`'s session `after` from now if it is still the absence
    /// `absence` then.
    pub(super) fn expire_after(self: &Arc<Self>, key: &str, absence: u64, after: Duration) {
        let state = Arc::clone(self);
        let key = key.to_owned();
        // Also called from a drop guard, which may (in theory) run
        // outside the runtime: no timer then, never a panic.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(after).await;
                state.expire(&key, absence);
            });
        }
    }

    /// Ends `key`'s session if it is still the absence `absence` (no socket
    /// came back since). Returns whether it ended.
    pub fn expire(&self, key: &str, absence: u64) -> bool {
        let mut inner = self.lock();
        let Some(user) = inner.sessions.users.get(key) else {
            return false;
        };
        if user.sid.is_some() || user.absence != absence {
            return false;
        }
        let token = user.token.clone();
        let rooms: Vec<String> = user.rooms.keys().cloned().collect();
        inner.sessions.users.remove(key);
        inner.sessions.by_token.remove(&token);
        self.persist(SessionOp::Delete(token));
        for room in &rooms {
            inner.rooms.release(room);
        }
        tracing::debug!(user = key, "session expired");
        true
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
        inner.log.start_at(startup.head);
        for rec in &startup.sessions {
            let ends = rec
                .window_ends_at
                .unwrap_or_else(|| startup.last_alive_ms.unwrap_or(now).saturating_add(window));
            if ends <= now {
                self.persist(SessionOp::Delete(rec.token.clone()));
                continue;
            }
            let key = username_key(&rec.username);
            if inner.sessions.users.contains_key(&key) {
                continue;
            }
            let record = self.take_up(&mut inner, &key, rec, ends, now);
            if rec.window_ends_at.is_none() {
                // Live when the last process ended: its window is new, and
                // what it had been sent is as far as the ids then went.
                self.persist(SessionOp::Put(record));
                if rec.account {
                    let seen = AccountChange::Seen(startup.head);
                    self.persist_account(&mut inner.written, &key, seen);
                }
            }
        }
    }

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
        if inner.sessions.users.contains_key(&key) {
            return inner.sessions.by_token.get(&rec.token) == Some(&key);
        }
        self.take_up(&mut inner, &key, rec, ends, now);
        true
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
            inner.rooms.hold(room);
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
        inner
            .sessions
            .by_token
            .insert(rec.token.clone(), key.to_owned());
        inner.sessions.users.insert(key.to_owned(), user);
        self.expire_after(
            key,
            absence,
            Duration::from_millis(ends.saturating_sub(now)),
        );
        record
    }
}
