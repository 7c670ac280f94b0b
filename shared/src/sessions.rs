//! (v3) One account on several clients at once, and read markers that
//! follow it: `session:list`, `session:end`, `read:mark`, `read:marker`,
//! `room:joined`, `room:left` and the `markers` of `session`.

use serde::{Deserialize, Serialize};

/// The most characters of a handshake's `client` label that are kept.
pub const CLIENT_LABEL_MAX: usize = 64;

/// How far `unread` counts: a conversation with more unread messages says
/// this many.
pub const UNREAD_MAX: u64 = 1000;

/// A handshake's `client` label as the server keeps it: trimmed, control
/// characters dropped, cut to [`CLIENT_LABEL_MAX`] characters; `None`
/// when nothing is left.
pub fn client_label(raw: &str) -> Option<String> {
    let label: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(CLIENT_LABEL_MAX)
        .collect();
    let label = label.trim().to_owned();
    (!label.is_empty()).then_some(label)
}

/// A room (`{room}`) or a DM conversation (`{with}`): where a read marker
/// sits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conversation {
    Room(String),
    With(String),
}

/// `{room?, with?}` on the wire: exactly one is present.
#[derive(Serialize, Deserialize)]
struct ConversationWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    with: Option<String>,
}

impl ConversationWire {
    fn of(c: &Conversation) -> ConversationWire {
        match c {
            Conversation::Room(r) => ConversationWire {
                room: Some(r.clone()),
                with: None,
            },
            Conversation::With(u) => ConversationWire {
                room: None,
                with: Some(u.clone()),
            },
        }
    }

    fn read<E: serde::de::Error>(self) -> Result<Conversation, E> {
        match (self.room, self.with) {
            (Some(r), None) => Ok(Conversation::Room(r)),
            (None, Some(u)) => Ok(Conversation::With(u)),
            _ => Err(E::custom("exactly one of room and with")),
        }
    }
}

/// Writes a struct's fields with its conversation's `room` or `with`
/// first.
macro_rules! with_conversation {
    ($name:ident, $wire:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct $wire {
            #[serde(flatten)]
            at: ConversationWire,
            $($field: $ty,)*
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $wire {
                    at: ConversationWire::of(&self.at),
                    $($field: self.$field.clone(),)*
                }
                .serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let w = $wire::deserialize(d)?;
                Ok($name {
                    at: w.at.read()?,
                    $($field: w.$field,)*
                })
            }
        }
    };
}

/// `read:mark` from a client: `{room, id}` or `{with, id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMarkRequest {
    pub at: Conversation,
    /// The id of the last message read.
    pub id: String,
}
with_conversation!(ReadMarkRequest, ReadMarkWire { id: String });

/// The `read:mark` ack body and the `read:marker` event: `{room | with,
/// id}`, the marker as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMarker {
    pub at: Conversation,
    pub id: String,
}
with_conversation!(ReadMarker, ReadMarkerWire { id: String });

/// One entry of `session.markers`: `{room | with, id, unread}`, `id` null
/// when the conversation has no marker yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub at: Conversation,
    pub id: Option<String>,
    /// Messages from others after the marker, up to [`UNREAD_MAX`].
    pub unread: u64,
}
with_conversation!(Marker, MarkerWire { id: Option<String>, unread: u64 });

/// `room:joined` and `room:left`: another session of this account joined
/// or left `room`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomChanged {
    pub room: String,
}

/// `session:end` from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEndRequest {
    /// A session's public handle from `session:list`.
    pub id: String,
}

/// One of an account's sessions, as `session:list` shows it. Never the
/// session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub id: String,
    /// The handshake's `client` label, if it sent one.
    pub client: Option<String>,
    /// The client's address when it connected.
    pub address: Option<String>,
    /// ms since the Unix epoch.
    pub connected_at: u64,
    pub last_active_at: u64,
    /// A socket holds it now (otherwise it waits in its recovery window).
    pub live: bool,
    /// The session of the socket that asked.
    pub current: bool,
}

/// The `session:list` ack body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionListAck {
    pub sessions: Vec<SessionSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn read_mark_reads_room_or_with_and_refuses_both_or_neither() {
        let r: ReadMarkRequest = serde_json::from_value(json!({"room": "#a", "id": "7"})).unwrap();
        assert_eq!(r.at, Conversation::Room("#a".into()));
        let w: ReadMarkRequest = serde_json::from_value(json!({"with": "bob", "id": "7"})).unwrap();
        assert_eq!(w.at, Conversation::With("bob".into()));
        assert!(
            serde_json::from_value::<ReadMarkRequest>(
                json!({"room": "#a", "with": "b", "id": "1"})
            )
            .is_err()
        );
        assert!(serde_json::from_value::<ReadMarkRequest>(json!({"id": "1"})).is_err());
        assert!(serde_json::from_value::<ReadMarkRequest>(json!({"room": "#a"})).is_err());
    }

    #[test]
    fn markers_write_the_contract_shape() {
        let m = Marker {
            at: Conversation::With("bob".into()),
            id: None,
            unread: 3,
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"with": "bob", "id": null, "unread": 3})
        );
        let back: Marker =
            serde_json::from_value(json!({"room": "#a", "id": "9", "unread": 0})).unwrap();
        assert_eq!(back.at, Conversation::Room("#a".into()));
        assert_eq!(back.id.as_deref(), Some("9"));
        let s = SessionSummary {
            id: "x".into(),
            client: Some("chat-tui on box".into()),
            address: None,
            connected_at: 1,
            last_active_at: 2,
            live: true,
            current: false,
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"id": "x", "client": "chat-tui on box", "address": null,
                   "connectedAt": 1, "lastActiveAt": 2, "live": true, "current": false})
        );
    }

    #[test]
    fn client_labels_are_cut_and_cleaned() {
        assert_eq!(client_label("  laptop \n").as_deref(), Some("laptop"));
        assert_eq!(client_label("\u{1b}[31m").as_deref(), Some("[31m"));
        assert_eq!(client_label("   "), None);
        assert_eq!(client_label(&"x".repeat(100)).unwrap().chars().count(), 64);
    }
}
