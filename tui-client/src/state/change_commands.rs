//! (v3) What the person asks of a message that was sent: `/reply TEXT`,
//! `/edit TEXT`, `s/old/new/` typed as a line, `/delete` (after a
//! `delete? (y/n)` question) and `/react EMOJI`, each on the selected
//! message or the newest that fits (see [`super::selection`]); the
//! requests they send, and what their answers do.
//!
//! - A reply is an own message like any other (the outbox sends it, in
//!   order), carrying `replyTo`.
//! - An edit, a deletion and a reaction go out at once while connected
//!   (they are not queued: without a connection the person is told to try
//!   again). Their ack applies the change here too, so it shows even where
//!   the server sends this client no `message:update` of its own change;
//!   the update, when it comes, changes nothing more.
//! - `/react` on an emoji I hold already takes it back (`on: false`).
//! - A refusal is told in plain words (see [`super::refusals`]).

use chat_shared::{
    AckError, ClientEvent, DEFAULT_MAX_TEXT, MessageDeleteRequest, MessageEditRequest,
    MessageReactRequest, check_text, is_valid_emoji, sanitize_for_display,
};

use super::actions::active_target;
use super::outbox::send_message;
use super::selection::{Chosen, Want, target};
use super::{Confirm, ConvId, Effect, Request, State, changes};
use crate::msg::AckReply;
use crate::substitution::Substitution;

/// How many characters of a line a question or a hint quotes.
const QUOTED: usize = 40;

