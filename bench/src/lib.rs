//! `chat-bench`: the load generator and benchmark suite for servers of the
//! chat contract (`docs/PROTOCOL.md`). It holds thousands of simulated users
//! in one process, each a small tokio task on a raw WebSocket speaking
//! Engine.IO 4 / Socket.IO 5 frames, and runs every scenario against every
//! target in turn (chat-server first, the Node peer second), printing a
//! table with the ratio chat-server/peer and JSON.
//!
//! Modules:
//! - [`proto`]: the Engine.IO / Socket.IO text frames, written and read by
//!   hand, and the bench message text (number and send time).
//! - [`client`]: one simulated user: the connect handshake, acked requests,
//!   and the user task that answers pings, sends on command and records
//!   every bench message it receives (latency, duplicates, last id).
//! - [`scenarios`]: idle, fan-out, DM pairs, churn, recovery storm,
//!   logins, a restart on stored history, a burst of abandoned
//!   handshakes, several sessions per account (with read markers) and
//!   messages that change (edits and reactions in the traffic, history
//!   pages of a changed room), posts over the HTTP API against Socket.IO,
//!   with what they share (mass bring-up, the rate pacer, the receipt check,
//!   the rate ladder).
//! - [`server`]: the targets: launched (chat-server binary, Node peer) or
//!   already running, each on its own port of 127.0.0.1.
//! - [`stats`]: latency histograms and the /proc figures (RSS, CPU).
//! - [`report`]: scenario tables and JSON.
//! - [`tls`]: the certificate and client of `--chat-server-tls`.

pub mod client;
pub mod proto;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};

use crate::report::{Figures, ScenarioReport};
use crate::scenarios::Ctx;
use crate::server::{Server, TargetSpec};

/// A scenario of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Idle,
    Fanout,
    Dm,
    Churn,
    Recovery,
    Login,
    Restart,
    Burst,
    Sessions,
    Changes,
    Api,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Fanout => "fanout",
            Scenario::Dm => "dm",
            Scenario::Churn => "churn",
            Scenario::Recovery => "recovery",
            Scenario::Login => "login",
            Scenario::Restart => "restart",
            Scenario::Burst => "burst",
            Scenario::Sessions => "sessions",
            Scenario::Changes => "changes",
            Scenario::Api => "api",
        }
    }
}

