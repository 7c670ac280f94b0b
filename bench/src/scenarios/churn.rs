//! Scenario 4, churn: `--churn-workers` loops, each connecting a fresh
//! username through the `/chat` middleware, waiting for `session`, then
//! disconnecting (planned: `41/chat,` and a WebSocket close, waiting for the
//! server to close), sustained for `--churn-secs`. Reports connect+disconnect
//! cycles per second and the connect time.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::{CpuMeter, Ctx, Cycles, push_latency};
use crate::client::UserState;
use crate::report::Figures;

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
                let mut cycles = Cycles::default();
                let mut i = 0u64;
                while Instant::now() < deadline && i < MAX_CYCLES_PER_WORKER {
                    i += 1;
                    let mut st = UserState::new(format!("{tag}c{w}x{i}"));
                    cycles.run_one(addr, &mut st, &delivered).await;
                }
                cycles
            })
        })
        .collect();
    let mut all = Cycles::default();
    for w in workers {
        all.merge(w.await.expect("churn worker panicked"));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    if let Some(e) = &all.first_err {
        eprintln!("churn: {} cycles failed, first: {e}", all.failed);
    }
    figs.push(
        "connect+disconnect cycles/s",
        "cycles/s",
        all.ok as f64 / elapsed,
    );
    figs.push("cycles completed", "n", all.ok as f64);
    figs.push("cycles failed", "n", all.failed as f64);
    push_latency(&mut figs, "connect ", &all.connect);
    cpu.finish(&mut figs, "");
    figs
}
