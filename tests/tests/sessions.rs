//! (v3) One account on several clients at once: presence counted once,
//! membership shared, DMs and typing on every session, each session's
//! recovery exactly once while the others stay live, the session limit,
//! `session:list`/`session:end`, and read markers that follow the account
//! across sessions and restarts.

use std::time::Duration;

use chat_e2e::server_process::ServerProcess;
use chat_e2e::{Proxy, TestClient, TestServer, err_code, ok};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

fn login(name: &str, client: &str) -> Value {
    json!({"username": name, "password": PASSWORD, "client": client})
}

async fn register(url: &str, name: &str) -> TestClient {
    TestClient::connect(
        url,
        json!({"username": name, "password": PASSWORD, "register": true, "client": "first"}),
    )
    .await
    .expect("registered")
}

async fn logged_in(url: &str, name: &str, client: &str) -> TestClient {
    TestClient::connect(url, login(name, client))
        .await
        .unwrap_or_else(|e| panic!("{name} refused: {e}"))
}

/// `c` posts `text` in `room`; the ack.
async fn say(c: &TestClient, room: &str, text: impl Into<String>) -> Value {
    let text: String = text.into();
    ok(c.ack("room:message", json!({"room": room, "text": text}))
        .await)
}

/// Whether `event` arrives within a short while (for what must not come).
async fn arrives(c: &mut TestClient, event: &str, pred: impl Fn(&Value) -> bool) -> bool {
    tokio::time::timeout(Duration::from_millis(400), c.next_where(event, pred))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_of_one_account_are_one_person_with_every_message() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let mut bob = TestClient::chat(&url, "bob").await;
    let mut laptop = register(&url, "Alice").await;
    bob.next_where("presence", |p| {
        p["event"] == "connect" && p["user"] == "Alice"
    })
    .await;
    let mut desktop = logged_in(&url, "alice", "desktop").await;
    assert_ne!(
        laptop.token(),
        desktop.token(),
        "each client has its own session"
    );
    assert!(
        !arrives(&mut bob, "presence", |p| p["event"] == "connect"
            && p["user"] == "Alice")
        .await,
        "the second client is not a second person"
    );
    let p = ok(bob.ack("presence:get", json!({})).await);
    assert_eq!(p["online"], 2, "{p}");
    assert_eq!(p["users"], json!(["Alice", "bob"]), "listed once: {p}");
    let mut admin = TestClient::admin(&url, "admin-secret").await.unwrap();
    let snap = admin.next("admin:snapshot").await;
    assert_eq!(snap["online"], 2, "{snap}");
    let users = snap["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "{snap}");
    let alice = users.iter().find(|u| u["username"] == "Alice").unwrap();
    assert_eq!(alice["sessions"], 2, "her two clients: {snap}");

    // A join on one client applies to the account.
    ok(laptop.ack("room:join", json!({"room": "#ops"})).await);
    let joined = desktop.next("room:joined").await;
    assert_eq!(joined, json!({"room": "#ops"}));
    let ack = ok(bob.ack("room:join", json!({"room": "#ops"})).await);
    assert_eq!(ack["members"], json!(["Alice", "bob"]), "{ack}");
    assert!(
        !arrives(&mut laptop, "room:joined", |_| true).await,
        "the client that asked has its ack"
    );

    // A room message reaches each session once.
    say(&bob, "#ops", "deploy?").await;
    for c in [&mut laptop, &mut desktop] {
        let m = c.next("room:message").await;
        assert_eq!(m["text"], "deploy?");
        assert!(!arrives(c, "room:message", |_| true).await, "once");
    }

    // A DM reaches every session of its recipient, and the sender's
    // other sessions, never the socket that sent it.
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "hi"}))
        .await);
    for c in [&mut laptop, &mut desktop] {
        assert_eq!(c.next("dm:message").await["text"], "hi");
    }
    let sent = ok(laptop
        .ack("dm:message", json!({"to": "bob", "text": "hello"}))
        .await);
    assert!(sent.get("queued").is_none(), "{sent}");
    let mine = desktop.next("dm:message").await;
    assert_eq!(mine["from"], "Alice");
    assert_eq!(mine["to"], "bob");
    assert_eq!(mine["id"], sent["id"]);
    assert_eq!(bob.next("dm:message").await["text"], "hello");
    assert!(
        !arrives(&mut laptop, "dm:message", |_| true).await,
        "no echo to the sender"
    );

    // Typing reaches every session of its target.
    ok(bob
        .ack("typing", json!({"to": "alice", "typing": true}))
        .await);
    for c in [&mut laptop, &mut desktop] {
        assert_eq!(c.next("typing").await["from"], "bob");
    }

    // A broadcast skips only the socket that sent it.
    ok(laptop
        .ack("broadcast:message", json!({"text": "all"}))
        .await);
    assert_eq!(desktop.next("broadcast:message").await["text"], "all");
    assert_eq!(bob.next("broadcast:message").await["text"], "all");
    assert!(!arrives(&mut laptop, "broadcast:message", |_| true).await);

    // A leave on one client applies to both.
    ok(desktop.ack("room:leave", json!({"room": "#ops"})).await);
    assert_eq!(laptop.next("room:left").await, json!({"room": "#ops"}));
    let leave = bob.next_where("presence", |p| p["event"] == "leave").await;
    assert_eq!(leave["members"], 1, "{leave}");
    say(&bob, "#ops", "gone?").await;
    for c in [&mut laptop, &mut desktop] {
        assert!(!arrives(c, "room:message", |_| true).await);
    }

    // One client leaves: the person is still here; the last one: gone.
    laptop.disconnect().await;
    assert!(
        !arrives(&mut bob, "presence", |p| p["event"] == "disconnect"
            && p["user"] == "Alice")
        .await,
        "one of two clients went"
    );
    let p = ok(bob.ack("presence:get", json!({})).await);
    assert_eq!(p["online"], 2, "{p}");
    desktop.disconnect().await;
    let gone = bob
        .next_where("presence", |p| p["event"] == "disconnect")
        .await;
    assert_eq!(gone["user"], "Alice");
    assert_eq!(gone["online"], 1);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_recovers_exactly_once_while_the_other_stays_live() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = Proxy::start(server.addr).await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    let first = register(&server.url(), "alice").await;
    first.disconnect().await;
    // Two clients: one through a network that will fail, one direct.
    let roaming = TestClient::connect(&proxy.url(), login("alice", "phone"))
        .await
        .unwrap();
    let mut desk = logged_in(&server.url(), "alice", "desk").await;
    ok(desk.ack("room:join", json!({"room": "#a"})).await);
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    say(&bob, "#a", "m0").await;
    assert_eq!(desk.next("room:message").await["text"], "m0");
    let token = roaming.token();
    // The phone saw m0 too (it is a member through the account).
    let mut roaming = roaming;
    let offset = roaming.next("room:message").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    proxy.set_down(true);
    proxy.cut();
    for i in 1..=3 {
        say(&bob, "#a", format!("m{i}")).await;
    }
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "dm"}))
        .await);
    for want in ["m1", "m2", "m3"] {
        assert_eq!(desk.next("room:message").await["text"], want);
    }
    assert_eq!(desk.next("dm:message").await["text"], "dm");

    let mut back = TestClient::connect(
        &server.url(),
        json!({"username": "alice", "session": token, "offset": offset}),
    )
    .await
    .expect("the phone resumes with its token");
    let s = back.session.clone().unwrap();
    assert_eq!(s["recovered"], true, "{s}");
    assert_eq!(s["missed"], 4, "{s}");
    let mut got = Vec::new();
    for _ in 0..4 {
        let seen = back.next_of(&["room:message", "dm:message"]).await;
        assert_eq!(seen.1["replayed"], true);
        got.push(seen.1["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, ["m1", "m2", "m3", "dm"]);
    assert!(
        !arrives(&mut desk, "room:message", |_| true).await,
        "the desk got each once"
    );
    say(&bob, "#a", "live").await;
    assert_eq!(back.next("room:message").await["text"], "live");
    assert_eq!(desk.next("room:message").await["text"], "live");
    assert!(!arrives(&mut back, "room:message", |_| true).await, "once");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_beyond_the_limit_ends_the_least_recently_active_session() {
    let server = TestServer::start(chat_server::Config {
        max_sessions_per_account: 2,
        ..TestServer::config()
    })
    .await;
    let url = server.url();
    let mut old = register(&url, "alice").await;
    let recent = logged_in(&url, "alice", "two").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    ok(recent.ack("ping", json!({})).await);
    let third = logged_in(&url, "alice", "three").await;
    let err = old.next("chat:error").await;
    assert_eq!(err["code"], "session_replaced", "{err}");
    let list = ok(third.ack("session:list", json!({})).await);
    let clients: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["two", "three"], "{list}");
    // The ended session's token no longer resumes it.
    let again = TestClient::connect(
        &url,
        json!({"username": "alice", "session": old.token(), "password": PASSWORD}),
    )
    .await
    .unwrap();
    assert_eq!(again.session.as_ref().unwrap()["recovered"], false);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_list_and_end() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let laptop = register(&url, "alice").await;
    let mut desktop = logged_in(&url, "alice", &"d".repeat(80)).await;
    let list = ok(laptop.ack("session:list", json!({})).await);
    let sessions = list["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{list}");
    assert_eq!(sessions[0]["client"], "first");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[1]["current"], false);
    assert_eq!(
        sessions[1]["client"].as_str().unwrap().len(),
        64,
        "cut to 64"
    );
    assert_eq!(sessions[1]["address"], "127.0.0.1");
    for s in &sessions {
        assert_eq!(s["live"], true);
        assert!(s["connectedAt"].as_u64().unwrap() > 0);
        assert!(s["lastActiveAt"].as_u64().is_some());
    }
    let text = list.to_string();
    assert!(
        !text.contains(&laptop.token()) && !text.contains(&desktop.token()),
        "never a token: {text}"
    );

    let missing = laptop.ack("session:end", json!({"id": "nope"})).await;
    assert_eq!(err_code(&missing), "not_found", "{missing}");
    let other = sessions[1]["id"].as_str().unwrap();
    ok(laptop.ack("session:end", json!({"id": other})).await);
    let err = desktop.next("chat:error").await;
    assert_eq!(err["code"], "session_ended", "{err}");
    let list = ok(laptop.ack("session:list", json!({})).await);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
    // Its token is an unknown token now: without the password, the
    // account's name is refused.
    let m = TestClient::connect(
        &url,
        json!({"username": "alice", "session": desktop.token()}),
    )
    .await
    .err()
    .expect("refused");
    assert!(m.starts_with("auth_required"), "{m}");

    // Guests have one session and no list.
    let guest = TestClient::chat(&url, "guest").await;
    let r = guest.ack("session:list", json!({})).await;
    assert_eq!(err_code(&r), "auth_required", "{r}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_markers_move_forward_and_follow_the_account() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let bob = TestClient::chat(&url, "bob").await;
    let mut laptop = register(&url, "alice").await;
    let mut desktop = logged_in(&url, "alice", "desktop").await;
    ok(laptop.ack("room:join", json!({"room": "#a"})).await);
    desktop.next("room:joined").await;
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    let mut ids = Vec::new();
    for i in 0..3 {
        let a = say(&bob, "#a", format!("m{i}")).await;
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    let ack = ok(laptop
        .ack("read:mark", json!({"room": "#a", "id": ids[1]}))
        .await);
    assert_eq!(ack["room"], "#a");
    assert_eq!(ack["id"], ids[1]);
    let synced = desktop.next("read:marker").await;
    assert_eq!(synced, json!({"room": "#a", "id": ids[1]}));
    assert!(
        !arrives(&mut laptop, "read:marker", |_| true).await,
        "not to the asker"
    );

    // Forward only: an older id is acked with the current marker.
    let back = ok(desktop
        .ack("read:mark", json!({"room": "#a", "id": ids[0]}))
        .await);
    assert_eq!(back["id"], ids[1], "{back}");
    assert!(!arrives(&mut laptop, "read:marker", |_| true).await);

    // DMs, and the refusals.
    let dm = ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "x"}))
        .await);
    let ack = ok(desktop
        .ack("read:mark", json!({"with": "bob", "id": dm["id"]}))
        .await);
    assert_eq!(ack["with"], "bob");
    assert_eq!(
        laptop.next("read:marker").await,
        json!({"with": "bob", "id": dm["id"]})
    );
    let r = laptop
        .ack("read:mark", json!({"room": "#zzz", "id": ids[0]}))
        .await;
    assert_eq!(err_code(&r), "not_member", "{r}");
    let r = laptop
        .ack("read:mark", json!({"room": "#a", "id": "999999"}))
        .await;
    assert_eq!(err_code(&r), "message_not_found", "{r}");
    let r = laptop
        .ack(
            "read:mark",
            json!({"room": "#a", "with": "bob", "id": ids[0]}),
        )
        .await;
    assert_eq!(err_code(&r), "invalid_payload", "{r}");

    // A new client starts with the markers and what is unread after them.
    let third = logged_in(&url, "alice", "third").await;
    let markers = third.session.as_ref().unwrap()["markers"].clone();
    let room = markers
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["room"] == "#a")
        .cloned()
        .unwrap_or_else(|| panic!("{markers}"));
    assert_eq!(room["id"], ids[1]);
    assert_eq!(room["unread"], 1, "m2 only: {markers}");
    let with = markers
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["with"] == "bob")
        .cloned()
        .unwrap_or_else(|| panic!("{markers}"));
    assert_eq!(with["unread"], 0, "{markers}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_are_the_same_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(TestServer::on_disk(dir.path())).await;
    let url = server.url();
    let bob = TestClient::chat(&url, "bob").await;
    let alice = register(&url, "alice").await;
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    let read = say(&bob, "#a", "read").await;
    ok(alice
        .ack("read:mark", json!({"room": "#a", "id": read["id"]}))
        .await);
    for i in 0..3 {
        say(&bob, "#a", format!("u{i}")).await;
    }
    say(&alice, "#a", "mine").await;
    for i in 0..2 {
        ok(bob
            .ack(
                "dm:message",
                json!({"to": "alice", "text": format!("d{i}")}),
            )
            .await);
    }
    let before = alice.session.clone();
    alice.disconnect().await;
    bob.disconnect().await;
    server.stop().await.unwrap();
    drop(before);

    let server = TestServer::start(TestServer::on_disk(dir.path())).await;
    let alice = logged_in(&server.url(), "alice", "next morning").await;
    let markers = alice.session.as_ref().unwrap()["markers"].clone();
    let list = markers.as_array().unwrap();
    let room = list.iter().find(|m| m["room"] == "#a").unwrap();
    assert_eq!(room["id"], read["id"], "{markers}");
    assert_eq!(
        room["unread"], 3,
        "others' messages after the marker: {markers}"
    );
    let dm = list.iter().find(|m| m["with"] == "bob").unwrap();
    assert_eq!(dm["id"], Value::Null, "{markers}");
    assert_eq!(dm["unread"], 2, "{markers}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_that_resume_at_once_each_get_what_they_missed_once() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = Proxy::start(server.addr).await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    register(&server.url(), "alice").await.disconnect().await;
    let mut one = TestClient::connect(&proxy.url(), login("alice", "one"))
        .await
        .unwrap();
    let mut two = TestClient::connect(&proxy.url(), login("alice", "two"))
        .await
        .unwrap();
    ok(one.ack("room:join", json!({"room": "#a"})).await);
    two.next("room:joined").await;
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    let first = say(&bob, "#a", "seen").await;
    one.next("room:message").await;
    two.next("room:message").await;
    let (t1, t2) = (one.token(), two.token());
    proxy.set_down(true);
    proxy.cut();
    for i in 0..5 {
        say(&bob, "#a", format!("m{i}")).await;
    }
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "dm"}))
        .await);
    proxy.set_down(false);
    let auth = |t: &str| json!({"username": "alice", "session": t, "offset": first["id"]});
    let url = server.url();
    let (a, b) = tokio::join!(
        TestClient::connect(&url, auth(&t1)),
        TestClient::connect(&url, auth(&t2))
    );
    for mut c in [a.unwrap(), b.unwrap()] {
        let s = c.session.clone().unwrap();
        assert_eq!(s["recovered"], true, "{s}");
        assert_eq!(s["missed"], 6, "{s}");
        let mut texts = Vec::new();
        for _ in 0..6 {
            let (_, m) = c.next_of(&["room:message", "dm:message"]).await;
            assert_eq!(m["replayed"], true, "{m}");
            texts.push(m["text"].as_str().unwrap().to_owned());
        }
        assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4", "dm"]);
        assert!(
            !arrives(&mut c, "room:message", |_| true).await,
            "each once"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_share_one_presence_one_membership_and_every_dm() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let mut bob = TestClient::chat(&url, "bob").await;
    let mut clients = vec![register(&url, "Alice").await];
    for label in ["two", "three"] {
        clients.push(logged_in(&url, "alice", label).await);
    }
    let p = ok(bob.ack("presence:get", json!({})).await);
    assert_eq!(
        (p["online"].as_u64(), p["users"].clone()),
        (Some(2), json!(["Alice", "bob"]))
    );
    ok(clients[2].ack("room:join", json!({"room": "#x"})).await);
    for c in &mut clients[..2] {
        assert_eq!(c.next("room:joined").await, json!({"room": "#x"}));
    }
    ok(bob.ack("room:join", json!({"room": "#x"})).await);
    say(&bob, "#x", "to all three").await;
    ok(clients[0]
        .ack("dm:message", json!({"to": "bob", "text": "from one"}))
        .await);
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.next("room:message").await["text"], "to all three");
        assert!(!arrives(c, "room:message", |_| true).await, "once");
        if i > 0 {
            assert_eq!(c.next("dm:message").await["text"], "from one");
        }
    }
    assert!(!arrives(&mut clients[0], "dm:message", |_| true).await);
    let joins = bob
        .seen()
        .into_iter()
        .filter(|(e, p)| e == "presence" && p["event"] == "connect" && p["user"] == "Alice")
        .count();
    assert_eq!(joins, 1, "one connect for three clients");
    server.stop().await.unwrap();
}

