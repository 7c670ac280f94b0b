//! Capability 10: total online and per-room counts on connect, join, leave
//! and disconnect; storms folded into summaries.

use chat_e2e::{TestClient, TestServer, ok};
use chat_server::Config;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_follow_connect_join_leave_disconnect() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let p = alice.next("presence").await;
    assert_eq!(
        p,
        json!({"event": "connect", "user": "alice", "room": null, "online": 1, "members": null})
    );

    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let p = alice.next("presence").await;
    assert_eq!(
        (
            p["event"].as_str(),
            p["user"].as_str(),
            p["online"].as_u64()
        ),
        (Some("connect"), Some("bob"), Some(2))
    );

    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    let p = alice.next_where("presence", |p| p["event"] == "join").await;
    assert_eq!(
        p,
        json!({"event": "join", "user": "alice", "room": "#a", "online": 2, "members": 1})
    );
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    for c in [&mut alice, &mut bob] {
        let p = c
            .next_where("presence", |p| p["event"] == "join" && p["user"] == "bob")
            .await;
        assert_eq!(p["members"], 2, "the joiner hears its own join too");
    }
    ok(bob.ack("room:leave", json!({"room": "#a"})).await);
    for c in [&mut alice, &mut bob] {
        let p = c.next_where("presence", |p| p["event"] == "leave").await;
        assert_eq!(p["members"], 1, "the leaver hears its own leave too");
        assert_eq!(p.get("reason"), None);
    }
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    alice
        .next_where("presence", |p| p["event"] == "join" && p["members"] == 2)
        .await;

    // A dropped connection: leave (reason disconnect) in each room, then disconnect.
    let proxy = chat_e2e::Proxy::start(server.addr).await;
    let carol = TestClient::chat(&proxy.url(), "carol").await;
    ok(carol.ack("room:join", json!({"room": "#a"})).await);
    alice
        .next_where("presence", |p| p["event"] == "join" && p["user"] == "carol")
        .await;
    proxy.cut();
    let p = alice
        .next_where("presence", |p| {
            p["event"] == "leave" && p["user"] == "carol"
        })
        .await;
    assert_eq!(p["reason"], "disconnect");
    assert_eq!(p["members"], 2);
    assert_eq!(p["online"], 2);
    let p = alice
        .next_where("presence", |p| {
            p["event"] == "disconnect" && p["user"] == "carol"
        })
        .await;
    assert_eq!(p["online"], 2);
    assert_eq!(p["room"], Value::Null);
    assert!(
        p["reason"]
            .as_str()
            .is_some_and(|r| r.contains("transport")),
        "{p}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_get_is_a_snapshot() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    let bob = TestClient::chat(&server.url(), "Bob").await;
    ok(bob.ack("room:join", json!({"room": "#x"})).await);
    let snap = ok(alice.ack("presence:get", json!({})).await);
    assert_eq!(snap["online"], 2);
    assert_eq!(snap["users"], json!(["alice", "Bob"]));
    assert_eq!(snap["rooms"], json!([{"room": "#x", "members": 1}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_folded_into_a_summary() {
    let server = TestServer::start(Config {
        presence_burst: 3,
        ..TestServer::config()
    })
    .await;
    let mut watcher = TestClient::chat(&server.url(), "watcher").await;
    watcher.next("presence").await; // its own connect, the first of the window
    let mut crowd = Vec::new();
    for i in 0..10 {
        crowd.push(TestClient::chat(&server.url(), &format!("u{i}")).await);
    }
    // Read until every one of the ten connects has been told, single or folded.
    let (mut singles, mut folded, mut summaries) = (0u64, 0u64, Vec::new());
    while singles + folded < 10 {
        let p = watcher.next("presence").await;
        match p["event"].as_str() {
            Some("connect") => singles += 1,
            Some("summary") => {
                folded += p["joinedCount"].as_u64().unwrap();
                summaries.push(p);
            }
            other => panic!("unexpected presence {other:?}"),
        }
    }
    assert_eq!(singles + folded, 10, "each connect told exactly once");
    assert!(
        !summaries.is_empty() && singles < 10,
        "a storm is folded: {singles} singles"
    );
    let last = summaries.last().unwrap();
    assert_eq!(last["user"], Value::Null);
    assert_eq!(last["room"], Value::Null);
    assert_eq!(last["members"], Value::Null);
    assert_eq!(
        last["joined"].as_array().map(Vec::len),
        last["joinedCount"].as_u64().map(|n| n as usize)
    );
    assert_eq!(last["leftCount"], 0);
    assert_eq!(last["online"], 11);
    drop(crowd);
}
