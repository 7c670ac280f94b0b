//! The network task: the one owner of the rust_socketio client. It talks to
//! the app only through two tokio channels: [`NetCommand`]s in, typed
//! [`NetEvent`]s out. Nothing here ever blocks the app.
//!
//! The traps of rust_socketio 0.6.0 (see the project's library notes) and how
//! each is handled:
//! - `connect()` returns before the server accepts the namespace: nothing is
//!   emitted before `Event::Connect` arrives (with a timer).
//! - A refused connect is an `Event::Error` whose text carries the
//!   `connect_error` JSON: parsed into a [`ConnectRefusal`].
//! - Acks: the crate never calls back on a timeout, so every ack is a
//!   `oneshot` raced against `tokio::time::timeout`.
//! - Callbacks only push into a channel; every emit happens in this task.
//! - A dead transport may show as nothing at all: an acked `ping` (contract
//!   v2, O(1) for the server) every few seconds is the liveness check.
//! - A connection attempt that fails before any Socket.IO exchange is told
//!   apart (refused, unreachable, name not resolved, TLS) from the error
//!   text the crate passes up ([`classify_failure`]).
//! - `--ca-file`: the crate takes a `native_tls::TlsConnector` for both of
//!   its transports (`ClientBuilder::tls_config`); one with the extra root
//!   certificate is built at start-up.
//! - Reconnection is done here, not by the crate: the crate's own reconnect
//!   does not retry a failed first connect, leaves a zombie after a
//!   server-side disconnect, cannot be told about a transport that our
//!   liveness check found dead, and has an unbounded back-off after 15
//!   minutes. So each attempt builds a fresh client with
//!   `reconnect(false)`, whose `auth` carries `{username, session, offset}`
//!   (the token from the last `session` event and the id of the last message
//!   received) — what `on_reconnect` would have set — and the old client is
//!   disconnected. The back-off doubles from `backoff_min` up to the cap
//!   `backoff_max`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_shared::{
    AckError, Auth, CHAT_NS, ClientEvent, ConnectRefusal, ErrorCode, ServerEvent, parse_ack,
};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

use crate::msg::{AckReply, ConnectFailure, NetCommand, NetEvent, id_order};
use crate::password::Password;

/// Timings of the network task.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Like `http://127.0.0.1:3000`.
    pub url: String,
    /// Other nodes of the same cluster: when an attempt on one fails, the
    /// next one is tried (in turn, back to `url`), and the session resumes
    /// there.
    pub fallbacks: Vec<String>,
    pub username: String,
    /// Sent as `auth.password` (an account's name needs it).
    pub password: Option<Password>,
    /// Sent as `auth.register: true` until a session is established: the
    /// account is created once, then this is a plain login.
    pub register: bool,
    /// How long to wait for an ack.
    pub ack_timeout: Duration,
    /// How long an attempt may take up to `Event::Connect`.
    pub connect_timeout: Duration,
    /// Time between two liveness checks.
    pub liveness_interval: Duration,
    /// How long a liveness check may go unanswered before the transport is
    /// declared dead.
    pub liveness_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Trusts this connector's certificate authorities for `https://` (from
    /// `--ca-file`); `None`: the system's.
    pub tls: Option<native_tls::TlsConnector>,
}

impl NetConfig {
    pub fn new(url: &str, username: &str) -> NetConfig {
        NetConfig {
            url: url.to_owned(),
            fallbacks: Vec::new(),
            username: username.to_owned(),
            password: None,
            register: false,
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            liveness_interval: Duration::from_secs(5),
            liveness_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            tls: None,
        }
    }

    /// The wait before attempt `attempt` (1-based) after a failure.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.backoff_min
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Starts the network task; returns its command sender and event receiver.
pub fn spawn(
    config: NetConfig,
) -> (
    mpsc::UnboundedSender<NetCommand>,
    mpsc::UnboundedReceiver<NetEvent>,
) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(config, cmd_rx, ev_tx));
    (cmd_tx, ev_rx)
}

/// What the crate's callbacks push: the only thing they do.
#[derive(Debug)]
enum Raw {
    Connect,
    Close,
    Error(String),
    Event(String, Value),
    /// An ack arrived: the transport is alive.
    Contact,
}

