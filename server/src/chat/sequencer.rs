//! Keeps each socket's events in the order they arrived. socketioxide runs
//! every event handler as its own task, so two messages a client sends back
//! to back could otherwise be numbered and delivered in either order. The
//! handler takes a ticket synchronously, while the library still calls it
//! in packet order, and its task waits for that ticket's turn. A message
//! passes its turn on as soon as it is numbered and queued for the store
//! (`ChatService::deliver`), not after the commit: its place in the order
//! is fixed by then, and the client's next event need not wait for the
//! disk.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

/// Tickets in arrival order; each finished event wakes only the next one
/// (waking every waiter would cost a socket with a backlog of k events k
/// wake-ups per event).
#[derive(Debug, Default)]
pub struct Sequencer {
    issued: AtomicU64,
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    /// The ticket whose turn it is.
    serving: u64,
    /// Tickets waiting for their turn.
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

/// Holding this is the ticket's turn; dropping it passes the turn on, even
/// if the handler panicked or was cancelled.
#[must_use]
pub struct Turn<'a>(&'a Sequencer);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut q = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.serving += 1;
        // Hand the turn to the next ticket; one whose task has gone away
        // (cancelled while waiting) is skipped.
        loop {
            let serving = q.serving;
            let Some(next) = q.waiting.remove(&serving) else {
                break;
            };
            if next.send(()).is_ok() {
                break;
            }
            q.serving += 1;
        }
    }
}

impl Sequencer {
    /// Call in arrival order (synchronously, in the handler itself).
    pub fn ticket(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits until every earlier ticket is done.
    pub async fn turn(&self, ticket: u64) -> Turn<'_> {
        let rx = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.serving >= ticket {
                return Turn(self);
            }
            let (tx, rx) = oneshot::channel();
            q.waiting.insert(ticket, tx);
            rx
        };
        // The sender is only dropped unsent when the sequencer itself goes.
        let _ = rx.await;
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

    #[tokio::test]
    async fn a_ticket_cancelled_while_waiting_is_skipped() {
        let seq = Arc::new(Sequencer::default());
        let (a, b, c) = (seq.ticket(), seq.ticket(), seq.ticket());
        let first = seq.turn(a).await;
        // b starts waiting, then its task goes away.
        let waiting_b = tokio::spawn({
            let seq = seq.clone();
            async move {
                let _t = seq.turn(b).await;
            }
        });
        tokio::task::yield_now().await;
        waiting_b.abort();
        let _ = waiting_b.await;
        let c_task = tokio::spawn({
            let seq = seq.clone();
            async move {
                let _t = seq.turn(c).await;
            }
        });
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(1), c_task)
            .await
            .expect("c ran after a, b having gone")
            .unwrap();
    }
}
