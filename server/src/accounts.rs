//! Accounts: what is needed to check a password without helping anyone
//! guess one.
//!
//! - Hashing: Argon2id with the `argon2` crate's recommended parameters
//!   (19 MiB, 2 passes, 1 lane), never on the async runtime: a hash costs
//!   tens of milliseconds of CPU. [`Accounts::new`] starts `workers`
//!   hashing threads of their own, at a lower scheduling priority (nice
//!   10) than the threads that move messages, so that logins take the CPU
//!   that chatting leaves. At most [`MAX_WAITING`] logins wait for one;
//!   beyond that a login is refused with `rate_limited` rather than queued,
//!   so that a flood of logins can neither stall chatting users nor grow a
//!   queue without bound.
//! - Guessing: [`Guesses`] counts wrong passwords per username. Five within
//!   a minute lock the name for `--login-lockout` (default 30 s); each
//!   further wrong password while the name is still under suspicion doubles
//!   the lock, up to ten times the first. A correct password clears it, and
//!   a session token resumes without any password, so an attacker can keep
//!   a name's owner from logging in anew for at most that cap at a time,
//!   never out of a session they hold.
//! - Guessing from one place: the same rules count failed logins per
//!   client address (`--login-address-limit`, 20 a minute by default):
//!   wrong passwords, and tries at a name that is locked or has no
//!   account. A locked address gets `rate_limited` for its password logins
//!   and `429` for its new connections (`crate::client_addr`), so a flood
//!   from one address costs neither hashes nor whole handshakes once it is
//!   locked. Sessions already open from it, and every other address, go
//!   on. Behind a reverse proxy the address is the one it forwards
//!   (`--trusted-proxy`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;
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

/// Logins that may wait for a hashing turn; more are refused at once.
pub const MAX_WAITING: usize = 64;

/// Why a password could not be checked or hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many logins are being checked: try again shortly.
    #[error("too many logins at once")]
    Busy,
    /// The stored hash cannot be read, or the hashing task failed.
    #[error("{0}")]
    Internal(String),
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

/// Wrong passwords per username (by key), and the locks they earn. See the
/// module doc. Works on tokio's clock, so tests run it on a paused one.
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

/// A hash to compute on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Password hashing and checking, bounded. See the module doc.
pub struct Accounts {
    turns: Arc<Semaphore>,
    waiting: AtomicUsize,
    jobs: Mutex<std::sync::mpsc::Sender<Job>>,
    pub guesses: Arc<Guesses>,
    /// Failed logins per client address (`--login-address-limit`; `None`
    /// when it is 0).
    pub addresses: Option<Arc<Guesses>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("turns", &self.turns)
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

/// Lowers the calling thread's scheduling priority (Linux: nice is per
/// thread). Best effort: where it cannot, the thread runs at the usual one.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `0` names the
    // calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Counts a waiter for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Accounts {
    /// `workers` hashes at once (at least one); `lockout` is the first
    /// lock's length; `address_limit` failed logins from one address within
    /// a minute lock the address (0: no limit per address).
    pub fn new(workers: usize, lockout: Duration, address_limit: usize) -> Self {
        let workers = workers.max(1);
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("chat-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only to take the next job.
                        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a hashing thread: {e}");
            }
        }
        Accounts {
            turns: Arc::new(Semaphore::new(workers)),
            waiting: AtomicUsize::new(0),
            jobs: Mutex::new(jobs),
            guesses: Arc::new(Guesses::new(lockout)),
            addresses: (address_limit > 0)
                .then(|| Arc::new(Guesses::per_address(address_limit, lockout))),
        }
    }

    /// Runs `f` on a hashing thread once a turn is free.
    async fn hashing<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        let waiting = Waiting(&self.waiting);
        let turn = Arc::clone(&self.turns)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Internal("hashing stopped".into()))?;
        drop(waiting);
        // The turn goes with the job: a caller that gives up does not free
        // the CPU the hash is still using.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
            drop(turn);
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| HashError::Internal("no hashing thread is running".into()))?;
        rx.await
            .map_err(|_| HashError::Internal("a hashing thread stopped".into()))
    }

    /// The PHC string of a new salted hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.hashing(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `hash` (compared in constant time).
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, HashError> {
        self.hashing(move || verify_now(&password, &hash)).await?
    }
}

/// Hashes at once, on this thread (the `account` subcommands).
pub fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Internal(format!("cannot hash: {e}")))
}

/// Checks at once, on this thread.
pub fn verify_now(password: &str, hash: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| HashError::Internal(format!("a stored password hash is unreadable: {e}")))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(HashError::Internal(format!("cannot check a password: {e}"))),
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

    #[test]
    fn a_hash_is_argon2id_salted_and_checks_only_its_password() {
        let a = hash_now("correct horse").unwrap();
        let b = hash_now("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_now("correct horse", &a).unwrap());
        assert!(!verify_now("correct horsE", &a).unwrap());
        assert!(matches!(
            verify_now("x", "not a hash"),
            Err(HashError::Internal(_))
        ));
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_is_bounded_and_refuses_beyond_the_waiting_room() {
        let accounts = Arc::new(Accounts::new(1, LOCK, 0));
        let hash = accounts.hash("a good password".into()).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..(MAX_WAITING + 40) {
            let accounts = Arc::clone(&accounts);
            let hash = hash.clone();
            tasks.push(tokio::spawn(async move {
                accounts.verify(format!("wrong {i}"), hash).await
            }));
        }
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(ok) => assert!(!ok, "no wrong password matches"),
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy >= 1, "more than the waiting room holds are refused");
        assert!(
            accounts
                .verify("a good password".into(), hash)
                .await
                .unwrap()
        );
        assert_eq!(accounts.waiting.load(Ordering::Acquire), 0);
    }
}
