//! Scenario 3, DM pairs: `--dm-pairs` pairs of users sending each other
//! direct messages, both ways in turn, at each offered rate of `--dm-rates`
//! (messages per second over all pairs). Same figures as the fan-out.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{Ctx, Failed, Plan, Spec, bring_up_reported, ladder, leave_all};
use crate::client::UserState;
use crate::report::Figures;

pub fn label(pairs: usize) -> String {
    format!("{pairs} DM pairs")
}

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    let pairs = ctx.cfg.dm_pairs.max(1);
    let names: Vec<Arc<str>> = (0..2 * pairs)
        .map(|i| Arc::from(format!("{}d{i}", ctx.tag)))
        .collect();
    let specs = names
        .iter()
        .map(|n| Spec {
            state: UserState::new(n.to_string()),
            room: None,
            resume: false,
        })
        .collect();
    let delivered = Arc::new(AtomicU64::new(0));
    let label = label(pairs);
    let failed = Failed {
        who: "dm",
        what: "users failed to come up",
        metric: Some(format!("{label}: failed connects")),
    };
    let ups = bring_up_reported(ctx, specs, 2, &delivered, &mut figs, failed).await;
    let handles: Vec<_> = ups.into_iter().map(|u| u.handle).collect();
    let live: Vec<(usize, usize)> = (0..pairs)
        .map(|p| (2 * p, 2 * p + 1))
        .filter(|(a, b)| handles[*a].is_some() && handles[*b].is_some())
        .collect();
    if live.is_empty() {
        leave_all(handles.into_iter().flatten().collect()).await;
        return figs;
    }
    let plan = Arc::new(Plan::Pairs { pairs: live, names });
    ladder::run(
        ctx,
        &handles,
        plan,
        1.0,
        &ctx.cfg.dm_rates,
        &label,
        &delivered,
        &mut figs,
    )
    .await;
    leave_all(handles.into_iter().flatten().collect()).await;
    figs
}
