//! Scenario 5, recovery storm: `--storm-users` users in rooms of
//! `--storm-room-size` (one extra user per room, the anchor, sends and is
//! never cut), room traffic at `--storm-rate` messages per second. After a
//! warm-up every storm user's transport is cut at once (the socket dropped
//! without a word, or kept open and silent with `--storm-half-open`); traffic
//! goes on; after `--storm-gap-ms` all reconnect together with
//! `auth {username, session, offset}` from their `session` event and the id
//! of the last message they received. Reports the time until all are back
//! and whether every message reached every member exactly once (live or
//! replayed).
//!
//! Against a cluster target with `--storm-kill-node`: the anchors are on
//! the first node and the storm users on both; instead of a cut, the second
//! node is killed (SIGKILL), and its users (half of the storm) reconnect to
//! the first, resuming their sessions there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::{
    CpuMeter, Ctx, Failed, Plan, Spec, bring_up, bring_up_reported, drain, evaluate, evaluate_some,
    expected_total, leave_all, pace, push_latency, senders,
};
use crate::client::{Cmd, Recv};
use crate::report::Figures;
use crate::stats;

/// Traffic before the cut, so that every user has an offset.
const WARMUP: Duration = Duration::from_secs(3);
/// Traffic after everyone is back.
const AFTER: Duration = Duration::from_secs(2);
/// Longest the storm may take before the bench gives up on stragglers.
const MAX_STORM: Duration = Duration::from_secs(60);

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    let cfg = ctx.cfg;
    let per_room = cfg.storm_room_size.max(2) - 1;
    let n = cfg.storm_users.max(1);
    let rooms = n.div_ceil(per_room);
    // Users 0..rooms are the anchors (anchor r in room r); the storm users
    // follow, storm user j in room j % rooms.
    let room_names: Vec<Arc<str>> = (0..rooms)
        .map(|r| Arc::from(format!("#{}s{r}", ctx.tag)))
        .collect();
    let room_of_user = |u: usize| if u < rooms { u } else { (u - rooms) % rooms };
    let total = rooms + n;
    let specs: Vec<Spec> = (0..total)
        .map(|u| {
            let name = if u < rooms {
                format!("{}a{u}", ctx.tag)
            } else {
                format!("{}s{}", ctx.tag, u - rooms)
            };
            Spec {
                state: crate::client::UserState::new(name),
                room: Some(room_names[room_of_user(u)].clone()),
                resume: false,
            }
        })
        .collect();
    let delivered = Arc::new(AtomicU64::new(0));
    let failed = Failed {
        who: "recovery",
        what: "users failed to come up",
        metric: Some("failed connects before the storm".to_owned()),
    };
    let kill = cfg.storm_kill_node && !ctx.others.is_empty();
    let ups = if kill {
        // Anchors on the first node (never killed), storm users on both.
        let mut specs = specs;
        let storm_specs = specs.split_off(rooms);
        let deadline = ctx.deadline();
        let c = cfg.connect_concurrency;
        let mut ups = bring_up(&[ctx.addr], specs, c, 2, &delivered, deadline).await;
        ups.extend(bring_up(&ctx.addrs(), storm_specs, c, 2, &delivered, deadline).await);
        let down = ups.iter().filter(|u| u.handle.is_none()).count();
        if down > 0 {
            figs.push("failed connects before the storm", "n", down as f64);
        }
        ups
    } else {
        bring_up_reported(ctx, specs, 2, &delivered, &mut figs, failed).await
    };
    let mut handles: Vec<_> = ups.into_iter().map(|u| u.handle).collect();
    let room_of = (0..total)
        .map(|u| handles[u].as_ref().map(|_| room_of_user(u) as u32))
        .collect();
    let anchors: Vec<Vec<usize>> = (0..rooms).map(|r| vec![r]).collect();
    if (0..rooms).any(|r| handles[r].is_none()) {
        eprintln!("recovery: an anchor failed to connect; skipped");
        leave_all(handles.into_iter().flatten().collect()).await;
        return figs;
    }
    let plan = Arc::new(Plan::Rooms {
        names: room_names,
        senders: anchors,
        room_of,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let pacer = tokio::spawn(pace(
        senders(&handles),
        plan.clone(),
        cfg.storm_rate,
        MAX_STORM.as_secs_f64() + 30.0,
        0,
        stop.clone(),
    ));
    let cpu = CpuMeter::start(ctx.pid);
    tokio::time::sleep(WARMUP).await;

    // The cut: every storm user at once (or, killing a node, its users).
    let storm: Vec<usize> = (rooms..total)
        .filter(|u| handles[*u].is_some())
        .filter(|u| !kill || (u - rooms) % ctx.addrs().len() == 1)
        .collect();
    if kill {
        match ctx.other_pids.first() {
            Some(pid) => {
                let killed = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                eprintln!("  killed the second node (pid {pid}): {killed}");
            }
            None => eprintln!("recovery: no PID for the second node: nothing killed"),
        }
    }
    let cut = join_all(storm.iter().map(|u| {
        handles[*u]
            .take()
            .expect("live")
            .finish(Cmd::Cut, Duration::from_secs(10))
    }))
    .await;
    let mut half_open = Vec::new();
    let mut states = Vec::new();
    let mut lost_tasks = 0usize;
    for (u, r) in storm.iter().zip(cut) {
        match r {
            Some((st, ws)) => {
                if cfg.storm_half_open {
                    half_open.extend(ws);
                } else {
                    drop(ws);
                }
                states.push((*u, st));
            }
            None => lost_tasks += 1,
        }
    }
    let no_offset = states.iter().filter(|(_, s)| s.last_id.is_none()).count();
    tokio::time::sleep(Duration::from_millis(cfg.storm_gap_ms)).await;

    // The storm: everyone reconnects at once.
    let t_storm = Instant::now();
    let (idx, specs): (Vec<usize>, Vec<Spec>) = states
        .into_iter()
        .map(|(u, st)| {
            (
                u,
                Spec {
                    state: st,
                    room: None,
                    resume: true,
                },
            )
        })
        .unzip();
    // After a kill, everyone goes to the node that is left.
    let to: Vec<_> = if kill { vec![ctx.addr] } else { ctx.addrs() };
    let ups = bring_up(
        &to,
        specs,
        cfg.storm_concurrency.unwrap_or(n),
        5,
        &delivered,
        t_storm + MAX_STORM,
    )
    .await;
    let all_back = ups
        .iter()
        .filter(|u| u.handle.is_some())
        .map(|u| u.done_at.duration_since(t_storm))
        .max()
        .unwrap_or_default();
    let mut back = stats::histogram();
    let (mut recovered, mut truncated, mut missed, mut not_back) = (0u64, 0u64, 0u64, 0u64);
    let mut gave_up = Vec::new();
    let mut first_err = None;
    for (u, up) in idx.iter().zip(ups) {
        if up.handle.is_some() {
            stats::record(
                &mut back,
                up.done_at.duration_since(t_storm).as_micros() as u64,
            );
            recovered += up.recovered as u64;
            truncated += up.truncated as u64;
            missed += up.missed;
            handles[*u] = up.handle;
        } else {
            not_back += 1;
            first_err = first_err.or(up.error);
            if let Some(st) = up.state {
                gave_up.push((*u, st));
            }
        }
    }
    if let Some(e) = first_err {
        eprintln!("recovery: {not_back} users not back, first: {e}");
    }
    tokio::time::sleep(AFTER).await;
    stop.store(true, Ordering::Relaxed);
    let sent = pacer.await.expect("pacer panicked");
    cpu.finish(&mut figs, "");
    let want = expected_total(&plan, &sent, total);
    drain(
        &delivered,
        0,
        want,
        Duration::from_secs(15),
        Duration::from_secs(3),
    )
    .await;
    drop(half_open);

    // Everything each user received over the whole run.
    let live: Vec<(usize, _)> = handles
        .into_iter()
        .enumerate()
        .filter_map(|(u, h)| h.map(|h| (u, h)))
        .collect();
    let (ids, hs): (Vec<usize>, Vec<_>) = live.into_iter().unzip();
    let states = leave_all(hs).await;
    let mut recvs: Vec<(usize, Recv)> = ids
        .into_iter()
        .zip(states)
        .filter_map(|(u, s)| s.map(|s| (u, s.recv)))
        .collect();
    let gave_up_ids: std::collections::HashSet<usize> = gave_up.iter().map(|(u, _)| *u).collect();
    recvs.extend(gave_up.into_iter().map(|(u, s)| (u, s.recv)));
    let e = evaluate(&plan, &sent, &recvs);
    // Losses among the storm users (anchors were never cut), and among those
    // that came back.
    let storm_lost = evaluate_some(&plan, &sent, &recvs, |u| u >= rooms).lost;
    let back_lost = evaluate_some(&plan, &sent, &recvs, |u| {
        u >= rooms && !gave_up_ids.contains(&u)
    })
    .lost;

    figs.push("storm users cut", "n", storm.len() as f64);
    figs.push(
        "back (reconnected)",
        "n",
        (storm.len() as u64 - not_back - lost_tasks as u64) as f64,
    );
    figs.push("recovered: true", "n", recovered as f64);
    figs.push("time until all back", "ms", all_back.as_secs_f64() * 1000.0);
    push_latency(&mut figs, "reconnect ", &back);
    figs.push("messages sent", "msgs", sent.count() as f64);
    figs.push("deliveries expected", "msgs", e.expected as f64);
    figs.push("replayed receipts", "msgs", e.replayed as f64);
    figs.push("missed (sum of session.missed)", "msgs", missed as f64);
    figs.push("lost", "msgs", e.lost as f64);
    figs.push("lost by storm users", "msgs", storm_lost as f64);
    figs.push(
        "lost by storm users that came back",
        "msgs",
        back_lost as f64,
    );
    figs.push("duplicates", "msgs", e.dups as f64);
    figs.push("truncated sessions", "n", truncated as f64);
    figs.push("users without an offset at the cut", "n", no_offset as f64);
    push_latency(&mut figs, "delivery (replays included) ", &e.latency);
    eprintln!(
        "  storm: {} cut, back in {:.0} ms, recovered {recovered}, lost {}, dups {}, replayed {}",
        storm.len(),
        all_back.as_secs_f64() * 1000.0,
        e.lost,
        e.dups,
        e.replayed
    );
    figs
}
