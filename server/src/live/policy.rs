//! What the server knows of who may do what: server roles, each room's
//! settings, roles, invites, bans and mutes, the server's bans and mutes,
//! and blocks. It is the store's moderation settings read into a shape
//! that answers a check without a store read ([`Policy`]); the node keeps
//! one copy ([`Moderation`]), changes it as its own writes commit, and
//! reads the store again when another process changed it.
//!
//! The settings, by scope and field (values are JSON unless said):
//! - `roles`: `<user key>` → `"moderator"` or `"admin"` (plain text).
//! - `room:<room>`: `topic` (plain text), `private` (`"1"`),
//!   `role:<key>` → [`Held`], `invite:<key>` → [`Held`],
//!   `ban:<key>` and `mute:<key>` → [`Sanction`], `removed:<key>` → the id
//!   of the room event that removed the user (plain text).
//! - `server`: `ban:<key>`, `mute:<key>`, `addr:<address>` → [`Sanction`].
//! - `blocks:<key>`: `<blocked key>` → the blocked display name (plain).
//!
//! Expiry is data: a ban or mute carries its end (`until`) and every
//! check compares it with the clock; nothing waits for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chat_shared::{BanInfo, Role, RoomRole, rank};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

pub const ROLES: &str = "roles";
pub const SERVER: &str = "server";

/// The scope of a room's settings.
pub fn room_scope(room: &str) -> String {
    format!("room:{room}")
}

/// The scope of a user's blocks.
pub fn blocks_scope(key: &str) -> String {
    format!("blocks:{key}")
}

/// A ban or a mute: who, by whom, why, until when (ms; `None`: until
/// lifted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanction {
    pub user: String,
    pub by: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub until: Option<u64>,
}

impl Sanction {
    /// In force at `now` (ms).
    pub fn active(&self, now: u64) -> bool {
        self.until.is_none_or(|u| u > now)
    }

    pub fn info(&self, kind: &str, room: Option<&str>) -> BanInfo {
        BanInfo {
            user: self.user.clone(),
            kind: kind.to_owned(),
            room: room.map(str::to_owned),
            by: self.by.clone(),
            reason: self.reason.clone(),
            until: self.until,
        }
    }
}

/// A room role or an invite: the holder's display name, and the role or
/// who invited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub user: String,
    #[serde(default)]
    pub role: Option<RoomRole>,
    #[serde(default)]
    pub by: Option<String>,
}

/// One room's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPolicy {
    pub topic: String,
    pub private: bool,
    /// Key → holder of `owner` or `op`.
    pub roles: BTreeMap<String, Held>,
    pub invites: BTreeMap<String, Held>,
    pub bans: BTreeMap<String, Sanction>,
    pub mutes: BTreeMap<String, Sanction>,
    /// Key → the id of the room event that removed it (until it joins
    /// again).
    pub removed: BTreeMap<String, u64>,
}

impl RoomPolicy {
    pub fn role_of(&self, key: &str) -> RoomRole {
        self.roles
            .get(key)
            .and_then(|h| h.role)
            .unwrap_or(RoomRole::Member)
    }

    pub fn has_owner(&self) -> bool {
        self.roles.values().any(|h| h.role == Some(RoomRole::Owner))
    }

    /// Names holding `role`, sorted by key.
    pub fn holders(&self, role: RoomRole) -> Vec<String> {
        self.roles
            .values()
            .filter(|h| h.role == Some(role))
            .map(|h| h.user.clone())
            .collect()
    }
}

/// Everything the moderation checks read, as of the last load.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    roles: HashMap<String, Role>,
    rooms: HashMap<String, RoomPolicy>,
    pub bans: BTreeMap<String, Sanction>,
    pub mutes: BTreeMap<String, Sanction>,
    /// Client address → a guest ban from that address.
    pub address_bans: BTreeMap<String, Sanction>,
    blocks: HashMap<String, BTreeMap<String, String>>,
    /// Key → the rooms it holds an invite to (what a new holder of a guest
    /// name must not inherit, found without a walk of every room).
    invited: HashMap<String, std::collections::BTreeSet<String>>,
}

impl Policy {
    /// Reads the settings the store holds.
    pub fn from_settings(settings: impl IntoIterator<Item = (String, String, String)>) -> Policy {
        let mut p = Policy::default();
        for (scope, field, value) in settings {
            p.apply(&scope, &field, Some(&value));
        }
        p
    }

