//! Scenario 1, idle: N connected users that do nothing. The server's RSS
//! per connection (VmRSS growth over the empty server, divided by N) and the
//! connect time (TCP connect to the `session` event) p50/p99, at each level
//! of `--idle-users` in turn (the users of a level stay for the next).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::{
    Ctx, Failed, Spec, bring_up_reported, connect_histogram, failures, leave_all, push_latency,
};
use crate::client::UserState;
use crate::report::Figures;
use crate::stats;

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    let delivered = Arc::new(AtomicU64::new(0));
    let settle = Duration::from_secs_f64(ctx.cfg.idle_settle_secs);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = ctx.pid.and_then(stats::rss_kib);
    if let Some(b) = base {
        figs.push("empty server RSS", "MiB", b as f64 / 1024.0);
    }
    let mut handles = Vec::new();
    let mut levels = ctx.cfg.idle_users.clone();
    levels.sort_unstable();
    for n in levels {
        let from = handles.len();
        if n <= from {
            continue;
        }
        let specs = (from..n)
            .map(|i| Spec {
                state: UserState::new(format!("{}i{i}", ctx.tag)),
                room: None,
                resume: false,
            })
            .collect();
        let t0 = std::time::Instant::now();
        // The failed connects figure comes after the connect times, and
        // also when none failed: pushed here.
        let failed = Failed {
            who: &format!("idle {n}"),
            what: "connects failed",
            metric: None,
        };
        let ups = bring_up_reported(ctx, specs, 1, &delivered, &mut figs, failed).await;
        push_latency(
            &mut figs,
            &format!("{n} users: connect "),
            &connect_histogram(&ups),
        );
        let (failed, _) = failures(&ups);
        figs.push(format!("{n} users: failed connects"), "n", failed as f64);
        handles.extend(ups.into_iter().filter_map(|u| u.handle));
        figs.push(format!("{n} users: connected"), "n", handles.len() as f64);
        figs.push(
            format!("{n} users: time to connect the batch"),
            "s",
            t0.elapsed().as_secs_f64(),
        );
        tokio::time::sleep(settle).await;
        if let (Some(b), Some(rss)) = (base, ctx.pid.and_then(stats::rss_kib)) {
            let live = handles.len().max(1) as f64;
            figs.push(format!("{n} users: server RSS"), "MiB", rss as f64 / 1024.0);
            figs.push(
                format!("{n} users: RSS per connection"),
                "KiB",
                rss.saturating_sub(b) as f64 / live,
            );
        }
        let gone = handles.iter().filter(|h| h.join.is_finished()).count();
        figs.push(format!("{n} users: dropped while idle"), "n", gone as f64);
    }
    leave_all(handles).await;
    figs
}
