//! What an input line does once Enter is pressed: plain text goes to the
//! active conversation, slash commands act (`/join`, `/me`, `/close`,
//! `/search`…). A text longer than the message pane asks first, and so does
//! quitting with messages not sent yet; while the server refuses my name as
//! taken, a line is the next name to try.

use chat_shared::{ClientEvent, RoomRequest, canonical_room, is_valid_username};

use super::outbox::{Target, send_text};
use super::{
    ConvId, Effect, NetCommand, Request, State, account, blocking, change_commands, clients,
    moderation, rename, search,
};
use crate::commands::{self, Command};

/// A question the next key answers (y or Enter: yes; n or Esc: no).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirm {
    /// Ctrl-C while own messages are not sent yet.
    Quit { unsent: usize },
    /// Enter on a pasted text longer than the message pane.
    LongText { line: String, lines: usize },
    /// (v3) `/delete` of the message `id` of `conv`; `quoted`: its author
    /// and start, as the question shows them.
    Delete {
        conv: ConvId,
        id: String,
        quoted: String,
    },
}

impl Confirm {
    pub fn question(&self) -> String {
        match self {
            Confirm::Quit { unsent } => format!(
                "{unsent} message{} not sent yet: quit anyway? (y/n)",
                if *unsent == 1 { "" } else { "s" }
            ),
            Confirm::LongText { lines, .. } => format!("send these {lines} lines? (y/n)"),
            Confirm::Delete { quoted, .. } => format!("delete? (y/n) {quoted}"),
        }
    }
}

pub(super) fn submit(state: &mut State, fx: &mut Vec<Effect>) {
    let line = std::mem::take(&mut state.editor.input);
    state.editor.cursor = 0;
    state.editor.history_pos = None;
    state.editor.draft.clear();
    // A password: never kept in the input history, never a message.
    if state.secret.is_some() {
        account::submit(state, line, fx);
        return;
    }
    if line.trim().is_empty() {
        return;
    }
    if state.editor.history.last() != Some(&line) {
        state.editor.history.push(line.clone());
    }
    state.stop_typing(fx);
    if state.name_taken() && !line.starts_with('/') {
        rename::use_name(state, &line, fx);
        return;
    }
    let lines = line.lines().count();
    if lines > state.page.max(1) && !line.starts_with('/') {
        state.confirm = Some(Confirm::LongText { line, lines });
        return;
    }
    run_line(state, &line, fx);
}

pub(super) fn active_target(state: &State) -> Target {
    match &state.active {
        ConvId::Room(r) => Target::Room(r.clone()),
        ConvId::Dm(u) => Target::Dm(u.clone()),
        ConvId::Feed => Target::Global,
    }
}