/// How one connection ended.
enum Outcome {
    Quit,
    Refused(ConnectRefusal),
    /// Lost; `was_live` if a session had been established on it.
    Lost {
        was_live: bool,
    },
    /// The user chose another name while connecting.
    Renamed(String),
    /// Try again at once (a password was given).
    Retry,
    /// Claim the name (`/register`) on a new connection that takes this
    /// session over; the old client is kept until the server closes it.
    Claim(Password, Client),
}

/// What a reconnect must present to resume.
#[derive(Debug, Default)]
struct Resume {
    session: Option<String>,
    offset: Option<String>,
    last_contact: Option<Instant>,
    /// A `session` event arrived on the last connection.
    established: bool,
}

/// Tells why a connection attempt failed from the library's error text (its
/// message and debug form, which carry the OS and TLS errors underneath).
pub fn classify_failure(text: &str) -> ConnectFailure {
    let t = text.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    // A JSON object where the handshake's first packet should be (`{` is
    // 123): the server refused the handshake with an error body.
    if has(&[
        "status code: 429",
        "429 too many requests",
        "invalidpacketid(123)",
    ]) {
        ConnectFailure::TurnedAway
    } else if has(&[
        "connection refused",
        "os error 111",
        "os error 61",
        "os error 10061",
    ]) {
        ConnectFailure::Refused
    } else if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no address associated",
        "nodename nor servname",
        "temporary failure in name resolution",
    ]) {
        ConnectFailure::NameNotResolved
    } else if has(&["illegal handshake", "invalid handshake"]) {
        // Engine.IO's handshake, not TLS's: something else answered.
        ConnectFailure::Protocol
    } else if has(&["certificate", "tls", "ssl", "handshake"]) {
        ConnectFailure::Tls
    } else if has(&[
        "no route to host",
        "network is unreachable",
        "host is unreachable",
        "timed out",
        "os error 113",
        "os error 101",
    ]) {
        ConnectFailure::Unreachable
    } else if has(&[
        "invalid packet",
        "invalid handshake",
        "status",
        "404",
        "unexpected",
    ]) {
        ConnectFailure::Protocol
    } else {
        ConnectFailure::Other
    }
}

const CONNECT_ERROR_PREFIX: &str = "Received an ConnectError frame: ";

/// Reads the `Event::Error` text of a refused connect.
pub fn parse_connect_error(text: &str) -> Option<ConnectRefusal> {
    let json = text.strip_prefix(CONNECT_ERROR_PREFIX)?;
    let message = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(o)) => o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or(json)
            .to_owned(),
        Ok(Value::String(s)) => s,
        _ => json.to_owned(),
    };
    Some(ConnectRefusal::parse(&message))
}

