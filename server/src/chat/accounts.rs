//! Accounts on `/chat`: how a handshake proves its name (a session token,
//! a password, a registration), and `account:password`. Passwords are
//! checked and hashed through [`crate::auth::Accounts`], never logged
//! and never put in an error message.

use super::*;
use crate::auth::HashError;
use crate::config::AuthMode;
use crate::live::Login;
use crate::store::{AccountChange, AccountRecord, StoreError};
use chat_shared::{PasswordChange, check_password, username_key};

/// `rate_limited` with the wait, in whole seconds, in the message.
fn locked(name: &str, wait: Duration) -> ConnectRefusal {
    ConnectRefusal::new(
        ErrorCode::RateLimited,
        format!(
            "too many wrong passwords for {name}: try again in {} s",
            crate::auth::whole_secs(wait)
        ),
    )
}

/// `rate_limited` for an address locked for failed logins.
fn address_locked(wait: Duration) -> ConnectRefusal {
    ConnectRefusal::new(
        ErrorCode::RateLimited,
        crate::auth::address_locked_message(wait),
    )
}

fn busy() -> ConnectRefusal {
    ConnectRefusal::new(
        ErrorCode::RateLimited,
        "too many logins at once: try again in 1 s",
    )
}

fn store_down(e: StoreError) -> ConnectRefusal {
    tracing::warn!("accounts: {e}");
    ConnectRefusal::new(
        ErrorCode::Unavailable,
        "the server cannot check accounts right now: try again",
    )
}

fn hash_failed(e: HashError) -> ConnectRefusal {
    match e {
        HashError::Busy => busy(),
        HashError::Internal(why) => {
            tracing::error!("password hashing: {why}");
            ConnectRefusal::new(
                ErrorCode::Internal,
                "the server could not check the password",
            )
        }
    }
}

fn weak(e: chat_shared::PasswordError) -> ConnectRefusal {
    ConnectRefusal::new(ErrorCode::WeakPassword, e.to_string())
}

/// How often the account list is compared with the last one while an
/// `/admin` socket is connected.
const ACCOUNT_WATCH: Duration = Duration::from_secs(5);

/// The accounts `/admin` was last told of, and the creations this node
/// announces itself (so that the comparison does not announce them twice).
#[derive(Debug, Default)]
pub struct AccountWatch {
    inner: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// Key → display name, as of the last comparison (`None` before the
    /// first).
    known: Option<std::collections::HashMap<String, String>>,
    announced: std::collections::HashSet<String>,
}

impl AccountWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn account_event(name: &str, reason: &str) -> chat_shared::AdminEvent {
    let mut ev = admin_event(AdminEventType::Account);
    ev.user = Some(name.to_owned());
    ev.reason = Some(reason.into());
    ev
}

