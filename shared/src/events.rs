//! Event names, payload structs and the two event enums.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admin::{AdminEvent, AdminSnapshot, AdminStats};
use crate::changes::{
    MessageDeleteRequest, MessageEditRequest, MessageReactRequest, MessageUpdate, Reaction,
};
use crate::error::{ChatError, ErrorCode};
use crate::moderation::{
    RenameRequest, Role, RoomEvent, RoomInvited, RoomRoleRequest, RoomSanctionRequest,
    RoomSettingsRequest, RoomUserRequest, UserRequest, UserRoleRequest, UserSanctionRequest,
};
use crate::rules::{HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT};
use crate::sessions::{Marker, ReadMarkRequest, ReadMarker, RoomChanged, SessionEndRequest};

/// Wire names of every event, client → server and server → client.
pub mod names {
    pub const ROOM_JOIN: &str = "room:join";
    pub const ROOM_LEAVE: &str = "room:leave";
    pub const ROOM_LIST: &str = "room:list";
    pub const ROOM_MESSAGE: &str = "room:message";
    pub const DM_MESSAGE: &str = "dm:message";
    pub const GLOBAL_MESSAGE: &str = "global:message";
    pub const BROADCAST_MESSAGE: &str = "broadcast:message";
    pub const TYPING: &str = "typing";
    pub const PRESENCE_GET: &str = "presence:get";
    pub const HISTORY: &str = "history";
    pub const PING: &str = "ping";
    pub const ACCOUNT_PASSWORD: &str = "account:password";
    pub const SESSION: &str = "session";
    pub const PRESENCE: &str = "presence";
    pub const CHAT_ERROR: &str = "chat:error";
    pub const ADMIN_SNAPSHOT: &str = "admin:snapshot";
    pub const ADMIN_EVENT: &str = "admin:event";
    pub const ADMIN_STATS: &str = "admin:stats";
    // (v3) Roles and moderation.
    pub const ROOM_INFO: &str = "room:info";
    pub const ROOM_SETTINGS: &str = "room:settings";
    pub const ROOM_INVITE: &str = "room:invite";
    pub const ROOM_KICK: &str = "room:kick";
    pub const ROOM_BAN: &str = "room:ban";
    pub const ROOM_UNBAN: &str = "room:unban";
    pub const ROOM_MUTE: &str = "room:mute";
    pub const ROOM_UNMUTE: &str = "room:unmute";
    pub const ROOM_ROLE: &str = "room:role";
    pub const USER_KICK: &str = "user:kick";
    pub const USER_BAN: &str = "user:ban";
    pub const USER_UNBAN: &str = "user:unban";
    pub const USER_MUTE: &str = "user:mute";
    pub const USER_UNMUTE: &str = "user:unmute";
    pub const USER_BANS: &str = "user:bans";
    pub const USER_ROLE: &str = "user:role";
    pub const USER_BLOCK: &str = "user:block";
    pub const USER_UNBLOCK: &str = "user:unblock";
    pub const USER_RENAME: &str = "user:rename";
    pub const ROOM_EVENT: &str = "room:event";
    pub const ROOM_INVITED: &str = "room:invited";
    // (v3) Several clients per account and read markers.
    pub const SESSION_LIST: &str = "session:list";
    pub const SESSION_END: &str = "session:end";
    pub const READ_MARK: &str = "read:mark";
    pub const READ_MARKER: &str = "read:marker";
    pub const ROOM_JOINED: &str = "room:joined";
    pub const ROOM_LEFT: &str = "room:left";
    // (v3) Replies, edits, deletions and reactions.
    pub const MESSAGE_EDIT: &str = "message:edit";
    pub const MESSAGE_DELETE: &str = "message:delete";
    pub const MESSAGE_REACT: &str = "message:react";
    pub const MESSAGE_UPDATE: &str = "message:update";

    /// Every event a client may send on `/chat`.
    pub const CLIENT_EVENTS: [&str; 37] = [
        ROOM_JOIN,
        ROOM_LEAVE,
        ROOM_LIST,
        ROOM_MESSAGE,
        DM_MESSAGE,
        GLOBAL_MESSAGE,
        BROADCAST_MESSAGE,
        TYPING,
        PRESENCE_GET,
        HISTORY,
        PING,
        ACCOUNT_PASSWORD,
        ROOM_INFO,
        ROOM_SETTINGS,
        ROOM_INVITE,
        ROOM_KICK,
        ROOM_BAN,
        ROOM_UNBAN,
        ROOM_MUTE,
        ROOM_UNMUTE,
        ROOM_ROLE,
        USER_KICK,
        USER_BAN,
        USER_UNBAN,
        USER_MUTE,
        USER_UNMUTE,
        USER_BANS,
        USER_ROLE,
        USER_BLOCK,
        USER_UNBLOCK,
        USER_RENAME,
        SESSION_LIST,
        SESSION_END,
        READ_MARK,
        MESSAGE_EDIT,
        MESSAGE_DELETE,
        MESSAGE_REACT,
    ];
}

// ---------------------------------------------------------------- handshake

/// The `auth` object of a `/chat` handshake.
///
/// v2 adds `password` and `register`; both are absent for a guest, so a v1
/// client's `{username}` still reads (and serialises) exactly as before.
/// `Default` lets callers name only what they use:
/// `Auth { username, ..Default::default() }`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    pub username: String,
    /// The account's password: needed to connect as a name that has an
    /// account, and to create one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `true` asks the server to create an account for `username` with
    /// `password` (or to claim the guest name this session already uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<bool>,
    /// The token of the session to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The `id` of the last message received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// (v3) A label the user sees in `session:list` (at most 64
    /// characters are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// (v3) An API token of the account (see [`crate::api`]), accepted
    /// instead of `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Written by hand so that the password never reaches a log through `{:?}`
/// (the contract: passwords are never logged).
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("register", &self.register)
            .field("session", &self.session)
            .field("offset", &self.offset)
            .field("client", &self.client)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// What `Debug` shows in place of a password.
const REDACTED: &str = "<redacted>";

