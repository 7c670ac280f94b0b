//! (v3) Roles and moderation: server and room roles, the rank rule, room
//! settings, room events, bans, mutes, blocks and guest renames.
//!
//! The rank rule lives here, in [`rank`] and [`need_above`], so that the
//! server applies it in one place and a client can explain a refusal
//! before it is sent.

use serde::{Deserialize, Serialize};

/// A server role. Accounts hold `user`, `moderator` or `admin`; a guest is
/// `guest` and can hold no role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Guest,
    User,
    Moderator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    /// Reads `user`, `moderator` or `admin` (the roles an account can be
    /// given); `guest` and anything else is `None`.
    pub fn parse_account_role(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "user" => Some(Role::User),
            "moderator" => Some(Role::Moderator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Moderators and admins act server-wide.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A room role. `member` is what `room:role` gives to take a role away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomRole {
    Member,
    Op,
    Owner,
}

impl RoomRole {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomRole::Member => "member",
            RoomRole::Op => "op",
            RoomRole::Owner => "owner",
        }
    }
}

impl std::fmt::Display for RoomRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rank of someone in a room: admin 4, moderator 3, room owner 2, room
/// op 1, member or guest 0. A server role counts in every room.
pub fn rank(server: Role, room: RoomRole) -> u8 {
    match server {
        Role::Admin => 4,
        Role::Moderator => 3,
        Role::User | Role::Guest => match room {
            RoomRole::Owner => 2,
            RoomRole::Op => 1,
            RoomRole::Member => 0,
        },
    }
}

/// The name of the lowest role whose rank is strictly above `target_rank`
/// (`admin` for an admin target): what `context.need` says when the sender
/// has the role an action needs but not the rank.
pub fn need_above(target_rank: u8) -> &'static str {
    match target_rank {
        0 => "op",
        1 => "owner",
        2 => "moderator",
        _ => "admin",
    }
}

/// The name of the role of `rank`, for `context.need`.
pub fn rank_name(rank: u8) -> &'static str {
    match rank {
        0 => "member",
        1 => "op",
        2 => "owner",
        3 => "moderator",
        _ => "admin",
    }
}

/// The kinds of room event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomEventKind {
    Topic,
    Private,
    Role,
    Invite,
    Kick,
    Ban,
    Unban,
    Mute,
    Unmute,
}

impl RoomEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomEventKind::Topic => "topic",
            RoomEventKind::Private => "private",
            RoomEventKind::Role => "role",
            RoomEventKind::Invite => "invite",
            RoomEventKind::Kick => "kick",
            RoomEventKind::Ban => "ban",
            RoomEventKind::Unban => "unban",
            RoomEventKind::Mute => "mute",
            RoomEventKind::Unmute => "unmute",
        }
    }

    /// A kick or a ban: the target leaves the room.
    pub fn removes(self) -> bool {
        matches!(self, RoomEventKind::Kick | RoomEventKind::Ban)
    }

    /// Carries `user`, `reason` and `until`.
    pub fn is_sanction(self) -> bool {
        matches!(
            self,
            RoomEventKind::Kick
                | RoomEventKind::Ban
                | RoomEventKind::Unban
                | RoomEventKind::Mute
                | RoomEventKind::Unmute
        )
    }
}

/// `room:event`: one moderation action or settings change, an entry of the
/// room's log with an id from the message sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomEvent {
    pub id: String,
    pub ts: u64,
    pub room: String,
    pub kind: RoomEventKind,
    pub by: String,
    /// Role, invite, kick, ban, unban, mute, unmute: whom it is about.
    #[serde(default)]
    pub user: Option<String>,
    /// Kick, ban, unban, mute, unmute: the reason given (null for none).
    /// Always on the wire (null when it does not apply): an optional
    /// field may be null or absent, the two mean the same.
    #[serde(default)]
    pub reason: Option<String>,
    /// Kick, ban, mute: when it ends, ms since the Unix epoch, or null for
    /// no end.
    #[serde(default)]
    pub until: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoomRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
}

impl RoomEvent {
    /// An event of `kind` with nothing else said yet: the server fills in
    /// its id, time, room and author when it numbers it.
    pub fn new(kind: RoomEventKind) -> RoomEvent {
        RoomEvent {
            id: String::new(),
            ts: 0,
            room: String::new(),
            kind,
            by: String::new(),
            user: None,
            reason: None,
            until: None,
            topic: None,
            private: None,
            role: None,
            replayed: None,
        }
    }
}

/// `room:invited`: an invite to a room reached this user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInvited {
    pub room: String,
    pub by: String,
}

// ------------------------------------------------------------- requests

/// `room:settings {room, topic?, private?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettingsRequest {
    pub room: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
}

/// `room:invite`, `room:unban`, `room:unmute`: `{room, user}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomUserRequest {
    pub room: String,
    pub user: String,
}

