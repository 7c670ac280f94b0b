//! Accounts on `/chat`: how a handshake proves its name (a session token,
//! a password, a registration), and `account:password`. Passwords are
//! checked and hashed through [`crate::auth::Accounts`], never logged
//! and never put in an error message.

use super::*;
use crate::auth::HashError;
use crate::config::AuthMode;
use crate::live::Login;
use crate::ops::account_watch::account_event;
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
        format!(
            "too many logins at once: try again in {} s",
            RETRY_AFTER.as_secs()
        ),
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

/// A password login's client address, with the failed logins counted
/// against it (none without `--login-address-limit` or an address).
type Address = Option<(Arc<crate::auth::Guesses>, String)>;

/// Counts a failed login against the address. The refusal stays what it
/// was; a lock it earns applies from the next try.
fn strike(address: &Address, refusal: ConnectRefusal) -> ConnectRefusal {
    if let Some((addresses, ip)) = address
        && addresses.strike(ip).is_some()
    {
        tracing::warn!(address = %ip, "address locked for failed logins");
    }
    refusal
}

fn weak(e: chat_shared::PasswordError) -> ConnectRefusal {
    ConnectRefusal::new(ErrorCode::WeakPassword, e.to_string())
}

impl ChatService {
    /// The cluster's side of a handshake, around
    /// [`login_here`](Self::login_here): a session this node does not know
    /// is looked up in Redis and taken over, and a new name is claimed
    /// across nodes.
    pub(super) async fn login(
        &self,
        auth: &Auth,
        sid: Sid,
        from: Option<std::net::IpAddr>,
    ) -> Result<crate::live::Admission, ConnectRefusal> {
        let Some(cluster) = self.cluster.clone() else {
            return self.login_here(auth, sid, from).await;
        };
        let key = username_key(&auth.username);
        let ttl = crate::cluster::names::name_ttl(self.state.config.recovery_window);
        // What Redis lost (it came back empty) counts as pruned: a replay
        // from before it says `truncated`.
        self.state.set_pruned_upto(cluster.redis.lost_upto());
        let down = |e: crate::store::StoreError| {
            tracing::warn!("cluster: {e}");
            ConnectRefusal::new(
                ErrorCode::Unavailable,
                "the server cannot reach its store: try again",
            )
        };
        if let Some(offset) = auth.offset.as_deref().and_then(|o| o.parse::<u64>().ok()) {
            // A client resuming from another node may have seen messages
            // this node's feed has not delivered yet: wait (a bounded time)
            // for them, so that its offset is one this node knows.
            cluster.wait_delivered(offset).await;
        }
        if let Some(token) = auth.session.as_deref()
            && self.state.session_owner(token).is_none()
            && let Some(rec) = cluster.redis.session(token).await.map_err(down)?
        {
            if username_key(&rec.username) != key {
                return Err(ConnectRefusal::new(
                    ErrorCode::InvalidSession,
                    "that session belongs to another username",
                ));
            }
            // Ours from now on: the node that held it lets it go, and
            // tells its socket there, if any.
            if let Some((mut rec, owner)) =
                cluster.redis.claim_session(token).await.map_err(down)?
                && cluster
                    .dead_node_window(&mut rec, &owner, self.state.config.recovery_window)
                    .await
                && self.state.adopt(&rec)
            {
                cluster.take_name(&rec.username, ttl).await.map_err(down)?;
                cluster.announce_claim(token).await.map_err(down)?;
            }
        }
        let held_here = self.state.name_held(&key);
        let claimed = held_here
            || cluster
                .claim_name(&auth.username, ttl)
                .await
                .map_err(down)?;
        let admitted = self.login_here(auth, sid, from).await;
        if !claimed {
            // Another node's session holds the name. Only the account's
            // password (or token) opens a session of it here as well: (v3)
            // the account's sessions there stay. The refusals (a password
            // needed, a wrong one) are the same as on one node.
            return match admitted {
                Ok(adm) if adm.account => {
                    cluster.take_name(&adm.username, ttl).await.map_err(down)?;
                    self.limit_across_nodes(&adm).await;
                    Ok(adm)
                }
                Ok(adm) => {
                    // An admission the name's holder elsewhere forbids:
                    // undo it here.
                    self.state.abandon(&adm.key, sid, !adm.recovered);
                    Err(ConnectRefusal::new(
                        ErrorCode::UsernameTaken,
                        format!("{} is in use", auth.username),
                    ))
                }
                Err(e) => Err(e),
            };
        }
        if admitted.is_err() && !held_here && !self.state.name_held(&key) {
            cluster.release_name(&key).await;
        }
        if let Ok(adm) = &admitted {
            self.limit_across_nodes(adm).await;
        }
        admitted
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
        let resumes = auth
            .session
            .as_deref()
            .and_then(|t| self.state.session_owner(t))
            .is_some_and(|owner| owner == key);
        let register = auth.register == Some(true);
        if resumes && !register {
            return self.state.admit_as(auth, sid, Login::Guest, from);
        }
        if let Some(token) = auth.token.as_deref()
            && !register
        {
            // (v3) An API token: a session of its account, like a
            // password login.
            let (account, rec) = self.token_login(token, &key).await?;
            let login = Login::Account {
                username: account.username,
                rooms: account.rooms,
                seen: account.seen,
                token_id: Some(rec.id),
            };
            return self.state.admit_as(auth, sid, login, from);
        }
        let address = self.login_address(auth, from);
        self.not_locked(auth, &key, &address)?;
        let account = self.store.account(&key).await.map_err(store_down)?;
        if register {
            return self.register(auth, sid, &key, resumes, account, from).await;
        }
        let Some(account) = account else {
            return self.as_guest(auth, sid, &address, from);
        };
        self.check_password(auth, &key, account.hash.clone(), &address)
            .await?;
        let login = Login::Account {
            username: account.username,
            rooms: account.rooms,
            seen: account.seen,
            token_id: None,
        };
        self.state.admit_as(auth, sid, login, from)
    }

