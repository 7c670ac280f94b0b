//! (v3) What this client knows of a room's settings and roles
//! ([`RoomState`], kept in the room's conversation), how it learns them
//! ([`learn_room`]), and whether and why it was put out of a room
//! ([`Removal`]). A leaf of the state: the commands ([`super::moderation`])
//! and the events ([`super::room_events`]) that change it import it.

use std::collections::HashMap;

use chat_shared::{ClientEvent, RoomRequest, RoomRole, username_key};

use super::{ConvId, Effect, Request, State};

/// What this client knows of a room's settings and roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomState {
    /// `""`: no topic.
    pub topic: String,
    pub private: bool,
    /// Owners and ops, by username key; everyone else is a member. Learnt
    /// from `room:info` (asked for on every join) and kept up to date by
    /// `role` room events.
    pub roles: HashMap<String, RoomRole>,
    /// I was put out of the room: it stays listed, marked, its lines
    /// kept, and nothing is sent there until I `/join` it again.
    pub removed: Option<Removal>,
}

impl RoomState {
    /// The room role of `name`.
    pub fn role_of(&self, name: &str) -> RoomRole {
        self.roles
            .get(&username_key(name))
            .copied()
            .unwrap_or(RoomRole::Member)
    }

    pub(super) fn set_role(&mut self, name: &str, role: RoomRole) {
        match role {
            RoomRole::Member => self.roles.remove(&username_key(name)),
            other => self.roles.insert(username_key(name), other),
        };
    }
}

/// How I left a room without asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub how: Removed,
    /// Who and why, as the user reads it ("kicked by alice: spam").
    pub why: String,
}

/// What put me out of a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Kicked,
    Banned,
    /// Coming back after a fresh session, the room had become private.
    NotInvited,
}

impl Removed {
    /// The mark of the room in the conversations pane.
    pub fn word(self) -> &'static str {
        match self {
            Removed::Kicked => "kicked",
            Removed::Banned => "banned",
            Removed::NotInvited => "invite-only",
        }
    }
}

/// The mark before a name in a member list: `~` owner, `@` op.
pub fn role_mark(role: RoomRole) -> &'static str {
    match role {
        RoomRole::Owner => "~",
        RoomRole::Op => "@",
        RoomRole::Member => "",
    }
}

impl State {
    /// Why I am out of room `id`, if I was put out.
    pub fn removed_from(&self, id: &ConvId) -> Option<&Removal> {
        self.conv(id).and_then(|c| c.room.removed.as_ref())
    }

    /// Whether the server speaks v3 (its `session` says my role).
    pub(super) fn speaks_v3(&self) -> bool {
        self.session.role.is_some()
    }
}

/// Asks for a room's roles and settings without showing them (after a
/// join), when the server knows `room:info`.
pub(super) fn learn_room(state: &mut State, room: &str, fx: &mut Vec<Effect>) {
    if !state.speaks_v3() || !state.session.live {
        return;
    }
    let event = ClientEvent::RoomInfo(RoomRequest {
        room: room.to_owned(),
    });
    let request = Request::Moderation {
        event: event.clone(),
        quiet: true,
    };
    fx.push(state.request(request, event));
}
