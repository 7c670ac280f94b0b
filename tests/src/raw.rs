//! Raw Engine.IO / Socket.IO frames, for the tests that must do what a
//! stock client never does: stop reading, close mid-handshake, send odd
//! auth or floods of events in one HTTP request.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::WAIT;

pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// One HTTP/1.1 request on a fresh connection; returns the status and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("write head");
    tcp.write_all(body).await.expect("write body");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A long-polling Engine.IO handshake; returns the session id.
pub async fn polling_handshake(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET", "/socket.io/?EIO=4&transport=polling", b"").await;
    assert_eq!(status, 200, "{body}");
    let open: Value = serde_json::from_str(body.trim_start_matches('0')).expect("open packet");
    open["sid"].as_str().expect("sid").to_owned()
}

/// A long-polling socket connected to `/chat` as `name` (the CONNECT is
/// posted, not yet answered): returns its sid and its request path.
pub async fn polling_connect(addr: SocketAddr, name: &str) -> (String, String) {
    let sid = polling_handshake(addr).await;
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let connect = format!("40/chat,{}", json!({"username": name}));
    http(addr, "POST", &path, connect.as_bytes()).await;
    (sid, path)
}

/// Socket.IO packets of a polling response body (separated by 0x1e).
pub fn packets(body: &str) -> Vec<String> {
    body.split('\u{1e}')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A `42/chat,` event packet's name and payload.
pub fn event(packet: &str) -> Option<(String, Value)> {
    let rest = packet.strip_prefix("42/chat,")?;
    let arr: Value = serde_json::from_str(rest).ok()?;
    Some((arr[0].as_str()?.to_owned(), arr[1].clone()))
}

/// A `43/chat,N[...]` ack packet's id and body.
pub fn ack(packet: &str) -> Option<(u64, Value)> {
    let rest = packet.strip_prefix("43/chat,")?;
    let split = rest.find('[')?;
    let id = rest[..split].parse().ok()?;
    let arr: Value = serde_json::from_str(&rest[split..]).ok()?;
    Some((id, arr[0].clone()))
}

/// A WebSocket Engine.IO connection, its TCP receive buffer set to
/// `recv_buffer` bytes when given (a reader that can hold little).
pub async fn ws_open(addr: SocketAddr, recv_buffer: Option<u32>) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if let Some(n) = recv_buffer {
        socket.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    let tcp = socket.connect(addr).await.expect("connect");
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("ws handshake");
    let open = ws.next().await.expect("open").expect("open");
    assert!(open.to_text().unwrap_or("").starts_with('0'), "{open:?}");
    ws
}

/// Connects `ws` to `/chat` with `auth`: `Ok(session)` or the refusal's
/// message.
pub async fn ws_connect(ws: &mut Ws, auth: Value) -> Result<Value, String> {
    ws.send(Message::text(format!("40/chat,{auth}")))
        .await
        .expect("send connect");
    loop {
        let text = ws_text(ws).await.ok_or("closed before the answer")?;
        if text.starts_with("40/chat") {
            break;
        }
        if let Some(rest) = text.strip_prefix("44/chat,") {
            let v: Value = serde_json::from_str(rest).unwrap_or(Value::Null);
            return Err(v["message"].as_str().unwrap_or(rest).to_owned());
        }
    }
    loop {
        let text = ws_text(ws).await.ok_or("closed before `session`")?;
        if let Some((name, payload)) = event(&text)
            && name == "session"
        {
            return Ok(payload);
        }
    }
}

/// The next text frame (answering pings), `None` once the connection is
/// closed or after [`WAIT`] of silence.
pub async fn ws_text(ws: &mut Ws) -> Option<String> {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next()).await.ok()??.ok()?;
        match m {
            Message::Text(t) if t.as_str() == "2" => {
                let _ = ws.send(Message::text("3")).await;
            }
            Message::Text(t) => return Some(t.as_str().to_owned()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// Sends a `/chat` event, with an ack id when given.
pub async fn ws_emit(ws: &mut Ws, name: &str, payload: Value, ack_id: Option<u64>) {
    let id = ack_id.map(|i| i.to_string()).unwrap_or_default();
    let frame = format!("42/chat,{id}{}", json!([name, payload]));
    ws.send(Message::text(frame)).await.expect("send event");
}

/// Reads until the ack `id` arrives, collecting the events before it.
pub async fn ws_until_ack(ws: &mut Ws, id: u64, seen: &mut Vec<(String, Value)>) -> Option<Value> {
    loop {
        let text = ws_text(ws).await?;
        if let Some((got, body)) = ack(&text)
            && got == id
        {
            return Some(body);
        }
        if let Some(e) = event(&text) {
            seen.push(e);
        }
    }
}

/// Retries `check` until it holds or [`WAIT`] has passed; returns whether
/// it held. For outcomes that have no event of their own (a user let go
/// after its transport closed).
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
