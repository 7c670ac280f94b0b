//! The third phase of an attempt: the live connection. Server events go
//! to the app (and move the resume offset), commands come in, requests go
//! out one at a time, and an acked `ping` checks that the transport is
//! alive, since a dead one may show as nothing at all.

use std::time::Duration;

use chat_shared::{AckError, ClientEvent, ConnectRefusal, ErrorCode, ServerEvent};
use rust_socketio::asynchronous::Client;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::classify::parse_connect_error;
use super::requests::{Requests, emit_acked, refuse_offline, typed_ack, wait_ack};
use super::{NetConfig, Outcome, Raw, Resume};
use crate::msg::{AckReply, NetCommand, NetEvent, ends_session, id_order};

/// What the loop does after one happening.
enum Flow {
    Go,
    /// The connection ends: waiting requests are refused, the client let go.
    End(Outcome),
    /// The task ends as it is.
    Quit,
}

/// The liveness check: one in flight at a time; its answer comes back on
/// the receiver made with it.
struct Probe {
    in_flight: bool,
    next: Instant,
    tx: mpsc::UnboundedSender<Result<AckReply, AckError>>,
}

/// One live connection.
struct Link<'a> {
    client: Client,
    /// For the acks' callbacks: an answer is contact.
    raw_tx: mpsc::UnboundedSender<Raw>,
    config: &'a mut NetConfig,
    resume: &'a mut Resume,
    events: &'a mpsc::UnboundedSender<NetEvent>,
    /// A `session` event arrived: requests may go out.
    live: bool,
    probe: Probe,
    requests: Requests,
}

/// Runs the connection until it ends.
pub(super) async fn serve(
    client: Client,
    raw_tx: mpsc::UnboundedSender<Raw>,
    mut raw_rx: mpsc::UnboundedReceiver<Raw>,
    config: &mut NetConfig,
    resume: &mut Resume,
    cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::UnboundedSender<NetEvent>,
) -> Outcome {
    resume.last_contact = Some(Instant::now());
    let (probe_tx, mut probe_rx) = mpsc::unbounded_channel();
    let (requests, mut turns) = Requests::new();
    let next_probe = Instant::now() + config.liveness_interval;
    let mut link = Link {
        client,
        raw_tx,
        config,
        resume,
        events,
        live: false,
        probe: Probe {
            in_flight: false,
            next: next_probe,
            tx: probe_tx,
        },
        requests,
    };
    let outcome = loop {
        if let Err(outcome) = link.send_next().await {
            break outcome;
        }
        let probe_at = link.probe_at();
        let probe_due = !link.probe.in_flight;
        let flow = tokio::select! {
            raw = raw_rx.recv() => link.on_raw(raw, cmds).await,
            cmd = cmds.recv() => link.on_command(cmd).await,
            Some(()) = turns.recv() => {
                link.requests.turn_back();
                Flow::Go
            }
            _ = tokio::time::sleep_until(probe_at), if probe_due => link.send_probe().await,
            Some(result) = probe_rx.recv() => link.on_probe(result),
        };
        match flow {
            Flow::Go => {}
            Flow::End(outcome) => break outcome,
            Flow::Quit => return Outcome::Quit,
        }
    };
    link.requests.refuse_all(link.events);
    match &outcome {
        // No planned disconnect: that would end the session being claimed.
        // The server closes the old connection once the new one takes over.
        Outcome::Claim(..) => {}
        _ => discard(link.client),
    }
    outcome
}

