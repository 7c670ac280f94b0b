//! Acknowledgement bodies. On success an ack is `{ok: true, ...body}`; on a
//! refusal `{ok: false, error: {code, message, context}}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ChatError;
use crate::events::{RoomMessage, unwrap_single};

/// A room and how many members it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCount {
    pub room: String,
    pub members: u64,
}

/// `room:join` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinAck {
    pub room: String,
    pub members: Vec<String>,
    /// The room's last messages, oldest first.
    pub history: Vec<RoomMessage>,
}

/// `room:leave` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveAck {
    pub room: String,
}

/// `room:list` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomListAck {
    pub rooms: Vec<RoomCount>,
}

/// The ack body of every message send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentAck {
    pub id: String,
    pub ts: u64,
}

/// The `typing` ack body (nothing but `ok`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyAck {}

/// `presence:get` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceSnapshot {
    pub online: u64,
    pub users: Vec<String>,
    pub rooms: Vec<RoomCount>,
}

/// `{ok: true, ...body}`.
#[derive(Debug, Clone, Serialize)]
pub struct AckOk<'a, T: Serialize> {
    ok: bool,
    #[serde(flatten)]
    body: &'a T,
}

impl<'a, T: Serialize> AckOk<'a, T> {
    pub fn new(body: &'a T) -> Self {
        AckOk { ok: true, body }
    }
}

/// `{ok: false, error}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AckErr<'a> {
    ok: bool,
    error: std::borrow::Cow<'a, ChatError>,
}

impl<'a> AckErr<'a> {
    pub fn new(error: &'a ChatError) -> Self {
        AckErr {
            ok: false,
            error: std::borrow::Cow::Borrowed(error),
        }
    }
}

/// What a client makes of an ack.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AckError {
    /// The server refused the request.
    #[error("{0}")]
    Refused(ChatError),
    /// The ack did not have the contract's shape.
    #[error("malformed ack: {0}")]
    Malformed(String),
    /// No answer in time.
    #[error("no answer from the server in time")]
    Timeout,
    /// The request could not be sent.
    #[error("not sent: {0}")]
    NotSent(String),
}

/// Reads an ack: `Ok(body)` for `{ok:true,...}`, `Err(Refused)` for
/// `{ok:false, error}`. Accepts `[ack]` as some client libraries hand it over.
pub fn parse_ack<T: DeserializeOwned>(v: Value) -> Result<T, AckError> {
    let v = unwrap_single(v);
    match v.get("ok").and_then(Value::as_bool) {
        Some(true) => serde_json::from_value(v).map_err(|e| AckError::Malformed(e.to_string())),
        Some(false) => {
            let err = v.get("error").cloned().unwrap_or(Value::Null);
            serde_json::from_value(err)
                .map(AckError::Refused)
                .map_err(|e| AckError::Malformed(e.to_string()))
                .and_then(Err)
        }
        None => Err(AckError::Malformed(format!("no boolean ok in {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    #[test]
    fn ok_acks_flatten_the_body() {
        let ack = SentAck {
            id: "12".into(),
            ts: 5,
        };
        assert_eq!(
            serde_json::to_value(AckOk::new(&ack)).unwrap(),
            json!({"ok": true, "id": "12", "ts": 5})
        );
        assert_eq!(
            serde_json::to_value(AckOk::new(&EmptyAck {})).unwrap(),
            json!({"ok": true})
        );
    }

    #[test]
    fn error_acks() {
        let e =
            ChatError::new(ErrorCode::NotMember, "join first", "room:message").with("room", "#x");
        let v = serde_json::to_value(AckErr::new(&e)).unwrap();
        assert_eq!(
            v,
            json!({"ok": false, "error": {"code": "not_member", "message": "join first",
                    "context": {"event": "room:message", "room": "#x"}}})
        );
        assert_eq!(parse_ack::<SentAck>(v), Err(AckError::Refused(e)));
    }

    #[test]
    fn parse_contract_acks() {
        let join = json!([{"ok": true, "room": "#general", "members": ["alice", "bob"],
            "history": [{"id": "1", "ts": 1, "from": "bob", "room": "#general", "text": "hi"}]}]);
        let j: JoinAck = parse_ack(join).unwrap();
        assert_eq!(j.members, vec!["alice", "bob"]);
        assert_eq!(j.history[0].text, "hi");

        let list: RoomListAck =
            parse_ack(json!({"ok": true, "rooms": [{"room": "#a", "members": 2}]})).unwrap();
        assert_eq!(
            list.rooms,
            vec![RoomCount {
                room: "#a".into(),
                members: 2
            }]
        );

        let p: PresenceSnapshot =
            parse_ack(json!({"ok": true, "online": 1, "users": ["alice"], "rooms": []})).unwrap();
        assert_eq!(p.online, 1);
        let _: EmptyAck = parse_ack(json!({"ok": true})).unwrap();
        let l: LeaveAck = parse_ack(json!({"ok": true, "room": "#a"})).unwrap();
        assert_eq!(l.room, "#a");
    }

    #[test]
    fn malformed_acks() {
        assert!(matches!(
            parse_ack::<SentAck>(json!({"id": "1"})),
            Err(AckError::Malformed(_))
        ));
        assert!(matches!(
            parse_ack::<SentAck>(json!({"ok": true})),
            Err(AckError::Malformed(_))
        ));
        assert!(matches!(
            parse_ack::<SentAck>(json!({"ok": false})),
            Err(AckError::Malformed(_))
        ));
    }
}
