//! (v3) Messages that change after they were sent, as this client learns
//! it: what a line answers (`replyTo`), its edits, its deletion and its
//! reactions, kept on each line ([`LineChanges`]).
//!
//! - A `message:update` (live, replayed after a reconnect, or arriving
//!   after history loaded) applies to the line it targets, found by id in
//!   its conversation (the room, the DM, or the feed); an update for a line
//!   this client does not hold is ignored ([`message_update`]).
//! - History pages, a join's history and replays bring messages as they
//!   stand now (`edited`, `deleted`, `reactions` with counts and up to 20
//!   names). A message held already takes that state from them
//!   ([`held`], [`apply_snapshot`]).
//! - An edit replaces the text and marks the line edited; an edit older
//!   than the one shown (by change id) is not applied over it.
//! - A deletion erases the text from everything the client keeps: the line
//!   (which then reads "[deleted]"), its reactions, the search's matches,
//!   the input history's lines that hold it, a question about it
//!   ([`erase`]). Nothing of it is written anywhere: the client keeps no
//!   file of messages, and its debug log never holds payloads. A deleted
//!   line takes no edit or reaction after.
//! - A reaction adds or removes one user in that emoji's set; the count
//!   shown is the set's size (plus, from history, the holders the server
//!   counted without naming them).

use chat_shared::{
    MessageUpdate, Reaction, canonical_room, is_valid_emoji, is_valid_username,
    sanitize_for_display, username_key,
};

use super::conversations::mentions;
use super::{Confirm, ConvId, Conversation, EntryKind, State, search};
use crate::msg::id_order;

/// What happened to a line since it was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineChanges {
    /// The id of the message it answers.
    pub reply_to: Option<String>,
    /// Its text was edited (the text shown is the last edit).
    pub edited: bool,
    /// Deleted: the text is gone (empty), and so are its reactions.
    pub deleted: bool,
    /// Its reactions, in the order their emoji first came.
    pub reactions: Vec<ReactionSet>,
    /// The change id of the edit shown, when known: an older edit that
    /// arrives after it is not applied over it.
    last_edit: Option<String>,
    /// What this client typed that holds versions of this line: the
    /// earlier texts of a line of mine, and the `/edit` or `s/old/new/`
    /// lines that changed it. They are in the input history anyway; kept
    /// here so that a deletion takes them out of it too.
    typed: Vec<String>,
}

/// One emoji's reactions to a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionSet {
    pub emoji: String,
    /// Who holds it, as far as this client knows, in the order they came.
    pub users: Vec<String>,
    /// Holders the server counted but did not name (history names at most
    /// 20 a reaction).
    pub unnamed: u64,
}

impl ReactionSet {
    /// How many hold it.
    pub fn count(&self) -> u64 {
        self.users.len() as u64 + self.unnamed
    }

    /// Whether `name` holds it (case-insensitively).
    pub fn holds(&self, name: &str) -> bool {
        let key = username_key(name);
        self.users.iter().any(|u| username_key(u) == key)
    }
}

/// The most characters of a `replyTo` this client keeps (ids are short;
/// anything longer is not one).
const REPLY_ID_MAX: usize = 64;

impl LineChanges {
    /// A new line that answers `reply_to`.
    pub fn replying(reply_to: Option<String>) -> LineChanges {
        LineChanges {
            reply_to: reply_to.filter(|id| valid_id(id)),
            ..LineChanges::default()
        }
    }

    /// A message as delivered: what it answers and, from history and
    /// replays, how it stands now. Reactions with an emoji outside the
    /// contract's rule, or a count of none, are left out.
    pub fn folded(
        reply_to: Option<String>,
        edited: Option<u64>,
        deleted: Option<bool>,
        reactions: Vec<Reaction>,
    ) -> LineChanges {
        let deleted = deleted == Some(true);
        let mut sets: Vec<ReactionSet> = Vec::new();
        if !deleted {
            for r in reactions {
                let emoji = sanitize_for_display(&r.emoji);
                if !is_valid_emoji(&r.emoji) || emoji.is_empty() || r.count == 0 {
                    continue;
                }
                if sets.iter().any(|s| s.emoji == emoji) {
                    continue;
                }
                let mut users: Vec<String> = Vec::new();
                for u in r.users {
                    let key = username_key(&u);
                    if is_valid_username(&u)
                        && (users.len() as u64) < r.count
                        && !users.iter().any(|x| username_key(x) == key)
                    {
                        users.push(u);
                    }
                }
                let unnamed = r.count - users.len() as u64;
                sets.push(ReactionSet {
                    emoji,
                    users,
                    unnamed,
                });
            }
        }
        LineChanges {
            reply_to: reply_to.filter(|id| valid_id(id)),
            edited: edited.is_some() && !deleted,
            deleted,
            reactions: sets,
            last_edit: None,
            typed: Vec::new(),
        }
    }

