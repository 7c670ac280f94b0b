//! Harness for the scripted end-to-end tests: a real `chat-server` started
//! in-process on `127.0.0.1:0` ([`TestServer`]), a TCP [`Proxy`] that can
//! cut or black-hole a client's network, and a recording Socket.IO client
//! ([`TestClient`], rust_socketio) with helpers to wait for events and acks.
//!
//! Waits are bounded ([`WAIT`]) so a broken server fails a test instead of
//! hanging it; no test asserts on how long anything took.

pub mod certs;
pub mod http;
pub mod js;
pub mod raw;
pub mod server_process;
pub mod tmux;
pub mod tui;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chat_server::Config;
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The longest any helper waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// The four events a chat message arrives as.
pub const MESSAGE_EVENTS: [&str; 4] = [
    "room:message",
    "dm:message",
    "global:message",
    "broadcast:message",
];

/// Whether `program` runs (`program version_arg` succeeds). Where it
/// does not, CI fails the test (`.ci/run` installs every tool a test
/// needs); elsewhere the caller skips, and this says so. `what` names what
/// needs the program.
pub fn installed(program: &str, version_arg: &str, what: &str) -> bool {
    let runs = std::process::Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have {program} ({what})"
        );
        eprintln!("SKIPPED: {program} is not installed, so {what} did not run");
    }
    runs
}

/// Builds binary `bin` of package `package` with the profile of this test
/// and returns its path: it sits next to the `deps/` directory the test
/// runs from.
pub fn workspace_binary(package: &str, bin: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "-q", "-p", package, "--bin", bin]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
    let path = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "no binary at {}", path.display());
    path
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A chat-server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Starts a server with `config` on a free loopback port.
    pub async fn start(config: Config) -> TestServer {
        init_tracing();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(chat_server::serve(listener, config, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            stop: Some(tx),
            task,
        }
    }

    /// Starts a server on `store` (one that fails on demand, say).
    pub async fn start_on(config: Config, store: Arc<dyn chat_server::store::Store>) -> TestServer {
        init_tracing();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let startup = store.startup().await.expect("store startup");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(chat_server::serve_on(
            listener,
            config,
            store,
            startup,
            async move {
                let _ = rx.await;
            },
        ));
        TestServer {
            addr,
            stop: Some(tx),
            task,
        }
    }

    /// The contract's defaults, with an admin token `admin-secret` and the
    /// in-memory store (tests that restart use [`TestServer::on_disk`]).
    pub fn config() -> Config {
        Config {
            admin_token: Some("admin-secret".into()),
            store: chat_server::config::StoreKind::Memory,
            ..Config::default()
        }
    }

    /// [`TestServer::config`] with the on-disk store in `dir`.
    pub fn on_disk(dir: &std::path::Path) -> Config {
        Config {
            store: chat_server::config::StoreKind::Sqlite,
            data_dir: dir.to_path_buf(),
            ..TestServer::config()
        }
    }

    /// [`TestServer::config`] for node `node` of a cluster on the Redis at
    /// `redis_url`.
    pub fn clustered(redis_url: &str, node: &str) -> Config {
        Config {
            redis_url: Some(redis_url.to_owned()),
            node_id: Some(node.to_owned()),
            ..TestServer::config()
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the server down and waits for it to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(WAIT, &mut self.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("server did not stop in time")),
        }
    }
}

/// A TCP forwarder in front of a server, to play the network: `cut()` drops
/// every connection through it, `set_down(true)` refuses new ones (a
/// network that is gone), `freeze()` stops forwarding without closing
/// anything (a half-open connection).
pub struct Proxy {
    pub addr: SocketAddr,
    /// Where new connections go ([`Proxy::retarget`]: a load balancer
    /// that moves to another node).
    target: Arc<std::sync::Mutex<SocketAddr>>,
    down: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let down = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let conns: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let target = Arc::new(std::sync::Mutex::new(target));
        let accept = {
            let (down, frozen, conns) = (down.clone(), frozen.clone(), conns.clone());
            let to = Arc::clone(&target);
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let target = *to.lock().unwrap_or_else(|e| e.into_inner());
                    let frozen = frozen.clone();
                    let task = tokio::spawn(async move {
                        let Ok(outbound) = TcpStream::connect(target).await else {
                            return;
                        };
                        pipe(inbound, outbound, frozen).await;
                    });
                    let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
                    c.retain(|t| !t.is_finished());
                    c.push(task);
                }
            })
        };
        Proxy {
            addr,
            target,
            down,
            frozen,
            conns,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection through the proxy (both ends see them close).
    pub fn cut(&self) {
        for t in self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Sends new connections to `target` from now on.
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = target;
    }

    /// While down, new connections are accepted and dropped at once.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Stops forwarding bytes on every connection, leaving them open.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn pipe(a: TcpStream, b: TcpStream, frozen: Arc<AtomicBool>) {
    let (mut ar, mut aw) = a.into_split();
    let (mut br, mut bw) = b.into_split();
    let f1 = forward(&mut ar, &mut bw, frozen.clone());
    let f2 = forward(&mut br, &mut aw, frozen);
    tokio::select! {
        _ = f1 => {},
        _ = f2 => {},
    }
}

