//! One simulated user: a WebSocket speaking the frames of [`crate::proto`],
//! the connect handshake, and a lightweight task that answers pings, sends
//! what the scenario tells it to and records every bench message it receives.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_shared::SessionInfo;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proto::{self, Frame};

/// A user's connection: plain TCP, or TLS for a server launched with
/// `--chat-server-tls`.
pub type Stream = tokio_util::either::Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// A user's WebSocket.
pub type Ws = WebSocketStream<Stream>;

/// The servers spoken to over TLS, by address, with the client that
/// trusts their certificate. Set when such a server is launched, read at
/// each connect.
static TLS_TARGETS: std::sync::RwLock<Vec<(SocketAddr, tokio_rustls::TlsConnector)>> =
    std::sync::RwLock::new(Vec::new());

/// Connects to `addr` over TLS from now on, with `connector`.
pub fn use_tls(addr: SocketAddr, connector: tokio_rustls::TlsConnector) {
    let mut t = TLS_TARGETS.write().unwrap_or_else(|e| e.into_inner());
    t.retain(|(a, _)| *a != addr);
    t.push((addr, connector));
}

/// Whether `addr` is spoken to over TLS.
pub fn is_tls(addr: SocketAddr) -> bool {
    tls_for(addr).is_some()
}

fn tls_for(addr: SocketAddr) -> Option<tokio_rustls::TlsConnector> {
    let t = TLS_TARGETS.read().unwrap_or_else(|e| e.into_inner());
    t.iter().find(|(a, _)| *a == addr).map(|(_, c)| c.clone())
}

/// Microseconds since the process's clock base: the send time carried in
/// bench messages, read back by the receivers of the same process.
pub fn now_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// What a user received of the bench messages since the last
/// [`Cmd::Take`].
#[derive(Debug, Default)]
pub struct Recv {
    /// Message numbers received (each once).
    pub got: HashSet<u64>,
    /// Receipts of a number already received.
    pub dups: u64,
    /// End-to-end latency of each receipt, microseconds.
    pub lat_us: Vec<u32>,
    /// Receipts flagged `replayed`.
    pub replayed: u64,
    /// Message numbers whose send was refused by the server (`ok:false`).
    pub failed: Vec<u64>,
    /// Sends whose ack said ok.
    pub acked: u64,
    /// Send-to-ack time of each ok ack, microseconds: with the on-disk
    /// store the ack waits for the commit.
    pub ack_lat_us: Vec<u32>,
    /// (v3) `message:update`s received: the change's id and when it
    /// arrived (µs of [`now_us`]), each id once.
    pub updates: HashMap<u64, u64>,
    /// `message:update`s of an id already received.
    pub update_dups: u64,
    /// Changes this user made that the server acked: (change number, the
    /// change's id, send time µs).
    pub changes_acked: Vec<(u64, u64, u64)>,
    /// Change numbers whose request the server refused.
    pub changes_failed: Vec<u64>,
    /// [`Cmd::Change`]s asking for an edit that went out as a reaction: the
    /// user had no acked message of its own yet.
    pub edits_as_reactions: u64,
    /// (With [`UserState::keep_times`]) each receipt's message number and
    /// when it arrived, µs since the epoch.
    pub at_us: Vec<(u64, u64)>,
}

