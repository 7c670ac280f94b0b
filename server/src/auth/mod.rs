//! Accounts: what is needed to check a password without helping anyone
//! guess one. [`hashing`] and [`lockout`] are its two halves; the
//! `/chat` side of a login is `crate::chat::accounts`.
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
//!   and `429` for its new connections (`crate::http::client_addr`), so a flood
//!   from one address costs neither hashes nor whole handshakes once it is
//!   locked. Sessions already open from it, and every other address, go
//!   on. Behind a reverse proxy the address is the one it forwards
//!   (`--trusted-proxy`).

pub mod hashing;
pub mod lockout;

pub use hashing::{Accounts, HashError, MAX_WAITING, hash_now, verify_now};
pub use lockout::{
    Attempt, FAILURE_WINDOW, Guesses, LOCKOUT_CAP_FACTOR, MAX_FAILURES, SUSPICION,
    address_locked_message, whole_secs,
};
