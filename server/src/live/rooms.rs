//! Room membership and each room's recent messages. A room has live
//! members (users with a socket) and holders (members live or inside
//! their recovery window); its history is kept while it has holders.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use chat_shared::{ErrorCode, PresenceSnapshot, RoomCount, username_key};

use super::sessions::User;
use super::{ChatState, SessionOp};
use crate::store::{AccountChange, MessageRecord};

/// The rooms' part of the state.
#[derive(Debug, Default)]
pub(super) struct Rooms {
    /// Room → live members (user keys). A room with none is not listed.
    live: BTreeMap<String, BTreeSet<String>>,
    /// Room → users in it, live or inside their recovery window; the
    /// room's history is kept while this is above zero.
    holders: HashMap<String, usize>,
    /// Per room, its last messages, for `room:join`.
    history: HashMap<String, VecDeque<Arc<MessageRecord>>>,
}

impl Rooms {
    /// One user more holds `room`.
    pub(super) fn hold(&mut self, room: &str) {
        *self.holders.entry(room.to_owned()).or_default() += 1;
    }

    /// `key` is a live member of `room`.
    pub(super) fn enter(&mut self, room: &str, key: &str) {
        self.live
            .entry(room.to_owned())
            .or_default()
            .insert(key.to_owned());
    }

    /// `key` is no longer a live member of `room`; returns the live member
    /// count after.
    pub(super) fn drop_live(&mut self, room: &str, key: &str) -> u64 {
        match self.live.get_mut(room) {
            Some(set) => {
                set.remove(key);
                let n = set.len() as u64;
                if n == 0 {
                    self.live.remove(room);
                }
                n
            }
            None => 0,
        }
    }

    /// The live member count of `room`.
    pub(super) fn live_count(&self, room: &str) -> u64 {
        self.live.get(room).map_or(0, |s| s.len() as u64)
    }

