//! Several nodes on one Redis are one server (PROTOCOL.md, "Several
//! nodes"): each test starts its own `redis-server` on a free port and two
//! in-process nodes sharing it, with clients spread over both.
//!
//! Skipped, with the reason printed, when `redis-server` is not installed
//! and `CI` is unset; under CI a missing Redis fails the test.

use std::time::Duration;

use chat_e2e::{Proxy, TestClient, TestServer, WAIT, err_code, ok};
use chat_server::store::redis::LocalRedis;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A Redis and two nodes, A and B, on it.
struct Cluster {
    a: TestServer,
    b: TestServer,
    redis: LocalRedis,
    _dir: TempDir,
}

async fn cluster() -> Option<Cluster> {
    cluster_on(false).await
}

/// [`cluster`] on a Redis that keeps an append-only file (`aof`), synced
/// at every write, or keeps nothing across its restart.
async fn cluster_on(aof: bool) -> Option<Cluster> {
    cluster_configured(aof, |_| {}).await
}

/// [`cluster_on`], each node's configuration changed by `tweak`.
async fn cluster_configured(aof: bool, tweak: fn(&mut chat_server::Config)) -> Option<Cluster> {
    let dir = tempfile::tempdir().unwrap();
    let redis = LocalRedis::for_test(dir.path(), aof)?;
    // No rate limit: the tests send faster than a person types.
    let config = |node: &str| {
        let mut c = chat_server::Config {
            rate: 0.0,
            ..TestServer::clustered(&redis.url(), node)
        };
        tweak(&mut c);
        c
    };
    let a = TestServer::start(config("node-a")).await;
    let b = TestServer::start(config("node-b")).await;
    Some(Cluster {
        a,
        b,
        redis,
        _dir: dir,
    })
}

/// Polls `f` until it returns `Some`, for at most [`WAIT`].
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn texts(events: &[(String, Value)], event: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(n, _)| n == event)
        .map(|(_, v)| v["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn id(v: &Value) -> u64 {
    v["id"].as_str().unwrap().parse().unwrap()
}

/// Room, DM, global and broadcast messages reach their recipients on the
/// other node, each once, and every client sees the one cluster order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_every_node_once_and_in_one_order() {
    let Some(c) = cluster().await else { return };
    let mut alice = TestClient::chat(&c.a.url(), "alice").await;
    let mut bob = TestClient::chat(&c.b.url(), "bob").await;
    let mut carol = TestClient::chat(&c.b.url(), "carol").await;
    for u in [&alice, &bob, &carol] {
        ok(u.ack("room:join", json!({"room": "#r"})).await);
    }
    // Senders on both nodes, interleaved.
    let mut sent = Vec::new();
    for i in 0..6 {
        let (who, from) = if i % 2 == 0 {
            (&alice, "a")
        } else {
            (&bob, "b")
        };
        let text = format!("{from}{i}");
        let ack = ok(who
            .ack("room:message", json!({"room": "#r", "text": text}))
            .await);
        sent.push((id(&ack), text));
    }
    let ids: Vec<u64> = sent.iter().map(|(i, _)| *i).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "one increasing order across nodes: {ids:?}"
    );
    let want: Vec<String> = sent.iter().map(|(_, t)| t.clone()).collect();
    for u in [&mut alice, &mut bob, &mut carol] {
        let mut got = Vec::new();
        for _ in 0..6 {
            let m = u.next("room:message").await;
            got.push(m["text"].as_str().unwrap().to_owned());
        }
        assert_eq!(got, want, "every member, on either node, in id order");
    }

    // A DM to a user on the other node, both ways.
    let ack = ok(alice
        .ack("dm:message", json!({"to": "bob", "text": "hi bob"}))
        .await);
    assert_eq!(ack.get("queued"), None, "bob is online: not queued");
    let dm = bob.next("dm:message").await;
    assert_eq!(
        (dm["from"].as_str(), dm["text"].as_str()),
        (Some("alice"), Some("hi bob"))
    );
    ok(carol
        .ack("dm:message", json!({"to": "alice", "text": "hi alice"}))
        .await);
    assert_eq!(alice.next("dm:message").await["text"], "hi alice");

    // Global: everyone, the sender included. Broadcast: everyone else.
    ok(carol.ack("global:message", json!({"text": "g1"})).await);
    ok(alice.ack("broadcast:message", json!({"text": "b1"})).await);
    ok(carol.ack("global:message", json!({"text": "g2"})).await);
    for u in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(u.next("global:message").await["text"], "g1");
        assert_eq!(u.next("global:message").await["text"], "g2");
    }
    assert_eq!(bob.next("broadcast:message").await["text"], "b1");
    assert_eq!(carol.next("broadcast:message").await["text"], "b1");
    // alice has g2, sent after her broadcast: had it come back, it would
    // be here by now.
    assert!(texts(&alice.seen(), "broadcast:message").is_empty());
    assert_eq!(texts(&bob.seen(), "dm:message").len(), 0, "no DM twice");
    assert_eq!(alice.count("room:message"), 0, "no room message twice");
}

/// A username is one per cluster: taken on A, refused on B (in any case),
/// free on B once its owner has left A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_taken_on_one_node_is_refused_on_the_other() {
    let Some(c) = cluster().await else { return };
    let alice = TestClient::chat(&c.a.url(), "Alice").await;
    let refused = TestClient::connect(&c.b.url(), json!({"username": "aLiCe"}))
        .await
        .err()
        .expect("the name is taken on node A");
    assert!(refused.starts_with("username_taken"), "{refused}");
    alice.disconnect().await;
    let again = eventually("the name is free again", || async {
        TestClient::connect(&c.b.url(), json!({"username": "alice"}))
            .await
            .ok()
    })
    .await;
    assert_eq!(again.session.as_ref().unwrap()["recovered"], false);
}

