//! (v3) Which message a command acts on. Alt-Up and Alt-Down move a
//! selection over the open conversation's messages (Esc clears it); the
//! commands that act on a message (`/reply`, `/edit`, `s/old/new/`,
//! `/delete`, `/react`) take the selected one, or else the newest that
//! fits: someone else's for a reply, mine for an edit or a deletion,
//! anyone's for a reaction ([`target`]). Alt-G goes to the message a reply
//! answers: it selects that line, and the pane scrolls to it.
//!
//! Only a message with a server id can be selected or acted on: a line
//! still on its way (or refused) cannot, and neither can a deleted one, a
//! notice, or a hidden line of someone I block.

use super::{ConvId, Conversation, Delivery, Effect, Entry, EntryKind, State, backlog, changes};

/// The selection's part of the state.
#[derive(Debug, Default)]
pub struct Selection {
    /// The `seq` of the selected line of the active conversation.
    pub seq: Option<u64>,
    /// The selection moved since the last draw: the pane scrolls to show
    /// it once (and may be scrolled away after).
    pub reveal: bool,
}

impl Selection {
    pub fn clear(&mut self) {
        self.seq = None;
        self.reveal = false;
    }

    fn select(&mut self, seq: u64) {
        self.seq = Some(seq);
        self.reveal = true;
    }
}

/// What a command asks a message for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// `/reply`: the newest message of someone else.
    Reply,
    /// `/edit`, `s/old/new/`: my newest message; a selected one must be mine.
    Edit,
    /// `/delete`: my newest message (ops may select another's).
    Delete,
    /// `/react`: the newest message, whoever wrote it.
    React,
}

/// The message a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chosen {
    pub conv: ConvId,
    pub pos: usize,
    pub id: String,
    pub from: String,
    /// Its text as shown.
    pub text: String,
    /// It was the selected one (not the newest).
    pub selected: bool,
}

/// Whether line `e` of `c` can be selected and acted on.
fn selectable(state: &State, c: &Conversation, e: &Entry) -> bool {
    e.id.is_some()
        && matches!(e.kind, EntryKind::Chat | EntryKind::Own(_))
        && !e.changes.deleted
        && !state.hides(c, e)
}

impl State {
    /// The selected line of the active conversation, if any.
    pub fn selected(&self) -> Option<&Entry> {
        let seq = self.selection.seq?;
        self.active_conv().entries.iter().find(|e| e.seq == seq)
    }

    /// What the line above the input says while a message is selected.
    pub fn selection_text(&self) -> Option<String> {
        let e = self.selected()?;
        let start = super::change_commands::start_of(&e.text);
        Some(format!(
            "selected {}: {start} · /reply /edit /delete /react act on it · Alt-G: what it answers · Esc clears",
            e.from
        ))
    }
}

/// Alt-Up (`older`) and Alt-Down. Up from nothing selects the newest
/// message; Down past the newest ends the selection. Up at the oldest line
/// loaded asks for older history.
pub(super) fn step(state: &mut State, older: bool, fx: &mut Vec<Effect>) {
    let c = state.active_conv();
    let ok = |e: &Entry| selectable(state, c, e);
    let current = state
        .selection
        .seq
        .and_then(|seq| c.entries.iter().position(|e| e.seq == seq));
    let next = match (current, older) {
        (None, true) => c.entries.iter().rposition(ok),
        (None, false) => None,
        (Some(i), true) => c.entries.iter().take(i).rposition(ok),
        (Some(i), false) => c.entries.iter().skip(i + 1).position(ok).map(|p| p + i + 1),
    };
    let next_seq = next.map(|p| c.entries[p].seq);
    match (next_seq, current, older) {
        (Some(seq), _, _) => state.selection.select(seq),
        // At the oldest loaded message: it stays selected, older ones load.
        (None, Some(_), true) => {
            state.selection.reveal = true;
            backlog::fetch_older(state, fx);
        }
        (None, None, true) => state.toast("no message here to select"),
        (None, _, false) => state.selection.clear(),
    }
}

/// Alt-G: selects the message the selected reply (or else the newest
/// reply) answers, and the pane scrolls to it. Not loaded: older history
/// is asked for, and Alt-G again finds it once it is there.
pub(super) fn go_to_answered(state: &mut State, fx: &mut Vec<Effect>) {
    let c = state.active_conv();
    let reply = match state.selected() {
        Some(e) if e.changes.reply_to.is_some() => Some(e),
        Some(_) => None,
        None => c
            .entries
            .iter()
            .rev()
            .find(|e| e.changes.reply_to.is_some() && !state.hides(c, e)),
    };
    let Some(answered) = reply.and_then(|e| e.changes.reply_to.clone()) else {
        state.toast(if state.selected().is_some() {
            "the selected message is not a reply"
        } else {
            "no reply here to follow"
        });
        return;
    };
    let epoch = state.session.epoch;
    match changes::position(c, &answered, epoch) {
        Some(pos) => {
            let seq = c.entries[pos].seq;
            state.selection.select(seq);
        }
        None if c.backlog == super::Backlog::Complete => {
            state.toast("the message it answers is no longer in the history")
        }
        None => {
            backlog::fetch_older(state, fx);
            state.notice("the message it answers is older than what is loaded: loading older lines (Alt-G again)");
        }
    }
}

/// The message a command acts on: the selected one, or the newest that
/// fits `want`; otherwise what to tell the person.
pub(super) fn target(state: &State, want: Want) -> Result<Chosen, String> {
    let c = state.active_conv();
    let chosen = |pos: usize, selected: bool| {
        let e = &c.entries[pos];
        Chosen {
            conv: c.id.clone(),
            pos,
            id: e.id.clone().unwrap_or_default(),
            from: e.from.clone(),
            text: e.text.clone(),
            selected,
        }
    };
    if let Some(seq) = state.selection.seq
        && let Some(pos) = c.entries.iter().position(|e| e.seq == seq)
    {
        let e = &c.entries[pos];
        if !selectable(state, c, e) {
            return Err("the selected message was deleted: Esc clears the selection".to_owned());
        }
        if want == Want::Edit && !matches!(e.kind, EntryKind::Own(_)) {
            return Err(format!(
                "you can only edit your own messages, and the selected one is {}'s (Esc clears the selection)",
                e.from
            ));
        }
        return Ok(chosen(pos, true));
    }
    for (pos, e) in c.entries.iter().enumerate().rev() {
        if e.changes.deleted || state.hides(c, e) {
            continue;
        }
        let fits = match (&e.kind, want) {
            (EntryKind::System | EntryKind::Own(Delivery::Failed(_)), _) => false,
            (EntryKind::Chat, Want::Reply | Want::React) => true,
            (EntryKind::Chat, Want::Edit | Want::Delete) => false,
            (EntryKind::Own(_), Want::Reply) => false,
            (EntryKind::Own(_), _) => true,
        };
        if !fits {
            continue;
        }
        if e.id.is_none() {
            return Err(match want {
                Want::React => "the newest message is not sent yet: wait for it, then try again",
                _ => "your last message is not sent yet: wait for it, then try again",
            }
            .to_owned());
        }
        return Ok(chosen(pos, false));
    }
    Err(match want {
        Want::Reply => "nothing to reply to: no message of someone else here (Alt-Up selects one)",
        Want::Edit => "you have no message here to edit",
        Want::Delete => "you have no message here to delete",
        Want::React => "no message here to react to",
    }
    .to_owned())
}