/// Everything a user keeps across connections.
#[derive(Debug, Default)]
pub struct UserState {
    pub username: String,
    /// The session token from the last `session` event.
    pub session: Option<String>,
    /// The `id` of the last chat message received: the recovery offset.
    pub last_id: Option<String>,
    /// The last `session` event.
    pub info: Option<SessionInfo>,
    pub recv: Recv,
    /// `chat:error` events received.
    pub chat_errors: u64,
    /// Why the connection ended, if it was not the scenario's doing.
    pub closed: Option<String>,
    /// Sent as `auth.password` (accounts).
    pub password: Option<String>,
    /// Sent as `auth.register: true` (creates the account).
    pub register: bool,
    /// Keep when each bench message arrived (`Recv::at_us`), for figures
    /// per message (the slowest of a room's receipts).
    pub keep_times: bool,
    /// Sends awaiting their ack: (ack id, message number, send time µs).
    pending: Vec<(u64, u64, u64)>,
    next_ack: u64,
    /// (v3) The id of this user's newest acked message: what an edit
    /// changes.
    pub own_last_id: Option<String>,
    /// (v3) The reaction this user holds (message id, emoji), taken back
    /// by its next [`Cmd::Change`] of kind react.
    held_reaction: Option<(String, &'static str)>,
    /// Changes awaiting their ack: (ack id, change number, send time µs).
    pending_changes: Vec<(u64, u64, u64)>,
    /// [`Cmd::Request`]s awaiting their ack: (ack id, send time µs, reply).
    pending_requests: Vec<(u64, u64, oneshot::Sender<Answered>)>,
}

/// A connect or handshake failure.
#[derive(Debug)]
pub struct ConnectError(pub String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

fn err(e: impl std::fmt::Display) -> ConnectError {
    ConnectError(e.to_string())
}

impl UserState {
    pub fn new(username: impl Into<String>) -> Self {
        UserState {
            username: username.into(),
            ..Default::default()
        }
    }

    /// Handles one frame; returns a frame to answer with, if any.
    fn on_frame(&mut self, text: &str, delivered: &AtomicU64) -> Option<&'static str> {
        match proto::parse(text) {
            Frame::Ping => return Some("3"),
            Frame::Close => self.closed = Some("engine.io close".into()),
            Frame::Disconnected => self.closed = Some("namespace disconnect".into()),
            Frame::Event { name, rest, .. } => {
                if name == "room:message" || name == "dm:message" {
                    let (no, sent) = proto::read_bench_text(rest)?;
                    let now = now_us();
                    delivered.fetch_add(1, Ordering::Relaxed);
                    if let Some(id) = proto::str_field(rest, "id") {
                        match &mut self.last_id {
                            Some(s) => {
                                s.clear();
                                s.push_str(id)
                            }
                            None => self.last_id = Some(id.to_owned()),
                        }
                    }
                    if proto::replayed(rest) {
                        self.recv.replayed += 1;
                    }
                    if self.keep_times {
                        self.recv.at_us.push((no, now));
                    }
                    if self.recv.got.insert(no) {
                        self.recv
                            .lat_us
                            .push(now.saturating_sub(sent).min(u32::MAX as u64) as u32);
                    } else {
                        self.recv.dups += 1;
                    }
                } else if name == "session" {
                    let body = rest
                        .strip_prefix(',')
                        .and_then(|r| r.strip_suffix(']'))
                        .unwrap_or(rest);
                    if let Ok(info) = serde_json::from_str::<SessionInfo>(body) {
                        self.session = Some(info.session.clone());
                        self.info = Some(info);
                    }
                } else if name == "message:update" {
                    let id = proto::str_field(rest, "id")?.parse().ok()?;
                    delivered.fetch_add(1, Ordering::Relaxed);
                    if self.recv.updates.insert(id, now_us()).is_some() {
                        self.recv.update_dups += 1;
                    }
                } else if name == "chat:error" {
                    self.chat_errors += 1;
                }
            }
            Frame::Ack { id, args } => {
                let ok = args.contains("\"ok\":true");
                if let Some(pos) = self.pending.iter().position(|(a, _, _)| *a == id) {
                    let (_, no, sent) = self.pending.swap_remove(pos);
                    if ok {
                        self.recv.acked += 1;
                        let took = now_us().saturating_sub(sent);
                        self.recv.ack_lat_us.push(took.min(u32::MAX as u64) as u32);
                        if let Some(own) = proto::str_field(args, "id") {
                            self.own_last_id = Some(own.to_owned());
                        }
                    } else {
                        self.recv.failed.push(no);
                    }
                } else if let Some(pos) = self.pending_changes.iter().position(|p| p.0 == id) {
                    let (_, no, sent) = self.pending_changes.swap_remove(pos);
                    match proto::str_field(args, "id").and_then(|c| c.parse().ok()) {
                        Some(change) if ok => self.recv.changes_acked.push((no, change, sent)),
                        _ => self.recv.changes_failed.push(no),
                    }
                } else if let Some(pos) = self.pending_requests.iter().position(|p| p.0 == id) {
                    let (_, sent, reply) = self.pending_requests.swap_remove(pos);
                    let took = Duration::from_micros(now_us().saturating_sub(sent));
                    let _ = reply.send(Answered {
                        ack: args.to_owned(),
                        took,
                    });
                }
            }
            _ => {}
        }
        None
    }

    /// Sends still waiting for their ack.
    pub fn unacked(&self) -> usize {
        self.pending.len()
    }

    /// The frame of change number `no` (asked as `kind`), sent at `sent`
    /// µs, registered as awaiting its ack; `None` when there is nothing to
    /// change yet (no message received or sent).
    fn change_frame(&mut self, kind: ChangeKind, no: u64, sent: u64) -> Option<String> {
        let id = self.ack_id();
        let (event, payload) = match (kind, &self.own_last_id) {
            (ChangeKind::Edit, Some(own)) => (
                "message:edit",
                json!({ "id": own, "text": proto::bench_text(no, sent) }),
            ),
            _ => {
                if kind == ChangeKind::Edit {
                    self.recv.edits_as_reactions += 1;
                }
                match self.held_reaction.take() {
                    Some((target, emoji)) => (
                        "message:react",
                        json!({ "id": target, "emoji": emoji, "on": false }),
                    ),
                    None => {
                        let target = self.last_id.clone()?;
                        let emoji = REACTIONS[(no % REACTIONS.len() as u64) as usize];
                        self.held_reaction = Some((target.clone(), emoji));
                        (
                            "message:react",
                            json!({ "id": target, "emoji": emoji, "on": true }),
                        )
                    }
                }
            }
        };
        self.pending_changes.push((id, no, sent));
        Some(proto::event_frame(event, &payload, Some(id)))
    }

    fn ack_id(&mut self) -> u64 {
        self.next_ack += 1;
        self.next_ack
    }
}

/// Where a bench message goes.
#[derive(Debug, Clone)]
pub enum Dest {
    Room(Arc<str>),
    User(Arc<str>),
}

/// (v3) The reactions the bench puts on messages, in turn.
pub const REACTIONS: [&str; 5] = ["👍", "❤️", "😂", "🎉", "👀"];

/// (v3) Which change a [`Cmd::Change`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Edit the user's newest acked message (its new text a bench text);
    /// a reaction instead while it has none.
    Edit,
    /// Take back the reaction the user holds, or else react to the newest
    /// bench message it received.
    React,
}

