//! Typing signals: others' (shown for six seconds after their last
//! `typing:true`) and mine (sent at most every two seconds while the line
//! has text, and stopped when it is sent or cleared).

use std::time::Duration;

use chat_shared::{
    ClientEvent, TYPING_TTL_MS, TypingNotice, TypingRequest, TypingTarget, canonical_room,
    is_valid_username,
};

use super::{ConvId, Effect, State};
use crate::msg::NetCommand;

/// How long a typing signal from someone else is shown.
pub const TYPING_TTL: Duration = Duration::from_millis(TYPING_TTL_MS);
/// The least time between two `typing:true` of mine.
pub const TYPING_RESEND: Duration = Duration::from_secs(2);

impl State {
    /// Who is typing in the active conversation, oldest signal first.
    pub fn typing_names(&self) -> Vec<String> {
        let now = self.now;
        self.active_conv()
            .typing
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub(super) fn stop_typing(&mut self, fx: &mut Vec<Effect>) {
        let Some((conv, _)) = self.typing_sent.take() else {
            return;
        };
        let target = match conv {
            ConvId::Room(r) => TypingTarget::Room(r),
            ConvId::Dm(u) => TypingTarget::User(u),
            ConvId::Feed => return,
        };
        if self.session.live {
            fx.push(Effect::Net(NetCommand::Volatile(ClientEvent::Typing(
                TypingRequest {
                    target,
                    typing: false,
                },
            ))));
        }
    }
}

pub(super) fn typing(state: &mut State, t: TypingNotice) {
    if state.is_me(&t.from) || !is_valid_username(&t.from) || state.is_blocked(&t.from) {
        return;
    }
    let conv = match &t.room {
        Some(r) => match canonical_room(r) {
            Some(r) => ConvId::Room(r),
            None => return,
        },
        None => state.dm_conv(&t.from),
    };
    let until = state.now + TYPING_TTL;
    let Some(c) = state.conv_mut(&conv) else {
        return;
    };
    if t.typing {
        c.typing.insert(t.from, until);
    } else {
        c.typing.remove(&t.from);
    }
}

/// After the input changed: tell the conversation I am typing (at most every
/// [`TYPING_RESEND`]), or that I stopped when the line is empty again.
pub(super) fn after_edit(state: &mut State, fx: &mut Vec<Effect>) {
    state.editor.history_pos = None;
    if state.editor.input.trim().is_empty()
        || state.editor.input.starts_with('/')
        || state.name_taken()
        || state.asking_secret()
    {
        state.stop_typing(fx);
        return;
    }
    let target = match &state.active {
        ConvId::Room(r) => TypingTarget::Room(r.clone()),
        ConvId::Dm(u) => TypingTarget::User(u.clone()),
        ConvId::Feed => return,
    };
    if !state.session.live || state.removed_from(&state.active).is_some() {
        return;
    }
    let due = match &state.typing_sent {
        Some((conv, at)) => {
            *conv != state.active || state.now.saturating_duration_since(*at) >= TYPING_RESEND
        }
        None => true,
    };
    if due {
        state.typing_sent = Some((state.active.clone(), state.now));
        fx.push(Effect::Net(NetCommand::Volatile(ClientEvent::Typing(
            TypingRequest {
                target,
                typing: true,
            },
        ))));
    }
}

/// Forgets signals that expired; true if one did.
pub(super) fn expire(state: &mut State) -> bool {
    let now = state.now;
    let mut changed = false;
    for c in &mut state.convs {
        let n = c.typing.len();
        c.typing.retain(|_, until| *until > now);
        changed |= c.typing.len() != n;
    }
    changed
}
