//! Scenario 6, logins: what passwords cost and what guessing them costs the
//! people chatting.
//!
//! 1. `--login-accounts` users register (`register: true`, a password each)
//!    and leave: registrations per second (each one an Argon2id hash).
//! 2. `--login-workers` loops log those accounts in with their password and
//!    leave again, for `--login-secs`: logins per second and connect time.
//! 3. `--login-chatters` users chat in rooms of `--login-room-size` at
//!    `--login-chat-rate` deliveries per second, once quietly and once while
//!    `--login-flood` connects with wrong passwords (spread over the
//!    accounts, `--login-flood-concurrency` at a time) hammer the server:
//!    the chatters' p99 both times, its ratio, and how many wrong passwords
//!    got in (must be 0).
//!
//! The Node peer has no accounts: it takes the same connects as guests and
//! ignores the password, so its rows measure guest connects and its
//! "wrong passwords accepted" is every attempt. The rows say so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::Semaphore;

use super::{
    CONNECT_TIMEOUT, CpuMeter, Ctx, Cycles, Failed, Plan, Spec, bring_up_reported, ladder,
    leave_all, push_latency,
};
use crate::client::{self, UserState};
use crate::report::Figures;

/// The password of account `i` (also the sessions scenario's).
pub(super) fn password(i: usize) -> String {
    format!("bench password {i:06}")
}

