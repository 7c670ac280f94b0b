//! One connection attempt, in three phases: [`open`] the transport (a
//! failure here is classified), [`await_accept`]: wait for the server to
//! accept the namespace, since nothing may be emitted before (a refusal
//! comes here), then the live session ([`super::live::serve`]).

use std::time::Duration;

use chat_shared::{Auth, CHAT_NS};
use futures_util::FutureExt;
use rust_socketio::Event;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

use super::classify::{classify_failure, parse_connect_error};
use super::live::{discard, serve};
use super::requests::{payload_value, refuse_offline};
use super::{NetConfig, Outcome, Raw, Resume};
use crate::msg::{ConnectFailure, NetCommand, NetEvent};

pub(super) async fn connect_once(
    config: &mut NetConfig,
    resume: &mut Resume,
    cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::UnboundedSender<NetEvent>,
) -> Outcome {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel();
    let client = match open(config, resume, raw_tx.clone(), events).await {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    let client = match await_accept(client, config, &mut raw_rx, cmds, events).await {
        Ok(client) => client,
        Err(outcome) => return outcome,
    };
    serve(client, raw_tx, raw_rx, config, resume, cmds, events).await
}

/// Phase one: the transport, up to the library's `connect()`.
async fn open(
    config: &NetConfig,
    resume: &Resume,
    raw: mpsc::UnboundedSender<Raw>,
    events: &mpsc::UnboundedSender<NetEvent>,
) -> Result<Client, Outcome> {
    let builder = build(config, resume, raw);
    match timeout(config.connect_timeout, builder.connect()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => {
            let text = format!("{e} {e:?}");
            tracing::debug!("connect failed: {text}");
            let _ = events.send(NetEvent::Failed {
                failure: classify_failure(&text),
            });
            Err(Outcome::Lost { was_live: false })
        }
        Err(_) => {
            let _ = events.send(NetEvent::Failed {
                failure: ConnectFailure::Unreachable,
            });
            Err(Outcome::Lost { was_live: false })
        }
    }
}

/// Phase two: `connect()` returns before the server accepts the namespace,
/// and nothing may be emitted before it does (`Event::Connect`).
async fn await_accept(
    client: Client,
    config: &mut NetConfig,
    raw_rx: &mut mpsc::UnboundedReceiver<Raw>,
    cmds: &mut mpsc::UnboundedReceiver<NetCommand>,
    events: &mpsc::UnboundedSender<NetEvent>,
) -> Result<Client, Outcome> {
    let deadline = Instant::now() + config.connect_timeout;
    loop {
        tokio::select! {
            raw = raw_rx.recv() => match raw {
                Some(Raw::Connect) => return Ok(client),
                Some(Raw::Error(text)) => {
                    if let Some(refusal) = parse_connect_error(&text) {
                        discard(client);
                        return Err(Outcome::Refused(refusal));
                    }
                    tracing::debug!("error while connecting: {text}");
                }
                Some(Raw::Close) | None => {
                    discard(client);
                    return Err(Outcome::Lost { was_live: false });
                }
                Some(Raw::Event(..)) | Some(Raw::Contact) => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                discard(client);
                return Err(Outcome::Lost { was_live: false });
            }
            cmd = cmds.recv() => match cmd {
                None | Some(NetCommand::Shutdown) => {
                    let _ = timeout(Duration::from_secs(2), client.disconnect()).await;
                    return Err(Outcome::Quit);
                }
                Some(NetCommand::Rename(name)) => {
                    discard(client);
                    return Err(Outcome::Renamed(name));
                }
                Some(NetCommand::Login(p)) => {
                    config.password = Some(p);
                    discard(client);
                    return Err(Outcome::Retry);
                }
                Some(NetCommand::Register(p)) => {
                    config.password = Some(p);
                    config.register = true;
                    discard(client);
                    return Err(Outcome::Retry);
                }
                Some(NetCommand::SetPassword(p)) => config.password = Some(p),
                Some(NetCommand::UseName(name)) => config.username = name,
                Some(cmd) => refuse_offline(cmd, events),
            },
        }
    }
}

/// The handshake's `auth`: who I am, how to resume, and (v3) what this
/// client is called in the account's session list.
fn auth(config: &NetConfig, resume: &Resume) -> Auth {
    Auth {
        username: config.username.clone(),
        password: config.password.as_ref().map(|p| p.expose().to_owned()),
        register: config.register.then_some(true),
        session: resume.session.clone(),
        offset: resume.offset.clone(),
        client: config.client_label.clone(),
        token: config.token.clone(),
    }
}

fn build(config: &NetConfig, resume: &Resume, raw: mpsc::UnboundedSender<Raw>) -> ClientBuilder {
    let auth = serde_json::to_value(auth(config, resume)).unwrap_or(Value::Null);
    let (on_connect, on_close, on_error, on_any) = (raw.clone(), raw.clone(), raw.clone(), raw);
    let mut builder = ClientBuilder::new(config.url.clone());
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(tls.clone());
    }
    builder
        .namespace(CHAT_NS)
        .auth(auth)
        .reconnect(false)
        .reconnect_on_disconnect(false)
        .on(Event::Connect, move |_, _| {
            let _ = on_connect.send(Raw::Connect);
            async {}.boxed()
        })
        .on(Event::Close, move |_, _| {
            let _ = on_close.send(Raw::Close);
            async {}.boxed()
        })
        .on(Event::Error, move |payload, _| {
            let text = match payload_value(payload) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let _ = on_error.send(Raw::Error(text));
            async {}.boxed()
        })
        .on_any(move |event, payload, _| {
            let _ = on_any.send(Raw::Event(String::from(event), payload_value(payload)));
            async {}.boxed()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_names_this_client_unless_told_not_to() {
        let mut config = NetConfig::new("http://x:1", "alice");
        let resume = Resume::default();
        let label = auth(&config, &resume).client.expect("a label by default");
        assert!(label.starts_with("chat-tui"), "{label}");
        config.client_label = Some("chat-tui on desk".into());
        let v = serde_json::to_value(auth(&config, &resume)).unwrap();
        assert_eq!(v["client"], "chat-tui on desk");
        config.client_label = None;
        let v = serde_json::to_value(auth(&config, &resume)).unwrap();
        assert!(v.get("client").is_none());
    }
}
