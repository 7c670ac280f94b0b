//! The outbox: own messages shown at once, sent one at a time in order,
//! kept while there is no session, and paced by the server's rate limit: a
//! message refused `rate_limited` (or `unavailable`) goes back to the head
//! of the queue and is sent again after `retryAfterMs`, so no line is lost.

use std::collections::VecDeque;
use std::time::Duration;

use chat_shared::{
    AckError, ChatError, ClientEvent, DEFAULT_MAX_TEXT, DmRequest, ErrorCode, RoomMessageRequest,
    SentAck, TextRequest, check_text, sanitize_for_display,
};

use tokio::time::Instant;

use super::{ConvId, Delivery, Effect, Entry, EntryKind, Request, State};
use crate::msg::NetCommand;

/// The wait after a `rate_limited` or `unavailable` refusal that does not
/// say how long to wait.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where an own message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Room(String),
    Dm(String),
    Global,
    Broadcast,
}

/// The outbox's part of the state.
#[derive(Debug)]
pub(super) struct Outbox {
    /// Own messages not yet sent, oldest first. They go out one at a time,
    /// each after the previous one's ack: the server handles events
    /// concurrently, so two sent back to back may be numbered out of order.
    pub queue: VecDeque<Outgoing>,
    /// The request of the own message on its way, if any.
    pub in_flight: Option<u64>,
    /// Set by a `rate_limited` refusal: nothing goes out before then.
    pub paused_until: Option<Instant>,
    /// Room re-joins after a fresh session: the outbox waits for them, or
    /// its messages could reach a room before I am back in it.
    pub rejoins: usize,
    pub next_local: u64,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            in_flight: None,
            paused_until: None,
            rejoins: 0,
            next_local: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    pub local: u64,
    pub conv: ConvId,
    pub target: Target,
    pub text: String,
    pub action: bool,
    /// (v3) The id of the message it answers.
    pub reply_to: Option<String>,
}

impl State {
    /// Own messages not sent yet, in the order they will go.
    pub fn outbox_len(&self) -> usize {
        self.outbox.queue.len()
    }

    /// Own messages not acknowledged yet: waiting, or on their way.
    pub fn unsent_len(&self) -> usize {
        self.outbox.queue.len() + usize::from(self.outbox.in_flight.is_some())
    }

    /// Own messages waiting for the session to come back (shown as queued).
    pub fn queued_len(&self) -> usize {
        if self.session.live {
            0
        } else {
            self.outbox.queue.len()
        }
    }

    /// When the outbox may send again after a rate-limit refusal.
    pub fn paused_until(&self) -> Option<tokio::time::Instant> {
        self.outbox.paused_until
    }
}

/// Shows an own message at once and sends it, or queues it while there is no
/// session.
pub(super) fn send_text(
    state: &mut State,
    conv: ConvId,
    target: Target,
    text: &str,
    action: bool,
    fx: &mut Vec<Effect>,
) {
    send_message(state, conv, target, text, action, None, fx);
}