/// `presence:get` and `room:list` count the users of every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_every_node() {
    let Some(c) = cluster().await else { return };
    let alice = TestClient::chat(&c.a.url(), "alice").await;
    let bob = TestClient::chat(&c.b.url(), "bob").await;
    let carol = TestClient::chat(&c.b.url(), "carol").await;
    ok(alice.ack("room:join", json!({"room": "#r"})).await);
    ok(bob.ack("room:join", json!({"room": "#r"})).await);
    ok(carol.ack("room:join", json!({"room": "#other"})).await);
    // Each node writes its share before it acknowledges a change: the
    // other node's answer has it from the next request on.
    let rooms = json!([{"room": "#other", "members": 1}, {"room": "#r", "members": 2}]);
    for asker in [&alice, &bob] {
        let p = ok(asker.ack("presence:get", json!({})).await);
        assert_eq!(p["online"], 3, "{p}");
        assert_eq!(p["users"], json!(["alice", "bob", "carol"]), "{p}");
        assert_eq!(p["rooms"], rooms, "{p}");
        // (v3) room:list items also carry each room's settings.
        let listed = json!([
            {"room": "#other", "members": 1, "topic": "", "private": false},
            {"room": "#r", "members": 2, "topic": "", "private": false}
        ]);
        let list = ok(asker.ack("room:list", json!({})).await);
        assert_eq!(list["rooms"], listed);
    }
    // bob leaves: node A's answer drops him too.
    bob.disconnect().await;
    eventually("bob gone from node A's count", || async {
        let p = ok(alice.ack("presence:get", json!({})).await);
        (p["online"] == 2 && p["users"] == json!(["alice", "carol"])).then_some(())
    })
    .await;
}

/// A session resumed on B while its socket on A is still open: the socket
/// on A is told `session_replaced` and closed, and the session (rooms,
/// messages) goes on on B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_taken_over_on_another_node() {
    let Some(c) = cluster().await else { return };
    let mut old = TestClient::chat(&c.a.url(), "alice").await;
    let bob = TestClient::chat(&c.a.url(), "bob").await;
    ok(old.ack("room:join", json!({"room": "#r"})).await);
    ok(bob.ack("room:join", json!({"room": "#r"})).await);
    ok(bob
        .ack("room:message", json!({"room": "#r", "text": "one"}))
        .await);
    let one = old.next("room:message").await;

    let auth = json!({"username": "alice", "session": old.token(), "offset": one["id"]});
    let mut new = TestClient::connect(&c.b.url(), auth).await.unwrap();
    let session = new.session.clone().unwrap();
    assert_eq!(session["recovered"], true);
    assert_eq!(session["rooms"], json!(["#r"]));
    assert_eq!(session["missed"], 0);
    let err = old.next("chat:error").await;
    assert_eq!(err["code"], "session_replaced");

    ok(bob
        .ack("room:message", json!({"room": "#r", "text": "two"}))
        .await);
    assert_eq!(new.next("room:message").await["text"], "two");
    // The name is still alice's, on both nodes.
    for url in [c.a.url(), c.b.url()] {
        let refused = TestClient::connect(&url, json!({"username": "alice"}))
            .await
            .err()
            .expect("alice is live on B");
        assert!(refused.starts_with("username_taken"), "{refused}");
    }
    assert_eq!(
        old.count("room:message"),
        0,
        "the replaced socket gets nothing more"
    );
}

/// Node A stops while messages flow; its users come back through node B
/// with their sessions and get every message exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_mid_traffic_loses_nothing() {
    let Some(c) = cluster().await else { return };
    let Cluster { a, b, .. } = &c;
    let mut alice = TestClient::chat(&a.url(), "alice").await;
    let mut bob = TestClient::chat(&a.url(), "bob").await;
    let carol = TestClient::chat(&b.url(), "carol").await;
    for u in [&alice, &bob, &carol] {
        ok(u.ack("room:join", json!({"room": "#r"})).await);
    }
    ok(carol
        .ack("dm:message", json!({"to": "alice", "text": "dm before"}))
        .await);

    // carol sends 40 messages; node A stops after the 10th.
    let sender = tokio::spawn(async move {
        let mut ids = Vec::new();
        for i in 0..40 {
            let ack = carol
                .ack(
                    "room:message",
                    json!({"room": "#r", "text": format!("m{i}")}),
                )
                .await;
            ids.push(id(&ok(ack)));
            if i == 25 {
                ok(carol
                    .ack(
                        "dm:message",
                        json!({"to": "alice", "text": "dm while away"}),
                    )
                    .await);
            }
        }
        (carol, ids)
    });
    eventually("alice has 10 of them", || {
        let n = alice.count("room:message");
        async move { (n >= 10).then_some(()) }
    })
    .await;
    let Cluster {
        a,
        b,
        redis: _redis,
        _dir,
    } = c;
    a.stop().await.unwrap();
    let (_carol, sent) = sender.await.unwrap();
    let want: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();

    for user in [&mut alice, &mut bob] {
        // What reached the client before its node went, then a resume on
        // B from the last id it got.
        let seen = user.seen();
        let live: Vec<Value> = seen
            .iter()
            .filter(|(n, _)| n == "room:message")
            .map(|(_, v)| v.clone())
            .collect();
        let mut dms = texts(&seen, "dm:message");
        // The offset is the last message of any kind the client got.
        let offset = seen
            .iter()
            .filter(|(n, _)| n.ends_with(":message"))
            .map(|(_, v)| v["id"].clone())
            .next_back()
            .unwrap_or(Value::Null);
        let token = user.token();
        let username = user.session.as_ref().unwrap()["username"]
            .as_str()
            .unwrap()
            .to_owned();
        let auth = json!({"username": username, "session": token, "offset": offset});
        let mut back = TestClient::connect(&b.url(), auth)
            .await
            .unwrap_or_else(|e| panic!("{username} cannot resume on B: {e}"));
        let session = back.session.clone().unwrap();
        assert_eq!(session["recovered"], true, "{username}: {session}");
        assert_eq!(session["truncated"], false);
        let mut got: Vec<String> = live
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        let mut ids: Vec<u64> = live.iter().map(id).collect();
        while got.len() < 40 {
            let m = back.next("room:message").await;
            assert_eq!(m["replayed"], true);
            ids.push(id(&m));
            got.push(m["text"].as_str().unwrap().to_owned());
        }
        assert_eq!(got, want, "{username}: every message once, in order");
        assert_eq!(ids, sent, "{username}: with their ids");
        if username == "alice" {
            if dms.len() < 2 {
                let dm = back.next("dm:message").await;
                assert_eq!(dm["replayed"], true);
                dms.push(dm["text"].as_str().unwrap().to_owned());
            }
            assert_eq!(dms, ["dm before", "dm while away"], "each DM once");
        }
        let p = ok(back.ack("presence:get", json!({})).await);
        assert!(p["users"].as_array().unwrap().contains(&json!(username)));
        assert_eq!(back.count("room:message"), 0, "{username}: nothing twice");
    }
    let refused = TestClient::connect(&b.url(), json!({"username": "bob"}))
        .await
        .err()
        .expect("bob's name stays his");
    assert!(refused.starts_with("username_taken"), "{refused}");
}

