//! Who a socket is: the handshake (auth, admission or refusal), the
//! connect sequence, the takeover of a half-open session, the disconnect,
//! and the guard that lets an admission go when its socket never connects.

use super::*;
use socketioxide::adapter::LocalAdapter;
use socketioxide::handler::{FromMessageParts, MessageHandler, Value as PacketValue};
use socketioxide::socket::Socket;

/// Releases an admission when its socket is dropped. The middleware admits
/// a user before socketioxide has put the socket in the namespace; if the
/// transport closes in between, the socket is dropped without any
/// disconnect handler running, and this is what lets the user go. After a
/// normal disconnect it finds the user no longer on this socket and does
/// nothing.
#[derive(Debug)]
pub(super) struct Release {
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

/// A handshake refused with `invalid_username`.
pub(super) fn bad_username(message: impl Into<String>) -> ConnectRefusal {
    ConnectRefusal::new(ErrorCode::InvalidUsername, message)
}

/// Reads the handshake's `auth` field by field, so that a wrong field is
/// refused with the code about that field.
pub(super) fn parse_auth(v: Option<Value>) -> Result<Auth, ConnectRefusal> {
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
    // (v3) A label only: anything that is not a string is left out.
    let client = obj.get("client").and_then(Value::as_str).map(str::to_owned);
    let offset = text("offset", "the id of the last message received")?;
    let password = match obj.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => {
            return Err(ConnectRefusal::new(
                ErrorCode::BadCredentials,
                "password must be a string",
            ));
        }
    };
    let token = match obj.get("token") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => {
            return Err(ConnectRefusal::new(
                ErrorCode::BadCredentials,
                "token must be a string: an API token",
            ));
        }
    };
    let register = match obj.get("register") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ConnectRefusal::new(
                ErrorCode::InvalidUsername,
                "register must be true or false",
            ));
        }
    };
    Ok(Auth {
        username: username.clone(),
        password,
        register,
        session,
        offset,
        client,
        token,
    })
}

