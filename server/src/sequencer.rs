//! Keeps each socket's events in the order they arrived. socketioxide runs
//! every event handler as its own task, so two messages a client sends back
//! to back could otherwise be numbered and delivered in either order. The
//! handler takes a ticket synchronously, while the library still calls it
//! in packet order, and its task waits for that ticket's turn.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

#[derive(Debug)]
pub struct Sequencer {
    issued: AtomicU64,
    serving: watch::Sender<u64>,
}

impl Default for Sequencer {
    fn default() -> Self {
        Sequencer {
            issued: AtomicU64::new(0),
            serving: watch::Sender::new(0),
        }
    }
}

/// Holding this is the ticket's turn; dropping it passes the turn on, even
/// if the handler panicked or was cancelled.
#[must_use]
pub struct Turn<'a>(&'a Sequencer);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.serving.send_modify(|n| *n += 1);
    }
}

impl Sequencer {
    /// Call in arrival order (synchronously, in the handler itself).
    pub fn ticket(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits until every earlier ticket is done.
    pub async fn turn(&self, ticket: u64) -> Turn<'_> {
        let mut rx = self.serving.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = rx.wait_for(|&n| n >= ticket).await;
        Turn(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_run_in_ticket_order_whatever_order_they_start_in() {
        let seq = Arc::new(Sequencer::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<u64> = (0..50).map(|_| seq.ticket()).collect();
        let mut tasks = Vec::new();
        // Start them in reverse: the last ticket's task is spawned first.
        for t in tickets.into_iter().rev() {
            let (seq, log) = (seq.clone(), log.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = seq.turn(t).await;
                tokio::task::yield_now().await;
                log.lock().unwrap().push(t);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*log.lock().unwrap(), (0..50).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_cancelled_turn_still_passes_on() {
        let seq = Sequencer::default();
        let (a, b) = (seq.ticket(), seq.ticket());
        {
            let _turn = seq.turn(a).await;
            // dropped without finishing normally
        }
        let _turn = tokio::time::timeout(std::time::Duration::from_secs(1), seq.turn(b))
            .await
            .expect("b's turn came");
    }
}
