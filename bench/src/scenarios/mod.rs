//! The ten scenarios and what they share: bringing many users up at once,
//! pacing bench messages at a fixed offered rate, and checking what arrived.

pub mod api;
pub mod burst;
pub mod changes;
pub mod churn;
pub mod dm;
pub mod fanout;
pub mod idle;
pub mod ladder;
pub mod login;
pub mod recovery;
pub mod restart;
pub mod sessions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use chat_shared::SessionInfo;

use crate::Config;
use crate::client::{self, Cmd, Dest, Recv, UserHandle, UserState};
use crate::report::Figures;
use crate::stats;

/// What a scenario gets: the server's address and PID, the configuration,
/// and a name prefix unique to this run.
pub struct Ctx<'a> {
    pub addr: SocketAddr,
    /// The other nodes of a cluster target: users brought up together are
    /// spread over `addr` and these in turn.
    pub others: Vec<SocketAddr>,
    /// The PIDs of the processes behind `others` (for `--storm-kill-node`).
    pub other_pids: Vec<u32>,
    pub pid: Option<u32>,
    pub cfg: &'a Config,
    pub tag: String,
}

impl Ctx<'_> {
    /// Every node of the target, `addr` first.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        std::iter::once(self.addr)
            .chain(self.others.iter().copied())
            .collect()
    }

    /// The deadline of one bring-up of many users, from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs_f64(self.cfg.bring_up_secs)
    }
}

/// How long one connect (TCP to `session`) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a `room:join` ack may take.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// One user to bring up.
pub struct Spec {
    pub state: UserState,
    /// A room to join once connected.
    pub room: Option<Arc<str>>,
    /// Reconnect with the session and offset the state holds.
    pub resume: bool,
}

/// The outcome of bringing one user up.
pub struct Up {
    pub handle: Option<UserHandle>,
    /// TCP connect to `session`.
    pub connect: Duration,
    /// When the user was ready (connected and joined).
    pub done_at: Instant,
    pub recovered: bool,
    pub truncated: bool,
    pub missed: u64,
    /// The `session` event, when the user came up.
    pub info: Option<SessionInfo>,
    pub error: Option<String>,
    /// The state, when the user could not be brought up.
    pub state: Option<UserState>,
}

/// Connects (and joins) every user, at most `concurrency` handshakes at a
/// time, each tried up to `attempts` times; starts the task of each one
/// that made it; none starts after `deadline`. The result is in the order
/// of `specs`.
pub async fn bring_up(
    addrs: &[SocketAddr],
    specs: Vec<Spec>,
    concurrency: usize,
    attempts: u32,
    delivered: &Arc<AtomicU64>,
    deadline: Instant,
) -> Vec<Up> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            // Spread over the nodes of the target, in turn.
            let addr = addrs[i % addrs.len().max(1)];
            let sem = sem.clone();
            let delivered = delivered.clone();
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                let mut st = spec.state;
                let mut last_err = String::new();
                for attempt in 0..attempts.max(1) {
                    if Instant::now() >= deadline {
                        last_err = "bring-up deadline passed".to_owned();
                        break;
                    }
                    if attempt > 0 {
                        tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                    }
                    let (mut ws, took) = match client::connect(
                        addr,
                        &mut st,
                        spec.resume,
                        &delivered,
                        CONNECT_TIMEOUT,
                    )
                    .await
                    {
                        Ok(x) => x,
                        Err(e) => {
                            last_err = e.0;
                            continue;
                        }
                    };
                    if let Some(room) = &spec.room {
                        let payload = json!({ "room": room.as_ref() });
                        match client::request(
                            &mut ws,
                            &mut st,
                            "room:join",
                            &payload,
                            &delivered,
                            ACK_TIMEOUT,
                        )
                        .await
                        {
                            Ok(ack) if ack.contains("\"ok\":true") => {}
                            Ok(ack) => {
                                last_err = format!("room:join refused: {ack}");
                                continue;
                            }
                            Err(e) => {
                                last_err = e.0;
                                continue;
                            }
                        }
                    }
                    let info = st.info.clone();
                    let done_at = Instant::now();
                    let handle = client::spawn(ws, st, delivered.clone());
                    return Up {
                        handle: Some(handle),
                        connect: took,
                        done_at,
                        recovered: info.as_ref().is_some_and(|i| i.recovered),
                        truncated: info.as_ref().is_some_and(|i| i.truncated),
                        missed: info.as_ref().map_or(0, |i| i.missed),
                        info,
                        error: None,
                        state: None,
                    };
                }
                Up {
                    handle: None,
                    connect: Duration::ZERO,
                    done_at: Instant::now(),
                    recovered: false,
                    truncated: false,
                    missed: 0,
                    info: None,
                    error: Some(last_err),
                    state: Some(st),
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("bring-up task panicked"));
    }
    out
}

