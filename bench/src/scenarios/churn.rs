//! Scenario 4, churn: `--churn-workers` loops, each connecting a fresh
//! username through the `/chat` middleware, waiting for `session`, then
//! disconnecting (planned: `41/chat,` and a WebSocket close, waiting for the
//! server to close), sustained for `--churn-secs`. Reports connect+disconnect
//! cycles per second and the connect time.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::{CONNECT_TIMEOUT, CpuMeter, Ctx, push_latency};
use crate::client::{self, UserState};
use crate::report::Figures;
use crate::stats;

/// Upper bound of cycles per worker, whatever the duration.
const MAX_CYCLES_PER_WORKER: u64 = 1_000_000;

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    let secs = ctx.cfg.churn_secs;
    let delivered = Arc::new(AtomicU64::new(0));
    let cpu = CpuMeter::start(ctx.pid);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    let workers: Vec<_> = (0..ctx.cfg.churn_workers.max(1))
        .map(|w| {
            let addr = ctx.addr;
            let tag = ctx.tag.clone();
            let delivered = delivered.clone();
            tokio::spawn(async move {
                let mut h = stats::histogram();
                let (mut ok, mut failed, mut first_err) = (0u64, 0u64, None);
                let mut i = 0u64;
                while Instant::now() < deadline && i < MAX_CYCLES_PER_WORKER {
                    i += 1;
                    let mut st = UserState::new(format!("{tag}c{w}x{i}"));
                    match client::connect(addr, &mut st, false, &delivered, CONNECT_TIMEOUT).await {
                        Ok((ws, took)) => {
                            stats::record(&mut h, took.as_micros() as u64);
                            match client::leave(ws).await {
                                Ok(()) => ok += 1,
                                Err(e) => {
                                    failed += 1;
                                    first_err.get_or_insert(e);
                                }
                            }
                        }
                        Err(e) => {
                            failed += 1;
                            first_err.get_or_insert(e.0);
                        }
                    }
                }
                (h, ok, failed, first_err)
            })
        })
        .collect();
    let mut h = stats::histogram();
    let (mut ok, mut failed, mut first_err) = (0u64, 0u64, None);
    for w in workers {
        let (wh, o, f, e) = w.await.expect("churn worker panicked");
        h.add(&wh).expect("same histogram bounds");
        ok += o;
        failed += f;
        if first_err.is_none() {
            first_err = e;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if let Some(e) = first_err {
        eprintln!("churn: {failed} cycles failed, first: {e}");
    }
    figs.push(
        "connect+disconnect cycles/s",
        "cycles/s",
        ok as f64 / elapsed,
    );
    figs.push("cycles completed", "n", ok as f64);
    figs.push("cycles failed", "n", failed as f64);
    push_latency(&mut figs, "connect ", &h);
    cpu.finish(&mut figs, "");
    figs
}
