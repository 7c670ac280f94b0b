//! (v3) The HTTP API's requests (`docs/PROTOCOL.md`, "HTTP API"), on the
//! chat side: who the caller is ([`ApiCaller`], from a Bearer token),
//! sign-up, API tokens, and the requests a socket could make too (posts,
//! DMs, joins, leaves, history, bans, a new password). Those go through
//! the very handlers a socket's requests take, with the caller as the
//! [`Acting`] sender: the same membership, mute, block, rank and rate
//! rules, the same delivery order and store, the answer after the
//! commit. The routes, bodies and statuses are `crate::api`'s.
//!
//! API tokens: 256 random bits, shown once; the store keeps only their
//! SHA-256 (a fast hash is enough for a secret no dictionary holds), by
//! which a request's token is found. A token is live while its account
//! exists (and was not made again after the token), and is refused while
//! the account is banned from the server. Its last use is written at most
//! once a [`TOKEN_USE_PRECISION`] (a use within that of the stored time
//! writes nothing), so that a busy bot costs no write per request.

use super::*;
use crate::cluster::feed::AccountNote;
use crate::store::{AccountChange, AccountRecord, StoreError, TokenRecord};
use chat_shared::{
    AccountCreated, NewAccount, NewPassword, NewToken, PasswordChange, PostDm, PostRoomMessage,
    TOKEN_LABEL_MAX, TokenCreated, TokenInfo, TokenList, username_key,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Random bytes in a token (256 bits).
const TOKEN_BYTES: usize = 32;

/// How precisely a token's last use is kept: a use within this of the
/// stored time writes nothing.
pub const TOKEN_USE_PRECISION: Duration = Duration::from_secs(60);

/// The label of a token made without one.
const DEFAULT_LABEL: &str = "api";

/// What event name an API request's errors carry in `context.event`.
pub mod events {
    pub const ACCOUNTS: &str = "api:accounts";
    pub const TOKENS: &str = "api:tokens";
    pub const PASSWORD: &str = "api:password";
    pub const AUTH: &str = "api:auth";
}

/// The message rate of each account posting over HTTP (`--rate`,
/// `--burst`), on this node: one bucket an account, whichever of its
/// tokens posts.
#[derive(Debug, Default)]
pub struct ApiBuckets {
    buckets: Mutex<HashMap<String, Arc<Mutex<TokenBucket>>>>,
    /// Token hash → the last use this node wrote (so that a burst of
    /// requests before the store has it writes once).
    uses: Mutex<HashMap<String, u64>>,
}

impl ApiBuckets {
    /// Whether this node should write a use of the token `hash` at `now`,
    /// its stored last use being `stored`; if so, it is noted as written.
    fn claim_use(&self, hash: &str, stored: Option<u64>, now: u64) -> bool {
        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        let last = stored.max(uses.get(hash).copied());
        if !use_worth_writing(last, now) {
            return false;
        }
        // Old entries go as new ones come: the map stays as small as the
        // tokens used within the last minute.
        let precision = TOKEN_USE_PRECISION.as_millis() as u64;
        uses.retain(|_, t| now.saturating_sub(*t) < precision);
        uses.insert(hash.to_owned(), now);
        true
    }

    fn of(&self, key: &str, limit: Option<(f64, u32)>) -> Option<Arc<Mutex<TokenBucket>>> {
        let (rate, burst) = limit?;
        let mut all = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        Some(Arc::clone(all.entry(key.to_owned()).or_insert_with(|| {
            Arc::new(Mutex::new(TokenBucket::new(rate, burst)))
        })))
    }
}

/// The account behind a request's Bearer token.
#[derive(Debug)]
pub struct ApiCaller {
    me: Me,
    /// The account's rooms as stored, for when no session of it is on
    /// this node (then the node's state does not hold its membership).
    rooms: Vec<String>,
    bucket: Option<Arc<Mutex<TokenBucket>>>,
}

impl ApiCaller {
    pub fn username(&self) -> &str {
        &self.me.username
    }
}

impl Acting for ApiCaller {
    fn me(&self) -> Me {
        self.me.clone()
    }
    fn bucket(&self) -> Option<&Mutex<TokenBucket>> {
        self.bucket.as_deref()
    }
    fn is_member(&self, state: &ChatState, room: &str) -> bool {
        if state.name_held(&self.me.key) {
            state.is_member(&self.me.key, room)
        } else {
            self.rooms.iter().any(|r| r == room)
        }
    }
    fn is_account(&self, _: &ChatState) -> bool {
        true
    }
    fn origin(&self) -> Option<&str> {
        None
    }
}

/// Whether a use of a token at `now` (wall-clock ms) is written, its
/// stored last use being `last`: only when that is a
/// [`TOKEN_USE_PRECISION`] old or more (or there is none).
fn use_worth_writing(last: Option<u64>, now: u64) -> bool {
    let precision = TOKEN_USE_PRECISION.as_millis() as u64;
    last.is_none_or(|t| now.saturating_sub(t) >= precision)
}

/// The hex SHA-256 of a token: how the store finds it.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn new_secret(bytes: usize) -> String {
    use rand::RngCore;
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A refused handshake's code and text as a request's error.
fn from_refusal(event: &str, r: ConnectRefusal) -> ChatError {
    ChatError::new(r.code, r.message, event)
}

fn store_error(event: &str, what: &str, e: StoreError) -> ChatError {
    tracing::warn!("api: {e}");
    unavailable(event, what)
}

fn bad_token(event: &str) -> ChatError {
    ChatError::new(
        ErrorCode::BadCredentials,
        "that API token is not valid (revoked, or its account is gone)",
        event,
    )
}

/// The body of an ack as the API's answer (without `ok`).
fn reply_body(reply: Reply) -> Value {
    let value = match reply {
        Reply::Sent(b) => serde_json::to_value(b),
        Reply::Joined(b) => serde_json::to_value(b),
        Reply::Left(b) => serde_json::to_value(b),
        Reply::Rooms(b) => serde_json::to_value(b),
        Reply::Presence(b) => serde_json::to_value(b),
        Reply::History(b) => serde_json::to_value(b),
        Reply::Ping(b) => serde_json::to_value(b),
        Reply::Empty => Ok(Value::Object(Default::default())),
        Reply::Body(b) => Ok(b),
    };
    value.unwrap_or(Value::Null)
}

impl ChatService {
    /// The account and token behind the secret `token`, if it is live.
    /// `Ok(None)` for a token that is not.
    pub(super) async fn token_account(
        &self,
        token: &str,
        event: &str,
    ) -> Result<Option<(AccountRecord, TokenRecord)>, ChatError> {
        let hash = token_hash(token);
        let Some(rec) = self
            .store
            .token(&hash)
            .await
            .map_err(|e| store_error(event, "check tokens", e))?
        else {
            return Ok(None);
        };
        let account = self
            .store
            .account(&rec.user_key)
            .await
            .map_err(|e| store_error(event, "check tokens", e))?;
        // A token of an account that was removed, or of an older account
        // of the same name, is not this account's.
        let Some(account) = account.filter(|a| a.created_ms <= rec.created_ms) else {
            return Ok(None);
        };
        let now = crate::clock::now_ms();
        if self.api.claim_use(&hash, rec.last_used_ms, now) {
            let store = Arc::clone(&self.store);
            tokio::spawn(async move {
                let written = match store.token_used(&hash, now).await {
                    Ok(c) => c.await,
                    Err(e) => Err(e),
                };
                if let Err(e) = written {
                    tracing::debug!("token use: {e}");
                }
            });
        }
        Ok(Some((account, rec)))
    }

    /// (v3) `auth.token` on `/chat`: the account the token opens a session
    /// of, or the refusal. The token must be `key`'s.
    pub(super) async fn token_login(
        &self,
        token: &str,
        key: &str,
    ) -> Result<(AccountRecord, TokenRecord), ConnectRefusal> {
        match self.token_account(token, names::SESSION).await {
            Ok(Some((account, rec))) if rec.user_key == key => Ok((account, rec)),
            Ok(_) => Err(ConnectRefusal::new(
                ErrorCode::BadCredentials,
                "that API token is not valid for this username",
            )),
            Err(e) => Err(ConnectRefusal::new(e.code, e.message)),
        }
    }

    /// The caller of a request whose `Authorization: Bearer` token is
    /// `token`: 401 `bad_credentials` if it is not live, 403 `banned`
    /// while its account is banned from the server.
    pub async fn api_caller(&self, token: &str) -> Result<ApiCaller, ChatError> {
        let event = events::AUTH;
        let Some((account, _)) = self.token_account(token, event).await? else {
            return Err(bad_token(event));
        };
        let key = username_key(&account.username);
        let p = self.policy(event).await?;
        if let Some(ban) = p.server_ban(&key, crate::clock::now_ms()) {
            return Err(moderation::sanctioned(ErrorCode::Banned, event, ban, None));
        }
        Ok(ApiCaller {
            me: Me {
                key: key.clone(),
                username: account.username,
                account: true,
            },
            rooms: account.rooms,
            bucket: self.api.of(&key, self.state.config.rate_limit()),
        })
    }

    /// `POST /accounts`: registration under the handshake's rules.
    pub async fn api_register(&self, req: NewAccount) -> Result<AccountCreated, ChatError> {
        let event = events::ACCOUNTS;
        if !is_valid_username(&req.username) {
            return Err(ChatError::new(
                ErrorCode::InvalidUsername,
                "a username is 1-32 characters of A-Z a-z 0-9 _ . -",
                event,
            ));
        }
        let key = username_key(&req.username);
        let existing = self
            .store
            .account(&key)
            .await
            .map_err(|e| store_error(event, "look up accounts", e))?;
        let auth = Auth {
            username: req.username.clone(),
            password: Some(req.password),
            register: Some(true),
            ..Default::default()
        };
        self.create_account(&auth, &key, false, existing)
            .await
            .map_err(|r| from_refusal(event, r))?;
        Ok(AccountCreated {
            username: req.username,
        })
    }

    /// `POST /tokens`: checks the password (one guess at the name and
    /// from the address, as a login), then makes a token.
    pub async fn api_new_token(
        &self,
        req: NewToken,
        from: Option<std::net::IpAddr>,
    ) -> Result<TokenCreated, ChatError> {
        let event = events::TOKENS;
        let auth = Auth {
            username: req.username.clone(),
            password: Some(req.password),
            ..Default::default()
        };
        let key = username_key(&req.username);
        let account = self.password_login(&auth, &key, from).await.map_err(|r| {
            let code = r.code;
            let err = from_refusal(event, r);
            if code != ErrorCode::RateLimited {
                return err;
            }
            // The lock's wait, for Retry-After.
            let address = from.and_then(|ip| {
                self.accounts
                    .addresses
                    .as_ref()?
                    .locked_for(&ip.to_string())
            });
            let wait = self
                .accounts
                .guesses
                .locked_for(&key)
                .max(address)
                .unwrap_or(RETRY_AFTER);
            err.with("retryAfterMs", wait.as_millis().max(1) as u64)
        })?;
        let secret = new_secret(TOKEN_BYTES);
        let label: String = req
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .unwrap_or(DEFAULT_LABEL)
            .chars()
            .filter(|c| !c.is_control())
            .take(TOKEN_LABEL_MAX)
            .collect();
        let rec = TokenRecord {
            id: format!("tok-{}", new_secret(8)),
            user_key: key.clone(),
            hash: token_hash(&secret),
            label: label.clone(),
            created_ms: crate::clock::now_ms(),
            last_used_ms: None,
        };
        let stored = match self.store.put_token(&rec).await {
            Ok(c) => c.await,
            Err(e) => Err(e),
        };
        stored.map_err(|e| store_error(event, "store tokens", e))?;
        tracing::info!(user = %key, token = %rec.id, "API token made");
        Ok(TokenCreated {
            id: rec.id,
            token: secret,
            username: account.username,
            label,
        })
    }

    /// `GET /tokens`.
    pub async fn api_tokens(&self, caller: &ApiCaller) -> Result<TokenList, ChatError> {
        let tokens = self
            .store
            .tokens(&caller.me.key)
            .await
            .map_err(|e| store_error(events::TOKENS, "list tokens", e))?;
        Ok(TokenList {
            tokens: tokens
                .into_iter()
                .map(|t| TokenInfo {
                    id: t.id,
                    label: t.label,
                    created_at: t.created_ms,
                    last_used_at: t.last_used_ms,
                })
                .collect(),
        })
    }

    /// `DELETE /tokens/{id}`: revokes the token and ends the sessions it
    /// opened, on whichever node holds them.
    pub async fn api_revoke(&self, caller: &ApiCaller, id: &str) -> Result<(), ChatError> {
        let event = events::TOKENS;
        let key = &caller.me.key;
        let tokens = self
            .store
            .tokens(key)
            .await
            .map_err(|e| store_error(event, "list tokens", e))?;
        if !tokens.iter().any(|t| t.id == id) {
            return Err(ChatError::new(
                ErrorCode::NotFound,
                format!("you have no token {id}"),
                event,
            )
            .with("id", id));
        }
        let revoked = match self.store.delete_token(key, id).await {
            Ok(c) => c.await,
            Err(e) => Err(e),
        };
        revoked.map_err(|e| store_error(event, "revoke tokens", e))?;
        tracing::info!(user = %key, token = %id, "API token revoked");
        let opened = |meta: &crate::store::SessionMeta| meta.token_id.as_deref() == Some(id);
        for v in self.state.sessions_of(key) {
            if opened(&v.meta) {
                self.end_session_here(key, &v.token, false);
            }
        }
        if let Some(cluster) = &self.cluster {
            let stored = self
                .store
                .user_sessions(key)
                .await
                .map_err(|e| store_error(event, "list sessions", e))?;
            for rec in stored.into_iter().filter(|r| opened(&r.meta)) {
                if let Err(e) = self.store.delete_session(&rec.token).await {
                    tracing::warn!("revoke: {e}");
                }
                let note = AccountNote::End {
                    key: key.clone(),
                    token: rec.token,
                    replaced: false,
                };
                if let Err(e) = cluster.announce_account(&note).await {
                    tracing::warn!("cluster: {e}");
                }
            }
        }
        Ok(())
    }

    /// `PUT /password`: `account:password`.
    pub async fn api_password(
        &self,
        caller: &ApiCaller,
        req: NewPassword,
    ) -> Result<(), ChatError> {
        let change = PasswordChange {
            old: req.old,
            new: req.new,
        };
        self.change_password(caller, change)
            .await
            .map(|_| ())
            .map_err(|mut e| {
                e.context.insert("event".into(), events::PASSWORD.into());
                e
            })
    }

    /// `PUT /rooms/{room}/membership`: `room:join` as the account. With a
    /// session of it on this node, exactly a socket's join (its sessions
    /// follow); otherwise the account's stored rooms change, and the
    /// other nodes' sessions of it follow.
    pub async fn api_join(
        self: &Arc<Self>,
        caller: &ApiCaller,
        raw: &str,
    ) -> Result<(), ChatError> {
        let key = caller.me.key.clone();
        if self.state.name_held(&key) {
            self.join(None, caller, raw).await?;
        } else {
            let event = names::ROOM_JOIN;
            let room = self.room(event, raw)?;
            if caller.is_member(&self.state, &room) {
                return Ok(());
            }
            let policy = self.policy(event).await?;
            self.may_join(&policy, caller, &room)?;
            let limit = self.state.config.max_rooms_per_user;
            if caller.rooms.len() >= limit {
                return Err(super::refusal::too_many_rooms(event, limit, &room));
            }
            let created = self.room_is_new(&policy, &room).await;
            let mut rooms = caller.rooms.clone();
            rooms.push(room.clone());
            self.store_rooms(event, &key, rooms).await?;
            self.joined(&policy, caller, &room, created).await;
            self.announce_membership(AccountNote::Joined {
                key: key.clone(),
                room,
            })
            .await;
            return Ok(());
        }
        let room = self.room(names::ROOM_JOIN, raw)?;
        self.announce_membership(AccountNote::Joined { key, room })
            .await;
        Ok(())
    }

    /// `DELETE /rooms/{room}/membership`: `room:leave` as the account.
    pub async fn api_leave(
        self: &Arc<Self>,
        caller: &ApiCaller,
        raw: &str,
    ) -> Result<(), ChatError> {
        let key = caller.me.key.clone();
        let event = names::ROOM_LEAVE;
        if self.state.name_held(&key) {
            self.leave(None, caller, raw).await?;
        } else {
            let room = self.room(event, raw)?;
            if !caller.is_member(&self.state, &room) {
                return Err(
                    ChatError::new(ErrorCode::NotMember, format!("not in {room}"), event)
                        .with("room", room),
                );
            }
            let rooms = caller.rooms.iter().filter(|r| **r != room).cloned();
            self.store_rooms(event, &key, rooms.collect()).await?;
        }
        let room = self.room(event, raw)?;
        self.announce_membership(AccountNote::Left { key, room })
            .await;
        Ok(())
    }

    async fn store_rooms(
        &self,
        event: &str,
        key: &str,
        rooms: Vec<String>,
    ) -> Result<(), ChatError> {
        let stored = match self
            .store
            .update_account(key, AccountChange::Rooms(rooms))
            .await
        {
            Ok(c) => c.await,
            Err(e) => Err(e),
        };
        stored.map_err(|e| store_error(event, "store rooms", e))
    }

    /// Tells the other nodes, whose sessions of the account follow.
    async fn announce_membership(&self, note: AccountNote) {
        if let Some(cluster) = &self.cluster
            && let Err(e) = cluster.announce_account(&note).await
        {
            tracing::warn!("cluster: {e}");
        }
    }

    /// `GET /rooms/{room}/messages`: `history` of the room.
    pub async fn api_history(
        &self,
        caller: &ApiCaller,
        room: String,
        before: Option<String>,
        limit: Option<u64>,
    ) -> Result<Value, ChatError> {
        let req = HistoryRequest {
            target: HistoryTarget::Room(room),
            before,
            limit,
            events: false,
        };
        self.history(caller, req).await.map(reply_body)
    }

    /// `POST /rooms/{room}/messages`: `room:message`, answered after its
    /// commit.
    pub async fn api_post(
        self: &Arc<Self>,
        caller: &ApiCaller,
        room: String,
        req: PostRoomMessage,
    ) -> Result<SentAck, ChatError> {
        let m = RoomMessageRequest {
            room,
            text: req.text,
            action: req.action.unwrap_or(false),
            reply_to: req.reply_to,
        };
        let sending = self.room_message(caller, m, &mut None).await?;
        self.sent(caller, sending).await
    }

    /// `POST /dms/{user}`: `dm:message`, answered after its commit.
    pub async fn api_dm(
        self: &Arc<Self>,
        caller: &ApiCaller,
        to: String,
        req: PostDm,
    ) -> Result<SentAck, ChatError> {
        let m = DmRequest {
            to,
            text: req.text,
            action: req.action.unwrap_or(false),
            reply_to: req.reply_to,
        };
        let sending = self.dm(None, caller, m, &mut None).await?;
        self.sent(caller, sending).await
    }

    /// `GET /bans`: `user:bans`.
    pub async fn api_bans(&self, caller: &ApiCaller) -> Result<Value, ChatError> {
        self.bans(caller).await.map(reply_body)
    }

    /// A refused request counts on `/metrics` like a socket's refusal.
    pub fn api_refused(&self, code: ErrorCode) {
        self.metrics.error(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_use_is_written_at_most_once_a_minute() {
        let t0 = 1_700_000_000_000;
        assert!(use_worth_writing(None, t0), "the first use");
        assert!(!use_worth_writing(Some(t0), t0 + 1));
        assert!(!use_worth_writing(Some(t0), t0 + 59_999));
        assert!(use_worth_writing(Some(t0), t0 + 60_000));
        // A clock that went back writes nothing.
        assert!(!use_worth_writing(Some(t0), t0 - 5_000));
    }

    #[test]
    fn a_token_is_found_by_a_hash_that_is_not_the_token() {
        let token = new_secret(TOKEN_BYTES);
        assert_eq!(token.len(), 64, "256 bits in hex");
        assert_ne!(token, new_secret(TOKEN_BYTES));
        let hash = token_hash(&token);
        assert_eq!(hash, token_hash(&token));
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_burst_of_first_uses_writes_once() {
        let api = ApiBuckets::default();
        let t0 = 1_700_000_000_000;
        assert!(api.claim_use("h", None, t0));
        assert!(
            !api.claim_use("h", None, t0 + 10),
            "the store has not got it yet"
        );
        assert!(api.claim_use("other", None, t0 + 10));
        assert!(api.claim_use("h", Some(t0), t0 + 60_000));
    }

    #[tokio::test(start_paused = true)]
    async fn an_accounts_tokens_share_one_bucket_and_accounts_do_not() {
        let buckets = ApiBuckets::default();
        let limit = Some((2.0, 2));
        let take = |key: &str| {
            let b = buckets.of(key, limit).expect("a limit");
            b.lock().unwrap().try_take()
        };
        assert!(take("ci").is_ok());
        assert!(take("ci").is_ok(), "the burst, from either token");
        let wait = take("ci").expect_err("beyond the burst");
        assert_eq!(wait, Duration::from_millis(500), "2 a second");
        assert!(take("other").is_ok(), "another account has its own");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(take("ci").is_ok(), "refilled at the rate");
        assert!(buckets.of("ci", None).is_none(), "--rate 0: no limit");
    }
}
