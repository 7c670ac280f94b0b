//! [`ChatState`]: what only this node knows, behind one lock. Handlers
//! call its methods and never keep their own copies; the durable part of
//! it goes to the store through the session writer, in order.
//!
//! One owner per file, each a part of [`Inner`], the lock's contents:
//! - [`sessions`]: users and their sessions (a session token → its user,
//!   who is live, who is lagging or ready), the questions asked of them;
//! - [`admission`]: a handshake's outcome, in phases: resume by token,
//!   take a name with its password, or start a fresh session;
//! - [`rooms`]: room membership (live, and held through a recovery window)
//!   and each held room's recent messages;
//! - [`log`]: the messages this process numbered, the head, and what a
//!   resumed session missed;
//! - [`expiry`]: the recovery window: the absences as data, ends first,
//!   swept by one task that ends each session unless a socket came back,
//!   and the sessions taken up from the store or another node;
//! - [`writer`]: session changes on their way to the store, in the order
//!   they happened ([`SessionOp`] and [`write_sessions`], their consumer);
//! - [`order`]: the delivery order ([`DeliveryOrder`]); what must run
//!   under it takes its guard, [`Numbering`] or [`Delivering`].
//! - [`policy`]: (v3) the node's copy of who may do what (roles, room
//!   settings, bans, mutes, invites, blocks), beside the state rather than
//!   in its lock: the store's moderation settings, read again when they
//!   change.
//!
//! Membership here is by user, not by socket: a user in their recovery
//! window keeps their rooms (for the restore) but is not counted as a live
//! member until a socket is theirs again.
//!
//! Below `chat/` and `cluster/`, above `store/`: nothing here sends to a
//! socket or talks to another node.

mod admission;
mod expiry;
mod log;
mod order;
pub mod policy;
mod rooms;
mod sessions;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use chat_shared::{AdminSnapshot, AdminUser};
use socketioxide::socket::Sid;
use tokio::sync::mpsc;

use crate::config::Config;

pub use admission::{Admission, Login};
pub use log::Replay;
pub use order::{Delivering, DeliveryOrder, Numbering};
pub use rooms::{Joined, NodePresence};
pub use sessions::{Departure, SessionView, Target};
pub use writer::{SessionOp, write_sessions};

/// What the lock guards: one part per owner (see the module doc).
#[derive(Debug, Default)]
struct Inner {
    sessions: sessions::Sessions,
    rooms: rooms::Rooms,
    log: log::Log,
    /// What this process last wrote of each account's rooms and seen id
    /// (see [`writer::Written`]).
    written: HashMap<String, writer::Written>,
}

/// This node's users, sessions, membership, replay log and history. See
/// the module doc.
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
    /// The recovery windows waiting to end (see [`expiry`]).
    expiries: expiry::Expiries,
}

impl ChatState {
    pub fn new(config: Config) -> std::sync::Arc<Self> {
        std::sync::Arc::new(ChatState {
            config,
            inner: Mutex::new(Inner::default()),
            started: std::time::Instant::now(),
            admins: AtomicUsize::new(0),
            sessions_out: std::sync::OnceLock::new(),
            pruned_upto: AtomicU64::new(0),
            absences: AtomicU64::new(0),
            expiries: expiry::Expiries::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the whole server down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The `/admin` snapshot; `transport_of` names each live socket's
    /// transport (the node knows it, the state does not), `role_of` the
    /// server role of a user key (and whether it is an account's).
    pub fn admin_snapshot(
        &self,
        transport_of: impl Fn(Sid) -> String,
        role_of: impl Fn(&str, bool) -> chat_shared::Role,
    ) -> AdminSnapshot {
        let inner = self.lock();
        let mut users: Vec<AdminUser> = inner
            .sessions
            .users
            .iter()
            .filter_map(|(key, u)| {
                let live: Vec<_> = u.sessions.iter().filter(|s| s.sid.is_some()).collect();
                let first = live.iter().min_by_key(|s| s.meta.connected_at)?;
                Some(AdminUser {
                    username: u.username.clone(),
                    transport: first.sid.map(&transport_of).unwrap_or_default(),
                    rooms: u.rooms.keys().cloned().collect(),
                    connected_at: first.meta.connected_at,
                    role: Some(role_of(key, u.account)),
                    // (v3) Its clients connected now.
                    sessions: Some(live.len() as u64),
                    node: None,
                })
            })
            .collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        AdminSnapshot {
            online: inner.sessions.online,
            users,
            rooms: inner.rooms.counts(),
            uptime_ms: self.uptime_ms(),
        }
    }
}
