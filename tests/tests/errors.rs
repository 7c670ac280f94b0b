//! Capabilities 8 and 12: every client event is acknowledged, validated,
//! and answered with success or a structured error `{code, message,
//! context}`, also sent as `chat:error`. One test per error code a client
//! can cause (connect refusals are in identity.rs and namespaces.rs,
//! `session_replaced` in recovery.rs, `read_only` in namespaces.rs).

use chat_e2e::{TestClient, TestServer, err_code, ok};
use chat_server::Config;
use serde_json::{Value, json};

async fn refused(c: &mut TestClient, event: &str, payload: Value) -> Value {
    let ack = c.ack(event, payload).await;
    let code = err_code(&ack).to_owned();
    let e = c.next("chat:error").await;
    assert_eq!(
        e, ack["error"],
        "chat:error and the ack carry the same object"
    );
    assert_eq!(e["context"]["event"], event);
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(e["code"], code.as_str());
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_payload() {
    let server = TestServer::start(TestServer::config()).await;
    let mut c = TestClient::chat(&server.url(), "alice").await;
    for (event, payload) in [
        ("room:join", json!("general")),
        ("room:join", json!({"room": 7})),
        ("room:message", json!({"room": "#a"})),
        ("dm:message", json!({"text": "x"})),
        ("global:message", json!([1, 2])),
        ("broadcast:message", json!({"text": null})),
        ("presence:get", json!(5)),
    ] {
        let e = refused(&mut c, event, payload.clone()).await;
        assert_eq!(e["code"], "invalid_payload", "{event} {payload}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event() {
    let server = TestServer::start(TestServer::config()).await;
    let mut c = TestClient::chat(&server.url(), "alice").await;
    let e = refused(&mut c, "room:destroy", json!({"room": "#a"})).await;
    assert_eq!(e["code"], "unknown_event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_rules() {
    let server = TestServer::start(Config {
        max_text: 10,
        ..TestServer::config()
    })
    .await;
    let mut c = TestClient::chat(&server.url(), "alice").await;
    let e = refused(&mut c, "global:message", json!({"text": "   \n "})).await;
    assert_eq!(e["code"], "empty_message");
    let e = refused(&mut c, "global:message", json!({"text": "12345678901"})).await;
    assert_eq!(e["code"], "message_too_long");
    assert_eq!(e["context"]["limit"], 10);
    ok(
        c.ack("global:message", json!({"text": "日本語の😀テキスト"}))
            .await,
    ); // 10 characters, more bytes
    for evil in ["\u{1b}[2J\u{1b}[H", "ring\u{7}", "\u{9b}31m", "nul\u{0}"] {
        let e = refused(&mut c, "global:message", json!({"text": evil})).await;
        assert_eq!(e["code"], "invalid_characters", "{evil:?}");
    }
    // Newlines and tabs are fine.
    ok(c.ack("global:message", json!({"text": "a\n\tb"})).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_are_never_relayed() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    refused(
        &mut alice,
        "dm:message",
        json!({"to": "bob", "text": "\u{1b}]0;pwned\u{7}"}),
    )
    .await;
    ok(alice
        .ack("dm:message", json!({"to": "bob", "text": "clean"}))
        .await);
    let m = bob.next("dm:message").await;
    assert_eq!(m["text"], "clean", "the first DM bob sees is the clean one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited() {
    let server = TestServer::start(Config {
        rate: 1.0,
        burst: 3,
        ..TestServer::config()
    })
    .await;
    let mut c = TestClient::chat(&server.url(), "alice").await;
    for _ in 0..3 {
        ok(c.ack("global:message", json!({"text": "x"})).await);
    }
    let e = refused(&mut c, "global:message", json!({"text": "one too many"})).await;
    assert_eq!(e["code"], "rate_limited");
    let wait = e["context"]["retryAfterMs"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 1000, "retryAfterMs {wait}");
    // Only messages count: other requests still work.
    ok(c.ack("presence:get", json!({})).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_acknowledged_with_its_shape() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    let _bob = TestClient::chat(&server.url(), "bob").await;
    let join = ok(alice.ack("room:join", json!({"room": "#a"})).await);
    assert!(join["members"].is_array() && join["history"].is_array());
    for (event, payload, keys) in [
        (
            "room:message",
            json!({"room": "#a", "text": "x"}),
            &["id", "ts"][..],
        ),
        (
            "dm:message",
            json!({"to": "bob", "text": "x"}),
            &["id", "ts"][..],
        ),
        ("global:message", json!({"text": "x"}), &["id", "ts"][..]),
        ("broadcast:message", json!({"text": "x"}), &["id", "ts"][..]),
        ("typing", json!({"room": "#a", "typing": true}), &[][..]),
        ("room:list", json!({}), &["rooms"][..]),
        ("presence:get", json!({}), &["online", "users", "rooms"][..]),
        ("room:leave", json!({"room": "#a"}), &["room"][..]),
    ] {
        let ack = ok(alice.ack(event, payload).await);
        for k in keys {
            assert!(ack.get(*k).is_some(), "{event} ack lacks {k}: {ack}");
        }
        if keys.contains(&"id") {
            assert!(
                ack["id"].is_string() && ack["ts"].as_u64().is_some_and(|t| t > 1_600_000_000_000)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_have_their_own_looser_limit() {
    let server = TestServer::start(Config {
        event_rate: 1.0,
        event_burst: 5,
        ..TestServer::config()
    })
    .await;
    let mut c = TestClient::chat(&server.url(), "alice").await;
    for _ in 0..5 {
        ok(c.ack("room:list", json!({})).await);
    }
    let e = refused(&mut c, "presence:get", json!({})).await;
    assert_eq!(e["code"], "rate_limited");
    assert!(
        e["context"]["retryAfterMs"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    // Messages are counted apart.
    ok(c.ack("global:message", json!({"text": "still allowed"}))
        .await);
}
