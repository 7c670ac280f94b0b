//! Scenario 10, messages that change (contract v3: `message:edit`,
//! `message:delete`, `message:react`, delivered as `message:update`, folded
//! into `history`). chat-server only: the Node peer implements none of it
//! (the scenario is not run against it, and the report says so).
//!
//! 1. **Traffic with changes.** `--changes-users` users in rooms of
//!    `--changes-room-size`; a ladder of offered deliveries per second
//!    (`--changes-rates`; a message or a change to a room of M members is
//!    M deliveries). Each step runs twice (each mix first at every other
//!    rate): with plain room messages only, and with `--changes-share` per
//!    cent of the sends being changes, half of them edits (a user edits
//!    its own newest acked message; the new text carries the send time)
//!    and half reactions (a user takes back the reaction it holds, or else
//!    reacts to the newest message it received). A change must reach every member of its room
//!    once, its maker included; its latency is its send time to each
//!    `message:update`, matched by the change's id from the ack. Per step
//!    and mix: deliveries/s (messages and changes), latency of messages and
//!    of changes, lost, duplicated and unexpected, server CPU; each mix
//!    stops at its first step not sustained (as the fan-out ladder) and
//!    reports its best sustained rate.
//! 2. **History pages of a changed room.** A room of eight members in
//!    which four authors store `--changes-history-messages` messages,
//!    pipelined, every ack awaited. `history` pages of each
//!    `--changes-history-limits` are timed (`--changes-history-requests`
//!    each, one at a time, spread over the members so that none passes the
//!    server's default request rate), at the newest end and deep in the
//!    room (`before` a message of the older half); then the authors edit
//!    `--changes-history-edited` per cent of the messages and delete
//!    `--changes-history-deleted` per cent, other members react to
//!    `--changes-history-reacted` per cent, and the same pages are timed
//!    again. Every page read is checked against what was done to each of
//!    its messages (edited, deleted, reactions).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::ladder::{SUSTAINED_P99_MS, SUSTAINED_SHARE, step_label};
use super::{
    ACK_TIMEOUT, CpuMeter, Ctx, Failed, Plan, Sent, Spec, bring_up_reported, drain, evaluate,
    expected_total, leave_all, push_latency, senders, take_all,
};
use crate::client::{Answered, ChangeKind, Cmd, Dest, REACTIONS, Recv, UserHandle, UserState};
use crate::report::Figures;
use crate::stats;

/// What the report says about a target that is not measured.
pub const PEER_NOTE: &str = "the Node peer is not run (its column is empty): it has no \
     edits, deletions or reactions";

pub async fn run(ctx: &Ctx<'_>) -> Figures {
    let mut figs = Figures::default();
    if ctx.cfg.changes_users > 0 && ctx.cfg.changes_rates.iter().any(|r| *r > 0.0) {
        ladders(ctx, &mut figs).await;
    }
    if ctx.cfg.changes_history_messages > 0 {
        history(ctx, &mut figs).await;
    }
    figs
}

// ------------------------------------------------------------ the ladders

/// Change numbers start here, apart from message numbers.
const CHANGE_BASE: u64 = 1 << 40;

/// An edit changes the message its maker sent this many of the room's
/// messages earlier, so that its ack is most likely back.
const EDIT_LAG: u64 = 10;

/// The ladder's label for a mix: `rooms of 1000, plain` or `rooms of
/// 1000, 10 % changes`.
pub fn label(size: usize, share: f64) -> String {
    if share > 0.0 {
        format!("rooms of {size}, {share} % changes")
    } else {
        format!("rooms of {size}, plain")
    }
}

/// The users of the ladders: rooms and their live members.
struct Rooms {
    names: Vec<Arc<str>>,
    /// The live members of each room (user indices).
    members: Vec<Vec<usize>>,
    /// The room of each live user.
    room_of: Vec<Option<u32>>,
}

/// One mix of the ladder and where it stands.
struct Mix {
    label: String,
    /// Per cent of the sends that are changes.
    share: f64,
    /// Sends so far (the rotation of senders goes on across steps).
    slot: u64,
    next_msg: u64,
    next_change: u64,
    best: Option<(f64, f64)>,
    max_rate: f64,
    stopped: bool,
}

/// Changes among the first `n` sends of a room.
fn changes_before(n: u64, share: f64) -> u64 {
    (n as f64 * share / 100.0).floor() as u64
}

