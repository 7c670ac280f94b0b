//! Scenario 2, room fan-out: rooms of each size of `--fanout-sizes`
//! (`--fanout-users` users split into rooms of that size, at least one
//! room), a ladder of offered deliveries per second (`--fanout-rates`; a
//! room message of a room of M members is M deliveries, the sender's copy
//! included). Per step: delivered msgs/s, end-to-end latency p50/p99/max
//! (the send time travels in the text), messages lost and duplicated.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{Ctx, Failed, Plan, Spec, bring_up_reported, ladder, leave_all};
use crate::client::UserState;
use crate::report::{Figures, ScenarioReport};

pub fn label(size: usize) -> String {
    format!("rooms of {size}")
}

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    for &size in &ctx.cfg.fanout_sizes {
        let size = size.max(1);
        let rooms = (ctx.cfg.fanout_users / size).max(1);
        let users = rooms * size;
        let names: Vec<Arc<str>> = (0..rooms)
            .map(|r| Arc::from(format!("#{}m{size}r{r}", ctx.tag)))
            .collect();
        let specs = (0..users)
            .map(|i| Spec {
                state: UserState::new(format!("{}f{size}u{i}", ctx.tag)),
                room: Some(names[i / size].clone()),
                resume: false,
            })
            .collect();
        let delivered = Arc::new(AtomicU64::new(0));
        let label = label(size);
        figs.push(format!("{label}: users"), "n", users as f64);
        let failed = Failed {
            who: &format!("fanout {size}"),
            what: "users failed to come up",
            metric: Some(format!("{label}: failed connects")),
        };
        let ups = bring_up_reported(ctx, specs, 2, &delivered, &mut figs, failed).await;
        let handles: Vec<_> = ups.into_iter().map(|u| u.handle).collect();
        let room_of = (0..users)
            .map(|i| handles[i].as_ref().map(|_| (i / size) as u32))
            .collect();
        let senders = (0..rooms)
            .map(|r| {
                (r * size..(r + 1) * size)
                    .filter(|i| handles[*i].is_some())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        if senders.iter().any(Vec::is_empty) {
            eprintln!("fanout {size}: a room has no member, skipped");
            leave_all(handles.into_iter().flatten().collect()).await;
            continue;
        }
        let plan = Arc::new(Plan::Rooms {
            names,
            senders,
            room_of,
        });
        ladder::run(
            ctx,
            &handles,
            plan,
            size as f64,
            &ctx.cfg.fanout_rates,
            &label,
            &delivered,
            &mut figs,
        )
        .await;
        leave_all(handles.into_iter().flatten().collect()).await;
    }
    figs
}

/// Adds, per room size, the p99 of every target at the second target's (the
/// peer's) best sustained rate.
pub fn post(report: &mut ScenarioReport, sizes: &[usize]) {
    post_ladder(report, &sizes.iter().map(|s| label(*s)).collect::<Vec<_>>());
}

/// The same for any ladder labels.
pub fn post_ladder(report: &mut ScenarioReport, labels: &[String]) {
    if report.targets.len() < 2 {
        return;
    }
    let reference = report.targets[1].clone();
    for label in labels {
        let Some(rate) = report.value(&format!("{label} best sustained offered"), &reference)
        else {
            continue;
        };
        let prefix = ladder::step_label(label, rate);
        let values = report
            .targets
            .iter()
            .map(|t| report.value(&format!("{prefix}p99"), t))
            .collect();
        report.set_row(
            &format!("{label}: p99 at {reference}'s best sustained rate ({rate:.0}/s)"),
            "ms",
            values,
        );
    }
}