/// The start of `text` as a question or a hint quotes it: its first line,
/// cut to [`QUOTED`] characters with `…`.
pub fn start_of(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    let mut out: String = first.chars().take(QUOTED).collect();
    if first.chars().count() > QUOTED || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

fn chosen_or_toast(state: &mut State, want: Want) -> Option<Chosen> {
    match target(state, want) {
        Ok(chosen) => Some(chosen),
        Err(why) => {
            state.toast(why);
            None
        }
    }
}

/// `/reply TEXT`: an own message in the open conversation that answers
/// the chosen one.
pub(super) fn reply(state: &mut State, text: &str, fx: &mut Vec<Effect>) {
    let Some(chosen) = chosen_or_toast(state, Want::Reply) else {
        return;
    };
    let to = active_target(state);
    state.selection.clear();
    send_message(state, chosen.conv, to, text, false, Some(chosen.id), fx);
}

/// `/edit TEXT`.
pub(super) fn edit(state: &mut State, text: &str, fx: &mut Vec<Effect>) {
    if let Some(chosen) = chosen_or_toast(state, Want::Edit) {
        send_edit(state, chosen, text, fx);
    }
}

/// `s/old/new/[g]`: the edit that makes that substitution in the chosen
/// message; a substitution that finds nothing says so.
pub(super) fn substitute(state: &mut State, sub: &Substitution, fx: &mut Vec<Effect>) {
    let Some(chosen) = chosen_or_toast(state, Want::Edit) else {
        return;
    };
    let whose = if chosen.selected {
        "the selected message"
    } else {
        "your last message"
    };
    match sub.apply(&chosen.text) {
        None => state.toast(format!(
            "{}: {:?} is not in {whose} (nothing changed)",
            sub.shown(),
            sub.old
        )),
        Some(new) if new.trim().is_empty() => {
            state.toast("that would leave the message empty: /delete removes it")
        }
        Some(new) => send_edit(state, chosen, &new, fx),
    }
}

fn send_edit(state: &mut State, chosen: Chosen, text: &str, fx: &mut Vec<Effect>) {
    let text = match check_text(text, DEFAULT_MAX_TEXT) {
        Ok(t) => t.to_owned(),
        Err(e) => {
            state.toast(format!("{}: {e}", e.code()));
            return;
        }
    };
    if sanitize_for_display(&text) == chosen.text {
        state.toast("that is its text already: nothing to change");
        return;
    }
    // The line typed (`/edit …`, `s/old/new/`) may hold what a later
    // deletion must take out of the input history.
    if let Some(typed) = state.editor.history.last().cloned()
        && let Some(e) = state
            .conv_mut(&chosen.conv)
            .and_then(|c| c.entries.get_mut(chosen.pos))
    {
        e.changes.typed(&typed);
    }
    let event = ClientEvent::MessageEdit(MessageEditRequest {
        id: chosen.id,
        text,
    });
    send(state, chosen.conv, event, fx);
}

/// `/delete`: asks first, quoting the line.
pub(super) fn delete(state: &mut State) {
    let Some(chosen) = chosen_or_toast(state, Want::Delete) else {
        return;
    };
    state.confirm = Some(Confirm::Delete {
        conv: chosen.conv,
        id: chosen.id,
        quoted: format!("{}: {}", chosen.from, start_of(&chosen.text)),
    });
}

/// The answer to `delete? (y/n)`.
pub(super) fn delete_answered(
    state: &mut State,
    conv: ConvId,
    id: String,
    yes: bool,
    fx: &mut Vec<Effect>,
) {
    if yes {
        send(
            state,
            conv,
            ClientEvent::MessageDelete(MessageDeleteRequest { id }),
            fx,
        );
    } else {
        state.notice("not deleted");
    }
}

/// `/react EMOJI` (or a short name, `:+1:`): on, or off when I hold it.
pub(super) fn react(state: &mut State, word: &str, fx: &mut Vec<Effect>) {
    let word = word.trim();
    let emoji = crate::emoji::resolve(word);
    let unknown_name = emoji.len() > 2 && emoji.starts_with(':') && emoji.ends_with(':');
    if unknown_name || !is_valid_emoji(&emoji) || sanitize_for_display(&emoji) != emoji {
        state.toast(format!(
            "{} is not an emoji this client knows: type or paste the emoji, or a name with Tab (:+1: :heart: :tada: :eyes: …)",
            sanitize_for_display(word)
        ));
        return;
    }
    let Some(chosen) = chosen_or_toast(state, Want::React) else {
        return;
    };
    let held = state
        .conv(&chosen.conv)
        .and_then(|c| c.entries.get(chosen.pos))
        .and_then(|e| e.changes.reaction(&emoji))
        .is_some_and(|r| r.holds(&state.me));
    let event = ClientEvent::MessageReact(MessageReactRequest {
        id: chosen.id,
        emoji,
        on: !held,
    });
    send(state, chosen.conv, event, fx);
}

fn send(state: &mut State, conv: ConvId, event: ClientEvent, fx: &mut Vec<Effect>) {
    if !state.session.live {
        state.toast("not connected: try again once connected (nothing was changed)");
        return;
    }
    state.selection.clear();
    let fx_event = event.clone();
    fx.push(state.request(Request::Change { conv, event }, fx_event));
}

/// What the answer to an edit, a deletion or a reaction does: done, the
/// change shows here at once; refused, the person is told why.
pub(super) fn answered(
    state: &mut State,
    conv: ConvId,
    event: ClientEvent,
    result: Result<AckReply, AckError>,
) {
    let what = match &event {
        ClientEvent::MessageEdit(_) => "the edit",
        ClientEvent::MessageDelete(_) => "the deletion",
        _ => "the reaction",
    };
    let change = match result {
        Ok(AckReply::Sent(ack)) => Some(ack.id),
        Ok(_) => None,
        Err(AckError::Refused(e)) => {
            let text = super::refusals::explain(state, &e, Some(&event));
            state.toast(text);
            return;
        }
        Err(AckError::Timeout) => {
            state.toast(format!(
                "no answer from the server: {what} may not have been made"
            ));
            return;
        }
        Err(e) => {
            state.toast(format!("{what} was not made: {e}"));
            return;
        }
    };
    let epoch = state.session.epoch;
    let target = match &event {
        ClientEvent::MessageEdit(r) => &r.id,
        ClientEvent::MessageDelete(r) => &r.id,
        ClientEvent::MessageReact(r) => &r.id,
        _ => return,
    };
    let Some(pos) = state
        .conv(&conv)
        .and_then(|c| changes::position(c, target, epoch))
    else {
        return;
    };
    match &event {
        ClientEvent::MessageEdit(r) => changes::edit(state, &conv, pos, &r.text, change.as_deref()),
        ClientEvent::MessageDelete(_) => changes::erase(state, &conv, pos),
        ClientEvent::MessageReact(r) => {
            let me = state.me.clone();
            changes::react(state, &conv, pos, &r.emoji, &me, r.on);
        }
        _ => {}
    }
}
