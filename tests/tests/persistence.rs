//! State that outlives the process: the on-disk store across a planned
//! restart (in-process, same data directory) and across a SIGKILL of the
//! real binary; `history` paging; `ping`; a store that cannot write.

use std::collections::BTreeSet;
use std::sync::Arc;

use chat_e2e::raw::{self, ws_connect, ws_open, ws_text};
use chat_e2e::{TestClient, TestServer, err_code, ok};
use chat_server::Config;
use chat_server::store::{FaultyStore, MemoryStore, Store};
use serde_json::{Value, json};

fn fast(dir: &std::path::Path) -> Config {
    Config {
        rate: 0.0,
        event_rate: 0.0,
        ..TestServer::on_disk(dir)
    }
}

fn id(v: &Value) -> u64 {
    v["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .expect("an id")
}

/// Every message of `room` through `history`, paging back `limit` at a time.
async fn whole_history(c: &TestClient, room: &str, limit: u64) -> Vec<Value> {
    whole("room", c, room, limit).await
}

/// Every message of a conversation (`of` is "room" or "with") through
/// `history`, paging back `limit` at a time.
async fn whole(of: &str, c: &TestClient, name: &str, limit: u64) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut req = json!({of: name, "limit": limit});
        if let Some(b) = &before {
            req["before"] = json!(b);
        }
        let page = ok(c.ack("history", req).await);
        let msgs = page["messages"].as_array().cloned().unwrap_or_default();
        assert!(msgs.len() as u64 <= limit);
        let mut batch = msgs.clone();
        batch.append(&mut all);
        all = batch;
        if page["more"] != true {
            break;
        }
        before = msgs
            .first()
            .map(|m| m["id"].as_str().unwrap_or("").to_owned());
        assert!(before.is_some(), "more:true with an empty page");
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_history_sessions_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(fast(dir.path())).await;
    let mut bob = ws_open(server.addr, None).await;
    let bob_session = ws_connect(&mut bob, json!({"username": "bob"}))
        .await
        .unwrap();
    raw::ws_emit(&mut bob, "room:join", json!({"room": "#load"}), Some(1)).await;
    raw::ws_until_ack(&mut bob, 1, &mut Vec::new()).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    ok(alice.ack("room:join", json!({"room": "#load"})).await);
    let mut ids = Vec::new();
    for i in 0..30 {
        let ack = ok(alice
            .ack(
                "room:message",
                json!({"room": "#load", "text": format!("m{i}")}),
            )
            .await);
        ids.push(id(&ack));
    }
    // Bob saw the first ten, then the server restarts.
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let t = ws_text(&mut bob).await.expect("bob reads");
        if let Some((name, m)) = raw::event(&t)
            && name == "room:message"
        {
            seen.push(id(&m));
        }
    }
    alice.disconnect().await;
    server.stop().await.unwrap();
    drop(bob);

    let server = TestServer::start(fast(dir.path())).await;
    let mut bob = ws_open(server.addr, None).await;
    let auth = json!({"username": "bob", "session": bob_session["session"], "offset": seen[9].to_string()});
    let resumed = ws_connect(&mut bob, auth).await.expect("bob resumes");
    assert_eq!(resumed["recovered"], true, "{resumed}");
    assert_eq!(resumed["rooms"], json!(["#load"]), "{resumed}");
    assert_eq!(resumed["missed"], 20, "{resumed}");
    let mut replayed = Vec::new();
    while replayed.len() < 20 {
        let t = ws_text(&mut bob).await.expect("the replay");
        if let Some((name, m)) = raw::event(&t)
            && name == "room:message"
        {
            assert_eq!(m["replayed"], true);
            replayed.push(id(&m));
        }
    }
    assert_eq!(replayed, ids[10..], "every missed message once, in order");

    let carol = TestClient::chat(&server.url(), "carol").await;
    let joined = ok(carol.ack("room:join", json!({"room": "#load"})).await);
    let history: Vec<u64> = joined["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(history, ids, "room:join history is as before the restart");
    let next = ok(carol
        .ack("room:message", json!({"room": "#load", "text": "after"}))
        .await);
    assert!(
        id(&next) > *ids.last().unwrap(),
        "ids increase across restarts"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_back_through_hundreds_of_messages() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(fast(dir.path())).await;
    let alice = TestClient::chat(&server.url(), "alice").await;
    ok(alice.ack("room:join", json!({"room": "#pages"})).await);
    let mut ids = Vec::new();
    for i in 0..420 {
        let text = format!("p{i}");
        let ack = ok(alice
            .ack(
                "room:message",
                json!({"room": "#pages", "text": text, "action": i % 7 == 0}),
            )
            .await);
        ids.push(id(&ack));
    }
    let all = whole_history(&alice, "#pages", 50).await;
    let got: Vec<u64> = all.iter().map(id).collect();
    assert_eq!(got, ids, "every message once, oldest first");
    assert_eq!(all[0]["action"], true, "action lines keep their flag");
    assert!(all[1].get("action").is_none(), "{}", all[1]);

    let bob = TestClient::chat(&server.url(), "bob").await;
    let refused = bob.ack("history", json!({"room": "#pages"})).await;
    assert_eq!(err_code(&refused), "not_member");
    let pong = ok(bob.ack("ping", json!({})).await);
    assert!(pong["ts"].as_u64().is_some_and(|t| t > 0), "{pong}");

    ok(alice
        .ack("dm:message", json!({"to": "bob", "text": "hi bob"}))
        .await);
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "hi alice"}))
        .await);
    let dms = ok(bob.ack("history", json!({"with": "alice"})).await);
    let texts: Vec<&str> = dms["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(texts, ["hi bob", "hi alice"]);
    server.stop().await.unwrap();
}

