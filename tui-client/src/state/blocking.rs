//! (v3) Blocking: whom I block (`session.blocked`, then the whole list in
//! each answer of `/block` and `/unblock`). Their lines in rooms and the
//! feed are kept but hidden: the message pane shows one dim line per run
//! of them ("2 lines from blocked users hidden · /showblocked"), and
//! `/showblocked` shows them in the active conversation (again: hides
//! them). Their DMs, typing and mentions never show. The server refuses
//! DMs both ways; it does not filter rooms, which is why this client does.

use chat_shared::{
    ClientEvent, UserRequest, is_valid_username, sanitize_for_display, username_key,
};

use super::{Conversation, Effect, Entry, EntryKind, Request, State};

impl State {
    /// Whether I block `name`.
    pub fn is_blocked(&self, name: &str) -> bool {
        let key = username_key(name);
        self.blocked.iter().any(|b| username_key(b) == key)
    }

    /// Whether line `e` of `c` is hidden: a line of someone I block, while
    /// `/showblocked` is off there.
    pub fn hides(&self, c: &Conversation, e: &Entry) -> bool {
        !c.show_blocked
            && e.kind == EntryKind::Chat
            && !self.blocked.is_empty()
            && self.is_blocked(&e.from)
    }

    /// How many lines of `c` are hidden.
    pub fn hidden_lines(&self, c: &Conversation) -> usize {
        c.entries.iter().filter(|e| self.hides(c, e)).count()
    }
}

/// The list the server says (its names as it spells them).
pub(super) fn set_list(state: &mut State, list: Vec<String>) {
    state.blocked = list.into_iter().filter(|u| is_valid_username(u)).collect();
}

/// `/block [user]`.
pub(super) fn block(state: &mut State, user: Option<String>, fx: &mut Vec<Effect>) {
    let Some(user) = user else {
        let conv = state.active.clone();
        let line = if state.blocked.is_empty() {
            "you block nobody".to_owned()
        } else {
            format!("you block: {}", state.blocked.join(", "))
        };
        state.system(&conv, line);
        return;
    };
    let event = ClientEvent::UserBlock(UserRequest { user });
    send(state, event, fx);
}

/// `/unblock user`.
pub(super) fn unblock(state: &mut State, user: String, fx: &mut Vec<Effect>) {
    send(state, ClientEvent::UserUnblock(UserRequest { user }), fx);
}

fn send(state: &mut State, event: ClientEvent, fx: &mut Vec<Effect>) {
    let (ClientEvent::UserBlock(r) | ClientEvent::UserUnblock(r)) = &event else {
        return;
    };
    if !is_valid_username(&r.user) {
        state.toast(format!(
            "invalid_username: {:?} is not a username",
            sanitize_for_display(&r.user)
        ));
        return;
    }
    if state.is_me(&r.user) {
        state.toast("that is you");
        return;
    }
    if !state.session.live {
        state.toast("not connected: the server keeps the blocks; try again later");
        return;
    }
    let request = Request::Moderation {
        event: event.clone(),
        quiet: false,
    };
    fx.push(state.request(request, event));
}

/// The answer of `/block` or `/unblock`: the whole list now.
pub(super) fn answered(state: &mut State, event: &ClientEvent, list: Vec<String>) {
    set_list(state, list);
    said(state, event, "");
}

/// A server without blocks (v2): the block holds on this client only.
pub(super) fn locally(state: &mut State, event: &ClientEvent) {
    match event {
        ClientEvent::UserBlock(r) if !state.is_blocked(&r.user) => {
            state.blocked.push(r.user.clone());
        }
        ClientEvent::UserUnblock(r) => {
            let key = username_key(&r.user);
            state.blocked.retain(|b| username_key(b) != key);
        }
        _ => {}
    }
    said(
        state,
        event,
        " (on this client only: the server does not know blocks)",
    );
}

fn said(state: &mut State, event: &ClientEvent, note: &str) {
    let line = match event {
        ClientEvent::UserBlock(r) => format!(
            "you block {}: their lines are hidden (/showblocked shows them) and neither of you can DM the other{note}",
            r.user
        ),
        ClientEvent::UserUnblock(r) => format!("you no longer block {}{note}", r.user),
        _ => return,
    };
    let conv = state.active.clone();
    state.system(&conv, line);
}

/// `/showblocked`: shows the lines of blocked users in the active
/// conversation, or hides them again.
pub(super) fn toggle_shown(state: &mut State) {
    if state.blocked.is_empty() {
        state.notice("you block nobody: no line is hidden");
        return;
    }
    let id = state.active.clone();
    let label = id.label();
    let Some(c) = state.conv_mut(&id) else { return };
    c.show_blocked = !c.show_blocked;
    let text = if c.show_blocked {
        format!("lines from blocked users are shown in {label}: /showblocked hides them again")
    } else {
        format!("lines from blocked users are hidden in {label}")
    };
    state.notice(text);
}
