//! Error codes and the structured error object of every refusal.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `code` of a `chat:error`, of a refused ack, and (before the `:`) of a
/// refused connect's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Refused connects.
    InvalidUsername,
    UsernameTaken,
    InvalidSession,
    ServerFull,
    // Refused connects (v2 accounts); `auth_required`, `bad_credentials` and
    // `weak_password` also refuse events (`account:password`).
    AuthRequired,
    BadCredentials,
    RegistrationClosed,
    WeakPassword,
    Unauthorized,
    // Refused events.
    InvalidPayload,
    InvalidRoom,
    NotMember,
    UserNotFound,
    InvalidTarget,
    EmptyMessage,
    MessageTooLong,
    InvalidCharacters,
    TooManyRooms,
    RateLimited,
    UnknownEvent,
    ReadOnly,
    SessionReplaced,
    /// (v2) The store could not take the write: nothing was stored or
    /// delivered, and the client may retry.
    Unavailable,
    /// (v3) The sender's role or rank does not allow this; `context.need`.
    Forbidden,
    /// (v3) A private room without an invite or a role.
    InviteOnly,
    /// (v3) Banned from the room or the server; `context.until`, `reason`.
    Banned,
    /// (v3) Muted in the room or on the server; `context.until`, `room`.
    Muted,
    /// (v3) A DM between two users one of whom blocks the other.
    Blocked,
    /// (v3) No message the sender can see has that id.
    MessageNotFound,
    /// (v3) An edit after `--edit-window`.
    EditWindowPassed,
    /// (v3) Sent just before the server ends a socket by a kick.
    Kicked,
    /// (v3) Sent just before the server ends a socket whose session was
    /// ended.
    SessionEnded,
    /// (v3) A session id, HTTP route or token id the caller does not have.
    NotFound,
    Internal,
    /// A code this version does not know (a newer server): kept so that a
    /// client can still show the message.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code, in the order of the contract.
    pub const ALL: [ErrorCode; 34] = [
        ErrorCode::InvalidUsername,
        ErrorCode::UsernameTaken,
        ErrorCode::InvalidSession,
        ErrorCode::ServerFull,
        ErrorCode::AuthRequired,
        ErrorCode::BadCredentials,
        ErrorCode::RegistrationClosed,
        ErrorCode::WeakPassword,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidPayload,
        ErrorCode::InvalidRoom,
        ErrorCode::NotMember,
        ErrorCode::UserNotFound,
        ErrorCode::InvalidTarget,
        ErrorCode::EmptyMessage,
        ErrorCode::MessageTooLong,
        ErrorCode::InvalidCharacters,
        ErrorCode::TooManyRooms,
        ErrorCode::RateLimited,
        ErrorCode::UnknownEvent,
        ErrorCode::ReadOnly,
        ErrorCode::SessionReplaced,
        ErrorCode::Unavailable,
        ErrorCode::Forbidden,
        ErrorCode::InviteOnly,
        ErrorCode::Banned,
        ErrorCode::Muted,
        ErrorCode::Blocked,
        ErrorCode::MessageNotFound,
        ErrorCode::EditWindowPassed,
        ErrorCode::Kicked,
        ErrorCode::SessionEnded,
        ErrorCode::NotFound,
        ErrorCode::Internal,
    ];

    /// The code as it is spelt on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidUsername => "invalid_username",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::InvalidSession => "invalid_session",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::AuthRequired => "auth_required",
            ErrorCode::BadCredentials => "bad_credentials",
            ErrorCode::RegistrationClosed => "registration_closed",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotMember => "not_member",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::InvalidCharacters => "invalid_characters",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnknownEvent => "unknown_event",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::SessionReplaced => "session_replaced",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InviteOnly => "invite_only",
            ErrorCode::Banned => "banned",
            ErrorCode::Muted => "muted",
            ErrorCode::Blocked => "blocked",
            ErrorCode::MessageNotFound => "message_not_found",
            ErrorCode::EditWindowPassed => "edit_window_passed",
            ErrorCode::Kicked => "kicked",
            ErrorCode::SessionEnded => "session_ended",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Parses a wire spelling; unknown spellings give [`ErrorCode::Unknown`].
    pub fn parse(s: &str) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorCode::Unknown)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{code, message, context}`: what every refused action gets. `context.event`
/// names the client event; other keys name what was wrong (`room`, `to`,
/// `limit`, `retryAfterMs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ChatError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default)]
    pub context: Map<String, Value>,
}

impl ChatError {
    /// An error about client event `event`.
    pub fn new(code: ErrorCode, message: impl Into<String>, event: &str) -> Self {
        let mut context = Map::new();
        context.insert("event".into(), Value::String(event.to_owned()));
        ChatError {
            code,
            message: message.into(),
            context,
        }
    }

    /// Adds a context key (`room`, `to`, `limit`, `retryAfterMs`…).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.context.insert(key.to_owned(), value.into());
        self
    }

    /// The client event this error is about, if the context names one.
    pub fn event(&self) -> Option<&str> {
        self.context.get("event").and_then(Value::as_str)
    }
}

