//! The session writer: every change to a session or an account goes to
//! the store in the order it happened. Changes are queued under the
//! state's lock ([`ChatState::persist`]) and one task,
//! [`write_sessions`], hands them to the store one after the other,
//! without the handlers waiting for the disk.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::ChatState;
use crate::store::{AccountChange, SessionRecord, Store, StoreError};

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

/// What this process last wrote of one account's rooms and seen id.
/// The writes go to the store in order but are not awaited, so a login
/// right after a logout could read the store before they commit: it
/// takes these instead.
#[derive(Debug, Default, Clone)]
pub(super) struct Written {
    pub(super) rooms: Option<Vec<String>>,
    pub(super) seen: u64,
}

/// Hands each session change to `store`, in order, until every sender is
/// gone. `failed` hears of each write the store refused (it is logged
/// here).
pub async fn write_sessions(
    mut ops: mpsc::UnboundedReceiver<SessionOp>,
    store: Arc<dyn Store>,
    failed: impl Fn(&StoreError),
) {
    while let Some(op) = ops.recv().await {
        let queued = match op {
            SessionOp::Put(rec) => store.put_session(&rec).await,
            SessionOp::Delete(token) => store.delete_session(&token).await,
            SessionOp::Account(key, change) => store.update_account(&key, change).await,
            SessionOp::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if let Err(e) = queued {
            failed(&e);
            tracing::warn!("session write: {e}");
        }
    }
}

impl ChatState {
    /// Sends every session change to `out`, in order.
    pub fn persist_sessions(&self, out: mpsc::UnboundedSender<SessionOp>) {
        let _ = self.sessions_out.set(out);
    }

    pub(super) fn persist(&self, op: SessionOp) {
        if let Some(out) = self.sessions_out.get() {
            let _ = out.send(op);
        }
    }

    /// Queues a change to an account and remembers it (see [`Written`]).
    pub(super) fn persist_account(
        &self,
        written: &mut HashMap<String, Written>,
        key: &str,
        change: AccountChange,
    ) {
        let w = written.entry(key.to_owned()).or_default();
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
}
