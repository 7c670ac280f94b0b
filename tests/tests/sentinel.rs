//! (v3) Two nodes on a Redis watched by Sentinel (`--redis-url
//! redis+sentinel://…`): the primary is killed (SIGKILL) under traffic,
//! the Sentinels promote its replica, the nodes follow by themselves, and
//! nothing that was acknowledged is lost. Real `redis-server` processes: a
//! primary and a replica with append-only files synced at every write,
//! and three Sentinels, each on a free port.
//!
//! Skipped, with the reason printed, when `redis-server` is not installed
//! and `CI` is unset; under CI a missing Redis fails the test.

use std::time::Duration;

use chat_e2e::{TestClient, TestServer, WAIT, err_code, ok};
use chat_server::store::sentinel::LocalSentinels;
use serde_json::{Value, json};

/// Sends `text` to `room` until it is acknowledged, retrying what the
/// server refuses `unavailable` (Redis between two primaries): the id.
async fn send_until_acked(c: &TestClient, room: &str, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = c
            .ack("room:message", json!({"room": room, "text": text}))
            .await;
        if a["ok"] == true {
            return a["id"].as_str().unwrap().to_owned();
        }
        assert_eq!(err_code(&a), "unavailable", "{text}: {a}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "{text} never acknowledged: {a}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_of_the_redis_primary_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut redis) = LocalSentinels::for_test(dir.path()) else {
        return;
    };
    let url = redis.url();
    let config = |node: &str| chat_server::Config {
        rate: 0.0,
        ..TestServer::clustered(&url, node)
    };
    let a = TestServer::start(config("node-a")).await;
    let b = TestServer::start(config("node-b")).await;
    let alice = TestClient::chat(&a.url(), "alice").await;
    let mut bob = TestClient::chat(&b.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#ops"})).await);
    ok(bob.ack("room:join", json!({"room": "#ops"})).await);

    let mut acked: Vec<(String, String)> = Vec::new();
    for i in 0..60 {
        if i == 20 {
            // The primary dies; the Sentinels promote the replica.
            redis.primary.kill();
        }
        let text = format!("m{i}");
        let id = send_until_acked(&alice, "#ops", &text).await;
        acked.push((id, text));
    }
    // The chat goes on: the last message reaches bob, on the other node,
    // live.
    let last = bob.next_where("room:message", |m| m["text"] == "m59").await;
    assert_eq!(last.get("replayed"), None, "{last}");

    // Every acknowledged message is in the room's history, on both nodes.
    for node in [&alice, &bob] {
        let h = ok(node
            .ack("history", json!({"room": "#ops", "limit": 200}))
            .await);
        let stored: Vec<(String, String)> = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m: &Value| {
                (
                    m["id"].as_str().unwrap().to_owned(),
                    m["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for m in &acked {
            assert!(
                stored.contains(m),
                "{m:?} was acknowledged and is lost: {h}"
            );
        }
    }
    // A session still resumes through the new primary.
    let token = bob.token();
    drop(bob);
    let back = tokio::time::timeout(WAIT, async {
        loop {
            match TestClient::connect(&b.url(), json!({"username": "bob", "session": token})).await
            {
                Ok(c) => return c,
                Err(e) if e.starts_with("username_taken") => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("bob back");
    assert_eq!(back.session.as_ref().unwrap()["recovered"], true);
}