/// `session`: the first event on every accepted `/chat` connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub sid: String,
    pub username: String,
    pub session: String,
    pub recovered: bool,
    pub rooms: Vec<String>,
    pub missed: u64,
    pub truncated: bool,
    /// (v3) `guest`, `user`, `moderator` or `admin`. `None` from a v2
    /// server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// (v3) The usernames this user blocks.
    #[serde(default)]
    pub blocked: Vec<String>,
    /// (v3) Where this user stopped reading in each of its rooms and DM
    /// conversations, with what is unread after it.
    #[serde(default)]
    pub markers: Vec<Marker>,
}

// ---------------------------------------------------------- client payloads

/// `room:join` and `room:leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRequest {
    pub room: String,
}

/// `room:message` from a client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMessageRequest {
    pub room: String,
    pub text: String,
    /// (v2) An IRC-style `/me` line. Absent means false, and false is not
    /// sent, so a plain message keeps its v1 shape.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
    /// (v3) The id of the message this one answers.
    #[serde(rename = "replyTo", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// `dm:message` from a client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmRequest {
    pub to: String,
    pub text: String,
    /// (v2) An IRC-style `/me` line; see [`RoomMessageRequest::action`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
    /// (v3) The id of the message this one answers.
    #[serde(rename = "replyTo", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// `global:message` and `broadcast:message` from a client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRequest {
    pub text: String,
    /// (v2) An IRC-style `/me` line; see [`RoomMessageRequest::action`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
    /// (v3) The id of the message this one answers.
    #[serde(rename = "replyTo", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// Where a typing signal goes: a room or one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TypingTarget {
    Room(String),
    User(String),
}

/// `typing` from a client: `{room, typing}` or `{to, typing}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypingRequest {
    pub target: TypingTarget,
    pub typing: bool,
}

#[derive(Serialize, Deserialize)]
struct TypingWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    typing: bool,
}

impl Serialize for TypingRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (room, to) = match &self.target {
            TypingTarget::Room(r) => (Some(r.clone()), None),
            TypingTarget::User(u) => (None, Some(u.clone())),
        };
        TypingWire {
            room,
            to,
            typing: self.typing,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TypingRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = TypingWire::deserialize(d)?;
        let target = match (w.room, w.to) {
            (Some(r), None) => TypingTarget::Room(r),
            (None, Some(u)) => TypingTarget::User(u),
            _ => return Err(serde::de::Error::custom("exactly one of room and to")),
        };
        Ok(TypingRequest {
            target,
            typing: w.typing,
        })
    }
}

/// Whose messages a `history` request pages through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HistoryTarget {
    /// `{room}`: a room's messages (members only).
    Room(String),
    /// `{with}`: the DMs between the sender and this user.
    With(String),
}

/// (v2) `history` from a client: `{room, before?, limit?}` or
/// `{with, before?, limit?}`.
///
/// Like [`TypingRequest`], exactly one of `room` and `with` must be present:
/// the enum makes the other combinations unrepresentable, and reading them is
/// `invalid_payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    pub target: HistoryTarget,
    /// The `id` of the oldest message the client holds: only older ones are
    /// returned. `None` asks for the newest. An id is an opaque string, so a
    /// number here is `invalid_payload`.
    pub before: Option<String>,
    /// How many messages at most; see [`HistoryRequest::effective_limit`].
    pub limit: Option<u64>,
    /// (v3) Room events among the messages (a room's history only).
    pub events: bool,
}

impl HistoryRequest {
    /// The number of messages to return: `limit`, or
    /// [`HISTORY_DEFAULT_LIMIT`] when absent, never more than
    /// [`HISTORY_MAX_LIMIT`] (a larger `limit` is capped, not refused).
    pub fn effective_limit(&self) -> u64 {
        self.limit
            .unwrap_or(HISTORY_DEFAULT_LIMIT)
            .min(HISTORY_MAX_LIMIT)
    }
}

#[derive(Serialize, Deserialize)]
struct HistoryWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    events: Option<bool>,
}

impl Serialize for HistoryRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (room, with) = match &self.target {
            HistoryTarget::Room(r) => (Some(r.clone()), None),
            HistoryTarget::With(u) => (None, Some(u.clone())),
        };
        HistoryWire {
            room,
            with,
            before: self.before.clone(),
            limit: self.limit,
            events: self.events.then_some(true),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for HistoryRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = HistoryWire::deserialize(d)?;
        let target = match (w.room, w.with) {
            (Some(r), None) => HistoryTarget::Room(r),
            (None, Some(u)) => HistoryTarget::With(u),
            _ => return Err(serde::de::Error::custom("exactly one of room and with")),
        };
        Ok(HistoryRequest {
            target,
            before: w.before,
            limit: w.limit,
            events: w.events.unwrap_or(false),
        })
    }
}

/// (v2) `account:password` from a client: `{old, new}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChange {
    pub old: String,
    pub new: String,
}

/// Written by hand so that neither password reaches a log through `{:?}`
/// (a `ClientEvent` is easy to log whole).
impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChange")
            .field("old", &REDACTED)
            .field("new", &REDACTED)
            .finish()
    }
}

/// Every event a client sends on `/chat`, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    RoomJoin(RoomRequest),
    RoomLeave(RoomRequest),
    RoomList,
    RoomMessage(RoomMessageRequest),
    DmMessage(DmRequest),
    GlobalMessage(TextRequest),
    BroadcastMessage(TextRequest),
    Typing(TypingRequest),
    PresenceGet,
    /// (v2) A page of a room's or a conversation's stored messages.
    History(HistoryRequest),
    /// (v2) A liveness check that costs the server O(1).
    Ping,
    /// (v2) An account changes its password.
    AccountPassword(PasswordChange),
    /// (v3) Roles and moderation.
    RoomInfo(RoomRequest),
    RoomSettings(RoomSettingsRequest),
    RoomInvite(RoomUserRequest),
    RoomKick(RoomSanctionRequest),
    RoomBan(RoomSanctionRequest),
    RoomUnban(RoomUserRequest),
    RoomMute(RoomSanctionRequest),
    RoomUnmute(RoomUserRequest),
    RoomRole(RoomRoleRequest),
    UserKick(UserSanctionRequest),
    UserBan(UserSanctionRequest),
    UserUnban(UserRequest),
    UserMute(UserSanctionRequest),
    UserUnmute(UserRequest),
    UserBans,
    UserRole(UserRoleRequest),
    UserBlock(UserRequest),
    UserUnblock(UserRequest),
    UserRename(RenameRequest),
    /// (v3) Several clients per account and read markers.
    SessionList,
    SessionEnd(SessionEndRequest),
    ReadMark(ReadMarkRequest),
    /// (v3) Replies, edits, deletions and reactions.
    MessageEdit(MessageEditRequest),
    MessageDelete(MessageDeleteRequest),
    MessageReact(MessageReactRequest),
}

