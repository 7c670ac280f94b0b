//! What an operator relies on: `/metrics` (parsed by a Prometheus text
//! parser, checked against what the test did, and the same counts in
//! `admin:stats`), `--metrics-bind`, `/healthz` and `/readyz` (with a store
//! that fails), `--cors-origin`, and the binary's logs (stderr, JSON
//! lines, never message text or passwords), `--version` and `--check`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chat_e2e::certs::TestCa;
use chat_e2e::http::{get, request};
use chat_e2e::server_process::ServerProcess;
use chat_e2e::{TestClient, TestServer, WAIT, err_code, ok, workspace_binary};
use chat_server::Config;
use chat_server::store::{FaultyStore, MemoryStore, Store};
use serde_json::{Value, json};

/// The samples of a scrape, by name and labels (`name{a="x",b="y"}`,
/// labels sorted).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn parse(body: &str) -> Scrape {
        let lines = body.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
        let mut samples = HashMap::new();
        for s in scrape.samples {
            let mut labels: Vec<_> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            labels.sort();
            let key = if labels.is_empty() {
                s.metric.clone()
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => continue,
            };
            samples.insert(key, value);
        }
        Scrape(samples)
    }

    /// A sample's value; 0 when absent (a labelled counter never touched).
    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }
}

async fn scrape(addr: SocketAddr) -> Scrape {
    Scrape::parse(&get(addr, "/metrics").await)
}

