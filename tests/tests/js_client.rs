//! A stock client from another language: the official Socket.IO JavaScript
//! client (tests/js, from npm) runs every event of the contract against a
//! real server, over WebSocket and over HTTP long-polling.

use chat_e2e::TestServer;
use chat_e2e::js::{js_dir, node};

/// Runs `script` from tests/js against a fresh server with `args` after
/// its URL; returns whether it exited 0, and what it printed.
async fn run_script(script: &str, args: &[&str]) -> (bool, String) {
    let server = TestServer::start(TestServer::config()).await;
    let result = run_script_on(&server.url(), script, args).await;
    server.stop().await.unwrap();
    result
}

/// Runs `script` against the server at `url`.
async fn run_script_on(url: &str, script: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("node")
        .arg(js_dir().join(script))
        .arg(url)
        .args(args)
        .output()
        .await
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn contract_over(transport: &str) {
    if node().is_none() {
        return;
    }
    let (ok, text) = run_script("contract.js", &[transport, "admin-secret"]).await;
    assert!(ok, "the JavaScript client over {transport}:\n{text}");
    assert!(
        text.contains(&format!("contract over {transport}: ok")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_js_client_over_websocket() {
    contract_over("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_js_client_over_long_polling() {
    contract_over("polling").await;
}

async fn accounts_over(transport: &str) {
    if node().is_none() {
        return;
    }
    let (ok, text) = run_script("accounts.js", &[transport]).await;
    assert!(
        ok,
        "accounts with the JavaScript client over {transport}:\n{text}"
    );
    assert!(
        text.contains(&format!("accounts over {transport}: ok")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_with_the_official_js_client_over_websocket() {
    accounts_over("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_with_the_official_js_client_over_long_polling() {
    accounts_over("polling").await;
}

/// 500 clients over `transport` that emit right at connect: every first
/// event is answered.
async fn first_events_over(transport: &str) {
    if node().is_none() {
        return;
    }
    let (ok, text) = run_script("first_event.js", &[transport, "500"]).await;
    assert!(
        ok && text.contains("first events: 500 acked of 500"),
        "first events over {transport}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_first_event_is_answered_over_websocket() {
    first_events_over("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_first_event_is_answered_over_long_polling() {
    first_events_over("polling").await;
}

/// The contract and accounts scripts against node B of a two-node cluster
/// on one Redis, while node A runs beside it: to a client, a node of a
/// cluster is the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_js_client_against_a_cluster_node() {
    if node().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = chat_server::store::redis::LocalRedis::for_test(dir.path(), false) else {
        return;
    };
    let a = TestServer::start(TestServer::clustered(&redis.url(), "node-a")).await;
    let b = TestServer::start(TestServer::clustered(&redis.url(), "node-b")).await;
    for (script, done) in [
        ("contract.js", "contract over websocket: ok"),
        ("accounts.js", "accounts over websocket: ok"),
    ] {
        let (ok, text) = run_script_on(&b.url(), script, &["websocket", "admin-secret"]).await;
        assert!(
            ok && text.contains(done),
            "{script} against a cluster node:\n{text}"
        );
    }
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}