    /// Applies one setting's change (`None`: removed). A value that does
    /// not read is ignored (and logged): a bad row never stops the server.
    pub fn apply(&mut self, scope: &str, field: &str, value: Option<&str>) {
        fn json<T: serde::de::DeserializeOwned>(scope: &str, v: &str) -> Option<T> {
            let parsed = serde_json::from_str(v);
            if parsed.is_err() {
                tracing::warn!(scope, "a moderation setting that does not read: ignored");
            }
            parsed.ok()
        }
        fn put<T>(map: &mut BTreeMap<String, T>, key: &str, v: Option<T>) {
            match v {
                Some(v) => map.insert(key.to_owned(), v),
                None => map.remove(key),
            };
        }
        if scope == ROLES {
            match value.and_then(Role::parse_account_role) {
                Some(role) if role != Role::User => self.roles.insert(field.to_owned(), role),
                _ => self.roles.remove(field),
            };
        } else if scope == SERVER {
            let (kind, key) = field.split_once(':').unwrap_or((field, ""));
            let v = value.and_then(|v| json::<Sanction>(scope, v));
            match kind {
                "ban" => put(&mut self.bans, key, v),
                "mute" => put(&mut self.mutes, key, v),
                "addr" => put(&mut self.address_bans, key, v),
                _ => {}
            }
        } else if let Some(room) = scope.strip_prefix("room:") {
            let r = self.rooms.entry(room.to_owned()).or_default();
            let (kind, key) = field.split_once(':').unwrap_or((field, ""));
            match kind {
                "topic" => r.topic = value.unwrap_or_default().to_owned(),
                "private" => r.private = value == Some("1"),
                "role" => put(&mut r.roles, key, value.and_then(|v| json(scope, v))),
                "invite" => {
                    let held: Option<Held> = value.and_then(|v| json(scope, v));
                    let rooms = self.invited.entry(key.to_owned()).or_default();
                    if held.is_some() {
                        rooms.insert(room.to_owned());
                    } else {
                        rooms.remove(room);
                    }
                    if rooms.is_empty() {
                        self.invited.remove(key);
                    }
                    put(&mut r.invites, key, held)
                }
                "ban" => put(&mut r.bans, key, value.and_then(|v| json(scope, v))),
                "mute" => put(&mut r.mutes, key, value.and_then(|v| json(scope, v))),
                "removed" => put(&mut r.removed, key, value.and_then(|v| v.parse().ok())),
                _ => {}
            }
            if *r == RoomPolicy::default() {
                self.rooms.remove(room);
            }
        } else if let Some(who) = scope.strip_prefix("blocks:") {
            let b = self.blocks.entry(who.to_owned()).or_default();
            put(b, field, value.map(str::to_owned));
            if b.is_empty() {
                self.blocks.remove(who);
            }
        }
    }

    /// An account's server role (`user` unless given another).
    pub fn account_role(&self, key: &str) -> Role {
        self.roles.get(key).copied().unwrap_or(Role::User)
    }

    /// The server role of `key`: `guest` for a guest.
    pub fn role(&self, key: &str, account: bool) -> Role {
        if account {
            self.account_role(key)
        } else {
            Role::Guest
        }
    }

    /// A room's settings, if it has any.
    pub fn room(&self, room: &str) -> Option<&RoomPolicy> {
        self.rooms.get(room)
    }

    pub fn room_role(&self, room: &str, key: &str) -> RoomRole {
        self.rooms
            .get(room)
            .map_or(RoomRole::Member, |r| r.role_of(key))
    }

    /// The rank of `key` in `room` (or server-wide, with `None`).
    pub fn rank(&self, key: &str, account: bool, room: Option<&str>) -> u8 {
        let server = self.role(key, account);
        let in_room = room.map_or(RoomRole::Member, |r| self.room_role(r, key));
        rank(server, in_room)
    }