/// Load generator and benchmarks for servers of the chat contract.
#[derive(Debug, Clone, Parser)]
#[command(name = "chat-bench", version)]
pub struct Config {
    /// Launch chat-server from this binary (one fresh server per scenario).
    #[arg(long)]
    pub chat_server_bin: Option<PathBuf>,
    /// Also run chat-server on `--store memory`, as a third target (after
    /// the peer, so the printed ratio stays on-disk chat-server / peer).
    #[arg(long)]
    pub chat_server_memory: bool,
    /// Also run chat-server (on-disk store) with TLS, as another target:
    /// a certificate made for the run, the users on wss://.
    #[arg(long)]
    pub chat_server_tls: bool,
    /// Also run two chat-server nodes on one Redis (launched for the run
    /// with `--redis-server`), users spread over both, as another target.
    #[arg(long)]
    pub chat_server_cluster: bool,
    /// The `redis-server` executable for `--chat-server-cluster`.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// Launch the Node peer from this directory (`node server.js` there).
    #[arg(long)]
    pub peer_dir: Option<PathBuf>,
    /// The Node executable for the peer.
    #[arg(long, default_value = "node")]
    pub node: String,
    /// An already running server: `[NAME=]URL` (http://, ws:// or host:port;
    /// loopback only). Repeatable; targets run in the order given, after the
    /// launched ones.
    #[arg(long = "url")]
    pub urls: Vec<String>,
    /// `NAME=PID` of a running server (for RSS and CPU figures).
    #[arg(long = "pid")]
    pub pids: Vec<String>,
    /// Scenarios to run. (The burst and the sessions come before the
    /// logins: against one long-running server, the login flood locks the
    /// bench's address.)
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "idle,fanout,dm,churn,recovery,burst,sessions,changes,login,restart"
    )]
    pub scenarios: Vec<Scenario>,
    /// Write every scenario's JSON to this file (an array).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Idle: user levels, reached in turn.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    pub idle_users: Vec<usize>,
    /// Idle: seconds to wait at each level before reading RSS.
    #[arg(long, default_value_t = 3.0)]
    pub idle_settle_secs: f64,
    /// Longest time to bring one batch of users up (connect and join);
    /// users not up by then count as failed connects.
    #[arg(long, default_value_t = 120.0)]
    pub bring_up_secs: f64,
    /// Handshakes in flight at once while bringing users up.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Fan-out: users, split into rooms of each size.
    #[arg(long, default_value_t = 1000)]
    pub fanout_users: usize,
    /// Fan-out: room sizes.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub fanout_sizes: Vec<usize>,
    /// Fan-out: offered deliveries per second, one ladder step each. The
    /// steps are close (at most 25 % apart) up to 80 000/s, where the Node
    /// peer's ceilings lie, so that a server's best sustained rate is found
    /// to within a step.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5000,10000,20000,30000,40000,50000,60000,70000,80000,100000,120000,160000,240000,320000,480000,640000"
    )]
    pub fanout_rates: Vec<f64>,
    /// Seconds of traffic per ladder step.
    #[arg(long, default_value_t = 4.0)]
    pub step_secs: f64,
    /// Run every ladder step even after one was not sustained.
    #[arg(long)]
    pub full_ladder: bool,
    /// DM: pairs of users.
    #[arg(long, default_value_t = 500)]
    pub dm_pairs: usize,
    /// DM: offered messages per second (over all pairs), one step each
    /// (close together where both servers' ceilings lie).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,5000,10000,15000,20000,25000,30000,35000,40000,50000,80000"
    )]
    pub dm_rates: Vec<f64>,
    /// Churn: concurrent connect/disconnect loops.
    #[arg(long, default_value_t = 50)]
    pub churn_workers: usize,
    /// Churn: seconds.
    #[arg(long, default_value_t = 10.0)]
    pub churn_secs: f64,
    /// Recovery storm: users cut and reconnected at once.
    #[arg(long, default_value_t = 5000)]
    pub storm_users: usize,
    /// Recovery storm: room size (one anchor that sends plus storm users).
    #[arg(long, default_value_t = 50)]
    pub storm_room_size: usize,
    /// Recovery storm: room messages per second during the storm.
    #[arg(long, default_value_t = 200.0)]
    pub storm_rate: f64,
    /// Recovery storm: milliseconds between the cut and the reconnects.
    #[arg(long, default_value_t = 1000)]
    pub storm_gap_ms: u64,
    /// Recovery storm: reconnect handshakes in flight at once (default: all).
    #[arg(long)]
    pub storm_concurrency: Option<usize>,
    /// Recovery storm against `--chat-server-cluster`: kill the second node
    /// (SIGKILL) instead of cutting transports; its users reconnect to the
    /// first node.
    #[arg(long)]
    pub storm_kill_node: bool,
    /// Recovery storm: keep the cut sockets open and silent (half-open, the
    /// server must take the session over) instead of closing them.
    #[arg(long)]
    pub storm_half_open: bool,
    /// Login: accounts registered, then logged in.
    #[arg(long, default_value_t = 100)]
    pub login_accounts: usize,
    /// Login: registrations and logins in flight at once.
    #[arg(long, default_value_t = 20)]
    pub login_workers: usize,
    /// Login: seconds of logins.
    #[arg(long, default_value_t = 5.0)]
    pub login_secs: f64,
    /// Login: users chatting during the wrong-password flood.
    #[arg(long, default_value_t = 1000)]
    pub login_chatters: usize,
    /// Login: the chatters' room size.
    #[arg(long, default_value_t = 10)]
    pub login_room_size: usize,
    /// Login: the chatters' offered deliveries per second.
    #[arg(long, default_value_t = 5000.0)]
    pub login_chat_rate: f64,
    /// Login: connects with a wrong password in the flood.
    #[arg(long, default_value_t = 1000)]
    pub login_flood: usize,
    /// Login: flood connects in flight at once.
    #[arg(long, default_value_t = 100)]
    pub login_flood_concurrency: usize,
    /// Restart: messages stored (DMs between `--dm-pairs` pairs) before the
    /// restart.
    #[arg(long, default_value_t = 1_000_000)]
    pub restart_messages: u64,
    /// Restart: messages per second while storing them.
    #[arg(long, default_value_t = 40_000.0)]
    pub restart_rate: f64,
    /// Restart: stop the server with SIGKILL (a crash) instead of SIGTERM.
    #[arg(long)]
    pub restart_kill: bool,
    /// Burst: Engine.IO polling handshakes that never continue.
    #[arg(long, default_value_t = 20_000)]
    pub burst_handshakes: usize,
    /// Burst: seconds after the last handshake until the server has reaped
    /// every session (its ping interval plus ping timeout, 25 s + 20 s on
    /// both servers by default, and a margin).
    #[arg(long, default_value_t = 50.0)]
    pub burst_reap_secs: f64,
    /// Burst: seconds after the reap at which the RSS kept is read.
    #[arg(long, default_value_t = 20.0)]
    pub burst_settle_secs: f64,
    /// Sessions: accounts (registered with a password each), in rooms of
    /// `--sessions-room-size` and DM pairs.
    #[arg(long, default_value_t = 200)]
    pub sessions_accounts: usize,
    /// Sessions: sessions per account, one run each, in increasing order
    /// (each adds password logins to the sessions already up); `0` alone
    /// skips the deliveries (the read markers part then runs on a store
    /// that holds only its own messages).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub sessions_per_account: Vec<usize>,
    /// Sessions: accounts per room.
    #[arg(long, default_value_t = 20)]
    pub sessions_room_size: usize,
    /// Sessions: offered room messages per second (the same for every
    /// session count: deliveries grow with the sessions).
    #[arg(long, default_value_t = 1000.0)]
    pub sessions_room_rate: f64,
    /// Sessions: offered DMs per second over all pairs.
    #[arg(long, default_value_t = 2000.0)]
    pub sessions_dm_rate: f64,
    /// Sessions, read markers: rooms the loaded account is in (the server
    /// allows 50 a user by default).
    #[arg(long, default_value_t = 50)]
    pub markers_rooms: usize,
    /// Sessions, read markers: messages guests send to each of its rooms.
    #[arg(long, default_value_t = 20)]
    pub markers_room_messages: usize,
    /// Sessions, read markers: guests that send it DMs (one conversation
    /// each).
    #[arg(long, default_value_t = 200)]
    pub markers_dms: usize,
    /// Sessions, read markers: DMs each of those guests sends.
    #[arg(long, default_value_t = 3)]
    pub markers_dm_messages: usize,
    /// Sessions, read markers: connects of each kind measured (password
    /// logins, then token resumes) for the loaded and the plain account;
    /// 0 skips the markers part.
    #[arg(long, default_value_t = 50)]
    pub markers_reconnects: usize,
    /// Changes: users, split into rooms of `--changes-room-size`.
    #[arg(long, default_value_t = 1000)]
    pub changes_users: usize,
    /// Changes: room size (every member gets every message and change).
    #[arg(long, default_value_t = 1000)]
    pub changes_room_size: usize,
    /// Changes: the share of the sends that are changes, in per cent (half
    /// edits of the sender's own recent messages, half reactions put on or
    /// taken back on recent messages of the room); the rest are plain
    /// room messages. Each step of the ladder runs once with this mix and
    /// once with plain messages only.
    #[arg(long, default_value_t = 10.0)]
    pub changes_share: f64,
    /// Changes: offered deliveries per second, one step each (a message or
    /// a change to a room of M members is M deliveries); 0 alone skips the
    /// ladder.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "40000,80000,160000,240000,320000,400000,480000"
    )]
    pub changes_rates: Vec<f64>,
    /// Changes, history pages: messages stored in one room (sent pipelined
    /// by a few authors, every ack awaited); 0 skips the history part.
    #[arg(long, default_value_t = 100_000)]
    pub changes_history_messages: usize,
    /// Changes, history pages: per cent of those messages edited by their
    /// author (after the first measurement).
    #[arg(long, default_value_t = 20)]
    pub changes_history_edited: u32,
    /// Changes, history pages: per cent deleted by their author (none of
    /// the edited ones).
    #[arg(long, default_value_t = 5)]
    pub changes_history_deleted: u32,
    /// Changes, history pages: per cent given reactions by other members
    /// (one, or two for a third of them).
    #[arg(long, default_value_t = 10)]
    pub changes_history_reacted: u32,
    /// Changes, history pages: the `limit`s of the pages read.
    #[arg(long, value_delimiter = ',', default_value = "50,200")]
    pub changes_history_limits: Vec<usize>,
    /// Changes, history pages: requests timed for each limit, end (the
    /// newest page, and pages deep in the room with `before`) and pass
    /// (before the changes, after them).
    #[arg(long, default_value_t = 200)]
    pub changes_history_requests: usize,
    /// Api: Socket.IO listeners in the room posted to.
    #[arg(long, default_value_t = 100)]
    pub api_listeners: usize,
    /// Api: seconds each side (HTTP, then Socket.IO) posts for.
    #[arg(long, default_value_t = 5.0)]
    pub api_secs: f64,
    /// `--max-connections` given to a launched chat-server.
    #[arg(long, default_value_t = 200_000)]
    pub max_connections: u64,
}