impl ChatService {
    /// Tells `/admin` of accounts created or removed elsewhere: by the
    /// `chat-server account` commands (another process on the same store)
    /// or, in a cluster, on another node. Every [`ACCOUNT_WATCH`] while an
    /// admin is connected, the account list is compared with the last one
    /// (read at start-up).
    pub fn watch_accounts(&self) {
        let svc = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ACCOUNT_WATCH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                svc.compare_accounts().await;
            }
        });
    }

    async fn compare_accounts(&self) {
        // The list is read at start-up, then only while someone watches:
        // what changed meanwhile is told when an admin is next connected.
        let started = self.account_watch.lock().known.is_some();
        if started && !self.admin.active() {
            return;
        }
        let accounts = match self.store.accounts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("account watch: {e}");
                return;
            }
        };
        let now: std::collections::HashMap<String, String> = accounts
            .into_iter()
            .map(|a| (username_key(&a.username), a.username))
            .collect();
        let mut w = self.account_watch.lock();
        if let Some(before) = &w.known {
            for (key, name) in &now {
                if !before.contains_key(key) && !w.announced.contains(key) {
                    self.admin.send(account_event(name, "created"));
                }
            }
            for (key, name) in before {
                if !now.contains_key(key) {
                    self.admin.send(account_event(name, "removed"));
                }
            }
        }
        // Announced creations are forgotten once seen in the list (or, if
        // they failed and never show up, when there are too many).
        w.announced.retain(|k| !now.contains_key(k));
        if w.announced.len() > 1024 {
            w.announced.clear();
        }
        w.known = Some(now);
    }

    /// Decides who a handshake may be, then admits it. A session token that
    /// resumes its own session needs no password; a name with an account
    /// needs its password; `register: true` creates an account.
    pub(super) async fn login_here(
        &self,
        auth: &Auth,
        sid: Sid,
        from: Option<std::net::IpAddr>,
    ) -> Result<Admission, ConnectRefusal> {
        let key = username_key(&auth.username);
        let name = &auth.username;
        let resumes = auth
            .session
            .as_deref()
            .and_then(|t| self.state.session_owner(t))
            .is_some_and(|owner| owner == key);
        let register = auth.register == Some(true);
        if resumes && !register {
            return self.state.admit_as(auth, sid, Login::Guest);
        }
        // The address's record of failed logins, for password logins.
        let address = from
            .filter(|_| auth.password.is_some() && !register)
            .and_then(|ip| Some((self.accounts.addresses.clone()?, ip.to_string())));
        // Counts a failed login against the address. The refusal stays
        // what it was; a lock it earns applies from the next try.
        let strike = |refusal: ConnectRefusal| {
            if let Some((addresses, ip)) = &address
                && addresses.strike(ip).is_some()
            {
                tracing::warn!(address = %ip, "address locked for failed logins");
            }
            refusal
        };
        // A locked address or name is refused before anything else is
        // looked at: a flood of guesses costs a map lookup each, not a read
        // of the store.
        if let Some((addresses, ip)) = &address
            && let Some(wait) = addresses.locked_for(ip)
        {
            return Err(address_locked(wait));
        }
        if auth.password.is_some()
            && !register
            && let Some(wait) = self.accounts.guesses.locked_for(&key)
        {
            return Err(strike(locked(name, wait)));
        }
        let account = self.store.account(&key).await.map_err(store_down)?;
        if register {
            return self.register(auth, sid, &key, resumes, account).await;
        }
        let Some(account) = account else {
            if self.state.config.auth == AuthMode::Accounts {
                return Err(ConnectRefusal::new(
                    ErrorCode::AuthRequired,
                    format!("this server takes accounts only, and {name} has none"),
                ));
            }
            if auth.password.is_some() {
                return Err(strike(ConnectRefusal::new(
                    ErrorCode::BadCredentials,
                    format!(
                        "{name} has no account: connect without a password as a guest, or register"
                    ),
                )));
            }
            return self.state.admit_as(auth, sid, Login::Guest);
        };
        let Some(password) = auth.password.clone() else {
            return Err(ConnectRefusal::new(
                ErrorCode::AuthRequired,
                format!("{name} has an account: its password is needed"),
            ));
        };
        let attempt = self
            .accounts
            .guesses
            .begin(&key)
            .map_err(|wait| strike(locked(name, wait)))?;
        // The address's checks in flight count against its limit too, and
        // a try refused for that counts as a failed one: a burst of
        // guesses locks its address without waiting for the hashes.
        let from_attempt = match &address {
            Some((addresses, ip)) => Some(
                addresses
                    .begin(ip)
                    .map_err(|wait| strike(address_locked(wait)))?,
            ),
            None => None,
        };
        let right = self
            .accounts
            .verify(password, account.hash.clone())
            .await
            .map_err(hash_failed)?;
        if !right {
            let now_locked = attempt.fail();
            tracing::info!(user = %key, locked = now_locked.is_some(), "wrong password");
            if let (Some(a), Some((_, ip))) = (from_attempt, &address)
                && a.fail().is_some()
            {
                tracing::warn!(address = %ip, "address locked for failed logins");
            }
            return Err(ConnectRefusal::new(
                ErrorCode::BadCredentials,
                format!("wrong password for {name}"),
            ));
        }
        attempt.succeed();
        if let Some(a) = from_attempt {
            a.succeed();
        }
        let login = Login::Account {
            username: account.username,
            rooms: account.rooms,
            seen: account.seen,
        };
        self.state.admit_as(auth, sid, login)
    }

    /// `register: true`: creates the account, then admits the session
    /// (the guest's own, resumed, when its token came along).
    async fn register(
        &self,
        auth: &Auth,
        sid: Sid,
        key: &str,
        resumes: bool,
        existing: Option<AccountRecord>,
    ) -> Result<Admission, ConnectRefusal> {
        let name = &auth.username;
        if !self.state.config.registration_open() {
            return Err(ConnectRefusal::new(
                ErrorCode::RegistrationClosed,
                "this server does not take registrations: ask its operator for an account",
            ));
        }
        if existing.is_some() {
            return Err(ConnectRefusal::new(
                ErrorCode::UsernameTaken,
                format!("{name} already has an account: log in with its password"),
            ));
        }
        let Some(password) = auth.password.clone() else {
            return Err(ConnectRefusal::new(
                ErrorCode::WeakPassword,
                "registering needs a password of 8-256 characters",
            ));
        };
        check_password(&password).map_err(weak)?;
        if !resumes && self.state.name_held(key) {
            return Err(ConnectRefusal::new(
                ErrorCode::UsernameTaken,
                format!("{name} is in use"),
            ));
        }
        let hash = self.accounts.hash(password).await.map_err(hash_failed)?;
        let account = AccountRecord {
            username: name.clone(),
            hash,
            rooms: Vec::new(),
            seen: 0,
            created_ms: crate::clock::now_ms(),
        };
        // Noted before the store has it, so that a comparison of the
        // account list cannot see it first and announce it too.
        self.account_watch.lock().announced.insert(key.to_owned());
        let created = match self.store.create_account(&account).await {
            Ok(committed) => committed.await,
            Err(e) => Err(e),
        };
        match created {
            Ok(()) => {}
            Err(StoreError::AccountExists(_)) => {
                return Err(ConnectRefusal::new(
                    ErrorCode::UsernameTaken,
                    format!("{name} already has an account: log in with its password"),
                ));
            }
            Err(e) => return Err(store_down(e)),
        }
        tracing::info!(user = %key, "account created");
        self.admin.send(account_event(name, "created"));
        self.state.admit_as(auth, sid, Login::Registered)
    }

    /// `account:password {old, new}`.
    pub(super) async fn change_password(
        &self,
        ctx: &SocketCtx,
        p: PasswordChange,
    ) -> Result<Reply, ChatError> {
        let event = names::ACCOUNT_PASSWORD;
        let key = &ctx.admission.key;
        let refuse = |code, message: String| ChatError::new(code, message, event);
        if !self.state.is_account(key) {
            return Err(refuse(
                ErrorCode::AuthRequired,
                "a guest has no password: register first".into(),
            ));
        }
        let unavailable = |_| {
            refuse(
                ErrorCode::Unavailable,
                "accounts are unavailable: try again".into(),
            )
        };
        let Some(account) = self.store.account(key).await.map_err(unavailable)? else {
            return Err(refuse(
                ErrorCode::AuthRequired,
                "this account was removed".into(),
            ));
        };
        let not_checked = |e: HashError| match e {
            HashError::Busy => refuse(ErrorCode::RateLimited, "too many logins at once".into())
                .with("retryAfterMs", 1000),
            HashError::Internal(why) => {
                tracing::error!("password hashing: {why}");
                refuse(
                    ErrorCode::Internal,
                    "the password could not be checked".into(),
                )
            }
        };
        // The old password is a guess like any other.
        let attempt = self.accounts.guesses.begin(key).map_err(|wait| {
            refuse(
                ErrorCode::RateLimited,
                "too many wrong passwords: wait".into(),
            )
            .with("retryAfterMs", wait.as_millis().max(1) as u64)
        })?;
        let right = self
            .accounts
            .verify(p.old.clone(), account.hash)
            .await
            .map_err(not_checked)?;
        if !right {
            let _ = attempt.fail();
            return Err(refuse(
                ErrorCode::BadCredentials,
                "the old password is wrong".into(),
            ));
        }
        attempt.succeed();
        check_password(&p.new).map_err(|e| refuse(ErrorCode::WeakPassword, e.to_string()))?;
        let hash = self
            .accounts
            .hash(p.new.clone())
            .await
            .map_err(not_checked)?;
        let changed = match self
            .store
            .update_account(key, AccountChange::Password(hash))
            .await
        {
            Ok(c) => c.await,
            Err(e) => Err(e),
        };
        changed.map_err(|e| {
            tracing::warn!("password change: {e}");
            refuse(
                ErrorCode::Unavailable,
                "the password could not be stored: try again".into(),
            )
        })?;
        tracing::info!(user = %key, "password changed");
        Ok(Reply::Empty)
    }
}
