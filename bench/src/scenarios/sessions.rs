//! Scenario 9, several clients per account (contract v3): what a second
//! and a third session of every account cost in deliveries, and what the
//! read markers cost at connect. chat-server only: the Node peer has no
//! accounts, sessions or read markers (the scenario is not run against it,
//! and the report says so).
//!
//! 1. **Deliveries.** `--sessions-accounts` accounts register (a password
//!    each, as in the login scenario) and join rooms of
//!    `--sessions-room-size`. Then, for each count of
//!    `--sessions-per-account` in turn (1, 2, 3), every account logs in
//!    again with its password until it has that many sessions (each new
//!    one must start in the account's room, without joining), and two
//!    steps of `--step-secs` run: room messages at `--sessions-room-rate`
//!    messages/s, and DMs at `--sessions-dm-rate` messages/s between the
//!    accounts of each pair (2p, 2p+1), both ways in turn. Each message is
//!    sent from the sender's sessions in turn. Every session of a room's
//!    members must receive each room message once (the sending session
//!    included); a DM must reach every session of its recipient and every
//!    session of its sender except the one that sent it. Per count and
//!    step: messages/s, deliveries/s, delivery latency, lost, duplicated
//!    and unexpected deliveries, server CPU; then each count against the
//!    first (ratios).
//! 2. **Connect time with read markers.** One account joins `--markers-rooms`
//!    rooms in which guests send `--markers-room-messages` messages each,
//!    and `--markers-dms` guests send it `--markers-dm-messages` DMs each;
//!    it marks every other room (half its messages read) and every other
//!    conversation (the first DM read). Then it and a plain account (no
//!    room, no conversation) connect `--markers-reconnects` times each, in
//!    turn: once with a password login each time (an Argon2id hash in
//!    every connect) and once resuming with the session token after a
//!    dropped socket (no hash). Connect time is TCP connect to `session`;
//!    the loaded account minus the plain one is what its markers cost.
//!    Every `session.markers` is checked: one entry per room and
//!    conversation, with the expected marker and unread count. It runs
//!    after part 1, on the same server, so the store also holds part 1's
//!    messages (`--sessions-per-account 0` skips part 1).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_shared::{Conversation, SessionInfo};
use futures_util::future::join_all;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::login::password;
use super::{
    ACK_TIMEOUT, CONNECT_TIMEOUT, CpuMeter, Ctx, Plan, Sent, Spec, bring_up, drain, failures,
    leave_all, pace, push_latency, senders, take_all,
};
use crate::client::{self, Recv, UserHandle, UserState, Ws};
use crate::report::Figures;
use crate::stats;

/// What the report says about a target that is not measured.
pub const PEER_NOTE: &str = "the Node peer is not run (its column is empty): it has no \
     accounts, no sessions per account and no read markers";

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    let Some(stored) = deliveries(ctx, &mut figs).await else {
        return figs;
    };
    if ctx.cfg.markers_reconnects > 0
        && let Err(e) = markers(ctx, stored, &mut figs).await
    {
        eprintln!("sessions: markers: {e}");
        figs.push("markers: setup failed", "n", 1.0);
    }
    figs
}

// ------------------------------------------------------------ deliveries

/// `1 session per account`, `2 sessions per account`.
fn per_account(k: usize) -> String {
    format!("{k} session{} per account", if k == 1 { "" } else { "s" })
}

/// Who should receive a message: the live sessions of a room's members,
/// or of a DM's two accounts.
enum Fan<'a> {
    /// `members[room]`: the sessions in each room.
    Rooms(&'a [Vec<usize>]),
    /// `sessions[account]`, and `account_of[session]`.
    Dms {
        sessions: &'a [Vec<usize>],
        account_of: &'a [usize],
    },
}

impl Fan<'_> {
    /// The sessions that should receive a message that session `who` sent
    /// to `d` (a room, or a session of the recipient account), into `out`.
    fn receivers(&self, who: usize, d: usize, out: &mut Vec<usize>) {
        out.clear();
        match self {
            Fan::Rooms(members) => out.extend_from_slice(&members[d]),
            Fan::Dms {
                sessions,
                account_of,
            } => {
                out.extend_from_slice(&sessions[account_of[d]]);
                out.extend(
                    sessions[account_of[who]]
                        .iter()
                        .copied()
                        .filter(|&s| s != who),
                );
            }
        }
    }

    /// Receipts `sent` should make.
    fn expected(&self, plan: &Plan, sent: &Sent) -> u64 {
        let mut buf = Vec::new();
        (0..sent.count())
            .map(|k| {
                let (who, _, d) = plan.pick(k);
                self.receivers(who, d as usize, &mut buf);
                buf.len() as u64
            })
            .sum()
    }
}

/// What arrived of what was sent, receipt by receipt.
#[derive(Debug)]
struct Check {
    /// Receipts expected (refused sends excluded).
    expected: u64,
    /// Expected receipts that arrived.
    delivered: u64,
    lost: u64,
    dups: u64,
    /// Receipts of this step's messages by a session that should not have
    /// had them.
    unexpected: u64,
    /// Sends the server refused.
    refused: u64,
    latency: Histogram<u64>,
    ack_latency: Histogram<u64>,
}