/// The ack of a [`Cmd::Request`] and the time from writing the request
/// to reading its ack.
#[derive(Debug)]
pub struct Answered {
    /// The ack's JSON arguments.
    pub ack: String,
    pub took: Duration,
}

/// What a scenario tells a user's task.
#[derive(Debug)]
pub enum Cmd {
    /// Send bench message number `no` now (the send time is taken here).
    Send { dest: Dest, no: u64 },
    /// (v3) Make change number `no` now (the send time is taken here).
    Change { kind: ChangeKind, no: u64 },
    /// Send `event` with `payload` asking for an ack, and answer `reply`
    /// when it comes (the task keeps reading meanwhile, so several may be
    /// in flight).
    Request {
        event: &'static str,
        payload: Value,
        reply: oneshot::Sender<Answered>,
    },
    /// Hand over and reset what was received.
    Take(oneshot::Sender<Recv>),
    /// Drop the transport without a word (the task ends, returning the
    /// socket so the caller can drop it or keep it half-open).
    Cut,
    /// Planned disconnect (`41/chat,` and a close), then end.
    Leave,
}

/// The handle of a running user task.
pub struct UserHandle {
    pub tx: mpsc::UnboundedSender<Cmd>,
    pub join: JoinHandle<(UserState, Option<Ws>)>,
}