async fn forward(
    r: &mut tokio::net::tcp::OwnedReadHalf,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            // A black hole: swallow the bytes, keep the connection open.
            continue;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// What a [`TestClient`] saw: an event name and its (first) argument.
pub type Seen = (String, Value);

/// A real Socket.IO client (rust_socketio) that records every event.
pub struct TestClient {
    pub client: Client,
    rx: mpsc::UnboundedReceiver<Seen>,
    buffer: VecDeque<Seen>,
    /// The `session` event, on `/chat`.
    pub session: Option<Value>,
}

/// Connection options for [`TestClient::connect_with`].
#[derive(Clone, Debug)]
pub struct Opts {
    pub namespace: String,
    /// HTTP long-polling only, instead of WebSocket only.
    pub polling: bool,
    /// The TLS client for `https://` URLs (the system's roots otherwise).
    pub tls: Option<native_tls::TlsConnector>,
    /// Extra headers on the opening request (e.g. `X-Forwarded-For`, as a
    /// reverse proxy on the loopback would add).
    pub headers: Vec<(String, String)>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            namespace: "/chat".into(),
            polling: false,
            tls: None,
            headers: Vec::new(),
        }
    }
}

fn first(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut v) if v.len() == 1 => v.pop().unwrap_or(Value::Null),
        Payload::Text(v) => Value::Array(v),
        #[allow(deprecated)]
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Payload::Binary(_) => Value::Null,
    }
}

impl TestClient {
    /// Connects to `/chat` as `username` over WebSocket and waits for
    /// `session`. Panics if refused.
    pub async fn chat(url: &str, username: &str) -> TestClient {
        TestClient::connect(url, json!({ "username": username }))
            .await
            .unwrap_or_else(|e| panic!("{username} refused: {e}"))
    }

    /// Connects to `/chat` with `auth`; `Err(message)` with the
    /// `connect_error` message if refused.
    pub async fn connect(url: &str, auth: Value) -> Result<TestClient, String> {
        TestClient::connect_with(url, auth, Opts::default()).await
    }