/// What send `n` of a room is, and who makes it: a message from the
/// room's members in turn, or a change (edits and reactions alternating)
/// by the maker of a recent message (an edit) or by another member (a
/// reaction). Returns (member index, `None` for a message or the change's
/// kind).
fn pick(n: u64, share: f64, members: u64) -> (u64, Option<ChangeKind>) {
    let c = changes_before(n, share);
    let m = n - c;
    if changes_before(n + 1, share) == c {
        return (m % members, None);
    }
    if c.is_multiple_of(2) {
        (m.saturating_sub(EDIT_LAG) % members, Some(ChangeKind::Edit))
    } else {
        ((m + members / 2) % members, Some(ChangeKind::React))
    }
}

/// What one step sent.
struct MixSent {
    msgs: Sent,
    changes: Sent,
    secs: f64,
}

/// Sends at `rate` per second for `secs`: slot by slot, over the rooms in
/// turn, each room's sends as [`pick`] says.
async fn pace_mix(
    tx: &[mpsc::UnboundedSender<Cmd>],
    rooms: &Rooms,
    mix: &mut Mix,
    rate: f64,
    secs: f64,
) -> MixSent {
    let total = (rate * secs).ceil() as u64;
    let mut out = MixSent {
        msgs: Sent {
            first_no: mix.next_msg,
            ..Sent::default()
        },
        changes: Sent {
            first_no: mix.next_change,
            ..Sent::default()
        },
        secs: 0.0,
    };
    let r = rooms.names.len() as u64;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut k = 0u64;
    while k < total && start.elapsed().as_secs_f64() < secs + 5.0 {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
        while k < due {
            let slot = mix.slot + k;
            let room = (slot % r) as usize;
            let members = &rooms.members[room];
            let (who, kind) = pick(slot / r, mix.share, members.len() as u64);
            let who = members[who as usize];
            match kind {
                None => {
                    let no = out.msgs.first_no + out.msgs.count();
                    let dest = Dest::Room(rooms.names[room].clone());
                    let _ = tx[who].send(Cmd::Send { dest, no });
                    out.msgs.dest.push(room as u32);
                }
                Some(kind) => {
                    let no = out.changes.first_no + out.changes.count();
                    let _ = tx[who].send(Cmd::Change { kind, no });
                    out.changes.dest.push(room as u32);
                }
            }
            k += 1;
        }
    }
    out.secs = start.elapsed().as_secs_f64();
    mix.slot += k;
    mix.next_msg += out.msgs.count();
    mix.next_change += out.changes.count();
    out
}

/// What arrived of the changes a step made.
#[derive(Debug)]
struct ChangeEval {
    /// Receipts due: every member of the room of every acked change.
    expected: u64,
    delivered: u64,
    lost: u64,
    dups: u64,
    /// Updates of an id no change of the step was acked with, or that
    /// reached a user outside the change's room.
    unexpected: u64,
    /// Changes refused by the server (or with nothing to change yet).
    refused: u64,
    /// Changes with no ack by the end of the step.
    unacked: u64,
    edits_as_reactions: u64,
    latency: Histogram<u64>,
}

/// Matches every `message:update` received (`(user, Recv)`) with the
/// change its id was acked for.
fn evaluate_changes(
    changes: &Sent,
    room_of: &[Option<u32>],
    recvs: &[(usize, Recv)],
) -> ChangeEval {
    let range = changes.first_no..changes.first_no + changes.count();
    let mut e = ChangeEval {
        expected: 0,
        delivered: 0,
        lost: 0,
        dups: 0,
        unexpected: 0,
        refused: 0,
        unacked: 0,
        edits_as_reactions: 0,
        latency: stats::histogram(),
    };
    // Change id → (room, send time).
    let mut acked: HashMap<u64, (u32, u64)> = HashMap::new();
    let mut per_room = vec![
        0u64;
        room_of
            .iter()
            .flatten()
            .max()
            .map_or(0, |m| *m as usize + 1)
    ];
    for (_, r) in recvs {
        for &(no, id, sent) in r.changes_acked.iter().filter(|c| range.contains(&c.0)) {
            let room = changes.dest[(no - changes.first_no) as usize];
            acked.insert(id, (room, sent));
            if let Some(n) = per_room.get_mut(room as usize) {
                *n += 1;
            }
        }
        e.refused += r
            .changes_failed
            .iter()
            .filter(|n| range.contains(n))
            .count() as u64;
        e.edits_as_reactions += r.edits_as_reactions;
    }
    e.unacked = changes
        .count()
        .saturating_sub(acked.len() as u64 + e.refused);
    for (user, r) in recvs {
        e.dups += r.update_dups;
        let Some(room) = room_of.get(*user).copied().flatten() else {
            e.unexpected += r.updates.len() as u64;
            continue;
        };
        let due = per_room.get(room as usize).copied().unwrap_or(0);
        let mut got = 0;
        for (id, at) in &r.updates {
            match acked.get(id) {
                Some(&(to, sent)) if to == room => {
                    got += 1;
                    stats::record(&mut e.latency, at.saturating_sub(sent));
                }
                _ => e.unexpected += 1,
            }
        }
        e.expected += due;
        e.delivered += got.min(due);
        e.lost += due.saturating_sub(got);
    }
    e
}