    /// One user fewer holds `room`; its history goes with the last one.
    pub(super) fn release(&mut self, room: &str) {
        if let Some(n) = self.holders.get_mut(room) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.holders.remove(room);
                self.history.remove(room);
            }
        }
    }

    /// Keeps `msg` in its room's history (at most `keep` a room) while the
    /// room has holders.
    pub(super) fn keep(&mut self, msg: &Arc<MessageRecord>, keep: usize) {
        if let crate::store::Destination::Room(room) = &msg.dest
            && keep > 0
            && self.holders.contains_key(room)
        {
            let h = self.history.entry(room.clone()).or_default();
            if h.len() >= keep {
                h.pop_front();
            }
            h.push_back(Arc::clone(msg));
        }
    }

    /// (v3) Applies `change` to its target in the room's recent history,
    /// if that holds it.
    pub(super) fn fold(&mut self, change: &MessageRecord) {
        if let crate::store::Destination::Room(room) = &change.dest
            && let Some(h) = self.history.get_mut(room)
        {
            MessageRecord::fold_into(h, change);
        }
    }

    fn recent(&self, room: &str) -> Vec<Arc<MessageRecord>> {
        self.history
            .get(room)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn member_names(&self, room: &str, users: &HashMap<String, User>) -> Vec<String> {
        self.live
            .get(room)
            .map(|set| {
                set.iter()
                    .filter_map(|k| users.get(k).map(|u| u.username.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn counts(&self) -> Vec<RoomCount> {
        self.live
            .iter()
            .map(|(room, set)| RoomCount::new(room.clone(), set.len() as u64))
            .collect()
    }
}

/// What `room:join` changed.
#[derive(Debug)]
pub struct Joined {
    /// False when the user was a member already (the join is idempotent).
    pub fresh: bool,
    pub members: Vec<String>,
    pub count: u64,
    /// The room's newest messages this process holds (the caller tops up
    /// from the store).
    pub history: Vec<Arc<MessageRecord>>,
}

/// One node's share of presence, as it publishes it to the others.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct NodePresence {
    pub users: Vec<String>,
    /// Room → its live members here (display names).
    pub rooms: BTreeMap<String, Vec<String>>,
}

impl ChatState {
    /// Joins `key` to `room` (canonical). Idempotent.
    pub fn join(&self, key: &str, room: &str) -> Result<Joined, ErrorCode> {
        self.join_as(key, room, true)
    }

    /// (v3) Follows a join the account made on another node: as
    /// [`join`](Self::join), but the account's rooms are that node's to
    /// write.
    pub fn follow_join(&self, key: &str, room: &str) -> Result<Joined, ErrorCode> {
        self.join_as(key, room, false)
    }

    fn join_as(&self, key: &str, room: &str, here: bool) -> Result<Joined, ErrorCode> {
        let mut inner = self.lock();
        let head = inner.log.head;
        let max = self.config.max_rooms_per_user;
        let user = inner
            .sessions
            .users
            .get_mut(key)
            .ok_or(ErrorCode::Internal)?;
        let fresh = !user.rooms.contains_key(room);
        if fresh {
            if user.rooms.len() >= max {
                return Err(ErrorCode::TooManyRooms);
            }
            user.rooms.insert(room.to_owned(), head);
            for s in &user.sessions {
                self.persist(SessionOp::Put(user.record(s)));
            }
        }
        let live = user.live();
        if fresh && user.account && here {
            let rooms = AccountChange::Rooms(user.rooms.keys().cloned().collect());
            self.persist_account(&mut inner.written, key, rooms);
        }
        if fresh {
            inner.rooms.hold(room);
        }
        if live {
            inner.rooms.enter(room, key);
        }
        let members = inner.rooms.member_names(room, &inner.sessions.users);
        let history = inner.rooms.recent(room);
        Ok(Joined {
            fresh,
            count: members.len() as u64,
            members,
            history,
        })
    }

    /// Takes `key` out of `room`; returns the live member count after.
    pub fn leave(&self, key: &str, room: &str) -> Result<u64, ErrorCode> {
        self.leave_as(key, room, true)
    }

    /// (v3) Follows a leave the account made on another node (see
    /// [`follow_join`](Self::follow_join)).
    pub fn follow_leave(&self, key: &str, room: &str) -> Result<u64, ErrorCode> {
        self.leave_as(key, room, false)
    }

    fn leave_as(&self, key: &str, room: &str, here: bool) -> Result<u64, ErrorCode> {
        let mut inner = self.lock();
        let user = inner
            .sessions
            .users
            .get_mut(key)
            .ok_or(ErrorCode::Internal)?;
        if user.rooms.remove(room).is_none() {
            return Err(ErrorCode::NotMember);
        }
        for s in &user.sessions {
            self.persist(SessionOp::Put(user.record(s)));
        }
        if user.account && here {
            let rooms = AccountChange::Rooms(user.rooms.keys().cloned().collect());
            self.persist_account(&mut inner.written, key, rooms);
        }
        let n = inner.rooms.drop_live(room, key);
        inner.rooms.release(room);
        Ok(n)
    }

    pub fn is_member(&self, key: &str, room: &str) -> bool {
        self.lock()
            .sessions
            .users
            .get(key)
            .is_some_and(|u| u.rooms.contains_key(room))
    }

    /// The display names of `room`'s live members here.
    pub fn member_names(&self, room: &str) -> Vec<String> {
        let inner = self.lock();
        inner.rooms.member_names(room, &inner.sessions.users)
    }

    /// Live member count of `room`.
    pub fn members(&self, room: &str) -> u64 {
        self.lock()
            .rooms
            .live
            .get(room)
            .map_or(0, |s| s.len() as u64)
    }

    pub fn room_count(&self) -> u64 {
        self.lock().rooms.live.len() as u64
    }

    pub fn room_list(&self) -> Vec<RoomCount> {
        self.lock().rooms.counts()
    }

    /// This process's newest messages of `room`, oldest first.
    pub fn room_recent(&self, room: &str) -> Vec<Arc<MessageRecord>> {
        self.lock().rooms.recent(room)
    }

    pub fn presence_snapshot(&self) -> PresenceSnapshot {
        let inner = self.lock();
        let mut users: Vec<String> = inner
            .sessions
            .users
            .values()
            .filter(|u| u.live())
            .map(|u| u.username.clone())
            .collect();
        users.sort_by_key(|u| username_key(u));
        PresenceSnapshot {
            online: inner.sessions.online,
            users,
            rooms: inner.rooms.counts(),
        }
    }

    /// This node's live users and room members, for the other nodes.
    pub fn node_presence(&self) -> NodePresence {
        let inner = self.lock();
        NodePresence {
            users: inner
                .sessions
                .users
                .values()
                .filter(|u| u.live())
                .map(|u| u.username.clone())
                .collect(),
            rooms: inner
                .rooms
                .live
                .keys()
                .map(|room| {
                    (
                        room.clone(),
                        inner.rooms.member_names(room, &inner.sessions.users),
                    )
                })
                .collect(),
        }
    }
}
