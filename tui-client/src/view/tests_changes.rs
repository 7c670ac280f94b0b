//! (v3) How changed messages are drawn, on ratatui's `TestBackend`: the
//! quote above a reply, "(edited)", "[deleted]" (and never the old text),
//! reactions with their counts and mine highlighted, the selected line,
//! and the pane scrolling to a selection.

use chat_shared::{JoinAck, Reaction, RoomMessage, ServerEvent};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use serde_json::json;
use tokio::time::Instant;

use super::{after_draw, conversation_lines, draw};
use crate::msg::{AckReply, NetCommand, NetEvent};
use crate::state::{ConvId, Effect, Input, State, update};

/// 2025-11-22 08:26:40 UTC.
const T0: u64 = 1_763_800_000_000;

fn server(s: &mut State, name: &str, v: serde_json::Value) {
    let ev = ServerEvent::parse(name, v).expect("contract payload");
    update(s, Input::Net(NetEvent::Server(ev)));
}

fn keys(s: &mut State, text: &str) -> Vec<Effect> {
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

fn msg(id: &str, from: &str, text: &str) -> RoomMessage {
    RoomMessage {
        id: id.into(),
        ts: T0,
        from: from.into(),
        room: "#general".into(),
        text: text.into(),
        ..Default::default()
    }
}

/// Alice in #general, whose history has every kind of changed line.
fn changed_room() -> State {
    let mut s = State::new("alice", "http://127.0.0.1:3000", Instant::now(), T0);
    server(
        &mut s,
        "session",
        json!({"sid": "s", "username": "alice", "session": "t", "recovered": false, "rooms": [],
               "missed": 0, "truncated": false}),
    );
    let fx = keys(&mut s, "/join #general");
    let req = fx
        .iter()
        .find_map(|e| match e {
            Effect::Net(NetCommand::Request { req, .. }) => Some(*req),
            _ => None,
        })
        .expect("a join");
    let history = vec![
        msg(
            "1",
            "bob",
            "where is the deploy doc for the new cluster, anyone?",
        ),
        RoomMessage {
            edited: Some(T0 + 1_000),
            ..msg("2", "carol", "it is in the wiki under ops")
        },
        RoomMessage {
            deleted: Some(true),
            ..msg("3", "alice", "")
        },
        RoomMessage {
            reply_to: Some("1".into()),
            reactions: vec![
                Reaction {
                    emoji: "👍".into(),
                    count: 2,
                    users: vec!["bob".into(), "alice".into()],
                },
                Reaction {
                    emoji: "🎉".into(),
                    count: 1,
                    users: vec!["bob".into()],
                },
            ],
            ..msg("4", "dave", "thanks, found it")
        },
    ];
    let ack = JoinAck {
        room: "#general".into(),
        members: vec!["alice".into(), "bob".into(), "carol".into(), "dave".into()],
        history,
        topic: String::new(),
        private: false,
        role: None,
    };
    update(
        &mut s,
        Input::Net(NetEvent::Ack {
            req,
            result: Ok(AckReply::Joined(ack)),
        }),
    );
    assert_eq!(s.active, ConvId::Room("#general".into()));
    s
}

fn render(s: &mut State, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    let mut report = None;
    t.draw(|f| report = Some(draw(f, s))).expect("draw");
    if let Some(r) = report {
        after_draw(s, &r);
    }
    t
}

/// A screen row as text, with the column each byte of it starts at (a
/// wide symbol's second column holds nothing of its own).
fn row(buf: &Buffer, y: u16) -> (String, Vec<(usize, u16)>) {
    let mut text = String::new();
    let mut starts = Vec::new();
    let mut x = 0;
    while x < buf.area.width {
        let sym = buf[(x, y)].symbol();
        starts.push((text.len(), x));
        text.push_str(sym);
        x += (unicode_width::UnicodeWidthStr::width(sym) as u16).max(1);
    }
    (text, starts)
}

fn row_text(buf: &Buffer, y: u16) -> String {
    row(buf, y).0
}

/// Where `needle` starts on screen: its first column and its row.
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    (0..buf.area.height).find_map(|y| {
        let (text, starts) = row(buf, y);
        let at = text.find(needle)?;
        starts
            .iter()
            .rev()
            .find(|(b, _)| *b <= at)
            .map(|(_, x)| (*x, y))
    })
}

