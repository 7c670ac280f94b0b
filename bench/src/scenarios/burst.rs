//! Scenario 8, burst: `--burst-handshakes` Engine.IO polling handshakes
//! that never continue (a reconnect storm that gives up, or an attacker),
//! then nothing. The server's RSS before, at the peak, once the heartbeat
//! has reaped every session (`--burst-reap-secs` after the last handshake),
//! and `--burst-settle-secs` later: what the server keeps of a burst it
//! has already forgotten.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::Ctx;
use crate::report::Figures;
use crate::stats;

/// How long one handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    let cfg = ctx.cfg;
    if crate::client::is_tls(ctx.addr) {
        eprintln!("burst: plain HTTP handshakes only; a TLS target is skipped");
        return figs;
    }
    let rss_mib = || ctx.pid.and_then(stats::rss_kib).map(|k| k as f64 / 1024.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_mib();
    if let Some(b) = before {
        figs.push("RSS before", "MiB", b);
    }

    let t0 = std::time::Instant::now();
    let answered = handshakes(ctx.addr, cfg.burst_handshakes, cfg.connect_concurrency).await;
    figs.push("handshakes answered", "n", answered as f64);
    figs.push(
        "handshakes failed",
        "n",
        cfg.burst_handshakes.saturating_sub(answered) as f64,
    );
    figs.push("time to make them", "s", t0.elapsed().as_secs_f64());
    if let Some(peak) = rss_mib() {
        figs.push("RSS with the sessions open", "MiB", peak);
    }

    tokio::time::sleep(Duration::from_secs_f64(cfg.burst_reap_secs)).await;
    if let Some(reaped) = rss_mib() {
        figs.push("RSS once reaped", "MiB", reaped);
    }
    tokio::time::sleep(Duration::from_secs_f64(cfg.burst_settle_secs)).await;
    if let (Some(b), Some(after)) = (before, rss_mib()) {
        figs.push(
            format!("RSS {}s after the reap", cfg.burst_settle_secs),
            "MiB",
            after,
        );
        figs.push("RSS kept after the burst", "MiB", after - b);
    }
    figs
}

/// Opens `n` polling sessions, `concurrency` at a time, each with one
/// `GET` whose connection then closes; returns how many got their `0{…}`
/// open packet.
async fn handshakes(addr: SocketAddr, n: usize, concurrency: usize) -> usize {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(permit) = Arc::clone(&gate).acquire_owned().await else {
            break;
        };
        tasks.push(tokio::spawn(async move {
            let ok = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(addr))
                .await
                .unwrap_or(false);
            drop(permit);
            ok
        }));
    }
    let mut answered = 0;
    for t in tasks {
        if t.await.unwrap_or(false) {
            answered += 1;
        }
    }
    answered
}

async fn handshake(addr: SocketAddr) -> bool {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!(
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut body = Vec::with_capacity(512);
    if tcp.read_to_end(&mut body).await.is_err() {
        return false;
    }
    let text = String::from_utf8_lossy(&body);
    text.starts_with("HTTP/1.1 200") && text.contains("0{\"sid\"")
}