/// Read markers acked before a SIGKILL are there after it, and both
/// clients of the account resume their own sessions with what they
/// missed.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_and_both_sessions_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let start = || ServerProcess::on_disk(dir.path());
    let mut server = start();
    let url = format!("http://{}", server.addr().await);
    let bob = TestClient::chat(&url, "bob").await;
    let mut one = register(&url, "alice").await;
    let mut two = logged_in(&url, "alice", "two").await;
    ok(one.ack("room:join", json!({"room": "#a"})).await);
    two.next("room:joined").await;
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    let mut last = Value::Null;
    for i in 0..4 {
        last = say(&bob, "#a", format!("m{i}")).await;
    }
    let marked = ok(two
        .ack("read:mark", json!({"room": "#a", "id": last["id"]}))
        .await);
    assert_eq!(marked["id"], last["id"]);
    let offsets: Vec<String> = {
        let mut got = Vec::new();
        for c in [&mut one, &mut two] {
            let mut id = String::new();
            for _ in 0..4 {
                id = c.next("room:message").await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            }
            got.push(id);
        }
        got
    };
    let tokens = [one.token(), two.token()];
    server.kill().await;

    let mut server = start();
    let url = format!("http://{}", server.addr().await);
    // Bob's name is still his (his session waits in its window).
    let carol = TestClient::chat(&url, "carol").await;
    ok(carol.ack("room:join", json!({"room": "#a"})).await);
    let after = say(&carol, "#a", "after the crash").await;
    for (token, offset) in tokens.iter().zip(&offsets) {
        let mut c = TestClient::connect(
            &url,
            json!({"username": "alice", "session": token, "offset": offset}),
        )
        .await
        .expect("each client resumes its own session");
        let s = c.session.clone().unwrap();
        assert_eq!(s["recovered"], true, "{s}");
        assert_eq!(s["missed"], 1, "{s}");
        let m = c.next("room:message").await;
        assert_eq!(
            (m["id"].clone(), m["replayed"].clone()),
            (after["id"].clone(), json!(true))
        );
        let marker = s["markers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["room"] == "#a")
            .cloned()
            .unwrap_or_else(|| panic!("{s}"));
        assert_eq!(marker["id"], last["id"], "the acked marker: {s}");
        assert_eq!(marker["unread"], 1, "{s}");
    }
    server.kill().await;
}
