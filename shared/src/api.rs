//! (v3) The HTTP API (`docs/PROTOCOL.md`, "HTTP API"): the bodies of its
//! requests and answers under [`API_PREFIX`], and the HTTP status each
//! error code is answered with. An error's body is [`ApiError`], the
//! contract's error object under `error`.

use serde::{Deserialize, Serialize};

use crate::{ChatError, ErrorCode};

/// Every route of the API starts with this.
pub const API_PREFIX: &str = "/api/v1";

/// The longest label of an API token, in characters (a longer one is cut).
pub const TOKEN_LABEL_MAX: usize = 64;

/// `POST /api/v1/accounts`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
}

/// The answer to `POST /api/v1/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCreated {
    pub username: String,
}

/// `POST /api/v1/tokens`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub username: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The answer to `POST /api/v1/tokens`: the only time `token` is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub id: String,
    pub token: String,
    pub username: String,
    pub label: String,
}

/// One token of `GET /api/v1/tokens`: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: String,
    pub label: String,
    pub created_at: u64,
    /// Wall-clock ms of its last use, to the minute (see the server's
    /// README); `null` if never used.
    pub last_used_at: Option<u64>,
}

/// The answer to `GET /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `PUT /api/v1/password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPassword {
    pub old: String,
    pub new: String,
}

/// `POST /api/v1/rooms/{room}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostRoomMessage {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// `POST /api/v1/dms/{user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostDm {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// An error answer: `{error: {code, message, context}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ChatError,
}

/// The HTTP status the API answers `code` with.
pub fn http_status(code: ErrorCode) -> u16 {
    use ErrorCode::*;
    match code {
        InvalidPayload | InvalidRoom | InvalidTarget | InvalidUsername | InvalidSession
        | EmptyMessage | MessageTooLong | InvalidCharacters | WeakPassword | TooManyRooms
        | EditWindowPassed => 400,
        BadCredentials | AuthRequired | Unauthorized => 401,
        Forbidden | Banned | Muted | NotMember | InviteOnly | Blocked | RegistrationClosed
        | ReadOnly | Kicked => 403,
        NotFound | UserNotFound | MessageNotFound | UnknownEvent => 404,
        UsernameTaken | SessionReplaced | SessionEnded => 409,
        RateLimited => 429,
        Unavailable | ServerFull => 503,
        Internal | Unknown => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_follow_the_contract() {
        for (code, status) in [
            (ErrorCode::InvalidPayload, 400),
            (ErrorCode::WeakPassword, 400),
            (ErrorCode::TooManyRooms, 400),
            (ErrorCode::MessageTooLong, 400),
            (ErrorCode::BadCredentials, 401),
            (ErrorCode::AuthRequired, 401),
            (ErrorCode::Forbidden, 403),
            (ErrorCode::Banned, 403),
            (ErrorCode::Muted, 403),
            (ErrorCode::NotMember, 403),
            (ErrorCode::InviteOnly, 403),
            (ErrorCode::Blocked, 403),
            (ErrorCode::RegistrationClosed, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::UserNotFound, 404),
            (ErrorCode::MessageNotFound, 404),
            (ErrorCode::UsernameTaken, 409),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::Internal, 500),
            (ErrorCode::Unavailable, 503),
        ] {
            assert_eq!(http_status(code), status, "{code:?}");
        }
    }

    #[test]
    fn bodies_read_as_the_contract_writes_them() {
        let m: PostRoomMessage =
            serde_json::from_value(json!({"text": "hi", "replyTo": "7"})).unwrap();
        assert_eq!(m.reply_to.as_deref(), Some("7"));
        // A duplicate or unknown key, or a value of the wrong type, does not read.
        assert!(serde_json::from_str::<PostRoomMessage>(r#"{"text":"a","text":"b"}"#).is_err());
        assert!(serde_json::from_value::<PostRoomMessage>(json!({"text": 5})).is_err());
        assert!(serde_json::from_value::<PostDm>(json!({"to": "b"})).is_err());
        let list = TokenList {
            tokens: vec![TokenInfo {
                id: "t1".into(),
                label: "ci".into(),
                created_at: 5,
                last_used_at: None,
            }],
        };
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            json!({"tokens": [{"id": "t1", "label": "ci", "createdAt": 5, "lastUsedAt": null}]})
        );
    }
}
