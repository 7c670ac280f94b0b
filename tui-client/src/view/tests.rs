//! Whole-screen rendering tests on ratatui's `TestBackend`, at 80x24 and
//! 120x40, as insta snapshots (`src/view/snapshots/`), plus a few checks of
//! what snapshots of text cannot show (colours, highlighting, widths).

use std::time::Duration;

use chat_shared::{
    ConnectRefusal, ErrorCode, JoinAck, PresenceSnapshot, RoomCount, RoomMessage, ServerEvent,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::msg::{AckReply, NetCommand, NetEvent};
use crate::state::{Effect, Input, State, update};

/// 2025-11-22 08:26:40 UTC.
const T0: u64 = 1_763_800_000_000;
const DAY: u64 = 86_400_000;

fn render(state: &mut State, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    let mut report = None;
    terminal
        .draw(|f| report = Some(draw(f, state)))
        .expect("draw");
    if let Some(r) = report {
        state.max_scroll = r.max_scroll;
        state.page = r.page;
    }
    terminal
}

fn screen(state: &mut State, w: u16, h: u16) -> String {
    render(state, w, h).backend().to_string()
}

fn net(s: &mut State, ev: NetEvent) -> Vec<Effect> {
    update(s, Input::Net(ev))
}

fn server(s: &mut State, name: &str, v: serde_json::Value) -> Vec<Effect> {
    net(
        s,
        NetEvent::Server(ServerEvent::parse(name, v).expect("contract payload")),
    )
}

fn line(s: &mut State, text: &str) -> Vec<Effect> {
    let mut fx = Vec::new();
    for c in text.chars() {
        fx.extend(update(
            s,
            Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        ));
    }
    fx.extend(update(
        s,
        Input::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
    ));
    fx
}

fn last_request(fx: &[Effect]) -> u64 {
    fx.iter()
        .rev()
        .find_map(|e| match e {
            Effect::Net(NetCommand::Request { req, .. }) => Some(*req),
            _ => None,
        })
        .expect("a request")
}

fn msg(id: &str, ts: u64, from: &str, text: &str) -> RoomMessage {
    RoomMessage {
        id: id.into(),
        ts,
        from: from.into(),
        room: "#general".into(),
        text: text.into(),
        replayed: None,
        action: None,
    }
}

fn connected() -> State {
    let mut s = State::new("alice", "http://127.0.0.1:3000", Instant::now(), T0 + DAY);
    server(
        &mut s,
        "session",
        json!({"sid": "s", "username": "alice", "session": "t", "recovered": false, "rooms": [],
               "missed": 0, "truncated": false}),
    );
    s
}

/// Alice in a lively #general: history across two days, wide characters,
/// a long line, own pending and failed lines, bob typing, an unread room and
/// a DM with a mention.
fn busy() -> State {
    let mut s = connected();
    let fx = line(&mut s, "/join #general");
    let history = vec![
        msg("1", T0, "bob", "morning all"),
        msg(
            "2",
            T0 + 60_000,
            "carol",
            "日本語のテキスト and emoji 🎉🎉 wide",
        ),
        msg(
            "3",
            T0 + DAY,
            "bob",
            "a long message that has to wrap over more than one line of the message pane, by display width",
        ),
    ];
    let ack = JoinAck {
        room: "#general".into(),
        members: vec!["alice".into(), "bob".into(), "carol".into()],
        history,
    };
    net(
        &mut s,
        NetEvent::Ack {
            req: last_request(&fx),
            result: Ok(AckReply::Joined(ack)),
        },
    );
    net(
        &mut s,
        NetEvent::Presence(PresenceSnapshot {
            online: 4,
            users: vec!["alice".into(), "bob".into(), "carol".into(), "dave".into()],
            rooms: vec![RoomCount {
                room: "#general".into(),
                members: 3,
            }],
        }),
    );
    let fx = line(&mut s, "sent but refused");
    let err = chat_shared::ChatError::new(ErrorCode::NotMember, "join first", "room:message");
    net(
        &mut s,
        NetEvent::Ack {
            req: last_request(&fx),
            result: Err(chat_shared::AckError::Refused(err)),
        },
    );
    line(&mut s, "on its way");
    server(
        &mut s,
        "dm:message",
        json!({"id": "9", "ts": T0 + DAY, "from": "dave", "to": "alice", "text": "alice, lunch?"}),
    );
    server(
        &mut s,
        "typing",
        json!({"from": "bob", "room": "#general", "typing": true}),
    );
    s
}

#[test]
fn connecting_80x24() {
    let mut s = State::new("alice", "http://127.0.0.1:3000", Instant::now(), T0);
    insta::assert_snapshot!(screen(&mut s, 80, 24));
}

#[test]
fn busy_room_80x24() {
    let mut s = busy();
    insta::assert_snapshot!(screen(&mut s, 80, 24));
}

#[test]
fn busy_room_120x40() {
    let mut s = busy();
    insta::assert_snapshot!(screen(&mut s, 120, 40));
}

#[test]
fn toasts_stack_over_the_messages_80x24() {
    let mut s = busy();
    line(&mut s, "/frobnicate");
    server(
        &mut s,
        "chat:error",
        json!({"code": "user_not_found", "message": "nobody is not online", "context": {"event": "dm:message", "to": "nobody"}}),
    );
    insta::assert_snapshot!(screen(&mut s, 80, 24));
}

#[test]
fn reconnecting_with_a_queued_message_80x24() {
    let mut s = busy();
    let contact = s.now;
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 3,
            last_contact: Some(contact),
        },
    );
    let later = s.now + Duration::from_secs(12);
    update(
        &mut s,
        Input::Tick {
            now: later,
            wall_ms: T0 + DAY + 12_000,
        },
    );
    line(&mut s, "typed while away");
    insta::assert_snapshot!(screen(&mut s, 80, 24));
}