/// Connect times of the users that came up, as a histogram of µs.
pub fn connect_histogram(ups: &[Up]) -> Histogram<u64> {
    let mut h = stats::histogram();
    for u in ups.iter().filter(|u| u.handle.is_some()) {
        stats::record(&mut h, u.connect.as_micros() as u64);
    }
    h
}

/// The first error among users that did not come up, and how many.
pub fn failures(ups: &[Up]) -> (usize, Option<String>) {
    let failed: Vec<&Up> = ups.iter().filter(|u| u.handle.is_none()).collect();
    (failed.len(), failed.first().and_then(|u| u.error.clone()))
}

/// How [`bring_up_reported`] reports the users that did not come up.
pub struct Failed<'a> {
    /// Starts the line on stderr: `<who>: <n> <what>, first: <error>`.
    pub who: &'a str,
    pub what: &'a str,
    /// The figure of the count, pushed when some failed; `None` when the
    /// caller pushes it itself.
    pub metric: Option<String>,
}

/// Brings up `specs` with [`bring_up`], at the run's connect concurrency and
/// until its deadline, each user tried up to `attempts` times, and reports
/// the users that did not come up as `failed` says.
pub async fn bring_up_reported(
    ctx: &Ctx<'_>,
    specs: Vec<Spec>,
    attempts: u32,
    delivered: &Arc<AtomicU64>,
    figs: &mut Figures,
    failed: Failed<'_>,
) -> Vec<Up> {
    let ups = bring_up(
        &ctx.addrs(),
        specs,
        ctx.cfg.connect_concurrency,
        attempts,
        delivered,
        ctx.deadline(),
    )
    .await;
    let (n, first) = failures(&ups);
    if n > 0 {
        eprintln!(
            "{}: {n} {}, first: {}",
            failed.who,
            failed.what,
            first.unwrap_or_default()
        );
        if let Some(metric) = failed.metric {
            figs.push(metric, "n", n as f64);
        }
    }
    ups
}

/// Ends every user with a planned disconnect, concurrently, and returns
/// their states (None for a task that did not answer).
pub async fn leave_all(handles: Vec<UserHandle>) -> Vec<Option<UserState>> {
    join_all(handles.into_iter().map(|h| async move {
        h.finish(Cmd::Leave, Duration::from_secs(10))
            .await
            .map(|(s, _)| s)
    }))
    .await
}

/// Who sends bench messages, and to where.
pub enum Plan {
    /// Room messages: round-robin over rooms, and within a room over its
    /// senders (user indices). `room_of[user]` says which room a user is in.
    Rooms {
        names: Vec<Arc<str>>,
        senders: Vec<Vec<usize>>,
        room_of: Vec<Option<u32>>,
    },
    /// DMs between the users of each pair, both ways in turn. `names[user]`
    /// is the username.
    Pairs {
        pairs: Vec<(usize, usize)>,
        names: Vec<Arc<str>>,
    },
}

impl Plan {
    /// Message `k`: who sends it, where it goes, and its destination index
    /// (a room or a receiving user).
    fn pick(&self, k: u64) -> (usize, Dest, u32) {
        match self {
            Plan::Rooms { names, senders, .. } => {
                let r = (k % names.len() as u64) as usize;
                let s = &senders[r];
                let who = s[((k / names.len() as u64) % s.len() as u64) as usize];
                (who, Dest::Room(names[r].clone()), r as u32)
            }
            Plan::Pairs { pairs, names } => {
                let p = (k % pairs.len() as u64) as usize;
                let (a, b) = pairs[p];
                let (from, to) = if (k / pairs.len() as u64).is_multiple_of(2) {
                    (a, b)
                } else {
                    (b, a)
                };
                (from, Dest::User(names[to].clone()), to as u32)
            }
        }
    }

