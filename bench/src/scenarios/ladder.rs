//! A ladder of offered rates over users already in place (rooms or DM
//! pairs): each step paces messages for `--step-secs`, drains, and checks
//! every receipt. Shared by the fan-out and DM scenarios.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{
    CpuMeter, Ctx, Plan, drain, evaluate, expected_total, pace, push_latency, senders, take_all,
};
use crate::client::UserHandle;
use crate::report::Figures;
use crate::stats;

/// A step is sustained when nothing is lost or duplicated, at least this
/// share of the offered deliveries arrived within the step…
pub const SUSTAINED_SHARE: f64 = 0.95;
/// …and p99 latency stays under this many milliseconds.
pub const SUSTAINED_P99_MS: f64 = 1000.0;

/// The metric prefix of one step.
pub fn step_label(label: &str, offered: f64) -> String {
    format!("{label} @{offered:.0}/s: ")
}

/// Runs the ladder; `fan` is the number of receipts one message makes.
/// `rates` are offered receipts (deliveries) per second.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &Ctx<'_>,
    handles: &[Option<UserHandle>],
    plan: Arc<Plan>,
    fan: f64,
    rates: &[f64],
    label: &str,
    delivered: &Arc<AtomicU64>,
    figs: &mut Figures,
) {
    let tx = senders(handles);
    let mut next_no = 0u64;
    let mut best: Option<(f64, f64)> = None;
    let mut max_rate = 0f64;
    for &offered in rates {
        let prefix = step_label(label, offered);
        take_all(handles).await;
        let d0 = delivered.load(Ordering::Relaxed);
        let cpu = CpuMeter::start(ctx.pid);
        let t0 = Instant::now();
        let sent = pace(
            tx.clone(),
            plan.clone(),
            offered / fan,
            ctx.cfg.step_secs,
            next_no,
            Arc::new(AtomicBool::new(false)),
        )
        .await;
        cpu.finish(figs, &prefix);
        next_no += sent.count();
        let want = expected_total(&plan, &sent, handles.len());
        let last = drain(
            delivered,
            d0,
            want,
            Duration::from_secs(10),
            Duration::from_secs(3),
        )
        .await;
        let recvs = take_all(handles).await;
        let e = evaluate(&plan, &sent, &recvs);
        // Distinct deliveries over the time from the first send to the last
        // receipt: a server that falls behind stretches the time.
        let rate = e.delivered as f64
            / last
                .duration_since(t0)
                .as_secs_f64()
                .max(sent.secs)
                .max(1e-3);
        let p99 = stats::summarize(&e.latency).p99_ms;
        figs.push(
            format!("{prefix}sent msgs/s"),
            "msg/s",
            sent.count() as f64 / sent.secs.max(1e-3),
        );
        figs.push(format!("{prefix}delivered/s"), "msg/s", rate);
        push_latency(figs, &prefix, &e.latency);
        push_latency(figs, &format!("{prefix}ack "), &e.ack_latency);
        figs.push(format!("{prefix}lost"), "msgs", e.lost as f64);
        figs.push(format!("{prefix}duplicates"), "msgs", e.dups as f64);
        if e.refused > 0 {
            figs.push(format!("{prefix}refused sends"), "msgs", e.refused as f64);
        }
        let sustained = e.lost == 0
            && e.dups == 0
            && rate >= SUSTAINED_SHARE * offered
            && p99 <= SUSTAINED_P99_MS;
        eprintln!(
            "  {prefix}delivered {rate:.0}/s p99 {p99:.1} ms lost {} dups {} expected {} {}",
            e.lost,
            e.dups,
            e.expected,
            if sustained {
                "sustained"
            } else {
                "NOT sustained"
            }
        );
        max_rate = max_rate.max(rate);
        if sustained {
            best = Some((offered, rate));
        } else if !ctx.cfg.full_ladder {
            break;
        }
    }
    figs.push(
        format!("{label} highest delivered rate of the ladder"),
        "msg/s",
        max_rate,
    );
    if let Some((offered, rate)) = best {
        figs.push(format!("{label} best sustained offered"), "msg/s", offered);
        figs.push(format!("{label} best sustained delivered"), "msg/s", rate);
    }
}
