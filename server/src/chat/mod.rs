//! The `/chat` namespace, one file per capability, each read top to
//! bottom: what arrives, what it changes, what goes out. This file holds
//! what they share: the socket's context, the service handle,
//! registration, the one dispatcher that parses every client event,
//! applies the request limit and answers, and the dispatcher of what the
//! other nodes send.
//!
//! Capabilities:
//! - [`identity`]: handshake, connect, takeover, disconnect.
//! - [`accounts`]: a login top to bottom (across nodes, then here: token,
//!   password, lockout, admission), registration, `account:password`.
//! - [`recovery`]: restore, replay, catch-up; readers that fall behind.
//! - [`rooms`]: join and leave, with members counted on every node.
//! - [`messaging`]: room, DM, global and broadcast messages, from the
//!   request to the ack, in the delivery order
//!   ([`crate::live::DeliveryOrder`]); DMs to users on other nodes.
//! - [`changes`]: (v3) replies, edits, deletions and reactions: who may
//!   change which message; each change travels like a message.
//! - [`history`]: `history` pages.
//! - [`typing`]: typing indicators, here and from other nodes.
//! - [`presence`]: presence changes, their folding in a storm, and
//!   `presence:get` across nodes.
//! - [`rename`]: (v3) a guest's new name, in place.
//! - [`clients`]: (v3) one account on several clients: `session:list`,
//!   `session:end`, membership that follows the account, read markers.
//! - [`api`]: (v3) the HTTP API's requests, made by an [`api::ApiCaller`]
//!   through the same handlers as a socket's (both are an [`Acting`]).
//! - [`moderation`]: (v3) roles, room settings, invites, kicks, bans,
//!   mutes and blocks, and the checks the others make, on the node's
//!   copy of who may do what ([`crate::live::policy`]).
//!
//! The rules they share, each small enough to test alone:
//! - [`sequencer`]: keeps each socket's events in arrival order.
//! - [`rate_limit`]: the per-socket token bucket.
//! - [`presence_gate`]: the per-scope presence storm guard.
//! - [`refusal`]: how a refusal reaches the client, the refusals several
//!   handlers give, and the one retry time they state.

mod accounts;
pub mod api;
mod changes;
mod clients;
mod history;
mod identity;
mod messaging;
mod moderation;
mod presence;
pub mod presence_gate;
pub mod rate_limit;
mod recovery;
mod refusal;
mod rename;
mod rooms;
pub mod sequencer;
mod typing;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_shared::{
    AckErr, AckOk, Auth, ChatError, ClientEvent, ConnectRefusal, DmRequest, EmptyAck, ErrorCode,
    HistoryAck, HistoryMessage, HistoryRequest, HistoryTarget, JoinAck, LeaveAck, PingAck,
    Presence, PresenceKind, PresenceSnapshot, PresenceSummary, RoomListAck, RoomMessageRequest,
    SentAck, SessionInfo, TextRequest, TypingNotice, TypingRequest, TypingTarget, canonical_room,
    check_text, is_valid_username, names,
};
use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::{DisconnectReason, Sid};
use socketioxide::{SocketError, SocketIo};

use crate::cluster::feed::{Feed, FeedEvent};
use crate::http::transport::Transports;
use crate::live::{Admission, ChatState};
pub use crate::live::{Delivering, DeliveryOrder};
use crate::ops::admin_feed::{AdminFeed, event as admin_event};
use crate::store::{Destination, MessageRecord, Replayed, Store};
use chat_shared::{AdminEventType, CHAT_NS};
use identity::Release;
use presence_gate::{Decision, PresenceGate};
use rate_limit::TokenBucket;
use refusal::{RETRY_AFTER, rate_limited, store_failed, take_token, unavailable};
use sequencer::{Sequencer, Turn};

pub use crate::live::policy::{Moderation, Policy, ROLES as ROLES_SCOPE};

/// The socket.io room every `/chat` socket joins once it is caught up:
/// global and broadcast messages go there rather than to the whole
/// namespace, so a resuming socket gets them only after its replay. Room
/// names of the contract start with `#`, so this one cannot collide.
const EVERYONE: &str = "~everyone";

/// How often a node looks for moderation settings changed elsewhere: a
/// role given with `chat-server account role` applies within it.
const POLICY_POLL: Duration = Duration::from_millis(500);

/// How often ended bans and mutes are removed from the store.
const ENDED_SWEEP: Duration = Duration::from_secs(60);