/// `room:kick`, `room:ban`, `room:mute`: `{room, user, reason?, for?}`
/// (`for` is ignored by a kick).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSanctionRequest {
    pub room: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds; absent: until lifted.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_secs: Option<u64>,
}

/// `room:role {room, user, role}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRoleRequest {
    pub room: String,
    pub user: String,
    pub role: RoomRole,
}

/// `user:kick`, `user:ban`, `user:mute`: `{user, reason?, for?}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSanctionRequest {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds; absent: until lifted.
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_secs: Option<u64>,
}

/// `user:unban`, `user:unmute`, `user:block`, `user:unblock`: `{user}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRequest {
    pub user: String,
}

/// `user:role {user, role}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRoleRequest {
    pub user: String,
    pub role: Role,
}

/// `user:rename {username}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameRequest {
    pub username: String,
}

// ----------------------------------------------------------------- acks

/// One member in a `room:info` ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMemberInfo {
    pub username: String,
    pub role: RoomRole,
    pub online: bool,
}

/// A ban or a mute in force (`user:bans`, `room:info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    pub user: String,
    /// `ban` or `mute`.
    pub kind: String,
    /// Null for a server-wide one.
    pub room: Option<String>,
    pub by: String,
    pub reason: Option<String>,
    pub until: Option<u64>,
}

/// `room:info` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfoAck {
    pub room: String,
    pub topic: String,
    pub private: bool,
    pub owners: Vec<String>,
    pub ops: Vec<String>,
    pub members: Vec<RoomMemberInfo>,
    /// Ops and above only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invited: Option<Vec<String>>,
    /// Ops and above only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bans: Option<Vec<BanInfo>>,
}

/// `room:settings` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettingsAck {
    pub room: String,
    pub topic: String,
    pub private: bool,
}

/// `room:invite` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomUserAck {
    pub room: String,
    pub user: String,
}

/// `room:role` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRoleAck {
    pub room: String,
    pub user: String,
    pub role: RoomRole,
}

/// `user:role` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRoleAck {
    pub user: String,
    pub role: Role,
}

/// `user:bans` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BansAck {
    pub bans: Vec<BanInfo>,
}

/// `user:block` and `user:unblock` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAck {
    pub blocked: Vec<String>,
}

/// `user:rename` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameAck {
    pub username: String,
}

/// Reads a DURATION as a person types it: a number of seconds, or a number
/// with `m`, `h` or `d` (`60`, `10m`, `2h`, `1d`). `None` for anything
/// else.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, 's'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranks_follow_the_contract() {
        assert_eq!(rank(Role::Admin, RoomRole::Member), 4);
        assert_eq!(rank(Role::Moderator, RoomRole::Owner), 3);
        assert_eq!(rank(Role::User, RoomRole::Owner), 2);
        assert_eq!(rank(Role::User, RoomRole::Op), 1);
        assert_eq!(rank(Role::Guest, RoomRole::Member), 0);
        assert_eq!(need_above(0), "op");
        assert_eq!(need_above(1), "owner");
        assert_eq!(need_above(2), "moderator");
        assert_eq!(need_above(3), "admin");
        assert_eq!(need_above(4), "admin");
    }

    #[test]
    fn durations_read_as_people_type_them() {
        assert_eq!(parse_duration_secs("60"), Some(60));
        assert_eq!(parse_duration_secs("10m"), Some(600));
        assert_eq!(parse_duration_secs("2h"), Some(7200));
        assert_eq!(parse_duration_secs("1d"), Some(86_400));
        assert_eq!(parse_duration_secs("0"), None);
        assert_eq!(parse_duration_secs("m"), None);
        assert_eq!(parse_duration_secs("5x"), None);
        assert_eq!(parse_duration_secs("-5"), None);
        assert_eq!(parse_duration_secs("reason"), None);
    }

    #[test]
    fn room_event_shape() {
        let v = json!({"id": "7", "ts": 1, "room": "#ops", "kind": "kick", "by": "alice",
            "user": "bob", "reason": "spam", "until": null});
        let e: RoomEvent = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(e.kind, RoomEventKind::Kick);
        assert_eq!(e.until, None);
        assert_eq!(e.reason.as_deref(), Some("spam"));
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
        let t = json!({"id": "8", "ts": 2, "room": "#ops", "kind": "topic", "by": "alice",
            "user": null, "reason": null, "until": null, "topic": "hi"});
        let e: RoomEvent = serde_json::from_value(t.clone()).unwrap();
        assert_eq!(serde_json::to_value(&e).unwrap(), t);
    }

    #[test]
    fn sanction_reads_for_and_null() {
        let r: RoomSanctionRequest =
            serde_json::from_value(json!({"room": "#a", "user": "b", "reason": null, "for": 60}))
                .unwrap();
        assert_eq!(r.for_secs, Some(60));
        assert_eq!(r.reason, None);
        let r: UserRoleRequest =
            serde_json::from_value(json!({"user": "b", "role": "moderator"})).unwrap();
        assert_eq!(r.role, Role::Moderator);
    }
}