    pub async fn connect_with(url: &str, auth: Value, opts: Opts) -> Result<TestClient, String> {
        let (tx, rx) = mpsc::unbounded_channel::<Seen>();
        let (t1, t2, t3) = (tx.clone(), tx.clone(), tx);
        let mut builder = ClientBuilder::new(url);
        if let Some(tls) = opts.tls.clone() {
            builder = builder.tls_config(tls);
        }
        for (name, value) in &opts.headers {
            builder = builder.opening_header(name.as_str(), value.as_str());
        }
        let client = builder
            .namespace(opts.namespace.clone())
            .transport_type(if opts.polling {
                TransportType::Polling
            } else {
                TransportType::Websocket
            })
            .auth(auth)
            .reconnect(false)
            .on_any(move |event, payload, _| {
                let _ = t1.send((String::from(event), first(payload)));
                async {}.boxed()
            })
            .on(Event::Connect, move |_, _| {
                let _ = t2.send(("$connect".into(), Value::Null));
                async {}.boxed()
            })
            .on(Event::Error, move |payload, _| {
                let text = match first(payload) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let _ = t3.send(("$error".into(), Value::String(text)));
                async {}.boxed()
            })
            .connect()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let mut c = TestClient {
            client,
            rx,
            buffer: VecDeque::new(),
            session: None,
        };
        // The namespace answer: CONNECT or CONNECT_ERROR.
        let outcome = tokio::time::timeout(WAIT, async {
            loop {
                match c.rx.recv().await {
                    Some((name, _)) if name == "$connect" => return Ok(()),
                    Some((name, Value::String(text))) if name == "$error" => {
                        if let Some(i) = text.find('{') {
                            let msg =
                                serde_json::from_str::<Value>(&text[i..])
                                    .ok()
                                    .and_then(|v| {
                                        v.get("message").and_then(Value::as_str).map(str::to_owned)
                                    });
                            if let Some(m) = msg {
                                return Err(m);
                            }
                        }
                    }
                    Some(other) => c.buffer.push_back(other),
                    None => return Err("closed".to_string()),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err("no answer to the namespace connect".into()));
        if let Err(e) = outcome {
            let _ = c.client.disconnect().await;
            return Err(e);
        }
        if opts.namespace == "/chat" {
            c.session = Some(c.next("session").await);
        }
        Ok(c)
    }

    /// Connects to `/admin` with `token`.
    pub async fn admin(url: &str, token: &str) -> Result<TestClient, String> {
        TestClient::connect_with(
            url,
            json!({ "token": token }),
            Opts {
                namespace: "/admin".into(),
                ..Opts::default()
            },
        )
        .await
    }

    /// The session token.
    pub fn token(&self) -> String {
        self.session
            .as_ref()
            .and_then(|s| s["session"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits for the next `event` matching `pred`; other events stay
    /// queued for later calls. Panics after [`WAIT`].
    pub async fn next_where(&mut self, event: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.buffer.iter().position(|(n, v)| n == event && pred(v)) {
            return self.buffer.remove(i).map(|(_, v)| v).unwrap_or(Value::Null);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((n, v))) if n == event && pred(&v) => return v,
                Ok(Some(other)) => self.buffer.push_back(other),
                Ok(None) => panic!(
                    "client closed while waiting for {event}; saw {:?}",
                    self.buffer
                ),
                Err(_) => panic!("no {event} within {WAIT:?}; saw {:?}", self.buffer),
            }
        }
    }

    /// Waits for the next event whose name is one of `events`.
    pub async fn next_of(&mut self, events: &[&str]) -> Seen {
        if let Some(i) = self
            .buffer
            .iter()
            .position(|(n, _)| events.contains(&n.as_str()))
        {
            return self.buffer.remove(i).unwrap_or_default();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((n, v))) if events.contains(&n.as_str()) => return (n, v),
                Ok(Some(other)) => self.buffer.push_back(other),
                Ok(None) => panic!("client closed while waiting for {events:?}"),
                Err(_) => panic!("none of {events:?} within {WAIT:?}; saw {:?}", self.buffer),
            }
        }
    }

    /// Waits for the next `event`.
    pub async fn next(&mut self, event: &str) -> Value {
        self.next_where(event, |_| true).await
    }

    /// Everything received so far (drains the channel into the buffer).
    pub fn seen(&mut self) -> Vec<Seen> {
        while let Ok(x) = self.rx.try_recv() {
            self.buffer.push_back(x);
        }
        self.buffer.iter().cloned().collect()
    }

    /// How many `event`s have arrived so far.
    pub fn count(&mut self, event: &str) -> usize {
        self.seen().iter().filter(|(n, _)| n == event).count()
    }

    /// Forgets everything received so far.
    pub fn clear(&mut self) {
        self.seen();
        self.buffer.clear();
    }

    /// Emits `event` with `payload` and waits for the ack (bounded).
    pub async fn ack(&self, event: &str, payload: Value) -> Value {
        let (tx, rx) = oneshot::channel::<Value>();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        self.client
            .emit_with_ack(event, payload, WAIT, move |p, _| {
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    // rust_socketio hands ack arguments over wrapped in one more array.
                    let _ = tx.send(chat_shared::unwrap_single(first(p)));
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        tokio::time::timeout(WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("no ack for {event} within {WAIT:?}"))
            .expect("ack sender dropped")
    }

    /// Emits without asking for an ack.
    pub async fn emit(&self, event: &str, payload: Value) {
        self.client.emit(event, payload).await.expect("emit");
    }

    /// A planned leave.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
    }
}

/// The error code of a refused ack.
pub fn err_code(ack: &Value) -> &str {
    assert_eq!(ack["ok"], json!(false), "expected a refusal, got {ack}");
    ack["error"]["code"].as_str().unwrap_or("")
}

/// Asserts an ack succeeded and returns it.
pub fn ok(ack: Value) -> Value {
    assert_eq!(ack["ok"], json!(true), "expected success, got {ack}");
    ack
}