/// Sends a room message until it is taken: while Redis is away every
/// attempt is refused `unavailable` (and nothing of it delivered).
async fn send_until_taken(who: &TestClient, text: &str) -> Value {
    eventually("the message is taken", || async {
        let ack = who
            .ack("room:message", json!({"room": "#r", "text": text}))
            .await;
        if ack["ok"] == true {
            return Some(ack);
        }
        assert_eq!(err_code(&ack), "unavailable", "{ack}");
        None
    })
    .await
}

/// Redis restarts under two running nodes, with its append-only file: the
/// nodes keep their sockets, take writes again once it is back, and lose
/// nothing that was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_running_nodes_loses_nothing() {
    let Some(mut c) = cluster_on(true).await else {
        return;
    };
    let mut alice = TestClient::chat(&c.a.url(), "alice").await;
    let bob = TestClient::chat(&c.b.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#r"})).await);
    ok(bob.ack("room:join", json!({"room": "#r"})).await);
    let one = id(&send_until_taken(&bob, "one").await);

    c.redis.restart().unwrap();
    let two = id(&send_until_taken(&bob, "two").await);
    assert!(two > one);
    let got: Vec<String> = [
        alice.next("room:message").await,
        alice.next("room:message").await,
    ]
    .iter()
    .map(|m| m["text"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(got, ["one", "two"]);

    let carol = TestClient::chat(&c.a.url(), "carol").await;
    let joined = ok(carol.ack("room:join", json!({"room": "#r"})).await);
    let history: Vec<&str> = joined["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["one", "two"],
        "both acknowledged messages were kept"
    );
    assert_eq!(alice.count("room:message"), 0, "nothing twice");
}

/// Redis restarts empty (no persistence) under running nodes: ids go on
/// above every id handed out, and a client resuming from before the loss
/// is told `truncated` instead of finding a silent gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_makes_replays_truncated() {
    let Some(mut c) = cluster().await else { return };
    let proxy = Proxy::start(c.a.addr).await;
    let mut alice = TestClient::chat(&proxy.url(), "alice").await;
    // On alice's node: once it takes a message again, it has seen the
    // loss (until then its writes are refused).
    let bob = TestClient::chat(&c.a.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#r"})).await);
    ok(bob.ack("room:join", json!({"room": "#r"})).await);
    let one = send_until_taken(&bob, "one").await;
    assert_eq!(alice.next("room:message").await["text"], "one");
    let token = alice.token();
    proxy.cut();

    c.redis.restart().unwrap();
    let two = send_until_taken(&bob, "two").await;
    assert!(id(&two) > id(&one), "no id handed out twice");

    let auth = json!({"username": "alice", "session": token, "offset": one["id"]});
    let mut back = TestClient::connect(&c.a.url(), auth).await.unwrap();
    let session = back.session.clone().unwrap();
    assert_eq!(session["recovered"], true);
    assert_eq!(session["truncated"], true, "{session}");
    let m = back.next("room:message").await;
    assert_eq!(
        (m["text"].as_str(), &m["replayed"]),
        (Some("two"), &json!(true))
    );
}

/// A node whose Redis cannot be reached does not start: it says which
/// Redis and why (the binary exits non-zero with this message).
#[tokio::test]
async fn a_node_without_its_redis_refuses_to_start() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = TestServer::clustered(&url, "node-a");
    let started = chat_server::serve(listener, config, std::future::pending()).await;
    let err = started.expect_err("no Redis: no server").to_string();
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("cannot reach Redis"), "{err}");
}