/// Why a client event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown event {0}")]
    UnknownEvent(String),
    #[error("{0}")]
    InvalidPayload(String),
}

impl ParseError {
    /// The structured error a server answers with.
    pub fn to_chat_error(&self, event: &str) -> ChatError {
        match self {
            ParseError::UnknownEvent(_) => {
                ChatError::new(ErrorCode::UnknownEvent, self.to_string(), event)
            }
            ParseError::InvalidPayload(m) => {
                ChatError::new(ErrorCode::InvalidPayload, m.clone(), event)
            }
        }
    }
}

fn payload<T: DeserializeOwned>(event: &str, expected: &str, v: Value) -> Result<T, ParseError> {
    if !v.is_object() {
        return Err(ParseError::InvalidPayload(format!(
            "{event} expects one JSON object {expected}"
        )));
    }
    serde_json::from_value(v)
        .map_err(|e| ParseError::InvalidPayload(format!("{event} expects {expected}: {e}")))
}

/// Events with no fields take `{}`; a missing payload (`null`) is read as `{}`.
fn empty(event: &str, v: &Value) -> Result<(), ParseError> {
    if v.is_object() || v.is_null() {
        Ok(())
    } else {
        Err(ParseError::InvalidPayload(format!(
            "{event} expects one JSON object {{}}"
        )))
    }
}

