//! What a hostile (or merely unlucky) client can hold or break: ghost users
//! from transports that close mid-handshake, offsets the server never
//! issued, the admin feed as a key to users' sessions, floods of requests in
//! one HTTP request, half-sent requests and handshakes that never continue.

use std::time::Duration;

use chat_e2e::raw::{
    self, eventually, http, packets, polling_connect, polling_handshake, ws_connect, ws_emit,
    ws_open, ws_text,
};
use chat_e2e::{TestClient, TestServer, ok};
use chat_server::Config;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

fn limited(max: usize) -> Config {
    Config {
        max_connections: max,
        recovery_window: Duration::from_millis(500),
        ..TestServer::config()
    }
}

/// Every slot and every name held by a transport that closed mid-handshake
/// is free again: `max` new users get in, and so do the victims' names.
async fn nothing_held(server: &TestServer, max: usize, victims: &[String]) {
    let url = server.url();
    let first = TestClient::connect(&url, json!({"username": "probe0"})).await;
    let first = first.expect("a slot must be free");
    let freed = eventually(|| async {
        let p = first.ack("presence:get", json!({})).await;
        p["online"] == 1
    })
    .await;
    assert!(freed, "abandoned handshakes still count as online");
    let mut clients = vec![first];
    for i in 1..max {
        let c = TestClient::connect(&url, json!({"username": format!("probe{i}")})).await;
        clients.push(c.unwrap_or_else(|e| panic!("slot {i} is held by a ghost: {e}")));
    }
    for c in clients {
        c.disconnect().await;
    }
    // A victim whose connect went through before its transport closed
    // keeps its name for its (here short) recovery window, as the contract
    // says; a ghost would keep it for ever.
    for name in victims.iter().take(max) {
        let free = eventually(|| async {
            match TestClient::connect(&url, json!({"username": name})).await {
                Ok(c) => {
                    c.disconnect().await;
                    true
                }
                Err(_) => false,
            }
        })
        .await;
        assert!(free, "{name} is held by a ghost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_connect_closed_at_once_leaves_no_ghost() {
    let max = 5;
    let server = TestServer::start(limited(max)).await;
    let mut victims = Vec::new();
    for i in 0..20 {
        let sid = polling_handshake(server.addr).await;
        let name = format!("victim{i}");
        // The namespace CONNECT and the Engine.IO close in one POST.
        let body = format!("40/chat,{{\"username\":\"{name}\"}}\u{1e}1");
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        http(server.addr, "POST", &path, body.as_bytes()).await;
        victims.push(name);
    }
    nothing_held(&server, max, &victims).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_connect_closed_at_once_leaves_no_ghost() {
    use futures_util::SinkExt;
    let max = 5;
    let server = TestServer::start(limited(max)).await;
    let mut victims = Vec::new();
    for i in 0..20 {
        let mut ws = ws_open(server.addr, None).await;
        let name = format!("wsvictim{i}");
        let frame = format!("40/chat,{{\"username\":\"{name}\"}}");
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text(frame))
            .await;
        drop(ws);
        victims.push(name);
    }
    nothing_held(&server, max, &victims).await;
}

/// Alice's raw socket drops (unplanned); `sent` global messages follow.
async fn alice_misses(server: &TestServer, bob: &TestClient, sent: usize) -> String {
    let mut ws = ws_open(server.addr, None).await;
    let session = ws_connect(&mut ws, json!({"username": "alice"}))
        .await
        .expect("alice connects");
    drop(ws);
    let gone = eventually(|| async {
        let p = bob.ack("presence:get", json!({})).await;
        p["online"] == 1
    })
    .await;
    assert!(gone, "alice's drop was never noticed");
    for i in 0..sent {
        ok(bob
            .ack("global:message", json!({"text": format!("g{i}")}))
            .await);
    }
    session["session"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_the_server_never_issued_replay_the_whole_session() {
    let server = TestServer::start(TestServer::config()).await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    let mut token = alice_misses(&server, &bob, 10).await;
    let offsets = ["18446744073709551615", "99999999", "-1", "abc", ""];
    for (total, offset) in (10..).zip(offsets) {
        let mut ws = ws_open(server.addr, None).await;
        let auth = json!({"username": "alice", "session": token, "offset": offset});
        let session = ws_connect(&mut ws, auth).await.expect("resume");
        assert_eq!(session["recovered"], true, "offset {offset:?}: {session}");
        assert_eq!(session["missed"], total, "offset {offset:?}: {session}");
        assert_eq!(session["truncated"], false, "offset {offset:?}: {session}");
        token = session["session"].as_str().expect("token").to_owned();
        drop(ws);
        let gone =
            eventually(|| async { bob.ack("presence:get", json!({})).await["online"] == 1 }).await;
        assert!(gone);
        ok(bob.ack("global:message", json!({"text": "one more"})).await);
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_or_session_of_the_wrong_type_is_refused_as_such() {
    let server = TestServer::start(TestServer::config()).await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    let token = alice_misses(&server, &bob, 1).await;
    for auth in [
        json!({"username": "alice", "session": token, "offset": 5}),
        json!({"username": "alice", "session": 42}),
    ] {
        let mut ws = ws_open(server.addr, None).await;
        let refusal = ws_connect(&mut ws, auth.clone()).await.unwrap_err();
        assert!(
            refusal.starts_with("invalid_session: "),
            "{auth}: {refusal}"
        );
    }
    let mut ws = ws_open(server.addr, None).await;
    let refusal = ws_connect(&mut ws, json!({"username": 7}))
        .await
        .unwrap_err();
    assert!(refusal.starts_with("invalid_username: "), "{refusal}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_snapshot_gives_no_key_to_a_users_session() {
    let server = TestServer::start(TestServer::config()).await;
    let (sid, path) = polling_connect(server.addr, "pollster").await;
    let (_, body) = http(server.addr, "GET", &path, b"").await;
    assert!(body.contains("40/chat"), "{body}");
    let mut ws = ws_open(server.addr, None).await;
    ws_connect(&mut ws, json!({"username": "wsuser"}))
        .await
        .expect("connect");

    let mut admin = TestClient::admin(&server.url(), "admin-secret")
        .await
        .unwrap();
    let snap = admin.next("admin:snapshot").await;
    assert_eq!(snap["online"], 2, "{snap}");
    assert!(
        !snap.to_string().contains(&sid),
        "the snapshot holds a sid: {snap}"
    );
    let transport = |name: &str| {
        snap["users"]
            .as_array()
            .and_then(|u| u.iter().find(|u| u["username"] == name))
            .map(|u| u["transport"].clone())
    };
    assert_eq!(transport("pollster"), Some(json!("polling")), "{snap}");
    assert_eq!(transport("wsuser"), Some(json!("websocket")), "{snap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_of_a_thousand_requests_gets_a_thousand_answers() {
    let server = TestServer::start(TestServer::config()).await;
    let (_, path) = polling_connect(server.addr, "flooder").await;
    let n = 1000;
    let body: Vec<String> = (0..n)
        .map(|i| format!("42/chat,{i}[\"presence:get\",{{}}]"))
        .collect();
    let (status, _) = http(server.addr, "POST", &path, body.join("\u{1e}").as_bytes()).await;
    if status != 200 {
        // On a busy machine the answers can fill the socket's queue while
        // the POST is still being handled: the transport ends, the POST's
        // connection with it, and the client finds out at once.
        let (again, _) = http(server.addr, "GET", &path, b"").await;
        assert_eq!(again, 400, "a dropped answer left the socket open");
        return;
    }
    let mut answered = std::collections::BTreeSet::new();
    let (mut served, mut limited) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while answered.len() < n && tokio::time::Instant::now() < deadline {
        let (status, body) = http(server.addr, "GET", &path, b"").await;
        if status != 200 {
            // An answer that could not be queued ends the transport: the
            // client finds out (and resumes) rather than waiting for ever.
            // How many answers it read before depends on how soon its
            // first GET came (on a busy machine the queue can fill first).
            let (again, _) = http(server.addr, "GET", &path, b"").await;
            assert_eq!(again, 400, "a dropped answer left the socket open");
            return;
        }
        for p in packets(&body) {
            if let Some((id, ack)) = raw::ack(&p) {
                assert!(answered.insert(id), "ack {id} twice");
                if ack["ok"] == true {
                    served += 1;
                } else {
                    assert_eq!(ack["error"]["code"], "rate_limited", "{ack}");
                    limited += 1;
                }
            }
        }
    }
    assert_eq!(answered.len(), n, "{served} served, {limited} limited");
    assert!(
        limited > 0,
        "the default --event-rate must have refused some"
    );
}

#[tokio::test(start_paused = true)]
async fn half_sent_requests_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_secs(5);
    let server = TestServer::start(Config {
        header_timeout: timeout,
        ..TestServer::config()
    })
    .await;
    let start = tokio::time::Instant::now();
    let mut held = Vec::new();
    for _ in 0..50 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(tcp);
    }
    for mut tcp in held {
        let mut buf = [0u8; 64];
        let n = tcp.read(&mut buf).await.unwrap_or(0);
        assert!(
            n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"),
            "a half-sent request was answered"
        );
    }
    let waited = start.elapsed();
    assert!(
        waited >= timeout && waited < timeout * 2,
        "closed after {waited:?}"
    );
    let (status, _) = http(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        b"",
    )
    .await;
    assert_eq!(status, 200, "a whole request is still served");
}

#[tokio::test(start_paused = true)]
async fn a_handshake_that_never_connects_is_closed_after_the_connect_timeout() {
    let timeout = Duration::from_secs(5);
    let server = TestServer::start(Config {
        connect_timeout: timeout,
        ..TestServer::config()
    })
    .await;
    let sid = polling_handshake(server.addr).await;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    tokio::time::sleep(timeout + Duration::from_secs(1)).await;
    let (status, body) = http(server.addr, "GET", &path, b"").await;
    assert_eq!(status, 400, "the session is still open: {body}");
}

/// A member who joined `#r` resumes with 5 000 missed messages and leaves
/// `#r` as soon as `session` arrives: the leave holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_sent_during_a_replay_is_not_undone() {
    // A queue that holds the whole burst: this test is about the leave,
    // not about readers that fall behind.
    let server = TestServer::start(Config {
        rate: 0.0,
        event_rate: 0.0,
        socket_buffer: 16 * 1024,
        ..TestServer::config()
    })
    .await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    ok(bob.ack("room:join", json!({"room": "#r"})).await);
    let mut ws = ws_open(server.addr, None).await;
    let session = ws_connect(&mut ws, json!({"username": "alice"}))
        .await
        .unwrap();
    ws_emit(&mut ws, "room:join", json!({"room": "#r"}), Some(1)).await;
    let joined = raw::ws_until_ack(&mut ws, 1, &mut Vec::new()).await;
    assert_eq!(joined.unwrap()["ok"], true);
    drop(ws);
    assert!(eventually(|| async { bob.ack("presence:get", json!({})).await["online"] == 1 }).await);
    let mut sender = ws_open(server.addr, None).await;
    ws_connect(&mut sender, json!({"username": "sender"}))
        .await
        .unwrap();
    ws_emit(&mut sender, "room:join", json!({"room": "#r"}), Some(1)).await;
    raw::ws_until_ack(&mut sender, 1, &mut Vec::new()).await;
    // The sender gets its own messages back: it reads them in a task of
    // its own while it sends, as a client would.
    let (mut sink, mut stream) = futures_util::StreamExt::split(sender);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut done = Some(done_tx);
        while let Some(Ok(m)) = futures_util::StreamExt::next(&mut stream).await {
            if m.to_text().unwrap_or("").starts_with("43/chat,2[") {
                done.take().map(|d| d.send(()));
            }
        }
    });
    let mut send = async |frame: String| {
        futures_util::SinkExt::send(&mut sink, Message::text(frame))
            .await
            .expect("send");
    };
    for i in 0..5000 {
        let payload = json!({"room": "#r", "text": format!("m{i}")});
        send(format!("42/chat,{}", json!(["room:message", payload]))).await;
    }
    send(format!("42/chat,2{}", json!(["presence:get", {}]))).await;
    tokio::time::timeout(Duration::from_secs(60), done_rx)
        .await
        .expect("all 5000 sent")
        .expect("the sender stays connected");

    let mut ws = ws_open(server.addr, None).await;
    let token = session["session"].clone();
    let resumed = ws_connect(&mut ws, json!({"username": "alice", "session": token}))
        .await
        .unwrap();
    assert_eq!(resumed["recovered"], true);
    ws_emit(&mut ws, "room:leave", json!({"room": "#r"}), Some(7)).await;
    let mut before = Vec::new();
    let left = raw::ws_until_ack(&mut ws, 7, &mut before)
        .await
        .expect("the leave is answered");
    assert_eq!(left["ok"], true, "{left}");
    let replayed = before
        .iter()
        .filter(|(n, m)| n == "room:message" && m["replayed"] == true)
        .count();
    assert_eq!(replayed, 5000, "the replay comes first, whole");

    for i in 0..20 {
        let payload = json!({"room": "#r", "text": format!("after{i}")});
        send(format!("42/chat,{}", json!(["room:message", payload]))).await;
    }
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "marker"}))
        .await);
    loop {
        let text = ws_text(&mut ws).await.expect("the marker DM arrives");
        if let Some((name, m)) = raw::event(&text) {
            assert_ne!(name, "room:message", "a message of a room alice left: {m}");
            if name == "dm:message" {
                break;
            }
        }
    }
    reader.abort();
    let rooms = bob.ack("room:list", json!({})).await;
    let members = rooms["rooms"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["room"] == "#r"))
        .map(|r| r["members"].clone());
    assert_eq!(members, Some(json!(2)), "{rooms}");
}