impl Link<'_> {
    fn lost(&self) -> Outcome {
        Outcome::Lost {
            was_live: self.live,
        }
    }

    async fn send_next(&mut self) -> Result<(), Outcome> {
        if !self.live {
            return Ok(());
        }
        let sent = self
            .requests
            .send_next(
                &self.client,
                self.config.ack_timeout,
                &self.raw_tx,
                self.events,
            )
            .await;
        if sent { Ok(()) } else { Err(self.lost()) }
    }

    async fn on_raw(
        &mut self,
        raw: Option<Raw>,
        cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    ) -> Flow {
        match raw {
            Some(Raw::Event(name, value)) => self.on_event(name, value, cmds).await,
            Some(Raw::Error(text)) => {
                if let Some(refusal) = parse_connect_error(&text) {
                    return Flow::End(Outcome::Refused(refusal));
                }
                // The transport may be dying: check now.
                tracing::debug!("transport error: {text}");
                self.probe.next = Instant::now();
                Flow::Go
            }
            Some(Raw::Close) | None => Flow::End(self.lost()),
            Some(Raw::Contact) => {
                self.resume.last_contact = Some(Instant::now());
                Flow::Go
            }
            Some(Raw::Connect) => Flow::Go,
        }
    }

    async fn on_event(
        &mut self,
        name: String,
        value: Value,
        cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    ) -> Flow {
        self.resume.last_contact = Some(Instant::now());
        let ev = match ServerEvent::parse(&name, value) {
            Ok(ev) => ev,
            Err(e) => {
                // Not the parser's words: they may quote the payload, and
                // so a message's text, which must not outlive its deletion
                // in a log file.
                let why = match e {
                    chat_shared::ParseError::UnknownEvent(_) => "unknown event",
                    chat_shared::ParseError::InvalidPayload(_) => "payload outside the contract",
                };
                tracing::debug!("ignored server event {name}: {why}");
                return Flow::Go;
            }
        };
        note_offset(self.resume, &ev);
        let replaced = matches!(&ev, ServerEvent::Error(e) if e.code == ErrorCode::SessionReplaced);
        let ended = match &ev {
            ServerEvent::Error(e) if ends_session(e) => {
                Some(ConnectRefusal::new(e.code, e.message.clone()))
            }
            _ => None,
        };
        if let ServerEvent::Session(s) = &ev {
            self.resume.session = Some(s.session.clone());
            self.resume.established = true;
            self.live = true;
        }
        let _ = self.events.send(NetEvent::Server(ev));
        if replaced {
            self.taken_over(cmds).await;
            return Flow::Quit;
        }
        match ended {
            Some(refusal) => Flow::End(Outcome::Ended(refusal)),
            None => Flow::Go,
        }
    }

    /// Another client took this session over: fighting back would make the
    /// two take turns forever.
    async fn taken_over(&mut self, cmds: &mut mpsc::UnboundedReceiver<NetCommand>) {
        discard(self.client.clone());
        self.requests.refuse_all(self.events);
        let _ = self.events.send(NetEvent::Refused {
            refusal: ConnectRefusal::new(
                ErrorCode::SessionReplaced,
                "this session was taken over by another client",
            ),
            retrying: false,
        });
        idle_until_shutdown(cmds, self.events).await;
    }

    async fn on_command(&mut self, cmd: Option<NetCommand>) -> Flow {
        match cmd {
            None | Some(NetCommand::Shutdown) => {
                let _ = timeout(Duration::from_secs(2), self.client.disconnect()).await;
                Flow::Quit
            }
            Some(NetCommand::Rename(name)) if !self.live => Flow::End(Outcome::Renamed(name)),
            Some(NetCommand::Rename(_)) => Flow::Go,
            Some(NetCommand::SetPassword(p)) => {
                self.config.password = Some(p);
                Flow::Go
            }
            Some(NetCommand::UseName(name)) => {
                self.config.username = name;
                Flow::Go
            }
            Some(NetCommand::Reconnect) => Flow::Go,
            Some(NetCommand::Login(p)) => {
                self.config.password = Some(p);
                if self.live {
                    Flow::Go
                } else {
                    Flow::End(Outcome::Retry)
                }
            }
            Some(NetCommand::Register(p)) => {
                if self.live {
                    return Flow::End(Outcome::Claim(p, self.client.clone()));
                }
                self.config.password = Some(p);
                self.config.register = true;
                Flow::End(Outcome::Retry)
            }
            Some(NetCommand::Volatile(ev)) => {
                if !self.live {
                    return Flow::Go;
                }
                let sent = timeout(
                    self.config.ack_timeout,
                    self.client.emit(ev.name(), ev.payload()),
                )
                .await;
                match sent {
                    Ok(Ok(())) => Flow::Go,
                    _ => Flow::End(self.lost()),
                }
            }
            Some(NetCommand::Request { req, event }) => {
                if self.live {
                    self.requests.push(req, event);
                } else {
                    refuse_offline(NetCommand::Request { req, event }, self.events);
                }
                Flow::Go
            }
        }
    }

    /// When the next liveness check is due. It also waits for its turn
    /// while a request is out, unless nothing has been heard for a whole
    /// interval.
    fn probe_at(&self) -> Instant {
        match self.resume.last_contact {
            Some(t) if self.requests.in_flight() => {
                self.probe.next.max(t + self.config.liveness_interval)
            }
            _ => self.probe.next,
        }
    }

    async fn send_probe(&mut self) -> Flow {
        self.probe.in_flight = true;
        self.probe.next = Instant::now() + self.config.liveness_interval;
        // `ping` costs the server O(1), unlike `presence:get`.
        let event = ClientEvent::Ping;
        let limit = self.config.liveness_timeout;
        match emit_acked(&self.client, &event, limit, self.raw_tx.clone()).await {
            Ok(rx) => {
                let probe_tx = self.probe.tx.clone();
                tokio::spawn(async move {
                    let result = wait_ack(rx, limit).await.and_then(|v| typed_ack(&event, v));
                    let _ = probe_tx.send(result);
                });
                Flow::Go
            }
            Err(_) => Flow::End(self.lost()),
        }
    }

    fn on_probe(&mut self, result: Result<AckReply, AckError>) -> Flow {
        self.probe.in_flight = false;
        match result {
            // An answer, even a refusal, proves the transport alive.
            Ok(_) | Err(AckError::Refused(_)) | Err(AckError::Malformed(_)) => {
                self.resume.last_contact = Some(Instant::now());
                Flow::Go
            }
            Err(AckError::Timeout) | Err(AckError::NotSent(_)) => {
                tracing::debug!("liveness check unanswered: the transport is dead");
                Flow::End(self.lost())
            }
        }
    }
}