/// An account's password takes its name from the session holding it on
/// another node, as on one node: that socket is told `session_replaced`.
/// Without the password the name stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_has_sessions_on_both_nodes() {
    let Some(c) = cluster().await else { return };
    let auth = json!({"username": "alice", "password": "correct horse", "register": true, "client": "on A"});
    let mut on_a = TestClient::connect(&c.a.url(), auth).await.unwrap();
    let guest = TestClient::connect(&c.b.url(), json!({"username": "alice"}))
        .await
        .err()
        .expect("an account's name, live on A");
    assert!(
        guest.starts_with("auth_required") || guest.starts_with("username_taken"),
        "{guest}"
    );
    let wrong = json!({"username": "alice", "password": "wrong horse"});
    let refused = TestClient::connect(&c.b.url(), wrong).await.err().unwrap();
    assert!(refused.starts_with("bad_credentials"), "{refused}");

    // (v3) The password opens a second session on B; A's stays.
    let login = json!({"username": "alice", "password": "correct horse", "client": "on B"});
    let mut on_b = TestClient::connect(&c.b.url(), login).await.unwrap();
    assert_eq!(on_b.session.as_ref().unwrap()["username"], "alice");
    ok(on_a.ack("ping", json!({})).await);
    let list = ok(on_b.ack("session:list", json!({})).await);
    let clients: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["client"].as_str())
        .collect();
    assert_eq!(clients, ["on A", "on B"], "{list}");

    // Membership is the account's, across nodes.
    ok(on_a.ack("room:join", json!({"room": "#ops"})).await);
    assert_eq!(on_b.next("room:joined").await, json!({"room": "#ops"}));
    let mut bob = TestClient::chat(&c.b.url(), "bob").await;
    ok(bob.ack("room:join", json!({"room": "#ops"})).await);
    ok(bob
        .ack("room:message", json!({"room": "#ops", "text": "both?"}))
        .await);
    assert_eq!(on_a.next("room:message").await["text"], "both?");
    assert_eq!(on_b.next("room:message").await["text"], "both?");
    // A DM reaches both sessions, and the sender's other one.
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "hi"}))
        .await);
    assert_eq!(on_a.next("dm:message").await["text"], "hi");
    assert_eq!(on_b.next("dm:message").await["text"], "hi");
    ok(on_a
        .ack("dm:message", json!({"to": "bob", "text": "from A"}))
        .await);
    let mine = on_b.next("dm:message").await;
    assert_eq!(
        (mine["from"].as_str(), mine["text"].as_str()),
        (Some("alice"), Some("from A"))
    );
    assert_eq!(bob.next("dm:message").await["text"], "from A");
    // A marker set on B reaches A.
    ok(on_b
        .ack("read:mark", json!({"with": "bob", "id": mine["id"]}))
        .await);
    assert_eq!(
        on_a.next("read:marker").await,
        json!({"with": "bob", "id": mine["id"]})
    );
    // session:end from A ends the session on B.
    let id_b = list["sessions"][1]["id"].as_str().unwrap().to_owned();
    ok(on_a.ack("session:end", json!({"id": id_b})).await);
    assert_eq!(on_b.next("chat:error").await["code"], "session_ended");
}

/// (v3) The session limit counts an account's sessions on every node: a
/// login beyond it ends the least recently active one, here on the other
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_limit_counts_every_node() {
    let Some(c) = cluster_configured(false, |c| c.max_sessions_per_account = 2).await else {
        return;
    };
    let first = json!({"username": "alice", "password": "correct horse", "register": true});
    let on_a = TestClient::connect(&c.a.url(), first).await.unwrap();
    let login = json!({"username": "alice", "password": "correct horse"});
    let mut on_b = TestClient::connect(&c.b.url(), login.clone())
        .await
        .unwrap();
    // A's session is the more recently active one now.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    ok(on_a.ack("ping", json!({})).await);
    let third = TestClient::connect(&c.a.url(), login).await.unwrap();
    let err = on_b.next("chat:error").await;
    assert_eq!(err["code"], "session_replaced", "{err}");
    ok(on_a.ack("ping", json!({})).await);
    let list = ok(third.ack("session:list", json!({})).await);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2, "{list}");
}

/// Presence changes and typing indicators cross nodes: a join, a leave
/// and a disconnect on B are seen on A, and typing reaches the room and
/// the user on the other node. Counts are the cluster's once the nodes
/// have exchanged a heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_events_and_typing_cross_nodes() {
    let Some(c) = cluster().await else { return };
    let mut alice = TestClient::chat(&c.a.url(), "alice").await;
    let carol = TestClient::chat(&c.a.url(), "carol").await;
    ok(alice.ack("room:join", json!({"room": "#r"})).await);
    ok(carol.ack("room:join", json!({"room": "#r"})).await);
    let mut bob = TestClient::chat(&c.b.url(), "bob").await;
    let connect = alice
        .next_where("presence", |p| {
            p["event"] == "connect" && p["user"] == "bob"
        })
        .await;
    assert!(connect["online"].as_u64().unwrap() >= 1, "{connect}");
    // Node A publishes its share (two members of #r) with its heartbeat.
    eventually("B counts A's users", || async {
        let p = ok(bob.ack("presence:get", json!({})).await);
        (p["online"] == 3 && p["rooms"] == json!([{"room": "#r", "members": 2}])).then_some(())
    })
    .await;
    let ack = ok(bob.ack("room:join", json!({"room": "#r"})).await);
    assert_eq!(
        ack["members"],
        json!(["alice", "bob", "carol"]),
        "members on both nodes"
    );
    let join = alice
        .next_where("presence", |p| p["event"] == "join" && p["user"] == "bob")
        .await;
    assert_eq!(
        (&join["room"], &join["members"], &join["online"]),
        (&json!("#r"), &json!(3), &json!(3)),
        "{join}"
    );

    ok(alice
        .ack("typing", json!({"room": "#r", "typing": true}))
        .await);
    let t = bob.next("typing").await;
    assert_eq!(
        (t["from"].as_str(), t["room"].as_str()),
        (Some("alice"), Some("#r"))
    );
    ok(bob
        .ack("typing", json!({"to": "alice", "typing": true}))
        .await);
    let t = alice.next_where("typing", |t| t["from"] == "bob").await;
    assert_eq!(t["to"], "alice");

    ok(bob.ack("room:leave", json!({"room": "#r"})).await);
    let leave = alice
        .next_where("presence", |p| p["event"] == "leave" && p["user"] == "bob")
        .await;
    assert_eq!(leave["members"], 2, "{leave}");
    bob.disconnect().await;
    alice
        .next_where("presence", |p| {
            p["event"] == "disconnect" && p["user"] == "bob"
        })
        .await;
}