async fn run(
    mut config: NetConfig,
    mut cmds: mpsc::UnboundedReceiver<NetCommand>,
    events: mpsc::UnboundedSender<NetEvent>,
) {
    let mut resume = Resume::default();
    let mut attempt = 0u32;
    let servers: Vec<String> = std::iter::once(config.url.clone())
        .chain(config.fallbacks.iter().cloned())
        .collect();
    let mut current = 0usize;
    // Servers that failed in a row: once all have, wait before the next round.
    let mut failed_in_round = 0usize;
    // A `/register` in progress: the password this client had before it.
    let mut claiming: Option<Option<Password>> = None;
    loop {
        attempt += 1;
        let _ = events.send(NetEvent::Connecting {
            attempt,
            last_contact: resume.last_contact,
        });
        resume.established = false;
        let outcome = connect_once(&mut config, &mut resume, &mut cmds, &events).await;
        if resume.established {
            // The account exists now: from here on it is a plain login.
            config.register = false;
            claiming = None;
            failed_in_round = 0;
        }
        let wait = match outcome {
            Outcome::Quit => return,
            Outcome::Refused(refusal) => {
                if let Some(before) = claiming.take() {
                    // The claim was refused: the session is still mine; go
                    // back to it as I was.
                    config.register = false;
                    config.password = before;
                    let _ = events.send(NetEvent::Refused {
                        refusal,
                        retrying: true,
                    });
                    attempt = 0;
                    continue;
                }
                let refusal = if config.register && refusal.code == ErrorCode::UsernameTaken {
                    // Registering a name that has an account: maybe mine.
                    config.register = false;
                    ConnectRefusal::new(
                        ErrorCode::AuthRequired,
                        format!("{}: log in with its password instead", refusal.message),
                    )
                } else {
                    refusal
                };
                let retrying = matches!(
                    refusal.code,
                    ErrorCode::UsernameTaken | ErrorCode::ServerFull
                );
                let _ = events.send(NetEvent::Refused {
                    refusal: refusal.clone(),
                    retrying,
                });
                if refusal.code == ErrorCode::InvalidSession {
                    // The token is not mine to use: try again without it.
                    resume.session = None;
                    resume.offset = None;
                } else if !retrying {
                    // Stop: only the user can fix this (a password, a name).
                    match wait_for_fix(&mut cmds, &events).await {
                        None => return,
                        Some(fix) => {
                            apply_fix(&mut config, &mut resume, fix);
                            attempt = 0;
                            continue;
                        }
                    }
                }
                config.backoff_max
            }
            Outcome::Lost { was_live: true } => {
                attempt = 0;
                // Right away the first time: the server may simply be fine.
                Duration::from_millis(100)
            }
            Outcome::Lost { was_live: false } => {
                if servers.len() > 1 {
                    // This node cannot be reached: the next one, at once
                    // while there are others to try in this round.
                    current = (current + 1) % servers.len();
                    config.url = servers[current].clone();
                    tracing::info!(url = %config.url, "trying the next server");
                    failed_in_round += 1;
                    if failed_in_round < servers.len() {
                        continue;
                    }
                    failed_in_round = 0;
                }
                config.backoff(attempt)
            }
            Outcome::Renamed(name) => {
                rename(&mut config, &mut resume, name);
                attempt = 0;
                continue;
            }
            Outcome::Retry => {
                attempt = 0;
                continue;
            }
            Outcome::Claim(password, old) => {
                claiming = Some(config.password.replace(password));
                config.register = true;
                // Kept open (not disconnected, which would end the session)
                // until the server closes it for the new connection.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(old);
                });
                attempt = 0;
                continue;
            }
        };
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                cmd = cmds.recv() => match cmd {
                    None | Some(NetCommand::Shutdown) => return,
                    Some(cmd @ (NetCommand::Rename(_) | NetCommand::Login(_) | NetCommand::Register(_))) => {
                        apply_fix(&mut config, &mut resume, cmd);
                        attempt = 0;
                        break;
                    }
                    Some(NetCommand::SetPassword(p)) => config.password = Some(p),
                    Some(cmd) => refuse_offline(cmd, &events),
                },
            }
        }
    }
}

/// Waits for a command that may fix a refusal (a name, a password), or
/// `None` at shutdown; refuses requests meanwhile.
async fn wait_for_fix(
    cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::UnboundedSender<NetEvent>,
) -> Option<NetCommand> {
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            NetCommand::Shutdown => return None,
            NetCommand::Rename(_) | NetCommand::Login(_) | NetCommand::Register(_) => {
                return Some(cmd);
            }
            other => refuse_offline(other, events),
        }
    }
    None
}

/// Applies a new name or password to the next attempts.
fn apply_fix(config: &mut NetConfig, resume: &mut Resume, fix: NetCommand) {
    match fix {
        NetCommand::Rename(name) => rename(config, resume, name),
        NetCommand::Login(p) | NetCommand::SetPassword(p) => config.password = Some(p),
        NetCommand::Register(p) => {
            config.password = Some(p);
            config.register = true;
        }
        _ => {}
    }
}

/// The next attempts connect as `name`, without the old name's session.
fn rename(config: &mut NetConfig, resume: &mut Resume, name: String) {
    config.username = name;
    resume.session = None;
    resume.offset = None;
}

/// Without a connection, requests fail at once with `NotSent` (the app
/// keeps own messages in its outbox).
fn refuse_offline(cmd: NetCommand, events: &mpsc::UnboundedSender<NetEvent>) {
    if let NetCommand::Request { req, .. } = cmd {
        let _ = events.send(NetEvent::Ack {
            req,
            result: Err(AckError::NotSent("not connected".into())),
        });
    }
}

/// Requests still waiting for their turn were never sent: each is
/// answered as such (own messages go back to the outbox).
fn refuse_waiting(waiting: VecDeque<(u64, ClientEvent)>, events: &mpsc::UnboundedSender<NetEvent>) {
    for (req, _) in waiting {
        let _ = events.send(NetEvent::Ack {
            req,
            result: Err(AckError::NotSent("connection lost".into())),
        });
    }
}

