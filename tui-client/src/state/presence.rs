//! Presence: who is online and who is in each room, kept live from
//! `presence` events and snapshots. While the connection is down the lists
//! stay as last known (the view greys them), never cleared.

use chat_shared::{
    ClientEvent, Presence, PresenceKind, PresenceSnapshot, canonical_room, is_valid_username,
};

use super::{ConvId, Effect, Removed, Request, State};

pub(super) fn presence(state: &mut State, p: Presence, fx: &mut Vec<Effect>) {
    state.online = p.online;
    let room = p.room.as_deref().and_then(canonical_room).map(ConvId::Room);
    let user = p
        .user
        .as_deref()
        .filter(|u| is_valid_username(u))
        .map(str::to_owned);
    match (p.event, user) {
        (PresenceKind::Connect, Some(u)) => {
            super::account::user_back(state, &u);
            state.users.insert(u);
        }
        (PresenceKind::Disconnect, Some(u)) => {
            state.users.remove(&u);
        }
        (PresenceKind::Join, Some(u)) => {
            state.users.insert(u.clone());
            if let Some(r) = room.as_ref()
                && state.is_me(&u)
            {
                super::room_events::back_in(state, r);
            }
            if let Some(c) = room.as_ref().and_then(|r| state.conv_mut(r)) {
                c.members.insert(u);
                c.member_count = p.members;
            }
        }
        (PresenceKind::Leave, Some(u)) => {
            // (v3) Put out of the room by a kick or a ban.
            let how = match p.reason.as_deref() {
                Some("kick") => Some(Removed::Kicked),
                Some("ban") => Some(Removed::Banned),
                _ => None,
            };
            // A room I am out of shows no count: it would go stale.
            let mine_gone = how.is_some() && state.is_me(&u);
            if let Some(c) = room.as_ref().and_then(|r| state.conv_mut(r)) {
                c.members.remove(&u);
                c.member_count = if mine_gone { None } else { p.members };
            }
            if let Some(how) = how
                && state.is_me(&u)
                && let Some(r) = room.as_ref()
            {
                super::room_events::left_by_force(state, r, how);
            }
        }
        (PresenceKind::Rename, Some(u)) => {
            if let Some(from) = p.from.as_deref() {
                super::rename::presence(state, from, &u, fx);
            }
        }
        (PresenceKind::Summary, _) => {
            let Some(s) = p.summary else { return };
            let complete = s.joined.is_some() && s.left.is_some();
            let joined = s.joined.unwrap_or_default();
            let left = s.left.unwrap_or_default();
            match room.as_ref() {
                Some(r) => {
                    if let Some(c) = state.conv_mut(r) {
                        c.members
                            .extend(joined.iter().filter(|u| is_valid_username(u)).cloned());
                        for u in &left {
                            c.members.remove(u);
                        }
                        c.member_count = p.members;
                    }
                    state
                        .users
                        .extend(joined.into_iter().filter(|u| is_valid_username(u)));
                }
                None => {
                    state
                        .users
                        .extend(joined.into_iter().filter(|u| is_valid_username(u)));
                    for u in &left {
                        state.users.remove(u);
                    }
                }
            }
            if !complete && state.session.live {
                fx.push(state.request(Request::Refresh, ClientEvent::PresenceGet));
            }
        }
        _ => {}
    }
}

pub(super) fn apply_snapshot(state: &mut State, snap: &PresenceSnapshot) {
    state.online = snap.online;
    state.users = snap
        .users
        .iter()
        .filter(|u| is_valid_username(u))
        .cloned()
        .collect();
    for rc in &snap.rooms {
        if let Some(room) = canonical_room(&rc.room) {
            if let Some(c) = state.conv_mut(&ConvId::Room(room.clone())) {
                c.member_count = Some(rc.members);
            }
            state.known_rooms.insert(room);
        }
    }
}

impl State {
    /// Whether the presence lists are live (false: last known, greyed).
    pub fn presence_live(&self) -> bool {
        self.session.live
    }
}
