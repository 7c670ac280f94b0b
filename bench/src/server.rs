//! The servers under test: already running ones given by address, or ones
//! the bench launches itself (chat-server from its binary, the Node peer from
//! its directory), each on its own port of 127.0.0.1, killed when done.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How to reach (or start) one server.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// A server already listening; `pid` (optional) enables RSS and CPU
    /// figures.
    Running {
        name: String,
        addr: SocketAddr,
        pid: Option<u32>,
    },
    /// `chat-server` launched from its binary with the rate limit lifted,
    /// on its default on-disk store (a fresh data directory) or, with
    /// `memory`, on `--store memory`.
    ChatServer {
        bin: PathBuf,
        max_connections: u64,
        memory: bool,
        /// Serve HTTPS/WSS with a certificate made for the run.
        tls: bool,
    },
    /// The Node peer launched as `node server.js` in its directory with the
    /// rate limit lifted.
    Peer { dir: PathBuf, node: String },
    /// Two chat-server nodes on one `redis-server` (launched for the run,
    /// on a free port, nothing persisted), users spread over both.
    Cluster {
        bin: PathBuf,
        max_connections: u64,
        redis: PathBuf,
    },
}

impl TargetSpec {
    pub fn name(&self) -> &str {
        match self {
            TargetSpec::Running { name, .. } => name,
            TargetSpec::ChatServer { tls: true, .. } => "chat-server-tls",
            TargetSpec::ChatServer { memory: false, .. } => "chat-server",
            TargetSpec::ChatServer { memory: true, .. } => "chat-server-memory",
            TargetSpec::Peer { .. } => "peer",
            TargetSpec::Cluster { .. } => "chat-server-2-nodes",
        }
    }

    /// Whether each scenario gets a fresh server.
    pub fn launched(&self) -> bool {
        !matches!(self, TargetSpec::Running { .. })
    }

    /// Starts the server (or just names the running one) and waits until it
    /// accepts connections.
    pub async fn start(&self) -> std::io::Result<Server> {
        if let TargetSpec::Cluster {
            bin,
            max_connections,
            redis,
        } = self
        {
            return start_cluster(self.name(), bin, *max_connections, redis).await;
        }
        let mut data_dir = None;
        let (addr, mut child) = match self {
            TargetSpec::Running { addr, pid, .. } => {
                return Ok(Server {
                    name: self.name().to_owned(),
                    addr: *addr,
                    others: Vec::new(),
                    pid: *pid,
                    child: None,
                    helpers: Vec::new(),
                    data_dir: None,
                });
            }
            TargetSpec::ChatServer {
                bin,
                max_connections,
                memory,
                tls,
            } => {
                let addr = free_addr()?;
                let mut cmd = Command::new(bin);
                if *memory {
                    cmd.args(["--store", "memory"]);
                } else {
                    // The default (on-disk) store, in a directory of its own.
                    let dir = std::env::temp_dir().join(format!(
                        "chat-bench-{}-{}",
                        std::process::id(),
                        addr.port()
                    ));
                    let _ = std::fs::remove_dir_all(&dir);
                    cmd.arg("--data-dir").arg(&dir);
                    data_dir = Some(dir);
                }
                if *tls {
                    // Beside the store, removed with it.
                    let dir = data_dir.get_or_insert_with(|| {
                        std::env::temp_dir().join(format!(
                            "chat-bench-tls-{}-{}",
                            std::process::id(),
                            addr.port()
                        ))
                    });
                    let (cert, key, connector) = crate::tls::make_certificate(dir)?;
                    cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
                    crate::client::use_tls(addr, connector);
                }
                bench_flags(&mut cmd, addr, *max_connections);
                (addr, spawn(cmd, self.name())?)
            }
            TargetSpec::Cluster { .. } => unreachable!("started above"),
            TargetSpec::Peer { dir, node } => {
                let addr = free_addr()?;
                let mut cmd = Command::new(node);
                cmd.arg("server.js")
                    .current_dir(dir)
                    .env("PORT", addr.port().to_string())
                    .env("RATE", "1000000000")
                    .env("BURST", "1000000000");
                (addr, spawn(cmd, "peer")?)
            }
        };
        let pid = child.id();
        let t0 = Instant::now();
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "{} exited at start: {status}",
                    self.name()
                )));
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill().await;
                return Err(std::io::Error::other(format!(
                    "{} did not listen on {addr} within 20 s",
                    self.name()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Server {
            name: self.name().to_owned(),
            addr,
            others: Vec::new(),
            pid,
            child: Some(child),
            helpers: Vec::new(),
            data_dir,
        })
    }
}