/// How long a replay waits for a full socket queue to drain before it gives
/// up on that socket.
const REPLAY_STALL_LIMIT: Duration = Duration::from_secs(10);

/// What a `/chat` socket carries: who it is and its rate limit.
#[derive(Debug)]
pub struct SocketCtx {
    pub admission: Admission,
    offset: Option<String>,
    /// The sequencer ticket of the connect sequence: events the client
    /// sends right after its CONNECT wait behind it, so none arrives before
    /// its handler exists or before the session is restored.
    connect_ticket: u64,
    /// Lets the admission go if the socket never connects.
    _release: Release,
    /// Messages (room, dm, global, broadcast).
    bucket: Option<Mutex<TokenBucket>>,
    /// Every other request.
    requests: Option<Mutex<TokenBucket>>,
    order: Sequencer,
    /// (v3) The server ended this session (a kick or ban from the
    /// server): its disconnect keeps no recovery window.
    ended: std::sync::atomic::AtomicBool,
    /// (v3) Who the socket is now: the admission's key and display name
    /// until a guest renames itself (`user:rename`). Handlers read it
    /// through [`SocketCtx::key`] and [`SocketCtx::username`].
    name: std::sync::RwLock<(String, String)>,
    /// (v3) When the session last made a request (shared with the state,
    /// which ends the least recently active session beyond the limit).
    activity: Arc<std::sync::atomic::AtomicU64>,
}

/// A snapshot of who a socket is (see [`SocketCtx::me`]).
#[derive(Debug, Clone)]
pub struct Me {
    pub key: String,
    pub username: String,
    /// The session belongs to an account.
    pub account: bool,
}

/// (v3) Who makes a request: a socket's session ([`SocketCtx`]) or an
/// HTTP API caller ([`api::ApiCaller`]). The rules (membership, mutes,
/// blocks, ranks, the message rate) read the sender through this, so a
/// request over HTTP goes through the same checks as a socket's.
pub trait Acting: Send + Sync {
    /// Who the sender is now.
    fn me(&self) -> Me;
    fn key(&self) -> String {
        self.me().key
    }
    fn username(&self) -> String {
        self.me().username
    }
    /// The message rate limit (none: no limit).
    fn bucket(&self) -> Option<&Mutex<TokenBucket>>;
    /// Whether the sender is a member of `room` (canonical).
    fn is_member(&self, state: &ChatState, room: &str) -> bool;
    /// Whether the sender is an account.
    fn is_account(&self, state: &ChatState) -> bool;
    /// The public id of the sending socket's session (a cluster's feed
    /// skips that socket); none for an HTTP request.
    fn origin(&self) -> Option<&str>;
}

impl Acting for SocketCtx {
    fn me(&self) -> Me {
        SocketCtx::me(self)
    }
    fn key(&self) -> String {
        SocketCtx::key(self)
    }
    fn username(&self) -> String {
        SocketCtx::username(self)
    }
    fn bucket(&self) -> Option<&Mutex<TokenBucket>> {
        self.bucket.as_ref()
    }
    fn is_member(&self, state: &ChatState, room: &str) -> bool {
        state.is_member(&SocketCtx::key(self), room)
    }
    fn is_account(&self, state: &ChatState) -> bool {
        state.is_account(&SocketCtx::key(self))
    }
    fn origin(&self) -> Option<&str> {
        Some(&self.admission.session_id)
    }
}