/// Brings the users up in their rooms and runs both mixes over the rates,
/// a step of each in turn.
async fn ladders(ctx: &Ctx<'_>, figs: &mut Figures) {
    let cfg = ctx.cfg;
    let size = cfg.changes_room_size.max(1);
    let rooms = (cfg.changes_users / size).max(1);
    let users = rooms * size;
    let names: Vec<Arc<str>> = (0..rooms)
        .map(|r| Arc::from(format!("#{}c{size}r{r}", ctx.tag)))
        .collect();
    let specs = (0..users)
        .map(|i| Spec {
            state: UserState::new(format!("{}c{size}u{i}", ctx.tag)),
            room: Some(names[i / size].clone()),
            resume: false,
        })
        .collect();
    let delivered = Arc::new(AtomicU64::new(0));
    figs.push(format!("rooms of {size}: users"), "n", users as f64);
    let failed = Failed {
        who: "changes",
        what: "users failed to come up",
        metric: Some(format!("rooms of {size}: failed connects")),
    };
    let ups = bring_up_reported(ctx, specs, 2, &delivered, figs, failed).await;
    let handles: Vec<_> = ups.into_iter().map(|u| u.handle).collect();
    let members: Vec<Vec<usize>> = (0..rooms)
        .map(|r| {
            (r * size..(r + 1) * size)
                .filter(|i| handles[*i].is_some())
                .collect()
        })
        .collect();
    if members.iter().any(Vec::is_empty) {
        eprintln!("changes: a room has no member, ladders skipped");
        leave_all(handles.into_iter().flatten().collect()).await;
        return;
    }
    let room_of = (0..users)
        .map(|i| handles[i].as_ref().map(|_| (i / size) as u32))
        .collect();
    let rooms = Rooms {
        names,
        members,
        room_of,
    };
    let plan = Plan::Rooms {
        names: rooms.names.clone(),
        senders: rooms.members.clone(),
        room_of: rooms.room_of.clone(),
    };
    let tx = senders(&handles);
    let mut mixes = [0.0, cfg.changes_share.clamp(0.0, 100.0)].map(|share| Mix {
        label: label(size, share),
        share,
        slot: 0,
        next_msg: 0,
        next_change: CHANGE_BASE,
        best: None,
        max_rate: 0.0,
        stopped: false,
    });
    for (i, &offered) in cfg.changes_rates.iter().filter(|r| **r > 0.0).enumerate() {
        // Each mix goes first at every other rate: the first step after a
        // rise meets what the previous rate left behind.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for m in order {
            let mix = &mut mixes[m];
            if mix.stopped {
                continue;
            }
            let sustained = step(
                ctx,
                &handles,
                &tx,
                &rooms,
                &plan,
                mix,
                offered,
                size as f64,
                &delivered,
                figs,
            )
            .await;
            if !sustained && !cfg.full_ladder {
                mix.stopped = true;
            }
        }
    }
    for mix in &mixes {
        let label = &mix.label;
        figs.push(
            format!("{label} highest delivered rate of the ladder"),
            "msg/s",
            mix.max_rate,
        );
        if let Some((offered, rate)) = mix.best {
            figs.push(format!("{label} best sustained offered"), "msg/s", offered);
            figs.push(format!("{label} best sustained delivered"), "msg/s", rate);
        }
    }
    compare(&mixes, figs);
    leave_all(handles.into_iter().flatten().collect()).await;
}

/// The mixes side by side: best sustained rates, and both p99s at the
/// plain mix's best sustained step.
fn compare(mixes: &[Mix; 2], figs: &mut Figures) {
    let [plain, changed] = mixes;
    if let (Some((_, a)), Some((_, b))) = (plain.best, changed.best) {
        figs.push(
            format!("best sustained delivered, {} / plain", changed.label),
            "x",
            b / a.max(1e-9),
        );
    }
    let Some((rate, _)) = plain.best else { return };
    let at = |mix: &Mix, what: &str| figs.get(&format!("{}{what}", step_label(&mix.label, rate)));
    let rows = [
        (format!("{}, messages", plain.label), at(plain, "p99")),
        (format!("{}, messages", changed.label), at(changed, "p99")),
        (
            format!("{}, changes", changed.label),
            at(changed, "changes p99"),
        ),
    ];
    for (what, value) in rows {
        if let Some(v) = value {
            figs.push(
                format!("p99 at the plain mix's best sustained rate ({rate:.0}/s): {what}"),
                "ms",
                v,
            );
        }
    }
}

