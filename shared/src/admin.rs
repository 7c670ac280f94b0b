//! The `/admin` namespace's payloads.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// A room and how many members it has (`room:list`, `presence:get` and the
/// admin snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCount {
    pub room: String,
    pub members: u64,
    /// (v3) `room:list` items: the room's topic. Absent on `/admin` and
    /// in `presence:get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// (v3) `room:list` items: whether the room is private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
}

impl RoomCount {
    /// A room and its member count, with no settings.
    pub fn new(room: impl Into<String>, members: u64) -> RoomCount {
        RoomCount {
            room: room.into(),
            members,
            topic: None,
            private: None,
        }
    }
}

/// The `auth` object of an `/admin` handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAuth {
    pub token: String,
}

/// One connected user, as an admin sees it.
///
/// v2 dropped `sid`: a socket id is also the transport session id, a
/// credential that lets whoever holds it post packets as the user, so it
/// appears nowhere on `/admin` (holding the admin token must not let anyone
/// act as a user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminUser {
    pub username: String,
    pub rooms: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub connected_at: u64,
    /// (v2) The socket's transport: [`TRANSPORT_WEBSOCKET`] or
    /// [`TRANSPORT_POLLING`].
    pub transport: String,
    /// (v3) The user's server role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::moderation::Role>,
    /// (v3) How many clients the user has connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// (v3) On a cluster, the node the user is connected to (the first
    /// of its clients' nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `AdminUser.transport` of a socket on WebSocket.
pub const TRANSPORT_WEBSOCKET: &str = "websocket";
/// `AdminUser.transport` of a socket on HTTP long-polling.
pub const TRANSPORT_POLLING: &str = "polling";

/// `admin:snapshot`, sent once on connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminSnapshot {
    pub online: u64,
    pub users: Vec<AdminUser>,
    pub rooms: Vec<RoomCount>,
    pub uptime_ms: u64,
}

/// `admin:event.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminEventType {
    Connect,
    Disconnect,
    Recovered,
    Rejected,
    Join,
    Leave,
    Message,
    Error,
    /// An account was created or removed (`reason: "created"` or
    /// `"removed"`). An extension of the contract's list: monitoring sees
    /// registrations, and what the `account` commands do.
    Account,
    /// (v3) A moderation action or a room settings change.
    Moderation,
}

/// The kind of a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Room,
    Dm,
    Global,
    Broadcast,
}

/// `admin:event`: one server-side happening. Never carries message text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEvent {
    #[serde(rename = "type")]
    pub kind_of_event: AdminEventType,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MessageKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The message's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// (v3) `moderation`: `kick`, `ban`, `unban`, `mute`, `unmute`, `role`,
    /// `topic`, `private` or `invite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// (v3) `moderation`: who acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// (v3) `moderation`: when a ban or mute ends (ms), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

impl AdminEvent {
    /// An event of `kind_of_event` at `ts` with every optional field empty.
    pub fn new(kind_of_event: AdminEventType, ts: u64) -> Self {
        AdminEvent {
            kind_of_event,
            ts,
            user: None,
            room: None,
            reason: None,
            code: None,
            kind: None,
            to: None,
            bytes: None,
            action: None,
            by: None,
            until: None,
        }
    }
}

/// `admin:stats`, every `--stats-interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminStats {
    pub online: u64,
    pub rooms: u64,
    pub messages_total: u64,
    pub messages_per_sec: f64,
    pub errors_total: u64,
    pub uptime_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ServerEvent;
    use serde_json::json;

    #[test]
    fn snapshot_shape() {
        let v = json!({"online": 2, "users": [
            {"username": "alice", "rooms": ["#a"], "connectedAt": 17, "transport": "websocket"},
            {"username": "bob", "rooms": [], "connectedAt": 18, "transport": "polling"}
        ], "rooms": [{"room": "#a", "members": 1}], "uptimeMs": 5});
        let ServerEvent::AdminSnapshot(s) =
            ServerEvent::parse("admin:snapshot", v.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.users[0].connected_at, 17);
        assert_eq!(s.users[0].transport, TRANSPORT_WEBSOCKET);
        assert_eq!(s.users[1].transport, TRANSPORT_POLLING);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
    }

    #[test]
    fn snapshot_names_no_socket_id() {
        let u = AdminUser {
            username: "alice".into(),
            rooms: vec!["#a".into()],
            connected_at: 1,
            transport: TRANSPORT_WEBSOCKET.into(),
            role: None,
            sessions: None,
            node: None,
        };
        let v = serde_json::to_value(&u).unwrap();
        assert_eq!(
            v,
            json!({"username": "alice", "rooms": ["#a"], "connectedAt": 1, "transport": "websocket"})
        );
        assert!(v.get("sid").is_none());
        // A v1 user entry (with `sid`, without `transport`) is not v2.
        assert!(
            serde_json::from_value::<AdminUser>(
                json!({"username": "a", "sid": "s1", "rooms": [], "connectedAt": 1})
            )
            .is_err()
        );
    }

    #[test]
    fn event_shape() {
        let v = json!({"type": "message", "ts": 3, "user": "alice", "room": "#a", "kind": "room", "bytes": 5});
        let ServerEvent::AdminEvent(e) = ServerEvent::parse("admin:event", v.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(e.kind_of_event, AdminEventType::Message);
        assert_eq!(e.kind, Some(MessageKind::Room));
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
        let r = json!({"type": "rejected", "ts": 4, "code": "username_taken", "user": "bob"});
        let ServerEvent::AdminEvent(e) = ServerEvent::parse("admin:event", r.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(e.code, Some(ErrorCode::UsernameTaken));
        assert_eq!(serde_json::to_value(&e).unwrap(), r);
    }

    #[test]
    fn stats_shape() {
        let v = json!({"online": 2, "rooms": 1, "messagesTotal": 10, "messagesPerSec": 2.5,
            "errorsTotal": 0, "uptimeMs": 5000});
        let ServerEvent::AdminStats(s) = ServerEvent::parse("admin:stats", v.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.messages_per_sec, 2.5);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
    }
}