/// Checks each session's receipts (`(session, Recv)`) against the
/// receivers `fan` gives each message of `sent`.
fn check(plan: &Plan, fan: &Fan, sent: &Sent, recvs: &[(usize, Recv)], sessions: usize) -> Check {
    let range = sent.first_no..sent.first_no + sent.count();
    let mut c = Check {
        expected: 0,
        delivered: 0,
        lost: 0,
        dups: 0,
        unexpected: 0,
        refused: 0,
        latency: stats::histogram(),
        ack_latency: stats::histogram(),
    };
    let mut got: Vec<Option<&Recv>> = vec![None; sessions];
    let mut refused = HashSet::new();
    for (s, r) in recvs {
        got[*s] = Some(r);
        refused.extend(r.failed.iter().copied().filter(|n| range.contains(n)));
        c.dups += r.dups;
        for l in &r.lat_us {
            stats::record(&mut c.latency, *l as u64);
        }
        for l in &r.ack_lat_us {
            stats::record(&mut c.ack_latency, *l as u64);
        }
    }
    c.refused = refused.len() as u64;
    let mut hit = vec![0u64; sessions];
    let mut buf = Vec::new();
    for k in 0..sent.count() {
        let no = sent.first_no + k;
        if refused.contains(&no) {
            continue;
        }
        let (who, _, d) = plan.pick(k);
        fan.receivers(who, d as usize, &mut buf);
        for &s in &buf {
            c.expected += 1;
            if got[s].is_some_and(|r| r.got.contains(&no)) {
                hit[s] += 1;
                c.delivered += 1;
            } else {
                c.lost += 1;
            }
        }
    }
    for (s, r) in recvs {
        let in_range = r.got.iter().filter(|n| range.contains(n)).count() as u64;
        c.unexpected += in_range.saturating_sub(hit[*s]);
    }
    c
}

/// The figures of one step that the ratios compare.
#[derive(Debug, Clone, Copy)]
struct StepFigs {
    deliveries: f64,
    p99: f64,
    server_cpu: Option<f64>,
}

