//! The delivery order, the one rule sending and resuming both follow.
//!
//! Two locks, taken in this order and never the other way:
//! - numbering ([`Numbering`]), held while a message gets its id and its
//!   write is queued, so the store's queue (and so its commit order) is in
//!   id order; it may wait for room in that queue, so it is async;
//! - delivering ([`Delivering`]), held while a committed message is kept
//!   for replay and emitted, and while a resumed socket is caught up and
//!   joined to its rooms; so a resumed client gets each message exactly
//!   once, replayed or live. It is held only for work that does not wait,
//!   and is taken from the store's commit callbacks, so it is a plain
//!   mutex.
//!
//! Whatever must run under one of them takes its guard as a parameter
//! (`&Delivering`), so that it cannot be called without it.

/// See the module doc.
#[derive(Debug, Default)]
pub struct DeliveryOrder {
    numbering: tokio::sync::Mutex<()>,
    delivering: std::sync::Mutex<()>,
}

/// The turn to number a message and queue its write.
#[must_use]
pub struct Numbering<'a> {
    _held: tokio::sync::MutexGuard<'a, ()>,
}

/// The turn to deliver; it lasts while the guard lives. Never hold it
/// across an await.
#[must_use]
pub struct Delivering<'a> {
    _held: std::sync::MutexGuard<'a, ()>,
}

impl DeliveryOrder {
    /// Waits for the turn to number a message and queue its write.
    pub async fn number(&self) -> Numbering<'_> {
        Numbering {
            _held: self.numbering.lock().await,
        }
    }

    /// The turn to deliver.
    pub fn hold(&self) -> Delivering<'_> {
        Delivering {
            _held: self.delivering.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// The numbering turn, which a test's single thread always gets.
    #[cfg(test)]
    pub fn number_now(&self) -> Numbering<'_> {
        Numbering {
            _held: self.numbering.try_lock().expect("numbering is free"),
        }
    }
}