/// Connects `name` to `url`, retrying while the server comes up.
async fn connect_when_up(url: &str, name: &str) -> TestClient {
    eventually("the node is up", || async {
        TestClient::connect(url, json!({"username": name}))
            .await
            .ok()
    })
    .await
}

/// The real binary as node A, killed with SIGKILL while a user on node B
/// sends: A's users resume on B and get every message once, in order;
/// nothing A acknowledged is lost; a user of A who does not come back
/// stops counting as online within a few heartbeats.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing_it_acknowledged() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let Some(redis) = LocalRedis::for_test(dir.path(), false) else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut node_a = Command::new(chat_e2e::workspace_binary("chat-server", "chat-server"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--rate", "0"])
        .args(["--redis-url", &redis.url(), "--node-id", "node-a"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chat-server");
    let b = TestServer::start(chat_server::Config {
        rate: 0.0,
        ..TestServer::clustered(&redis.url(), "node-b")
    })
    .await;
    let url_a = format!("http://127.0.0.1:{port}");
    let mut alice = connect_when_up(&url_a, "alice").await;
    let dave = TestClient::chat(&url_a, "dave").await;
    let carol = TestClient::chat(&b.url(), "carol").await;
    for u in [&alice, &dave, &carol] {
        ok(u.ack("room:join", json!({"room": "#r"})).await);
    }
    // alice's own messages, acknowledged by A before it dies.
    let mut mine = Vec::new();
    for i in 0..5 {
        let ack = ok(alice
            .ack(
                "room:message",
                json!({"room": "#r", "text": format!("a{i}")}),
            )
            .await);
        mine.push(id(&ack));
    }
    // Node A has published its users (dave among them) by now.
    eventually("B counts dave", || async {
        let p = ok(carol.ack("presence:get", json!({})).await);
        (p["users"] == json!(["alice", "carol", "dave"])).then_some(())
    })
    .await;
    let sender = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..30 {
            let ack = carol
                .ack(
                    "room:message",
                    json!({"room": "#r", "text": format!("c{i}")}),
                )
                .await;
            sent.push(id(&ok(ack)));
        }
        (carol, sent)
    });
    eventually("alice has some of carol's", || {
        let n = alice.count("room:message");
        async move { (n >= 10).then_some(()) }
    })
    .await;
    node_a.kill().expect("SIGKILL");
    let _ = node_a.wait();
    let (carol, sent) = sender.await.unwrap();

    let seen = alice.seen();
    let live: Vec<&Value> = seen
        .iter()
        .filter(|(n, _)| n == "room:message")
        .map(|(_, v)| v)
        .collect();
    let offset = live.last().unwrap()["id"].clone();
    let auth = json!({"username": "alice", "session": alice.token(), "offset": offset});
    let mut back = TestClient::connect(&b.url(), auth).await.unwrap();
    assert_eq!(back.session.as_ref().unwrap()["recovered"], true);
    let mut got: Vec<u64> = live.iter().map(|m| id(m)).collect();
    while got.len() < 5 + 30 {
        got.push(id(&back.next("room:message").await));
    }
    let want: Vec<u64> = mine.iter().copied().chain(sent).collect();
    assert_eq!(got, want, "every message once, in the cluster's order");
    assert_eq!(back.count("room:message"), 0, "nothing twice");

    let joined = ok(carol.ack("room:join", json!({"room": "#r"})).await);
    let history: Vec<Value> = joined["history"].as_array().unwrap().clone();
    for m in &mine {
        assert!(
            history.iter().any(|h| id(h) == *m),
            "acknowledged by the dead node, then lost: {m}"
        );
    }
    // dave's node is gone and dave does not come back: within a few
    // heartbeats he no longer counts.
    eventually("dave stops counting", || async {
        let p = ok(back.ack("presence:get", json!({})).await);
        (p["users"] == json!(["alice", "carol"])).then_some(())
    })
    .await;
    let _ = dave;
}

