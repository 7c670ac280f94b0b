//! Unit tests of accounts in the client: the password asked on the input
//! line (masked, never in the input history), `/register`, `/passwd`, DMs
//! kept for an offline account, and remembered rooms on a fresh session.

use chat_shared::{ConnectRefusal, ErrorCode, HistoryTarget, PasswordChange, SentAck};
use crossterm::event::KeyCode;
use serde_json::json;
use tokio::time::Instant;

use super::testing::{T0, enter_line, key, net, net_commands, server};
use super::*;
use crate::password::Password;

fn session(s: &mut State, rooms: serde_json::Value) -> Vec<Effect> {
    server(
        s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "t", "recovered": false,
               "rooms": rooms, "missed": 0, "truncated": false}),
    )
}

fn refused(s: &mut State, code: ErrorCode, message: &str) -> Vec<Effect> {
    net(
        s,
        NetEvent::Refused {
            refusal: ConnectRefusal::new(code, message),
            retrying: false,
        },
    )
}

fn fresh() -> State {
    State::new("alice", "http://test", Instant::now(), T0)
}

#[tokio::test]
async fn a_refused_login_asks_for_the_password_on_the_input_line() {
    let mut s = fresh();
    refused(
        &mut s,
        ErrorCode::AuthRequired,
        "alice has an account: its password is needed",
    );
    assert!(s.asking_secret());
    assert!(
        s.toasts
            .iter()
            .any(|t| t.text.contains("type the password"))
    );
    let fx = enter_line(&mut s, "correct horse");
    assert_eq!(
        net_commands(&fx),
        [NetCommand::Login(Password::new("correct horse"))]
    );
    assert!(!s.asking_secret());
    assert!(
        !s.editor.history.iter().any(|h| h.contains("correct horse")),
        "a password never enters the input history"
    );
    // No typing signal went out while it was typed.
    assert!(
        fx.iter()
            .all(|e| !matches!(e, Effect::Net(NetCommand::Volatile(_))))
    );

    // A wrong one: asked again, and Esc gives up without sending anything.
    refused(
        &mut s,
        ErrorCode::BadCredentials,
        "wrong password for alice",
    );
    assert!(s.asking_secret());
    let fx = update(&mut s, key(KeyCode::Esc));
    assert!(net_commands(&fx).is_empty());
    assert!(!s.asking_secret());
}

#[tokio::test]
async fn register_asks_twice_and_claims_the_name() {
    let mut s = fresh();
    session(&mut s, json!([]));
    enter_line(&mut s, "/register");
    assert!(s.asking_secret());
    let fx = enter_line(&mut s, "short");
    assert!(net_commands(&fx).is_empty(), "too short: asked again");
    assert!(s.asking_secret());
    enter_line(&mut s, "a long password");
    let fx = enter_line(&mut s, "another password");
    assert!(net_commands(&fx).is_empty(), "the two differ");
    assert!(s.toasts.iter().any(|t| t.text.contains("differ")));
    enter_line(&mut s, "a long password");
    let fx = enter_line(&mut s, "a long password");
    assert_eq!(
        net_commands(&fx),
        [NetCommand::Register(Password::new("a long password"))]
    );
}

#[tokio::test]
async fn passwd_sends_the_old_and_new_password_and_keeps_the_new_one() {
    let mut s = fresh();
    session(&mut s, json!([]));
    enter_line(&mut s, "/passwd");
    enter_line(&mut s, "the old one");
    enter_line(&mut s, "the new one!");
    let fx = enter_line(&mut s, "the new one!");
    let (req, ev) = fx
        .iter()
        .find_map(|e| match e {
            Effect::Net(NetCommand::Request { req, event }) => Some((*req, event.clone())),
            _ => None,
        })
        .expect("account:password");
    assert_eq!(
        ev,
        ClientEvent::AccountPassword(PasswordChange {
            old: "the old one".into(),
            new: "the new one!".into()
        })
    );
    let fx = net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Done),
        },
    );
    assert!(
        net_commands(&fx).contains(&NetCommand::SetPassword(Password::new("the new one!"))),
        "a fresh login later uses the new password"
    );
}

#[tokio::test]
async fn a_dm_kept_for_an_offline_account_shows_queued_until_they_come_back() {
    let mut s = fresh();
    session(&mut s, json!([]));
    let fx = enter_line(&mut s, "/msg bob see you tomorrow");
    let req = fx
        .iter()
        .find_map(|e| match e {
            Effect::Net(NetCommand::Request { req, .. }) => Some(*req),
            _ => None,
        })
        .expect("the DM goes out");
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Sent(SentAck {
                id: "7".into(),
                ts: T0,
                queued: Some(true),
            })),
        },
    );
    let bob = ConvId::Dm("bob".into());
    let kind = |s: &State| s.conv(&bob).unwrap().entries.back().unwrap().kind.clone();
    assert_eq!(kind(&s), EntryKind::Own(Delivery::Held("bob".into())));
    server(
        &mut s,
        "presence",
        json!({"event": "connect", "user": "bob", "room": null, "online": 2, "members": null}),
    );
    assert_eq!(kind(&s), EntryKind::Own(Delivery::Sent));
}

#[tokio::test]
async fn a_fresh_session_in_remembered_rooms_fetches_their_history() {
    let mut s = fresh();
    let fx = session(&mut s, json!(["#team", "#ops"]));
    let asked: Vec<HistoryTarget> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Net(NetCommand::Request {
                event: ClientEvent::History(h),
                ..
            }) => Some(h.target.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        [
            HistoryTarget::Room("#team".into()),
            HistoryTarget::Room("#ops".into())
        ]
    );
    assert!(s.conv(&ConvId::Room("#team".into())).is_some());
}