    /// The text to show of a message delivered with `text`: none once
    /// deleted, whatever the server sent.
    pub fn shown_text<'a>(&self, text: &'a str) -> &'a str {
        if self.deleted { "" } else { text }
    }

    /// Remembers that `line`, typed here, holds a version of this line.
    pub(super) fn typed(&mut self, line: &str) {
        if !line.trim().is_empty() && !self.typed.iter().any(|t| t == line) {
            self.typed.push(line.to_owned());
        }
    }

    /// The reactions of `emoji`, if any.
    pub fn reaction(&self, emoji: &str) -> Option<&ReactionSet> {
        self.reactions.iter().find(|r| r.emoji == emoji)
    }

    /// `by` adds (`on`) or takes back `emoji`; whether anything changed.
    fn react(&mut self, emoji: &str, by: &str, on: bool) -> bool {
        let key = username_key(by);
        let Some(i) = self.reactions.iter().position(|r| r.emoji == emoji) else {
            if on {
                self.reactions.push(ReactionSet {
                    emoji: emoji.to_owned(),
                    users: vec![by.to_owned()],
                    unnamed: 0,
                });
            }
            return on;
        };
        let set = &mut self.reactions[i];
        let held = set.users.iter().position(|u| username_key(u) == key);
        let changed = match (on, held) {
            (true, Some(_)) => false,
            (true, None) => {
                set.users.push(by.to_owned());
                true
            }
            (false, Some(p)) => {
                set.users.remove(p);
                true
            }
            // One of the holders history did not name.
            (false, None) if set.unnamed > 0 => {
                set.unnamed -= 1;
                true
            }
            (false, None) => false,
        };
        if set.count() == 0 {
            self.reactions.remove(i);
        }
        changed
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= REPLY_ID_MAX && !id.chars().any(char::is_control)
}

/// The position in `c` of the message `id`: the line of this `epoch` with
/// that id, else the newest line with it (a fresh session of the same
/// server keeps its ids). Room events and notices are not messages.
pub(super) fn position(c: &Conversation, id: &str, epoch: u32) -> Option<usize> {
    if !c.holds_id(id) {
        return None;
    }
    let is = |e: &super::Entry| e.id.as_deref() == Some(id) && e.kind != EntryKind::System;
    c.entries
        .iter()
        .rposition(|e| is(e) && e.epoch == epoch)
        .or_else(|| c.entries.iter().rposition(is))
}

impl Conversation {
    /// (v3) The message `id`, as [`position`] finds it (for the quote
    /// above a reply).
    pub fn message(&self, id: &str, epoch: u32) -> Option<&super::Entry> {
        position(self, id, epoch).map(|p| &self.entries[p])
    }
}

/// Where `c` holds a message that came again (`id`, from `from`, text
/// `text` as shown): the line of this epoch with that id, or of an older
/// one with the same sender and text, or, when it now says it was edited
/// or deleted, the same sender (its text is not the one held).
pub(super) fn held(
    c: &Conversation,
    id: &str,
    from: &str,
    text: &str,
    epoch: u32,
    now: &LineChanges,
) -> Option<usize> {
    let changed = now.edited || now.deleted;
    // Most messages are new: the id index says so without a search.
    let maybe_held = c.has_message(id, from, text, epoch) || (changed && c.holds_id(id));
    if !maybe_held {
        return None;
    }
    let from_key = username_key(from);
    c.entries.iter().rposition(|e| {
        e.id.as_deref() == Some(id)
            && e.kind != EntryKind::System
            && (e.epoch == epoch
                || (e.from == from && e.text == text)
                || (changed && username_key(&e.from) == from_key))
    })
}