/// Senders on both nodes at once: every client, on either node, gets every
/// message once, in the same order, which is the order of their ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_both_nodes_give_one_order() {
    let Some(c) = cluster().await else { return };
    let mut readers = Vec::new();
    for (i, url) in [c.a.url(), c.b.url(), c.a.url(), c.b.url()]
        .iter()
        .enumerate()
    {
        let r = TestClient::chat(url, &format!("reader{i}")).await;
        ok(r.ack("room:join", json!({"room": "#r"})).await);
        readers.push(r);
    }
    let mut senders = Vec::new();
    for (i, url) in [c.a.url(), c.b.url(), c.a.url(), c.b.url()]
        .iter()
        .enumerate()
    {
        let s = TestClient::chat(url, &format!("sender{i}")).await;
        ok(s.ack("room:join", json!({"room": "#r"})).await);
        senders.push(tokio::spawn(async move {
            for n in 0..25 {
                ok(s.ack(
                    "room:message",
                    json!({"room": "#r", "text": format!("s{i}-{n}")}),
                )
                .await);
            }
            s
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let mut orders = Vec::new();
    for r in &mut readers {
        let mut ids = Vec::new();
        while ids.len() < 100 {
            ids.push(id(&r.next("room:message").await));
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
        assert_eq!(r.count("room:message"), 0, "nothing twice");
        orders.push(ids);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "one order for all");
}

/// Three chat-tui clients spread over both nodes chat in a room and by
/// DM; node A stops, and the load balancer in front of alice sends her
/// reconnect to node B, where she resumes with nothing missing or twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_tui_users_of_a_stopped_node_come_back_through_the_other() {
    use chat_e2e::tui::{texts, wait};
    use chat_tui::state::ConvId;
    use chat_tui::{Client, NetConfig};
    let Some(c) = cluster().await else { return };
    let Cluster { a, b, redis, _dir } = c;
    let tui = |url: &str, user: &str| {
        Client::start(NetConfig {
            liveness_interval: Duration::from_millis(400),
            liveness_timeout: Duration::from_millis(800),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            ..NetConfig::new(url, user)
        })
    };
    let general = ConvId::Room("#general".into());

    let lb = Proxy::start(a.addr).await;
    let alice = tui(&lb.url(), "alice");
    let bob = tui(&b.url(), "bob");
    let carol = tui(&b.url(), "carol");
    for (u, name) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        wait(u, "connected", |s| {
            s.status_text() == format!("connected as {name}")
        })
        .await;
        u.type_line("/join #general");
        wait(u, "in #general", |s| s.active == general).await;
    }
    alice.type_line("hello from A");
    for u in [&bob, &carol] {
        wait(u, "alice's message on B", |s| {
            texts(s, &general) == ["hello from A"]
        })
        .await;
    }
    bob.type_line("/msg alice psst");
    let from_bob = ConvId::Dm("bob".into());
    wait(&alice, "bob's DM on A", |s| texts(s, &from_bob) == ["psst"]).await;

    // Node A goes; the balancer sends new connections to B.
    lb.retarget(b.addr);
    a.stop().await.unwrap();
    carol.type_line("while alice is away");
    wait(&carol, "carol's message shown", |s| {
        texts(s, &general).len() == 2
    })
    .await;
    wait(&alice, "alice resumed on B", |s| {
        s.status_text().starts_with("connected as alice")
            && texts(s, &general) == ["hello from A", "while alice is away"]
    })
    .await;
    alice.type_line("back, through B");
    wait(&bob, "alice's message from B", |s| {
        texts(s, &general) == ["hello from A", "while alice is away", "back, through B"]
    })
    .await;
    assert_eq!(
        alice.read(|s| texts(s, &from_bob)),
        ["psst"],
        "nothing twice"
    );
    drop(redis);
}

/// While Redis is away, a message is refused `unavailable` and reaches no
/// one (on either node); the sockets stay connected, and once Redis is
/// back the next message goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_messages_are_refused_and_reach_no_one() {
    let Some(mut c) = cluster_on(true).await else {
        return;
    };
    let mut alice = TestClient::chat(&c.a.url(), "alice").await;
    let bob = TestClient::chat(&c.b.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#r"})).await);
    ok(bob.ack("room:join", json!({"room": "#r"})).await);
    send_until_taken(&bob, "one").await;
    assert_eq!(alice.next("room:message").await["text"], "one");

    c.redis.kill();
    let refused = eventually("a refusal", || async {
        let ack = bob
            .ack("room:message", json!({"room": "#r", "text": "refused"}))
            .await;
        (ack["ok"] == false).then_some(ack)
    })
    .await;
    assert_eq!(err_code(&refused), "unavailable", "{refused}");
    assert!(refused["error"]["context"]["retryAfterMs"].is_u64());
    // The sockets are still there: their requests are answered.
    ok(alice.ack("ping", json!({})).await);
    ok(bob.ack("ping", json!({})).await);

    c.redis.restart().unwrap();
    send_until_taken(&bob, "after").await;
    let next = alice.next("room:message").await;
    assert_eq!(next["text"], "after", "nothing refused was delivered");
    assert_eq!(alice.count("room:message"), 0);
}

/// chat-tui given both nodes (`--server A --server B`): when A stops, it
/// goes to B by itself and resumes its session there, rooms and missed
/// messages included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_tui_given_both_nodes_fails_over_by_itself() {
    use chat_e2e::tui::{texts, wait};
    use chat_tui::state::ConvId;
    use chat_tui::{Client, NetConfig};
    let Some(c) = cluster().await else { return };
    let Cluster { a, b, redis, _dir } = c;
    let config = |url: &str, fallbacks: Vec<String>, user: &str| NetConfig {
        liveness_interval: Duration::from_millis(400),
        liveness_timeout: Duration::from_millis(800),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        fallbacks,
        ..NetConfig::new(url, user)
    };
    let general = ConvId::Room("#general".into());
    let dana = Client::start(config(&a.url(), vec![b.url()], "dana"));
    let erin = Client::start(config(&b.url(), vec![], "erin"));
    for (u, name) in [(&dana, "dana"), (&erin, "erin")] {
        wait(u, "connected", |s| {
            s.status_text() == format!("connected as {name}")
        })
        .await;
        u.type_line("/join #general");
        wait(u, "in #general", |s| s.active == general).await;
    }
    // Node A stops; erin (on B) speaks while dana is on her way over.
    a.stop().await.unwrap();
    erin.type_line("said while A was gone");
    wait(&dana, "dana resumed on B with what she missed", |s| {
        s.status_text().starts_with("connected as dana")
            && texts(s, &general) == ["said while A was gone"]
    })
    .await;
    dana.type_line("hello from B");
    wait(&erin, "dana's message, sent through B", |s| {
        texts(s, &general) == ["said while A was gone", "hello from B"]
    })
    .await;
    drop(redis);
}

/// (v3) Moderation holds on every node: a role given with `chat-server
/// account role` applies on both within a second, a room kick on node A
/// takes out a member connected to node B (who hears why), and a server
/// ban on A ends the account's session on B and keeps it out of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_holds_on_every_node() {
    let Some(c) = cluster().await else { return };
    let register =
        |name: &str| json!({"username": name, "password": "correct horse", "register": true});
    let boss = TestClient::connect(&c.a.url(), register("boss"))
        .await
        .unwrap();
    let mut carol = TestClient::connect(&c.b.url(), register("carol"))
        .await
        .unwrap();
    let mut bob = TestClient::chat(&c.b.url(), "bob").await;

    // The role, from the command line, on the cluster's Redis.
    let out = std::process::Command::new(chat_e2e::workspace_binary("chat-server", "chat-server"))
        .args([
            "account",
            "role",
            "boss",
            "moderator",
            "--redis-url",
            &c.redis.url(),
        ])
        .output()
        .expect("run chat-server account role");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the role applies on node A", || async {
        (boss.ack("user:bans", json!({})).await["ok"] == true).then_some(())
    })
    .await;

    // A room kick on A reaches B's member, who leaves.
    let joined = ok(boss.ack("room:join", json!({"room": "#ops"})).await);
    assert_eq!(joined["role"], "owner");
    ok(bob.ack("room:join", json!({"room": "#ops"})).await);
    // Node A knows B's members from B's heartbeat.
    eventually("bob's membership reaches node A", || async {
        let info = ok(boss.ack("room:info", json!({"room": "#ops"})).await);
        info["members"].to_string().contains("bob").then_some(())
    })
    .await;
    ok(boss
        .ack(
            "room:kick",
            json!({"room": "#ops", "user": "bob", "reason": "test"}),
        )
        .await);
    let ev = bob.next("room:event").await;
    assert_eq!(
        (ev["kind"].as_str(), ev["by"].as_str()),
        (Some("kick"), Some("boss"))
    );
    let no = bob
        .ack(
            "room:message",
            json!({"room": "#ops", "text": "still here?"}),
        )
        .await;
    assert_eq!(err_code(&no), "not_member", "{no}");

    // A server ban on A ends carol's session on B at once.
    ok(boss
        .ack(
            "user:ban",
            json!({"user": "carol", "reason": "gone", "for": 600}),
        )
        .await);
    let err = carol.next("chat:error").await;
    assert_eq!(err["code"], "banned", "{err}");
    for url in [c.a.url(), c.b.url()] {
        let login = json!({"username": "carol", "password": "correct horse"});
        let refused = TestClient::connect(&url, login).await.err();
        assert!(
            refused.as_deref().is_some_and(|m| m.starts_with("banned:")),
            "{url}: {refused:?}"
        );
    }

    // A guest on B banned from A: its name, and guests from its address
    // (which only B knew), stay out of both nodes.
    ok(boss
        .ack("user:ban", json!({"user": "bob", "reason": "spam"}))
        .await);
    let err = bob
        .next_where("chat:error", |e| e["code"] == "banned")
        .await;
    assert_eq!(err["context"]["reason"], "spam", "{err}");
    let tries = std::sync::atomic::AtomicU32::new(0);
    for url in [c.a.url(), c.b.url()] {
        eventually("the address ban reaches every node", || async {
            // A new guest name each try: one let in holds its name.
            let n = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let refused = TestClient::connect(&url, json!({"username": format!("bob{n}")}))
                .await
                .err();
            refused
                .is_some_and(|m| m.starts_with("banned:") && m.contains("your address"))
                .then_some(())
        })
        .await;
    }
}

