//! Every limit and timeout of the server: a flag, an environment variable
//! (`CHAT_...`) and the contract's default.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Where the server keeps what must outlive the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// An embedded SQLite database in `--data-dir` (the default): history,
    /// sessions and ids survive restarts and crashes.
    Sqlite,
    /// Everything in memory: lost when the process ends (tests, throwaway runs).
    Memory,
}

/// Who may connect to `/chat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Guests (any free name) and accounts (their password needed).
    Open,
    /// Accounts only: any other name is refused `auth_required`.
    Accounts,
}

/// Whether clients may create accounts themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Registration {
    /// `register: true` in the handshake creates an account.
    Open,
    /// Only the operator creates accounts (`chat-server account add`).
    Closed,
}

/// What `chat-server` does instead of serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Manage accounts in the store of `--data-dir` (the server may be
    /// running or stopped). Passwords are read from standard input, without
    /// echo when it is a terminal.
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AccountAction {
    /// Create an account.
    Add { name: String },
    /// Set a new password.
    Passwd { name: String },
    /// Remove an account (its messages stay).
    Remove { name: String },
    /// List the accounts.
    List,
    /// Give an account a server role: user, moderator or admin. Works
    /// while the server runs: it applies within a second.
    Role { name: String, role: String },
}

/// chat-server: a Socket.IO v4 chat server (namespaces `/chat` and `/admin`).
///
/// Every flag can also be set through the environment variable named in
/// brackets. Durations take humantime syntax: `90s`, `2m`, `500ms`.
#[derive(Debug, Clone, Parser)]
#[command(name = "chat-server", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on. Use 0.0.0.0:3000 to serve other hosts.
    #[arg(long, env = "CHAT_BIND", default_value = "127.0.0.1:3000")]
    pub bind: SocketAddr,

    /// Token that `/admin` clients must present (auth `{token}`). Without
    /// one, every admin connect is refused.
    #[arg(long, env = "CHAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How long a session (identity, rooms, missed messages) is kept after
    /// an unplanned disconnect, so that the client can resume it.
    #[arg(long, env = "CHAT_RECOVERY_WINDOW", default_value = "120s", value_parser = humantime::parse_duration)]
    pub recovery_window: Duration,

    /// Messages per second each socket may send (token bucket refill rate).
    /// 0 lifts the limit (for load tests).
    #[arg(long, env = "CHAT_RATE", default_value_t = 10.0)]
    pub rate: f64,

    /// Messages a socket may send at once before the rate applies.
    #[arg(long, env = "CHAT_BURST", default_value_t = 20)]
    pub burst: u32,

    /// Other requests (joins, leaves, lists, typing, presence) per second
    /// each socket may make: a looser limit that keeps one client from
    /// burning the server's CPU. 0 lifts it.
    #[arg(long, env = "CHAT_EVENT_RATE", default_value_t = 50.0)]
    pub event_rate: f64,

    /// Other requests a socket may make at once before `--event-rate` applies.
    #[arg(long, env = "CHAT_EVENT_BURST", default_value_t = 100)]
    pub event_burst: u32,

    /// Longest message text, in Unicode characters after trimming.
    #[arg(long, env = "CHAT_MAX_TEXT", default_value_t = 2000)]
    pub max_text: usize,

    /// (v3) How long after sending its author may edit a message
    /// (`edit_window_passed` after). 0s: messages cannot be edited.
    #[arg(long, env = "CHAT_EDIT_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    pub edit_window: Duration,

    /// Most rooms one user may be in at once.
    #[arg(long, env = "CHAT_MAX_ROOMS_PER_USER", default_value_t = 50)]
    pub max_rooms_per_user: usize,

    /// Messages of a room sent back in the `room:join` ack.
    #[arg(long, env = "CHAT_HISTORY", default_value_t = 50)]
    pub history: usize,

    /// Messages kept for session recovery (the replay log). A client that
    /// missed more than this gets `truncated: true`.
    #[arg(long, env = "CHAT_REPLAY_BUFFER", default_value_t = 10_000)]
    pub replay_buffer: usize,

    /// How often `/admin` clients get `admin:stats`.
    #[arg(long, env = "CHAT_STATS_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,

    /// Most users connected at once; beyond it connects are refused with
    /// `server_full`. 0: no limit.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// (v3) Most sessions (clients) one account may have at once; a login
    /// beyond it ends the account's least recently active session.
    #[arg(long, env = "CHAT_MAX_SESSIONS_PER_ACCOUNT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions_per_account: u64,

    /// Single presence events per second per scope (the namespace, each
    /// room); changes beyond it are folded into one `summary` a second.
    #[arg(long, env = "CHAT_PRESENCE_BURST", default_value_t = 20)]
    pub presence_burst: u32,

    /// Largest Engine.IO packet a client may send, in bytes.
    #[arg(long, env = "CHAT_MAX_PAYLOAD", default_value_t = 64 * 1024)]
    pub max_payload: u64,

    /// Packets queued for one socket before further ones are dropped for
    /// it (a slow reader loses messages; it never slows the others).
    #[arg(long, env = "CHAT_SOCKET_BUFFER", default_value_t = 1024)]
    pub socket_buffer: usize,

    /// Interval between Engine.IO pings.
    #[arg(long, env = "CHAT_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// How long a pong may take before the connection is dropped.
    #[arg(long, env = "CHAT_PING_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub ping_timeout: Duration,

    /// Where messages, sessions and ids are kept.
    #[arg(
        long,
        env = "CHAT_STORE",
        value_enum,
        default_value = "sqlite",
        global = true
    )]
    pub store: StoreKind,

    /// The directory of the on-disk store (`chat.db` in it), created if
    /// missing.
    #[arg(
        long,
        env = "CHAT_DATA_DIR",
        default_value = "./chat-data",
        global = true
    )]
    pub data_dir: std::path::PathBuf,

    /// How long messages are kept; older ones are deleted (hourly).
    #[arg(long, env = "CHAT_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub retention: Duration,

    /// How long a new connection may take to send its request head before
    /// it is closed (slow or half-sent requests cannot hold connections).
    #[arg(long, env = "CHAT_HEADER_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// How long an Engine.IO session may wait, after its handshake, for
    /// the client to connect to a namespace before it is closed (clients
    /// send it at once; a handshake that never continues costs memory).
    #[arg(long, env = "CHAT_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// How long shutdown waits for sockets to close before exiting.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE", default_value = "3s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Who may connect: `open` (guests and accounts) or `accounts` (accounts only).
    #[arg(long, env = "CHAT_AUTH", value_enum, default_value = "open")]
    pub auth: AuthMode,

    /// Whether clients may create accounts (`register: true`). Default:
    /// open under `--auth open`, closed under `--auth accounts`.
    #[arg(long, env = "CHAT_REGISTRATION", value_enum)]
    pub registration: Option<Registration>,

    /// How long a username is locked after 5 wrong passwords within a
    /// minute; each further wrong password doubles it, up to 10 times this.
    #[arg(long, env = "CHAT_LOGIN_LOCKOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub login_lockout: Duration,

    /// Failed logins (wrong passwords, or tries at a locked name) from one
    /// client address within a minute that lock the address: its password
    /// logins and new connections are refused for --login-lockout (doubling
    /// while it goes on). 0: no limit per address.
    #[arg(long, env = "CHAT_LOGIN_ADDRESS_LIMIT", default_value_t = 20)]
    pub login_address_limit: usize,

    /// A reverse proxy whose `X-Forwarded-For` names the client (its last
    /// entry); repeat for more (comma-separated in the environment). Other
    /// peers are the client themselves.
    #[arg(
        long = "trusted-proxy",
        env = "CHAT_TRUSTED_PROXY",
        value_delimiter = ',',
        default_value = "127.0.0.1,::1"
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    // Running on a host: logs, TLS, metrics, browsers, the start-up check.
    /// Log lines on stderr: `text`, or `json` (one object a line) for log
    /// collectors. `RUST_LOG` sets the level.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// PEM certificate chain (the server's certificate first): with
    /// --tls-key, the server speaks HTTPS and WSS only. Re-read on SIGHUP.
    #[arg(long, env = "CHAT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --tls-cert. Re-read on SIGHUP.
    #[arg(long, env = "CHAT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Serve GET /metrics on this address instead of the main port (keep
    /// it private, e.g. 127.0.0.1:9100). /healthz and /readyz are served
    /// there too.
    #[arg(long, env = "CHAT_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// A web origin (https://host[:port]) whose pages may use the server
    /// from the browser; repeat for more (comma-separated in the
    /// environment). Other origins are refused.
    #[arg(long = "cors-origin", env = "CHAT_CORS_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// Check the flags, the TLS files and the store, print what would be
    /// served, and exit (0: the server would start).
    #[arg(long)]
    pub check: bool,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run as one node of a cluster that shares this Redis
    /// (`redis://host:6379/`): messages and their ids, sessions, accounts
    /// and usernames live there, and `--store` is not used.
    #[arg(long, env = "CHAT_REDIS_URL", global = true)]
    pub redis_url: Option<String>,

    /// This node's name in logs and in Redis (default: a random one).
    #[arg(long, env = "CHAT_NODE_ID")]
    pub node_id: Option<String>,
}