async fn idle_until_shutdown(
    cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::UnboundedSender<NetEvent>,
) {
    while let Some(cmd) = cmds.recv().await {
        if cmd == NetCommand::Shutdown {
            return;
        }
        refuse_offline(cmd, events);
    }
}

fn build(config: &NetConfig, resume: &Resume, raw: mpsc::UnboundedSender<Raw>) -> ClientBuilder {
    let auth = Auth {
        username: config.username.clone(),
        password: config.password.as_ref().map(|p| p.expose().to_owned()),
        register: config.register.then_some(true),
        session: resume.session.clone(),
        offset: resume.offset.clone(),
    };
    let auth = serde_json::to_value(&auth).unwrap_or(Value::Null);
    let (on_connect, on_close, on_error, on_any) = (raw.clone(), raw.clone(), raw.clone(), raw);
    let mut builder = ClientBuilder::new(config.url.clone());
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(tls.clone());
    }
    builder
        .namespace(CHAT_NS)
        .auth(auth)
        .reconnect(false)
        .reconnect_on_disconnect(false)
        .on(Event::Connect, move |_, _| {
            let _ = on_connect.send(Raw::Connect);
            async {}.boxed()
        })
        .on(Event::Close, move |_, _| {
            let _ = on_close.send(Raw::Close);
            async {}.boxed()
        })
        .on(Event::Error, move |payload, _| {
            let text = match payload_value(payload) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let _ = on_error.send(Raw::Error(text));
            async {}.boxed()
        })
        .on_any(move |event, payload, _| {
            let _ = on_any.send(Raw::Event(String::from(event), payload_value(payload)));
            async {}.boxed()
        })
}

/// The one JSON value of a payload (`Text([v])` → `v`).
fn payload_value(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if values.len() == 1 => values.pop().unwrap_or(Value::Null),
        Payload::Text(values) => Value::Array(values),
        #[allow(deprecated)]
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Payload::Binary(_) => Value::Null,
    }
}

/// Disconnects an old client in the background: on a dead transport this
/// may take long or fail, and it must not hold up the next attempt.
fn discard(client: Client) {
    tokio::spawn(async move {
        let _ = timeout(Duration::from_secs(2), client.disconnect()).await;
    });
}

/// Sends an acked event; the answer (or `Timeout`) goes to `reply`.
async fn emit_acked(
    client: &Client,
    event: &ClientEvent,
    ack_timeout: Duration,
    contact: mpsc::UnboundedSender<Raw>,
) -> Result<oneshot::Receiver<Value>, AckError> {
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let callback = move |payload: Payload, _: Client| {
        if let Ok(mut slot) = tx.lock()
            && let Some(tx) = slot.take()
        {
            let _ = tx.send(payload_value(payload));
        }
        let _ = contact.send(Raw::Contact);
        async {}.boxed()
    };
    match timeout(
        ack_timeout,
        client.emit_with_ack(event.name(), event.payload(), ack_timeout, callback),
    )
    .await
    {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(AckError::NotSent(e.to_string())),
        Err(_) => Err(AckError::NotSent("send timed out".into())),
    }
}

fn typed_ack(event: &ClientEvent, v: Value) -> Result<AckReply, AckError> {
    Ok(match event {
        ClientEvent::RoomJoin(_) => AckReply::Joined(parse_ack(v)?),
        ClientEvent::RoomLeave(_) => AckReply::Left(parse_ack(v)?),
        ClientEvent::RoomList => AckReply::Rooms(parse_ack(v)?),
        ClientEvent::PresenceGet => AckReply::Presence(parse_ack(v)?),
        ClientEvent::RoomMessage(_)
        | ClientEvent::DmMessage(_)
        | ClientEvent::GlobalMessage(_)
        | ClientEvent::BroadcastMessage(_) => AckReply::Sent(parse_ack(v)?),
        ClientEvent::Typing(_) => {
            parse_ack::<chat_shared::EmptyAck>(v)?;
            AckReply::Done
        }
        ClientEvent::History(_) => AckReply::History(parse_ack(v)?),
        ClientEvent::Ping => {
            parse_ack::<chat_shared::PingAck>(v)?;
            AckReply::Done
        }
        ClientEvent::AccountPassword(_) => {
            parse_ack::<chat_shared::EmptyAck>(v)?;
            AckReply::Done
        }
    })
}

