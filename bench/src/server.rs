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
}

impl TargetSpec {
    pub fn name(&self) -> &str {
        match self {
            TargetSpec::Running { name, .. } => name,
            TargetSpec::ChatServer { tls: true, .. } => "chat-server-tls",
            TargetSpec::ChatServer { memory: false, .. } => "chat-server",
            TargetSpec::ChatServer { memory: true, .. } => "chat-server-memory",
            TargetSpec::Peer { .. } => "peer",
        }
    }

    /// Whether each scenario gets a fresh server.
    pub fn launched(&self) -> bool {
        !matches!(self, TargetSpec::Running { .. })
    }

    /// Starts the server (or just names the running one) and waits until it
    /// accepts connections.
    pub async fn start(&self) -> std::io::Result<Server> {
        let mut data_dir = None;
        let (addr, mut child) = match self {
            TargetSpec::Running { addr, pid, .. } => {
                return Ok(Server {
                    name: self.name().to_owned(),
                    addr: *addr,
                    pid: *pid,
                    child: None,
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
                cmd.arg("--bind")
                    .arg(addr.to_string())
                    .arg("--rate")
                    .arg("0")
                    .arg("--max-connections")
                    .arg(max_connections.to_string())
                    .env("RUST_LOG", "warn");
                (addr, spawn(cmd, self.name())?)
            }
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
            pid,
            child: Some(child),
            data_dir,
        })
    }
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
    pub pid: Option<u32>,
    child: Option<Child>,
    /// A launched chat-server's data directory, removed when it stops.
    data_dir: Option<PathBuf>,
}

impl Server {
    /// Stops a launched server (no-op for a running one).
    pub async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