/// (v3) A kick given on one node while its target was away from the
/// other: the target resumes there, learns why from the room event, and
/// is out of the room (the removal reached that node through Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_on_one_node_reaches_a_resume_on_the_other() {
    let Some(c) = cluster().await else { return };
    let proxy = Proxy::start(c.a.addr).await;
    let register = json!({"username": "boss", "password": "correct horse", "register": true});
    let boss = TestClient::connect(&c.b.url(), register).await.unwrap();
    ok(boss.ack("room:join", json!({"room": "#ops"})).await);
    let mut carol = TestClient::chat(&proxy.url(), "carol").await;
    ok(carol.ack("room:join", json!({"room": "#ops"})).await);
    let token = carol.token();
    let before = ok(boss
        .ack("room:message", json!({"room": "#ops", "text": "before"}))
        .await);
    carol.next("room:message").await;
    eventually("carol's membership reaches node B", || async {
        let info = ok(boss.ack("room:info", json!({"room": "#ops"})).await);
        info["members"].to_string().contains("carol").then_some(())
    })
    .await;
    proxy.cut();
    drop(carol);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok(boss
        .ack(
            "room:kick",
            json!({"room": "#ops", "user": "carol", "reason": "away"}),
        )
        .await);
    ok(boss
        .ack("room:message", json!({"room": "#ops", "text": "after"}))
        .await);
    let mut carol = TestClient::connect(
        &c.a.url(),
        json!({"username": "carol", "session": token, "offset": before["id"]}),
    )
    .await
    .unwrap();
    let s = carol.session.clone().unwrap();
    assert_eq!(
        (s["recovered"].as_bool(), &s["rooms"]),
        (Some(true), &json!([])),
        "{s}"
    );
    let ev = carol.next("room:event").await;
    assert_eq!(
        (ev["kind"].as_str(), ev["by"].as_str()),
        (Some("kick"), Some("boss"))
    );
    ok(carol.ack("ping", json!({})).await);
    assert!(
        !carol
            .seen()
            .iter()
            .any(|(n, v)| n == "room:message" && v["text"] == "after"),
        "the room after the kick reached carol"
    );
}