    /// How many destinations (rooms or users) messages can go to.
    fn dests(&self) -> usize {
        match self {
            Plan::Rooms { names, .. } => names.len(),
            Plan::Pairs { names, .. } => names.len(),
        }
    }

    /// The destination index whose messages `user` should receive.
    fn dest_of(&self, user: usize) -> Option<usize> {
        match self {
            Plan::Rooms { room_of, .. } => room_of.get(user).copied().flatten().map(|r| r as usize),
            Plan::Pairs { .. } => Some(user),
        }
    }
}

/// What a pacer sent.
#[derive(Debug, Default)]
pub struct Sent {
    pub first_no: u64,
    /// Destination index of each message, from `first_no` on.
    pub dest: Vec<u32>,
    /// Seconds from the first to the last send.
    pub secs: f64,
}

impl Sent {
    pub fn count(&self) -> u64 {
        self.dest.len() as u64
    }
}

/// Sends bench messages at `rate` per second through the users' tasks
/// (`senders[user]`), numbering them from `first_no`, for `max_secs` or
/// until `stop` is set.
pub async fn pace(
    senders: Arc<Vec<mpsc::UnboundedSender<Cmd>>>,
    plan: Arc<Plan>,
    rate: f64,
    max_secs: f64,
    first_no: u64,
    stop: Arc<AtomicBool>,
) -> Sent {
    let total = (rate * max_secs).ceil() as u64;
    let mut sent = Sent {
        first_no,
        dest: Vec::with_capacity(total as usize),
        secs: 0.0,
    };
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut k = 0u64;
    while k < total
        && !stop.load(Ordering::Relaxed)
        && start.elapsed().as_secs_f64() < max_secs + 5.0
    {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
        while k < due {
            let (who, dest, d) = plan.pick(k);
            let _ = senders[who].send(Cmd::Send {
                dest,
                no: first_no + k,
            });
            sent.dest.push(d);
            k += 1;
        }
    }
    sent.secs = start.elapsed().as_secs_f64();
    sent
}

/// The senders of each user's task (a closed channel where there is none).
pub fn senders(handles: &[Option<UserHandle>]) -> Arc<Vec<mpsc::UnboundedSender<Cmd>>> {
    Arc::new(
        handles
            .iter()
            .map(|h| match h {
                Some(h) => h.tx.clone(),
                None => mpsc::unbounded_channel().0,
            })
            .collect(),
    )
}

/// How many receipts `sent` should produce (a room message reaches every
/// member of the room, sender included).
pub fn expected_total(plan: &Plan, sent: &Sent, users: usize) -> u64 {
    let per = per_dest(plan, sent, &[]);
    (0..users)
        .filter_map(|u| plan.dest_of(u))
        .map(|d| per[d])
        .sum()
}

fn per_dest(plan: &Plan, sent: &Sent, recvs: &[(usize, Recv)]) -> Vec<u64> {
    let mut per = vec![0u64; plan.dests()];
    for d in &sent.dest {
        per[*d as usize] += 1;
    }
    let range = sent.first_no..sent.first_no + sent.count();
    for (_, r) in recvs {
        for no in r.failed.iter().filter(|n| range.contains(n)) {
            let d = sent.dest[(no - sent.first_no) as usize] as usize;
            per[d] = per[d].saturating_sub(1);
        }
    }
    per
}

/// What arrived of what was sent.
#[derive(Debug)]
pub struct Eval {
    /// Receipts expected (refused sends excluded).
    pub expected: u64,
    /// Distinct expected messages received.
    pub delivered: u64,
    pub lost: u64,
    pub dups: u64,
    pub replayed: u64,
    /// Sends the server refused.
    pub refused: u64,
    pub latency: Histogram<u64>,
    /// Send-to-ack times of the senders.
    pub ack_latency: Histogram<u64>,
}

