//! The recovery window. A session whose socket went away stays for
//! `--recovery-window`; its absence is noted with the time it ends, and
//! one task sweeps the windows that are due, soonest first, ending each
//! session unless a socket came back (a later absence has a new number,
//! which the old entry does not match). Sessions taken up from the store
//! at start, or from another node, begin away, inside their window.
//! Expiry is data: a reconnect storm of thousands of users costs one
//! entry each, not a task each, and the sweeper runs only while some
//! window is open.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use chat_shared::username_key;

use super::sessions::{Session, User};
use super::{ChatState, Inner, SessionOp};
use crate::clock::now_ms;
use crate::store::{AccountChange, SessionRecord, Startup};

impl ChatState {
    /// A number no absence of any user had before: a window left from an
    /// earlier session of the same name can never end a later one.
    pub(super) fn next_absence(&self) -> u64 {
        self.absences.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ends `key`'s session `after` from now if it is still the absence
    /// `absence` then.
    pub(super) fn expire_after(self: &Arc<Self>, key: &str, absence: u64, after: Duration) {
        let at = Instant::now() + after;
        let mut windows = self.expiries.lock();
        let soonest = windows
            .due
            .keys()
            .next()
            .is_none_or(|&(first, _)| at < first);
        windows.due.insert((at, absence), key.to_owned());
        if windows.sweeping {
            if soonest {
                self.expiries.wake.notify_one();
            }
            return;
        }
        // Also called from a drop guard, which may (in theory) run outside
        // the runtime: the entry waits for the next call that has one.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            windows.sweeping = true;
            rt.spawn(Arc::clone(self).sweep());
        }
    }

    /// Ends every window that is due, then sleeps until the next one (or
    /// until an earlier one is noted); returns when none is left.
    async fn sweep(self: Arc<Self>) {
        loop {
            let now = Instant::now();
            let (due, next) = {
                let mut windows = self.expiries.lock();
                let later = windows.due.split_off(&(now, u64::MAX));
                let due = std::mem::replace(&mut windows.due, later);
                let next = windows.due.keys().next().map(|&(at, _)| at);
                if next.is_none() {
                    windows.sweeping = false;
                }
                (due, next)
            };
            for ((_, absence), key) in due {
                self.expire(&key, absence);
            }
            let Some(next) = next else { return };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.expiries.wake.notified() => {}
            }
        }
    }

    /// Ends `key`'s session if it is still the absence `absence` (no socket
    /// came back since). Returns whether it ended.
    pub fn expire(&self, key: &str, absence: u64) -> bool {
        let mut inner = self.lock();
        let Some(token) = inner.sessions.users.get(key).and_then(|u| {
            u.sessions
                .iter()
                .find(|s| s.sid.is_none() && s.absence == absence)
                .map(|s| s.token.clone())
        }) else {
            return false;
        };
        self.end_session(&mut inner, key, &token);
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
            if inner.sessions.by_token.contains_key(&rec.token)
                || inner
                    .sessions
                    .users
                    .get(&key)
                    .is_some_and(|u| !(u.account && rec.account))
            {
                // A name holds one guest session; an account several.
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
        if inner.sessions.by_token.contains_key(&rec.token) {
            return inner.sessions.by_token.get(&rec.token) == Some(&key);
        }
        if inner
            .sessions
            .users
            .get(&key)
            .is_some_and(|u| !(u.account && rec.account))
        {
            // A guest's name holds one session.
            return false;
        }
        self.take_up(&mut inner, &key, rec, ends, now);
        true
    }

    /// Makes `rec` a session of this process, away (no socket) until `ends`
    /// (wall-clock ms), when its window ends it unless a socket came back.
    /// Returns the record as it now stands.
    fn take_up(
        self: &Arc<Self>,
        inner: &mut Inner,
        key: &str,
        rec: &SessionRecord,
        ends: u64,
        now: u64,
    ) -> SessionRecord {
        let user = match inner.sessions.users.entry(key.to_owned()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                // The first of the user's sessions here: its rooms are
                // the user's (another session's record says the same).
                for room in rec.rooms.keys() {
                    inner.rooms.hold(room);
                }
                let mut user = User::new(&rec.username, rec.account);
                user.rooms = rec.rooms.clone();
                v.insert(user)
            }
        };
        let absence = self.next_absence();
        user.sessions.push(Session {
            token: rec.token.clone(),
            sid: None,
            lagging: false,
            ready: false,
            since: rec.since,
            absence,
            window_ends_at: Some(ends),
            last_active: Arc::new(std::sync::atomic::AtomicU64::new(rec.meta.connected_at)),
            meta: rec.meta.clone(),
        });
        let record = match user.session(&rec.token) {
            Some(s) => user.record(s),
            None => rec.clone(),
        };
        inner
            .sessions
            .by_token
            .insert(rec.token.clone(), key.to_owned());
        self.expire_after(
            key,
            absence,
            Duration::from_millis(ends.saturating_sub(now)),
        );
        record
    }
}

/// The windows waiting to end, soonest first, and whether a task sweeps
/// them (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Expiries {
    windows: Mutex<Windows>,
    /// Wakes the sweeper for a window due before the one it sleeps for.
    wake: tokio::sync::Notify,
}

#[derive(Debug, Default)]
pub(super) struct Windows {
    /// (when it ends, the absence) → the user's key.
    due: BTreeMap<(Instant, u64), String>,
    sweeping: bool,
}

impl Expiries {
    fn lock(&self) -> MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner())
    }
}