/// (v3) A change made on one node reaches the message's audience on the
/// other, in order with the messages, and both nodes' history shows the
/// message as it stands; a deletion's text is gone from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_changes_hold_on_every_node() {
    let Some(c) = cluster().await else { return };
    let alice = TestClient::chat(&c.a.url(), "alice").await;
    let mut bob = TestClient::chat(&c.b.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#ops"})).await);
    ok(bob.ack("room:join", json!({"room": "#ops"})).await);
    let sent = ok(alice
        .ack(
            "room:message",
            json!({"room": "#ops", "text": "secret token abc123"}),
        )
        .await);
    let target = sent["id"].as_str().unwrap().to_owned();
    let edit = ok(alice
        .ack(
            "message:edit",
            json!({"id": target, "text": "oops, token abc1234"}),
        )
        .await);
    // A reaction from B, to the message numbered on A.
    ok(bob
        .ack(
            "message:react",
            json!({"id": target, "emoji": "👍", "on": true}),
        )
        .await);
    let reply = ok(bob
        .ack(
            "room:message",
            json!({"room": "#ops", "text": "rotate it", "replyTo": target}),
        )
        .await);
    let u = bob
        .next_where("message:update", |u| u["kind"] == "edit")
        .await;
    assert_eq!(
        (u["id"].clone(), u["text"].clone()),
        (edit["id"].clone(), json!("oops, token abc1234"))
    );
    let h = ok(alice.ack("history", json!({"room": "#ops"})).await);
    assert_eq!(h["messages"][0]["text"], "oops, token abc1234", "{h}");
    assert_eq!(
        h["messages"][0]["reactions"][0]["users"],
        json!(["bob"]),
        "{h}"
    );
    assert_eq!(h["messages"][1]["replyTo"], target.as_str());
    assert_eq!(h["messages"][1]["id"], reply["id"]);
    ok(alice.ack("message:delete", json!({"id": target})).await);
    let u = bob
        .next_where("message:update", |u| u["kind"] == "delete")
        .await;
    assert_eq!(u["target"], target.as_str());
    for node in [&alice, &bob] {
        let h = ok(node.ack("history", json!({"room": "#ops"})).await);
        assert_eq!(h["messages"][0]["deleted"], true, "{h}");
        assert!(!h.to_string().contains("abc123"), "{h}");
    }
    // Nothing in Redis holds the text any more.
    let client = redis::Client::open(c.redis.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("chat:*")
        .query_async(&mut con)
        .await
        .unwrap();
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut con)
            .await
            .unwrap();
        if kind != "zset" {
            continue;
        }
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&k)
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        for m in members {
            assert!(!m.contains("abc123"), "{k}: {m}");
        }
    }
}

/// (v3) What one node acknowledged, the other answers at once (no wait
/// for a heartbeat): a join's members, a connect in `presence:get`, a
/// recipient that dropped (its DM is `queued`), both nodes' users for a
/// control client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_node_acknowledged_the_other_answers_at_once() {
    let Some(c) = cluster().await else { return };
    let (a1, a2) = (
        TestClient::chat(&c.a.url(), "a1").await,
        TestClient::chat(&c.a.url(), "a2").await,
    );
    let (b1, b2) = (
        TestClient::chat(&c.b.url(), "b1").await,
        TestClient::chat(&c.b.url(), "b2").await,
    );
    for who in [&a1, &a2, &b1] {
        ok(who.ack("room:join", json!({"room": "#team"})).await);
    }
    let last = ok(b2.ack("room:join", json!({"room": "#team"})).await);
    assert_eq!(last["members"], json!(["a1", "a2", "b1", "b2"]), "{last}");

    // A connect on B is in A's presence:get right after.
    let newcomer = TestClient::chat(&c.b.url(), "newcomer").await;
    let p = ok(a1.ack("presence:get", json!({})).await);
    assert_eq!(p["online"], 5, "{p}");
    assert!(
        p["users"].as_array().unwrap().contains(&json!("newcomer")),
        "{p}"
    );
    let control = TestClient::chat(&c.a.url(), "control").await;
    let p = ok(control.ack("presence:get", json!({})).await);
    assert_eq!(
        p["users"],
        json!(["a1", "a2", "b1", "b2", "control", "newcomer"]),
        "{p}"
    );
    assert_eq!(p["rooms"], json!([{"room": "#team", "members": 4}]), "{p}");
    drop(newcomer);

    // A user whose transport vanishes on A is in its recovery window: a
    // DM from B is kept for it, and the ack says so.
    let proxy = Proxy::start(c.a.addr).await;
    let dropping = TestClient::chat(&proxy.url(), "dropping").await;
    let mut b1 = b1;
    let live = ok(b1
        .ack(
            "dm:message",
            json!({"to": "dropping", "text": "still there?"}),
        )
        .await);
    assert_eq!(live.get("queued"), None, "{live}");
    proxy.cut();
    b1.next_where("presence", |p| {
        p["event"] == "disconnect" && p["user"] == "dropping"
    })
    .await;
    let kept = ok(b1
        .ack(
            "dm:message",
            json!({"to": "dropping", "text": "are you back?"}),
        )
        .await);
    assert_eq!(kept["queued"], true, "{kept}");
    drop(dropping);
}
