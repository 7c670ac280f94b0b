//! Capability 1: connect with a username; accepted or refused; a socket id;
//! forgotten on disconnect, with the reason.

use chat_e2e::{TestClient, TestServer};
use chat_server::Config;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_connects_and_gets_a_session() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "Alice").await;
    let s = alice.session.clone().unwrap();
    assert_eq!(s["username"], "Alice", "the display form keeps its case");
    assert!(s["sid"].as_str().is_some_and(|x| !x.is_empty()));
    assert!(
        s["session"].as_str().is_some_and(|x| x.len() >= 32),
        "an opaque, unguessable token"
    );
    assert_eq!(s["recovered"], false);
    assert_eq!(s["rooms"], json!([]));
    assert_eq!(s["missed"], 0);
    assert_eq!(s["truncated"], false);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_usernames_are_refused_with_invalid_username() {
    let server = TestServer::start(TestServer::config()).await;
    for auth in [
        json!({"username": ""}),
        json!({"username": "has space"}),
        json!({"username": "x".repeat(33)}),
        json!({"username": "\u{1b}[31mred"}),
        json!({"username": 42}),
        json!({}),
    ] {
        let err = TestClient::connect(&server.url(), auth.clone()).await.err();
        let err = err.unwrap_or_else(|| panic!("{auth} was accepted"));
        assert!(err.starts_with("invalid_username: "), "{auth}: {err}");
    }
    // The server is still there for a good name.
    TestClient::chat(&server.url(), "ok_name-1.x").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_username_is_refused_case_insensitively() {
    let server = TestServer::start(TestServer::config()).await;
    let _alice = TestClient::chat(&server.url(), "alice").await;
    let err = TestClient::connect(&server.url(), json!({"username": "ALICE"}))
        .await
        .err()
        .unwrap();
    assert!(err.starts_with("username_taken: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_refuses_with_server_full() {
    let server = TestServer::start(Config {
        max_connections: 2,
        ..TestServer::config()
    })
    .await;
    let _a = TestClient::chat(&server.url(), "a").await;
    let b = TestClient::chat(&server.url(), "b").await;
    let err = TestClient::connect(&server.url(), json!({"username": "c"}))
        .await
        .err()
        .unwrap();
    assert!(err.starts_with("server_full: "), "{err}");
    b.disconnect().await;
    // A place is free again once someone leaves.
    let mut a2 = None;
    for _ in 0..50 {
        if let Ok(c) = TestClient::connect(&server.url(), json!({"username": "c"})).await {
            a2 = Some(c);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(a2.is_some(), "c could not connect after b left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_session_token_is_refused_with_invalid_session() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    let err = TestClient::connect(
        &server.url(),
        json!({"username": "mallory", "session": alice.token()}),
    )
    .await
    .err()
    .unwrap();
    assert!(err.starts_with("invalid_session: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_token_just_gets_a_fresh_session() {
    let server = TestServer::start(TestServer::config()).await;
    let c = TestClient::connect(
        &server.url(),
        json!({"username": "bob", "session": "no-such-token", "offset": "99"}),
    )
    .await
    .unwrap();
    assert_eq!(c.session.as_ref().unwrap()["recovered"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_disconnect_forgets_the_user_and_says_why() {
    let server = TestServer::start(TestServer::config()).await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    bob.next_where("presence", |p| {
        p["event"] == "connect" && p["user"] == "alice"
    })
    .await;
    alice.disconnect().await;
    let p = bob
        .next_where("presence", |p| p["event"] == "disconnect")
        .await;
    assert_eq!(p["user"], "alice");
    assert_eq!(p["reason"], "client namespace disconnect");
    assert_eq!(p["online"], 1);
    let who = bob.ack("presence:get", json!({})).await;
    assert_eq!(who["users"], json!(["bob"]));
    // The username is free at once after a planned leave.
    TestClient::chat(&server.url(), "alice").await;
}