/// One step of one mix; whether it was sustained.
#[allow(clippy::too_many_arguments)]
async fn step(
    ctx: &Ctx<'_>,
    handles: &[Option<UserHandle>],
    tx: &Arc<Vec<mpsc::UnboundedSender<Cmd>>>,
    rooms: &Rooms,
    plan: &Plan,
    mix: &mut Mix,
    offered: f64,
    fan: f64,
    delivered: &Arc<AtomicU64>,
    figs: &mut Figures,
) -> bool {
    let prefix = step_label(&mix.label, offered);
    take_all(handles).await;
    let d0 = delivered.load(Ordering::Relaxed);
    let cpu = CpuMeter::start(ctx.pid);
    let t0 = Instant::now();
    let sent = pace_mix(tx, rooms, mix, offered / fan, ctx.cfg.step_secs).await;
    cpu.finish(figs, &prefix);
    let change_receipts: u64 = sent
        .changes
        .dest
        .iter()
        .map(|r| rooms.members[*r as usize].len() as u64)
        .sum();
    let want = expected_total(plan, &sent.msgs, handles.len()) + change_receipts;
    let last = drain(
        delivered,
        d0,
        want,
        Duration::from_secs(10),
        Duration::from_secs(3),
    )
    .await;
    let recvs = take_all(handles).await;
    let e = evaluate(plan, &sent.msgs, &recvs);
    let c = evaluate_changes(&sent.changes, &rooms.room_of, &recvs);
    let secs = last
        .duration_since(t0)
        .as_secs_f64()
        .max(sent.secs)
        .max(1e-3);
    let rate = (e.delivered + c.delivered) as f64 / secs;
    let send_secs = sent.secs.max(1e-3);
    figs.push(
        format!("{prefix}sent messages/s"),
        "msg/s",
        sent.msgs.count() as f64 / send_secs,
    );
    if mix.share > 0.0 {
        figs.push(
            format!("{prefix}sent changes/s"),
            "msg/s",
            sent.changes.count() as f64 / send_secs,
        );
    }
    figs.push(format!("{prefix}delivered/s"), "msg/s", rate);
    push_latency(figs, &prefix, &e.latency);
    figs.push(format!("{prefix}lost"), "msgs", e.lost as f64);
    figs.push(format!("{prefix}duplicates"), "msgs", e.dups as f64);
    if e.refused > 0 {
        figs.push(format!("{prefix}refused sends"), "msgs", e.refused as f64);
    }
    let p99 = stats::summarize(&e.latency).p99_ms;
    let mut changes_p99 = 0.0;
    if mix.share > 0.0 {
        push_latency(figs, &format!("{prefix}changes "), &c.latency);
        changes_p99 = stats::summarize(&c.latency).p99_ms;
        figs.push(
            format!("{prefix}changes delivered/s"),
            "msg/s",
            c.delivered as f64 / secs,
        );
        figs.push(format!("{prefix}changes lost"), "msgs", c.lost as f64);
        figs.push(format!("{prefix}changes duplicated"), "msgs", c.dups as f64);
        figs.push(
            format!("{prefix}changes unexpected"),
            "msgs",
            c.unexpected as f64,
        );
        for (what, n) in [
            ("changes refused", c.refused),
            ("changes unacked", c.unacked),
            ("edits sent as reactions", c.edits_as_reactions),
        ] {
            if n > 0 {
                figs.push(format!("{prefix}{what}"), "msgs", n as f64);
            }
        }
    }
    let sustained = e.lost == 0
        && e.dups == 0
        && c.lost == 0
        && c.dups == 0
        && c.unexpected == 0
        && rate >= SUSTAINED_SHARE * offered
        && p99.max(changes_p99) <= SUSTAINED_P99_MS;
    eprintln!(
        "  {prefix}delivered {rate:.0}/s p99 {p99:.1} ms (changes {changes_p99:.1} ms) \
         lost {}+{} dups {}+{} expected {}+{} {}",
        e.lost,
        c.lost,
        e.dups,
        c.dups,
        e.expected,
        c.expected,
        if sustained {
            "sustained"
        } else {
            "NOT sustained"
        }
    );
    mix.max_rate = mix.max_rate.max(rate);
    if sustained {
        mix.best = Some((offered, rate));
    }
    sustained
}