/// Any failure of the bench itself (not of a server under test).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Raises this process's open-file limit (children inherit it).
pub fn raise_nofile() -> u64 {
    let want = 1 << 20;
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, want, want);
    rlimit::increase_nofile_limit(want).unwrap_or(0)
}

fn parse_addr(url: &str) -> Result<SocketAddr, Error> {
    let hostport = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default();
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(hostport)?
        .next()
        .ok_or_else(|| format!("cannot resolve {url}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{url}: the bench targets loopback addresses only").into());
    }
    Ok(addr)
}

/// The targets the configuration names, in order.
pub fn targets(cfg: &Config) -> Result<Vec<TargetSpec>, Error> {
    let mut out = Vec::new();
    if let Some(bin) = &cfg.chat_server_bin {
        out.push(TargetSpec::ChatServer {
            bin: bin.clone(),
            max_connections: cfg.max_connections,
            memory: false,
            tls: false,
        });
    }
    if let Some(dir) = &cfg.peer_dir {
        if !dir.join("server.js").is_file() {
            return Err(format!("{}: no server.js there (--peer-dir)", dir.display()).into());
        }
        if !dir.join("node_modules").is_dir() {
            return Err(format!(
                "{}: no node_modules; run `npm ci` there first",
                dir.display()
            )
            .into());
        }
        out.push(TargetSpec::Peer {
            dir: dir.clone(),
            node: cfg.node.clone(),
        });
    }
    if let (Some(bin), true) = (&cfg.chat_server_bin, cfg.chat_server_memory) {
        out.push(TargetSpec::ChatServer {
            bin: bin.clone(),
            max_connections: cfg.max_connections,
            memory: true,
            tls: false,
        });
    }
    if let (Some(bin), true) = (&cfg.chat_server_bin, cfg.chat_server_tls) {
        out.push(TargetSpec::ChatServer {
            bin: bin.clone(),
            max_connections: cfg.max_connections,
            memory: false,
            tls: true,
        });
    }
    if let (Some(bin), true) = (&cfg.chat_server_bin, cfg.chat_server_cluster) {
        out.push(TargetSpec::Cluster {
            bin: bin.clone(),
            max_connections: cfg.max_connections,
            redis: cfg.redis_server.clone(),
        });
    }
    for (i, u) in cfg.urls.iter().enumerate() {
        let (name, url) = match u.split_once('=') {
            Some((n, url)) => (n.to_owned(), url),
            None => (format!("target{}", i + 1), u.as_str()),
        };
        let pid = cfg.pids.iter().find_map(|p| {
            p.split_once('=')
                .filter(|(n, _)| *n == name)
                .and_then(|(_, pid)| pid.parse().ok())
        });
        out.push(TargetSpec::Running {
            name,
            addr: parse_addr(url)?,
            pid,
        });
    }
    if out.is_empty() {
        return Err("no target: give --chat-server-bin, --peer-dir or --url".into());
    }
    Ok(out)
}

