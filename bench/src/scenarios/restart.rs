//! Scenario 7, restart on stored history: `--dm-pairs` pairs store
//! `--restart-messages` DMs at `--restart-rate` per second; every user's
//! transport is then cut (their sessions stay in their recovery window),
//! the server is stopped with SIGTERM (or SIGKILL with `--restart-kill`:
//! a crash, with the write-ahead log not checkpointed) and started again
//! on the same data
//! directory. Reports how long the stop and the start took, the server's
//! RSS at start with an empty store and with everything stored, the size
//! of the store, and one user resuming its session and reading a page of
//! its DMs back. Only a chat-server the bench launched on its on-disk
//! store restarts; other targets (the peer keeps nothing) report nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::dm::{Pairs, bring_up_pairs};
use super::{CONNECT_TIMEOUT, Ctx, Failed, Plan, drain, evaluate};
use super::{expected_total, pace, senders, take_all};
use crate::client::{self, Cmd};
use crate::report::Figures;
use crate::server::{Server, TargetSpec};
use crate::stats;

/// How long the server is left alone before its RSS is read (both times).
const SETTLE: Duration = Duration::from_millis(500);

/// The figures' prefix.
const LABEL: &str = "restart: ";

pub async fn run(ctx: &Ctx<'_>, spec: &TargetSpec, server: &mut Server) -> Figures {
    let mut figs = Figures::default();
    let restartable = matches!(
        spec,
        TargetSpec::ChatServer {
            memory: false,
            tls: false,
            ..
        }
    );
    if !restartable {
        eprintln!(
            "restart: {} is not a chat-server launched on its on-disk store: skipped",
            spec.name()
        );
        return figs;
    }
    let cfg = ctx.cfg;
    tokio::time::sleep(SETTLE).await;
    if let Some(rss) = server.pid.and_then(stats::rss_kib) {
        figs.push(format!("{LABEL}RSS at start, empty store"), "MiB", mib(rss));
    }

    // Store the messages.
    let delivered = Arc::new(AtomicU64::new(0));
    let failed = Failed {
        who: "restart",
        what: "users failed to come up",
        metric: Some(format!("{LABEL}failed connects")),
    };
    let Pairs {
        mut handles,
        live,
        names,
    } = bring_up_pairs(ctx, "r", &delivered, &mut figs, failed).await;
    let Some(&(reader, partner)) = live.first() else {
        eprintln!("restart: no pair came up");
        return figs;
    };
    let plan = Arc::new(Plan::Pairs {
        pairs: live,
        names: names.clone(),
    });
    let rate = cfg.restart_rate.max(1.0);
    let n = cfg.restart_messages.max(1);
    eprintln!("  storing {n} DMs at {rate:.0}/s");
    let sent = pace(
        senders(&handles),
        plan.clone(),
        rate,
        n as f64 / rate,
        0,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    let want = expected_total(&plan, &sent, handles.len());
    drain(
        &delivered,
        0,
        want,
        Duration::from_secs(60),
        Duration::from_secs(5),
    )
    .await;
    // Acks wait for the commit: give the last ones time to come.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recvs = take_all(&handles).await;
    let e = evaluate(&plan, &sent, &recvs);
    let acked: u64 = recvs.iter().map(|(_, r)| r.acked).sum();
    figs.push(format!("{LABEL}messages sent"), "msgs", sent.count() as f64);
    figs.push(format!("{LABEL}messages acked"), "msgs", acked as f64);
    figs.push(
        format!("{LABEL}store rate"),
        "msg/s",
        sent.count() as f64 / sent.secs.max(1e-3),
    );
    figs.push(format!("{LABEL}lost"), "msgs", e.lost as f64);
    figs.push(format!("{LABEL}duplicates"), "msgs", e.dups as f64);
    if let Some(dir) = server.data_dir() {
        figs.push(format!("{LABEL}store on disk"), "MiB", mib(dir_kib(dir)));
    }

    // Cut everyone (their sessions wait for them), then restart.
    let cut = join_all(handles.iter_mut().map(|h| async move {
        match h.take() {
            Some(h) => h.finish(Cmd::Cut, Duration::from_secs(10)).await,
            None => None,
        }
    }))
    .await;
    let Some((mut st, ws)) = cut.into_iter().nth(reader).flatten() else {
        eprintln!("restart: the reader's task did not answer");
        return figs;
    };
    drop(ws);
    let (stopped, exec) = match server.restart(spec, cfg.restart_kill).await {
        Ok(times) => times,
        Err(err) => {
            eprintln!("restart: {err}");
            return figs;
        }
    };
    let signal = if cfg.restart_kill {
        "SIGKILL"
    } else {
        "SIGTERM"
    };
    figs.push(format!("{LABEL}stop ({signal} to exit)"), "ms", ms(stopped));

    // At once, one user resumes (its `session` event is when the server
    // serves again) and reads its DMs back.
    let (mut ws, _) =
        match client::connect(server.addr, &mut st, true, &delivered, CONNECT_TIMEOUT).await {
            Ok(x) => x,
            Err(err) => {
                eprintln!("restart: the reader could not resume: {err}");
                return figs;
            }
        };
    figs.push(
        format!("{LABEL}start (exec to a resumed session)"),
        "ms",
        ms(exec.elapsed()),
    );
    let recovered = st.info.as_ref().is_some_and(|i| i.recovered);
    figs.push(
        format!("{LABEL}reader recovered"),
        "n",
        f64::from(u8::from(recovered)),
    );
    let payload = json!({ "with": names[partner].as_ref(), "limit": 50 });
    let t0 = Instant::now();
    let page = client::request(
        &mut ws,
        &mut st,
        "history",
        &payload,
        &delivered,
        CONNECT_TIMEOUT,
    )
    .await;
    let took = t0.elapsed();
    let _ = client::leave(ws).await;
    match page {
        Ok(ack) => {
            let messages = serde_json::from_str::<Value>(&ack)
                .ok()
                .and_then(|v| {
                    // The ack's arguments: `[{ok, messages, more}]`.
                    let body = v.get(0).cloned().unwrap_or(v);
                    body.get("messages").and_then(Value::as_array).map(Vec::len)
                })
                .unwrap_or(0);
            figs.push(format!("{LABEL}first history page"), "ms", ms(took));
            figs.push(
                format!("{LABEL}history page messages"),
                "msgs",
                messages as f64,
            );
        }
        Err(err) => eprintln!("restart: history after the restart: {err}"),
    }
    tokio::time::sleep(SETTLE).await;
    if let Some(rss) = server.pid.and_then(stats::rss_kib) {
        figs.push(
            format!("{LABEL}RSS after start, all stored"),
            "MiB",
            mib(rss),
        );
    }
    figs
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The size of the files in `dir` (not recursive: the store keeps its
/// files at the top), in KiB.
fn dir_kib(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum::<u64>()
                / 1024
        })
        .unwrap_or(0)
}
