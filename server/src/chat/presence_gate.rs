//! The presence storm guard. Per scope (the namespace for connect/disconnect,
//! each room for join/leave) at most `burst` single events go out a second;
//! the changes beyond that are folded into one `summary` at the end of that
//! second, so a thousand users reconnecting cost a thousand deliveries to
//! each client at most once per second, not N².

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chat_shared::SUMMARY_LIST_MAX;
use tokio::time::Instant;

/// The length of a presence window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What to do with one presence change.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it as a single event.
    Send,
    /// Folded into the scope's summary; the first fold of a window also asks
    /// the caller to flush the summary at `flush_at`.
    Folded { flush_at: Option<Instant> },
}

/// The folded changes of one window.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// Usernames, up to [`SUMMARY_LIST_MAX`]; `None` when more came.
    pub joined: Option<Vec<String>>,
    pub left: Option<Vec<String>>,
    pub joined_count: u64,
    pub left_count: u64,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    sent: u32,
    folded: Folded,
    flush_pending: bool,
}

/// Per-scope windows. The scope `""` is the namespace; a room name is that
/// room.
#[derive(Debug)]
pub struct PresenceGate {
    burst: u32,
    windows: Mutex<HashMap<String, Window>>,
}

fn push(list: &mut Option<Vec<String>>, count: &mut u64, user: &str) {
    *count += 1;
    if let Some(l) = list {
        if l.len() < SUMMARY_LIST_MAX {
            l.push(user.to_owned());
        } else {
            *list = None;
        }
    }
}

impl PresenceGate {
    pub fn new(burst: u32) -> Self {
        PresenceGate {
            burst,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one change (`arrived`: connect/join, else disconnect/leave)
    /// of `user` in `scope`.
    pub fn admit(&self, scope: &str, user: &str, arrived: bool) -> Decision {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        // Forget stale windows now and then, so rooms that emptied do not
        // keep their entry forever.
        if windows.len() > 1024 {
            windows.retain(|_, w| w.flush_pending || now.duration_since(w.start) < WINDOW);
        }
        let w = windows.entry(scope.to_owned()).or_insert_with(|| Window {
            start: now,
            sent: 0,
            folded: Folded::default(),
            flush_pending: false,
        });
        if now.duration_since(w.start) >= WINDOW && !w.flush_pending {
            *w = Window {
                start: now,
                sent: 0,
                folded: Folded {
                    joined: Some(Vec::new()),
                    left: Some(Vec::new()),
                    ..Folded::default()
                },
                flush_pending: false,
            };
        }
        if w.sent < self.burst && !w.flush_pending {
            w.sent += 1;
            return Decision::Send;
        }
        if w.folded.joined_count == 0 && w.folded.left_count == 0 {
            w.folded.joined = Some(Vec::new());
            w.folded.left = Some(Vec::new());
        }
        if arrived {
            push(&mut w.folded.joined, &mut w.folded.joined_count, user);
        } else {
            push(&mut w.folded.left, &mut w.folded.left_count, user);
        }
        if w.flush_pending {
            Decision::Folded { flush_at: None }
        } else {
            w.flush_pending = true;
            Decision::Folded {
                flush_at: Some(w.start + WINDOW),
            }
        }
    }

    /// Takes the folded changes of `scope` for its summary and closes the
    /// window, so that the next change starts a fresh one.
    pub fn take(&self, scope: &str) -> Folded {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.remove(scope).map(|w| w.folded).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn singles_up_to_the_burst_then_one_summary() {
        let gate = PresenceGate::new(3);
        for i in 0..3 {
            assert_eq!(gate.admit("", &format!("u{i}"), true), Decision::Send);
        }
        let first = gate.admit("", "u3", true);
        let Decision::Folded { flush_at: Some(at) } = first else {
            panic!("{first:?}")
        };
        assert_eq!(at, Instant::now() + WINDOW);
        assert_eq!(
            gate.admit("", "u4", false),
            Decision::Folded { flush_at: None }
        );
        assert_eq!(
            gate.admit("", "u5", true),
            Decision::Folded { flush_at: None }
        );
        // Other scopes are independent.
        assert_eq!(gate.admit("#room", "u3", true), Decision::Send);

        tokio::time::advance(WINDOW).await;
        let f = gate.take("");
        assert_eq!(f.joined, Some(vec!["u3".to_string(), "u5".to_string()]));
        assert_eq!(f.left, Some(vec!["u4".to_string()]));
        assert_eq!((f.joined_count, f.left_count), (2, 1));
        // A new window starts after the flush.
        assert_eq!(gate.admit("", "u6", true), Decision::Send);
    }

    #[tokio::test(start_paused = true)]
    async fn window_resets_after_a_second() {
        let gate = PresenceGate::new(2);
        assert_eq!(gate.admit("#a", "x", true), Decision::Send);
        assert_eq!(gate.admit("#a", "y", true), Decision::Send);
        tokio::time::advance(Duration::from_millis(1000)).await;
        assert_eq!(gate.admit("#a", "z", true), Decision::Send);
    }

    #[tokio::test(start_paused = true)]
    async fn lists_go_null_past_the_cap_but_counts_hold() {
        let gate = PresenceGate::new(0);
        for i in 0..150 {
            gate.admit("", &format!("u{i}"), true);
        }
        gate.admit("", "gone", false);
        let f = gate.take("");
        assert_eq!(f.joined, None);
        assert_eq!(f.joined_count, 150);
        assert_eq!(f.left, Some(vec!["gone".to_string()]));
        assert_eq!(f.left_count, 1);
    }
}
