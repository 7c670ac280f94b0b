//! Acked requests: sent one at a time (see [`Requests`]), each answer raced
//! against a timeout and typed by the request it answers; without a
//! connection a request is refused at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_shared::{AckError, ClientEvent, parse_ack};
use futures_util::FutureExt;
use rust_socketio::Payload;
use rust_socketio::asynchronous::Client;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use super::Raw;
use crate::msg::{AckReply, NetCommand, NetEvent};

/// The requests of one connection waiting for their turn. They go out one
/// at a time: rust_socketio 0.6 picks ack ids at random in 0..999, and two
/// in flight with the same id get each other's answers and kill its reader.
/// The turn comes back on the receiver [`Requests::new`] returns.
pub(super) struct Requests {
    waiting: VecDeque<(u64, ClientEvent)>,
    in_flight: bool,
    turn: mpsc::UnboundedSender<()>,
}

impl Requests {
    pub fn new() -> (Requests, mpsc::UnboundedReceiver<()>) {
        let (turn, turns) = mpsc::unbounded_channel();
        let requests = Requests {
            waiting: VecDeque::new(),
            in_flight: false,
            turn,
        };
        (requests, turns)
    }

    pub fn push(&mut self, req: u64, event: ClientEvent) {
        self.waiting.push_back((req, event));
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// The request out was answered (or timed out): the next may go.
    pub fn turn_back(&mut self) {
        self.in_flight = false;
    }

    /// Sends the next request if it is its turn; its answer goes to
    /// `events`. False if the send failed: the connection is lost.
    pub async fn send_next(
        &mut self,
        client: &Client,
        ack_timeout: Duration,
        contact: &mpsc::UnboundedSender<Raw>,
        events: &mpsc::UnboundedSender<NetEvent>,
    ) -> bool {
        if self.in_flight {
            return true;
        }
        let Some((req, event)) = self.waiting.pop_front() else {
            return true;
        };
        match emit_acked(client, &event, ack_timeout, contact.clone()).await {
            Ok(rx) => {
                self.in_flight = true;
                let events = events.clone();
                let turn = self.turn.clone();
                tokio::spawn(async move {
                    let result = wait_ack(rx, ack_timeout)
                        .await
                        .and_then(|v| typed_ack(&event, v));
                    let _ = events.send(NetEvent::Ack { req, result });
                    let _ = turn.send(());
                });
                true
            }
            Err(e) => {
                let _ = events.send(NetEvent::Ack {
                    req,
                    result: Err(e),
                });
                false
            }
        }
    }

    /// The connection ended: the requests still waiting were never sent.
    pub fn refuse_all(&mut self, events: &mpsc::UnboundedSender<NetEvent>) {
        refuse_waiting(std::mem::take(&mut self.waiting), events);
    }
}

/// Sends an acked event; the answer (or `Timeout`) goes to `reply`.
pub(super) async fn emit_acked(
    client: &Client,
    event: &ClientEvent,
    ack_timeout: Duration,
    contact: mpsc::UnboundedSender<Raw>,
) -> Result<oneshot::Receiver<Value>, AckError> {
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let callback = move |payload: Payload, _: Client| {
        if let Ok(mut slot) = tx.lock()
            && let Some(tx) = slot.take()
        {
            let _ = tx.send(payload_value(payload));
        }
        let _ = contact.send(Raw::Contact);
        async {}.boxed()
    };
    match timeout(
        ack_timeout,
        client.emit_with_ack(event.name(), event.payload(), ack_timeout, callback),
    )
    .await
    {
        Ok(Ok(())) => Ok(rx),
        Ok(Err(e)) => Err(AckError::NotSent(e.to_string())),
        Err(_) => Err(AckError::NotSent("send timed out".into())),
    }
}

pub(super) fn typed_ack(event: &ClientEvent, v: Value) -> Result<AckReply, AckError> {
    Ok(match event {
        ClientEvent::RoomJoin(_) => AckReply::Joined(parse_ack(v)?),
        ClientEvent::RoomLeave(_) => AckReply::Left(parse_ack(v)?),
        ClientEvent::RoomList => AckReply::Rooms(parse_ack(v)?),
        ClientEvent::PresenceGet => AckReply::Presence(parse_ack(v)?),
        ClientEvent::RoomMessage(_)
        | ClientEvent::DmMessage(_)
        | ClientEvent::GlobalMessage(_)
        | ClientEvent::BroadcastMessage(_) => AckReply::Sent(parse_ack(v)?),
        // (v3) `{ok:true, id, ts}`, `id` the change's own.
        ClientEvent::MessageEdit(_)
        | ClientEvent::MessageDelete(_)
        | ClientEvent::MessageReact(_) => AckReply::Sent(parse_ack(v)?),
        ClientEvent::Typing(_) => {
            parse_ack::<chat_shared::EmptyAck>(v)?;
            AckReply::Done
        }
        ClientEvent::History(_) => AckReply::History(parse_ack(v)?),
        ClientEvent::Ping => {
            parse_ack::<chat_shared::PingAck>(v)?;
            AckReply::Done
        }
        ClientEvent::AccountPassword(_) => {
            parse_ack::<chat_shared::EmptyAck>(v)?;
            AckReply::Done
        }
        ClientEvent::RoomInfo(_) => AckReply::RoomInfo(parse_ack(v)?),
        ClientEvent::RoomSettings(_) => AckReply::RoomSettings(parse_ack(v)?),
        ClientEvent::RoomInvite(_) => AckReply::Invited(parse_ack(v)?),
        ClientEvent::RoomRole(_) => AckReply::RoomRole(parse_ack(v)?),
        ClientEvent::UserRole(_) => AckReply::UserRole(parse_ack(v)?),
        ClientEvent::UserBans => AckReply::Bans(parse_ack(v)?),
        ClientEvent::UserBlock(_) | ClientEvent::UserUnblock(_) => AckReply::Blocked(parse_ack(v)?),
        ClientEvent::UserRename(_) => AckReply::Renamed(parse_ack(v)?),
        ClientEvent::SessionList => AckReply::Sessions(parse_ack(v)?),
        ClientEvent::ReadMark(_) => AckReply::ReadMarked(parse_ack(v)?),
        // Kicks, bans, mutes and their lifting, and `session:end`, answer
        // `{ok:true}`, and so does whatever a newer contract adds until
        // this client reads it.
        _ => {
            parse_ack::<chat_shared::EmptyAck>(v)?;
            AckReply::Done
        }
    })
}

pub(super) async fn wait_ack(
    rx: oneshot::Receiver<Value>,
    limit: Duration,
) -> Result<Value, AckError> {
    match timeout(limit, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) | Err(_) => Err(AckError::Timeout),
    }
}

