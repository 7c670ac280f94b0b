//! The `admin:event` feed. Handlers hand events to a bounded queue that one
//! task emits to `/admin` in order; with no admin connected nothing is
//! queued, and under overload events are dropped (monitoring must never
//! slow the chat down).

use std::sync::Arc;

use chat_shared::{ADMIN_NS, AdminEvent, AdminEventType, names};
use socketioxide::SocketIo;
use tokio::sync::mpsc;

use crate::clock::now_ms;
use crate::live::ChatState;

/// Events queued for the admin task at most.
const QUEUE: usize = 4096;

/// An admin event of `kind`, stamped now.
pub fn event(kind: AdminEventType) -> AdminEvent {
    AdminEvent::new(kind, now_ms())
}

#[derive(Clone)]
pub struct AdminFeed {
    state: Arc<ChatState>,
    tx: mpsc::Sender<AdminEvent>,
}

impl AdminFeed {
    /// Starts the emitting task.
    pub fn start(io: SocketIo, state: Arc<ChatState>) -> Self {
        let (tx, mut rx) = mpsc::channel::<AdminEvent>(QUEUE);
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let Some(ns) = io.of(ADMIN_NS)
                    && let Err(e) = ns.emit(names::ADMIN_EVENT, &ev).await
                {
                    tracing::debug!("admin event: {e}");
                }
            }
        });
        AdminFeed { state, tx }
    }

    /// Whether an `/admin` socket is connected: callers on the message
    /// path skip building events nobody would get.
    pub fn active(&self) -> bool {
        self.state.admins() > 0
    }

    pub fn send(&self, ev: AdminEvent) {
        if self.active() && self.tx.try_send(ev).is_err() {
            tracing::debug!("admin feed full: event dropped");
        }
    }
}
