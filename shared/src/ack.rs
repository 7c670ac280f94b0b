//! Acknowledgement bodies. On success an ack is `{ok: true, ...body}`; on a
//! refusal `{ok: false, error: {code, message, context}}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

// `RoomCount` is declared with the admin payloads, which sit below the
// events and acks, so that the imports run one way.
pub use crate::admin::RoomCount;
use crate::error::ChatError;
use crate::events::{DmMessage, RoomMessage, unwrap_single};

/// `room:join` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinAck {
    pub room: String,
    pub members: Vec<String>,
    /// The room's last messages, oldest first.
    pub history: Vec<RoomMessage>,
    /// (v3) The room's topic (`""` for none).
    #[serde(default)]
    pub topic: String,
    /// (v3) Whether the room is private.
    #[serde(default)]
    pub private: bool,
    /// (v3) The sender's room role. `None` from a v2 server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::moderation::RoomRole>,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentAck {
    pub id: String,
    pub ts: u64,
    /// (v2) `Some(true)` when a DM was kept for a recipient who is not
    /// connected (inside its recovery window, or an offline account) and will
    /// be delivered at its next connect. `None` for a message delivered now,
    /// so a v1 client sees the v1 shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<bool>,
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

/// One message of a `history` page: a room message or a DM, in the shape it
/// was delivered in.
///
/// Untagged, because the wire carries no tag: a room message has `room`, a DM
/// has `to`, and that is how they are told apart (room first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HistoryMessage {
    Room(RoomMessage),
    Dm(DmMessage),
    /// (v3) A room event, in a page asked for with `events: true`.
    Event(crate::moderation::RoomEvent),
}

impl HistoryMessage {
    /// The message's `id`: what the client sends back as the next page's
    /// `before`.
    pub fn id(&self) -> &str {
        match self {
            HistoryMessage::Room(m) => &m.id,
            HistoryMessage::Dm(m) => &m.id,
            HistoryMessage::Event(e) => &e.id,
        }
    }

    /// The message's `ts`, milliseconds since the Unix epoch.
    pub fn ts(&self) -> u64 {
        match self {
            HistoryMessage::Room(m) => m.ts,
            HistoryMessage::Dm(m) => m.ts,
            HistoryMessage::Event(e) => e.ts,
        }
    }
}

impl From<RoomMessage> for HistoryMessage {
    fn from(m: RoomMessage) -> Self {
        HistoryMessage::Room(m)
    }
}

impl From<DmMessage> for HistoryMessage {
    fn from(m: DmMessage) -> Self {
        HistoryMessage::Dm(m)
    }
}

/// (v2) `history` ack body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryAck {
    /// Oldest first, at most the request's limit.
    pub messages: Vec<HistoryMessage>,
    /// Whether older messages exist (`false` also where kept history ends,
    /// under `--retention`).
    pub more: bool,
}

/// (v2) `ping` ack body: the server's clock, milliseconds since the Unix
/// epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingAck {
    pub ts: u64,
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
            queued: None,
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
        assert_eq!(list.rooms, vec![RoomCount::new("#a", 2)]);

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

    #[test]
    fn queued_dm_ack() {
        let v = json!({"ok": true, "id": "12", "ts": 5, "queued": true});
        let a: SentAck = parse_ack(v.clone()).unwrap();
        assert_eq!(a.queued, Some(true));
        assert_eq!(serde_json::to_value(AckOk::new(&a)).unwrap(), v);
        // A v1 ack has no `queued`, and one delivered now sends none.
        let a: SentAck = parse_ack(json!({"ok": true, "id": "13", "ts": 6})).unwrap();
        assert_eq!(a.queued, None);
        assert_eq!(
            serde_json::to_value(AckOk::new(&a)).unwrap(),
            json!({"ok": true, "id": "13", "ts": 6})
        );
    }

    #[test]
    fn history_ack_holds_room_messages_and_dms() {
        let v = json!({"ok": true, "messages": [
            {"id": "40", "ts": 1, "from": "bob", "room": "#general", "text": "hi"},
            {"id": "41", "ts": 2, "from": "alice", "room": "#general", "text": "waves", "action": true}
        ], "more": true});
        let h: HistoryAck = parse_ack(v.clone()).unwrap();
        assert!(h.more);
        assert_eq!(h.messages.len(), 2);
        let HistoryMessage::Room(m) = &h.messages[1] else {
            panic!("{:?}", h.messages[1])
        };
        assert_eq!(m.action, Some(true));
        assert_eq!(h.messages[1].id(), "41");
        assert_eq!(h.messages[1].ts(), 2);
        assert_eq!(serde_json::to_value(AckOk::new(&h)).unwrap(), v);

        let v = json!({"ok": true, "messages": [
            {"id": "7", "ts": 3, "from": "alice", "to": "bob", "text": "psst"},
            {"id": "9", "ts": 4, "from": "bob", "to": "alice", "text": "yes", "replayed": true}
        ], "more": false});
        let h: HistoryAck = parse_ack(v.clone()).unwrap();
        assert!(!h.more);
        let HistoryMessage::Dm(m) = &h.messages[0] else {
            panic!("{:?}", h.messages[0])
        };
        assert_eq!(m.to, "bob");
        assert_eq!(h.messages[1].id(), "9");
        assert_eq!(serde_json::to_value(AckOk::new(&h)).unwrap(), v);

        let empty: HistoryAck =
            parse_ack(json!({"ok": true, "messages": [], "more": false})).unwrap();
        assert_eq!(empty, HistoryAck::default());
    }

    #[test]
    fn history_messages_round_trip() {
        let room = HistoryMessage::from(RoomMessage {
            id: "1".into(),
            ts: 10,
            from: "alice".into(),
            room: "#general".into(),
            text: "hi".into(),
            ..Default::default()
        });
        let dm = HistoryMessage::from(DmMessage {
            id: "2".into(),
            ts: 11,
            from: "alice".into(),
            to: "bob".into(),
            text: "psst".into(),
            replayed: Some(true),
            action: Some(true),
            ..Default::default()
        });
        for m in [room, dm] {
            let v = serde_json::to_value(&m).unwrap();
            assert_eq!(serde_json::from_value::<HistoryMessage>(v).unwrap(), m);
        }
        // Neither a room message nor a DM.
        assert!(
            serde_json::from_value::<HistoryMessage>(
                json!({"id": "3", "ts": 1, "from": "a", "text": "x"})
            )
            .is_err()
        );
    }

    #[test]
    fn ping_ack() {
        let v = json!({"ok": true, "ts": 1700000000000u64});
        let p: PingAck = parse_ack(v.clone()).unwrap();
        assert_eq!(p.ts, 1700000000000);
        assert_eq!(serde_json::to_value(AckOk::new(&p)).unwrap(), v);
        assert!(matches!(
            parse_ack::<PingAck>(json!({"ok": true, "ts": "now"})),
            Err(AckError::Malformed(_))
        ));
    }
}