impl ClientEvent {
    /// The event's wire name.
    pub fn name(&self) -> &'static str {
        use names::*;
        match self {
            ClientEvent::RoomJoin(_) => ROOM_JOIN,
            ClientEvent::RoomLeave(_) => ROOM_LEAVE,
            ClientEvent::RoomList => ROOM_LIST,
            ClientEvent::RoomMessage(_) => ROOM_MESSAGE,
            ClientEvent::DmMessage(_) => DM_MESSAGE,
            ClientEvent::GlobalMessage(_) => GLOBAL_MESSAGE,
            ClientEvent::BroadcastMessage(_) => BROADCAST_MESSAGE,
            ClientEvent::Typing(_) => TYPING,
            ClientEvent::PresenceGet => PRESENCE_GET,
            ClientEvent::History(_) => HISTORY,
            ClientEvent::Ping => PING,
            ClientEvent::AccountPassword(_) => ACCOUNT_PASSWORD,
            ClientEvent::RoomInfo(_) => ROOM_INFO,
            ClientEvent::RoomSettings(_) => ROOM_SETTINGS,
            ClientEvent::RoomInvite(_) => ROOM_INVITE,
            ClientEvent::RoomKick(_) => ROOM_KICK,
            ClientEvent::RoomBan(_) => ROOM_BAN,
            ClientEvent::RoomUnban(_) => ROOM_UNBAN,
            ClientEvent::RoomMute(_) => ROOM_MUTE,
            ClientEvent::RoomUnmute(_) => ROOM_UNMUTE,
            ClientEvent::RoomRole(_) => ROOM_ROLE,
            ClientEvent::UserKick(_) => USER_KICK,
            ClientEvent::UserBan(_) => USER_BAN,
            ClientEvent::UserUnban(_) => USER_UNBAN,
            ClientEvent::UserMute(_) => USER_MUTE,
            ClientEvent::UserUnmute(_) => USER_UNMUTE,
            ClientEvent::UserBans => USER_BANS,
            ClientEvent::UserRole(_) => USER_ROLE,
            ClientEvent::UserBlock(_) => USER_BLOCK,
            ClientEvent::UserUnblock(_) => USER_UNBLOCK,
            ClientEvent::UserRename(_) => USER_RENAME,
            ClientEvent::SessionList => SESSION_LIST,
            ClientEvent::SessionEnd(_) => SESSION_END,
            ClientEvent::ReadMark(_) => READ_MARK,
            ClientEvent::MessageEdit(_) => MESSAGE_EDIT,
            ClientEvent::MessageDelete(_) => MESSAGE_DELETE,
            ClientEvent::MessageReact(_) => MESSAGE_REACT,
        }
    }

    /// The event's payload as JSON.
    pub fn payload(&self) -> Value {
        let v = match self {
            ClientEvent::RoomJoin(p) | ClientEvent::RoomLeave(p) => serde_json::to_value(p),
            ClientEvent::RoomMessage(p) => serde_json::to_value(p),
            ClientEvent::DmMessage(p) => serde_json::to_value(p),
            ClientEvent::GlobalMessage(p) | ClientEvent::BroadcastMessage(p) => {
                serde_json::to_value(p)
            }
            ClientEvent::Typing(p) => serde_json::to_value(p),
            ClientEvent::History(p) => serde_json::to_value(p),
            ClientEvent::AccountPassword(p) => serde_json::to_value(p),
            ClientEvent::RoomInfo(p) => serde_json::to_value(p),
            ClientEvent::RoomSettings(p) => serde_json::to_value(p),
            ClientEvent::RoomInvite(p) | ClientEvent::RoomUnban(p) | ClientEvent::RoomUnmute(p) => {
                serde_json::to_value(p)
            }
            ClientEvent::RoomKick(p) | ClientEvent::RoomBan(p) | ClientEvent::RoomMute(p) => {
                serde_json::to_value(p)
            }
            ClientEvent::RoomRole(p) => serde_json::to_value(p),
            ClientEvent::UserKick(p) | ClientEvent::UserBan(p) | ClientEvent::UserMute(p) => {
                serde_json::to_value(p)
            }
            ClientEvent::UserUnban(p)
            | ClientEvent::UserUnmute(p)
            | ClientEvent::UserBlock(p)
            | ClientEvent::UserUnblock(p) => serde_json::to_value(p),
            ClientEvent::UserRole(p) => serde_json::to_value(p),
            ClientEvent::UserRename(p) => serde_json::to_value(p),
            ClientEvent::SessionEnd(p) => serde_json::to_value(p),
            ClientEvent::ReadMark(p) => serde_json::to_value(p),
            ClientEvent::MessageEdit(p) => serde_json::to_value(p),
            ClientEvent::MessageDelete(p) => serde_json::to_value(p),
            ClientEvent::MessageReact(p) => serde_json::to_value(p),
            ClientEvent::RoomList
            | ClientEvent::PresenceGet
            | ClientEvent::Ping
            | ClientEvent::UserBans
            | ClientEvent::SessionList => Ok(Value::Object(Default::default())),
        };
        // Serialising these plain structs into a Value cannot fail.
        v.unwrap_or(Value::Null)
    }

    /// Reads an event from its name and payload. Field types are checked;
    /// the rules (room names, text) are the server's to apply.
    pub fn parse(name: &str, v: Value) -> Result<ClientEvent, ParseError> {
        use names::*;
        Ok(match name {
            ROOM_JOIN => ClientEvent::RoomJoin(payload(name, "{room}", v)?),
            ROOM_LEAVE => ClientEvent::RoomLeave(payload(name, "{room}", v)?),
            ROOM_LIST => {
                empty(name, &v)?;
                ClientEvent::RoomList
            }
            ROOM_MESSAGE => ClientEvent::RoomMessage(payload(name, "{room, text}", v)?),
            DM_MESSAGE => ClientEvent::DmMessage(payload(name, "{to, text}", v)?),
            GLOBAL_MESSAGE => ClientEvent::GlobalMessage(payload(name, "{text}", v)?),
            BROADCAST_MESSAGE => ClientEvent::BroadcastMessage(payload(name, "{text}", v)?),
            TYPING => ClientEvent::Typing(payload(name, "{room, typing} or {to, typing}", v)?),
            PRESENCE_GET => {
                empty(name, &v)?;
                ClientEvent::PresenceGet
            }
            HISTORY => ClientEvent::History(payload(
                name,
                "{room, before?, limit?} or {with, before?, limit?}",
                v,
            )?),
            PING => {
                empty(name, &v)?;
                ClientEvent::Ping
            }
            ACCOUNT_PASSWORD => ClientEvent::AccountPassword(payload(name, "{old, new}", v)?),
            ROOM_INFO => ClientEvent::RoomInfo(payload(name, "{room}", v)?),
            ROOM_SETTINGS => {
                ClientEvent::RoomSettings(payload(name, "{room, topic?, private?}", v)?)
            }
            ROOM_INVITE => ClientEvent::RoomInvite(payload(name, "{room, user}", v)?),
            ROOM_KICK => ClientEvent::RoomKick(payload(name, "{room, user, reason?}", v)?),
            ROOM_BAN => ClientEvent::RoomBan(payload(name, "{room, user, reason?, for?}", v)?),
            ROOM_UNBAN => ClientEvent::RoomUnban(payload(name, "{room, user}", v)?),
            ROOM_MUTE => ClientEvent::RoomMute(payload(name, "{room, user, reason?, for?}", v)?),
            ROOM_UNMUTE => ClientEvent::RoomUnmute(payload(name, "{room, user}", v)?),
            ROOM_ROLE => ClientEvent::RoomRole(payload(name, "{room, user, role}", v)?),
            USER_KICK => ClientEvent::UserKick(payload(name, "{user, reason?}", v)?),
            USER_BAN => ClientEvent::UserBan(payload(name, "{user, reason?, for?}", v)?),
            USER_UNBAN => ClientEvent::UserUnban(payload(name, "{user}", v)?),
            USER_MUTE => ClientEvent::UserMute(payload(name, "{user, reason?, for?}", v)?),
            USER_UNMUTE => ClientEvent::UserUnmute(payload(name, "{user}", v)?),
            USER_BANS => {
                empty(name, &v)?;
                ClientEvent::UserBans
            }
            USER_ROLE => ClientEvent::UserRole(payload(name, "{user, role}", v)?),
            USER_BLOCK => ClientEvent::UserBlock(payload(name, "{user}", v)?),
            USER_UNBLOCK => ClientEvent::UserUnblock(payload(name, "{user}", v)?),
            USER_RENAME => ClientEvent::UserRename(payload(name, "{username}", v)?),
            SESSION_LIST => {
                empty(name, &v)?;
                ClientEvent::SessionList
            }
            SESSION_END => ClientEvent::SessionEnd(payload(name, "{id}", v)?),
            READ_MARK => ClientEvent::ReadMark(payload(name, "{room, id} or {with, id}", v)?),
            MESSAGE_EDIT => ClientEvent::MessageEdit(payload(name, "{id, text}", v)?),
            MESSAGE_DELETE => ClientEvent::MessageDelete(payload(name, "{id}", v)?),
            MESSAGE_REACT => ClientEvent::MessageReact(payload(name, "{id, emoji, on}", v)?),
            other => return Err(ParseError::UnknownEvent(other.to_owned())),
        })
    }
}

// ---------------------------------------------------------- server payloads

/// `room:message` as delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMessage {
    pub id: String,
    pub ts: u64,
    pub from: String,
    pub room: String,
    /// Absent (read as empty) once the message is deleted (v3).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
    /// (v2) `Some(true)` for an action (`/me`) line; `None` otherwise, so
    /// that a v1 client never sees the field unless someone sends an action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<bool>,
    /// (v3) The id of the message this one answers.
    #[serde(rename = "replyTo", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// (v3) When it was last edited (ms); `text` is the edited text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<u64>,
    /// (v3) `Some(true)` once deleted: `text` is then absent (read as
    /// empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// (v3) Reactions, as `history` and replays show them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