/// Compares what each user (`(user index, Recv)`) received with what the
/// plan sent it.
pub fn evaluate(plan: &Plan, sent: &Sent, recvs: &[(usize, Recv)]) -> Eval {
    evaluate_some(plan, sent, recvs, |_| true)
}

/// [`evaluate`] counting only the receivers `include` picks (refused sends
/// of every user are still taken off what is expected).
pub fn evaluate_some(
    plan: &Plan,
    sent: &Sent,
    recvs: &[(usize, Recv)],
    include: impl Fn(usize) -> bool,
) -> Eval {
    let per = per_dest(plan, sent, recvs);
    let range = sent.first_no..sent.first_no + sent.count();
    let mut e = Eval {
        expected: 0,
        delivered: 0,
        lost: 0,
        dups: 0,
        replayed: 0,
        refused: 0,
        latency: stats::histogram(),
        ack_latency: stats::histogram(),
    };
    for (user, r) in recvs.iter().filter(|(u, _)| include(*u)) {
        e.refused += r.failed.iter().filter(|n| range.contains(n)).count() as u64;
        e.dups += r.dups;
        e.replayed += r.replayed;
        for l in &r.lat_us {
            stats::record(&mut e.latency, *l as u64);
        }
        for l in &r.ack_lat_us {
            stats::record(&mut e.ack_latency, *l as u64);
        }
        let Some(d) = plan.dest_of(*user) else {
            continue;
        };
        let want = per[d];
        let got = r.got.iter().filter(|n| range.contains(n)).count() as u64;
        e.expected += want;
        e.delivered += got.min(want);
        e.lost += want.saturating_sub(got);
    }
    e
}

/// Takes what every user received since the last take.
pub async fn take_all(handles: &[Option<UserHandle>]) -> Vec<(usize, Recv)> {
    let futs = handles.iter().enumerate().filter_map(|(i, h)| {
        h.as_ref()
            .map(|h| async move { (i, h.take(Duration::from_secs(10)).await) })
    });
    join_all(futs)
        .await
        .into_iter()
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .collect()
}