/// The real binary, killed with SIGKILL while a client sends: after a
/// restart on the same data directory every acknowledged message is there.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_a_sigkill() {
    use std::process::{Command, Stdio};
    let bin = chat_e2e::workspace_binary("chat-server", "chat-server");
    let dir = tempfile::tempdir().unwrap();
    let start = |port: u16| {
        Command::new(&bin)
            .args(["--bind", &format!("127.0.0.1:{port}"), "--rate", "0"])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chat-server")
    };
    let port = free_port();
    let mut child = start(port);
    let url = format!("http://127.0.0.1:{port}");
    // carol has an account and is away: DMs to her are kept for her.
    let carol = json!({"username": "carol", "password": "correct horse", "register": true});
    let carol = loop {
        match TestClient::connect(&url, carol.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    };
    carol.disconnect().await;
    let alice = connect_when_up(&url, "alice").await;
    ok(alice.ack("room:join", json!({"room": "#crash"})).await);
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let dms = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sender = {
        let (acked, dms) = (Arc::clone(&acked), Arc::clone(&dms));
        tokio::spawn(async move {
            for i in 0.. {
                let text = format!("c{i}");
                let (event, body) = if i % 2 == 0 {
                    ("room:message", json!({"room": "#crash", "text": text}))
                } else {
                    ("dm:message", json!({"to": "carol", "text": text}))
                };
                let ack = alice.ack(event, body).await;
                if ack["ok"] != true {
                    break;
                }
                let into = if i % 2 == 0 { &acked } else { &dms };
                into.lock().unwrap().push(id(&ack));
            }
        })
    };
    // Kill it mid-traffic, once a good number of messages are acknowledged.
    let up = raw::eventually(|| async { acked.lock().unwrap().len() >= 300 }).await;
    assert!(up, "the sender never got going");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let _ = tokio::time::timeout(chat_e2e::WAIT, sender).await;
    let acked: Vec<u64> = acked.lock().unwrap().clone();
    let dms: Vec<u64> = dms.lock().unwrap().clone();

    let port = free_port();
    let mut child = start(port);
    let url = format!("http://127.0.0.1:{port}");
    let bob = connect_when_up(&url, "bob").await;
    ok(bob.ack("room:join", json!({"room": "#crash"})).await);
    let stored: BTreeSet<u64> = whole_history(&bob, "#crash", 200)
        .await
        .iter()
        .map(id)
        .collect();
    let lost: Vec<u64> = acked
        .iter()
        .filter(|i| !stored.contains(i))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged, then lost in the crash: {lost:?}"
    );
    let carol = json!({"username": "carol", "password": "correct horse"});
    let carol = TestClient::connect(&url, carol).await.unwrap();
    let kept: BTreeSet<u64> = whole("with", &carol, "alice", 200)
        .await
        .iter()
        .map(id)
        .collect();
    let lost: Vec<u64> = dms.iter().filter(|i| !kept.contains(i)).copied().collect();
    assert!(
        dms.len() >= 250 && lost.is_empty(),
        "DMs acknowledged ({}), then lost in the crash: {lost:?}",
        dms.len()
    );
    let next = ok(bob
        .ack("room:message", json!({"room": "#crash", "text": "after"}))
        .await);
    assert!(
        id(&next) > *acked.last().unwrap(),
        "ids increase across a crash"
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn connect_when_up(url: &str, name: &str) -> TestClient {
    let deadline = tokio::time::Instant::now() + chat_e2e::WAIT;
    loop {
        match TestClient::connect(url, json!({"username": name})).await {
            Ok(c) => return c,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                panic!("chat-server did not come up at {url}: {e}")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_write_refuses_messages_and_recovers() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new(1000))));
    let store: Arc<dyn Store> = faulty.clone();
    let server = TestServer::start_on(TestServer::config(), store).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    ok(alice.ack("room:join", json!({"room": "#disk"})).await);
    ok(bob.ack("room:join", json!({"room": "#disk"})).await);

    faulty.fail_writes(true);
    let first = bob
        .ack("room:message", json!({"room": "#disk", "text": "lost?"}))
        .await;
    assert_eq!(err_code(&first), "unavailable", "{first}");
    let refused = bob
        .ack("room:message", json!({"room": "#disk", "text": "no"}))
        .await;
    assert_eq!(err_code(&refused), "unavailable", "{refused}");
    assert!(
        refused["error"]["context"]["retryAfterMs"]
            .as_u64()
            .is_some()
    );

    faulty.fail_writes(false);
    let sent = ok(bob
        .ack("room:message", json!({"room": "#disk", "text": "back"}))
        .await);
    let got = alice
        .next_where("room:message", |m| m["text"] == "back")
        .await;
    assert_eq!(got["id"], sent["id"]);
    server.stop().await.unwrap();
}

