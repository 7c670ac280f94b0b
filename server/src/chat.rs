//! The `/chat` namespace: the username middleware, the connect sequence
//! (session, replay, rooms), one dispatcher for every client event, and the
//! disconnect handler. Each handler parses, asks [`ChatState`], emits, and
//! answers the ack.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_shared::{
    AckErr, AckOk, Auth, ChatError, ClientEvent, ConnectRefusal, DmRequest, EmptyAck, ErrorCode,
    HistoryAck, HistoryMessage, HistoryRequest, HistoryTarget, JoinAck, LeaveAck, PingAck,
    Presence, PresenceKind, PresenceSnapshot, PresenceSummary, RoomListAck, RoomMessageRequest,
    SentAck, SessionInfo, TypingNotice, TypingRequest, TypingTarget, canonical_room, check_text,
    is_valid_username, names,
};
use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::{DisconnectReason, Sid};
use socketioxide::{SocketError, SocketIo};

use crate::admin_feed::{AdminFeed, event as admin_event};
use crate::presence::Decision;
use crate::rate_limit::TokenBucket;
use crate::sequencer::Sequencer;
use crate::state::{Admission, ChatState};
use crate::store::{Destination, MessageRecord, Replayed, Store};
use crate::transport::Transports;
use chat_shared::{AdminEventType, CHAT_NS};

/// The socket.io room every `/chat` socket joins once it is caught up:
/// global and broadcast messages go there rather than to the whole
/// namespace, so a resuming socket gets them only after its replay. Room
/// names of the contract start with `#`, so this one cannot collide.
const EVERYONE: &str = "~everyone";

/// A resumed socket's catch-up is finished under the delivery lock once
/// this few messages are left (the rest are sent with the lock released).
const CATCH_UP_UNDER_LOCK: usize = 64;

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
}

/// Releases an admission when its socket is dropped. The middleware admits
/// a user before socketioxide has put the socket in the namespace; if the
/// transport closes in between, the socket is dropped without any
/// disconnect handler running, and this is what lets the user go. After a
/// normal disconnect it finds the user no longer on this socket and does
/// nothing.
#[derive(Debug)]
struct Release {
    state: Arc<ChatState>,
    transports: Arc<Transports>,
    key: String,
    sid: Sid,
    fresh: bool,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.transports.forget(self.sid);
        if self.state.abandon(&self.key, self.sid, self.fresh) {
            tracing::info!(user = %self.key, "connect abandoned: the transport closed before the namespace reply");
        }
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
}

/// A handshake refused with `invalid_username`.
fn bad_username(message: impl Into<String>) -> ConnectRefusal {
    ConnectRefusal::new(ErrorCode::InvalidUsername, message)
}

/// Reads the handshake's `auth` field by field, so that a wrong field is
/// refused with the code about that field.
fn parse_auth(v: Option<Value>) -> Result<Auth, ConnectRefusal> {
    const SHAPE: &str = "auth must be {username: string}: 1-32 characters of A-Z a-z 0-9 _ . -";
    let Some(Value::Object(obj)) = v else {
        return Err(bad_username(SHAPE));
    };
    let Some(Value::String(username)) = obj.get("username") else {
        return Err(bad_username(SHAPE));
    };
    if !is_valid_username(username) {
        return Err(bad_username(format!(
            "{username:?} is not 1-32 characters of A-Z a-z 0-9 _ . -"
        )));
    }
    let text = |field: &str, what: &str| match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConnectRefusal::new(
            ErrorCode::InvalidSession,
            format!("{field} must be a string: {what}"),
        )),
    };
    let session = text("session", "the token from the last `session` event")?;
    let offset = text("offset", "the id of the last message received")?;
    Ok(Auth {
        username: username.clone(),
        session,
        offset,
        ..Default::default()
    })
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
            async move { svc.authenticate(s, auth.ok()) }
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
        }
    }
}

