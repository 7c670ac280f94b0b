//! Scenario 3, DM pairs: `--dm-pairs` pairs of users sending each other
//! direct messages, both ways in turn, at each offered rate of `--dm-rates`
//! (messages per second over all pairs). Same figures as the fan-out.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::{Ctx, Failed, Plan, Spec, bring_up_reported, ladder, leave_all};
use crate::client::{UserHandle, UserState};
use crate::report::Figures;

pub fn label(pairs: usize) -> String {
    format!("{pairs} DM pairs")
}

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    let delivered = Arc::new(AtomicU64::new(0));
    let label = label(ctx.cfg.dm_pairs.max(1));
    let failed = Failed {
        who: "dm",
        what: "users failed to come up",
        metric: Some(format!("{label}: failed connects")),
    };
    let pairs = bring_up_pairs(ctx, "d", &delivered, &mut figs, failed).await;
    if pairs.live.is_empty() {
        leave_all(pairs.handles.into_iter().flatten().collect()).await;
        return figs;
    }
    let Pairs {
        handles,
        live,
        names,
    } = pairs;
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

/// `--dm-pairs` pairs of users, brought up.
pub struct Pairs {
    /// Users `2p` and `2p + 1` are pair `p`; `None` where one did not come up.
    pub handles: Vec<Option<UserHandle>>,
    /// The pairs whose two users both came up.
    pub live: Vec<(usize, usize)>,
    /// Every user's name (`<tag><infix><index>`).
    pub names: Vec<Arc<str>>,
}

/// Brings up `--dm-pairs` pairs of users named `<tag><infix><index>`,
/// reporting those that did not come up as `failed` says.
pub async fn bring_up_pairs(
    ctx: &Ctx<'_>,
    infix: &str,
    delivered: &Arc<AtomicU64>,
    figs: &mut Figures,
    failed: Failed<'_>,
) -> Pairs {
    let pairs = ctx.cfg.dm_pairs.max(1);
    let names: Vec<Arc<str>> = (0..2 * pairs)
        .map(|i| Arc::from(format!("{}{infix}{i}", ctx.tag)))
        .collect();
    let specs = names
        .iter()
        .map(|n| Spec {
            state: UserState::new(n.to_string()),
            room: None,
            resume: false,
        })
        .collect();
    let ups = bring_up_reported(ctx, specs, 2, delivered, figs, failed).await;
    let handles: Vec<_> = ups.into_iter().map(|u| u.handle).collect();
    let live = (0..pairs)
        .map(|p| (2 * p, 2 * p + 1))
        .filter(|(a, b)| handles[*a].is_some() && handles[*b].is_some())
        .collect();
    Pairs {
        handles,
        live,
        names,
    }
}