/// A message held at `pos` came again as it stands now (`text` as shown,
/// `now` its state): a deletion erases it, an edit takes its text, and its
/// reactions are the ones it came with. A deleted line stays deleted.
pub(super) fn apply_snapshot(
    state: &mut State,
    conv: &ConvId,
    pos: usize,
    text: String,
    now: LineChanges,
) {
    let Some(e) = state.conv(conv).and_then(|c| c.entries.get(pos)) else {
        return;
    };
    if e.changes.deleted {
        return;
    }
    let retext = now.edited && e.text != text;
    if now.deleted {
        erase(state, conv, pos);
        return;
    }
    let Some(c) = state.conv_mut(conv) else {
        return;
    };
    if retext {
        c.retext(pos, text);
    }
    let Some(e) = c.entries.get_mut(pos) else {
        return;
    };
    e.changes.edited |= now.edited;
    e.changes.reactions = now.reactions;
    if e.changes.reply_to.is_none() {
        e.changes.reply_to = now.reply_to;
    }
    e.wrapped.set(0);
    search::refresh(state);
}

/// Whether a message with `changes` answers a line of mine in `conv`.
pub(super) fn answers_me(state: &State, conv: &ConvId, changes: &LineChanges) -> bool {
    let Some(target) = &changes.reply_to else {
        return false;
    };
    state.conv(conv).is_some_and(|c| {
        position(c, target, state.session.epoch)
            .is_some_and(|p| matches!(c.entries[p].kind, EntryKind::Own(_)))
    })
}

/// The conversation a `message:update` is about, if this client has it:
/// the room, the DM with the other of its two names, or the feed.
fn conv_of(state: &State, u: &MessageUpdate) -> Option<ConvId> {
    let conv = if let Some(room) = &u.room {
        ConvId::Room(canonical_room(room)?)
    } else if let Some(names) = &u.dm {
        let peer = names.iter().find(|n| !state.is_me(n))?;
        let key = username_key(peer);
        state
            .convs
            .iter()
            .find(|c| matches!(&c.id, ConvId::Dm(u) if username_key(u) == key))?
            .id
            .clone()
    } else {
        ConvId::Feed
    };
    state.conv(&conv).map(|_| conv)
}

/// A `message:update`, live or replayed: applied to the line it targets;
/// ignored when this client does not hold that line, or when it does not
/// say what changed.
pub(super) fn message_update(state: &mut State, u: MessageUpdate) {
    let Some(conv) = conv_of(state, &u) else {
        return;
    };
    let epoch = state.session.epoch;
    let Some(pos) = state
        .conv(&conv)
        .and_then(|c| position(c, &u.target, epoch))
    else {
        return;
    };
    match u.kind {
        chat_shared::ChangeKind::Edit => {
            if let Some(text) = &u.text {
                edit(state, &conv, pos, text, Some(&u.id));
            }
        }
        chat_shared::ChangeKind::Delete => erase(state, &conv, pos),
        chat_shared::ChangeKind::React => {
            if let (Some(emoji), Some(on)) = (&u.emoji, u.on) {
                react(state, &conv, pos, emoji, &u.by, on);
            }
        }
    }
}

/// The line at `pos` now reads `text` (as sent: it is sanitised here);
/// `change` is the edit's id, when known.
pub(super) fn edit(state: &mut State, conv: &ConvId, pos: usize, text: &str, change: Option<&str>) {
    let me = state.me.clone();
    let Some(c) = state.conv_mut(conv) else {
        return;
    };
    let Some(e) = c.entries.get(pos) else { return };
    if e.changes.deleted {
        return;
    }
    if let (Some(new), Some(shown)) = (change, e.changes.last_edit.as_deref())
        && id_order(new, shown) != Some(std::cmp::Ordering::Greater)
    {
        return;
    }
    let before = e.text.clone();
    let mine = matches!(e.kind, EntryKind::Own(_));
    c.retext(pos, sanitize_for_display(text));
    let Some(e) = c.entries.get_mut(pos) else {
        return;
    };
    if mine {
        // The text I typed first is still in my input history.
        e.changes.typed(&before);
    }
    e.changes.edited = true;
    if let Some(id) = change {
        e.changes.last_edit = Some(id.to_owned());
    }
    e.mention = e.kind == EntryKind::Chat && mentions(&e.text, &me);
    search::refresh(state);
}