impl SocketCtx {
    /// The user's key now.
    pub fn key(&self) -> String {
        self.name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The user's display name now.
    pub fn username(&self) -> String {
        self.name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// Who the socket is now, as one snapshot.
    pub fn me(&self) -> Me {
        let (key, username) = self.name.read().unwrap_or_else(|e| e.into_inner()).clone();
        Me {
            key,
            username,
            account: self.admission.account,
        }
    }

    fn rename(&self, key: String, username: String) {
        *self.name.write().unwrap_or_else(|e| e.into_inner()) = (key, username);
    }
}

/// The handle every `/chat` handler works through.
#[derive(Clone)]
pub struct ChatService {
    pub state: Arc<ChatState>,
    pub io: SocketIo,
    pub admin: AdminFeed,
    pub transports: Arc<Transports>,
    pub store: Arc<dyn Store>,
    /// See [`DeliveryOrder`].
    pub delivery: Arc<DeliveryOrder>,
    /// Password hashing and the guard against guessing.
    pub accounts: Arc<crate::auth::Accounts>,
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    /// Folds presence changes in a storm (`--presence-burst`).
    pub presence_gate: Arc<PresenceGate>,
    /// The other nodes, when several share a Redis (`--redis-url`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// What `/admin` knows of the accounts (see
    /// [`AccountWatch`](crate::ops::account_watch::AccountWatch)).
    pub account_watch: Arc<crate::ops::account_watch::AccountWatch>,
    /// (v3) The node's copy of who may do what.
    pub moderation: Arc<Moderation>,
    /// (v3) The message rate of accounts posting over HTTP.
    pub api: Arc<api::ApiBuckets>,
}

/// Registers `/chat` on `io`.
pub fn register(svc: ChatService) {
    let mw = svc.clone();
    let on_connect = svc.clone();
    svc.io.ns(
        CHAT_NS,
        (move |s: SocketRef| {
            let svc = on_connect.clone();
            async move { svc.connected(s).await }
        })
        .with(move |s: SocketRef, TryData(auth): TryData<Value>| {
            let svc = mw.clone();
            async move { svc.authenticate(s, auth.ok()).await }
        }),
    );
}

/// The reason string presence and the admin feed carry.
pub fn reason_str(reason: DisconnectReason) -> &'static str {
    use DisconnectReason::*;
    match reason {
        TransportClose => "transport close",
        MultipleHttpPollingError | PacketParsingError => "parse error",
        TransportError => "transport error",
        HeartbeatTimeout => "ping timeout",
        ClientNSDisconnect => "client namespace disconnect",
        ServerNSDisconnect => "server namespace disconnect",
        ClosingServer => "server shutting down",
    }
}

/// How a handled event is answered.
enum Answer {
    /// At once, with this ack.
    Now(Reply),
    /// A message: once its write has committed.
    OnCommit(messaging::Sending),
}

/// An ack body on success.
enum Reply {
    Sent(SentAck),
    Joined(JoinAck),
    Left(LeaveAck),
    Rooms(RoomListAck),
    Presence(PresenceSnapshot),
    History(HistoryAck),
    Ping(PingAck),
    Empty,
    /// (v3) Any other body, already JSON.
    Body(Value),
}

impl Serialize for Reply {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reply::Sent(b) => AckOk::new(b).serialize(s),
            Reply::Joined(b) => AckOk::new(b).serialize(s),
            Reply::Left(b) => AckOk::new(b).serialize(s),
            Reply::Rooms(b) => AckOk::new(b).serialize(s),
            Reply::Presence(b) => AckOk::new(b).serialize(s),
            Reply::History(b) => AckOk::new(b).serialize(s),
            Reply::Ping(b) => AckOk::new(b).serialize(s),
            Reply::Empty => AckOk::new(&EmptyAck {}).serialize(s),
            Reply::Body(b) => AckOk::new(b).serialize(s),
        }
    }
}

/// Emits to one socket, waiting (a bounded time) while its queue is full,
/// so that a replay never drops what it replays.
async fn emit_paced<T: Serialize + ?Sized>(s: &SocketRef, event: &str, data: &T) -> bool {
    let deadline = tokio::time::Instant::now() + REPLAY_STALL_LIMIT;
    loop {
        match s.emit(event, data) {
            Ok(()) => return true,
            Err(socketioxide::SendError::Socket(SocketError::InternalChannelFull))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => {
                tracing::debug!(sid = %s.id, "replay emit failed: {e}");
                return false;
            }
        }
    }
}

impl ChatService {
    fn ns(&self) -> Option<socketioxide::operators::BroadcastOperators> {
        self.io.of(CHAT_NS)
    }

    async fn dispatch(
        self: &Arc<Self>,
        s: &SocketRef,
        ctx: &Arc<SocketCtx>,
        event: &str,
        data: Value,
        ack: AckSender,
        turn: &mut Option<Turn<'_>>,
    ) {
        ctx.activity
            .store(crate::clock::now_ms(), std::sync::atomic::Ordering::Relaxed);
        let result = match ClientEvent::parse(event, data) {
            Err(e) => Err(e.to_chat_error(event)),
            Ok(ev) => self.handle(s, ctx, ev, turn).await,
        };
        match result {
            Ok(Answer::Now(reply)) => self.answer(s, ctx, ack, &reply),
            Ok(Answer::OnCommit(sending)) => self.ack_on_commit(s, ctx, ack, sending),
            Err(err) => self.refuse(s, ctx, ack, err).await,
        }
    }