/// Scrapes until `pred` holds (the server counts some things after it
/// answered), at most [`WAIT`].
async fn scrape_until(addr: SocketAddr, pred: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = scrape(addr).await;
        if pred(&s) || tokio::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn fast() -> Config {
    Config {
        rate: 0.0,
        event_rate: 0.0,
        stats_interval: std::time::Duration::from_millis(100),
        ..TestServer::config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_clients_did_and_admin_stats_agree() {
    let server = TestServer::start(fast()).await;
    let url = server.url();
    let mut alice = TestClient::chat(&url, "alice").await;
    let mut bob = TestClient::chat(&url, "bob").await;
    ok(alice.ack("room:join", json!({"room": "#ops"})).await);
    ok(bob.ack("room:join", json!({"room": "#ops"})).await);
    for i in 0..3 {
        ok(alice
            .ack(
                "room:message",
                json!({"room": "#ops", "text": format!("m{i}")}),
            )
            .await);
    }
    ok(alice
        .ack("dm:message", json!({"to": "bob", "text": "psst"}))
        .await);
    ok(bob
        .ack("global:message", json!({"text": "hello all"}))
        .await);
    bob.next_where("dm:message", |m| m["text"] == "psst").await;
    alice
        .next_where("global:message", |m| m["text"] == "hello all")
        .await;
    // One refused request, one refused connect.
    let refused = alice
        .ack("room:message", json!({"room": "#elsewhere", "text": "x"}))
        .await;
    assert_eq!(err_code(&refused), "not_member");
    assert!(
        TestClient::connect(&url, json!({"username": "not valid!"}))
            .await
            .is_err()
    );

    let s = scrape(server.addr).await;
    assert_eq!(s.get("chat_messages_total{kind=\"room\"}"), 3.0);
    assert_eq!(s.get("chat_messages_total{kind=\"dm\"}"), 1.0);
    assert_eq!(s.get("chat_messages_total{kind=\"global\"}"), 1.0);
    assert_eq!(s.get("chat_messages_total{kind=\"broadcast\"}"), 0.0);
    // Three room messages to two members, one DM, one global to both.
    assert_eq!(s.get("chat_deliveries_total"), 9.0);
    assert_eq!(s.get("chat_dropped_packets_total"), 0.0);
    assert_eq!(s.get("chat_connects_total{session=\"fresh\"}"), 2.0);
    assert_eq!(s.get("chat_connects_total{session=\"recovered\"}"), 0.0);
    assert_eq!(
        s.get("chat_connect_refusals_total{code=\"invalid_username\"}"),
        1.0
    );
    assert_eq!(s.get("chat_errors_total{code=\"not_member\"}"), 1.0);
    assert_eq!(s.get("chat_store_write_seconds_count"), 5.0);
    assert_eq!(s.get("chat_users_connected"), 2.0);
    assert_eq!(s.get("chat_rooms"), 1.0);
    assert!(s.get("process_resident_memory_bytes") > 1e6);
    let version = format!(
        "chat_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(s.get(&version), 1.0, "{version}");
    assert!(s.get("process_cpu_seconds_total") > 0.0);

    // The admin stats come from the same counters.
    let mut admin = TestClient::admin(&url, "admin-secret").await.unwrap();
    let stats = admin
        .next_where("admin:stats", |st| st["messagesTotal"] == 5)
        .await;
    assert_eq!(stats["errorsTotal"], 1, "{stats}");
    assert_eq!(stats["online"], 2, "{stats}");

    bob.disconnect().await;
    let s = scrape_until(server.addr, |s| s.get("chat_users_connected") == 1.0).await;
    assert_eq!(s.get("chat_users_connected"), 1.0);
    assert_eq!(
        s.get("chat_disconnects_total{reason=\"client namespace disconnect\"}"),
        1.0
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_is_counted_as_recovered() {
    let server = TestServer::start(fast()).await;
    // An unplanned loss: the network drops the connection.
    let proxy = chat_e2e::Proxy::start(server.addr).await;
    let carol = TestClient::chat(&proxy.url(), "carol").await;
    let token = carol.token();
    proxy.cut();
    scrape_until(server.addr, |s| s.get("chat_users_connected") == 0.0).await;
    let _back = TestClient::connect(
        &server.url(),
        json!({"username": "carol", "session": token}),
    )
    .await
    .unwrap();
    let s = scrape_until(server.addr, |s| {
        s.get("chat_connects_total{session=\"recovered\"}") == 1.0
    })
    .await;
    assert_eq!(s.get("chat_connects_total{session=\"recovered\"}"), 1.0);
    assert_eq!(s.get("chat_connects_total{session=\"fresh\"}"), 1.0);
    assert_eq!(
        s.get("chat_disconnects_total{reason=\"transport close\"}")
            + s.get("chat_disconnects_total{reason=\"transport error\"}"),
        1.0
    );
    server.stop().await.unwrap();
}

/// A port nobody listens on now (bound, then released).
async fn free_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_bind_serves_metrics_on_their_own_address() {
    let metrics_addr = free_port().await;
    let server = TestServer::start(Config {
        metrics_bind: Some(metrics_addr),
        ..fast()
    })
    .await;
    let _alice = TestClient::chat(&server.url(), "alice").await;
    let s = scrape(metrics_addr).await;
    assert_eq!(s.get("chat_users_connected"), 1.0);
    assert_eq!(get(metrics_addr, "/healthz").await, "ok\n");
    let main = request(server.addr, "GET", "/metrics", &[]).await.unwrap();
    assert_eq!(main.status, 404, "no /metrics on the main port: {main:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_the_store_cannot_write_and_healthz_does_not() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new(1000))));
    let store: Arc<dyn Store> = faulty.clone();
    let server = TestServer::start_on(TestServer::config(), store).await;
    assert_eq!(get(server.addr, "/healthz").await, "ok\n");
    assert_eq!(get(server.addr, "/readyz").await, "ready\n");

    faulty.fail_writes(true);
    let ready = request(server.addr, "GET", "/readyz", &[]).await.unwrap();
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.contains("store unavailable"), "{ready:?}");
    assert_eq!(get(server.addr, "/healthz").await, "ok\n");

    faulty.fail_writes(false);
    assert_eq!(get(server.addr, "/readyz").await, "ready\n");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_message_write_is_counted_as_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(chat_server::store::SqliteStore::open(dir.path()).unwrap());
    let store: Arc<dyn Store> = sqlite.clone();
    let server = TestServer::start_on(
        Config {
            store: chat_server::config::StoreKind::Sqlite,
            data_dir: dir.path().to_path_buf(),
            ..fast()
        },
        store,
    )
    .await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    ok(alice.ack("room:join", json!({"room": "#disk"})).await);
    ok(alice
        .ack("room:message", json!({"room": "#disk", "text": "kept"}))
        .await);
    // The store stops under the server: the next write fails.
    sqlite.close().await;
    let refused = alice
        .ack("room:message", json!({"room": "#disk", "text": "x"}))
        .await;
    assert_eq!(err_code(&refused), "unavailable");
    let s = scrape(server.addr).await;
    assert_eq!(s.get("chat_store_errors_total{op=\"message\"}"), 1.0);
    assert_eq!(s.get("chat_store_write_seconds_count"), 1.0);
    assert_eq!(s.get("chat_messages_total{kind=\"room\"}"), 1.0);
    assert_eq!(s.get("chat_errors_total{code=\"unavailable\"}"), 1.0);
    let _ = server.stop().await;
}

const POLL: &str = "/socket.io/?EIO=4&transport=polling";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_requests_are_refused_unless_allowed() {
    let server = TestServer::start(Config {
        cors_origins: vec!["https://app.example".into()],
        ..TestServer::config()
    })
    .await;
    let addr = server.addr;
    // No Origin (a non-browser client) and the server's own origin: served.
    let plain = request(addr, "GET", POLL, &[]).await.unwrap();
    assert_eq!(plain.status, 200, "{plain:?}");
    let own = format!("http://{addr}");
    let same = request(addr, "GET", POLL, &[("Origin", &own)])
        .await
        .unwrap();
    assert_eq!(same.status, 200, "{same:?}");

    // A listed origin: served, with the headers a browser needs.
    let listed = request(addr, "GET", POLL, &[("Origin", "https://app.example")])
        .await
        .unwrap();
    assert_eq!(listed.status, 200, "{listed:?}");
    assert!(listed.body.contains("\"sid\""), "{listed:?}");
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        listed.header("access-control-allow-credentials"),
        Some("true")
    );
    let preflight = request(
        addr,
        "OPTIONS",
        POLL,
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );

    // Anyone else: refused, over polling and for a WebSocket upgrade.
    let other = request(addr, "GET", POLL, &[("Origin", "https://evil.example")])
        .await
        .unwrap();
    assert_eq!(other.status, 403, "{other:?}");
    assert!(other.header("access-control-allow-origin").is_none());
    let upgrade = request(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=websocket",
        &[
            ("Origin", "https://evil.example"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    )
    .await
    .unwrap();
    assert_eq!(upgrade.status, 403, "{upgrade:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_every_other_origin_is_refused() {
    let server = TestServer::start(TestServer::config()).await;
    let res = request(
        server.addr,
        "GET",
        POLL,
        &[("Origin", "https://app.example")],
    )
    .await
    .unwrap();
    assert_eq!(res.status, 403, "{res:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_on_stderr_never_carry_message_text_or_passwords() {
    let mut server = ServerProcess::start(
        &[
            "--store",
            "memory",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        // The most verbose level, where libraries print whole packets.
        &[("RUST_LOG", "trace")],
    );
    let addr = server.addr().await;
    let url = format!("http://{addr}");
    let text = "the-secret-text-7f3a";
    let password = "hunter2-b9c1";
    // A handshake carrying a password (whether this server takes
    // passwords or not, it must never print it).
    let _ = TestClient::connect(&url, json!({"username": "carol", "password": password})).await;
    let mut alice = TestClient::chat(&url, "alice").await;
    let bob = TestClient::chat(&url, "bob").await;
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": text}))
        .await);
    alice.next_where("dm:message", |m| m["text"] == text).await;
    bob.disconnect().await;
    server.wait_for("disconnect").await;
    let (stdout, lines) = server.stop().await;

    assert!(stdout.is_empty(), "logs go to stderr, not stdout: {stdout}");
    let mut connects = 0;
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        assert!(!line.contains(text), "message text in the log: {line}");
        assert!(!line.contains(password), "a password in the log: {line}");
        if v["message"] == "connect" && v["user"] == "alice" {
            connects += 1;
        }
    }
    assert_eq!(
        connects,
        1,
        "one connect line for alice:\n{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let mut server = ServerProcess::start(&["--store", "memory", "--bind", "127.0.0.1:0"], &[]);
    let addr = server.addr().await;
    let _alice = TestClient::chat(&format!("http://{addr}"), "alice").await;
    server.wait_for("connect").await;
    let (stdout, lines) = server.stop().await;
    assert!(stdout.is_empty(), "{stdout}");
    assert!(lines.iter().any(|l| l.contains("INFO")), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "colour codes: {lines:?}"
    );
}

/// Runs the binary to completion: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(workspace_binary("chat-server", "chat-server"))
        .args(args)
        .output()
        .expect("run chat-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_prints_the_version() {
    let (ok, out, _) = run(&["--version"]);
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("chat-server {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_validates_tls_files_and_the_store_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let ca = TestCa::new("check CA");
    let (cert, key) = ca.write_server_cert(dir.path(), "server");
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    let data = p("data");

    let (ok, out, err) = run(&[
        "--check",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--data-dir",
        &data,
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("would serve https://127.0.0.1:3000"), "{out}");
    assert!(
        out.contains("HTTP API on https://127.0.0.1:3000/api/v1 (sign-up open"),
        "{out}"
    );
    assert!(out.contains("configuration ok"), "{out}");
    // Where the limit on failed logins takes the client's address from.
    assert!(
        out.contains("X-Forwarded-For when the peer is 127.0.0.1 or ::1"),
        "{out}"
    );

    // A missing file, a file that is not PEM, a key of another certificate:
    // each refused, naming the file.
    let missing = p("nope.pem");
    let (ok, _, err) = run(&["--check", "--tls-cert", &missing, "--tls-key", &key]);
    assert!(!ok);
    assert!(
        err.contains(&missing) && err.contains("cannot read"),
        "{err}"
    );

    let garbage = p("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let (ok, _, err) = run(&["--check", "--tls-cert", &garbage, "--tls-key", &key]);
    assert!(!ok);
    assert!(
        err.contains(&garbage) && err.contains("no certificate"),
        "{err}"
    );

    let other_key = p("other-key.pem");
    std::fs::write(&other_key, ca.server_cert("other").1).unwrap();
    let (ok, _, err) = run(&["--check", "--tls-cert", &cert, "--tls-key", &other_key]);
    assert!(!ok);
    assert!(err.contains(&other_key) && err.contains(&*cert), "{err}");

    // A data directory that cannot be created.
    let blocker = p("file");
    std::fs::write(&blocker, "").unwrap();
    let (ok, _, err) = run(&["--check", "--data-dir", &format!("{blocker}/data")]);
    assert!(!ok);
    assert!(err.contains(&blocker), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_to_start_on_a_bad_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, TestCa::new("x").server_cert("x").1).unwrap();
    let (ok, _, err) = run(&[
        "--store",
        "memory",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        &cert.to_string_lossy(),
        "--tls-key",
        &key.to_string_lossy(),
    ]);
    assert!(!ok, "started with a broken certificate");
    assert!(err.contains(&*cert.to_string_lossy()), "{err}");
}