impl ChatService {
    /// The `/chat` middleware: validates `auth`, then admits or refuses.
    /// On success it also installs the socket's event and disconnect
    /// handlers, before the namespace reply goes out, so that nothing the
    /// client sends after its CONNECT finds no handler.
    pub(super) async fn authenticate(
        &self,
        s: SocketRef,
        auth: Option<Value>,
    ) -> Result<(), ConnectRefusal> {
        let claimed = auth
            .as_ref()
            .and_then(|a| a.get("username"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let result = match parse_auth(auth) {
            Ok(a) => {
                let from = s
                    .req_parts()
                    .extensions
                    .get::<crate::http::client_addr::ClientAddr>()
                    .map(|c| c.0);
                match self.not_banned(&a, from).await {
                    Ok(()) => self.login(&a, s.id, from).await.map(|adm| (a, adm)),
                    Err(refusal) => Err(refusal),
                }
            }
            Err(refusal) => Err(refusal),
        };
        let (auth, admission) = match result {
            Ok(ok) => ok,
            Err(refusal) => {
                self.metrics.refused(refusal.code);
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
        let name = (admission.key.clone(), admission.username.clone());
        let activity = self.state.activity(&admission.key, &admission.token);
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
            ended: Default::default(),
            name: std::sync::RwLock::new(name),
            activity,
        });
        s.extensions.insert(Arc::clone(&ctx));
        s.on_fallback(OnEvent {
            svc: Arc::new(self.clone()),
            ctx: Arc::clone(&ctx),
        });
        let svc = self.clone();
        s.on_disconnect(move |s: SocketRef, reason: DisconnectReason| {
            let svc = svc.clone();
            let ctx = Arc::clone(&ctx);
            async move { svc.disconnected(s, &ctx, reason).await }
        });
        Ok(())
    }

    /// (v3) A server ban of the name (an account's or a guest's), or of
    /// guests from the client's address, refuses the connect `banned`,
    /// whatever proof it brings (password, session token).
    async fn not_banned(
        &self,
        auth: &Auth,
        from: Option<std::net::IpAddr>,
    ) -> Result<(), ConnectRefusal> {
        let p = self.moderation.current().await.map_err(|e| {
            tracing::warn!("moderation: {e}");
            ConnectRefusal::new(
                ErrorCode::Unavailable,
                "the server cannot reach its store: try again",
            )
        })?;
        let now = crate::clock::now_ms();
        let key = chat_shared::username_key(&auth.username);
        let refusal = |ban: &crate::live::policy::Sanction| {
            let err = moderation::sanctioned(ErrorCode::Banned, names::SESSION, ban, None);
            ConnectRefusal::new(ErrorCode::Banned, err.message)
        };
        if let Some(ban) = p.server_ban(&key, now) {
            return Err(refusal(ban));
        }
        if let Some(addr) = from
            && let Some(ban) = p.address_ban(&addr.to_string(), now)
            && !matches!(self.store.account(&key).await, Ok(Some(_)))
        {
            // Not this name's ban: its address's, for guests.
            let mut text = "guests from your address are banned from this server".to_owned();
            match ban.until {
                Some(u) => text.push_str(&format!(
                    " for {} more seconds",
                    u.saturating_sub(now).div_ceil(1000)
                )),
                None => text.push_str(" until it is lifted"),
            }
            if let Some(r) = &ban.reason {
                text.push_str(&format!(" ({r})"));
            }
            text.push_str(": log in with an account");
            return Err(ConnectRefusal::new(ErrorCode::Banned, text));
        }
        Ok(())
    }

    /// The connect sequence: take over a half-open session, send `session`
    /// and the replay, join the rooms, announce presence.
    pub(super) async fn connected(&self, s: SocketRef) {
        let Some(ctx) = s.extensions.get::<Arc<SocketCtx>>() else {
            tracing::warn!(sid = %s.id, "socket without admission");
            let _ = s.disconnect();
            return;
        };
        let adm = &ctx.admission;
        // The client's events wait until the session is restored.
        let turn = ctx.order.turn(ctx.connect_ticket).await;
        if !adm.recovered && !adm.account {
            // A new holder of a guest name starts with no blocks or
            // invites of the last one.
            self.forget_guest(&adm.key).await;
        }
        if let Some(old) = adm.replaced {
            self.replace(old);
        }
        // Every node lists the user before it hears it is connected.
        self.sync_presence().await;
        self.restore(&s, &ctx).await;
        drop(turn);

        let online = self.state.online();
        tracing::info!(user = %adm.username, recovered = adm.recovered, online, "connect");
        if !adm.first || (adm.account && self.live_elsewhere(&adm.key, &adm.token).await) {
            // (v3) Another client of the account is connected (here or on
            // another node): presence counts people, and it was here
            // already.
            return;
        }
        let user = &adm.username;
        let connect = Presence::change(PresenceKind::Connect, user, None, online);
        self.presence("", connect.recovered(adm.recovered)).await;
        // A resumed session's rooms, or a fresh account session's
        // remembered ones: the rooms see the user come back (those it
        // was removed from while away excepted).
        {
            let now_in = self.state.rooms_of(&adm.key);
            for room in adm.rooms.iter().filter(|r| now_in.contains(r)) {
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
    pub(super) fn replace(&self, old: Sid) {
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

    pub(super) async fn disconnected(
        &self,
        s: SocketRef,
        ctx: &SocketCtx,
        reason: DisconnectReason,
    ) {
        self.transports.forget(s.id);
        let adm = ctx.me();
        let planned = matches!(reason, DisconnectReason::ClientNSDisconnect)
            || ctx.ended.load(std::sync::atomic::Ordering::Relaxed);
        let why = reason_str(reason);
        self.metrics.disconnected(why);
        let Some(dep) = self.state.disconnect(&adm.key, s.id, planned) else {
            tracing::info!(user = %adm.username, reason = why, "replaced socket closed");
            return;
        };
        // No node lists the user as live once anyone hears it left (a DM
        // to it is then `queued`).
        self.sync_presence().await;
        if !dep.last || (adm.account && self.live_elsewhere(&adm.key, &ctx.admission.token).await) {
            // (v3) Another client of the account is still connected.
            tracing::info!(user = %adm.username, reason = why, "one of several sessions disconnected");
            return;
        }
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
}

/// The `/chat` socket's handler of every client event. It shares one
/// service handle among the socket's events (each event then clones one
/// pointer rather than every handle the service holds), and runs each
/// through [`run_or_spawn`] rather than as a task of its own.
struct OnEvent {
    svc: Arc<ChatService>,
    ctx: Arc<SocketCtx>,
}

impl MessageHandler<LocalAdapter, ()> for OnEvent {
    fn call(&self, s: Arc<Socket<LocalAdapter>>, mut v: PacketValue, ack_id: Option<i64>) {
        let event = match Event::from_message_parts(&s, &mut v, &ack_id) {
            Ok(Event(event)) => event,
            Err(e) => {
                tracing::debug!(sid = %s.id, "event without a name: {e}");
                return;
            }
        };
        let Ok(TryData(data)) = TryData::<Value>::from_message_parts(&s, &mut v, &ack_id);
        let Ok(ack) = AckSender::from_message_parts(&s, &mut v, &ack_id);
        let s = SocketRef::from(s);
        let svc = Arc::clone(&self.svc);
        let ctx = Arc::clone(&self.ctx);
        // Taken here, while the library still calls in packet order.
        let ticket = ctx.order.ticket();
        run_or_spawn(async move {
            let mut turn = Some(ctx.order.turn(ticket).await);
            let data = data.unwrap_or(Value::Null);
            svc.dispatch(&s, &ctx, &event, data, ack, &mut turn).await
        });
    }
}

/// Runs an event's handler as far as it goes without waiting, here, in
/// the task that read the packet; only a handler that has to wait (for its
/// turn, a lock, a full queue, a read) becomes a task of its own. Most
/// events finish on that first step (a message's ack is sent when its
/// commit is, not by its handler), so they cost no task. A panic in that
/// step is caught here, as the runtime would catch it in a task.
fn run_or_spawn(handler: impl Future<Output = ()> + Send + 'static) {
    let mut handler = Box::pin(handler);
    // Woken by nothing: a handler still pending is spawned, and the
    // runtime's first poll of that task registers its real waker.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handler.as_mut().poll(&mut cx)
    }));
    match step {
        Ok(std::task::Poll::Ready(())) => {}
        Ok(std::task::Poll::Pending) => {
            tokio::spawn(handler);
        }
        Err(_) => tracing::error!("an event handler panicked"),
    }
}
