//! Capability 9: volatile typing indicators, to a room (except the sender)
//! or to one user.

use chat_e2e::{TestClient, TestServer, err_code, ok};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_in_a_room_reaches_the_others() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    ok(alice
        .ack("typing", json!({"room": "A", "typing": true}))
        .await);
    let t = bob.next("typing").await;
    assert_eq!(t, json!({"from": "alice", "room": "#a", "typing": true}));
    ok(alice
        .ack("typing", json!({"room": "#a", "typing": false}))
        .await);
    let t = bob.next("typing").await;
    assert_eq!(t["typing"], false);
    ok(alice.ack("global:message", json!({"text": "marker"})).await);
    alice.next("global:message").await;
    assert_eq!(
        alice.count("typing"),
        0,
        "the sender does not get its own typing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_to_a_user() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    ok(alice
        .ack("typing", json!({"to": "BOB", "typing": true}))
        .await);
    let t = bob.next("typing").await;
    assert_eq!(t, json!({"from": "alice", "to": "bob", "typing": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_errors() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    assert_eq!(
        err_code(
            &alice
                .ack("typing", json!({"room": "#a", "typing": true}))
                .await
        ),
        "not_member"
    );
    assert_eq!(
        err_code(
            &alice
                .ack("typing", json!({"to": "ghost", "typing": true}))
                .await
        ),
        "user_not_found"
    );
    assert_eq!(
        err_code(&alice.ack("typing", json!({"typing": true})).await),
        "invalid_payload"
    );
    assert_eq!(
        err_code(
            &alice
                .ack("typing", json!({"room": "#a", "to": "x", "typing": true}))
                .await
        ),
        "invalid_payload"
    );
    assert_eq!(
        err_code(&alice.ack("typing", json!({"room": "#a"})).await),
        "invalid_payload"
    );
    assert_eq!(
        err_code(
            &alice
                .ack("typing", json!({"room": "bad room", "typing": true}))
                .await
        ),
        "invalid_room"
    );
}