/// Waits until `addr` accepts connections (at most 20 s), or `child` exits.
async fn until_listening(addr: SocketAddr, child: &mut Child, what: &str) -> std::io::Result<()> {
    let t0 = Instant::now();
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(std::io::Error::other(format!(
                "{what} exited at start: {status}"
            )));
        }
        if t0.elapsed() > Duration::from_secs(20) {
            return Err(std::io::Error::other(format!(
                "{what} did not listen on {addr} within 20 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `redis-server` and two chat-server nodes on it.
async fn start_cluster(
    name: &str,
    bin: &std::path::Path,
    max_connections: u64,
    redis: &std::path::Path,
) -> std::io::Result<Server> {
    let redis_addr = free_addr()?;
    let dir = std::env::temp_dir().join(format!(
        "chat-bench-redis-{}-{}",
        std::process::id(),
        redis_addr.port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(redis);
    cmd.arg("--port")
        .arg(redis_addr.port().to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir);
    let mut redis_child = spawn(cmd, "redis")?;
    until_listening(redis_addr, &mut redis_child, "redis-server").await?;
    let url = format!("redis://{redis_addr}/");
    let mut nodes = Vec::new();
    for node in ["node-1", "node-2"] {
        let addr = free_addr()?;
        let mut cmd = Command::new(bin);
        cmd.arg("--redis-url").arg(&url).arg("--node-id").arg(node);
        bench_flags(&mut cmd, addr, max_connections);
        let mut child = spawn(cmd, node)?;
        until_listening(addr, &mut child, node).await?;
        nodes.push((addr, child));
    }
    let (second_addr, second) = nodes.pop().expect("two nodes");
    let (addr, first) = nodes.pop().expect("two nodes");
    Ok(Server {
        name: name.to_owned(),
        addr,
        others: vec![second_addr],
        pid: first.id(),
        child: Some(first),
        helpers: vec![second, redis_child],
        data_dir: Some(dir),
    })
}

fn spawn(mut cmd: Command, what: &str) -> std::io::Result<Child> {
    let log = std::env::temp_dir().join(format!("chat-bench-{what}-{}.log", std::process::id()));
    let log = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    cmd.spawn()
}

/// What every chat-server the bench launches runs with: its address, no
/// rate limit, room for every simulated user, and quiet logs.
fn bench_flags(cmd: &mut Command, addr: SocketAddr, max_connections: u64) {
    cmd.arg("--bind")
        .arg(addr.to_string())
        .arg("--rate")
        .arg("0")
        .arg("--max-connections")
        .arg(max_connections.to_string())
        .env("RUST_LOG", "warn");
}

/// A free port on 127.0.0.1 (bound then released).
fn free_addr() -> std::io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.local_addr()
}

/// A server under test.
#[derive(Debug)]
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    /// The other nodes of a cluster target (users are spread over `addr`
    /// and these).
    pub others: Vec<SocketAddr>,
    pub pid: Option<u32>,
    child: Option<Child>,
    /// More processes of the target (a cluster's second node, its Redis).
    helpers: Vec<Child>,
    /// A launched chat-server's data directory, removed when it stops.
    data_dir: Option<PathBuf>,
}

impl Server {
    /// The PIDs of the other nodes (a cluster's second node first).
    pub fn other_pids(&self) -> Vec<u32> {
        self.helpers
            .iter()
            .take(self.others.len())
            .filter_map(Child::id)
            .collect()
    }

    /// A launched server's data directory (its on-disk store).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    /// Stops a chat-server the bench launched on its on-disk store with
    /// SIGTERM (a planned stop) or, with `crash`, SIGKILL, and starts the
    /// same binary again on the same
    /// address and data directory, and waits until its port accepts
    /// connections. Returns how long the stop took (signal to exit) and
    /// when the new process was started. (chat-server binds its port before
    /// it opens its store, so an accepted connection does not yet mean it
    /// serves: time a handshake from the returned instant for that.)
    pub async fn restart(
        &mut self,
        spec: &TargetSpec,
        crash: bool,
    ) -> std::io::Result<(Duration, Instant)> {
        let (
            TargetSpec::ChatServer {
                bin,
                max_connections,
                memory: false,
                tls: false,
            },
            Some(dir),
            Some(child),
        ) = (spec, &self.data_dir, self.child.as_mut())
        else {
            return Err(std::io::Error::other(
                "only a chat-server launched on its on-disk store can be restarted",
            ));
        };
        let pid = child
            .id()
            .ok_or_else(|| std::io::Error::other("chat-server has exited"))?;
        let signal = if crash { "-KILL" } else { "-TERM" };
        let t0 = Instant::now();
        let signalled = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()?;
        if !signalled.success() {
            return Err(std::io::Error::other(format!("kill {signal} {pid} failed")));
        }
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(std::io::Error::other(format!(
                    "chat-server did not exit within 30 s of kill {signal}"
                )));
            }
        };
        let stopped = t0.elapsed();
        let mut cmd = Command::new(bin);
        cmd.arg("--data-dir").arg(dir);
        bench_flags(&mut cmd, self.addr, *max_connections);
        let t1 = Instant::now();
        let mut child = spawn(cmd, "chat-server-restarted")?;
        loop {
            if TcpStream::connect(self.addr).await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "chat-server exited at restart: {status}"
                )));
            }
            if t1.elapsed() > Duration::from_secs(60) {
                let _ = child.kill().await;
                return Err(std::io::Error::other(format!(
                    "chat-server did not listen on {} within 60 s of its restart",
                    self.addr
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.pid = child.id();
        self.child = Some(child);
        Ok((stopped, t1))
    }

    /// Stops a launched server (no-op for a running one).
    pub async fn stop(mut self) {
        for mut c in self.child.take().into_iter().chain(self.helpers.drain(..)) {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
