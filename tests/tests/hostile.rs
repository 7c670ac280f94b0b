//! Hostile input: malformed packets, oversize packets, binary attachments,
//! floods. A bad packet costs its sender its own connection at most; the
//! server stays up for everyone else.

use chat_e2e::{TestClient, TestServer, ok};
use chat_server::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw Engine.IO WebSocket connected to `/chat` as `name`.
async fn raw(server: &TestServer, name: &str) -> Ws {
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    let open = ws.next().await.expect("open").expect("open");
    assert!(open.to_text().unwrap_or("").starts_with('0'), "{open:?}");
    ws.send(Message::text(format!(
        "40/chat,{{\"username\":\"{name}\"}}"
    )))
    .await
    .unwrap();
    loop {
        let m = ws.next().await.expect("connect answer").expect("ws");
        if m.to_text().unwrap_or("").starts_with("40/chat") {
            break;
        }
    }
    ws
}

/// Reads until the connection closes; true if it did (within the wait).
async fn closes(ws: &mut Ws) -> bool {
    let res = tokio::time::timeout(chat_e2e::WAIT, async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    res.is_ok()
}

async fn still_serving(server: &TestServer, watcher: &TestClient) {
    let fresh = TestClient::chat(&server.url(), &format!("fresh{}", rand_suffix())).await;
    ok(fresh
        .ack("global:message", json!({"text": "still here"}))
        .await);
    ok(watcher.ack("presence:get", json!({})).await);
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_cost_only_the_senders_connection() {
    let server = TestServer::start(TestServer::config()).await;
    let watcher = TestClient::chat(&server.url(), "watcher").await;
    for (i, junk) in [
        "42/chat,[\"room:join\",{\"room\":",
        "42/chat,{not json}",
        "4X",
        "9",
        "42/chat,[\"\\ud800\"]",
        "42/chat,[\"é\u{0}\",{\"text\":\"ä\"}]",
        "451-/chat,[\"global:message\",{\"_placeholder\":true,\"num\":0}]",
    ]
    .iter()
    .enumerate()
    {
        let mut ws = raw(&server, &format!("junk{i}")).await;
        ws.send(Message::text(*junk)).await.unwrap();
        // Either the packet is refused with an error event, or the
        // connection is closed; never anything worse.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(300), closes(&mut ws)).await;
        still_serving(&server, &watcher).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_packets_close_the_connection() {
    let server = TestServer::start(TestServer::config()).await;
    let watcher = TestClient::chat(&server.url(), "watcher").await;
    let mut ws = raw(&server, "big").await;
    let huge = "x".repeat(200 * 1024);
    let _ = ws
        .send(Message::text(format!(
            "42/chat,[\"global:message\",{{\"text\":\"{huge}\"}}]"
        )))
        .await;
    assert!(
        closes(&mut ws).await,
        "a 200 KiB packet must close the connection"
    );
    still_serving(&server, &watcher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_packets_close_the_connection() {
    let server = TestServer::start(TestServer::config()).await;
    let watcher = TestClient::chat(&server.url(), "watcher").await;
    let mut ws = raw(&server, "bin").await;
    ws.send(Message::text(
        "451-/chat,[\"global:message\",{\"_placeholder\":true,\"num\":0}]",
    ))
    .await
    .unwrap();
    let _ = ws.send(Message::binary(vec![0u8; 1024])).await;
    assert!(closes(&mut ws).await, "binary attachments are refused");
    still_serving(&server, &watcher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_rate_limited_and_others_keep_chatting() {
    let server = TestServer::start(Config {
        rate: 10.0,
        burst: 20,
        ..TestServer::config()
    })
    .await;
    let mut watcher = TestClient::chat(&server.url(), "watcher").await;
    let mut ws = raw(&server, "flooder").await;
    for i in 0..2000 {
        let _ = ws
            .send(Message::text(format!(
                "42/chat,[\"global:message\",{{\"text\":\"spam {i}\"}}]"
            )))
            .await;
    }
    let _ = ws.flush().await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    ok(bob.ack("global:message", json!({"text": "normal"})).await);
    watcher
        .next_where("global:message", |m| m["text"] == "normal")
        .await;
    let spam = watcher
        .seen()
        .iter()
        .filter(|(n, m)| n == "global:message" && m["from"] == "flooder")
        .count();
    assert!(
        spam <= 25,
        "the flooder got {spam} messages through a 20-burst limit"
    );
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_http_requests_are_answered_not_crashed_on() {
    let server = TestServer::start(TestServer::config()).await;
    let watcher = TestClient::chat(&server.url(), "watcher").await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for req in [
        "GET /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        "POST /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n42[]x".to_string(),
        "GET /socket.io/?EIO=99 HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        "\u{0}\u{1}garbage\r\n\r\n".to_string(),
    ] {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let _ = s.write_all(req.as_bytes()).await;
        let mut buf = [0u8; 512];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await;
    }
    still_serving(&server, &watcher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_dropped() {
    let server = TestServer::start(Config {
        ping_interval: std::time::Duration::from_millis(300),
        ping_timeout: std::time::Duration::from_millis(300),
        ..TestServer::config()
    })
    .await;
    let mut watcher = TestClient::chat(&server.url(), "watcher").await;
    // A raw client that never answers the server's pings (a frozen process).
    let ws = raw(&server, "frozen").await;
    watcher
        .next_where("presence", |p| {
            p["event"] == "connect" && p["user"] == "frozen"
        })
        .await;
    let p = watcher
        .next_where("presence", |p| {
            p["event"] == "disconnect" && p["user"] == "frozen"
        })
        .await;
    assert_eq!(p["reason"], "ping timeout");
    drop(ws);
}