    /// The address's record of failed logins, for password logins.
    fn login_address(&self, auth: &Auth, from: Option<std::net::IpAddr>) -> Address {
        from.filter(|_| auth.password.is_some() && auth.register != Some(true))
            .and_then(|ip| Some((self.accounts.addresses.clone()?, ip.to_string())))
    }

    /// A locked address or name is refused before anything else is
    /// looked at: a flood of guesses costs a map lookup each, not a read
    /// of the store.
    fn not_locked(&self, auth: &Auth, key: &str, address: &Address) -> Result<(), ConnectRefusal> {
        if let Some((addresses, ip)) = address
            && let Some(wait) = addresses.locked_for(ip)
        {
            return Err(address_locked(wait));
        }
        if auth.password.is_some()
            && auth.register != Some(true)
            && let Some(wait) = self.accounts.guesses.locked_for(key)
        {
            return Err(strike(address, locked(&auth.username, wait)));
        }
        Ok(())
    }

    /// (v3) A password checked as a login's (the same lockouts, per name
    /// and per address), outside a handshake: the account it opens.
    pub(super) async fn password_login(
        &self,
        auth: &Auth,
        key: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<AccountRecord, ConnectRefusal> {
        let address = self.login_address(auth, from);
        self.not_locked(auth, key, &address)?;
        let Some(account) = self.store.account(key).await.map_err(store_down)? else {
            return Err(strike(
                &address,
                ConnectRefusal::new(
                    ErrorCode::BadCredentials,
                    format!("{} has no account", auth.username),
                ),
            ));
        };
        self.check_password(auth, key, account.hash.clone(), &address)
            .await?;
        Ok(account)
    }

    /// A name without an account: a guest, where guests may connect
    /// (with a password, a failed login).
    fn as_guest(
        &self,
        auth: &Auth,
        sid: Sid,
        address: &Address,
        from: Option<std::net::IpAddr>,
    ) -> Result<Admission, ConnectRefusal> {
        let name = &auth.username;
        if self.state.config.auth == AuthMode::Accounts {
            return Err(ConnectRefusal::new(
                ErrorCode::AuthRequired,
                format!("this server takes accounts only, and {name} has none"),
            ));
        }
        if auth.password.is_some() {
            return Err(strike(
                address,
                ConnectRefusal::new(
                    ErrorCode::BadCredentials,
                    format!(
                        "{name} has no account: connect without a password as a guest, or register"
                    ),
                ),
            ));
        }
        self.state.admit_as(auth, sid, Login::Guest, from)
    }

    /// Checks the handshake's password against the account's `hash`, as
    /// one guess at the name and one from the address.
    async fn check_password(
        &self,
        auth: &Auth,
        key: &str,
        hash: String,
        address: &Address,
    ) -> Result<(), ConnectRefusal> {
        let name = &auth.username;
        let Some(password) = auth.password.clone() else {
            return Err(ConnectRefusal::new(
                ErrorCode::AuthRequired,
                format!("{name} has an account: its password is needed"),
            ));
        };
        let attempt = self
            .accounts
            .guesses
            .begin(key)
            .map_err(|wait| strike(address, locked(name, wait)))?;
        // The address's checks in flight count against its limit too, and
        // a try refused for that counts as a failed one: a burst of
        // guesses locks its address without waiting for the hashes.
        let from_attempt = match address {
            Some((addresses, ip)) => Some(
                addresses
                    .begin(ip)
                    .map_err(|wait| strike(address, address_locked(wait)))?,
            ),
            None => None,
        };
        let right = self
            .accounts
            .verify(password, hash)
            .await
            .map_err(hash_failed)?;
        if !right {
            let now_locked = attempt.fail();
            tracing::info!(user = %key, locked = now_locked.is_some(), "wrong password");
            if let (Some(a), Some((_, ip))) = (from_attempt, address)
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
        Ok(())
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
        from: Option<std::net::IpAddr>,
    ) -> Result<Admission, ConnectRefusal> {
        self.create_account(auth, key, resumes, existing).await?;
        self.state.admit_as(auth, sid, Login::Registered, from)
    }

    /// Creates the account of a registration (a handshake's or, v3, the
    /// HTTP API's), under the registration rules.
    pub(super) async fn create_account(
        &self,
        auth: &Auth,
        key: &str,
        resumes: bool,
        existing: Option<AccountRecord>,
    ) -> Result<(), ConnectRefusal> {
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
        let account = AccountRecord::new(name, hash);
        self.account_watch.announcing(key);
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
        Ok(())
    }

    /// `account:password {old, new}`.
    pub(super) async fn change_password(
        &self,
        ctx: &dyn Acting,
        p: PasswordChange,
    ) -> Result<Reply, ChatError> {
        let event = names::ACCOUNT_PASSWORD;
        let key = &ctx.key();
        let refuse = |code, message: String| ChatError::new(code, message, event);
        if !ctx.is_account(&self.state) {
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
            HashError::Busy => rate_limited(event, "too many logins at once", RETRY_AFTER),
            HashError::Internal(why) => {
                tracing::error!("password hashing: {why}");
                refuse(
                    ErrorCode::Internal,
                    "the password could not be checked".into(),
                )
            }
        };
        // The old password is a guess like any other.
        let attempt = self
            .accounts
            .guesses
            .begin(key)
            .map_err(|wait| rate_limited(event, "too many wrong passwords: wait", wait))?;
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