/// Every id in `ids` once, in increasing order.
fn strictly_increasing(ids: &[u64]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

/// Reads `n` broadcast messages as a client would: when its connection ends,
/// it resumes with its session and the id of the last message it got.
/// Returns the ids and how many times it had to resume.
async fn read_all(
    addr: std::net::SocketAddr,
    mut ws: raw::Ws,
    session: serde_json::Value,
    n: usize,
) -> (Vec<u64>, usize) {
    let mut ids: Vec<u64> = Vec::new();
    let mut resumes = 0;
    while ids.len() < n {
        match ws_text(&mut ws).await {
            Some(t) => {
                if let Some((name, m)) = raw::event(&t)
                    && name == "broadcast:message"
                {
                    ids.push(m["id"].as_str().and_then(|i| i.parse().ok()).unwrap_or(0));
                }
            }
            None => {
                resumes += 1;
                assert!(resumes < 20, "resumed {resumes} times");
                ws = ws_open(addr, None).await;
                let offset = ids.last().map(|i| i.to_string());
                let auth = json!({"username": session["username"], "session": session["session"], "offset": offset});
                let resumed = ws_connect(&mut ws, auth).await.expect("resume");
                assert_eq!(resumed["recovered"], true, "{resumed}");
                assert_eq!(resumed["truncated"], false, "{resumed}");
            }
        }
    }
    (ids, resumes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_resumes_and_misses_nothing() {
    let server = TestServer::start(Config {
        rate: 0.0,
        event_rate: 0.0,
        socket_buffer: 64,
        ..TestServer::config()
    })
    .await;
    let n = 4000;
    let text = "x".repeat(1500);
    let mut members = Vec::new();
    for (name, buffer) in [("fast", None), ("slow", Some(4096))] {
        let mut ws = ws_open(server.addr, buffer).await;
        let session = ws_connect(&mut ws, json!({"username": name}))
            .await
            .unwrap();
        ws_emit(&mut ws, "room:join", json!({"room": "#flood"}), Some(1)).await;
        raw::ws_until_ack(&mut ws, 1, &mut Vec::new()).await;
        members.push((ws, session));
    }
    let (slow_ws, slow_session) = members.pop().unwrap();
    let (fast_ws, fast_session) = members.pop().unwrap();
    let addr = server.addr;
    let fast = tokio::spawn(read_all(addr, fast_ws, fast_session, n));

    // A broadcast reaches everyone but its sender, which only reads its
    // final ack, in a task of its own.
    let mut sender = ws_open(server.addr, None).await;
    ws_connect(&mut sender, json!({"username": "sender"}))
        .await
        .unwrap();
    let (mut sink, mut stream) = futures_util::StreamExt::split(sender);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut done = Some(done_tx);
        while let Some(Ok(m)) = futures_util::StreamExt::next(&mut stream).await {
            if m.to_text().unwrap_or("").starts_with("43/chat,2[") {
                done.take().map(|d| d.send(()));
            }
        }
    });
    for _ in 0..n {
        let frame = format!("42/chat,{}", json!(["broadcast:message", {"text": text}]));
        futures_util::SinkExt::send(&mut sink, Message::text(frame))
            .await
            .expect("send");
    }
    let probe = format!("42/chat,2{}", json!(["presence:get", {}]));
    futures_util::SinkExt::send(&mut sink, Message::text(probe))
        .await
        .expect("send");
    tokio::time::timeout(Duration::from_secs(60), done_rx)
        .await
        .expect("every message was taken")
        .expect("sender open");

    // Only now does the slow member start reading.
    let (slow_ids, slow_resumes) = read_all(addr, slow_ws, slow_session, n).await;
    let (fast_ids, _) = tokio::time::timeout(Duration::from_secs(60), fast)
        .await
        .expect("the fast reader gets everything")
        .unwrap();
    assert_eq!(fast_ids.len(), n);
    assert!(strictly_increasing(&fast_ids));
    assert!(
        slow_resumes > 0,
        "with a 64-packet queue and {n} large messages, the slow reader must have fallen behind"
    );
    assert_eq!(
        slow_ids, fast_ids,
        "the slow reader ends with every message, once, in order"
    );
}