#[test]
fn changed_lines_read_as_they_stand_100x20() {
    let mut s = changed_room();
    let t = render(&mut s, 100, 20);
    let screen = t.backend().to_string();
    assert!(
        screen.contains("carol: it is in the wiki under ops (edited)"),
        "{screen}"
    );
    assert!(screen.contains("alice: [deleted]"), "{screen}");
    // The reply: the answered line's author and start above it, dim.
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "↳ bob: where is the deploy doc").expect("the quote row");
    assert_eq!(buf[(x, y)].fg, Color::DarkGray);
    assert!(row_text(buf, y + 1).contains("dave: thanks, found it"));
    // Reactions under it, with counts; mine (👍) highlighted, bob's not.
    let (tx, ty) = find(buf, "👍 2").expect("👍 2 under the reply");
    assert_eq!(ty, y + 2);
    assert_eq!(buf[(tx, ty)].bg, Color::Yellow);
    assert!(buf[(tx, ty)].modifier.contains(Modifier::BOLD));
    let (px, py) = find(buf, "🎉 1").expect("🎉 1 beside it");
    assert_eq!(py, ty);
    assert_ne!(buf[(px, py)].bg, Color::Yellow);
    // "(edited)" and "[deleted]" are dim, apart from the text.
    let (ex, ey) = find(buf, "(edited)").expect("(edited)");
    assert_eq!(buf[(ex, ey)].fg, Color::DarkGray);
    let (dx, dy) = find(buf, "[deleted]").expect("[deleted]");
    assert!(buf[(dx, dy)].modifier.contains(Modifier::ITALIC));
    insta::assert_snapshot!(screen);
}

#[test]
fn an_update_redraws_the_line_and_the_old_text_is_gone() {
    let mut s = changed_room();
    let before = render(&mut s, 100, 20).backend().to_string();
    assert!(before.contains("where is the deploy doc"));
    server(
        &mut s,
        "message:update",
        json!({"id": "9", "ts": T0, "target": "1", "kind": "delete", "by": "bob", "room": "#general"}),
    );
    server(
        &mut s,
        "message:update",
        json!({"id": "10", "ts": T0, "target": "4", "kind": "react", "by": "alice",
               "room": "#general", "emoji": "👍", "on": false}),
    );
    let t = render(&mut s, 100, 20);
    let after = t.backend().to_string();
    assert!(!after.contains("deploy doc"), "{after}");
    assert!(after.contains("bob: [deleted]"), "{after}");
    // The quote above the reply says so too.
    assert!(after.contains("↳ bob: [deleted]"), "{after}");
    // One 👍 left, not mine any more.
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "👍 1").expect("👍 1");
    assert_ne!(buf[(x, y)].bg, Color::Yellow);
    let all: Vec<String> = conversation_lines(&s, s.active_conv(), 100)
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert!(!all.iter().any(|l| l.contains("deploy doc")));
}

#[test]
fn a_reply_to_a_line_not_loaded_says_so() {
    let mut s = changed_room();
    server(
        &mut s,
        "room:message",
        json!({"id": "5", "ts": T0, "from": "bob", "room": "#general",
               "text": "as I said", "replyTo": "0"}),
    );
    let screen = render(&mut s, 100, 20).backend().to_string();
    assert!(
        screen.contains("↳ an earlier message (not loaded here)"),
        "{screen}"
    );
}

#[test]
fn the_selected_line_is_marked_and_scrolled_to() {
    let mut s = changed_room();
    for i in 0..40 {
        server(
            &mut s,
            "room:message",
            json!({"id": (10 + i).to_string(), "ts": T0, "from": "bob", "room": "#general",
                   "text": format!("filler {i}")}),
        );
    }
    let screen = render(&mut s, 100, 20).backend().to_string();
    assert!(!screen.contains("thanks, found it"));
    // Alt-G: the newest reply is dave's; it answers bob's question (1).
    update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::Char('g'), KeyModifiers::ALT)),
    );
    let t = render(&mut s, 100, 20);
    let buf = t.backend().buffer();
    let (x, y) = find(buf, "bob: where is the deploy").expect("scrolled to the answered line");
    assert!(
        buf[(x, y)].modifier.contains(Modifier::REVERSED),
        "the nick"
    );
    assert!(
        t.backend()
            .to_string()
            .contains("selected bob: where is the deploy"),
        "the hint above the input"
    );
    // Scrolled once: the pane stays where it was put after.
    assert!(!s.selection.reveal);
}