impl UserHandle {
    /// Takes what the user received since the last take (None if the task
    /// is gone or does not answer within `wait`).
    pub async fn take(&self, wait: Duration) -> Option<Recv> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Take(tx)).ok()?;
        tokio::time::timeout(wait, rx).await.ok()?.ok()
    }

    /// Ends the task with `cmd` (Cut or Leave) and returns its state.
    pub async fn finish(self, cmd: Cmd, wait: Duration) -> Option<(UserState, Option<Ws>)> {
        let _ = self.tx.send(cmd);
        let abort = self.join.abort_handle();
        match tokio::time::timeout(wait, self.join).await {
            Ok(Ok(r)) => Some(r),
            _ => {
                abort.abort();
                None
            }
        }
    }
}

fn ws_config() -> WebSocketConfig {
    // Small buffers: thousands of users live in this process.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Reads the next text frame, answering pings; `None` when the stream ends.
async fn next_text(ws: &mut Ws) -> Result<String, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None => return Err(err("closed by server")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(err(e)),
        }
    }
}

/// Connects `st.username` to `addr`: TCP, WebSocket upgrade, Engine.IO open,
/// `/chat` connect with auth (`session` and `offset` too when `resume`),
/// up to the `session` event. Returns the socket and the time it took.
pub async fn connect(
    addr: SocketAddr,
    st: &mut UserState,
    resume: bool,
    delivered: &AtomicU64,
    timeout: Duration,
) -> Result<(Ws, Duration), ConnectError> {
    let t0 = Instant::now();
    match tokio::time::timeout(timeout, connect_inner(addr, st, resume, delivered)).await {
        Ok(Ok(ws)) => Ok((ws, t0.elapsed())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(err("connect timed out")),
    }
}

async fn connect_inner(
    addr: SocketAddr,
    st: &mut UserState,
    resume: bool,
    delivered: &AtomicU64,
) -> Result<Ws, ConnectError> {
    let tcp = TcpStream::connect(addr).await.map_err(err)?;
    tcp.set_nodelay(true).map_err(err)?;
    let (url, stream) = match tls_for(addr) {
        None => (format!("ws://{addr}{}", proto::WS_PATH), Stream::Left(tcp)),
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").map_err(err)?;
            let stream = tls.connect(name, tcp).await.map_err(err)?;
            (
                format!("wss://localhost:{}{}", addr.port(), proto::WS_PATH),
                Stream::Right(stream),
            )
        }
    };
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
        .await
        .map_err(err)?;
    let open = next_text(&mut ws).await?;
    if !matches!(proto::parse(&open), Frame::Open(_)) {
        return Err(err(format!("expected the open packet, got {open}")));
    }
    let mut auth = json!({ "username": st.username });
    if let Some(p) = &st.password {
        auth["password"] = Value::String(p.clone());
    }
    if st.register {
        auth["register"] = Value::Bool(true);
    }
    if resume {
        if let Some(s) = &st.session {
            auth["session"] = Value::String(s.clone());
        }
        if let Some(o) = &st.last_id {
            auth["offset"] = Value::String(o.clone());
        }
    }
    ws.send(Message::text(proto::connect_frame(&auth)))
        .await
        .map_err(err)?;
    st.info = None;
    loop {
        let text = next_text(&mut ws).await?;
        if let Frame::ConnectError(body) = proto::parse(&text) {
            return Err(err(format!("connect_error {body}")));
        }
        if let Some(reply) = st.on_frame(&text, delivered) {
            ws.send(Message::text(reply)).await.map_err(err)?;
        }
        if st.info.is_some() {
            return Ok(ws);
        }
        if let Some(why) = st.closed.take() {
            return Err(err(why));
        }
    }
}