/// Runs one scenario; `spec` and `server` are the target, which only the
/// restart scenario touches.
async fn run_one(
    scenario: Scenario,
    ctx: &Ctx<'_>,
    spec: &TargetSpec,
    server: &mut Server,
) -> Figures {
    match scenario {
        Scenario::Idle => scenarios::idle::run(ctx).await,
        Scenario::Fanout => scenarios::fanout::run(ctx).await,
        Scenario::Dm => scenarios::dm::run(ctx).await,
        Scenario::Churn => scenarios::churn::run(ctx).await,
        Scenario::Recovery => scenarios::recovery::run(ctx).await,
        Scenario::Login => scenarios::login::run(ctx).await,
        Scenario::Restart => scenarios::restart::run(ctx, spec, server).await,
        Scenario::Burst => scenarios::burst::run(ctx).await,
        Scenario::Sessions => scenarios::sessions::run(ctx).await,
        Scenario::Changes => scenarios::changes::run(ctx).await,
        Scenario::Api => scenarios::api::run(ctx).await,
    }
}

/// A name prefix unique to this run (lowercase letters and digits), so that
/// runs against the same long-lived server do not collide on usernames.
fn run_tag(n: usize) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{:x}{n}", (t % 0xfffff) as u32)
}

/// Runs every configured scenario against every target; prints each table
/// and a `JSON ` line; writes the `--json` file. Returns the reports.
pub async fn run(cfg: &Config) -> Result<Vec<ScenarioReport>, Error> {
    let nofile = raise_nofile();
    let specs = targets(cfg)?;
    eprintln!(
        "chat-bench: open-file limit {nofile}; targets: {}",
        specs
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut reports = Vec::new();
    let mut n = 0;
    for &scenario in &cfg.scenarios {
        let mut per_target = Vec::new();
        for spec in &specs {
            n += 1;
            if matches!(scenario, Scenario::Sessions | Scenario::Changes)
                && matches!(spec, TargetSpec::Peer { .. })
            {
                // No accounts or changes there: not started, not measured
                // (the report says so).
                per_target.push((spec.name().to_owned(), Figures::default()));
                continue;
            }
            eprintln!("== {} against {}", scenario.name(), spec.name());
            let mut server = spec.start().await?;
            let ctx = Ctx {
                addr: server.addr,
                others: server.others.clone(),
                other_pids: server.other_pids(),
                pid: server.pid,
                cfg,
                tag: run_tag(n),
            };
            let figs = run_one(scenario, &ctx, spec, &mut server).await;
            server.stop().await;
            per_target.push((spec.name().to_owned(), figs));
        }
        let mut report = ScenarioReport::merge(scenario.name(), per_target);
        match scenario {
            Scenario::Fanout => scenarios::fanout::post(&mut report, &cfg.fanout_sizes),
            Scenario::Dm => scenarios::fanout::post_ladder(
                &mut report,
                &[scenarios::dm::label(cfg.dm_pairs.max(1))],
            ),
            Scenario::Sessions if specs.iter().any(|s| matches!(s, TargetSpec::Peer { .. })) => {
                report.notes.push(scenarios::sessions::PEER_NOTE.to_owned());
            }
            Scenario::Changes if specs.iter().any(|s| matches!(s, TargetSpec::Peer { .. })) => {
                report.notes.push(scenarios::changes::PEER_NOTE.to_owned());
            }
            _ => {}
        }
        println!("{}", report.table());
        println!("JSON {}", report.json());
        reports.push(report);
        if let Some(path) = &cfg.json {
            let all: Vec<_> = reports.iter().map(ScenarioReport::json).collect();
            std::fs::write(path, serde_json::to_string_pretty(&all)?)?;
        }
    }
    Ok(reports)
}
