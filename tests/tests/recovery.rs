//! Capability 11: automatic reconnection restores identity, rooms and
//! missed messages (application-level recovery), takeover of a half-open
//! session, and the username kept during the recovery window.

use chat_e2e::{Opts, Proxy, TestClient, TestServer, ok};
use serde_json::{Value, json};

/// Resumes `name`'s session with `token` after the message `offset`.
async fn resume(
    url: &str,
    name: &str,
    token: &str,
    offset: Option<&str>,
    polling: bool,
) -> TestClient {
    let mut auth = json!({"username": name, "session": token});
    if let Some(o) = offset {
        auth["offset"] = json!(o);
    }
    TestClient::connect_with(
        url,
        auth,
        Opts {
            polling,
            ..Opts::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("resume refused: {e}"))
}

/// alice, connected through a proxy, and bob, connected directly, both in
/// `rooms`; then alice's network is cut and bob has seen her go. Returns the
/// server (keep it alive), bob, and alice's session token.
async fn alice_drops(
    config: chat_server::Config,
    rooms: &[&str],
) -> (TestServer, Proxy, TestClient, String) {
    let server = TestServer::start(config).await;
    let proxy = Proxy::start(server.addr).await;
    let alice = TestClient::chat(&proxy.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    for room in rooms {
        ok(alice.ack("room:join", json!({"room": room})).await);
        ok(bob.ack("room:join", json!({"room": room})).await);
    }
    let token = alice.token();
    proxy.cut();
    bob.next_where("presence", |p| p["event"] == "disconnect")
        .await;
    (server, proxy, bob, token)
}

async fn recovery_after_a_dropped_transport(polling: bool) {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = Proxy::start(server.addr).await;
    let opts = Opts {
        polling,
        ..Opts::default()
    };
    let mut alice = TestClient::connect_with(&proxy.url(), json!({"username": "alice"}), opts)
        .await
        .unwrap();
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let token = alice.token();
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    ok(alice.ack("room:join", json!({"room": "#b"})).await);
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    ok(bob
        .ack("room:message", json!({"room": "#a", "text": "before"}))
        .await);
    let last = alice.next("room:message").await;
    let offset = last["id"].as_str().unwrap().to_owned();

    // The network goes away.
    proxy.set_down(true);
    proxy.cut();
    if !polling {
        // A WebSocket's close is seen at once. A long-polling session has
        // no connection of its own to lose: the server keeps it until the
        // ping timeout, so the resume below is a takeover of it.
        bob.next_where("presence", |p| {
            p["event"] == "disconnect" && p["user"] == "alice"
        })
        .await;
    }

    // Traffic while alice is gone.
    let mut sent = Vec::new();
    for i in 0..5 {
        let a = ok(bob
            .ack(
                "room:message",
                json!({"room": "#a", "text": format!("missed {i}")}),
            )
            .await);
        sent.push(a["id"].as_str().unwrap().to_owned());
    }
    for (event, payload) in [
        (
            "dm:message",
            json!({"to": "alice", "text": "dm while away"}),
        ),
        ("global:message", json!({"text": "global while away"})),
        ("broadcast:message", json!({"text": "bcast while away"})),
    ] {
        let a = ok(bob.ack(event, payload).await);
        sent.push(a["id"].as_str().unwrap().to_owned());
    }
    // The name is still hers during the window.
    let err = TestClient::connect(&server.url(), json!({"username": "alice"}))
        .await
        .err()
        .unwrap();
    assert!(err.starts_with("username_taken"), "{err}");

    // The network comes back; the client resumes with its token and offset.
    proxy.set_down(false);
    let mut back = resume(&proxy.url(), "alice", &token, Some(&offset), polling).await;
    let s = back.session.clone().unwrap();
    assert_eq!(s["recovered"], true);
    assert_eq!(s["username"], "alice");
    assert_eq!(s["session"], token.as_str());
    assert_eq!(s["rooms"], json!(["#a", "#b"]));
    assert_eq!(s["missed"], sent.len());
    assert_eq!(s["truncated"], false);

    let mut got = Vec::new();
    while got.len() < sent.len() {
        let (name, m) = back.next_of(&chat_e2e::MESSAGE_EVENTS).await;
        assert_eq!(m["replayed"], true, "{name} {m}");
        got.push(m["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        got, sent,
        "every missed message, in order, with its original id"
    );

    // Rooms are really back: live messages arrive, once, not replayed.
    ok(bob
        .ack("room:message", json!({"room": "#a", "text": "live again"}))
        .await);
    let live = back
        .next_where("room:message", |m| m["text"] == "live again")
        .await;
    assert_eq!(live.get("replayed"), None);
    // Each missed message came exactly once: none of them again, live.
    let rest = back.seen();
    for id in &sent {
        assert!(
            !rest.iter().any(|(_, v)| v["id"] == id.as_str()),
            "message {id} delivered twice: {rest:?}"
        );
    }
    // Others see her come back, recovered.
    let p = bob
        .next_where("presence", |p| {
            p["event"] == "connect" && p["user"] == "alice"
        })
        .await;
    assert_eq!(p["recovered"], true);
    let p = bob
        .next_where("presence", |p| p["event"] == "join" && p["user"] == "alice")
        .await;
    assert_eq!(p["recovered"], true);
    assert_eq!(p["room"], "#a");
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_over_websocket() {
    recovery_after_a_dropped_transport(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_over_long_polling() {
    recovery_after_a_dropped_transport(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_session_is_taken_over() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = Proxy::start(server.addr).await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    let alice = TestClient::chat(&proxy.url(), "alice").await;
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    let token = alice.token();
    // Packets stop flowing, but nothing closes: the server still thinks
    // the old socket is alive.
    proxy.freeze();
    let mut back = resume(&server.url(), "alice", &token, None, false).await;
    assert_eq!(back.session.as_ref().unwrap()["recovered"], true);
    assert_eq!(back.session.as_ref().unwrap()["rooms"], json!(["#a"]));
    let who = ok(bob.ack("presence:get", json!({})).await);
    assert_eq!(who["online"], 2, "one alice, not two");
    ok(bob
        .ack(
            "dm:message",
            json!({"to": "alice", "text": "reach the new one"}),
        )
        .await);
    back.next_where("dm:message", |m| m["text"] == "reach the new one")
        .await;
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replaced_socket_is_told_session_replaced() {
    let server = TestServer::start(TestServer::config()).await;
    let mut old = TestClient::chat(&server.url(), "alice").await;
    let token = old.token();
    let _new = resume(&server.url(), "alice", &token, None, false).await;
    let e = old.next("chat:error").await;
    assert_eq!(e["code"], "session_replaced");
    assert_eq!(e["context"]["event"], "session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_to_a_user_in_the_window_is_queued() {
    let (server, _proxy, bob, token) = alice_drops(TestServer::config(), &[]).await;
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "queued"}))
        .await);
    let mut back = resume(&server.url(), "alice", &token, None, false).await;
    assert_eq!(back.session.as_ref().unwrap()["missed"], 1);
    let m = back.next("dm:message").await;
    assert_eq!(
        (m["text"].as_str(), m["replayed"].as_bool()),
        (Some("queued"), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_replay_buffer_reports_truncation() {
    let config = chat_server::Config {
        replay_buffer: 3,
        ..TestServer::config()
    };
    let (server, _proxy, bob, token) = alice_drops(config, &[]).await;
    for i in 0..6 {
        ok(bob
            .ack("global:message", json!({"text": format!("g{i}")}))
            .await);
    }
    let mut back = resume(&server.url(), "alice", &token, None, false).await;
    let s = back.session.clone().unwrap();
    assert_eq!(s["truncated"], true);
    assert_eq!(s["missed"], 3);
    let texts: Vec<Value> = [
        back.next("global:message").await,
        back.next("global:message").await,
        back.next("global:message").await,
    ]
    .iter()
    .map(|m| m["text"].clone())
    .collect();
    assert_eq!(texts, vec![json!("g3"), json!("g4"), json!("g5")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_replay_arrives_whole_and_in_order() {
    let config = chat_server::Config {
        rate: 0.0,
        ..TestServer::config()
    };
    let (server, _proxy, bob, token) = alice_drops(config, &["#busy"]).await;
    // More than a socket's queue holds (1024 packets by default).
    let n = 1500;
    for i in 0..n {
        bob.emit(
            "room:message",
            json!({"room": "#busy", "text": format!("m{i}")}),
        )
        .await;
    }
    ok(bob.ack("presence:get", json!({})).await); // all of them are in
    let mut back = resume(&server.url(), "alice", &token, None, false).await;
    assert_eq!(back.session.as_ref().unwrap()["missed"], n);
    for i in 0..n {
        let m = back.next("room:message").await;
        assert_eq!(m["text"], format!("m{i}"));
    }
}