// ------------------------------------------------------ the history pages

/// Members of the history room; the first [`AUTHORS`] write its messages,
/// the others react.
const MEMBERS: usize = 8;
const AUTHORS: usize = 4;
/// Requests each author keeps in flight while storing or changing.
const WINDOW: usize = 64;
/// Timed `history` requests go one at a time, to the members in turn,
/// each member at most this many a second: below chat-server's default
/// `--event-rate` (50), so that none is refused.
const PAGES_PER_MEMBER_SEC: f64 = 40.0;
/// What follows the number in a stored message's text: a typical length.
const FILLER: &str = "the build is green again, merging after lunch";

/// What the history part does to message `i` of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fate {
    edited: bool,
    deleted: bool,
    /// Reactions put on it (0, 1 or 2), unless deleted.
    reactions: u8,
}

/// Spreads the shares evenly: over any 100 consecutive messages, each
/// share is exact (37 is prime to 100).
fn fate(i: usize, edited: u32, deleted: u32, reacted: u32) -> Fate {
    let x = ((i * 37) % 100) as u32;
    let edited_ = x < edited;
    let deleted_ = !edited_ && x < edited + deleted;
    let reactions = if deleted_ || x < 100u32.saturating_sub(reacted) {
        0
    } else if i.is_multiple_of(3) {
        2
    } else {
        1
    };
    Fate {
        edited: edited_,
        deleted: deleted_,
        reactions,
    }
}

fn seed_text(i: usize) -> String {
    format!("history seed {i}: {FILLER}")
}

fn edited_text(i: usize) -> String {
    format!("history seed {i}: edited, {FILLER}")
}