/// The line at `pos` was deleted: its text and reactions go, here and
/// everywhere else the client keeps them.
pub(super) fn erase(state: &mut State, conv: &ConvId, pos: usize) {
    let Some(c) = state.conv_mut(conv) else {
        return;
    };
    let Some(e) = c.entries.get(pos) else { return };
    let mut versions = vec![e.text.clone()];
    let seq = e.seq;
    let id = e.id.clone();
    c.retext(pos, String::new());
    if let Some(e) = c.entries.get_mut(pos) {
        versions.append(&mut e.changes.typed);
        e.changes.deleted = true;
        e.changes.edited = false;
        e.changes.reactions.clear();
        e.mention = false;
    }
    for text in &versions {
        forget_typed(state, text);
    }
    if state.selection.seq == Some(seq) {
        state.selection.clear();
    }
    if let Some(Confirm::Delete { id: asked, .. }) = &state.confirm
        && Some(asked) == id.as_ref()
    {
        state.confirm = None;
    }
    search::refresh(state);
}

/// Below this many characters a deleted text takes out of the input
/// history only the lines that are that message (`ok`, `/me ok`), not
/// every line that holds it.
const SHORT_TEXT: usize = 8;

/// Whether the input line `line` holds `text`.
fn holds(line: &str, text: &str) -> bool {
    let line = sanitize_for_display(line);
    let line = line.trim();
    if text.chars().count() >= SHORT_TEXT {
        line.contains(text)
    } else {
        line == text || line.ends_with(&format!(" {text}"))
    }
}

/// The input history's lines that hold `text` go (a pasted secret typed
/// once must not come back with Up).
fn forget_typed(state: &mut State, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    let ed = &mut state.editor;
    let before = ed.history.len();
    ed.history.retain(|line| !holds(line, text));
    if ed.history.len() != before {
        // Browsing the history: the place may be gone, and the line shown
        // from it may be the text.
        if ed.history_pos.is_some() {
            ed.history_pos = None;
            if holds(&ed.input, text) {
                ed.input.clear();
                ed.cursor = 0;
            }
        }
    }
    if holds(&ed.draft, text) {
        ed.draft.clear();
    }
}

/// `by` adds (`on`) or takes back `emoji` on the line at `pos`.
pub(super) fn react(state: &mut State, conv: &ConvId, pos: usize, emoji: &str, by: &str, on: bool) {
    if !is_valid_emoji(emoji) || !is_valid_username(by) {
        return;
    }
    let emoji = sanitize_for_display(emoji);
    let Some(e) = state.conv_mut(conv).and_then(|c| c.entries.get_mut(pos)) else {
        return;
    };
    if e.changes.deleted || emoji.is_empty() {
        return;
    }
    if e.changes.react(&emoji, by, on) {
        e.wrapped.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaction(emoji: &str, count: u64, users: &[&str]) -> Reaction {
        Reaction {
            emoji: emoji.into(),
            count,
            users: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn folded_reactions_keep_counts_beyond_the_names() {
        let c = LineChanges::folded(
            Some("7".into()),
            Some(5),
            None,
            vec![
                reaction("👍", 25, &["bob", "carol"]),
                reaction("bad emoji", 1, &["bob"]),
                reaction("🎉", 0, &[]),
            ],
        );
        assert_eq!(c.reply_to.as_deref(), Some("7"));
        assert!(c.edited && !c.deleted);
        assert_eq!(c.reactions.len(), 1);
        assert_eq!(c.reactions[0].count(), 25);
        assert!(c.reactions[0].holds("Carol"));
        // Deleted: no text, no reactions, not "edited".
        let d = LineChanges::folded(None, Some(5), Some(true), vec![reaction("👍", 1, &["bob"])]);
        assert!(d.deleted && !d.edited && d.reactions.is_empty());
        assert_eq!(d.shown_text("old words"), "");
    }

    #[test]
    fn reacting_is_a_set_per_emoji() {
        let mut c = LineChanges::default();
        assert!(c.react("👍", "bob", true));
        assert!(!c.react("👍", "BOB", true), "one per user and emoji");
        assert!(c.react("👍", "carol", true));
        assert_eq!(c.reaction("👍").map(ReactionSet::count), Some(2));
        assert!(c.react("👍", "bob", false));
        assert!(!c.react("👍", "bob", false));
        assert!(c.react("👍", "carol", false));
        assert!(c.reactions.is_empty(), "an emoji nobody holds goes");
        assert!(!c.react("🎉", "bob", false));
    }
}