    /// Sends an ack. One that cannot be queued is not dropped silently: the
    /// socket's transport ends, so its client's request fails at once
    /// rather than vanishing.
    fn answer<T: Serialize + ?Sized>(
        &self,
        s: &SocketRef,
        ctx: &SocketCtx,
        ack: AckSender,
        body: &T,
    ) {
        if let Err(socketioxide::SendError::Socket(SocketError::InternalChannelFull)) =
            ack.send(body)
        {
            self.metrics.dropped();
            self.fell_behind(s, &ctx.key());
        }
    }

    async fn handle(
        self: &Arc<Self>,
        s: &SocketRef,
        ctx: &SocketCtx,
        ev: ClientEvent,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<Answer, ChatError> {
        let name = ev.name();
        let sending = match ev {
            ClientEvent::RoomMessage(m) => self.room_message(ctx, m, turn).await,
            ClientEvent::DmMessage(m) => self.dm(Some(s), ctx, m, turn).await,
            ClientEvent::GlobalMessage(m) => {
                self.feed(s, ctx, name, &m, Destination::Global, turn).await
            }
            ClientEvent::BroadcastMessage(m) => {
                self.feed(s, ctx, name, &m, Destination::Broadcast, turn)
                    .await
            }
            ClientEvent::MessageEdit(m) => self.edit(ctx, m, turn).await,
            ClientEvent::MessageDelete(m) => self.delete(ctx, m, turn).await,
            ClientEvent::MessageReact(m) => self.react(ctx, m, turn).await,
            request => {
                // Messages have their own limit (in `text`).
                take_token(ctx.requests.as_ref(), name, "too many requests: slow down")?;
                return self.request(s, ctx, request).await.map(Answer::Now);
            }
        };
        sending.map(Answer::OnCommit)
    }

    /// Every event but the four messages.
    async fn request(
        self: &Arc<Self>,
        s: &SocketRef,
        ctx: &SocketCtx,
        ev: ClientEvent,
    ) -> Result<Reply, ChatError> {
        let message = |name| {
            ChatError::new(
                ErrorCode::InvalidPayload,
                "a message is not a request",
                name,
            )
        };
        match ev {
            ClientEvent::RoomJoin(r) => self.join(Some(s), ctx, &r.room).await,
            ClientEvent::RoomLeave(r) => self.leave(Some(s), ctx, &r.room).await,
            ClientEvent::RoomList => Ok(Reply::Rooms(RoomListAck {
                rooms: self.visible_rooms(ctx, self.room_list().await, true),
            })),
            ClientEvent::PresenceGet => {
                let mut p = self.presence_snapshot().await;
                p.rooms = self.visible_rooms(ctx, p.rooms, false);
                Ok(Reply::Presence(p))
            }
            m @ (ClientEvent::RoomMessage(_)
            | ClientEvent::DmMessage(_)
            | ClientEvent::GlobalMessage(_)
            | ClientEvent::BroadcastMessage(_)
            | ClientEvent::MessageEdit(_)
            | ClientEvent::MessageDelete(_)
            | ClientEvent::MessageReact(_)) => Err(message(m.name())),
            ClientEvent::Typing(t) => self.typing(s, ctx, t).await,
            ClientEvent::History(h) => self.history(ctx, h).await,
            ClientEvent::Ping => Ok(Reply::Ping(PingAck {
                ts: crate::clock::now_ms(),
            })),
            ClientEvent::AccountPassword(p) => self.change_password(ctx, p).await,
            ClientEvent::SessionList => self.session_list(ctx).await,
            ClientEvent::SessionEnd(e) => self.session_end(ctx, &e.id).await,
            ClientEvent::ReadMark(r) => self.read_mark(s, ctx, r).await,
            other => self.moderate(ctx, other).await,
        }
    }

    fn room(&self, event: &str, raw: &str) -> Result<String, ChatError> {
        canonical_room(raw).ok_or_else(|| {
            ChatError::new(
                ErrorCode::InvalidRoom,
                "a room is # then 1-32 of a-z 0-9 _ -",
                event,
            )
            .with("room", raw)
        })
    }

    fn member_room(&self, ctx: &dyn Acting, event: &str, raw: &str) -> Result<String, ChatError> {
        let room = self.room(event, raw)?;
        if !ctx.is_member(&self.state, &room) {
            return Err(
                ChatError::new(ErrorCode::NotMember, format!("join {room} first"), event)
                    .with("room", room),
            );
        }
        Ok(room)
    }

    /// The text rules, then the rate limit: the trimmed text to send.
    fn text<'t>(&self, ctx: &dyn Acting, event: &str, text: &'t str) -> Result<&'t str, ChatError> {
        let max = self.state.config.max_text;
        let text = check_text(text, max).map_err(|e| {
            let err = ChatError::new(e.code(), e.to_string(), event);
            if e.code() == ErrorCode::MessageTooLong {
                err.with("limit", max)
            } else {
                err
            }
        })?;
        take_token(ctx.bucket(), event, "too many messages: slow down")?;
        Ok(text)
    }
}

