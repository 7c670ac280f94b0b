//! Tells `/admin` of accounts created or removed elsewhere: by the
//! `chat-server account` commands (another process on the same store) or,
//! in a cluster, on another node.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_shared::{AdminEventType, username_key};

use crate::ops::admin_feed::{AdminFeed, event as admin_event};
use crate::store::Store;

/// How often the account list is compared with the last one while an
/// `/admin` socket is connected.
const ACCOUNT_WATCH: Duration = Duration::from_secs(5);

/// The accounts `/admin` was last told of, and the creations this node
/// announces itself (so that the comparison does not announce them twice).
#[derive(Debug, Default)]
pub struct AccountWatch {
    inner: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// Key → display name, as of the last comparison (`None` before the
    /// first).
    known: Option<std::collections::HashMap<String, String>>,
    announced: std::collections::HashSet<String>,
}

impl AccountWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node is creating the account `key` and announces it itself.
    /// Noted before the store has it, so that a comparison of the account
    /// list cannot see it first and announce it too.
    pub fn announcing(&self, key: &str) {
        self.lock().announced.insert(key.to_owned());
    }
}

/// `admin:event` `account`, with `reason` `created` or `removed`.
pub fn account_event(name: &str, reason: &str) -> chat_shared::AdminEvent {
    let mut ev = admin_event(AdminEventType::Account);
    ev.user = Some(name.to_owned());
    ev.reason = Some(reason.into());
    ev
}

impl AccountWatch {
    /// Tells `/admin` of accounts created or removed elsewhere: by the
    /// `chat-server account` commands (another process on the same store)
    /// or, in a cluster, on another node. Every [`ACCOUNT_WATCH`] while an
    /// admin is connected, the account list is compared with the last one
    /// (read at start-up).
    pub fn start(self: &Arc<Self>, store: Arc<dyn Store>, admin: AdminFeed) {
        let watch = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ACCOUNT_WATCH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                watch.compare(store.as_ref(), &admin).await;
            }
        });
    }

    async fn compare(&self, store: &dyn Store, admin: &AdminFeed) {
        // The list is read at start-up, then only while someone watches:
        // what changed meanwhile is told when an admin is next connected.
        let started = self.lock().known.is_some();
        if started && !admin.active() {
            return;
        }
        let accounts = match store.accounts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("account watch: {e}");
                return;
            }
        };
        let now: std::collections::HashMap<String, String> = accounts
            .into_iter()
            .map(|a| (username_key(&a.username), a.username))
            .collect();
        let mut w = self.lock();
        if let Some(before) = &w.known {
            for (key, name) in &now {
                if !before.contains_key(key) && !w.announced.contains(key) {
                    admin.send(account_event(name, "created"));
                }
            }
            for (key, name) in before {
                if !now.contains_key(key) {
                    admin.send(account_event(name, "removed"));
                }
            }
        }
        // Announced creations are forgotten once seen in the list (or, if
        // they failed and never show up, when there are too many).
        w.announced.retain(|k| !now.contains_key(k));
        if w.announced.len() > 1024 {
            w.announced.clear();
        }
        w.known = Some(now);
    }
}