/// A stored message as the contract's history entry (room messages and
/// DMs; the feeds have no history).
fn history_message(m: &MessageRecord) -> Option<HistoryMessage> {
    let id = m.id.to_string();
    let action = m.action.then_some(true);
    match &m.dest {
        Destination::Room(room) => Some(HistoryMessage::Room(chat_shared::RoomMessage {
            id,
            ts: m.ts,
            from: m.from.clone(),
            room: room.clone(),
            text: m.text.clone(),
            replayed: None,
            action,
        })),
        Destination::Dm { to } => Some(HistoryMessage::Dm(chat_shared::DmMessage {
            id,
            ts: m.ts,
            from: m.from.clone(),
            to: to.clone(),
            text: m.text.clone(),
            replayed: None,
            action,
        })),
        Destination::Global | Destination::Broadcast => None,
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

/// Takes one token from `bucket` (no bucket: no limit), or refuses with
/// `rate_limited` and how long to wait.
fn take_token(
    bucket: Option<&Mutex<TokenBucket>>,
    event: &str,
    message: &str,
) -> Result<(), ChatError> {
    let Some(bucket) = bucket else { return Ok(()) };
    let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
    b.try_take().map_err(|wait| {
        let ms = wait.as_millis().max(1) as u64;
        ChatError::new(ErrorCode::RateLimited, message, event).with("retryAfterMs", ms)
    })
}

impl ChatService {
    fn ns(&self) -> Option<socketioxide::operators::BroadcastOperators> {
        self.io.of(CHAT_NS)
    }

    // ------------------------------------------------------- handshake

    /// The `/chat` middleware: validates `auth`, then admits or refuses.
    /// On success it also installs the socket's event and disconnect
    /// handlers, before the namespace reply goes out, so that nothing the
    /// client sends after its CONNECT finds no handler.
    fn authenticate(&self, s: SocketRef, auth: Option<Value>) -> Result<(), ConnectRefusal> {
        let claimed = auth
            .as_ref()
            .and_then(|a| a.get("username"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let result = parse_auth(auth).and_then(|a| self.state.admit(&a, s.id).map(|adm| (a, adm)));
        let (auth, admission) = match result {
            Ok(ok) => ok,
            Err(refusal) => {
                tracing::info!(code = %refusal.code, "connect refused: {}", refusal.message);
                let mut ev = admin_event(AdminEventType::Rejected);
                ev.code = Some(refusal.code);
                ev.user = claimed;
                self.admin.send(ev);
                return Err(refusal);
            }
        };
        let bucket = |limit: Option<(f64, u32)>| {
            limit.map(|(rate, burst)| Mutex::new(TokenBucket::new(rate, burst)))
        };
        let config = &self.state.config;
        let order = Sequencer::default();
        let connect_ticket = order.ticket();
        self.transports.admit(s.id);
        let ctx = Arc::new(SocketCtx {
            _release: Release {
                state: Arc::clone(&self.state),
                transports: Arc::clone(&self.transports),
                key: admission.key.clone(),
                sid: s.id,
                fresh: !admission.recovered,
            },
            admission,
            offset: auth.offset,
            connect_ticket,
            bucket: bucket(config.rate_limit()),
            requests: bucket(config.event_limit()),
            order,
        });
        s.extensions.insert(Arc::clone(&ctx));
        {
            let svc = self.clone();
            let ctx = Arc::clone(&ctx);
            s.on_fallback(
                move |s: SocketRef,
                      Event(event): Event,
                      TryData(data): TryData<Value>,
                      ack: AckSender| {
                    let svc = svc.clone();
                    let ctx = Arc::clone(&ctx);
                    // Taken here, while the library still calls in packet order.
                    let ticket = ctx.order.ticket();
                    async move {
                        let _turn = ctx.order.turn(ticket).await;
                        svc.dispatch(&s, &ctx, &event, data.unwrap_or(Value::Null), ack)
                            .await
                    }
                },
            );
        }
        let svc = self.clone();
        s.on_disconnect(move |s: SocketRef, reason: DisconnectReason| {
            let svc = svc.clone();
            let ctx = Arc::clone(&ctx);
            async move { svc.disconnected(s, &ctx, reason).await }
        });
        Ok(())
    }

    /// The connect sequence: take over a half-open session, send `session`
    /// and the replay, join the rooms, announce presence.
    async fn connected(&self, s: SocketRef) {
        let Some(ctx) = s.extensions.get::<Arc<SocketCtx>>() else {
            tracing::warn!(sid = %s.id, "socket without admission");
            let _ = s.disconnect();
            return;
        };
        let adm = &ctx.admission;
        // The client's events wait until the session is restored.
        let turn = ctx.order.turn(ctx.connect_ticket).await;
        if let Some(old) = adm.replaced {
            self.replace(old);
        }
        self.restore(&s, &ctx).await;
        drop(turn);

        let online = self.state.online();
        tracing::info!(user = %adm.username, recovered = adm.recovered, online, "connect");
        let user = &adm.username;
        let connect = Presence::change(PresenceKind::Connect, user, None, online);
        self.presence("", connect.recovered(adm.recovered)).await;
        if adm.recovered {
            for room in &adm.rooms {
                let members = self.state.members(room);
                let join =
                    Presence::change(PresenceKind::Join, user, Some((room, members)), online);
                self.presence(room, join.recovered(true)).await;
            }
        }
        let mut ev = admin_event(if adm.recovered {
            AdminEventType::Recovered
        } else {
            AdminEventType::Connect
        });
        ev.user = Some(adm.username.clone());
        self.admin.send(ev);
    }

    /// Tells the socket that held this session before that it was taken
    /// over, and closes it.
    fn replace(&self, old: Sid) {
        let Some(old) = self.ns().and_then(|ns| ns.get_socket(old)) else {
            return;
        };
        let err = ChatError::new(
            ErrorCode::SessionReplaced,
            "this session was taken over by a new connection",
            "session",
        );
        let _ = old.emit(names::CHAT_ERROR, &err);
        let _ = old.disconnect();
    }

    /// Sends `session`, then (for a resumed session) every missed message
    /// marked `replayed`, then whatever arrived meanwhile, and only then
    /// joins the socket to its rooms, under the delivery lock: each message
    /// reaches the client once, replayed or live, and in order.
    async fn restore(&self, s: &SocketRef, ctx: &SocketCtx) {
        let adm = &ctx.admission;
        let mut replay = if adm.recovered {
            self.state.replay(&adm.key, ctx.offset.as_deref())
        } else {
            Default::default()
        };
        if let Some((after, upto)) = replay.stored {
            // Older than this process's log: read from the store. At most
            // `--replay-buffer` messages in all, the newest.
            let limit = self
                .state
                .config
                .replay_buffer
                .saturating_sub(replay.messages.len());
            match self
                .store
                .replay(&adm.key, &replay.rooms, after, upto, limit + 1)
                .await
            {
                Ok(mut older) => {
                    if older.len() > limit {
                        older.drain(..older.len() - limit);
                        replay.truncated = true;
                    }
                    older.append(&mut replay.messages);
                    replay.messages = older;
                }
                Err(e) => {
                    tracing::warn!("replay from the store: {e}");
                    replay.truncated = true;
                }
            }
        }
        let session = SessionInfo {
            sid: s.id.to_string(),
            username: adm.username.clone(),
            session: adm.token.clone(),
            recovered: adm.recovered,
            rooms: adm.rooms.clone(),
            missed: replay.messages.len() as u64,
            truncated: replay.truncated,
        };
        if !emit_paced(s, names::SESSION, &session).await {
            self.fell_behind(s, &adm.key);
            return;
        }
        if !adm.recovered {
            s.join(vec![s.id.to_string(), EVERYONE.to_owned()]);
            return;
        }
        for m in &replay.messages {
            if !emit_paced(s, m.event(), &Replayed(m)).await {
                self.fell_behind(s, &adm.key);
                return;
            }
        }
        let mut after = replay.upto;
        loop {
            let guard = self.state.delivery.lock().await;
            let (more, head) = self.state.catch_up(&adm.key, after);
            if more.len() <= CATCH_UP_UNDER_LOCK {
                for m in &more {
                    if s.emit(m.event(), &**m).is_err() {
                        self.fell_behind(s, &adm.key);
                        return;
                    }
                }
                // The rooms as they are now, not as they were at admission.
                let current = self.state.rooms_of(&adm.key);
                let mut rooms = Vec::with_capacity(current.len() + 2);
                rooms.push(s.id.to_string());
                rooms.push(EVERYONE.to_owned());
                rooms.extend(current);
                s.join(rooms);
                drop(guard);
                return;
            }
            drop(guard);
            for m in &more {
                if !emit_paced(s, m.event(), &**m).await {
                    self.fell_behind(s, &adm.key);
                    return;
                }
            }
            after = head;
        }
    }

    /// A message (or an answer) could not be queued for `s`: rather than
    /// let its client miss it without knowing, stop delivering to the
    /// socket and end its transport as an unplanned disconnect. Its session
    /// and window stay, so the client resumes from its offset and gets the
    /// rest, in order, once.
    fn fell_behind(&self, s: &SocketRef, key: &str) {
        if !self.transports.end(s) {
            return;
        }
        self.state.set_lagging(key, s.id);
        // No more live messages: a message delivered after the one it
        // missed would move its client's offset past the gap.
        s.leave_all();
        tracing::info!(user = %key, "socket fell behind: ending its transport so it resumes");
    }

    async fn disconnected(&self, s: SocketRef, ctx: &SocketCtx, reason: DisconnectReason) {
        self.transports.forget(s.id);
        let adm = &ctx.admission;
        let planned = matches!(reason, DisconnectReason::ClientNSDisconnect);
        let why = reason_str(reason);
        let Some(dep) = self.state.disconnect(&adm.key, s.id, planned) else {
            tracing::info!(user = %adm.username, reason = why, "replaced socket closed");
            return;
        };
        tracing::info!(user = %adm.username, reason = why, online = dep.online, "disconnect");
        for (room, members) in &dep.rooms {
            let leave = Presence::change(
                PresenceKind::Leave,
                &dep.username,
                Some((room, *members)),
                dep.online,
            );
            self.presence(room, leave.with_reason("disconnect")).await;
        }
        let gone = Presence::change(PresenceKind::Disconnect, &dep.username, None, dep.online);
        self.presence("", gone.with_reason(why)).await;
        let mut ev = admin_event(AdminEventType::Disconnect);
        ev.user = Some(dep.username);
        ev.reason = Some(why.into());
        self.admin.send(ev);
    }

    // ------------------------------------------------------------ presence

    /// Sends a presence change to its scope (`""`: every `/chat` socket;
    /// else that room), or folds it into the scope's summary in a storm.
    async fn presence(&self, scope: &str, p: Presence) {
        let user = p.user.as_deref().unwrap_or_default();
        match self.state.presence.admit(scope, user, p.arrives()) {
            Decision::Send => self.emit_presence(scope, &p).await,
            Decision::Folded { flush_at: None } => {}
            Decision::Folded { flush_at: Some(at) } => {
                let svc = self.clone();
                let scope = scope.to_owned();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    svc.flush_presence(&scope).await;
                });
            }
        }
    }

    async fn flush_presence(&self, scope: &str) {
        let folded = self.state.presence.take(scope);
        if folded.joined_count == 0 && folded.left_count == 0 {
            return;
        }
        let room = (!scope.is_empty()).then(|| scope.to_owned());
        let p = Presence {
            event: PresenceKind::Summary,
            user: None,
            members: room.as_ref().map(|r| self.state.members(r)),
            room,
            online: self.state.online(),
            reason: None,
            recovered: None,
            summary: Some(PresenceSummary {
                joined: folded.joined,
                left: folded.left,
                joined_count: folded.joined_count,
                left_count: folded.left_count,
            }),
        };
        self.emit_presence(scope, &p).await;
    }

    async fn emit_presence(&self, scope: &str, p: &Presence) {
        let Some(ns) = self.ns() else { return };
        let op = if scope.is_empty() {
            ns
        } else {
            ns.to(scope.to_owned())
        };
        if let Err(e) = op.emit(names::PRESENCE, p).await {
            tracing::debug!("presence emit: {e}");
        }
    }

    // ------------------------------------------------------------ events

    async fn dispatch(
        &self,
        s: &SocketRef,
        ctx: &SocketCtx,
        event: &str,
        data: Value,
        ack: AckSender,
    ) {
        let result = match ClientEvent::parse(event, data) {
            Err(e) => Err(e.to_chat_error(event)),
            Ok(ev) => self.handle(s, ctx, ev).await,
        };
        match result {
            Ok(reply) => self.answer(s, ctx, ack, &reply),
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
            self.fell_behind(s, &ctx.admission.key);
        }
    }

    /// `chat:error` to the sender, the same object in the ack. The error
    /// waits (a bounded time) for room in the sender's queue: a client that
    /// floods requests gets every refusal, paced by how fast it reads.
    async fn refuse(&self, s: &SocketRef, ctx: &SocketCtx, ack: AckSender, err: ChatError) {
        self.state.count_error();
        tracing::debug!(user = %ctx.admission.username, code = %err.code, "refused: {}", err.message);
        if !emit_paced(s, names::CHAT_ERROR, &err).await {
            self.fell_behind(s, &ctx.admission.key);
            return;
        }
        self.answer(s, ctx, ack, &AckErr::new(&err));
        let mut ev = admin_event(AdminEventType::Error);
        ev.user = Some(ctx.admission.username.clone());
        ev.code = Some(err.code);
        self.admin.send(ev);
    }

    async fn handle(
        &self,
        s: &SocketRef,
        ctx: &SocketCtx,
        ev: ClientEvent,
    ) -> Result<Reply, ChatError> {
        let name = ev.name();
        let is_message = matches!(
            ev,
            ClientEvent::RoomMessage(_)
                | ClientEvent::DmMessage(_)
                | ClientEvent::GlobalMessage(_)
                | ClientEvent::BroadcastMessage(_)
        );
        if !is_message {
            take_token(ctx.requests.as_ref(), name, "too many requests: slow down")?;
        }
        match ev {
            ClientEvent::RoomJoin(r) => self.join(s, ctx, &r.room).await,
            ClientEvent::RoomLeave(r) => self.leave(s, ctx, &r.room).await,
            ClientEvent::RoomList => Ok(Reply::Rooms(RoomListAck {
                rooms: self.state.room_list(),
            })),
            ClientEvent::PresenceGet => Ok(Reply::Presence(self.state.presence_snapshot())),
            ClientEvent::RoomMessage(m) => self.room_message(ctx, m).await,
            ClientEvent::DmMessage(m) => self.dm(ctx, m).await,
            ClientEvent::GlobalMessage(m) => {
                self.feed(s, ctx, name, &m.text, Destination::Global, m.action)
                    .await
            }
            ClientEvent::BroadcastMessage(m) => {
                self.feed(s, ctx, name, &m.text, Destination::Broadcast, m.action)
                    .await
            }
            ClientEvent::Typing(t) => self.typing(s, ctx, t).await,
            ClientEvent::History(h) => self.history(ctx, h).await,
            ClientEvent::Ping => Ok(Reply::Ping(PingAck {
                ts: crate::state::now_ms(),
            })),
            // Accounts are not served yet: as before v2, when it did not parse.
            ClientEvent::AccountPassword(_) => Err(ChatError::new(
                ErrorCode::UnknownEvent,
                format!("unknown event {name}"),
                name,
            )),
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

    fn member_room(&self, ctx: &SocketCtx, event: &str, raw: &str) -> Result<String, ChatError> {
        let room = self.room(event, raw)?;
        if !self.state.is_member(&ctx.admission.key, &room) {
            return Err(
                ChatError::new(ErrorCode::NotMember, format!("join {room} first"), event)
                    .with("room", room),
            );
        }
        Ok(room)
    }

    /// The text rules, then the rate limit: the trimmed text to send.
    fn text<'t>(&self, ctx: &SocketCtx, event: &str, text: &'t str) -> Result<&'t str, ChatError> {
        let max = self.state.config.max_text;
        let text = check_text(text, max).map_err(|e| {
            let err = ChatError::new(e.code(), e.to_string(), event);
            if e.code() == ErrorCode::MessageTooLong {
                err.with("limit", max)
            } else {
                err
            }
        })?;
        take_token(ctx.bucket.as_ref(), event, "too many messages: slow down")?;
        Ok(text)
    }

    async fn join(&self, s: &SocketRef, ctx: &SocketCtx, raw: &str) -> Result<Reply, ChatError> {
        let event = names::ROOM_JOIN;
        let room = self.room(event, raw)?;
        let adm = &ctx.admission;
        let joined = self
            .state
            .join(&adm.key, &room)
            .map_err(|code| match code {
                ErrorCode::TooManyRooms => {
                    let limit = self.state.config.max_rooms_per_user;
                    ChatError::new(code, format!("at most {limit} rooms at once"), event)
                        .with("limit", limit)
                        .with("room", room.clone())
                }
                _ => ChatError::new(code, "could not join", event),
            })?;
        s.join(room.clone());
        if joined.fresh {
            let online = self.state.online();
            let join = Presence::change(
                PresenceKind::Join,
                &adm.username,
                Some((&room, joined.count)),
                online,
            );
            self.presence(&room, join).await;
            let mut ev = admin_event(AdminEventType::Join);
            ev.user = Some(adm.username.clone());
            ev.room = Some(room.clone());
            self.admin.send(ev);
        }
        let history: Vec<chat_shared::RoomMessage> = {
            let limit = self.state.config.history;
            let mut page = joined.history;
            if page.len() < limit {
                page = self.room_page(&room, None, limit).await.0;
            }
            page.iter()
                .filter_map(|m| match history_message(m) {
                    Some(HistoryMessage::Room(r)) => Some(r),
                    _ => None,
                })
                .collect()
        };
        Ok(Reply::Joined(JoinAck {
            room,
            members: joined.members,
            history,
        }))
    }

    async fn leave(&self, s: &SocketRef, ctx: &SocketCtx, raw: &str) -> Result<Reply, ChatError> {
        let event = names::ROOM_LEAVE;
        let room = self.room(event, raw)?;
        let adm = &ctx.admission;
        let members = self.state.leave(&adm.key, &room).map_err(|code| {
            ChatError::new(code, format!("not in {room}"), event).with("room", room.clone())
        })?;
        // Announced before the socket leaves, so the leaver hears it too.
        let online = self.state.online();
        let leave = Presence::change(
            PresenceKind::Leave,
            &adm.username,
            Some((&room, members)),
            online,
        );
        self.presence(&room, leave).await;
        s.leave(room.clone());
        let mut ev = admin_event(AdminEventType::Leave);
        ev.user = Some(adm.username.clone());
        ev.room = Some(room.clone());
        self.admin.send(ev);
        Ok(Reply::Left(LeaveAck { room }))
    }

    /// Numbers, records and emits a message under the delivery lock, and
    /// queues its write to the store there too (so writes are in id
    /// order); then waits, with the lock released, until the write has
    /// committed. Recipients get it at once; the sender's ack waits for
    /// the disk. A store that cannot take writes refuses the message before
    /// anyone gets it.
    async fn deliver(
        &self,
        event_name: &str,
        from: &str,
        text: &str,
        dest: Destination,
        action: bool,
        s: Option<&SocketRef>,
    ) -> Result<Arc<MessageRecord>, ChatError> {
        let unavailable = |why: String| {
            tracing::warn!("store: {why}");
            ChatError::new(
                ErrorCode::Unavailable,
                "the server cannot store messages right now: try again",
                event_name,
            )
            .with("retryAfterMs", 1000)
        };
        if !self.store.healthy() {
            return Err(unavailable("unhealthy".into()));
        }
        let guard = self.state.delivery.lock().await;
        let msg = self.state.record(from, text, dest, action);
        if let Some(ns) = self.ns() {
            let event = msg.event();
            let recipients = match &msg.dest {
                Destination::Room(room) => ns.to(room.clone()).sockets(),
                Destination::Dm { to } => self
                    .state
                    .target(to)
                    .and_then(|t| t.sid)
                    .and_then(|sid| ns.get_socket(sid))
                    .into_iter()
                    .collect(),
                Destination::Global => ns.to(EVERYONE).sockets(),
                Destination::Broadcast => match s {
                    Some(s) => s.to(EVERYONE).sockets(),
                    None => ns.to(EVERYONE).sockets(),
                },
            };
            self.emit_each(&recipients, event, &*msg);
        }
        let committed = self.store.append(Arc::clone(&msg)).await;
        drop(guard);
        match committed {
            Ok(c) => c.await.map_err(|e| unavailable(e.to_string()))?,
            Err(e) => return Err(unavailable(e.to_string())),
        }
        Ok(msg)
    }

    /// Emits one message to each recipient, encoding it once. A recipient
    /// whose queue is full [falls behind](Self::fell_behind) rather than
    /// silently missing it, which is why this goes socket by socket instead
    /// of through a room broadcast (whose errors do not say whose queue
    /// was full).
    fn emit_each<T: Serialize + ?Sized>(&self, recipients: &[SocketRef], event: &str, payload: &T) {
        if recipients.is_empty() {
            return;
        }
        let raw = match serde_json::value::to_raw_value(payload) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::error!("cannot encode a {event}: {e}");
                return;
            }
        };
        for r in recipients {
            if let Err(socketioxide::SendError::Socket(SocketError::InternalChannelFull)) =
                r.emit(event, &raw)
                && let Some(ctx) = r.extensions.get::<Arc<SocketCtx>>()
            {
                self.fell_behind(r, &ctx.admission.key);
            }
        }
    }

    fn message_event(&self, ctx: &SocketCtx, msg: &MessageRecord, bytes: usize) {
        let mut ev = admin_event(AdminEventType::Message);
        ev.user = Some(ctx.admission.username.clone());
        ev.kind = Some(msg.kind());
        ev.bytes = Some(bytes as u64);
        match &msg.dest {
            Destination::Room(room) => ev.room = Some(room.clone()),
            Destination::Dm { to } => ev.to = Some(to.clone()),
            _ => {}
        }
        self.admin.send(ev);
    }

    async fn room_message(
        &self,
        ctx: &SocketCtx,
        m: RoomMessageRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::ROOM_MESSAGE;
        let room = self.member_room(ctx, event, &m.room)?;
        let text = self.text(ctx, event, &m.text)?;
        self.send(ctx, event, text, Destination::Room(room), m.action, None)
            .await
    }

    fn user_target(
        &self,
        ctx: &SocketCtx,
        event: &str,
        to: &str,
    ) -> Result<crate::state::Target, ChatError> {
        let target = self
            .state
            .target(to)
            .filter(|_| is_valid_username(to))
            .ok_or_else(|| {
                ChatError::new(ErrorCode::UserNotFound, format!("no user {to}"), event)
                    .with("to", to)
            })?;
        if target.key == ctx.admission.key {
            return Err(
                ChatError::new(ErrorCode::InvalidTarget, "that is you", event).with("to", to),
            );
        }
        Ok(target)
    }

    async fn dm(&self, ctx: &SocketCtx, m: DmRequest) -> Result<Reply, ChatError> {
        let event = names::DM_MESSAGE;
        let target = self.user_target(ctx, event, &m.to)?;
        let text = self.text(ctx, event, &m.text)?;
        let to = target.username;
        self.send(ctx, event, text, Destination::Dm { to }, m.action, None)
            .await
    }

    async fn feed(
        &self,
        s: &SocketRef,
        ctx: &SocketCtx,
        event: &str,
        text: &str,
        dest: Destination,
        action: bool,
    ) -> Result<Reply, ChatError> {
        let text = self.text(ctx, event, text)?;
        self.send(ctx, event, text, dest, action, Some(s)).await
    }

    /// Delivers a checked message, tells the admin feed, and returns the ack
    /// once the message is stored.
    async fn send(
        &self,
        ctx: &SocketCtx,
        event: &str,
        text: &str,
        dest: Destination,
        action: bool,
        s: Option<&SocketRef>,
    ) -> Result<Reply, ChatError> {
        let from = &ctx.admission.username;
        let msg = self.deliver(event, from, text, dest, action, s).await?;
        self.message_event(ctx, &msg, text.len());
        Ok(Reply::Sent(SentAck {
            id: msg.id.to_string(),
            ts: msg.ts,
            queued: None,
        }))
    }

    /// A page of a room's history, oldest first, and whether older
    /// messages exist: this process's newest ones from memory (they may not
    /// be committed yet), the rest from the store.
    async fn room_page(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<Arc<MessageRecord>>, bool) {
        let mut recent: Vec<Arc<MessageRecord>> = self
            .state
            .room_recent(room)
            .into_iter()
            .filter(|m| before.is_none_or(|b| m.id < b))
            .collect();
        if recent.len() > limit {
            recent.drain(..recent.len() - limit);
            return (recent, true);
        }
        let older_than = recent.first().map(|m| m.id).or(before);
        let need = limit - recent.len();
        match self.store.room_history(room, older_than, need.max(1)).await {
            Ok((mut older, more)) => {
                let more = more || older.len() > need;
                if older.len() > need {
                    older.drain(..older.len() - need);
                }
                older.append(&mut recent);
                (older, more)
            }
            Err(e) => {
                tracing::warn!("room history from the store: {e}");
                (recent, false)
            }
        }
    }

    async fn history(&self, ctx: &SocketCtx, h: HistoryRequest) -> Result<Reply, ChatError> {
        let event = names::HISTORY;
        let limit = h.effective_limit() as usize;
        let before = match h.before.as_deref() {
            None => None,
            Some(b) => Some(b.parse::<u64>().map_err(|_| {
                ChatError::new(
                    ErrorCode::InvalidPayload,
                    "before must be the id of a message",
                    event,
                )
            })?),
        };
        let (messages, more) = match h.target {
            HistoryTarget::Room(raw) => {
                let room = self.member_room(ctx, event, &raw)?;
                self.room_page(&room, before, limit).await
            }
            HistoryTarget::With(with) => {
                if !is_valid_username(&with) {
                    return Err(ChatError::new(
                        ErrorCode::UserNotFound,
                        format!("no user {with}"),
                        event,
                    )
                    .with("with", with));
                }
                // A guest sees only the DMs of its current session.
                let since = self.state.session_since(&ctx.admission.key);
                let other = chat_shared::username_key(&with);
                self.store
                    .dm_history(&ctx.admission.key, &other, before, since, limit)
                    .await
                    .map_err(|e| {
                        tracing::warn!("dm history: {e}");
                        ChatError::new(ErrorCode::Unavailable, "history is unavailable", event)
                    })?
            }
        };
        Ok(Reply::History(HistoryAck {
            messages: messages.iter().filter_map(|m| history_message(m)).collect(),
            more,
        }))
    }

    async fn typing(
        &self,
        s: &SocketRef,
        ctx: &SocketCtx,
        t: TypingRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::TYPING;
        let from = ctx.admission.username.clone();
        match t.target {
            TypingTarget::Room(raw) => {
                let room = self.member_room(ctx, event, &raw)?;
                let notice = TypingNotice {
                    from,
                    room: Some(room.clone()),
                    to: None,
                    typing: t.typing,
                };
                let _ = s.to(room).volatile().emit(event, &notice).await;
            }
            TypingTarget::User(to) => {
                let target = self.user_target(ctx, event, &to)?;
                if let (Some(sid), Some(ns)) = (target.sid, self.ns()) {
                    let notice = TypingNotice {
                        from,
                        room: None,
                        to: Some(target.username),
                        typing: t.typing,
                    };
                    let _ = ns.to(sid).volatile().emit(event, &notice).await;
                }
            }
        }
        Ok(Reply::Empty)
    }
}