impl ChatService {
    /// (v3) Keeps the node's copy of who may do what current: reads the
    /// store's settings version every [`POLICY_POLL`] and, when another
    /// process changed them (another node, `chat-server account role`),
    /// reads them again and disconnects whoever a server ban now covers.
    /// Every minute, bans and mutes that have ended are removed from the
    /// store (their checks ignore them already). Ends with the store.
    pub fn watch_policy(&self) {
        let svc = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLICY_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut sweep = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                match svc.moderation.refresh().await {
                    Ok(true) => svc.enforce_bans().await,
                    Ok(false) => {}
                    Err(e) => tracing::debug!("moderation: {e}"),
                }
                if sweep.elapsed() >= ENDED_SWEEP {
                    sweep = tokio::time::Instant::now();
                    let ended = svc.moderation.cached().ended(crate::clock::now_ms());
                    for (scope, field) in ended {
                        let _ = svc.moderation.set(&scope, &field, None).await;
                    }
                }
            }
        });
    }

    /// (v3) With several nodes, writes this node's presence after a
    /// change and waits for it (see [`crate::cluster::presence`]): the
    /// change is then what every node answers. The session changes made so
    /// far are waited for too (at most [`crate::cluster::DELIVERY_WAIT`]):
    /// a client told it is connected or in a room can resume that on
    /// another node, even if this one dies the next moment.
    pub(super) async fn sync_presence(&self) {
        if let Some(cluster) = &self.cluster {
            let sessions =
                tokio::time::timeout(crate::cluster::DELIVERY_WAIT, self.state.flush_sessions());
            let _ = tokio::join!(cluster.sync_presence(), sessions);
        }
    }

    /// Starts delivering the cluster's messages after the id `after`, and
    /// the node's heartbeat. Does nothing without a cluster. Both tasks
    /// end once the store is closed.
    pub fn follow_cluster(&self, after: u64) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let mut feed = Feed::start(cluster.redis.clone(), after);
        let beating = Arc::clone(&cluster);
        let svc = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = feed.recv().await {
                match ev {
                    FeedEvent::Message(m, origin) => {
                        svc.deliver_numbered(&cluster, &m, origin.as_deref())
                    }
                    FeedEvent::Claimed { token } => {
                        if let Some(sid) = svc.state.release(&token) {
                            tracing::info!("session taken over by another node");
                            svc.replace(sid);
                        }
                    }
                    FeedEvent::Presence(p) => {
                        let scope = p.room.clone().unwrap_or_default();
                        svc.presence_here(&scope, p).await;
                    }
                    FeedEvent::Typing(t) => svc.typing_here(&t).await,
                    FeedEvent::Ended { key, error } => svc.ended_elsewhere(&key, &error).await,
                    FeedEvent::Account(note) => svc.account_note_here(note).await,
                    FeedEvent::Settings => match svc.moderation.refresh().await {
                        Ok(true) => svc.enforce_bans().await,
                        Ok(false) => {}
                        Err(e) => tracing::debug!("moderation: {e}"),
                    },
                }
                if cluster.redis.is_closed() {
                    return;
                }
            }
        });
        tokio::spawn(Arc::clone(&beating).write_presence(Arc::clone(&self.state)));
        let (io, state, moderation, metrics) = (
            self.io.clone(),
            Arc::clone(&self.state),
            Arc::clone(&self.moderation),
            Arc::clone(&self.metrics),
        );
        let admin_share = move || {
            let policy = moderation.cached();
            let snapshot = state.admin_snapshot(
                |sid| crate::ops::admin::transport_of(&io, sid),
                |key, account| policy.role(key, account),
            );
            crate::cluster::admin::AdminShare {
                users: snapshot.users,
                messages_total: metrics.messages_total(),
            }
        };
        tokio::spawn(crate::cluster::heartbeat::run(
            beating,
            Arc::clone(&self.state),
            admin_share,
        ));
    }
}
