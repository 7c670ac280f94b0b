//! Scenario: posting over the HTTP API (contract v3) against posting over
//! Socket.IO, into one room of `--api-listeners` Socket.IO listeners.
//! Each side posts in a closed loop for `--api-secs` (the next post when
//! the last one is answered): over HTTP, `POST
//! /api/v1/rooms/{room}/messages` with a Bearer token on one keep-alive
//! connection; over Socket.IO, `room:message` with an ack on one socket.
//! Per side: posts/s, post→answer p50/p99, post→last delivery p50/p99
//! (per message, the slowest of the listeners), lost deliveries. A target
//! without the API (the Node peer) is skipped with a note; so is TLS (the
//! HTTP client here is plain HTTP/1.1, written by hand like the frames).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Ctx, Failed, Spec, bring_up_reported, leave_all, push_latency};
use crate::client::{self, UserState, now_us};
use crate::proto;
use crate::report::Figures;
use crate::stats;

const PASSWORD: &str = "bench password for the api";

/// One keep-alive HTTP/1.1 connection.
struct Http {
    conn: BufReader<TcpStream>,
    host: String,
}

impl Http {
    async fn connect(addr: SocketAddr) -> Result<Http, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        Ok(Http {
            conn: BufReader::new(tcp),
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads its answer: (status, body).
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, String), String> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        head.push_str(&body);
        let io = |e: std::io::Error| e.to_string();
        self.conn
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .map_err(io)?;
        let mut line = String::new();
        self.conn.read_line(&mut line).await.map_err(io)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status line: {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.conn.read_line(&mut line).await.map_err(io)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0u8; length];
        self.conn.read_exact(&mut buf).await.map_err(io)?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

/// Sets up the poster's account, token and membership; `None` (and why)
/// when the target has no HTTP API.
async fn api_poster(addr: SocketAddr, name: &str, room: &str) -> Result<(Http, String), String> {
    let mut http = Http::connect(addr).await?;
    let creds = json!({"username": name, "password": PASSWORD});
    let (status, body) = http
        .call("POST", "/api/v1/accounts", None, Some(&creds))
        .await?;
    if status != 201 {
        return Err(format!(
            "no HTTP API here (POST /api/v1/accounts: {status} {body})"
        ));
    }
    let (status, body) = http
        .call("POST", "/api/v1/tokens", None, Some(&creds))
        .await?;
    let token = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .filter(|_| status == 201)
        .ok_or_else(|| format!("POST /api/v1/tokens: {status} {body}"))?;
    let path = format!("/api/v1/rooms/{}/membership", room.trim_start_matches('#'));
    let (status, body) = http.call("PUT", &path, Some(&token), None).await?;
    if status != 204 {
        return Err(format!("PUT {path}: {status} {body}"));
    }
    Ok((http, token))
}

/// What one side measured.
#[derive(Default)]
struct Side {
    posts: u64,
    secs: f64,
    answer: Option<hdrhistogram::Histogram<u64>>,
    /// Message number → its send time, µs.
    sent: HashMap<u64, u64>,
}

/// Collects the listeners' receipts of `side`'s messages and pushes the
/// figures under `prefix`.
async fn report(
    figs: &mut Figures,
    prefix: &str,
    side: &Side,
    handles: &[client::UserHandle],
    delivered: &AtomicU64,
    before: u64,
) {
    // Wait (a bounded time) for every delivery.
    let expected = side.posts * handles.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.load(std::sync::atomic::Ordering::Relaxed) - before < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut got = 0u64;
    for h in handles {
        let Some(recv) = h.take(Duration::from_secs(5)).await else {
            continue;
        };
        for (no, at) in recv.at_us {
            got += 1;
            let e = last.entry(no).or_default();
            *e = (*e).max(at);
        }
    }
    let mut to_last = stats::histogram();
    for (no, at) in &last {
        if let Some(sent) = side.sent.get(no) {
            stats::record(&mut to_last, at.saturating_sub(*sent));
        }
    }
    figs.push(
        format!("{prefix}: posts/s"),
        "msg/s",
        side.posts as f64 / side.secs.max(1e-9),
    );
    if let Some(h) = &side.answer {
        push_latency(figs, &format!("{prefix}: post→answer "), h);
    }
    push_latency(figs, &format!("{prefix}: post→last delivery "), &to_last);
    figs.push(
        format!("{prefix}: deliveries lost"),
        "n",
        expected.saturating_sub(got) as f64,
    );
}

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    if client::is_tls(ctx.addr) {
        eprintln!("api: TLS target skipped (the bench's HTTP client is plain)");
        return figs;
    }
    let room: Arc<str> = Arc::from(format!("#{}api", ctx.tag));
    let (mut http, token) = match api_poster(ctx.addr, &format!("{}apibot", ctx.tag), &room).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("api: skipped: {e}");
            return figs;
        }
    };
    let listeners = ctx.cfg.api_listeners.max(1);
    let specs = (0..listeners)
        .map(|i| {
            let mut state = UserState::new(format!("{}al{i}", ctx.tag));
            state.keep_times = true;
            Spec {
                state,
                room: Some(room.clone()),
                resume: false,
            }
        })
        .collect();
    let delivered = Arc::new(AtomicU64::new(0));
    let failed = Failed {
        who: "api",
        what: "listeners failed to come up",
        metric: Some("failed connects".into()),
    };
    let ups = bring_up_reported(ctx, specs, 2, &delivered, &mut figs, failed).await;
    let handles: Vec<_> = ups.into_iter().filter_map(|u| u.handle).collect();
    figs.push("listeners", "n", handles.len() as f64);
    let secs = Duration::from_secs_f64(ctx.cfg.api_secs.max(0.1));
    let path = format!("/api/v1/rooms/{}/messages", room.trim_start_matches('#'));

    // Over HTTP, one keep-alive connection, closed loop.
    let mut side = Side {
        answer: Some(stats::histogram()),
        ..Side::default()
    };
    let before = delivered.load(std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    let mut no = 1u64;
    while t0.elapsed() < secs {
        let sent = now_us();
        let body = json!({"text": proto::bench_text(no, sent)});
        match http.call("POST", &path, Some(&token), Some(&body)).await {
            Ok((201, _)) => {
                if let Some(h) = side.answer.as_mut() {
                    stats::record(h, now_us().saturating_sub(sent));
                }
                side.sent.insert(no, sent);
                side.posts += 1;
            }
            Ok((status, body)) => {
                eprintln!("api: POST answered {status}: {body}");
                break;
            }
            Err(e) => {
                eprintln!("api: POST failed: {e}");
                break;
            }
        }
        no += 1;
    }
    side.secs = t0.elapsed().as_secs_f64();
    report(&mut figs, "http", &side, &handles, &delivered, before).await;

    // Over Socket.IO, one socket in the room, closed loop on acks.
    let mut st = UserState::new(format!("{}asio", ctx.tag));
    let timeout = Duration::from_secs(10);
    match client::connect(ctx.addr, &mut st, false, &delivered, timeout).await {
        Ok((mut ws, _)) => {
            let join = json!({"room": &*room});
            let joined =
                client::request(&mut ws, &mut st, "room:join", &join, &delivered, timeout).await;
            let mut side = Side {
                answer: Some(stats::histogram()),
                ..Side::default()
            };
            if joined.is_ok() {
                let before = delivered.load(std::sync::atomic::Ordering::Relaxed);
                let t0 = Instant::now();
                while t0.elapsed() < secs {
                    let sent = now_us();
                    let m = json!({"room": &*room, "text": proto::bench_text(no, sent)});
                    match client::request(&mut ws, &mut st, "room:message", &m, &delivered, timeout)
                        .await
                    {
                        Ok(args) if args.contains("\"ok\":true") => {
                            if let Some(h) = side.answer.as_mut() {
                                stats::record(h, now_us().saturating_sub(sent));
                            }
                            side.sent.insert(no, sent);
                            side.posts += 1;
                        }
                        other => {
                            eprintln!("api: room:message over Socket.IO: {other:?}");
                            break;
                        }
                    }
                    no += 1;
                }
                side.secs = t0.elapsed().as_secs_f64();
                // The poster's own copies are not the listeners'.
                let own = side.posts;
                report(
                    &mut figs,
                    "socket.io",
                    &side,
                    &handles,
                    &delivered,
                    before + own,
                )
                .await;
            }
            let _ = client::leave(ws).await;
        }
        Err(e) => eprintln!("api: the Socket.IO poster could not connect: {e}"),
    }
    leave_all(handles).await;
    figs
}