pub(super) fn run_line(state: &mut State, line: &str, fx: &mut Vec<Effect>) {
    match commands::parse(line) {
        Command::Say(text) => {
            let target = active_target(state);
            let conv = state.active.clone();
            send_text(state, conv, target, &text, false, fx);
        }
        Command::Me(text) => {
            let target = active_target(state);
            let conv = state.active.clone();
            send_text(state, conv, target, &text, true, fx);
        }
        Command::Join(room) => match canonical_room(&room) {
            Some(room) => {
                let ev = ClientEvent::RoomJoin(RoomRequest { room: room.clone() });
                if state.session.live {
                    fx.push(state.request(
                        Request::Join {
                            room,
                            switch: true,
                            rejoin: false,
                        },
                        ev,
                    ));
                } else {
                    state.toast(format!("not connected: /join {room} later"));
                }
            }
            None => state.toast(format!(
                "invalid_room: {room:?} is not a room name (# then 1-32 of a-z 0-9 _ -)"
            )),
        },
        Command::Leave(None) if matches!(state.active, ConvId::Dm(_)) => {
            let id = state.active.clone();
            state.close_conv(&id, fx);
        }
        Command::Leave(room) => {
            let room = match room {
                Some(r) => canonical_room(&r),
                None => match &state.active {
                    ConvId::Room(r) => Some(r.clone()),
                    _ => None,
                },
            };
            match room {
                // Put out already: nothing to leave on the server.
                Some(room) if state.removed_from(&ConvId::Room(room.clone())).is_some() => {
                    state.close_conv(&ConvId::Room(room), fx)
                }
                Some(room) if state.session.live => {
                    let ev = ClientEvent::RoomLeave(RoomRequest { room: room.clone() });
                    fx.push(state.request(Request::Leave(room), ev));
                }
                Some(_) => state.toast("not connected: /leave later"),
                None => {
                    state.toast("usage: /leave [#room] (the active conversation is not a room)")
                }
            }
        }
        Command::Close => match state.active.clone() {
            id @ ConvId::Dm(_) => state.close_conv(&id, fx),
            ConvId::Room(r) => {
                state.toast(format!("/close is for direct conversations: /leave {r}"))
            }
            ConvId::Feed => state.toast("the feed cannot be closed"),
        },
        Command::Clear => {
            let id = state.active.clone();
            if let Some(c) = state.conv_mut(&id) {
                c.entries.retain(|e| e.id.is_none() && e.local != 0);
                c.rebuild_index();
                c.scroll = 0;
                c.unread_marker = None;
            }
            state.search = None;
            state.selection.clear();
        }
        Command::Search(query) => search::start(state, &query),
        Command::Nick(name) => rename::nick(state, &name, fx),
        Command::Register => account::start_register(state),
        Command::Passwd => account::start_passwd(state),
        Command::Sessions => clients::list(state, fx),
        Command::EndSession(start) => clients::end(state, start, fx),
        Command::Msg { to, text } => {
            if !is_valid_username(&to) {
                state.toast(format!("invalid_username: {to:?} is not a username"));
                return;
            }
            if state.is_me(&to) {
                state.toast("invalid_target: that is you");
                return;
            }
            let conv = state.dm_conv(&to);
            state.switch_to(conv.clone(), fx);
            if !text.trim().is_empty() {
                let peer = match &conv {
                    ConvId::Dm(u) => u.clone(),
                    _ => to,
                };
                send_text(state, conv, Target::Dm(peer), &text, false, fx);
            }
        }
        Command::All(text) => send_text(state, ConvId::Feed, Target::Global, &text, false, fx),
        Command::Bcast(text) => send_text(state, ConvId::Feed, Target::Broadcast, &text, false, fx),
        Command::Rooms => {
            if state.session.live {
                fx.push(state.request(Request::Rooms, ClientEvent::RoomList));
            } else {
                state.toast("not connected");
            }
        }
        Command::Who => {
            if state.session.live {
                fx.push(state.request(Request::Who, ClientEvent::PresenceGet));
            } else {
                state.toast("not connected");
            }
        }
        Command::Help => {
            let conv = state.active.clone();
            for line in commands::help_lines() {
                state.system(&conv, line);
            }
            state.system(&conv, "keys:");
            for (key, what) in commands::KEYS {
                state.system(&conv, format!("  {key:<18} {what}"));
            }
        }
        Command::Quit => quit(state, fx),
        Command::Logout => {
            fx.push(Effect::Logout);
            do_quit(state, fx);
        }
        Command::Reconnect => {
            if state.session.live {
                state.toast("connected already");
            } else {
                fx.push(Effect::Net(NetCommand::Reconnect));
            }
        }
        Command::Block(user) => blocking::block(state, user, fx),
        Command::Unblock(user) => blocking::unblock(state, user, fx),
        Command::ShowBlocked => blocking::toggle_shown(state),
        Command::Reply(text) => change_commands::reply(state, &text, fx),
        Command::Edit(text) => change_commands::edit(state, &text, fx),
        Command::Substitute(sub) => change_commands::substitute(state, &sub, fx),
        Command::Delete => change_commands::delete(state),
        Command::React(emoji) => change_commands::react(state, &emoji, fx),
        Command::Usage(u) => state.toast(format!("usage: {u}")),
        Command::Unknown(c) => state.toast(format!("unknown command {c} (try /help)")),
        cmd @ (Command::Topic(_)
        | Command::Private(_)
        | Command::Invite(_)
        | Command::Kick(_)
        | Command::Ban(_)
        | Command::Unban(_)
        | Command::Mute(_)
        | Command::Unmute(_)
        | Command::SetRole { .. }
        | Command::Info(_)
        | Command::ServerKick(_)
        | Command::ServerBan(_)
        | Command::ServerMute(_)
        | Command::ServerUnban(_)
        | Command::ServerUnmute(_)
        | Command::Bans
        | Command::ServerRole { .. }) => moderation::command(state, cmd, fx),
    }
}

/// Ctrl-C (and `/quit`): asks first when own messages are not sent yet.
pub(super) fn quit(state: &mut State, fx: &mut Vec<Effect>) {
    let unsent = state.unsent_len();
    if unsent > 0 {
        state.confirm = Some(Confirm::Quit { unsent });
        return;
    }
    do_quit(state, fx);
}

pub(super) fn do_quit(state: &mut State, fx: &mut Vec<Effect>) {
    state.stop_typing(fx);
    state.quit = true;
    fx.push(Effect::Quit);
}
