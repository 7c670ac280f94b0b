//! Hashing: Argon2id on threads of its own, bounded (see [`crate::auth`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

use super::lockout::Guesses;

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

/// A hash to compute on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Password hashing and checking, bounded. See [`crate::auth`].
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