/// Sends `requests` through a user's task, `WINDOW` in flight at once;
/// each ack in order (`None` for none in time).
async fn pipelined(
    tx: &mpsc::UnboundedSender<Cmd>,
    requests: Vec<(&'static str, Value)>,
) -> Vec<Option<String>> {
    futures_util::stream::iter(requests)
        .map(|(event, payload)| async move { ask(tx, event, payload).await.map(|a| a.ack) })
        .buffered(WINDOW)
        .collect()
        .await
}

/// One acked request through a user's task.
async fn ask(
    tx: &mpsc::UnboundedSender<Cmd>,
    event: &'static str,
    payload: Value,
) -> Option<Answered> {
    let (reply, rx) = oneshot::channel();
    tx.send(Cmd::Request {
        event,
        payload,
        reply,
    })
    .ok()?;
    tokio::time::timeout(ACK_TIMEOUT, rx).await.ok()?.ok()
}

fn ok(ack: &Option<String>) -> bool {
    ack.as_deref().is_some_and(|a| a.contains("\"ok\":true"))
}

/// Runs each member's requests at once (`per_member[m]`), pipelined;
/// returns the acks in the same shape and the seconds it took.
async fn all_pipelined(
    tx: &[mpsc::UnboundedSender<Cmd>],
    per_member: Vec<Vec<(&'static str, Value)>>,
) -> (Vec<Vec<Option<String>>>, f64) {
    let t0 = Instant::now();
    let acks = join_all(
        per_member
            .into_iter()
            .enumerate()
            .map(|(m, reqs)| pipelined(&tx[m], reqs)),
    )
    .await;
    (acks, t0.elapsed().as_secs_f64())
}

/// The timed pages of one pass: per limit, the newest page and pages deep
/// in the room.
struct Pages<'a> {
    tx: &'a [mpsc::UnboundedSender<Cmd>],
    room: &'a str,
    /// The ids of the stored messages, by message index.
    ids: &'a [String],
    /// Message indices from the oldest to the newest (the authors send
    /// at once, so the server's order is not quite the indices').
    by_age: &'a [usize],
    /// Message index of each id.
    index: &'a HashMap<String, usize>,
    /// What is done to each message.
    fates: &'a [Fate],
    /// Whether it has been done.
    changed: bool,
}

/// What one batch of timed pages found.
#[derive(Default)]
struct PageCheck {
    messages: u64,
    edited: u64,
    deleted: u64,
    reacted: u64,
    /// Messages not shown as they stand (or unknown), short pages,
    /// refused or unanswered requests.
    wrong: u64,
    bytes: u64,
}

impl Pages<'_> {
    /// `requests` timed `history` reads of `limit`, at the newest end or
    /// deep (each `before` a message of the room's older half).
    async fn time(&self, limit: usize, deep: bool, requests: usize) -> (Histogram<u64>, PageCheck) {
        let mut h = stats::histogram();
        let mut check = PageCheck::default();
        let gap = Duration::from_secs_f64(1.0 / (PAGES_PER_MEMBER_SEC * self.tx.len() as f64));
        let n = self.ids.len();
        let deep_span = (n / 2).saturating_sub(limit).max(1);
        let mut next = Instant::now();
        for j in 0..requests {
            tokio::time::sleep_until(next.into()).await;
            next = Instant::now() + gap;
            let mut payload = json!({ "room": self.room, "limit": limit });
            let mut due = limit.min(n);
            if deep {
                // `at` older messages; one never deleted, so that it can
                // be named.
                let mut at = (limit + (j * 7919 + 13) % deep_span).min(n - 1);
                while at > 0 && self.fates[self.by_age[at]].deleted {
                    at -= 1;
                }
                payload["before"] = Value::String(self.ids[self.by_age[at]].clone());
                due = limit.min(at);
            }
            let Some(answer) = ask(&self.tx[j % self.tx.len()], "history", payload).await else {
                check.wrong += 1;
                continue;
            };
            stats::record(&mut h, answer.took.as_micros() as u64);
            check.bytes += answer.ack.len() as u64;
            self.check(&answer.ack, due, &mut check);
        }
        (h, check)
    }

    /// Checks one page against what was done to its messages.
    fn check(&self, ack: &str, due: usize, c: &mut PageCheck) {
        let page: Value = serde_json::from_str(ack).unwrap_or(Value::Null);
        let Some(messages) = page[0]["messages"].as_array() else {
            c.wrong += 1;
            return;
        };
        if messages.len() != due {
            eprintln!(
                "  history: a page of {} messages, {due} due",
                messages.len()
            );
            c.wrong += 1;
        }
        for m in messages {
            c.messages += 1;
            let edited = m.get("edited").is_some_and(|e| !e.is_null());
            let deleted = m["deleted"] == Value::Bool(true);
            let reactions: u64 = m["reactions"]
                .as_array()
                .map_or(0, |r| r.iter().filter_map(|x| x["count"].as_u64()).sum());
            c.edited += u64::from(edited);
            c.deleted += u64::from(deleted);
            c.reacted += u64::from(reactions > 0);
            let Some(&i) = m["id"].as_str().and_then(|id| self.index.get(id)) else {
                eprintln!("  history: an unknown message {m}");
                c.wrong += 1;
                continue;
            };
            let want = if self.changed {
                self.fates[i]
            } else {
                Fate {
                    edited: false,
                    deleted: false,
                    reactions: 0,
                }
            };
            let text = m["text"].as_str();
            let right = if want.deleted {
                deleted && text.is_none()
            } else if want.edited {
                edited && text == Some(edited_text(i).as_str())
            } else {
                !edited && !deleted && text == Some(seed_text(i).as_str())
            } && (want.deleted || reactions == u64::from(want.reactions));
            if !right {
                eprintln!("  history: message {i} shown as {m}, want {want:?}");
                c.wrong += 1;
            }
        }
    }

    /// Times every limit at both ends; figures under `pass`.
    async fn measure(&self, cfg: &crate::Config, pass: &str, figs: &mut Figures) -> PageCheck {
        let mut all = PageCheck::default();
        for &limit in &cfg.changes_history_limits {
            for deep in [false, true] {
                let end = if deep { "deep (before)" } else { "newest" };
                let (h, c) = self.time(limit, deep, cfg.changes_history_requests).await;
                let prefix = format!("history limit {limit}, {end}, {pass}: ");
                push_latency(figs, &prefix, &h);
                let pages = h.len().max(1) as f64;
                figs.push(
                    format!("{prefix}page size"),
                    "KiB",
                    c.bytes as f64 / pages / 1024.0,
                );
                eprintln!(
                    "  {prefix}p50 {:.2} ms p99 {:.2} ms, {} wrong",
                    stats::summarize(&h).p50_ms,
                    stats::summarize(&h).p99_ms,
                    c.wrong
                );
                all.messages += c.messages;
                all.edited += c.edited;
                all.deleted += c.deleted;
                all.reacted += c.reacted;
                all.wrong += c.wrong;
            }
        }
        figs.push(
            format!("history pages {pass}: messages or pages not as they stand"),
            "n",
            all.wrong as f64,
        );
        all
    }
}