    pub fn is_private(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|r| r.private)
    }

    /// The room ban of `key` in force at `now`.
    pub fn room_ban(&self, room: &str, key: &str, now: u64) -> Option<&Sanction> {
        self.rooms
            .get(room)?
            .bans
            .get(key)
            .filter(|s| s.active(now))
    }

    /// The mute of `key` in force at `now`: the server's, or the room's.
    pub fn mute(&self, room: Option<&str>, key: &str, now: u64) -> Option<(&Sanction, bool)> {
        if let Some(s) = self.mutes.get(key).filter(|s| s.active(now)) {
            return Some((s, false));
        }
        let r = self.rooms.get(room?)?;
        r.mutes
            .get(key)
            .filter(|s| s.active(now))
            .map(|s| (s, true))
    }

    /// The server ban of the name `key` in force at `now`.
    pub fn server_ban(&self, key: &str, now: u64) -> Option<&Sanction> {
        self.bans.get(key).filter(|s| s.active(now))
    }

    /// The guest ban of the client address `addr` in force at `now`.
    pub fn address_ban(&self, addr: &str, now: u64) -> Option<&Sanction> {
        self.address_bans.get(addr).filter(|s| s.active(now))
    }

    /// Whether either of the two users blocks the other.
    pub fn blocked_between(&self, a: &str, b: &str) -> bool {
        let blocks = |x: &str, y: &str| self.blocks.get(x).is_some_and(|m| m.contains_key(y));
        blocks(a, b) || blocks(b, a)
    }

    /// The keys `key` blocks.
    pub fn blocked_keys(&self, key: &str) -> Vec<String> {
        self.blocks
            .get(key)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The names `key` blocks, sorted.
    pub fn blocked_by(&self, key: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .blocks
            .get(key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|n| n.to_ascii_lowercase());
        v
    }

    /// Whether `key` may see and join `room`: an open room, or a private
    /// one it is invited to or holds a role in, or a moderator or admin.
    pub fn may_enter(&self, room: &str, key: &str, account: bool) -> bool {
        let Some(r) = self.rooms.get(room) else {
            return true;
        };
        !r.private
            || r.invites.contains_key(key)
            || r.roles.contains_key(key)
            || self.role(key, account).is_staff()
    }

    /// Every ban and mute in force at `now`: the server's, then each
    /// room's.
    pub fn bans_in_force(&self, now: u64) -> Vec<BanInfo> {
        let mut out = Vec::new();
        for (kind, map) in [("ban", &self.bans), ("mute", &self.mutes)] {
            out.extend(
                map.values()
                    .filter(|s| s.active(now))
                    .map(|s| s.info(kind, None)),
            );
        }
        let mut rooms: Vec<_> = self.rooms.iter().collect();
        rooms.sort_by(|a, b| a.0.cmp(b.0));
        for (room, r) in rooms {
            out.extend(room_bans(room, r, now));
        }
        out
    }

    /// The (scope, field) of every ban and mute that has ended by `now`:
    /// what a sweep may remove.
    pub fn ended(&self, now: u64) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (kind, map) in [
            ("ban", &self.bans),
            ("mute", &self.mutes),
            ("addr", &self.address_bans),
        ] {
            for (k, s) in map {
                if !s.active(now) {
                    out.push((SERVER.to_owned(), format!("{kind}:{k}")));
                }
            }
        }
        for (room, r) in &self.rooms {
            for (kind, map) in [("ban", &r.bans), ("mute", &r.mutes)] {
                for (k, s) in map {
                    if !s.active(now) {
                        out.push((room_scope(room), format!("{kind}:{k}")));
                    }
                }
            }
        }
        out
    }

    /// The rooms with a setting that names `key` as an invitee, for a
    /// guest whose session ended.
    pub fn invites_of(&self, key: &str) -> Vec<String> {
        self.invited
            .get(key)
            .map(|rooms| rooms.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A room's bans and mutes in force at `now`.
pub fn room_bans(room: &str, r: &RoomPolicy, now: u64) -> Vec<BanInfo> {
    let mut out = Vec::new();
    for (kind, map) in [("ban", &r.bans), ("mute", &r.mutes)] {
        out.extend(
            map.values()
                .filter(|s| s.active(now))
                .map(|s| s.info(kind, Some(room))),
        );
    }
    out
}

/// The node's copy of the [`Policy`], and the store behind it.
pub struct Moderation {
    store: Arc<dyn Store>,
    policy: RwLock<Arc<Policy>>,
    /// The store's settings version the copy was read at; [`UNREAD`]
    /// until the first read.
    version: AtomicU64,
    /// One first read at a time.
    first: tokio::sync::Mutex<()>,
}

/// The version of a copy not read yet.
const UNREAD: u64 = u64::MAX;

impl Moderation {
    /// A copy to be read from `store` on first use.
    pub fn new(store: Arc<dyn Store>) -> Moderation {
        Moderation {
            store,
            policy: RwLock::new(Arc::default()),
            version: AtomicU64::new(UNREAD),
            first: tokio::sync::Mutex::new(()),
        }
    }

    /// The policy as of now (a cheap clone of a pointer), read from the
    /// store first if it never was. A store that cannot be read is an
    /// error: no check is made against an empty policy.
    pub async fn current(&self) -> Result<Arc<Policy>, StoreError> {
        if self.version.load(Ordering::Acquire) == UNREAD {
            let _first = self.first.lock().await;
            if self.version.load(Ordering::Acquire) == UNREAD {
                self.refresh().await?;
            }
        }
        Ok(self.cached())
    }

    /// The copy as it is, read or not (for what may show a default).
    pub fn cached(&self) -> Arc<Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes a setting and, once it has committed, applies it here.
    pub async fn set(
        &self,
        scope: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<(), StoreError> {
        self.store
            .put_setting(scope, field, value.clone())
            .await?
            .await?;
        let mut guard = self.policy.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        next.apply(scope, field, value.as_deref());
        *guard = Arc::new(next);
        Ok(())
    }

    /// Reads the store again if its settings changed since the last read
    /// (another node, or `chat-server account role`). Returns whether it
    /// did.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let version = self.store.settings_version().await?;
        if version == self.version.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let policy = Policy::from_settings(self.store.settings().await?);
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
        self.version.store(version, Ordering::Release);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(scope: &str, field: &str, value: &str) -> (String, String, String) {
        (scope.into(), field.into(), value.into())
    }

    #[test]
    fn settings_read_into_roles_rooms_bans_and_blocks() {
        let ban = r#"{"user":"Bob","by":"alice","reason":"spam","until":2000}"#;
        let p = Policy::from_settings([
            s(ROLES, "carol", "moderator"),
            s("room:#ops", "private", "1"),
            s("room:#ops", "topic", "ops only"),
            s(
                "room:#ops",
                "role:alice",
                r#"{"user":"Alice","role":"owner"}"#,
            ),
            s("room:#ops", "ban:bob", ban),
            s(SERVER, "mute:dave", r#"{"user":"dave","by":"carol"}"#),
            s("blocks:erin", "bob", "Bob"),
            s("room:#ops", "invite:frank", "not json"),
        ]);
        assert_eq!(p.role("carol", true), Role::Moderator);
        assert_eq!(p.role("carol", false), Role::Guest);
        assert_eq!(p.role("x", true), Role::User);
        assert!(p.is_private("#ops"));
        assert_eq!(p.room("#ops").unwrap().topic, "ops only");
        assert_eq!(p.rank("alice", true, Some("#ops")), 2);
        assert_eq!(p.rank("carol", true, Some("#ops")), 3);
        assert!(p.room_ban("#ops", "bob", 1999).is_some());
        assert!(p.room_ban("#ops", "bob", 2000).is_none(), "ends by itself");
        assert!(p.mute(Some("#x"), "dave", 5).is_some_and(|(_, room)| !room));
        assert!(p.blocked_between("bob", "erin"));
        assert!(p.blocked_between("erin", "bob"));
        assert_eq!(p.blocked_by("erin"), vec!["Bob".to_owned()]);
        assert!(
            !p.may_enter("#ops", "frank", true),
            "a bad invite reads as none"
        );
        assert!(p.may_enter("#ops", "alice", true));
        assert!(p.may_enter("#ops", "carol", true));
        assert!(p.may_enter("#open", "frank", false));
        assert_eq!(p.ended(3000), vec![("room:#ops".into(), "ban:bob".into())]);
    }

    #[test]
    fn invites_are_found_by_invitee() {
        let mut p = Policy::default();
        let held = r#"{"user":"Gus","by":"alice"}"#;
        p.apply("room:#a", "invite:gus", Some(held));
        p.apply("room:#b", "invite:gus", Some(held));
        assert_eq!(p.invites_of("gus"), vec!["#a".to_owned(), "#b".to_owned()]);
        assert!(p.may_enter("#a", "gus", false));
        p.apply("room:#a", "invite:gus", None);
        assert_eq!(p.invites_of("gus"), vec!["#b".to_owned()]);
        p.apply("room:#b", "invite:gus", None);
        assert!(p.invites_of("gus").is_empty());
    }

    #[test]
    fn removing_every_setting_forgets_the_room() {
        let mut p = Policy::default();
        p.apply("room:#a", "topic", Some("hi"));
        assert!(p.room("#a").is_some());
        p.apply("room:#a", "topic", None);
        assert!(p.room("#a").is_none());
        p.apply(ROLES, "x", Some("admin"));
        p.apply(ROLES, "x", Some("user"));
        assert_eq!(p.account_role("x"), Role::User);
    }
}
