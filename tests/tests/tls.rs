//! TLS end to end, with certificates made by the test (`rcgen`): the
//! official JavaScript client over `wss://` and over long-polling on
//! `https://`, raw HTTPS requests, and the real binary reloading its
//! certificate on SIGHUP while a client stays connected.

use std::path::Path;
use std::process::Stdio;

use chat_e2e::certs::TestCa;
use chat_e2e::http::request_tls;
use chat_e2e::js::{js_dir, node};
use chat_e2e::server_process::ServerProcess;
use chat_e2e::{Opts, TestClient, TestServer, WAIT, ok};
use chat_server::Config;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn tls_config(cert: &Path, key: &Path) -> Config {
    Config {
        tls_cert: Some(cert.to_path_buf()),
        tls_key: Some(key.to_path_buf()),
        ..TestServer::config()
    }
}

async fn contract_over_tls(transport: &str) {
    if node().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("chat test CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let (cert, key) = ca.write_server_cert(dir.path(), "chat-server");
    let server = TestServer::start(tls_config(&cert, &key)).await;
    let url = format!("https://localhost:{}", server.addr.port());
    let out = tokio::process::Command::new("node")
        .arg(js_dir().join("contract.js"))
        .args([&url, transport, "admin-secret"])
        // Node trusts the test's authority, and only through this.
        .env("NODE_EXTRA_CA_CERTS", &ca_file)
        .output()
        .await
        .expect("run node");
    server.stop().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains(&format!("contract over {transport}: ok")),
        "the JavaScript client over {transport} on {url}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_client_over_wss() {
    contract_over_tls("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_client_over_long_polling_on_https() {
    contract_over_tls("polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_only_with_a_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("chat test CA");
    let (cert, key) = ca.write_server_cert(dir.path(), "chat-server");
    let server = TestServer::start(tls_config(&cert, &key)).await;

    let res = request_tls(
        server.addr,
        std::slice::from_ref(&ca.der),
        "GET",
        "/healthz",
        &[],
    )
    .await
    .expect("HTTPS with the right authority");
    assert_eq!((res.status, res.body.as_str()), (200, "ok\n"));
    let poll = request_tls(
        server.addr,
        std::slice::from_ref(&ca.der),
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(poll.status, 200, "{poll:?}");
    assert!(poll.body.contains("\"sid\""), "{poll:?}");

    // A client that does not trust the certificate's authority refuses it.
    let stranger = TestCa::new("some other CA");
    assert!(
        request_tls(
            server.addr,
            std::slice::from_ref(&stranger.der),
            "GET",
            "/healthz",
            &[]
        )
        .await
        .is_err()
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = chat_e2e::http::request(server.addr, "GET", "/healthz", &[]).await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    server.stop().await.unwrap();
}

/// chat-tui's Socket.IO library (rust_socketio, OpenSSL through
/// native-tls) over `wss://` and HTTPS long-polling, trusting the test's
/// authority as `chat-tui --ca-file` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_of_chat_tui_over_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("chat test CA");
    let (cert, key) = ca.write_server_cert(dir.path(), "chat-server");
    let server = TestServer::start(tls_config(&cert, &key)).await;
    let url = format!("https://localhost:{}", server.addr.port());
    let root = native_tls::Certificate::from_pem(ca.pem.as_bytes()).unwrap();
    let tls = native_tls::TlsConnector::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let opts = |polling| Opts {
        polling,
        tls: Some(tls.clone()),
        ..Opts::default()
    };
    let mut alice = TestClient::connect_with(&url, json!({"username": "alice"}), opts(false))
        .await
        .expect("alice over wss://");
    let bob = TestClient::connect_with(&url, json!({"username": "bob"}), opts(true))
        .await
        .expect("bob over https polling");
    ok(alice.ack("room:join", json!({"room": "#tls"})).await);
    ok(bob.ack("room:join", json!({"room": "#tls"})).await);
    ok(bob
        .ack("room:message", json!({"room": "#tls", "text": "encrypted"}))
        .await);
    alice
        .next_where("room:message", |m| m["text"] == "encrypted")
        .await;
    // Without the authority, the handshake fails.
    assert!(
        TestClient::connect(&url, json!({"username": "carol"}))
            .await
            .is_err()
    );
    server.stop().await.unwrap();
}

/// The body of `GET path` over TLS, which must answer 200.
async fn served_path(
    addr: std::net::SocketAddr,
    roots: &[rustls::pki_types::CertificateDer<'static>],
    path: &str,
) -> String {
    let res = request_tls(addr, roots, "GET", path, &[]).await.unwrap();
    assert_eq!(res.status, 200, "{res:?}");
    res.body
}

/// A `node tls_reload.js` run: its stdin and its stdout lines.
struct Steady {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    out: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Steady {
    async fn start(url: &str, ca_bundle: &Path) -> Steady {
        let mut child = tokio::process::Command::new("node")
            .arg(js_dir().join("tls_reload.js"))
            .arg(url)
            .env("NODE_EXTRA_CA_CERTS", ca_bundle)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        Steady { child, stdin, out }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.out.next_line())
            .await
            .expect("a line from node in time")
            .expect("read node's stdout")
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_keeps_connections() {
    if node().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let bundle = dir.path().join("cas.pem");
    std::fs::write(&bundle, format!("{}{}", old_ca.pem, new_ca.pem)).unwrap();
    let (cert, key) = old_ca.write_server_cert(dir.path(), "before");
    let (cert_arg, key_arg) = (cert.to_string_lossy(), key.to_string_lossy());
    let mut server = ServerProcess::start(
        &[
            "--store",
            "memory",
            "--bind",
            "127.0.0.1:0",
            "--tls-cert",
            &cert_arg,
            "--tls-key",
            &key_arg,
        ],
        &[],
    );
    let addr = server.addr().await;
    let mut steady = Steady::start(&format!("https://localhost:{}", addr.port()), &bundle).await;
    assert_eq!(steady.line().await, "connected");

    // The renewed certificate (another authority, so the test can tell
    // which one is served) replaces the files; SIGHUP.
    new_ca.write_server_cert(dir.path(), "after");
    server.signal("HUP");
    server.wait_for("TLS certificate reloaded").await;
    let (new_root, old_root) = ([new_ca.der.clone()], [old_ca.der.clone()]);
    let served = |roots| request_tls(addr, roots, "GET", "/healthz", &[]);
    assert!(served(&new_root).await.is_ok(), "new certificate");
    assert!(served(&old_root).await.is_err(), "old certificate");

    // A broken file on the next reload: the current certificate stays.
    std::fs::write(&cert, "half-written").unwrap();
    server.signal("HUP");
    server
        .wait_for("still serving the previous certificate")
        .await;
    assert!(served(&new_root).await.is_ok());

    // Both reloads are counted, for alerts on a renewal gone wrong.
    let metrics = served_path(addr, &new_root, "/metrics").await;
    assert!(
        metrics.contains("chat_tls_reloads_total{result=\"ok\"} 1\n")
            && metrics.contains("chat_tls_reloads_total{result=\"failed\"} 1\n"),
        "{metrics}"
    );

    // The client connected before both reloads is still there.
    steady.stdin.write_all(b"check\n").await.unwrap();
    let verdict = steady.line().await;
    assert_eq!(verdict, "still connected");
    let status = tokio::time::timeout(WAIT, steady.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    server.stop().await;
}
