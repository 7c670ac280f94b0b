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
//!
//! Layout:
//! - `run`: the task's loop over attempts: the back-off, the next server
//!   of a cluster, what each way an attempt ends leads to.
//! - `attempt`: one connection attempt in three phases: open the
//!   transport, wait for the namespace, then the live session (`live`).
//! - `live`: the third phase: server events, commands, the liveness check.
//! - `requests`: acked requests, sent one at a time, and their typed answers.
//! - `classify`: why an attempt failed, read from the library's error text.

mod attempt;
mod classify;
mod live;
mod requests;
mod run;

use std::time::Duration;

use chat_shared::ConnectRefusal;
use rust_socketio::asynchronous::Client;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use self::classify::{classify_failure, parse_connect_error};
use crate::msg::{NetCommand, NetEvent};
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
    /// (v3) Sent as `auth.token`: an API token of the account (a saved
    /// login, see [`crate::login`]), instead of the password.
    pub token: Option<String>,
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
    /// (v3) Sent as `auth.client`: what the account's session list calls
    /// this client (`/sessions`). `None` sends none.
    pub client_label: Option<String>,
}

impl NetConfig {
    pub fn new(url: &str, username: &str) -> NetConfig {
        NetConfig {
            url: url.to_owned(),
            fallbacks: Vec::new(),
            username: username.to_owned(),
            password: None,
            token: None,
            register: false,
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            liveness_interval: Duration::from_secs(5),
            liveness_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            tls: None,
            client_label: chat_shared::client_label(&crate::config::default_client_label()),
        }
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
    tokio::spawn(run::run(config, cmd_rx, ev_tx));
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
    /// (v3) The server ended this socket (a kick, a ban, the session ended
    /// elsewhere): wait for the user before connecting again.
    Ended(ConnectRefusal),
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