/// [`send_text`] of a message that may (v3) answer the message `reply_to`.
pub(super) fn send_message(
    state: &mut State,
    conv: ConvId,
    target: Target,
    text: &str,
    action: bool,
    reply_to: Option<String>,
    fx: &mut Vec<Effect>,
) {
    let text = match check_text(text, DEFAULT_MAX_TEXT) {
        Ok(t) => t.to_owned(),
        Err(e) => {
            state.toast(format!("{}: {e}", e.code()));
            return;
        }
    };
    // (v3) Nothing goes where the server would refuse it for sure: a room
    // I was put out of, a DM to someone I block.
    if let Some(r) = state.removed_from(&conv) {
        let why = r.why.clone();
        let room = conv.label();
        state.toast(format!(
            "you are not in {room} ({why}): /join {room} to go back; nothing sent"
        ));
        return;
    }
    if let Target::Dm(to) = &target
        && state.is_blocked(to)
    {
        state.toast(format!(
            "you block {to}: /unblock {to} to DM them; nothing sent"
        ));
        return;
    }
    // Before the first session nothing is queued: a line typed then (a
    // password typed while no prompt was up, say) must not go out as a
    // message once a login succeeds. The line stays in the input history.
    if !state.session.had_session {
        state.toast("not connected yet: nothing sent (the status bar says why)");
        return;
    }
    let local = state.outbox.next_local;
    state.outbox.next_local += 1;
    let out = Outgoing {
        local,
        conv: conv.clone(),
        target: target.clone(),
        text: text.clone(),
        action,
        reply_to: reply_to.clone(),
    };
    let seq = state.next_seq();
    let entry = Entry {
        id: None,
        ts: state.wall_ms,
        from: state.me.clone(),
        text: sanitize_for_display(&text),
        kind: EntryKind::Own(
            if state.session.live && state.outbox.paused_until.is_none() {
                Delivery::Pending
            } else {
                Delivery::Queued
            },
        ),
        broadcast: target == Target::Broadcast,
        action,
        mention: false,
        local,
        epoch: state.session.epoch,
        seq,
        wrapped: Default::default(),
        changes: super::LineChanges::replying(reply_to),
    };
    let c = state.ensure_conv(&conv);
    c.push(entry);
    c.scroll = 0;
    state.outbox.queue.push_back(out);
    pump(state, fx);
}

/// Sends the next own message if the session is up, nothing is on its way
/// and the server's rate limit allows it.
pub(super) fn pump(state: &mut State, fx: &mut Vec<Effect>) {
    if !state.session.live || state.outbox.in_flight.is_some() || state.outbox.rejoins > 0 {
        return;
    }
    if let Some(until) = state.outbox.paused_until {
        if state.now < until {
            return;
        }
        state.outbox.paused_until = None;
    }
    if let Some(out) = state.outbox.queue.pop_front() {
        set_delivery(state, &out.conv.clone(), out.local, Delivery::Pending);
        let effect = send_outgoing(state, out);
        if let Effect::Net(NetCommand::Request { req, .. }) = &effect {
            state.outbox.in_flight = Some(*req);
        }
        fx.push(effect);
    }
}

fn send_outgoing(state: &mut State, out: Outgoing) -> Effect {
    let ev = event_of(&out);
    state.request(Request::Message(out), ev)
}

/// The request that sends `out`.
fn event_of(out: &Outgoing) -> ClientEvent {
    let text = out.text.clone();
    let action = out.action;
    let reply_to = out.reply_to.clone();
    match &out.target {
        Target::Room(room) => ClientEvent::RoomMessage(RoomMessageRequest {
            room: room.clone(),
            text,
            action,
            reply_to,
        }),
        Target::Dm(to) => ClientEvent::DmMessage(DmRequest {
            to: to.clone(),
            text,
            action,
            reply_to,
        }),
        Target::Global => ClientEvent::GlobalMessage(TextRequest {
            text,
            action,
            reply_to,
        }),
        Target::Broadcast => ClientEvent::BroadcastMessage(TextRequest {
            text,
            action,
            reply_to,
        }),
    }
}

pub(super) fn set_delivery(state: &mut State, conv: &ConvId, local: u64, d: Delivery) {
    if local == 0 {
        return;
    }
    if let Some(c) = state.conv_mut(conv)
        && let Some(e) = c.entries.iter_mut().rev().find(|e| e.local == local)
    {
        e.set_kind(EntryKind::Own(d));
    }
}

/// Sets the delivery of every own line of `conv` whose delivery `pick`s.
pub(super) fn set_delivery_where(
    state: &mut State,
    conv: &ConvId,
    pick: impl Fn(&Delivery) -> bool,
    d: Delivery,
) {
    if let Some(c) = state.conv_mut(conv) {
        for e in c.entries.iter_mut() {
            if matches!(&e.kind, EntryKind::Own(old) if pick(old)) {
                e.set_kind(EntryKind::Own(d.clone()));
            }
        }
    }
}