async fn wait_ack(rx: oneshot::Receiver<Value>, limit: Duration) -> Result<Value, AckError> {
    match timeout(limit, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) | Err(_) => Err(AckError::Timeout),
    }
}

fn message_id(ev: &ServerEvent) -> Option<&str> {
    match ev {
        ServerEvent::RoomMessage(m) => Some(&m.id),
        ServerEvent::DmMessage(m) => Some(&m.id),
        ServerEvent::GlobalMessage(m) | ServerEvent::BroadcastMessage(m) => Some(&m.id),
        _ => None,
    }
}

async fn connect_once(
    config: &mut NetConfig,
    resume: &mut Resume,
    cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::UnboundedSender<NetEvent>,
) -> Outcome {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel();
    let builder = build(config, resume, raw_tx.clone());
    let client = match timeout(config.connect_timeout, builder.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let text = format!("{e} {e:?}");
            tracing::debug!("connect failed: {text}");
            let _ = events.send(NetEvent::Failed {
                failure: classify_failure(&text),
            });
            return Outcome::Lost { was_live: false };
        }
        Err(_) => {
            let _ = events.send(NetEvent::Failed {
                failure: ConnectFailure::Unreachable,
            });
            return Outcome::Lost { was_live: false };
        }
    };

    // Nothing may be emitted before the server accepts the namespace.
    let deadline = Instant::now() + config.connect_timeout;
    loop {
        tokio::select! {
            raw = raw_rx.recv() => match raw {
                Some(Raw::Connect) => break,
                Some(Raw::Error(text)) => {
                    if let Some(refusal) = parse_connect_error(&text) {
                        discard(client);
                        return Outcome::Refused(refusal);
                    }
                    tracing::debug!("error while connecting: {text}");
                }
                Some(Raw::Close) | None => {
                    discard(client);
                    return Outcome::Lost { was_live: false };
                }
                Some(Raw::Event(..)) | Some(Raw::Contact) => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                discard(client);
                return Outcome::Lost { was_live: false };
            }
            cmd = cmds.recv() => match cmd {
                None | Some(NetCommand::Shutdown) => {
                    let _ = timeout(Duration::from_secs(2), client.disconnect()).await;
                    return Outcome::Quit;
                }
                Some(NetCommand::Rename(name)) => {
                    discard(client);
                    return Outcome::Renamed(name);
                }
                Some(NetCommand::Login(p)) => {
                    config.password = Some(p);
                    discard(client);
                    return Outcome::Retry;
                }
                Some(NetCommand::Register(p)) => {
                    config.password = Some(p);
                    config.register = true;
                    discard(client);
                    return Outcome::Retry;
                }
                Some(NetCommand::SetPassword(p)) => config.password = Some(p),
                Some(cmd) => refuse_offline(cmd, events),
            },
        }
    }

    let mut live = false;
    resume.last_contact = Some(Instant::now());
    // Liveness: one check in flight at a time; its answer comes back here.
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel::<Result<AckReply, AckError>>();
    let mut probe_in_flight = false;
    let mut next_probe = Instant::now() + config.liveness_interval;
    // Requests go out one at a time: rust_socketio 0.6 picks ack ids at
    // random in 0..999, and two in flight with the same id get each
    // other's answers and kill its reader. The turn comes back here.
    let mut waiting: VecDeque<(u64, ClientEvent)> = VecDeque::new();
    let mut request_in_flight = false;
    let (turn_tx, mut turn_rx) = mpsc::unbounded_channel::<()>();
    let outcome = loop {
        if live
            && !request_in_flight
            && let Some((req, event)) = waiting.pop_front()
        {
            match emit_acked(&client, &event, config.ack_timeout, raw_tx.clone()).await {
                Ok(rx) => {
                    request_in_flight = true;
                    let events = events.clone();
                    let turn_tx = turn_tx.clone();
                    let limit = config.ack_timeout;
                    tokio::spawn(async move {
                        let result = wait_ack(rx, limit).await.and_then(|v| typed_ack(&event, v));
                        let _ = events.send(NetEvent::Ack { req, result });
                        let _ = turn_tx.send(());
                    });
                }
                Err(e) => {
                    let _ = events.send(NetEvent::Ack {
                        req,
                        result: Err(e),
                    });
                    break Outcome::Lost { was_live: live };
                }
            }
        }
        // The check also waits for its turn while a request is out, unless
        // nothing has been heard for a whole interval.
        let probe_at = match resume.last_contact {
            Some(t) if request_in_flight => next_probe.max(t + config.liveness_interval),
            _ => next_probe,
        };
        tokio::select! {
            raw = raw_rx.recv() => match raw {
                Some(Raw::Event(name, value)) => {
                    resume.last_contact = Some(Instant::now());
                    let ev = match ServerEvent::parse(&name, value) {
                        Ok(ev) => ev,
                        Err(e) => {
                            tracing::debug!("ignored server event {name}: {e}");
                            continue;
                        }
                    };
                    if let Some(id) = message_id(&ev) {
                        let newer = match resume.offset.as_deref() {
                            Some(old) => id_order(old, id) != Some(std::cmp::Ordering::Greater),
                            None => true,
                        };
                        if newer {
                            resume.offset = Some(id.to_owned());
                        }
                    }
                    let replaced = matches!(&ev, ServerEvent::Error(e) if e.code == ErrorCode::SessionReplaced);
                    if let ServerEvent::Session(s) = &ev {
                        resume.session = Some(s.session.clone());
                        resume.established = true;
                        live = true;
                    }
                    let _ = events.send(NetEvent::Server(ev));
                    if replaced {
                        // Another client took this session over: fighting
                        // back would make the two take turns forever.
                        discard(client);
                        refuse_waiting(std::mem::take(&mut waiting), events);
                        let _ = events.send(NetEvent::Refused {
                            refusal: ConnectRefusal::new(ErrorCode::SessionReplaced, "this session was taken over by another client"),
                            retrying: false,
                        });
                        idle_until_shutdown(cmds, events).await;
                        return Outcome::Quit;
                    }
                }
                Some(Raw::Error(text)) => {
                    if let Some(refusal) = parse_connect_error(&text) {
                        break Outcome::Refused(refusal);
                    }
                    // The transport may be dying: check now.
                    tracing::debug!("transport error: {text}");
                    next_probe = Instant::now();
                }
                Some(Raw::Close) | None => break Outcome::Lost { was_live: live },
                Some(Raw::Contact) => resume.last_contact = Some(Instant::now()),
                Some(Raw::Connect) => {}
            },
            cmd = cmds.recv() => match cmd {
                None | Some(NetCommand::Shutdown) => {
                    let _ = timeout(Duration::from_secs(2), client.disconnect()).await;
                    return Outcome::Quit;
                }
                Some(NetCommand::Rename(name)) => {
                    if !live {
                        break Outcome::Renamed(name);
                    }
                }
                Some(NetCommand::SetPassword(p)) => config.password = Some(p),
                Some(NetCommand::Login(p)) => {
                    config.password = Some(p);
                    if !live {
                        break Outcome::Retry;
                    }
                }
                Some(NetCommand::Register(p)) => {
                    if live {
                        break Outcome::Claim(p, client.clone());
                    }
                    config.password = Some(p);
                    config.register = true;
                    break Outcome::Retry;
                }
                Some(NetCommand::Volatile(ev)) => {
                    if !live {
                        continue;
                    }
                    match timeout(config.ack_timeout, client.emit(ev.name(), ev.payload())).await {
                        Ok(Ok(())) => {}
                        _ => break Outcome::Lost { was_live: live },
                    }
                }
                Some(NetCommand::Request { req, event }) => {
                    if !live {
                        refuse_offline(NetCommand::Request { req, event }, events);
                        continue;
                    }
                    waiting.push_back((req, event));
                }
            },
            Some(()) = turn_rx.recv() => request_in_flight = false,
            _ = tokio::time::sleep_until(probe_at), if !probe_in_flight => {
                probe_in_flight = true;
                next_probe = Instant::now() + config.liveness_interval;
                // `ping` costs the server O(1), unlike `presence:get`.
                let event = ClientEvent::Ping;
                match emit_acked(&client, &event, config.liveness_timeout, raw_tx.clone()).await {
                    Ok(rx) => {
                        let probe_tx = probe_tx.clone();
                        let limit = config.liveness_timeout;
                        tokio::spawn(async move {
                            let result = wait_ack(rx, limit).await.and_then(|v| typed_ack(&event, v));
                            let _ = probe_tx.send(result);
                        });
                    }
                    Err(_) => break Outcome::Lost { was_live: live },
                }
            }
            Some(result) = probe_rx.recv() => {
                probe_in_flight = false;
                match result {
                    // An answer, even a refusal, proves the transport alive.
                    Ok(_) | Err(AckError::Refused(_)) | Err(AckError::Malformed(_)) => {
                        resume.last_contact = Some(Instant::now());
                    }
                    Err(AckError::Timeout) | Err(AckError::NotSent(_)) => {
                        tracing::debug!("liveness check unanswered: the transport is dead");
                        break Outcome::Lost { was_live: live };
                    }
                }
            }
        }
    };
    refuse_waiting(waiting, events);
    match &outcome {
        // No planned disconnect: that would end the session being claimed.
        // The server closes the old connection once the new one takes over.
        Outcome::Claim(..) => {}
        _ => discard(client),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connects_are_read_from_the_error_text() {
        let r = parse_connect_error(
            r#"Received an ConnectError frame: {"message":"username_taken: alice is in use"}"#,
        );
        assert_eq!(
            r,
            Some(ConnectRefusal::new(
                ErrorCode::UsernameTaken,
                "alice is in use"
            ))
        );
        let r = parse_connect_error(
            r#"Received an ConnectError frame: {"message":"Invalid namespace"}"#,
        );
        assert_eq!(r.map(|r| r.code), Some(ErrorCode::Unknown));
        assert_eq!(
            parse_connect_error("Received an ConnectError frame: \"No error message provided\"")
                .map(|r| r.message),
            Some("No error message provided".to_owned())
        );
        assert_eq!(parse_connect_error("some transport error"), None);
    }

    #[test]
    fn connect_failures_are_classified_from_the_error_text() {
        use ConnectFailure::*;
        let cases = [
            (
                "error sending request: tcp connect error: Connection refused (os error 111)",
                Refused,
            ),
            (
                "dns error: failed to lookup address information: Name or service not known",
                NameNotResolved,
            ),
            (
                "error trying to connect: error:0A00010B:SSL routines:ssl3_get_record:wrong version number",
                Tls,
            ),
            ("the certificate was not trusted", Tls),
            (
                "tcp connect error: No route to host (os error 113)",
                Unreachable,
            ),
            ("operation timed out", Unreachable),
            ("Invalid packet id: 60", Protocol),
            ("Got illegal handshake response: {}", Protocol),
            (
                "Error with websocket connection: HTTP error: 429 Too Many Requests",
                TurnedAway,
            ),
            ("Network request returned with status code: 429", TurnedAway),
            (
                "EngineIO Error IncompleteResponseFromEngineIo(InvalidPacketId(123))",
                TurnedAway,
            ),
            ("something else entirely", Other),
        ];
        for (text, want) in cases {
            assert_eq!(classify_failure(text), want, "{text}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = NetConfig::new("http://x", "a");
        assert_eq!(c.backoff(1), Duration::from_millis(500));
        assert_eq!(c.backoff(2), Duration::from_secs(1));
        assert_eq!(c.backoff(5), Duration::from_secs(8));
        assert_eq!(c.backoff(6), Duration::from_secs(10));
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn payloads_unwrap_to_one_value() {
        let v = serde_json::json!({"ok": true});
        assert_eq!(payload_value(Payload::Text(vec![v.clone()])), v);
        assert_eq!(payload_value(Payload::Text(vec![])), Value::Array(vec![]));
    }

    #[test]
    fn acks_are_typed_by_their_request() {
        let ev = ClientEvent::RoomList;
        let v = serde_json::json!([{"ok": true, "rooms": [{"room": "#a", "members": 1}]}]);
        assert!(matches!(typed_ack(&ev, v), Ok(AckReply::Rooms(_))));
        let ev = ClientEvent::GlobalMessage(chat_shared::TextRequest {
            text: "x".into(),
            action: false,
        });
        let v = serde_json::json!({"ok": false, "error": {"code": "rate_limited", "message": "slow", "context": {}}});
        assert!(
            matches!(typed_ack(&ev, v), Err(AckError::Refused(e)) if e.code == ErrorCode::RateLimited)
        );
    }
}
