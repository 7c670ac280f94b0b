//! Capability 2: `/chat` and `/admin`, each with its own middleware, fully
//! isolated; any other namespace refused.

use chat_e2e::{Opts, TestClient, TestServer, err_code, ok};
use chat_server::Config;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_namespaces_are_refused() {
    let server = TestServer::start(TestServer::config()).await;
    for ns in ["/", "/other"] {
        let opts = Opts {
            namespace: ns.into(),
            ..Opts::default()
        };
        let err = TestClient::connect_with(&server.url(), json!({"username": "x"}), opts)
            .await
            .err();
        assert_eq!(err.as_deref(), Some("Invalid namespace"), "{ns}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_the_right_token() {
    let server = TestServer::start(TestServer::config()).await;
    for token in ["", "wrong", "admin-secre", "admin-secret-"] {
        let err = TestClient::admin(&server.url(), token).await.err().unwrap();
        assert!(err.starts_with("unauthorized: "), "{token:?}: {err}");
    }
    TestClient::admin(&server.url(), "admin-secret")
        .await
        .unwrap();

    // Without a configured token every admin connect is refused.
    let open = TestServer::start(Config::default()).await;
    let err = TestClient::admin(&open.url(), "").await.err().unwrap();
    assert!(err.starts_with("unauthorized: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sees_a_snapshot_and_every_happening_but_no_text() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    ok(alice.ack("room:join", json!({"room": "#ops"})).await);
    let mut admin = TestClient::admin(&server.url(), "admin-secret")
        .await
        .unwrap();
    let snap = admin.next("admin:snapshot").await;
    assert_eq!(snap["online"], 1);
    assert_eq!(snap["users"][0]["username"], "alice");
    assert_eq!(snap["users"][0]["rooms"], json!(["#ops"]));
    // A socket id is a transport credential: never on /admin (contract v2).
    assert!(snap["users"][0].get("sid").is_none(), "{snap}");
    assert!(
        ["websocket", "polling"].contains(&snap["users"][0]["transport"].as_str().unwrap_or("")),
        "{snap}"
    );
    assert!(
        snap["users"][0]["connectedAt"]
            .as_u64()
            .is_some_and(|t| t > 0)
    );
    assert_eq!(snap["rooms"], json!([{"room": "#ops", "members": 1}]));

    let bob = TestClient::chat(&server.url(), "bob").await;
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "connect")
        .await;
    assert_eq!(ev["user"], "bob");
    assert!(ev["ts"].as_u64().is_some());
    ok(bob.ack("room:join", json!({"room": "ops"})).await);
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "join")
        .await;
    assert_eq!(
        (ev["user"].as_str(), ev["room"].as_str()),
        (Some("bob"), Some("#ops"))
    );
    ok(bob
        .ack(
            "room:message",
            json!({"room": "#ops", "text": "top secret words"}),
        )
        .await);
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "message")
        .await;
    assert_eq!(ev["kind"], "room");
    assert_eq!(ev["bytes"], 16);
    assert!(
        !ev.to_string().contains("secret words"),
        "the admin feed never carries text: {ev}"
    );
    err_code(
        &bob.ack("room:message", json!({"room": "#nope", "text": "x"}))
            .await,
    );
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "error")
        .await;
    assert_eq!(ev["code"], "not_member");
    let _ = TestClient::connect(&server.url(), json!({"username": "BOB"})).await;
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "rejected")
        .await;
    assert_eq!(ev["code"], "username_taken");
    bob.disconnect().await;
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "disconnect")
        .await;
    assert_eq!(ev["user"], "bob");
    assert_eq!(ev["reason"], "client namespace disconnect");
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_gets_stats_every_interval() {
    let server = TestServer::start(Config {
        stats_interval: Duration::from_millis(200),
        ..TestServer::config()
    })
    .await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    ok(alice.ack("global:message", json!({"text": "one"})).await);
    let mut admin = TestClient::admin(&server.url(), "admin-secret")
        .await
        .unwrap();
    let stats = admin
        .next_where("admin:stats", |s| s["messagesTotal"] == 1)
        .await;
    assert_eq!(stats["online"], 1);
    for key in ["rooms", "messagesPerSec", "errorsTotal", "uptimeMs"] {
        assert!(stats[key].is_number(), "{key} in {stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_is_read_only_and_isolated_from_chat() {
    let server = TestServer::start(TestServer::config()).await;
    let mut admin = TestClient::admin(&server.url(), "admin-secret")
        .await
        .unwrap();
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    for (event, payload) in [
        ("global:message", json!({"text": "from admin"})),
        ("room:join", json!({"room": "#x"})),
        ("anything", json!({})),
    ] {
        let ack = admin.ack(event, payload).await;
        assert_eq!(err_code(&ack), "read_only");
        assert_eq!(ack["error"]["context"]["event"], event);
        let e = admin.next("chat:error").await;
        assert_eq!(e["code"], "read_only");
    }
    // Nothing the admin sent reached /chat: the next global alice sees is her own.
    ok(alice.ack("global:message", json!({"text": "mine"})).await);
    let g = alice.next("global:message").await;
    assert_eq!(g["text"], "mine");
    // And chat traffic is not delivered to /admin sockets as chat events.
    admin
        .next_where("admin:event", |e| e["type"] == "message")
        .await;
    assert_eq!(admin.count("global:message"), 0);
    assert_eq!(admin.count("presence"), 0);
}