/// Waits until `delivered` has grown by `want` since `from`, or `max` passed,
/// or nothing arrived for `quiet`. Returns when the last receipt was seen.
pub async fn drain(
    delivered: &AtomicU64,
    from: u64,
    want: u64,
    max: Duration,
    quiet: Duration,
) -> Instant {
    let t0 = Instant::now();
    let mut last = delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while t0.elapsed() < max {
        let now = delivered.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        if now.saturating_sub(from) >= want || last_change.elapsed() >= quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    last_change
}

/// Connect-and-leave cycles: their connect times (TCP to `session`), how
/// many completed, how many failed, and the first failure.
pub struct Cycles {
    pub connect: Histogram<u64>,
    pub ok: u64,
    pub failed: u64,
    pub first_err: Option<String>,
}

impl Default for Cycles {
    fn default() -> Self {
        Cycles {
            connect: stats::histogram(),
            ok: 0,
            failed: 0,
            first_err: None,
        }
    }
}

impl Cycles {
    /// One cycle: connects `st` to `addr` (up to its `session` event), then
    /// leaves (a planned disconnect).
    pub async fn run_one(&mut self, addr: SocketAddr, st: &mut UserState, delivered: &AtomicU64) {
        match client::connect(addr, st, false, delivered, CONNECT_TIMEOUT).await {
            Ok((ws, took)) => {
                stats::record(&mut self.connect, took.as_micros() as u64);
                match client::leave(ws).await {
                    Ok(()) => self.ok += 1,
                    Err(e) => self.fail(e),
                }
            }
            Err(e) => self.fail(e.0),
        }
    }

    fn fail(&mut self, e: String) {
        self.failed += 1;
        self.first_err.get_or_insert(e);
    }

    /// Adds another worker's cycles.
    pub fn merge(&mut self, other: Cycles) {
        self.connect
            .add(&other.connect)
            .expect("same histogram bounds");
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_err.is_none() {
            self.first_err = other.first_err;
        }
    }
}

/// CPU use of a process between two readings, in % of one core.
pub struct CpuMeter {
    pid: Option<u32>,
    server0: Option<f64>,
    bench0: Option<f64>,
    t0: Instant,
}

impl CpuMeter {
    pub fn start(pid: Option<u32>) -> Self {
        CpuMeter {
            pid,
            server0: pid.and_then(|p| stats::cpu_secs(Some(p))),
            bench0: stats::cpu_secs(None),
            t0: Instant::now(),
        }
    }

    /// Adds `<prefix>server cpu` and `<prefix>bench cpu` (% of one core).
    pub fn finish(&self, figs: &mut Figures, prefix: &str) {
        let secs = self.t0.elapsed().as_secs_f64().max(1e-3);
        if let (Some(a), Some(b)) = (
            self.server0,
            self.pid.and_then(|p| stats::cpu_secs(Some(p))),
        ) {
            figs.push(format!("{prefix}server cpu"), "%", (b - a) / secs * 100.0);
        }
        if let (Some(a), Some(b)) = (self.bench0, stats::cpu_secs(None)) {
            figs.push(format!("{prefix}bench cpu"), "%", (b - a) / secs * 100.0);
        }
    }
}

/// Pushes p50/p99/max of a histogram of µs as `<prefix>… ms` figures.
pub fn push_latency(figs: &mut Figures, prefix: &str, h: &Histogram<u64>) {
    let s = stats::summarize(h);
    figs.push(format!("{prefix}p50"), "ms", s.p50_ms);
    figs.push(format!("{prefix}p99"), "ms", s.p99_ms);
    figs.push(format!("{prefix}max"), "ms", s.max_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(got: &[u64], dups: u64, failed: &[u64]) -> Recv {
        Recv {
            got: got.iter().copied().collect(),
            dups,
            lat_us: vec![1000; got.len()],
            failed: failed.to_vec(),
            ..Recv::default()
        }
    }

    #[test]
    fn losses_duplicates_and_refusals_are_counted_per_member() {
        // Two rooms of two users; messages 10..14 alternate rooms 0, 1.
        let plan = Plan::Rooms {
            names: vec![Arc::from("#a"), Arc::from("#b")],
            senders: vec![vec![0], vec![2]],
            room_of: vec![Some(0), Some(0), Some(1), Some(1)],
        };
        let mut sent = Sent {
            first_no: 10,
            dest: Vec::new(),
            secs: 1.0,
        };
        for k in 0..4 {
            let (_, _, d) = plan.pick(k);
            sent.dest.push(d);
        }
        assert_eq!(sent.dest, vec![0, 1, 0, 1]);
        assert_eq!(expected_total(&plan, &sent, 4), 8);
        let recvs = vec![
            // Room 0 got 10 and 12; user 1 missed 12 and got 10 twice.
            (0, recv(&[10, 12], 0, &[])),
            (1, recv(&[10], 1, &[])),
            // Room 1: message 13 was refused by the server, so only 11 is due;
            // a number from another step (99) is not counted.
            (2, recv(&[11, 99], 0, &[13])),
            (3, recv(&[11], 0, &[])),
        ];
        let e = evaluate(&plan, &sent, &recvs);
        assert_eq!(e.expected, 6);
        assert_eq!(e.delivered, 5);
        assert_eq!(e.lost, 1);
        assert_eq!(e.dups, 1);
        assert_eq!(e.refused, 1);
        let only_room_1 = evaluate_some(&plan, &sent, &recvs, |u| u >= 2);
        assert_eq!((only_room_1.expected, only_room_1.lost), (2, 0));
    }

    #[test]
    fn dm_pairs_alternate_direction() {
        let names: Vec<Arc<str>> = ["a", "b", "c", "d"].into_iter().map(Arc::from).collect();
        let plan = Plan::Pairs {
            pairs: vec![(0, 1), (2, 3)],
            names,
        };
        let picks: Vec<(usize, u32)> = (0..4)
            .map(|k| plan.pick(k))
            .map(|(from, _, to)| (from, to))
            .collect();
        assert_eq!(picks, vec![(0, 1), (2, 3), (1, 0), (3, 2)]);
    }
}