#[test]
fn recovered_and_refused_status_bars() {
    let mut s = busy();
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    server(
        &mut s,
        "session",
        json!({"sid": "s2", "username": "alice", "session": "t", "recovered": true, "rooms": ["#general"],
               "missed": 3, "truncated": false}),
    );
    insta::assert_snapshot!("recovered_80x24", screen(&mut s, 80, 24));

    let mut s = State::new("alice", "http://127.0.0.1:3000", Instant::now(), T0);
    net(
        &mut s,
        NetEvent::Refused {
            refusal: ConnectRefusal::new(ErrorCode::UsernameTaken, "alice is already connected"),
            retrying: true,
        },
    );
    insta::assert_snapshot!("refused_80x24", screen(&mut s, 80, 24));
}

#[test]
fn direct_conversation_and_help_120x40() {
    let mut s = busy();
    line(&mut s, "/msg dave sure, 12:30?");
    line(&mut s, "/help");
    insta::assert_snapshot!(screen(&mut s, 120, 40));
}

#[test]
fn scrolled_up_shows_older_lines_and_a_marker() {
    let mut s = busy();
    for i in 0..30 {
        server(
            &mut s,
            "room:message",
            json!({"id": (100 + i).to_string(), "ts": T0 + DAY, "from": "bob", "room": "#general", "text": format!("line {i}")}),
        );
    }
    let bottom = screen(&mut s, 80, 24);
    assert!(bottom.contains("line 29"));
    update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)),
    );
    let up = screen(&mut s, 80, 24);
    assert!(!up.contains("line 29"));
    assert!(up.contains("more"), "the title says there is more below");
}

#[test]
fn wide_characters_take_two_columns_when_wrapping() {
    let style = ratatui::style::Style::new();
    let cells: Vec<(char, _)> = "日本語日本語".chars().map(|c| (c, style)).collect();
    let lines = wrap_cells(&cells, 8, 0);
    let text: Vec<String> = lines
        .iter()
        .map(|l| l.iter().map(|(c, _)| *c).collect())
        .collect();
    assert_eq!(text, vec!["日本語日", "本語"]);
    let cells: Vec<(char, _)> = "ab cd ef".chars().map(|c| (c, style)).collect();
    let text: Vec<String> = wrap_cells(&cells, 5, 2)
        .iter()
        .map(|l| l.iter().map(|(c, _)| *c).collect())
        .collect();
    assert_eq!(text, vec!["ab cd", "  ef"]);
}

#[test]
fn nicks_are_coloured_by_hash_and_the_active_conversation_is_highlighted() {
    assert_eq!(nick_colour("bob"), nick_colour("Bob"));
    let mut s = busy();
    let t = render(&mut s, 80, 24);
    let buf = t.backend().buffer();
    // Row of "#general" in the conversations pane (row 2: title, feed, #general).
    let row = (0..24).find(|&y| {
        (0..16)
            .map(|x| buf[(x, y)].symbol())
            .collect::<String>()
            .contains("#general")
    });
    let y = row.expect("#general listed");
    assert!(
        buf[(3, y)]
            .modifier
            .contains(ratatui::style::Modifier::REVERSED)
    );
    // bob's nick in the message pane carries his colour.
    let (x, y) = (0..24)
        .flat_map(|y| (16..60).map(move |x| (x, y)))
        .find(|&(x, y)| {
            buf[(x, y)].symbol() == "b"
                && buf[(x + 1, y)].symbol() == "o"
                && buf[(x + 2, y)].symbol() == "b"
                && buf[(x + 3, y)].symbol() == ":"
        })
        .expect("bob's nick on screen");
    assert_eq!(buf[(x, y)].fg, nick_colour("bob"));
}

#[test]
fn typing_line_wording() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(typing_text(&names(&[])), None);
    assert_eq!(
        typing_text(&names(&["bob"])).as_deref(),
        Some("bob is typing…")
    );
    assert_eq!(
        typing_text(&names(&["bob", "carol"])).as_deref(),
        Some("bob and carol are typing…")
    );
    assert_eq!(
        typing_text(&names(&["a", "b", "c", "d"])).as_deref(),
        Some("4 people are typing…")
    );
}

#[test]
fn tiny_terminals_do_not_panic() {
    let mut s = busy();
    for (w, h) in [(1, 1), (20, 5), (39, 8), (40, 8), (41, 9)] {
        let _ = screen(&mut s, w, h);
    }
}