/// A planned leave: `41/chat,`, a WebSocket close, and then waits (at
/// most 5 s) for the server to close its side.
pub async fn leave(mut ws: Ws) -> Result<(), String> {
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        ws.send(Message::text(proto::disconnect_frame())).await?;
        ws.close(None).await?;
        while let Some(m) = ws.next().await {
            m?;
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
    match closed {
        Ok(Ok(())) | Ok(Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)) => Ok(()),
        Ok(Err(e)) => Err(format!("disconnect: {e}")),
        Err(_) => Err("disconnect timed out".to_owned()),
    }
}

/// Sends `event` with an ack id and waits (handling other frames) for the
/// ack; returns the ack's JSON arguments.
pub async fn request(
    ws: &mut Ws,
    st: &mut UserState,
    event: &str,
    payload: &Value,
    delivered: &AtomicU64,
    timeout: Duration,
) -> Result<String, ConnectError> {
    let id = st.ack_id();
    let fut = async {
        ws.send(Message::text(proto::event_frame(event, payload, Some(id))))
            .await
            .map_err(err)?;
        loop {
            let text = next_text(ws).await?;
            if let Frame::Ack { id: got, args } = proto::parse(&text)
                && got == id
            {
                return Ok(args.to_owned());
            }
            if let Some(reply) = st.on_frame(&text, delivered) {
                ws.send(Message::text(reply)).await.map_err(err)?;
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| err(format!("{event}: no ack")))?
}

/// Starts the task of a connected user.
pub fn spawn(ws: Ws, st: UserState, delivered: Arc<AtomicU64>) -> UserHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let join = tokio::spawn(run(ws, st, rx, delivered));
    UserHandle { tx, join }
}

async fn run(
    mut ws: Ws,
    mut st: UserState,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    delivered: Arc<AtomicU64>,
) -> (UserState, Option<Ws>) {
    loop {
        tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send { dest, no }) => {
                    let id = st.ack_id();
                    let sent = now_us();
                    st.pending.push((id, no, sent));
                    let text = proto::bench_text(no, sent);
                    let frame = match dest {
                        Dest::Room(r) => format!("42{},{id}[\"room:message\",{{\"room\":\"{r}\",\"text\":\"{text}\"}}]", proto::NS),
                        Dest::User(u) => format!("42{},{id}[\"dm:message\",{{\"to\":\"{u}\",\"text\":\"{text}\"}}]", proto::NS),
                    };
                    if let Err(e) = ws.send(Message::text(frame)).await {
                        st.closed = Some(format!("send: {e}"));
                        return (st, None);
                    }
                }
                Some(Cmd::Change { kind, no }) => {
                    match st.change_frame(kind, no, now_us()) {
                        Some(frame) => {
                            if let Err(e) = ws.send(Message::text(frame)).await {
                                st.closed = Some(format!("send: {e}"));
                                return (st, None);
                            }
                        }
                        // Nothing to change yet: counted as refused.
                        None => st.recv.changes_failed.push(no),
                    }
                }
                Some(Cmd::Request { event, payload, reply }) => {
                    let id = st.ack_id();
                    st.pending_requests.push((id, now_us(), reply));
                    let frame = proto::event_frame(event, &payload, Some(id));
                    if let Err(e) = ws.send(Message::text(frame)).await {
                        st.closed = Some(format!("send: {e}"));
                        return (st, None);
                    }
                }
                Some(Cmd::Take(reply)) => {
                    let _ = reply.send(std::mem::take(&mut st.recv));
                }
                Some(Cmd::Cut) => return (st, Some(ws)),
                Some(Cmd::Leave) | None => {
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        ws.send(Message::text(proto::disconnect_frame())).await?;
                        ws.close(None).await
                    })
                    .await;
                    return (st, None);
                }
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Some(reply) = st.on_frame(t.as_str(), &delivered)
                        && let Err(e) = ws.send(Message::text(reply)).await
                    {
                        st.closed = Some(format!("send: {e}"));
                        return (st, None);
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    st.closed.get_or_insert_with(|| "closed by server".into());
                    return (st, None);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    st.closed = Some(format!("read: {e}"));
                    return (st, None);
                }
            },
        }
        if st.closed.is_some() {
            return (st, None);
        }
    }
}