/// `dm:message` as delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmMessage {
    pub id: String,
    pub ts: u64,
    pub from: String,
    pub to: String,
    /// Absent (read as empty) once the message is deleted (v3).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
    /// (v2) `Some(true)` for an action line; see [`RoomMessage::action`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<bool>,
    /// (v3) The id of the message this one answers.
    #[serde(rename = "replyTo", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// (v3) When it was last edited (ms); `text` is the edited text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<u64>,
    /// (v3) `Some(true)` once deleted: `text` is then absent (read as
    /// empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// (v3) Reactions, as `history` and replays show them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

/// `global:message` and `broadcast:message` as delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedMessage {
    pub id: String,
    pub ts: u64,
    pub from: String,
    /// Absent (read as empty) once the message is deleted (v3).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
    /// (v2) `Some(true)` for an action line; see [`RoomMessage::action`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<bool>,
    /// (v3) The id of the message this one answers.
    #[serde(rename = "replyTo", default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// (v3) When it was last edited (ms); `text` is the edited text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<u64>,
    /// (v3) `Some(true)` once deleted: `text` is then absent (read as
    /// empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// (v3) Reactions, as `history` and replays show them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

/// `typing` as relayed: `{from, room, typing}` or `{from, to, typing}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypingNotice {
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub typing: bool,
}

/// How long a receiver shows a typing signal after the last `typing:true`.
pub const TYPING_TTL_MS: u64 = 6000;

/// `presence.event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceKind {
    Connect,
    Disconnect,
    Join,
    Leave,
    Summary,
    /// (v3) A guest changed its name: `user` the new one, `from` the old.
    Rename,
}

/// The folded part of a `summary` presence event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceSummary {
    /// Up to 100 usernames; `None` (null) beyond that.
    pub joined: Option<Vec<String>>,
    pub left: Option<Vec<String>>,
    pub joined_count: u64,
    pub left_count: u64,
}

/// The most usernames a summary lists before it sends `null`.
pub const SUMMARY_LIST_MAX: usize = 100;

/// `presence`: a single change, or a `summary` of changes folded in a storm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub event: PresenceKind,
    /// The user who came or went; null in a summary.
    pub user: Option<String>,
    /// The room of a `join`/`leave`/room summary; null for the namespace.
    pub room: Option<String>,
    /// Connected users now.
    pub online: u64,
    /// The room's member count now; null for the namespace.
    pub members: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// (v3) A `rename`: the old name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PresenceSummary>,
}

impl Presence {
    /// A single change: `connect`/`disconnect` (room and members null) or
    /// `join`/`leave` of `room` with its member count now.
    pub fn change(
        event: PresenceKind,
        user: &str,
        room: Option<(&str, u64)>,
        online: u64,
    ) -> Presence {
        Presence {
            event,
            user: Some(user.to_owned()),
            room: room.map(|(r, _)| r.to_owned()),
            online,
            members: room.map(|(_, n)| n),
            reason: None,
            recovered: None,
            from: None,
            summary: None,
        }
    }

    pub fn with_reason(mut self, reason: &str) -> Presence {
        self.reason = Some(reason.to_owned());
        self
    }

    /// Marks a change that restores a recovered session.
    pub fn recovered(mut self, recovered: bool) -> Presence {
        self.recovered = recovered.then_some(true);
        self
    }

    /// Whether the change brings someone in (connect, join).
    pub fn arrives(&self) -> bool {
        matches!(self.event, PresenceKind::Connect | PresenceKind::Join)
    }
}

// ------------------------------------------------------------ server events

/// Every event a server sends, typed (both namespaces).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    Session(SessionInfo),
    RoomMessage(RoomMessage),
    DmMessage(DmMessage),
    GlobalMessage(FeedMessage),
    BroadcastMessage(FeedMessage),
    Typing(TypingNotice),
    Presence(Presence),
    Error(ChatError),
    AdminSnapshot(AdminSnapshot),
    AdminEvent(AdminEvent),
    AdminStats(AdminStats),
    /// (v3)
    RoomEvent(RoomEvent),
    RoomInvited(RoomInvited),
    RoomJoined(RoomChanged),
    RoomLeft(RoomChanged),
    ReadMarker(ReadMarker),
    MessageUpdate(MessageUpdate),
}

impl ServerEvent {
    /// The event's wire name.
    pub fn name(&self) -> &'static str {
        use names::*;
        match self {
            ServerEvent::Session(_) => SESSION,
            ServerEvent::RoomMessage(_) => ROOM_MESSAGE,
            ServerEvent::DmMessage(_) => DM_MESSAGE,
            ServerEvent::GlobalMessage(_) => GLOBAL_MESSAGE,
            ServerEvent::BroadcastMessage(_) => BROADCAST_MESSAGE,
            ServerEvent::Typing(_) => TYPING,
            ServerEvent::Presence(_) => PRESENCE,
            ServerEvent::Error(_) => CHAT_ERROR,
            ServerEvent::AdminSnapshot(_) => ADMIN_SNAPSHOT,
            ServerEvent::AdminEvent(_) => ADMIN_EVENT,
            ServerEvent::AdminStats(_) => ADMIN_STATS,
            ServerEvent::RoomEvent(_) => ROOM_EVENT,
            ServerEvent::RoomInvited(_) => ROOM_INVITED,
            ServerEvent::RoomJoined(_) => ROOM_JOINED,
            ServerEvent::RoomLeft(_) => ROOM_LEFT,
            ServerEvent::ReadMarker(_) => READ_MARKER,
            ServerEvent::MessageUpdate(_) => MESSAGE_UPDATE,
        }
    }

    /// Reads a server event. Clients built on libraries that hand over
    /// arguments as an array may pass `[payload]`: it is unwrapped.
    pub fn parse(name: &str, v: Value) -> Result<ServerEvent, ParseError> {
        use names::*;
        let v = unwrap_single(v);
        fn p<T: DeserializeOwned>(name: &str, v: Value) -> Result<T, ParseError> {
            serde_json::from_value(v)
                .map_err(|e| ParseError::InvalidPayload(format!("{name}: {e}")))
        }
        Ok(match name {
            SESSION => ServerEvent::Session(p(name, v)?),
            ROOM_MESSAGE => ServerEvent::RoomMessage(p(name, v)?),
            DM_MESSAGE => ServerEvent::DmMessage(p(name, v)?),
            GLOBAL_MESSAGE => ServerEvent::GlobalMessage(p(name, v)?),
            BROADCAST_MESSAGE => ServerEvent::BroadcastMessage(p(name, v)?),
            TYPING => ServerEvent::Typing(p(name, v)?),
            PRESENCE => ServerEvent::Presence(p(name, v)?),
            CHAT_ERROR => ServerEvent::Error(p(name, v)?),
            ADMIN_SNAPSHOT => ServerEvent::AdminSnapshot(p(name, v)?),
            ADMIN_EVENT => ServerEvent::AdminEvent(p(name, v)?),
            ADMIN_STATS => ServerEvent::AdminStats(p(name, v)?),
            ROOM_EVENT => ServerEvent::RoomEvent(p(name, v)?),
            ROOM_INVITED => ServerEvent::RoomInvited(p(name, v)?),
            ROOM_JOINED => ServerEvent::RoomJoined(p(name, v)?),
            ROOM_LEFT => ServerEvent::RoomLeft(p(name, v)?),
            READ_MARKER => ServerEvent::ReadMarker(p(name, v)?),
            MESSAGE_UPDATE => ServerEvent::MessageUpdate(p(name, v)?),
            other => return Err(ParseError::UnknownEvent(other.to_owned())),
        })
    }
}

