//! Capabilities 3 and 5: rooms with server-tracked membership; only members
//! post; room messages reach every member.

use chat_e2e::{TestClient, TestServer, err_code, ok};
use chat_server::Config;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_canonicalises_and_lists_members_and_history() {
    let server = TestServer::start(Config {
        rate: 0.0,
        ..TestServer::config()
    })
    .await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    for (input, n) in [("general", 1), ("#General", 1), (" #general ", 1)] {
        let ack = ok(alice.ack("room:join", json!({"room": input})).await);
        assert_eq!(ack["room"], "#general", "{input}");
        assert_eq!(
            ack["members"].as_array().map(Vec::len),
            Some(n),
            "joining twice is idempotent"
        );
    }
    for i in 0..55 {
        ok(alice
            .ack(
                "room:message",
                json!({"room": "#general", "text": format!("m{i}")}),
            )
            .await);
    }
    let ack = ok(bob.ack("room:join", json!({"room": "#general"})).await);
    assert_eq!(ack["members"], json!(["alice", "bob"]));
    let history = ack["history"].as_array().unwrap();
    assert_eq!(history.len(), 50, "the last 50 messages");
    assert_eq!(history[0]["text"], "m5");
    assert_eq!(history[49]["text"], "m54");
    assert_eq!(history[49]["from"], "alice");
    assert_eq!(history[49]["room"], "#general");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_messages_reach_every_member_and_only_members() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let mut carol = TestClient::chat(&server.url(), "carol").await;
    ok(alice.ack("room:join", json!({"room": "#dev"})).await);
    ok(bob.ack("room:join", json!({"room": "#dev"})).await);
    ok(carol.ack("room:join", json!({"room": "#ops"})).await);
    let ack = ok(alice
        .ack(
            "room:message",
            json!({"room": "DEV", "text": "  ship it  "}),
        )
        .await);
    for c in [&mut alice, &mut bob] {
        let m = c.next("room:message").await;
        assert_eq!(m["text"], "ship it", "trimmed");
        assert_eq!(m["room"], "#dev");
        assert_eq!(m["from"], "alice");
        assert_eq!(m["id"], ack["id"]);
        assert_eq!(m["ts"], ack["ts"]);
    }
    ok(carol
        .ack("room:message", json!({"room": "#ops", "text": "ops only"}))
        .await);
    carol.next("room:message").await;
    // carol never got the #dev message: the only room message she saw was her own.
    assert_eq!(carol.count("room:message"), 0);
    assert!(!carol.seen().iter().any(|(_, v)| v["text"] == "ship it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_may_post_and_leave() {
    let server = TestServer::start(TestServer::config()).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let ack = alice
        .ack("room:message", json!({"room": "#dev", "text": "hi"}))
        .await;
    assert_eq!(err_code(&ack), "not_member");
    assert_eq!(
        ack["error"]["context"],
        json!({"event": "room:message", "room": "#dev"})
    );
    let e = alice.next("chat:error").await;
    assert_eq!(
        e, ack["error"],
        "the chat:error event carries the same object"
    );
    assert_eq!(
        err_code(&alice.ack("room:leave", json!({"room": "#dev"})).await),
        "not_member"
    );
    ok(alice.ack("room:join", json!({"room": "#dev"})).await);
    let left = ok(alice.ack("room:leave", json!({"room": "#Dev"})).await);
    assert_eq!(left["room"], "#dev");
    assert_eq!(
        err_code(
            &alice
                .ack("room:message", json!({"room": "#dev", "text": "hi"}))
                .await
        ),
        "not_member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_room_names_are_invalid_room() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    for bad in [
        "",
        "#",
        "two words",
        "#Ünïcode",
        &"x".repeat(33),
        "##x",
        "a/b",
    ] {
        let ack = alice.ack("room:join", json!({"room": bad})).await;
        assert_eq!(err_code(&ack), "invalid_room", "{bad:?}");
        assert_eq!(ack["error"]["context"]["room"], bad);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_limit_is_too_many_rooms() {
    let server = TestServer::start(Config {
        max_rooms_per_user: 3,
        ..TestServer::config()
    })
    .await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    for r in ["#a", "#b", "#c"] {
        ok(alice.ack("room:join", json!({"room": r})).await);
    }
    let ack = alice.ack("room:join", json!({"room": "#d"})).await;
    assert_eq!(err_code(&ack), "too_many_rooms");
    assert_eq!(ack["error"]["context"]["limit"], 3);
    ok(alice.ack("room:join", json!({"room": "#a"})).await); // rejoining is no new room
    ok(alice.ack("room:leave", json!({"room": "#a"})).await);
    ok(alice.ack("room:join", json!({"room": "#d"})).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_list_counts_members() {
    let server = TestServer::start(TestServer::config()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    ok(bob.ack("room:join", json!({"room": "#b"})).await);
    let list = ok(alice.ack("room:list", json!({})).await);
    // (v3) Each item also carries the room's settings.
    assert_eq!(
        list["rooms"],
        json!([
            {"room": "#a", "members": 2, "topic": "", "private": false},
            {"room": "#b", "members": 1, "topic": "", "private": false}
        ])
    );
    bob.disconnect().await;
    let mut rooms = json!(null);
    for _ in 0..100 {
        rooms = alice.ack("room:list", json!({})).await["rooms"].clone();
        if rooms == json!([{"room": "#a", "members": 1, "topic": "", "private": false}]) {
            break;
        }
    }
    assert_eq!(
        rooms,
        json!([{"room": "#a", "members": 1, "topic": "", "private": false}])
    );
}