/// A slow disk holds a message's ack back, and the message with it (it
/// is delivered only once stored), but not the sender's next requests: a
/// ping sent after it is answered before its ack, which comes with the
/// commit, after the room got the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_commit_holds_back_its_ack_and_nothing_else() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new(1000))));
    let store: Arc<dyn Store> = faulty.clone();
    let server = TestServer::start_on(TestServer::config(), store).await;
    let mut alice = ws_open(server.addr, None).await;
    ws_connect(&mut alice, json!({"username": "alice"}))
        .await
        .unwrap();
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let mut seen = Vec::new();
    raw::ws_emit(&mut alice, "room:join", json!({"room": "#slow"}), Some(1)).await;
    ok(raw::ws_until_ack(&mut alice, 1, &mut seen).await.unwrap());
    ok(bob.ack("room:join", json!({"room": "#slow"})).await);

    faulty.hold_commits(true);
    let message = json!({"room": "#slow", "text": "on a slow disk"});
    raw::ws_emit(&mut alice, "room:message", message, Some(2)).await;
    raw::ws_emit(&mut alice, "ping", json!({}), Some(3)).await;
    // The ping's ack comes first: the message's is not among the acks
    // up to it, and the message did not come back either.
    let mut acks = Vec::new();
    loop {
        let text = ws_text(&mut alice).await.expect("the ping is answered");
        if let Some((id, body)) = raw::ack(&text) {
            acks.push(id);
            if id == 3 {
                ok(body);
                break;
            }
        }
        assert!(
            !text.contains("on a slow disk"),
            "delivered before its commit: {text}"
        );
    }
    assert_eq!(acks, vec![3], "the message's ack waits for the commit");
    assert_eq!(bob.count("room:message"), 0, "delivered before its commit");

    faulty.hold_commits(false);
    let live = bob.next("room:message").await;
    assert_eq!(live["text"], "on a slow disk");
    let sent = ok(raw::ws_until_ack(&mut alice, 2, &mut seen).await.unwrap());
    assert_eq!(sent["id"], live["id"]);
    server.stop().await.unwrap();
}

