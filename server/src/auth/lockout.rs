//! Guessing: wrong passwords counted per username and per client
//! address, and the locks they earn (see [`crate::auth`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Wrong passwords within [`FAILURE_WINDOW`] that lock a username.
pub const MAX_FAILURES: usize = 5;

/// The window in which [`MAX_FAILURES`] wrong passwords lock a username.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The longest lock, as a multiple of the first.
pub const LOCKOUT_CAP_FACTOR: u32 = 10;

/// A name stays under suspicion (each wrong password locks it again, for
/// longer) until this long after its last wrong password.
pub const SUSPICION: Duration = Duration::from_secs(15 * 60);

/// A wait in whole seconds, at least one, as refusals state it.
pub fn whole_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// What an address locked for failed logins is told, wherever it is
/// turned away (its login, or its next handshake).
pub fn address_locked_message(wait: Duration) -> String {
    format!(
        "too many failed logins from this address: try again in {} s",
        whole_secs(wait)
    )
}

/// The state of one username's wrong passwords.
#[derive(Debug, Default)]
struct Record {
    /// Wrong passwords inside the window, oldest first.
    failures: Vec<Instant>,
    /// Checks running now: they count against the limit before they end,
    /// so a burst cannot fit more guesses in than the limit.
    in_flight: usize,
    /// Locks so far in this run of suspicion.
    strikes: u32,
    locked_until: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Record {
    fn forget_old(&mut self, now: Instant) {
        self.failures
            .retain(|&t| now.saturating_duration_since(t) < FAILURE_WINDOW);
        if self
            .last_failure
            .is_some_and(|t| now.saturating_duration_since(t) >= SUSPICION)
        {
            self.strikes = 0;
            self.last_failure = None;
        }
        if self.locked_until.is_some_and(|t| t <= now) {
            self.locked_until = None;
        }
    }

    fn idle(&self) -> bool {
        self.failures.is_empty()
            && self.in_flight == 0
            && self.strikes == 0
            && self.locked_until.is_none()
    }
}

/// Wrong passwords per username (by key), and the locks they earn. See
/// [`crate::auth`]. Works on tokio's clock, so tests run it on a paused one.
///
/// The same rules serve client addresses ([`Guesses::per_address`]), with
/// a higher limit and one difference: a right password does not clear an
/// address's record (an attacker logging into an account of their own
/// between guesses must not reset the count).
#[derive(Debug)]
pub struct Guesses {
    lockout: Duration,
    /// Failures within [`FAILURE_WINDOW`] that lock the key.
    limit: usize,
    /// Whether a right password clears the key's record.
    forgive: bool,
    records: Mutex<HashMap<String, Record>>,
}

impl Guesses {
    /// Usernames: [`MAX_FAILURES`] wrong passwords lock one; `lockout` is
    /// the first lock's length.
    pub fn new(lockout: Duration) -> Self {
        Guesses {
            lockout,
            limit: MAX_FAILURES,
            forgive: true,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Client addresses: `limit` failed logins within a minute lock one.
    pub fn per_address(limit: usize, lockout: Duration) -> Self {
        Guesses {
            lockout,
            limit: limit.max(1),
            forgive: false,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failed login that needed no check (a locked name, a name
    /// without an account): returns how long `key` is now locked, if it is.
    pub fn strike(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut records = self.records(now);
        let r = records.entry(key.to_owned()).or_default();
        r.forget_old(now);
        if r.locked_until.is_none() {
            self.failed(r, now);
        }
        r.locked_until.map(|t| t.saturating_duration_since(now))
    }

    /// The records, with the idle ones dropped once there are many.
    fn records(&self, now: Instant) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if records.len() > 10_000 {
            records.retain(|_, r| {
                r.forget_old(now);
                !r.idle()
            });
        }
        records
    }

    /// Records one failure in `r`, locking it when that is one too many.
    fn failed(&self, r: &mut Record, now: Instant) {
        r.failures.push(now);
        r.last_failure = Some(now);
        if r.strikes > 0 || r.failures.len() >= self.limit {
            r.strikes += 1;
            r.locked_until = Some(now + self.lock_len(r.strikes));
            r.failures.clear();
        }
    }

    fn lock_len(&self, strikes: u32) -> Duration {
        let doubled = self
            .lockout
            .saturating_mul(1u32 << strikes.saturating_sub(1).min(20));
        doubled.min(self.lockout.saturating_mul(LOCKOUT_CAP_FACTOR))
    }

    /// Asks to check a password for `key`. `Err(wait)` while the name is
    /// locked (or as many checks as it has guesses left are running): the
    /// password is not even looked at.
    pub fn begin(self: &Arc<Self>, key: &str) -> Result<Attempt, Duration> {
        let now = Instant::now();
        let mut records = self.records(now);
        let r = records.entry(key.to_owned()).or_default();
        r.forget_old(now);
        if let Some(until) = r.locked_until {
            return Err(until - now);
        }
        // Under suspicion after a lock: one guess at a time.
        let allowed = if r.strikes > 0 { 1 } else { self.limit };
        if r.failures.len() + r.in_flight >= allowed {
            return Err(Duration::from_secs(1));
        }
        r.in_flight += 1;
        Ok(Attempt {
            guesses: Arc::clone(self),
            key: key.to_owned(),
            done: false,
        })
    }

    fn end(&self, key: &str, outcome: Option<bool>) {
        let now = Instant::now();
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(r) = records.get_mut(key) else {
            return;
        };
        r.in_flight = r.in_flight.saturating_sub(1);
        match outcome {
            Some(true) if !self.forgive => {}
            Some(true) => {
                if r.in_flight == 0 {
                    records.remove(key);
                } else {
                    *r = Record {
                        in_flight: r.in_flight,
                        ..Record::default()
                    };
                }
            }
            Some(false) => self.failed(r, now),
            None => {
                if r.idle() {
                    records.remove(key);
                }
            }
        }
    }

    /// How long `key` is locked for now, if it is.
    pub fn locked_for(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records
            .get(key)
            .and_then(|r| r.locked_until)
            .filter(|&t| t > now)
            .map(|t| t - now)
    }
}

/// One password check in progress. Say how it ended with [`fail`] or
/// [`succeed`]; dropped without either (the connection went away, the
/// check could not run), it counts as neither.
///
/// [`fail`]: Attempt::fail
/// [`succeed`]: Attempt::succeed
#[derive(Debug)]
#[must_use = "an attempt holds one of the username's guesses until it ends"]
pub struct Attempt {
    guesses: Arc<Guesses>,
    key: String,
    done: bool,
}

impl Attempt {
    /// A wrong password. Returns how long the name is now locked, if it is.
    pub fn fail(mut self) -> Option<Duration> {
        self.done = true;
        self.guesses.end(&self.key, Some(false));
        self.guesses.locked_for(&self.key)
    }

    /// The right password: the name's record is cleared.
    pub fn succeed(mut self) {
        self.done = true;
        self.guesses.end(&self.key, Some(true));
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.done {
            self.guesses.end(&self.key, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: Duration = Duration::from_secs(30);

    fn guesses() -> Arc<Guesses> {
        Arc::new(Guesses::new(LOCK))
    }

    fn wrong(g: &Arc<Guesses>, key: &str) -> Option<Duration> {
        g.begin(key).expect("a guess is allowed").fail()
    }

    #[tokio::test(start_paused = true)]
    async fn five_wrong_passwords_in_a_minute_lock_the_name() {
        let g = guesses();
        for _ in 0..4 {
            assert_eq!(wrong(&g, "alice"), None);
        }
        assert_eq!(wrong(&g, "alice"), Some(LOCK), "the fifth locks it");
        let wait = g.begin("alice").unwrap_err();
        assert_eq!(wait, LOCK);
        // Other names are not affected.
        assert!(g.begin("bob").is_ok());
        tokio::time::advance(LOCK - Duration::from_secs(1)).await;
        assert_eq!(g.begin("alice").unwrap_err(), Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        g.begin("alice").expect("unlocked").succeed();
        // A success clears the record: five more guesses before a lock.
        for _ in 0..4 {
            assert_eq!(wrong(&g, "alice"), None);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_passwords_spread_over_more_than_a_minute_do_not_lock() {
        let g = guesses();
        for _ in 0..20 {
            assert_eq!(wrong(&g, "alice"), None);
            tokio::time::advance(Duration::from_secs(16)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_lock_doubles_while_guessing_goes_on_up_to_a_cap() {
        let g = guesses();
        for _ in 0..4 {
            wrong(&g, "alice");
        }
        let mut locks = vec![wrong(&g, "alice").unwrap()];
        for _ in 0..6 {
            let wait = g.begin("alice").unwrap_err();
            tokio::time::advance(wait).await;
            // One guess after each lock, and it locks again, longer.
            locks.push(wrong(&g, "alice").unwrap());
        }
        let secs: Vec<u64> = locks.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [30, 60, 120, 240, 300, 300, 300]);
        // Fifteen quiet minutes end the suspicion: back to five guesses.
        tokio::time::advance(SUSPICION).await;
        for _ in 0..4 {
            assert_eq!(wrong(&g, "alice"), None);
        }
        assert_eq!(wrong(&g, "alice"), Some(LOCK));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_cannot_run_more_checks_than_guesses_left() {
        let g = guesses();
        wrong(&g, "alice");
        let running: Vec<Attempt> = (0..4).map(|_| g.begin("alice").unwrap()).collect();
        assert!(g.begin("alice").is_err(), "4 running + 1 failed = 5");
        // An attempt dropped without an outcome gives its guess back.
        drop(running);
        assert!(g.begin("alice").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_locks_at_its_limit_and_a_right_password_does_not_reset_it() {
        let g = Arc::new(Guesses::per_address(4, LOCK));
        let ip = "198.51.100.1";
        assert_eq!(wrong(&g, ip), None);
        // The attacker's own account, in between: the count goes on.
        g.begin(ip).unwrap().succeed();
        assert_eq!(g.strike(ip), None, "a try at a locked name counts");
        assert_eq!(wrong(&g, ip), None);
        assert_eq!(g.strike(ip), Some(LOCK), "the fourth failure locks it");
        assert_eq!(g.begin(ip).unwrap_err(), LOCK);
        assert_eq!(g.locked_for("198.51.100.2"), None, "other addresses go on");
        // Strikes while locked do not lengthen the lock.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(g.strike(ip), Some(LOCK - Duration::from_secs(10)));
        tokio::time::advance(LOCK).await;
        assert_eq!(g.locked_for(ip), None);
        // Still under suspicion: the next failure locks it again, longer.
        assert_eq!(wrong(&g, ip), Some(2 * LOCK));
    }
}