/// Marks every waiting message as queued (the connection is gone).
pub(super) fn mark_queued(state: &mut State) {
    let waiting: Vec<(ConvId, u64)> = state
        .outbox
        .queue
        .iter()
        .map(|o| (o.conv.clone(), o.local))
        .collect();
    for (conv, local) in waiting {
        set_delivery(state, &conv, local, Delivery::Queued);
    }
}

/// Puts `out` back in the outbox at its place (by local sequence number).
fn requeue(state: &mut State, out: Outgoing) {
    set_delivery(state, &out.conv, out.local, Delivery::Queued);
    let pos = state
        .outbox
        .queue
        .iter()
        .position(|o| o.local > out.local)
        .unwrap_or(state.outbox.queue.len());
    state.outbox.queue.insert(pos, out);
}

/// How long the server asks to wait before trying again, if it is a
/// refusal worth retrying.
pub fn retry_after(err: &ChatError) -> Option<Duration> {
    if !matches!(err.code, ErrorCode::RateLimited | ErrorCode::Unavailable) {
        return None;
    }
    let ms = err
        .context
        .get("retryAfterMs")
        .and_then(serde_json::Value::as_u64);
    Some(ms.map(Duration::from_millis).unwrap_or(DEFAULT_RETRY_AFTER))
}

/// What the ack of an own message does to its line.
pub(super) fn message_acked(state: &mut State, out: Outgoing, result: Result<SentAck, AckError>) {
    match result {
        Ok(sent) => {
            let conv = out.conv.clone();
            let delivery = match (&conv, sent.queued) {
                (ConvId::Dm(to), Some(true)) => Delivery::Held(to.clone()),
                _ => Delivery::Sent,
            };
            let epoch = state.session.epoch;
            let Some(c) = state.conv_mut(&conv) else {
                return;
            };
            // The echo may have arrived first as a line of its own: keep one.
            if c.has_id_in_epoch(&sent.id, epoch)
                && let Some(dup) = c.entries.iter().rposition(|e| {
                    e.id.as_deref() == Some(&sent.id) && e.epoch == epoch && e.local == 0
                })
            {
                c.remove(dup);
            }
            let taken = c.has_id_in_epoch(&sent.id, epoch);
            if let Some(pos) = c.entries.iter().rposition(|e| e.local == out.local)
                && let Some(mut e) = c.remove(pos)
            {
                if e.id.is_none() && !taken {
                    e.id = Some(sent.id);
                    e.ts = sent.ts;
                    e.epoch = epoch;
                }
                e.set_kind(EntryKind::Own(delivery));
                c.insert_ordered(e);
            }
        }
        // The connection went away under it: back in the outbox, in order.
        Err(AckError::NotSent(_)) => requeue(state, out),
        Err(AckError::Refused(err)) if retry_after(&err).is_some() => {
            let wait = retry_after(&err).unwrap_or(DEFAULT_RETRY_AFTER);
            let until = state.now + wait;
            state.outbox.paused_until = Some(
                state
                    .outbox
                    .paused_until
                    .map_or(until, |old| old.max(until)),
            );
            requeue(state, out);
            mark_queued(state);
        }
        Err(e) => {
            // (v3) Told here, where the room or the peer is known (their
            // `chat:error` copy says nothing).
            if let AckError::Refused(err) = &e
                && matches!(err.code, ErrorCode::Muted | ErrorCode::Blocked)
            {
                let text = super::refusals::explain(state, err, Some(&event_of(&out)));
                state.toast(text);
            }
            let code = match e {
                AckError::Refused(err) => err.code.to_string(),
                AckError::Timeout => "timeout".to_owned(),
                AckError::Malformed(_) => "bad_ack".to_owned(),
                AckError::NotSent(_) => "not_sent".to_owned(),
            };
            set_delivery(state, &out.conv, out.local, Delivery::Failed(code));
        }
    }
}
