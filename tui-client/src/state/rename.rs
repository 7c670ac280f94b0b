//! Names that change while connected: `/nick` (v3: a guest renames itself
//! in place with `user:rename`, keeping its session and rooms; an
//! account's name is fixed; a v2 server cannot, and says so), and the
//! `rename` presence event, which renames that user wherever this client
//! knows them (member lists, roles, typing, blocks, DM conversations) with
//! a line in each conversation they were part of.

use chat_shared::{ClientEvent, RenameRequest, Role, is_valid_username, username_key};

use super::outbox::Target;
use super::{Conn, ConvId, Effect, Request, State};
use crate::msg::NetCommand;

/// `/nick name`.
pub(super) fn nick(state: &mut State, name: &str, fx: &mut Vec<Effect>) {
    if !(state.session.had_session && state.session.live) {
        // Not connected (a taken name, a refusal): the next attempts use it.
        use_name(state, name, fx);
        return;
    }
    let name = name.trim().trim_start_matches('@');
    if !is_valid_username(name) {
        state.toast(format!(
            "invalid_username: {name:?} is not a username (1-32 of A-Z a-z 0-9 _ . -)"
        ));
        return;
    }
    if name == state.me {
        state.toast(format!("you are {name} already"));
        return;
    }
    if let Some(role) = state.session.role
        && role != Role::Guest
    {
        state.toast(format!(
            "{} is an account: its name is fixed (connect with --user NAME to be someone else)",
            state.me
        ));
        return;
    }
    let event = ClientEvent::UserRename(RenameRequest {
        username: name.to_owned(),
    });
    let request = Request::Moderation {
        event: event.clone(),
        quiet: false,
    };
    fx.push(state.request(request, event));
}

/// A server that cannot rename a connected user (v2).
pub(super) fn unsupported(state: &mut State) {
    state.toast(
        "this server cannot rename you while connected (it is older than v3): restart with --user NAME",
    );
}

/// The server renamed me (the ack of `user:rename`).
pub(super) fn renamed(state: &mut State, name: &str, fx: &mut Vec<Effect>) {
    if state.is_me(name) && state.me == name {
        // The presence event came first and did it all.
        return;
    }
    let old = state.me.clone();
    rename_everywhere(state, &old, name, false, fx);
    let conv = state.active.clone();
    state.system(&conv, format!("you are now known as {name}"));
}

/// A `rename` presence event: `from` is now `to`.
pub(super) fn presence(state: &mut State, from: &str, to: &str, fx: &mut Vec<Effect>) {
    if !is_valid_username(from) || !is_valid_username(to) {
        return;
    }
    rename_everywhere(state, from, to, true, fx);
}

/// Renames `from` to `to` in everything this client holds; `lines`: say
/// so in each conversation they were part of.
fn rename_everywhere(state: &mut State, from: &str, to: &str, lines: bool, fx: &mut Vec<Effect>) {
    let key = username_key(from);
    let me = state.is_me(from);
    if me {
        state.me = to.to_owned();
        // Reconnects present the new name with the same session.
        fx.push(Effect::Net(NetCommand::UseName(to.to_owned())));
    }
    if state.users.iter().any(|u| username_key(u) == key) {
        state.users.retain(|u| username_key(u) != key);
        state.users.insert(to.to_owned());
    }
    for b in state.blocked.iter_mut() {
        if username_key(b) == key {
            *b = to.to_owned();
        }
    }
    super::markers::renamed(state, from, to);
    for out in state.outbox.queue.iter_mut() {
        if let Target::Dm(u) = &mut out.target
            && username_key(u) == key
        {
            *u = to.to_owned();
        }
    }
    let line = if me {
        format!("you are now known as {to}")
    } else {
        format!("{from} is now known as {to}")
    };
    let mut told = Vec::new();
    for c in state.convs.iter_mut() {
        c.typing.retain(|u, _| username_key(u) != key);
        let was_member = c.members.iter().any(|m| username_key(m) == key);
        if was_member {
            c.members.retain(|m| username_key(m) != key);
            c.members.insert(to.to_owned());
            if let Some(role) = c.room.roles.remove(&key) {
                c.room.roles.insert(username_key(to), role);
            }
        }
        let dm = matches!(&c.id, ConvId::Dm(u) if username_key(u) == key);
        if dm {
            let new = ConvId::Dm(to.to_owned());
            if state.active == c.id {
                state.active = new.clone();
            }
            c.id = new;
        }
        if lines && (was_member || dm) {
            told.push(c.id.clone());
        }
    }
    for conv in told {
        state.system(&conv, line.clone());
    }
}

/// Tries `name` instead of the taken username.
pub(super) fn use_name(state: &mut State, name: &str, fx: &mut Vec<Effect>) {
    let name = name.trim().trim_start_matches('@');
    if !is_valid_username(name) {
        state.toast(format!(
            "invalid_username: {name:?} is not a username (1-32 of A-Z a-z 0-9 _ . -)"
        ));
        return;
    }
    if state.session.had_session && state.session.live {
        state.toast("you are connected: a new name needs a new connection (restart with --user)");
        return;
    }
    state.me = name.to_owned();
    state.session.name_taken = false;
    state.conn = Conn::Connecting { attempt: 1 };
    fx.push(Effect::Net(NetCommand::Rename(name.to_owned())));
}
