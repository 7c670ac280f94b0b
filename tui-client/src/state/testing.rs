//! What the state's unit tests share: keys, typed lines and network events
//! fed through [`update`], as the app would.

use chat_shared::ServerEvent;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{Effect, Input, NetEvent, State, update};
use crate::msg::{NetCommand, Notification};
use chat_shared::ClientEvent;

/// A wall-clock instant, in ms (2025-11-22).
pub const T0: u64 = 1_763_800_000_000;

pub fn key(code: KeyCode) -> Input {
    Input::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(c: char) -> Input {
    Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Types `text` key by key.
pub fn type_text(s: &mut State, text: &str) -> Vec<Effect> {
    let mut fx = Vec::new();
    for c in text.chars() {
        fx.extend(update(s, key(KeyCode::Char(c))));
    }
    fx
}

/// Types `text` and presses Enter.
pub fn enter_line(s: &mut State, text: &str) -> Vec<Effect> {
    let mut fx = type_text(s, text);
    fx.extend(update(s, key(KeyCode::Enter)));
    fx
}

pub fn net(s: &mut State, ev: NetEvent) -> Vec<Effect> {
    update(s, Input::Net(ev))
}

/// A server event, from its contract payload.
pub fn server(s: &mut State, name: &str, v: serde_json::Value) -> Vec<Effect> {
    let ev = ServerEvent::parse(name, v).expect("test payload follows the contract");
    net(s, NetEvent::Server(ev))
}

/// The requests among the effects, as `(req, event)`.
pub fn requests(fx: &[Effect]) -> Vec<(u64, ClientEvent)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Net(NetCommand::Request { req, event }) => Some((*req, event.clone())),
            _ => None,
        })
        .collect()
}

/// Every command to the network task among the effects.
pub fn net_commands(fx: &[Effect]) -> Vec<NetCommand> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Net(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The notifications among the effects.
pub fn notifications(fx: &[Effect]) -> Vec<Notification> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}