/// `[x]` becomes `x`; anything else is returned as is.
pub fn unwrap_single(v: Value) -> Value {
    match v {
        Value::Array(mut a) if a.len() == 1 => a.pop().unwrap_or(Value::Null),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_events_parse_from_contract_json() {
        let cases = [
            (
                "room:join",
                json!({"room": "#general"}),
                ClientEvent::RoomJoin(RoomRequest {
                    room: "#general".into(),
                }),
            ),
            (
                "room:leave",
                json!({"room": "general"}),
                ClientEvent::RoomLeave(RoomRequest {
                    room: "general".into(),
                }),
            ),
            ("room:list", json!({}), ClientEvent::RoomList),
            ("room:list", Value::Null, ClientEvent::RoomList),
            (
                "room:message",
                json!({"room": "#general", "text": "hi"}),
                ClientEvent::RoomMessage(RoomMessageRequest {
                    room: "#general".into(),
                    text: "hi".into(),
                    action: false,
                    ..Default::default()
                }),
            ),
            (
                "dm:message",
                json!({"to": "bob", "text": "hi"}),
                ClientEvent::DmMessage(DmRequest {
                    to: "bob".into(),
                    text: "hi".into(),
                    action: false,
                    ..Default::default()
                }),
            ),
            (
                "global:message",
                json!({"text": "hi"}),
                ClientEvent::GlobalMessage(TextRequest {
                    text: "hi".into(),
                    ..Default::default()
                }),
            ),
            (
                "broadcast:message",
                json!({"text": "hi"}),
                ClientEvent::BroadcastMessage(TextRequest {
                    text: "hi".into(),
                    ..Default::default()
                }),
            ),
            // v2
            (
                "room:message",
                json!({"room": "#general", "text": "waves", "action": true}),
                ClientEvent::RoomMessage(RoomMessageRequest {
                    room: "#general".into(),
                    text: "waves".into(),
                    action: true,
                    ..Default::default()
                }),
            ),
            (
                "dm:message",
                json!({"to": "bob", "text": "waves", "action": true}),
                ClientEvent::DmMessage(DmRequest {
                    to: "bob".into(),
                    text: "waves".into(),
                    action: true,
                    ..Default::default()
                }),
            ),
            (
                "global:message",
                json!({"text": "waves", "action": true}),
                ClientEvent::GlobalMessage(TextRequest {
                    text: "waves".into(),
                    action: true,
                    ..Default::default()
                }),
            ),
            (
                "broadcast:message",
                json!({"text": "waves", "action": true}),
                ClientEvent::BroadcastMessage(TextRequest {
                    text: "waves".into(),
                    action: true,
                    ..Default::default()
                }),
            ),
            (
                "history",
                json!({"room": "#general", "before": "42", "limit": 10}),
                ClientEvent::History(HistoryRequest {
                    target: HistoryTarget::Room("#general".into()),
                    before: Some("42".into()),
                    limit: Some(10),
                    events: false,
                }),
            ),
            (
                "history",
                json!({"room": "#general"}),
                ClientEvent::History(HistoryRequest {
                    target: HistoryTarget::Room("#general".into()),
                    before: None,
                    limit: None,
                    events: false,
                }),
            ),
            (
                "history",
                json!({"with": "bob"}),
                ClientEvent::History(HistoryRequest {
                    target: HistoryTarget::With("bob".into()),
                    before: None,
                    limit: None,
                    events: false,
                }),
            ),
            (
                "history",
                json!({"with": "bob", "before": "7", "limit": 200}),
                ClientEvent::History(HistoryRequest {
                    target: HistoryTarget::With("bob".into()),
                    before: Some("7".into()),
                    limit: Some(200),
                    events: false,
                }),
            ),
            ("ping", json!({}), ClientEvent::Ping),
            ("ping", Value::Null, ClientEvent::Ping),
            (
                "account:password",
                json!({"old": "correct horse", "new": "battery staple"}),
                ClientEvent::AccountPassword(PasswordChange {
                    old: "correct horse".into(),
                    new: "battery staple".into(),
                }),
            ),
            (
                "typing",
                json!({"room": "#general", "typing": true}),
                ClientEvent::Typing(TypingRequest {
                    target: TypingTarget::Room("#general".into()),
                    typing: true,
                }),
            ),
            (
                "typing",
                json!({"to": "bob", "typing": false}),
                ClientEvent::Typing(TypingRequest {
                    target: TypingTarget::User("bob".into()),
                    typing: false,
                }),
            ),
            ("presence:get", json!({}), ClientEvent::PresenceGet),
        ];
        for (name, json, want) in cases {
            let got = ClientEvent::parse(name, json.clone()).unwrap();
            assert_eq!(got, want, "{name}");
            assert_eq!(got.name(), name);
            if !json.is_null() {
                assert_eq!(
                    got.payload(),
                    json,
                    "{name} serialises back to the contract's JSON"
                );
            }
        }
    }

    #[test]
    fn bad_client_payloads_are_invalid_payload() {
        let cases = [
            ("room:join", json!("general")),
            ("room:join", json!({})),
            ("room:join", json!({"room": 5})),
            ("room:message", json!({"room": "#a"})),
            ("room:message", json!([{"room": "#a", "text": "x"}, 2])),
            ("dm:message", json!({"to": null, "text": "x"})),
            ("global:message", Value::Null),
            ("typing", json!({"room": "#a", "to": "bob", "typing": true})),
            ("typing", json!({"typing": true})),
            ("typing", json!({"room": "#a", "typing": "yes"})),
            ("room:list", json!(3)),
            ("presence:get", json!("x")),
            // v2
            (
                "room:message",
                json!({"room": "#a", "text": "x", "action": "yes"}),
            ),
            ("dm:message", json!({"to": "bob", "text": "x", "action": 1})),
            ("global:message", json!({"text": "x", "action": null})),
            ("history", json!({"room": "#a", "with": "bob"})),
            ("history", json!({})),
            ("history", json!({"before": "42", "limit": 10})),
            ("history", json!({"room": "#a", "before": 42})),
            ("history", json!({"with": "bob", "limit": "10"})),
            ("history", json!({"room": "#a", "limit": -1})),
            ("history", json!({"room": "#a", "limit": 1.5})),
            ("history", json!({"room": 5})),
            ("history", json!({"with": null})),
            ("history", json!("#general")),
            ("ping", json!(1)),
            ("ping", json!([])),
            ("account:password", json!({"old": "x"})),
            ("account:password", json!({"new": "y"})),
            ("account:password", json!({"old": 1, "new": "y"})),
            ("account:password", json!("hunter22")),
        ];
        for (name, json) in cases {
            let err = ClientEvent::parse(name, json.clone()).unwrap_err();
            assert!(
                matches!(err, ParseError::InvalidPayload(_)),
                "{name} {json}"
            );
            assert_eq!(err.to_chat_error(name).code, ErrorCode::InvalidPayload);
            assert_eq!(err.to_chat_error(name).event(), Some(name));
        }
    }

    #[test]
    fn unknown_client_events() {
        let err = ClientEvent::parse("room:nuke", json!({})).unwrap_err();
        assert_eq!(err, ParseError::UnknownEvent("room:nuke".into()));
        assert_eq!(err.to_chat_error("room:nuke").code, ErrorCode::UnknownEvent);
        for n in names::CLIENT_EVENTS {
            assert!(!matches!(
                ClientEvent::parse(n, json!({})),
                Err(ParseError::UnknownEvent(_))
            ));
        }
    }

    #[test]
    fn session_shape() {
        let json = json!({ "sid": "abc", "username": "alice", "session": "tok",
            "recovered": false, "rooms": [], "missed": 0, "truncated": false });
        let ev = ServerEvent::parse("session", json.clone()).unwrap();
        let ServerEvent::Session(s) = &ev else {
            panic!("{ev:?}")
        };
        assert_eq!(s.username, "alice");
        assert_eq!(s.role, None);
        // A v2 server's session reads; this one says role and blocks.
        let v3 = json!({ "sid": "abc", "username": "alice", "session": "tok",
            "recovered": false, "rooms": [], "missed": 0, "truncated": false,
            "role": "moderator", "blocked": ["bob"],
            "markers": [{"room": "#a", "id": "4", "unread": 2}, {"with": "bob", "id": null, "unread": 0}] });
        let ServerEvent::Session(s) = ServerEvent::parse("session", v3.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(s.role, Some(crate::moderation::Role::Moderator));
        assert_eq!(s.markers.len(), 2);
        assert_eq!(s.markers[0].unread, 2);
        assert_eq!(serde_json::to_value(&s).unwrap(), v3);
    }

    #[test]
    fn auth_shape() {
        let a: Auth = serde_json::from_value(json!({"username": "alice"})).unwrap();
        assert_eq!(
            a,
            Auth {
                username: "alice".into(),
                ..Default::default()
            }
        );
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"username": "alice"})
        );
        let b = Auth {
            username: "a".into(),
            session: Some("t".into()),
            offset: Some("41".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"username": "a", "session": "t", "offset": "41"})
        );
    }

    #[test]
    fn auth_v2_shapes() {
        let login = json!({"username": "alice", "password": "correct horse"});
        let a: Auth = serde_json::from_value(login.clone()).unwrap();
        assert_eq!(a.password.as_deref(), Some("correct horse"));
        assert_eq!(a.register, None);
        assert_eq!(serde_json::to_value(&a).unwrap(), login);

        // A guest claiming its name: register, resuming its own session.
        let claim = json!({"username": "alice", "password": "correct horse", "register": true,
                           "session": "tok", "offset": "41"});
        let a: Auth = serde_json::from_value(claim.clone()).unwrap();
        assert_eq!(
            a,
            Auth {
                username: "alice".into(),
                password: Some("correct horse".into()),
                register: Some(true),
                session: Some("tok".into()),
                offset: Some("41".into()),
                client: None,
                token: None,
            }
        );
        assert_eq!(serde_json::to_value(&a).unwrap(), claim);

        for bad in [
            json!({"username": "alice", "password": 12345678}),
            json!({"username": "alice", "password": "correct horse", "register": "yes"}),
        ] {
            assert!(
                serde_json::from_value::<Auth>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let a = Auth {
            username: "alice".into(),
            password: Some("hunter2-secret".into()),
            ..Default::default()
        };
        let shown = format!("{a:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        let t = Auth {
            username: "alice".into(),
            token: Some("api-token-secret".into()),
            ..Default::default()
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("api-token-secret"), "{shown}");
        let ev = ClientEvent::AccountPassword(PasswordChange {
            old: "old-secret".into(),
            new: "new-secret".into(),
        });
        let shown = format!("{ev:?}");
        assert!(!shown.contains("old-secret"), "{shown}");
        assert!(!shown.contains("new-secret"), "{shown}");
        // The wire still carries them.
        assert_eq!(
            ev.payload(),
            json!({"old": "old-secret", "new": "new-secret"})
        );
    }

    #[test]
    fn history_limits_default_and_cap() {
        let req = |limit| HistoryRequest {
            target: HistoryTarget::Room("#general".into()),
            before: None,
            limit,
            events: false,
        };
        assert_eq!(req(None).effective_limit(), 50);
        assert_eq!(req(Some(10)).effective_limit(), 10);
        assert_eq!(req(Some(200)).effective_limit(), 200);
        assert_eq!(req(Some(100_000)).effective_limit(), 200);
    }

    #[test]
    fn action_messages_round_trip() {
        let room = json!({"id": "7", "ts": 1, "from": "alice", "room": "#general", "text": "waves",
                          "action": true});
        let ServerEvent::RoomMessage(m) = ServerEvent::parse("room:message", room.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.action, Some(true));
        assert_eq!(serde_json::to_value(&m).unwrap(), room);

        let dm = json!({"id": "8", "ts": 2, "from": "alice", "to": "bob", "text": "waves",
                        "replayed": true, "action": true});
        let ServerEvent::DmMessage(m) = ServerEvent::parse("dm:message", dm.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!((m.replayed, m.action), (Some(true), Some(true)));
        assert_eq!(serde_json::to_value(&m).unwrap(), dm);

        let feed = json!({"id": "9", "ts": 3, "from": "bob", "text": "waves", "action": true});
        let ServerEvent::GlobalMessage(m) =
            ServerEvent::parse("global:message", feed.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.action, Some(true));
        assert_eq!(serde_json::to_value(&m).unwrap(), feed);

        // A plain message carries no `action` (a v1 client never sees it).
        let plain = FeedMessage {
            id: "10".into(),
            ts: 4,
            from: "bob".into(),
            text: "hi".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&plain).unwrap(),
            json!({"id": "10", "ts": 4, "from": "bob", "text": "hi"})
        );
    }

    #[test]
    fn message_shapes() {
        let room = json!({"id": "7", "ts": 1700000000000u64, "from": "alice", "room": "#general", "text": "hi"});
        let ServerEvent::RoomMessage(m) = ServerEvent::parse("room:message", room.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.replayed, None);
        assert_eq!(m.action, None);
        assert_eq!(serde_json::to_value(&m).unwrap(), room);

        let dm = json!({"id": "8", "ts": 1, "from": "alice", "to": "bob", "text": "psst", "replayed": true});
        let ServerEvent::DmMessage(m) = ServerEvent::parse("dm:message", dm.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.replayed, Some(true));
        assert_eq!(serde_json::to_value(&m).unwrap(), dm);

        let feed = json!({"id": "9", "ts": 2, "from": "bob", "text": "all"});
        assert!(matches!(
            ServerEvent::parse("global:message", feed.clone()),
            Ok(ServerEvent::GlobalMessage(_))
        ));
        assert!(matches!(
            ServerEvent::parse("broadcast:message", json!([feed])),
            Ok(ServerEvent::BroadcastMessage(_))
        ));
    }

    #[test]
    fn typing_shapes() {
        let room = json!({"from": "alice", "room": "#general", "typing": true});
        let ServerEvent::Typing(t) = ServerEvent::parse("typing", room.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(serde_json::to_value(&t).unwrap(), room);
        let dm = json!({"from": "alice", "to": "bob", "typing": false});
        let ServerEvent::Typing(t) = ServerEvent::parse("typing", dm.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(serde_json::to_value(&t).unwrap(), dm);
    }

    #[test]
    fn presence_shapes() {
        let connect = json!({"event": "connect", "user": "alice", "room": null, "online": 3, "members": null});
        let ServerEvent::Presence(p) = ServerEvent::parse("presence", connect.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.event, PresenceKind::Connect);
        assert_eq!(p.summary, None);
        assert_eq!(serde_json::to_value(&p).unwrap(), connect);

        let leave = json!({"event": "leave", "user": "bob", "room": "#general", "online": 2, "members": 4,
                           "reason": "disconnect"});
        let ServerEvent::Presence(p) = ServerEvent::parse("presence", leave.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.reason.as_deref(), Some("disconnect"));
        assert_eq!(serde_json::to_value(&p).unwrap(), leave);

        let join = json!({"event": "join", "user": "bob", "room": "#general", "online": 2, "members": 5,
                          "recovered": true});
        let ServerEvent::Presence(p) = ServerEvent::parse("presence", join.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(p.recovered, Some(true));
        assert_eq!(serde_json::to_value(&p).unwrap(), join);
    }

    #[test]
    fn presence_summary_shape() {
        let summary = json!({"event": "summary", "user": null, "room": "#general", "online": 900, "members": 800,
            "joined": ["a", "b"], "left": null, "joinedCount": 2, "leftCount": 150});
        let ServerEvent::Presence(p) = ServerEvent::parse("presence", summary.clone()).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.event, PresenceKind::Summary);
        let s = p.summary.as_ref().unwrap();
        assert_eq!(
            s.joined.as_deref(),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(s.left, None);
        assert_eq!(s.left_count, 150);
        assert_eq!(serde_json::to_value(&p).unwrap(), summary);
    }

    #[test]
    fn chat_error_event() {
        let e = json!({"code": "not_member", "message": "join first", "context": {"event": "room:message", "room": "#x"}});
        let ServerEvent::Error(err) = ServerEvent::parse("chat:error", e.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(err.code, ErrorCode::NotMember);
        assert_eq!(serde_json::to_value(&err).unwrap(), e);
    }

    #[test]
    fn every_server_event_name_round_trips() {
        assert!(matches!(
            ServerEvent::parse("nope", json!({})),
            Err(ParseError::UnknownEvent(_))
        ));
        let ev = ServerEvent::Typing(TypingNotice {
            from: "a".into(),
            room: None,
            to: Some("b".into()),
            typing: true,
        });
        assert_eq!(ev.name(), "typing");
    }
}