/// The resume offset follows the newest message (or room event, whose ids
/// come from the same sequence) received.
fn note_offset(resume: &mut Resume, ev: &ServerEvent) {
    if let Some(id) = message_id(ev) {
        let newer = match resume.offset.as_deref() {
            Some(old) => id_order(old, id) != Some(std::cmp::Ordering::Greater),
            None => true,
        };
        if newer {
            resume.offset = Some(id.to_owned());
        }
    }
}

fn message_id(ev: &ServerEvent) -> Option<&str> {
    match ev {
        ServerEvent::RoomMessage(m) => Some(&m.id),
        ServerEvent::DmMessage(m) => Some(&m.id),
        ServerEvent::GlobalMessage(m) | ServerEvent::BroadcastMessage(m) => Some(&m.id),
        ServerEvent::RoomEvent(e) => Some(&e.id),
        // (v3) Changes are numbered in the same sequence as messages.
        ServerEvent::MessageUpdate(u) => Some(&u.id),
        _ => None,
    }
}

async fn idle_until_shutdown(
    cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::UnboundedSender<NetEvent>,
) {
    while let Some(cmd) = cmds.recv().await {
        if cmd == NetCommand::Shutdown {
            return;
        }
        refuse_offline(cmd, events);
    }
}

/// Disconnects an old client in the background: on a dead transport this
/// may take long or fail, and it must not hold up the next attempt.
pub(super) fn discard(client: Client) {
    tokio::spawn(async move {
        let _ = timeout(Duration::from_secs(2), client.disconnect()).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_moves_the_offset_as_a_message_does() {
        let mut resume = Resume {
            session: Some("t".into()),
            offset: Some("5".into()),
            last_contact: None,
            established: true,
        };
        let update = ServerEvent::parse(
            "message:update",
            serde_json::json!({"id": "9", "ts": 1, "target": "5", "kind": "delete", "by": "bob",
                               "room": "#a"}),
        )
        .expect("a contract payload");
        note_offset(&mut resume, &update);
        // A reconnect asks for what came after the change, not for the
        // change again.
        assert_eq!(resume.offset.as_deref(), Some("9"));
    }
}