/// One step: paces `plan` at `rate` messages/s for `--step-secs`, drains,
/// checks every receipt and pushes the figures under `prefix`.
#[allow(clippy::too_many_arguments)]
async fn step(
    ctx: &Ctx<'_>,
    handles: &[Option<UserHandle>],
    plan: Plan,
    fan: &Fan<'_>,
    rate: f64,
    next_no: &mut u64,
    delivered: &Arc<AtomicU64>,
    figs: &mut Figures,
    prefix: &str,
) -> StepFigs {
    let plan = Arc::new(plan);
    take_all(handles).await;
    let d0 = delivered.load(Ordering::Relaxed);
    let cpu = CpuMeter::start(ctx.pid);
    let t0 = Instant::now();
    let sent = pace(
        senders(handles),
        plan.clone(),
        rate,
        ctx.cfg.step_secs,
        *next_no,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    cpu.finish(figs, prefix);
    *next_no += sent.count();
    let want = fan.expected(&plan, &sent);
    let last = drain(
        delivered,
        d0,
        want,
        Duration::from_secs(10),
        Duration::from_secs(3),
    )
    .await;
    let recvs = take_all(handles).await;
    let c = check(&plan, fan, &sent, &recvs, handles.len());
    // As in the ladders: distinct deliveries over the time from the first
    // send to the last receipt.
    let secs = last
        .duration_since(t0)
        .as_secs_f64()
        .max(sent.secs)
        .max(1e-3);
    let deliveries = c.delivered as f64 / secs;
    let p99 = stats::summarize(&c.latency).p99_ms;
    figs.push(
        format!("{prefix}messages/s"),
        "msg/s",
        sent.count().saturating_sub(c.refused) as f64 / sent.secs.max(1e-3),
    );
    figs.push(format!("{prefix}deliveries/s"), "n/s", deliveries);
    figs.push(
        format!("{prefix}deliveries per message"),
        "n",
        c.expected as f64 / sent.count().saturating_sub(c.refused).max(1) as f64,
    );
    push_latency(figs, prefix, &c.latency);
    let ack = stats::summarize(&c.ack_latency);
    figs.push(format!("{prefix}ack p99"), "ms", ack.p99_ms);
    figs.push(format!("{prefix}lost"), "n", c.lost as f64);
    figs.push(format!("{prefix}duplicates"), "n", c.dups as f64);
    figs.push(format!("{prefix}unexpected"), "n", c.unexpected as f64);
    if c.refused > 0 {
        figs.push(format!("{prefix}refused sends"), "msgs", c.refused as f64);
    }
    eprintln!(
        "  {prefix}{deliveries:.0} deliveries/s p99 {p99:.2} ms expected {} lost {} dups {} unexpected {}",
        c.expected, c.lost, c.dups, c.unexpected
    );
    StepFigs {
        deliveries,
        p99,
        server_cpu: figs.get(&format!("{prefix}server cpu")),
    }
}

/// Part 1. Returns how many messages it sent (they stay in the store), or
/// `None` when the target has no accounts (then nothing more is run).
async fn deliveries(ctx: &Ctx<'_>, figs: &mut Figures) -> Option<u64> {
    let cfg = ctx.cfg;
    let size = cfg.sessions_room_size.max(1);
    let rooms = (cfg.sessions_accounts / size).max(1);
    let accounts = rooms * size;
    let names: Vec<Arc<str>> = (0..accounts)
        .map(|a| Arc::from(format!("{}s{a}", ctx.tag)))
        .collect();
    let room_names: Vec<Arc<str>> = (0..rooms)
        .map(|r| Arc::from(format!("#{}sr{r}", ctx.tag)))
        .collect();
    let mut counts: Vec<usize> = cfg
        .sessions_per_account
        .iter()
        .copied()
        .filter(|&k| k >= 1)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.is_empty() {
        return Some(0);
    }
    figs.push("accounts", "n", accounts as f64);
    let delivered = Arc::new(AtomicU64::new(0));
    // Session `s` is `handles[s]`, of account `account_of[s]`.
    let mut handles: Vec<Option<UserHandle>> = Vec::new();
    let mut account_of: Vec<usize> = Vec::new();
    let mut registered = vec![false; accounts];
    let mut have = 0;
    let mut next_no = 0u64;
    let dm_label = format!("{} DM pairs", accounts / 2);
    let room_label = format!("rooms of {size}");
    let mut results: Vec<(usize, Option<StepFigs>, Option<StepFigs>)> = Vec::new();
    for &k in &counts {
        let label = per_account(k);
        let mut failed = 0;
        let mut not_in_room = 0;
        let t0 = Instant::now();
        while have < k {
            let round = have;
            let who: Vec<usize> = (0..accounts)
                .filter(|&a| round == 0 || registered[a])
                .collect();
            let specs = who
                .iter()
                .map(|&a| {
                    let mut state = UserState::new(names[a].to_string());
                    state.password = Some(password(a));
                    state.register = round == 0;
                    Spec {
                        state,
                        room: (round == 0).then(|| room_names[a / size].clone()),
                        resume: false,
                    }
                })
                .collect();
            // As many password checks in flight as the login scenario's
            // workers: each is an Argon2id hash, queued on the server.
            let ups = bring_up(
                &ctx.addrs(),
                specs,
                cfg.login_workers,
                1,
                &delivered,
                ctx.deadline(),
            )
            .await;
            let (n, first) = failures(&ups);
            if n > 0 {
                eprintln!(
                    "sessions: {n} of {} {} failed, first: {}",
                    ups.len(),
                    if round == 0 {
                        "registrations"
                    } else {
                        "logins"
                    },
                    first.unwrap_or_default()
                );
            }
            failed += n;
            if round == 0 && n == ups.len() {
                figs.push(format!("{label}: logins failed"), "n", n as f64);
                return None;
            }
            // A server before v3 (or the Node peer behind --url) takes the
            // registrations as guests: its `session` has no role.
            if round == 0
                && !ups
                    .iter()
                    .any(|u| u.info.as_ref().is_some_and(|i| i.role.is_some()))
            {
                eprintln!(
                    "sessions: the target's `session` has no role: no accounts, not measured"
                );
                figs.push("not measured: the target has no accounts", "n", 1.0);
                leave_all(ups.into_iter().filter_map(|u| u.handle).collect()).await;
                return None;
            }
            for (&a, up) in who.iter().zip(ups) {
                if round == 0 {
                    registered[a] = up.handle.is_some();
                } else if up.handle.is_some()
                    && !up.info.as_ref().is_some_and(|i| {
                        i.rooms
                            .iter()
                            .any(|r| r.as_str() == room_names[a / size].as_ref())
                    })
                {
                    not_in_room += 1;
                }
                handles.push(up.handle);
                account_of.push(a);
            }
            have += 1;
        }
        let live: Vec<usize> = (0..handles.len())
            .filter(|&s| handles[s].is_some())
            .collect();
        figs.push(format!("{label}: sessions up"), "n", live.len() as f64);
        figs.push(format!("{label}: logins failed"), "n", failed as f64);
        figs.push(
            format!("{label}: new sessions not in their account's room"),
            "n",
            not_in_room as f64,
        );
        eprintln!(
            "sessions: {label}: {} sessions up ({:.1} s for the new ones)",
            live.len(),
            t0.elapsed().as_secs_f64()
        );
        let mut sessions_of = vec![Vec::new(); accounts];
        for &s in &live {
            sessions_of[account_of[s]].push(s);
        }

        // Room messages, from each member's sessions in turn.
        let members: Vec<Vec<usize>> = (0..rooms)
            .map(|r| {
                (r * size..(r + 1) * size)
                    .flat_map(|a| sessions_of[a].iter().copied())
                    .collect()
            })
            .collect();
        let room_step = if members.iter().any(Vec::is_empty) {
            eprintln!("sessions: a room has no session; no room step");
            None
        } else {
            let plan = Plan::Rooms {
                names: room_names.clone(),
                senders: members.clone(),
                room_of: (0..handles.len())
                    .map(|s| handles[s].as_ref().map(|_| (account_of[s] / size) as u32))
                    .collect(),
            };
            let prefix = format!(
                "{label}, {room_label} at {:.0} msgs/s: ",
                cfg.sessions_room_rate
            );
            Some(
                step(
                    ctx,
                    &handles,
                    plan,
                    &Fan::Rooms(&members),
                    cfg.sessions_room_rate,
                    &mut next_no,
                    &delivered,
                    figs,
                    &prefix,
                )
                .await,
            )
        };

        // DMs: a pair of sessions per pair of accounts and per session
        // count, so that every session sends in turn; a DM goes to the
        // other account (the plan's `names` are by session).
        let mut pairs = Vec::new();
        for j in 0..k {
            for p in 0..accounts / 2 {
                let (a, b) = (&sessions_of[2 * p], &sessions_of[2 * p + 1]);
                if !a.is_empty() && !b.is_empty() {
                    pairs.push((a[j % a.len()], b[j % b.len()]));
                }
            }
        }
        let dm_step = if pairs.is_empty() {
            eprintln!("sessions: no pair of accounts is up; no DM step");
            None
        } else {
            let plan = Plan::Pairs {
                pairs,
                names: account_of.iter().map(|&a| names[a].clone()).collect(),
            };
            let prefix = format!(
                "{label}, {dm_label} at {:.0} msgs/s: ",
                cfg.sessions_dm_rate
            );
            let fan = Fan::Dms {
                sessions: &sessions_of,
                account_of: &account_of,
            };
            Some(
                step(
                    ctx,
                    &handles,
                    plan,
                    &fan,
                    cfg.sessions_dm_rate,
                    &mut next_no,
                    &delivered,
                    figs,
                    &prefix,
                )
                .await,
            )
        };
        results.push((k, room_step, dm_step));
    }
    leave_all(handles.into_iter().flatten().collect()).await;

    // Each count against the first.
    if let Some(&(base, base_rooms, base_dms)) = results.first() {
        for &(k, rooms_k, dms_k) in &results[1..] {
            for (what, b, x) in [
                (&room_label, base_rooms, rooms_k),
                (&dm_label, base_dms, dms_k),
            ] {
                let (Some(b), Some(x)) = (b, x) else {
                    continue;
                };
                let prefix = format!("{what}: {} / {}: ", per_account(k), per_account(base));
                figs.push(
                    format!("{prefix}deliveries/s"),
                    "x",
                    x.deliveries / b.deliveries.max(1e-9),
                );
                figs.push(format!("{prefix}p99"), "x", x.p99 / b.p99.max(1e-9));
                if let (Some(cb), Some(cx)) = (b.server_cpu, x.server_cpu) {
                    figs.push(format!("{prefix}server cpu"), "x", cx / cb.max(1e-9));
                    figs.push(
                        format!("{prefix}server cpu per delivery"),
                        "x",
                        (cx / x.deliveries.max(1e-9)) / (cb / b.deliveries.max(1e-9)).max(1e-12),
                    );
                }
            }
        }
    }
    Some(next_no)
}

// --------------------------------------------------------------- markers

type Res<T> = Result<T, String>;

/// Sends `event` and waits for its ack; retries while the server answers
/// `rate_limited` (the per-socket limit of requests: the setup sends more
/// than its burst from one socket). Returns the ack's object.
async fn ask(
    ws: &mut Ws,
    st: &mut UserState,
    event: &str,
    payload: &Value,
    delivered: &AtomicU64,
) -> Res<Value> {
    for _ in 0..200 {
        let args = client::request(ws, st, event, payload, delivered, ACK_TIMEOUT)
            .await
            .map_err(|e| e.0)?;
        let ack = serde_json::from_str::<Value>(&args)
            .ok()
            .and_then(|v| v.get(0).cloned())
            .unwrap_or(Value::Null);
        if ack["ok"] == Value::Bool(true) {
            return Ok(ack);
        }
        let error = &ack["error"];
        if error["code"] != "rate_limited" {
            return Err(format!("{event} {payload}: {args}"));
        }
        let wait = error["context"]["retryAfterMs"].as_u64().unwrap_or(250);
        tokio::time::sleep(Duration::from_millis(wait.clamp(10, 5000))).await;
    }
    Err(format!("{event}: still rate_limited"))
}

/// The `id` of a message's ack.
fn ack_id(ack: &Value) -> Res<String> {
    ack["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("an ack without id: {ack}"))
}

/// A user's state: an account (`password` set) or a guest.
fn user(name: &str, password: Option<String>, register: bool) -> UserState {
    let mut st = UserState::new(name);
    st.password = password;
    st.register = register;
    st
}

async fn open(addr: SocketAddr, st: &mut UserState, resume: bool) -> Res<(Ws, Duration)> {
    client::connect(addr, st, resume, &AtomicU64::new(0), CONNECT_TIMEOUT)
        .await
        .map_err(|e| format!("{}: {e}", st.username))
}

/// Where a marker sits, as compared: rooms and usernames case-folded.
fn key(at: &Conversation) -> (bool, String) {
    match at {
        Conversation::Room(r) => (true, r.to_lowercase()),
        Conversation::With(u) => (false, u.to_lowercase()),
    }
}

/// What `session.markers` should say: per room or conversation, the
/// marker's id and the unread count.
type Expected = BTreeMap<(bool, String), (Option<String>, u64)>;

/// Checks `session.markers` against `want`; the first difference.
fn verify(info: &SessionInfo, want: &Expected) -> Res<()> {
    let mut seen = HashSet::new();
    for m in &info.markers {
        let k = key(&m.at);
        let Some((id, unread)) = want.get(&k) else {
            return Err(format!("an entry for {:?} that should not be there", m.at));
        };
        if m.id != *id || m.unread != *unread {
            return Err(format!(
                "{} entries (want {}); {:?}: id {:?} unread {}, want id {:?} unread {}",
                info.markers.len(),
                want.len(),
                m.at,
                m.id,
                m.unread,
                id,
                unread
            ));
        }
        seen.insert(k);
    }
    if seen.len() != want.len() || info.markers.len() != want.len() {
        let missing = want.keys().find(|k| !seen.contains(*k));
        return Err(format!(
            "{} entries, want {} (first missing: {missing:?})",
            info.markers.len(),
            want.len()
        ));
    }
    Ok(())
}

/// The loaded account's rooms and conversations, and what its markers
/// should say.
struct Loaded {
    rooms: usize,
    conversations: usize,
    messages: u64,
    want: Expected,
    /// The newest message id of the setup (the offset its resumes send).
    newest: Option<String>,
    /// `missed` of the login after the DMs: the DMs kept while it was away.
    replayed: u64,
}

/// Rooms one guest sends to (it may be in at most 50).
const ROOMS_PER_GUEST: usize = 10;
/// Guests sending DMs at once.
const DM_GUESTS_AT_ONCE: usize = 20;
/// From dropping the measured sockets to resuming them, about a stock
/// client's reconnection delay: the server has seen the close and finished
/// with the last connect, so a resume measures itself. (With 50 ms, on the
/// memory store with 37 600 messages, the loaded account's resumes took
/// twice as long as the hash-free part of its logins.)
const RESUME_GAP: Duration = Duration::from_millis(500);

/// Sets up the loaded account `name` (password `pw`): its rooms, the
/// guests' messages and DMs, and its markers.
async fn load(ctx: &Ctx<'_>, name: &str, pw: &str) -> Res<Loaded> {
    let cfg = ctx.cfg;
    let addr = ctx.addr;
    let tag = &ctx.tag;
    let delivered = AtomicU64::new(0);
    let room = |r: usize| format!("#{tag}mr{r}");

    // Its rooms (it leaves: it stays a member while away).
    let mut st = user(name, Some(pw.to_owned()), true);
    let (mut ws, _) = open(addr, &mut st, false).await?;
    let mut joined = Vec::new();
    for r in 0..cfg.markers_rooms {
        match ask(
            &mut ws,
            &mut st,
            "room:join",
            &json!({ "room": room(r) }),
            &delivered,
        )
        .await
        {
            Ok(_) => joined.push(r),
            Err(e) => eprintln!("sessions: markers: {e}"),
        }
    }
    let _ = client::leave(ws).await;

    // Guests talk in those rooms, ROOMS_PER_GUEST rooms each.
    let per_room = cfg.markers_room_messages;
    let talk = joined.chunks(ROOMS_PER_GUEST).enumerate().map(|(g, mine)| {
        let name = format!("{tag}mg{g}");
        let mine = mine.to_vec();
        async move {
            let delivered = AtomicU64::new(0);
            let mut st = user(&name, None, false);
            let (mut ws, _) = open(addr, &mut st, false).await?;
            let mut ids = Vec::new();
            for &r in &mine {
                ask(
                    &mut ws,
                    &mut st,
                    "room:join",
                    &json!({ "room": room(r) }),
                    &delivered,
                )
                .await?;
                let mut these = Vec::with_capacity(per_room);
                for i in 0..per_room {
                    let body = json!({ "room": room(r), "text": format!("unread {i}") });
                    let ack = ask(&mut ws, &mut st, "room:message", &body, &delivered).await?;
                    these.push(ack_id(&ack)?);
                }
                ids.push((r, these));
            }
            let _ = client::leave(ws).await;
            Res::Ok(ids)
        }
    });
    let mut room_ids: Vec<(usize, Vec<String>)> = Vec::new();
    for r in join_all(talk).await {
        room_ids.extend(r?);
    }
    room_ids.sort_by_key(|(r, _)| *r);

    // Guests send it DMs while it is away (kept for it).
    let per_dm = cfg.markers_dm_messages.max(1);
    let sem = Arc::new(Semaphore::new(DM_GUESTS_AT_ONCE));
    let dms = (0..cfg.markers_dms).map(|g| {
        let sem = sem.clone();
        let guest = format!("{tag}md{g}");
        async move {
            let _turn = sem.acquire().await.map_err(|e| e.to_string())?;
            let delivered = AtomicU64::new(0);
            let mut st = user(&guest, None, false);
            let (mut ws, _) = open(addr, &mut st, false).await?;
            let mut ids = Vec::with_capacity(per_dm);
            for i in 0..per_dm {
                let body = json!({ "to": name, "text": format!("unread dm {i}") });
                let ack = ask(&mut ws, &mut st, "dm:message", &body, &delivered).await?;
                ids.push(ack_id(&ack)?);
            }
            let _ = client::leave(ws).await;
            Res::Ok((guest, ids))
        }
    });
    let mut dm_ids: Vec<(String, Vec<String>)> = Vec::new();
    for r in join_all(dms).await {
        dm_ids.push(r?);
    }

    // It logs in (the kept DMs are replayed), marks every other room at
    // its middle message and every other conversation at its first DM,
    // and leaves.
    let mut st = user(name, Some(pw.to_owned()), false);
    let (mut ws, _) = open(addr, &mut st, false).await?;
    let replayed = st.info.as_ref().map_or(0, |i| i.missed);
    let mut want = Expected::new();
    for (i, (r, ids)) in room_ids.iter().enumerate() {
        let read = if i % 2 == 0 { ids.len() / 2 } else { 0 };
        let mut id = None;
        if read > 0 {
            let body = json!({ "room": room(*r), "id": ids[read - 1] });
            id = Some(ack_id(
                &ask(&mut ws, &mut st, "read:mark", &body, &delivered).await?,
            )?);
        }
        want.insert(
            key(&Conversation::Room(room(*r))),
            (id, (ids.len() - read) as u64),
        );
    }
    for (i, (guest, ids)) in dm_ids.iter().enumerate() {
        let read = if i % 2 == 0 { 1 } else { 0 };
        let mut id = None;
        if read > 0 {
            let body = json!({ "with": guest, "id": ids[read - 1] });
            id = Some(ack_id(
                &ask(&mut ws, &mut st, "read:mark", &body, &delivered).await?,
            )?);
        }
        want.insert(
            key(&Conversation::With(guest.clone())),
            (id, (ids.len() - read) as u64),
        );
    }
    let _ = client::leave(ws).await;
    let newest = room_ids
        .iter()
        .flat_map(|(_, ids)| ids)
        .chain(dm_ids.iter().flat_map(|(_, ids)| ids))
        .filter_map(|id| id.parse::<u64>().ok())
        .max()
        .map(|id| id.to_string());
    Ok(Loaded {
        rooms: room_ids.len(),
        conversations: dm_ids.len(),
        messages: (room_ids.len() * per_room + dm_ids.len() * per_dm) as u64,
        want,
        newest,
        replayed,
    })
}

/// The connects of one account, measured.
struct Measured {
    login: Histogram<u64>,
    resume: Histogram<u64>,
    failed: u64,
    wrong: u64,
    first_wrong: Option<String>,
    not_recovered: u64,
    missed: u64,
    entries: usize,
}

impl Measured {
    fn new() -> Self {
        Measured {
            login: stats::histogram(),
            resume: stats::histogram(),
            failed: 0,
            wrong: 0,
            first_wrong: None,
            not_recovered: 0,
            missed: 0,
            entries: 0,
        }
    }

    /// Records one connect of `st` that took `took`, checked against `want`.
    fn connected(&mut self, st: &UserState, took: Duration, resume: bool, want: &Expected) {
        let h = if resume {
            &mut self.resume
        } else {
            &mut self.login
        };
        stats::record(h, took.as_micros() as u64);
        let Some(info) = &st.info else {
            return;
        };
        self.missed += info.missed;
        self.entries = info.markers.len();
        if resume && !info.recovered {
            self.not_recovered += 1;
        }
        if let Err(e) = verify(info, want) {
            self.wrong += 1;
            self.first_wrong.get_or_insert(e);
        }
    }

    fn fail(&mut self, e: String) {
        self.failed += 1;
        self.first_wrong.get_or_insert(e);
    }
}

/// Part 2: the loaded account and a plain one, connected in turn.
async fn markers(ctx: &Ctx<'_>, stored_before: u64, figs: &mut Figures) -> Res<()> {
    let cfg = ctx.cfg;
    let addr = ctx.addr;
    let loaded_name = format!("{}mk", ctx.tag);
    let plain_name = format!("{}mp", ctx.tag);
    let pw = password(0);
    let t0 = Instant::now();
    let loaded = load(ctx, &loaded_name, &pw).await?;
    let mut st = user(&plain_name, Some(pw.clone()), true);
    let (ws, _) = open(addr, &mut st, false).await?;
    let _ = client::leave(ws).await;
    eprintln!(
        "sessions: markers: {} rooms, {} conversations, {} messages set up in {:.1} s",
        loaded.rooms,
        loaded.conversations,
        loaded.messages,
        t0.elapsed().as_secs_f64()
    );
    figs.push(
        "markers: rooms of the loaded account",
        "n",
        loaded.rooms as f64,
    );
    figs.push(
        "markers: DM conversations of the loaded account",
        "n",
        loaded.conversations as f64,
    );
    figs.push(
        "markers: messages this scenario stored before the reconnects",
        "n",
        (stored_before + loaded.messages) as f64,
    );
    figs.push(
        "markers: DMs replayed at the loaded account's first login after them",
        "n",
        loaded.replayed as f64,
    );
    figs.push("markers: entries expected", "n", loaded.want.len() as f64);
    let none = Expected::new();
    let who = [
        (&plain_name, &none, None),
        (&loaded_name, &loaded.want, loaded.newest.clone()),
    ];
    let mut measured = [Measured::new(), Measured::new()];
    let n = cfg.markers_reconnects;

    // A password login each time, and a planned disconnect.
    for _ in 0..n {
        for ((name, want, _), m) in who.iter().zip(measured.iter_mut()) {
            let mut st = user(name, Some(pw.clone()), false);
            match open(addr, &mut st, false).await {
                Ok((ws, took)) => {
                    m.connected(&st, took, false, want);
                    let _ = client::leave(ws).await;
                }
                Err(e) => m.fail(e),
            }
        }
    }

    // One login, then resumes with its token after a dropped socket (the
    // session waits in its recovery window).
    let mut live: Vec<Option<(Option<Ws>, UserState)>> = Vec::new();
    for ((name, _, newest), m) in who.iter().zip(measured.iter_mut()) {
        let mut st = user(name, Some(pw.clone()), false);
        match open(addr, &mut st, false).await {
            Ok((ws, _)) => {
                st.password = None;
                st.last_id = newest.clone();
                live.push(Some((Some(ws), st)));
            }
            Err(e) => {
                m.fail(e);
                live.push(None);
            }
        }
    }
    for _ in 0..n {
        // Dropped without a word: an unplanned disconnect.
        for (ws, _) in live.iter_mut().flatten() {
            drop(ws.take());
        }
        tokio::time::sleep(RESUME_GAP).await;
        for ((slot, (_, want, _)), m) in live.iter_mut().zip(&who).zip(measured.iter_mut()) {
            let Some((ws, st)) = slot else {
                continue;
            };
            match open(addr, st, true).await {
                Ok((new, took)) => {
                    m.connected(st, took, true, want);
                    *ws = Some(new);
                }
                Err(e) => {
                    m.fail(e);
                    *slot = None;
                }
            }
        }
    }
    for (ws, _) in live.into_iter().flatten() {
        if let Some(ws) = ws {
            let _ = client::leave(ws).await;
        }
    }

    let [plain, full] = &measured;
    let loaded_label = format!(
        "loaded account ({} rooms, {} conversations)",
        loaded.rooms, loaded.conversations
    );
    for (mode, resume) in [
        ("password login (an Argon2id hash each)", false),
        ("session-token resume (no hash)", true),
    ] {
        let pick = |m: &Measured| {
            if resume {
                m.resume.clone()
            } else {
                m.login.clone()
            }
        };
        let (p, l) = (pick(plain), pick(full));
        push_latency(figs, &format!("plain account, {mode}: connect "), &p);
        push_latency(figs, &format!("{loaded_label}, {mode}: connect "), &l);
        let (sp, sl) = (stats::summarize(&p), stats::summarize(&l));
        figs.push(
            format!("markers' cost, {mode}: p50 loaded - plain"),
            "ms",
            sl.p50_ms - sp.p50_ms,
        );
        figs.push(
            format!("markers' cost, {mode}: p99 loaded - plain"),
            "ms",
            sl.p99_ms - sp.p99_ms,
        );
    }
    for (label, m) in [("plain account", plain), (loaded_label.as_str(), full)] {
        figs.push(format!("{label}: markers entries"), "n", m.entries as f64);
        figs.push(
            format!("{label}: connects with wrong markers"),
            "n",
            m.wrong as f64,
        );
        figs.push(format!("{label}: connects failed"), "n", m.failed as f64);
        figs.push(
            format!("{label}: resumes not recovered"),
            "n",
            m.not_recovered as f64,
        );
        figs.push(
            format!("{label}: missed (replayed) at the measured connects"),
            "n",
            m.missed as f64,
        );
        if let Some(e) = &m.first_wrong {
            eprintln!(
                "sessions: markers: {label}: {} wrong, {} failed; first: {e}",
                m.wrong, m.failed
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(got: &[u64], dups: u64) -> Recv {
        Recv {
            got: got.iter().copied().collect(),
            dups,
            lat_us: vec![1000; got.len()],
            ..Recv::default()
        }
    }

    /// Sessions 0..4: accounts a (0, 2) and b (1, 3), pair (a, b).
    fn two_accounts() -> (Vec<Vec<usize>>, Vec<usize>, Plan) {
        let sessions = vec![vec![0, 2], vec![1, 3]];
        let account_of = vec![0, 1, 0, 1];
        let plan = Plan::Pairs {
            pairs: vec![(0, 1), (2, 3)],
            names: ["a", "b", "a", "b"].into_iter().map(Arc::from).collect(),
        };
        (sessions, account_of, plan)
    }

    fn sent(n: u64) -> Sent {
        Sent {
            first_no: 100,
            dest: vec![0; n as usize],
            secs: 1.0,
        }
    }

    #[test]
    fn a_dm_is_due_to_every_recipient_session_and_the_senders_other_sessions() {
        let (sessions, account_of, plan) = two_accounts();
        let fan = Fan::Dms {
            sessions: &sessions,
            account_of: &account_of,
        };
        // Messages 100..104: 0→b, 2→b, 1→a, 3→a (pairs in turn, then the
        // other way).
        let picks: Vec<usize> = (0..4).map(|k| plan.pick(k).0).collect();
        assert_eq!(picks, vec![0, 2, 1, 3]);
        let sent = sent(4);
        assert_eq!(fan.expected(&plan, &sent), 4 * 3);
        let recvs = vec![
            // Session 0 (a): 101 (its other session 2 sent it), 102, 103.
            (0, recv(&[101, 102, 103], 0)),
            // Session 2 (a): 100 from session 0, 102, 103; and 101, which
            // it sent itself: unexpected.
            (2, recv(&[100, 101, 102, 103], 0)),
            // Session 1 (b): 100, 101, 103 (from 3), and 100 once more.
            (1, recv(&[100, 101, 103], 1)),
            // Session 3 (b): 100, 101; 102 from session 1 lost.
            (3, recv(&[100, 101], 0)),
        ];
        let c = check(&plan, &fan, &sent, &recvs, 4);
        assert_eq!(c.expected, 12);
        assert_eq!(c.delivered, 11);
        assert_eq!(c.lost, 1);
        assert_eq!(c.dups, 1);
        assert_eq!(c.unexpected, 1);
    }

    #[test]
    fn a_room_message_is_due_once_to_every_session_of_its_members() {
        // Room 0: sessions 0, 1, 2; room 1: session 3.
        let members = vec![vec![0, 1, 2], vec![3]];
        let plan = Plan::Rooms {
            names: vec![Arc::from("#a"), Arc::from("#b")],
            senders: members.clone(),
            room_of: vec![Some(0), Some(0), Some(0), Some(1)],
        };
        let fan = Fan::Rooms(&members);
        // 100 → #a (from 0), 101 → #b (from 3).
        let sent = sent(2);
        assert_eq!(fan.expected(&plan, &sent), 4);
        let mut refused = recv(&[100], 0);
        refused.failed = vec![101];
        let recvs = vec![
            (0, recv(&[100], 0)),
            (1, recv(&[100, 101], 0)),
            (2, recv(&[], 0)),
            (3, refused),
        ];
        let c = check(&plan, &fan, &sent, &recvs, 4);
        // 101 was refused: only 100 is due, to 0, 1 and 2.
        assert_eq!(c.refused, 1);
        assert_eq!((c.expected, c.delivered, c.lost), (3, 2, 1));
        // 1 got the refused 101, 3 got 100 of another room.
        assert_eq!(c.unexpected, 2);
    }

    #[test]
    fn markers_are_compared_entry_by_entry() {
        let mut want = Expected::new();
        want.insert(key(&Conversation::Room("#R".into())), (Some("7".into()), 3));
        want.insert(key(&Conversation::With("Bob".into())), (None, 2));
        let info = |markers: serde_json::Value| -> SessionInfo {
            serde_json::from_value(json!({
                "sid": "s", "username": "u", "session": "t", "recovered": false,
                "rooms": [], "missed": 0, "truncated": false, "markers": markers,
            }))
            .unwrap()
        };
        let right = info(json!([
            {"room": "#r", "id": "7", "unread": 3},
            {"with": "bob", "id": null, "unread": 2},
        ]));
        assert_eq!(verify(&right, &want), Ok(()));
        let wrong_count = info(json!([
            {"room": "#r", "id": "7", "unread": 0},
            {"with": "bob", "id": null, "unread": 2},
        ]));
        assert!(verify(&wrong_count, &want).is_err());
        let missing = info(json!([{"room": "#r", "id": "7", "unread": 3}]));
        assert!(verify(&missing, &want).is_err());
        let extra = info(json!([
            {"room": "#r", "id": "7", "unread": 3},
            {"with": "bob", "id": null, "unread": 2},
            {"with": "carol", "id": null, "unread": 1},
        ]));
        assert!(verify(&extra, &want).is_err());
    }
}