/// Without a connection, requests fail at once with `NotSent` (the app
/// keeps own messages in its outbox).
pub(super) fn refuse_offline(cmd: NetCommand, events: &mpsc::UnboundedSender<NetEvent>) {
    if let NetCommand::Request { req, .. } = cmd {
        let _ = events.send(NetEvent::Ack {
            req,
            result: Err(AckError::NotSent("not connected".into())),
        });
    }
}

/// Requests still waiting for their turn were never sent: each is
/// answered as such (own messages go back to the outbox).
fn refuse_waiting(waiting: VecDeque<(u64, ClientEvent)>, events: &mpsc::UnboundedSender<NetEvent>) {
    for (req, _) in waiting {
        let _ = events.send(NetEvent::Ack {
            req,
            result: Err(AckError::NotSent("connection lost".into())),
        });
    }
}

/// The one JSON value of a payload (`Text([v])` → `v`).
pub(super) fn payload_value(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if values.len() == 1 => values.pop().unwrap_or(Value::Null),
        Payload::Text(values) => Value::Array(values),
        #[allow(deprecated)]
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        Payload::Binary(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use chat_shared::ErrorCode;

    use super::*;

    #[test]
    fn acks_are_typed_by_their_request() {
        let ev = ClientEvent::RoomList;
        let v = serde_json::json!([{"ok": true, "rooms": [{"room": "#a", "members": 1}]}]);
        assert!(matches!(typed_ack(&ev, v), Ok(AckReply::Rooms(_))));
        let ev = ClientEvent::GlobalMessage(chat_shared::TextRequest {
            text: "x".into(),
            action: false,
            ..Default::default()
        });
        let v = serde_json::json!({"ok": false, "error": {"code": "rate_limited", "message": "slow", "context": {}}});
        assert!(
            matches!(typed_ack(&ev, v), Err(AckError::Refused(e)) if e.code == ErrorCode::RateLimited)
        );
    }

    #[test]
    fn moderation_acks_are_typed_too() {
        let ev = ClientEvent::UserBlock(chat_shared::UserRequest { user: "bob".into() });
        let v = serde_json::json!({"ok": true, "blocked": ["bob"]});
        assert!(matches!(typed_ack(&ev, v), Ok(AckReply::Blocked(b)) if b.blocked == ["bob"]));
        let ev = ClientEvent::RoomKick(chat_shared::RoomSanctionRequest::default());
        assert_eq!(
            typed_ack(&ev, serde_json::json!({"ok": true})),
            Ok(AckReply::Done)
        );
        let ev = ClientEvent::RoomInfo(chat_shared::RoomRequest { room: "#a".into() });
        let v = serde_json::json!({"ok": true, "room": "#a", "topic": "", "private": false,
            "owners": ["alice"], "ops": [], "members": [{"username": "alice", "role": "owner", "online": true}]});
        assert!(matches!(typed_ack(&ev, v), Ok(AckReply::RoomInfo(i)) if i.owners == ["alice"]));
    }

    #[test]
    fn session_and_read_marker_acks_are_typed_too() {
        let v = serde_json::json!({"ok": true, "sessions": [{"id": "a1", "client": null,
            "address": "10.0.0.1", "connectedAt": 1, "lastActiveAt": 2, "live": true, "current": true}]});
        assert!(
            matches!(typed_ack(&ClientEvent::SessionList, v), Ok(AckReply::Sessions(l)) if l.sessions[0].id == "a1")
        );
        let ev = ClientEvent::ReadMark(chat_shared::ReadMarkRequest {
            at: chat_shared::sessions::Conversation::With("bob".into()),
            id: "7".into(),
        });
        let v = serde_json::json!({"ok": true, "with": "bob", "id": "9"});
        assert!(matches!(typed_ack(&ev, v), Ok(AckReply::ReadMarked(m)) if m.id == "9"));
        let ev = ClientEvent::SessionEnd(chat_shared::SessionEndRequest { id: "a1".into() });
        assert_eq!(
            typed_ack(&ev, serde_json::json!({"ok": true})),
            Ok(AckReply::Done)
        );
    }

    #[test]
    fn message_change_acks_carry_the_change_id() {
        let ev = ClientEvent::MessageEdit(chat_shared::MessageEditRequest {
            id: "4".into(),
            text: "fixed".into(),
        });
        let v = serde_json::json!({"ok": true, "id": "9", "ts": 5});
        assert!(matches!(typed_ack(&ev, v), Ok(AckReply::Sent(a)) if a.id == "9"));
        let ev = ClientEvent::MessageReact(chat_shared::MessageReactRequest {
            id: "4".into(),
            emoji: "👍".into(),
            on: true,
        });
        let v = serde_json::json!({"ok": false, "error": {"code": "message_not_found",
            "message": "no message 4 that you can see", "context": {"event": "message:react"}}});
        assert!(
            matches!(typed_ack(&ev, v), Err(AckError::Refused(e)) if e.code == ErrorCode::MessageNotFound)
        );
    }

    #[test]
    fn payloads_unwrap_to_one_value() {
        let v = serde_json::json!({"ok": true});
        assert_eq!(payload_value(Payload::Text(vec![v.clone()])), v);
        assert_eq!(payload_value(Payload::Text(vec![])), Value::Array(vec![]));
    }
}