impl Default for Config {
    /// The contract's defaults, as `chat-server` with no flags (and no
    /// environment) would run.
    fn default() -> Self {
        Config::parse_from(["chat-server"])
    }
}

impl Config {
    /// The rate limit in force, `None` when lifted.
    pub fn rate_limit(&self) -> Option<(f64, u32)> {
        (self.rate > 0.0).then_some((self.rate, self.burst.max(1)))
    }

    /// Whether clients may register accounts.
    pub fn registration_open(&self) -> bool {
        match self.registration {
            Some(r) => r == Registration::Open,
            None => self.auth == AuthMode::Open,
        }
    }

    /// The limit on requests other than messages, `None` when lifted.
    pub fn event_limit(&self) -> Option<(f64, u32)> {
        (self.event_rate > 0.0).then_some((self.event_rate, self.event_burst.max(1)))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (`timestamp`, `level`, `target`, `message`
    /// and the event's fields).
    Json,
}

/// Checks one `--cors-origin` value: `scheme://host[:port]`, nothing after.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let origin = raw.trim().trim_end_matches('/');
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or_else(|| format!("{raw:?} is not an origin: write it as https://host[:port]"))?;
    let scheme_ok = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
    if !scheme_ok || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "{raw:?} is not an origin: write it as https://host[:port], without a path"
        ));
    }
    Ok(origin.to_ascii_lowercase())
}