/// The disk fills up under messages the server has already numbered (the
/// store looked healthy): each is refused `unavailable` and reaches nobody,
/// not the room live, not a DM's recipient, not history, not a member who
/// resumes from before them; a retry once the disk is back arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_commit_fails_reaches_nobody() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new(1000))));
    let store: Arc<dyn Store> = faulty.clone();
    let server = TestServer::start_on(TestServer::config(), store).await;
    let proxy = chat_e2e::Proxy::start(server.addr).await;
    let mut alice = TestClient::chat(&server.url(), "alice").await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    let mut carol = TestClient::chat(&proxy.url(), "carol").await;
    for c in [&alice, &bob, &carol] {
        ok(c.ack("room:join", json!({"room": "#disk"})).await);
    }
    let before = ok(bob
        .ack("room:message", json!({"room": "#disk", "text": "stored"}))
        .await);
    let offset = carol.next("room:message").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice.next("room:message").await;
    let token = carol.token();
    proxy.cut();
    alice
        .next_where("presence", |p| {
            p["event"] == "disconnect" && p["user"] == "carol"
        })
        .await;

    faulty.fail_commits(true);
    let refused = [
        bob.ack(
            "room:message",
            json!({"room": "#disk", "text": "lost room"}),
        )
        .await,
        bob.ack("dm:message", json!({"to": "alice", "text": "lost dm"}))
            .await,
        bob.ack("global:message", json!({"text": "lost global"}))
            .await,
        bob.ack("broadcast:message", json!({"text": "lost broadcast"}))
            .await,
    ];
    for ack in &refused {
        assert_eq!(err_code(ack), "unavailable", "{ack}");
    }
    faulty.fail_commits(false);
    let retried = ok(bob
        .ack("room:message", json!({"room": "#disk", "text": "retried"}))
        .await);

    // alice's next message of any kind is the retry: nothing refused came.
    let (event, data) = alice.next_of(&chat_e2e::MESSAGE_EVENTS).await;
    assert_eq!(event, "room:message", "{data}");
    assert_eq!(data["text"], "retried");
    assert_eq!(data["id"], retried["id"]);

    let history = ok(alice.ack("history", json!({"room": "#disk"})).await);
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["stored", "retried"]);
    let dms = ok(alice.ack("history", json!({"with": "bob"})).await);
    assert_eq!(dms["messages"], json!([]), "{dms}");

    // carol resumes from before the failures: she misses only the retry.
    let auth = json!({"username": "carol", "session": token, "offset": offset});
    let mut carol = TestClient::connect(&server.url(), auth).await.unwrap();
    let session = carol.session.clone().unwrap();
    assert_eq!(session["recovered"], true, "{session}");
    assert_eq!(session["missed"], 1, "{session}");
    let replayed = carol.next("room:message").await;
    assert_eq!(replayed["text"], "retried");
    assert_eq!(replayed["replayed"], true);
    assert_ne!(before["id"], retried["id"]);
    server.stop().await.unwrap();
}