/// A refused connect, as the `connect_error` message `"<code>: <text>"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ConnectRefusal {
    pub code: ErrorCode,
    pub message: String,
}

impl ConnectRefusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ConnectRefusal {
            code,
            message: message.into(),
        }
    }

    /// Reads `"<code>: <text>"`; a message without a known code prefix is
    /// kept whole with [`ErrorCode::Unknown`] (`Invalid namespace`, say).
    pub fn parse(message: &str) -> ConnectRefusal {
        match message.split_once(": ") {
            Some((code, text)) if ErrorCode::parse(code) != ErrorCode::Unknown => ConnectRefusal {
                code: ErrorCode::parse(code),
                message: text.to_owned(),
            },
            _ => ConnectRefusal {
                code: ErrorCode::Unknown,
                message: message.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_code_round_trips_through_its_wire_spelling() {
        for code in ErrorCode::ALL {
            let v = serde_json::to_value(code).unwrap();
            assert_eq!(v, json!(code.as_str()));
            assert_eq!(serde_json::from_value::<ErrorCode>(v).unwrap(), code);
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
    }

    #[test]
    fn contract_spellings() {
        let spelt: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        for s in [
            "invalid_username",
            "username_taken",
            "invalid_session",
            "server_full",
            "invalid_payload",
            "invalid_room",
            "not_member",
            "user_not_found",
            "invalid_target",
            "empty_message",
            "message_too_long",
            "invalid_characters",
            "too_many_rooms",
            "rate_limited",
            "unknown_event",
            "read_only",
            "session_replaced",
            "internal",
            // v2
            "auth_required",
            "bad_credentials",
            "registration_closed",
            "weak_password",
            "unavailable",
            // v3
            "forbidden",
            "invite_only",
            "banned",
            "muted",
            "blocked",
            "message_not_found",
            "edit_window_passed",
            "kicked",
            "session_ended",
            "not_found",
        ] {
            assert!(spelt.contains(&s), "{s} missing");
        }
    }

    #[test]
    fn unknown_codes_do_not_fail_parsing() {
        let e: ChatError =
            serde_json::from_value(json!({"code": "brand_new", "message": "m", "context": {}}))
                .unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
    }

    #[test]
    fn chat_error_shape() {
        let e = ChatError::new(ErrorCode::RateLimited, "slow down", "room:message")
            .with("retryAfterMs", 100);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"code": "rate_limited", "message": "slow down",
                   "context": {"event": "room:message", "retryAfterMs": 100}})
        );
        assert_eq!(e.event(), Some("room:message"));
        assert_eq!(e.to_string(), "rate_limited: slow down");
    }

    #[test]
    fn connect_refusals() {
        let r = ConnectRefusal::new(ErrorCode::UsernameTaken, "alice is in use");
        assert_eq!(r.to_string(), "username_taken: alice is in use");
        assert_eq!(ConnectRefusal::parse(&r.to_string()), r);
        let other = ConnectRefusal::parse("Invalid namespace");
        assert_eq!(other.code, ErrorCode::Unknown);
        assert_eq!(other.message, "Invalid namespace");
        assert_eq!(
            ConnectRefusal::parse("unauthorized: admin token required").code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn v2_codes() {
        for (code, s) in [
            (ErrorCode::AuthRequired, "auth_required"),
            (ErrorCode::BadCredentials, "bad_credentials"),
            (ErrorCode::RegistrationClosed, "registration_closed"),
            (ErrorCode::WeakPassword, "weak_password"),
            (ErrorCode::Unavailable, "unavailable"),
        ] {
            assert_eq!(code.as_str(), s);
            assert_eq!(ErrorCode::parse(s), code);
            assert_eq!(serde_json::from_value::<ErrorCode>(json!(s)).unwrap(), code);
        }
        // Every code is listed once, and `unknown` is not a wire code.
        let mut spelt: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        spelt.sort_unstable();
        spelt.dedup();
        assert_eq!(spelt.len(), ErrorCode::ALL.len());
        assert!(!ErrorCode::ALL.contains(&ErrorCode::Unknown));
    }

    #[test]
    fn v2_connect_refusals() {
        for (msg, code) in [
            (
                "auth_required: alice has an account",
                ErrorCode::AuthRequired,
            ),
            ("bad_credentials: wrong password", ErrorCode::BadCredentials),
            (
                "registration_closed: ask the operator",
                ErrorCode::RegistrationClosed,
            ),
            ("weak_password: 8-256 characters", ErrorCode::WeakPassword),
            ("rate_limited: try again in 30 s", ErrorCode::RateLimited),
        ] {
            let r = ConnectRefusal::parse(msg);
            assert_eq!(r.code, code, "{msg}");
            assert_eq!(r.to_string(), msg);
        }
    }

    #[test]
    fn unavailable_error_shape() {
        let v = json!({"code": "unavailable", "message": "the store is down",
                       "context": {"event": "room:message", "retryAfterMs": 500}});
        let e: ChatError = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(
            e,
            ChatError::new(ErrorCode::Unavailable, "the store is down", "room:message")
                .with("retryAfterMs", 500)
        );
        assert_eq!(serde_json::to_value(&e).unwrap(), v);
    }
}