/// Stores the room's messages, times pages, changes a share of them, and
/// times the same pages again.
async fn history(ctx: &Ctx<'_>, figs: &mut Figures) {
    let cfg = ctx.cfg;
    let n = cfg.changes_history_messages;
    let room: Arc<str> = Arc::from(format!("#{}hist", ctx.tag));
    let specs = (0..MEMBERS)
        .map(|i| Spec {
            state: UserState::new(format!("{}h{i}", ctx.tag)),
            room: Some(room.clone()),
            resume: false,
        })
        .collect();
    let delivered = Arc::new(AtomicU64::new(0));
    let failed = Failed {
        who: "changes, history",
        what: "members failed to come up",
        metric: Some("history: failed connects".to_owned()),
    };
    let ups = bring_up_reported(ctx, specs, 2, &delivered, figs, failed).await;
    let handles: Vec<Option<UserHandle>> = ups.into_iter().map(|u| u.handle).collect();
    if handles.iter().any(Option::is_none) {
        leave_all(handles.into_iter().flatten().collect()).await;
        return;
    }
    let tx: Vec<_> = handles.iter().flatten().map(|h| h.tx.clone()).collect();

    // The messages, from the authors in turn.
    let mut per_author = vec![Vec::new(); AUTHORS];
    for i in 0..n {
        let payload = json!({ "room": room.as_ref(), "text": seed_text(i) });
        per_author[i % AUTHORS].push(("room:message", payload));
    }
    eprintln!("  history: storing {n} messages");
    let (acks, secs) = all_pipelined(&tx, per_author).await;
    let mut ids = vec![String::new(); n];
    let mut stored = 0u64;
    for (a, acks) in acks.iter().enumerate() {
        for (k, ack) in acks.iter().enumerate() {
            let id = ack
                .as_deref()
                .filter(|_| ok(ack))
                .and_then(|a| crate::proto::str_field(a, "id"));
            if let Some(id) = id {
                ids[k * AUTHORS + a] = id.to_owned();
                stored += 1;
            }
        }
    }
    figs.push("history: messages stored", "msgs", stored as f64);
    figs.push(
        "history: store rate",
        "msg/s",
        stored as f64 / secs.max(1e-3),
    );
    if stored < n as u64 {
        eprintln!(
            "changes, history: {} messages not stored",
            n as u64 - stored
        );
        leave_all(handles.into_iter().flatten().collect()).await;
        return;
    }
    let index: HashMap<String, usize> = ids.iter().cloned().zip(0..).collect();
    let mut by_age: Vec<usize> = (0..n).collect();
    // chat-server's ids are numbers in delivery order: shorter is older.
    by_age.sort_by_key(|&i| (ids[i].len(), ids[i].clone()));
    take_all(&handles).await;
    // What will be done to each message.
    let fates: Vec<Fate> = (0..n)
        .map(|i| {
            fate(
                i,
                cfg.changes_history_edited,
                cfg.changes_history_deleted,
                cfg.changes_history_reacted,
            )
        })
        .collect();
    let mut pages = Pages {
        tx: &tx,
        room: &room,
        ids: &ids,
        by_age: &by_age,
        index: &index,
        fates: &fates,
        changed: false,
    };
    pages.measure(cfg, "before changes", figs).await;

    // The changes: reactions first (from the members that are not
    // authors), then the authors' edits and deletions.
    let mut reacts = vec![Vec::new(); MEMBERS];
    let mut edits = vec![Vec::new(); MEMBERS];
    for (i, f) in fates.iter().enumerate() {
        let emoji = REACTIONS[i % REACTIONS.len()];
        for r in 0..usize::from(f.reactions) {
            let who = AUTHORS + (i + r) % (MEMBERS - AUTHORS);
            let payload = json!({ "id": ids[i], "emoji": emoji, "on": true });
            reacts[who].push(("message:react", payload));
        }
        if f.edited {
            let payload = json!({ "id": ids[i], "text": edited_text(i) });
            edits[i % AUTHORS].push(("message:edit", payload));
        } else if f.deleted {
            edits[i % AUTHORS].push(("message:delete", json!({ "id": ids[i] })));
        }
    }
    let count = |v: &Vec<Vec<(&'static str, Value)>>, event: &str| {
        v.iter().flatten().filter(|(e, _)| *e == event).count() as f64
    };
    figs.push(
        "history: messages edited",
        "msgs",
        count(&edits, "message:edit"),
    );
    figs.push(
        "history: messages deleted",
        "msgs",
        count(&edits, "message:delete"),
    );
    figs.push("history: reactions", "n", count(&reacts, "message:react"));
    eprintln!("  history: changing messages");
    let mut refused = 0;
    let mut changes = 0;
    let mut secs = 0.0;
    for batch in [reacts, edits] {
        let (acks, took) = all_pipelined(&tx, batch).await;
        secs += took;
        changes += acks.iter().flatten().count();
        refused += acks.iter().flatten().filter(|a| !ok(a)).count();
    }
    figs.push(
        "history: change rate",
        "msg/s",
        changes as f64 / secs.max(1e-3),
    );
    figs.push("history: changes refused", "n", refused as f64);
    take_all(&handles).await;
    pages.changed = true;
    let c = pages.measure(cfg, "after changes", figs).await;
    let share = |k: u64| 100.0 * k as f64 / c.messages.max(1) as f64;
    figs.push(
        "history pages after changes: shown edited",
        "%",
        share(c.edited),
    );
    figs.push(
        "history pages after changes: shown deleted",
        "%",
        share(c.deleted),
    );
    figs.push(
        "history pages after changes: shown with reactions",
        "%",
        share(c.reacted),
    );
    let mut ratios = Vec::new();
    for &limit in &cfg.changes_history_limits {
        for end in ["newest", "deep (before)"] {
            for q in ["p50", "p99"] {
                let at =
                    |pass: &str| figs.get(&format!("history limit {limit}, {end}, {pass}: {q}"));
                if let (Some(a), Some(b)) = (at("before changes"), at("after changes")) {
                    ratios.push((
                        format!("history limit {limit}, {end}: {q} after / before changes"),
                        b / a.max(1e-9),
                    ));
                }
            }
        }
    }
    for (metric, ratio) in ratios {
        figs.push(metric, "x", ratio);
    }
    leave_all(handles.into_iter().flatten().collect()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenth_of_the_sends_are_changes_alternating_edits_and_reactions() {
        let picks: Vec<_> = (0..100).map(|n| pick(n, 10.0, 1000)).collect();
        let changes: Vec<_> = picks.iter().filter_map(|p| p.1).collect();
        assert_eq!(changes.len(), 10);
        assert_eq!(
            changes.iter().filter(|k| **k == ChangeKind::Edit).count(),
            5
        );
        // Messages go to the members in turn; an edit is made by the
        // sender of a message EDIT_LAG messages earlier.
        assert_eq!(picks[0], (0, None));
        assert_eq!(picks[8], (8, None));
        assert_eq!(picks[9], (0, Some(ChangeKind::Edit)));
        assert_eq!(picks[10], (9, None));
        assert_eq!(picks[29].1, Some(ChangeKind::Edit));
        assert_eq!(picks[29].0, 27 - EDIT_LAG);
        assert!((0..100).all(|n| pick(n, 0.0, 10).1.is_none()));
    }

    #[test]
    fn fates_have_the_shares_asked_for() {
        let fates: Vec<_> = (0..1000).map(|i| fate(i, 20, 5, 10)).collect();
        let edited = fates.iter().filter(|f| f.edited).count();
        let deleted = fates.iter().filter(|f| f.deleted).count();
        let reacted = fates.iter().filter(|f| f.reactions > 0).count();
        assert_eq!((edited, deleted, reacted), (200, 50, 100));
        assert!(!fates.iter().any(|f| f.edited && f.deleted));
        assert!(!fates.iter().any(|f| f.deleted && f.reactions > 0));
    }

    #[test]
    fn changes_are_matched_by_id_to_their_room() {
        let changes = Sent {
            first_no: CHANGE_BASE,
            dest: vec![0, 1],
            secs: 1.0,
        };
        let room_of = vec![Some(0), Some(0), Some(1)];
        let maker = Recv {
            changes_acked: vec![(CHANGE_BASE, 70, 1_000), (CHANGE_BASE + 1, 71, 1_000)],
            updates: HashMap::from([(70, 3_000)]),
            ..Recv::default()
        };
        // Room 0's member got 70 twice and 71 (another room's change).
        let other = Recv {
            updates: HashMap::from([(70, 5_000), (71, 5_000)]),
            update_dups: 1,
            ..Recv::default()
        };
        // Room 1's member missed 71.
        let third = Recv::default();
        let e = evaluate_changes(&changes, &room_of, &[(0, maker), (1, other), (2, third)]);
        assert_eq!(e.expected, 3);
        assert_eq!(e.delivered, 2);
        assert_eq!(e.lost, 1);
        assert_eq!(e.dups, 1);
        assert_eq!(e.unexpected, 1);
        assert_eq!((e.refused, e.unacked), (0, 0));
        // Sent at 1 ms, received by the other member at 5 ms.
        let max = stats::summarize(&e.latency).max_ms;
        assert!((max - 4.0).abs() < 0.01, "{max}");
    }
}