/// The code of a refused connect (`connect_error {"message":"code: …"}`).
fn refusal_code(e: &str) -> String {
    // Turned away before the WebSocket upgrade (an address locked for
    // failed logins).
    if e.contains("429 Too Many Requests") {
        return "rate_limited (HTTP 429, before the handshake)".into();
    }
    e.split("\"message\":\"")
        .nth(1)
        .and_then(|m| m.split(':').next())
        .unwrap_or("other")
        .to_owned()
}

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    let cfg = ctx.cfg;
    let n = cfg.login_accounts.max(1);
    let names: Arc<Vec<String>> = Arc::new((0..n).map(|i| format!("{}a{i}", ctx.tag)).collect());
    let delivered = Arc::new(AtomicU64::new(0));

    // 1. Registrations.
    let sem = Arc::new(Semaphore::new(cfg.login_workers.max(1)));
    let t0 = Instant::now();
    let cpu = CpuMeter::start(ctx.pid);
    let registered = join_all((0..n).map(|i| {
        let (sem, names, delivered) = (sem.clone(), names.clone(), delivered.clone());
        let addr = ctx.addr;
        async move {
            let _turn = sem.acquire().await.ok()?;
            let mut st = UserState::new(names[i].clone());
            st.password = Some(password(i));
            st.register = true;
            let (ws, _) = client::connect(addr, &mut st, false, &delivered, CONNECT_TIMEOUT)
                .await
                .ok()?;
            client::leave(ws).await.ok()
        }
    }))
    .await;
    let ok = registered.iter().flatten().count();
    cpu.finish(&mut figs, "registrations: ");
    figs.push(
        "registrations/s (peer: guest connects, it has no accounts)",
        "n/s",
        ok as f64 / t0.elapsed().as_secs_f64().max(1e-3),
    );
    figs.push("registrations failed", "n", (n - ok) as f64);

    // 2. Logins with the right password.
    let workers = cfg.login_workers.max(1).min(n);
    let deadline = Instant::now() + Duration::from_secs_f64(cfg.login_secs);
    let cpu = CpuMeter::start(ctx.pid);
    let t0 = Instant::now();
    let loops = join_all((0..workers).map(|w| {
        let (names, delivered) = (names.clone(), delivered.clone());
        let addr = ctx.addr;
        async move {
            let mut cycles = Cycles::default();
            // Each worker logs in its own accounts, in turn.
            let mine: Vec<usize> = (w..names.len()).step_by(workers).collect();
            let mut k = 0;
            while Instant::now() < deadline {
                let i = mine[k % mine.len()];
                k += 1;
                let mut st = UserState::new(names[i].clone());
                st.password = Some(password(i));
                cycles.run_one(addr, &mut st, &delivered).await;
            }
            cycles
        }
    }))
    .await;
    let elapsed = t0.elapsed().as_secs_f64().max(1e-3);
    let mut all = Cycles::default();
    for cycles in loops {
        all.merge(cycles);
    }
    if let Some(e) = &all.first_err {
        eprintln!("login: {} logins failed, first: {e}", all.failed);
    }
    cpu.finish(&mut figs, "logins: ");
    figs.push(
        "logins/s with a password (peer: guest connects)",
        "n/s",
        all.ok as f64 / elapsed,
    );
    figs.push("logins failed", "n", all.failed as f64);
    push_latency(&mut figs, "login connect ", &all.connect);

    // 3. Chatting users, without and then with a wrong-password flood.
    let size = cfg.login_room_size.max(1);
    let rooms = (cfg.login_chatters / size).max(1);
    let users = rooms * size;
    let room_names: Vec<Arc<str>> = (0..rooms)
        .map(|r| Arc::from(format!("#{}lr{r}", ctx.tag)))
        .collect();
    let specs = (0..users)
        .map(|i| Spec {
            state: UserState::new(format!("{}lu{i}", ctx.tag)),
            room: Some(room_names[i / size].clone()),
            resume: false,
        })
        .collect();
    let failed = Failed {
        who: "login",
        what: "chatters failed to come up",
        metric: Some("chatters: failed connects".into()),
    };
    let ups = bring_up_reported(ctx, specs, 2, &delivered, &mut figs, failed).await;
    let handles: Vec<_> = ups.into_iter().map(|u| u.handle).collect();
    let room_of = (0..users)
        .map(|i| handles[i].as_ref().map(|_| (i / size) as u32))
        .collect();
    let senders: Vec<Vec<usize>> = (0..rooms)
        .map(|r| {
            (r * size..(r + 1) * size)
                .filter(|i| handles[*i].is_some())
                .collect()
        })
        .collect();
    if senders.iter().any(Vec::is_empty) {
        eprintln!("login: a room has no member; no chat figures");
        leave_all(handles.into_iter().flatten().collect()).await;
        return figs;
    }
    let plan = Arc::new(Plan::Rooms {
        names: room_names,
        senders,
        room_of,
    });
    let rate = [cfg.login_chat_rate];
    let quiet = "chat, no flood";
    ladder::run(
        ctx,
        &handles,
        plan.clone(),
        size as f64,
        &rate,
        quiet,
        &delivered,
        &mut figs,
    )
    .await;

    // The attacker is not one of the chatters: its connects run on a
    // thread and runtime of their own, as another process's would, so the
    // chatters' latencies measure the server and not the bench's own
    // scheduler running the flood's handshakes ahead of their reads.
    let attack = flood(
        ctx.addr,
        names.clone(),
        cfg.login_flood,
        cfg.login_flood_concurrency,
    );
    let (done, flood) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        if let Ok(rt) = rt {
            let _ = done.send(rt.block_on(attack));
        }
    });
    let loud = "chat during the flood";
    ladder::run(
        ctx,
        &handles,
        plan,
        size as f64,
        &rate,
        loud,
        &delivered,
        &mut figs,
    )
    .await;
    let (codes, accepted, secs) = flood.await.unwrap_or_default();
    leave_all(handles.into_iter().flatten().collect()).await;

    let p99 = |label: &str| figs.get(&format!("{}p99", ladder::step_label(label, rate[0])));
    if let (Some(a), Some(b)) = (p99(quiet), p99(loud)) {
        figs.push("chat p99 during the flood / without", "x", b / a.max(1e-3));
    }
    figs.push(
        "flood: wrong passwords accepted (peer: no accounts, all)",
        "n",
        accepted as f64,
    );
    figs.push("flood: seconds to answer every attempt", "s", secs);
    for (code, count) in codes {
        figs.push(format!("flood: refused {code}"), "n", count as f64);
    }
    figs
}

/// `attempts` connects with wrong passwords over `names`, `concurrency` at
/// a time: the refusals by code, how many got in, and how long it took.
async fn flood(
    addr: std::net::SocketAddr,
    names: Arc<Vec<String>>,
    attempts: usize,
    concurrency: usize,
) -> (BTreeMap<String, u64>, u64, f64) {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let delivered = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let outcomes = join_all((0..attempts).map(|k| {
        let (sem, names, delivered) = (sem.clone(), names.clone(), delivered.clone());
        async move {
            let _turn = sem.acquire().await.ok();
            let mut st = UserState::new(names[k % names.len()].clone());
            st.password = Some(format!("not the password {k}"));
            match client::connect(addr, &mut st, false, &delivered, CONNECT_TIMEOUT).await {
                Ok((ws, _)) => {
                    let _ = client::leave(ws).await;
                    Ok(())
                }
                Err(e) => Err(refusal_code(&e.0)),
            }
        }
    }))
    .await;
    let mut codes = BTreeMap::new();
    let mut accepted = 0;
    for o in outcomes {
        match o {
            Ok(()) => accepted += 1,
            Err(code) => *codes.entry(code).or_default() += 1,
        }
    }
    (codes, accepted, t0.elapsed().as_secs_f64())
}
