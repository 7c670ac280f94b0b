//! Capabilities 4, 6 and 7: direct messages through each socket's own id
//! room, global messages to everyone, broadcast to everyone but the sender.

use chat_e2e::{TestClient, TestServer, err_code, ok};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_reaches_only_its_target() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "Bob").await;
    let mut carol = TestClient::chat(&server.url(), "carol").await;
    let ack = ok(alice
        .ack("dm:message", json!({"to": "bob", "text": "psst"}))
        .await);
    let m = bob.next("dm:message").await;
    assert_eq!(m["from"], "alice");
    assert_eq!(m["to"], "Bob", "the target's display name");
    assert_eq!(m["text"], "psst");
    assert_eq!(m["id"], ack["id"]);
    // Neither the sender nor a bystander gets it.
    ok(carol.ack("global:message", json!({"text": "marker"})).await);
    carol
        .next_where("global:message", |g| g["text"] == "marker")
        .await;
    alice
        .next_where("global:message", |g| g["text"] == "marker")
        .await;
    assert_eq!(carol.count("dm:message"), 0);
    assert_eq!(alice.count("dm:message"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dm_errors() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    let ack = alice
        .ack("dm:message", json!({"to": "ghost", "text": "hi"}))
        .await;
    assert_eq!(err_code(&ack), "user_not_found");
    assert_eq!(ack["error"]["context"]["to"], "ghost");
    let ack = alice
        .ack("dm:message", json!({"to": "ALICE", "text": "me"}))
        .await;
    assert_eq!(err_code(&ack), "invalid_target");
    let ack = alice
        .ack("dm:message", json!({"to": "../etc", "text": "x"}))
        .await;
    assert_eq!(err_code(&ack), "user_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_ids_are_never_shown_to_others() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let alice_sid = alice.session.as_ref().unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    ok(alice
        .ack("room:message", json!({"room": "#a", "text": "x"}))
        .await);
    ok(alice
        .ack("dm:message", json!({"to": "bob", "text": "y"}))
        .await);
    ok(alice
        .ack("typing", json!({"room": "#a", "typing": true}))
        .await);
    bob.next("dm:message").await;
    let acks = [
        bob.ack("presence:get", json!({})).await,
        bob.ack("room:list", json!({})).await,
        bob.ack("room:join", json!({"room": "#a"})).await,
    ];
    let everything = format!("{:?} {:?}", bob.seen(), acks);
    assert!(
        !everything.contains(&alice_sid),
        "alice's socket id leaked to bob: {everything}"
    );
    alice.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_reaches_everyone_including_the_sender() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let ack = ok(alice
        .ack("global:message", json!({"text": "hello all"}))
        .await);
    for c in [&mut alice, &mut bob] {
        let g = c.next("global:message").await;
        assert_eq!(g["text"], "hello all");
        assert_eq!(g["from"], "alice");
        assert_eq!(g["id"], ack["id"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_everyone_but_the_sender() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let mut carol = TestClient::chat(&server.url(), "carol").await;
    ok(alice
        .ack("broadcast:message", json!({"text": "not for me"}))
        .await);
    for c in [&mut bob, &mut carol] {
        let b = c.next("broadcast:message").await;
        assert_eq!(b["text"], "not for me");
        assert_eq!(b["from"], "alice");
    }
    // Messages to one socket keep their order: once alice sees her later
    // global, the broadcast would have arrived before it if it were coming.
    ok(alice.ack("global:message", json!({"text": "after"})).await);
    alice
        .next_where("global:message", |g| g["text"] == "after")
        .await;
    assert_eq!(alice.count("broadcast:message"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_follow_delivery_order() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    for i in 0..10 {
        let (a, b) = tokio::join!(
            alice.ack(
                "room:message",
                json!({"room": "#a", "text": format!("a{i}")})
            ),
            bob.ack(
                "room:message",
                json!({"room": "#a", "text": format!("b{i}")})
            )
        );
        ok(a);
        ok(b);
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        let m = alice.next("room:message").await;
        ids.push(m["id"].as_str().unwrap().parse::<u64>().unwrap());
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "ids arrive increasing and unique");
}
