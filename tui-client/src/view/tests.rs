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
        after_draw(state, &r);
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
        ..Default::default()
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
        topic: String::new(),
        private: false,
        role: None,
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
            rooms: vec![RoomCount::new("#general", 3)],
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
    let wrap = |text: &str, width: usize, indent: usize| -> Vec<String> {
        wrap_cells(&Cell::plain(text, style), width, indent)
            .iter()
            .map(|l| l.iter().map(|c| c.ch).collect())
            .collect()
    };
    assert_eq!(wrap("日本語日本語", 8, 0), vec!["日本語日", "本語"]);
    assert_eq!(wrap("ab cd ef", 5, 2), vec!["ab cd", "  ef"]);
    // A family emoji (five chars) and a flag (two) are two columns each and
    // never split.
    assert_eq!(wrap("👨‍👩‍👧🇫🇷👨‍👩‍👧", 4, 0), vec!["👨‍👩‍👧🇫🇷", "👨‍👩‍👧"]);
}

#[test]
fn urls_are_not_split_when_they_fit_and_are_reported_for_osc_8() {
    let style = ratatui::style::Style::new();
    let url = "https://example.org/a/b?q=1";
    let text = format!("see {url} now");
    let lines: Vec<String> = wrap_cells(&Cell::plain(&text, style), 30, 2)
        .iter()
        .map(|l| {
            l.iter()
                .map(|c| c.ch)
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    assert_eq!(
        lines,
        vec!["see".to_owned(), format!("  {url}"), "  now".into()]
    );
    assert_eq!(find_urls("(see https://x.org/a.)"), vec![(5, 20)]);
    assert!(find_urls("http:// nothing").is_empty());

    let mut s = connected();
    server(
        &mut s,
        "global:message",
        json!({"id": "1", "ts": T0 + DAY, "from": "bob", "text": format!("docs: {url}")}),
    );
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut report = None;
    terminal.draw(|f| report = Some(draw(f, &s))).unwrap();
    let links = report.unwrap().links;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].url, url);
    assert_eq!(links[0].text, url);
    let buf = terminal.backend().buffer();
    let (x, y) = (links[0].x, links[0].y);
    assert_eq!(buf[(x, y)].symbol(), "h");
    assert_eq!(buf[(x, y)].fg, s.theme.link);
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

fn key_press(s: &mut State, code: KeyCode) {
    update(s, Input::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

#[test]
fn collapsed_panels_60x20() {
    let mut s = busy();
    let screen60 = screen(&mut s, 60, 20);
    // No side panels: the messages take the width, the title says where
    // I am and what is unread elsewhere.
    assert!(!screen60.contains("Conversations"));
    assert!(screen60.contains("#general (2/3) 1! unread elsewhere"));
    insta::assert_snapshot!(screen60);
    // F2 brings them back, F2 again hides them.
    key_press(&mut s, KeyCode::F(2));
    assert!(screen(&mut s, 60, 20).contains("Conversations"));
    key_press(&mut s, KeyCode::F(2));
    assert!(!screen(&mut s, 60, 20).contains("Conversations"));
    // From 80 columns on they show by default.
    let mut s = busy();
    assert!(screen(&mut s, 80, 24).contains("Conversations"));
}

#[test]
fn new_messages_line_80x24() {
    let mut s = busy();
    line(&mut s, "/msg dave");
    for (i, text) in ["while you were away", "and more"].iter().enumerate() {
        server(
            &mut s,
            "room:message",
            json!({"id": (20 + i).to_string(), "ts": T0 + DAY, "from": "carol", "room": "#general", "text": text}),
        );
    }
    update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)),
    );
    let shown = screen(&mut s, 80, 24);
    let rows: Vec<&str> = shown.lines().collect();
    let marker = rows
        .iter()
        .position(|r| r.contains("new messages"))
        .expect("a new-messages line");
    assert!(rows[marker + 1].contains("carol: while you were away"));
    assert!(rows[marker - 1].contains("not_member)"), "{shown}");
    insta::assert_snapshot!(shown);
}

#[test]
fn search_highlights_80x24() {
    let mut s = busy();
    line(&mut s, "/search WRAP");
    let t = render(&mut s, 80, 24);
    assert!(t.backend().to_string().contains("search \"WRAP\": 1/1"));
    let buf = t.backend().buffer();
    let (x, y) = (0..24)
        .flat_map(|y| (0..76).map(move |x| (x, y)))
        .find(|&(x, y)| (0..4).map(|k| buf[(x + k, y)].symbol()).collect::<String>() == "wrap")
        .expect("the match on screen");
    assert_eq!(
        buf[(x, y)].bg,
        Color::LightRed,
        "the current match stands out"
    );
    assert_ne!(buf[(x.saturating_sub(2), y)].bg, Color::LightRed);
    insta::assert_snapshot!(t.backend().to_string());
}

#[test]
fn disconnected_presence_is_greyed_as_last_known() {
    let mut s = busy();
    let live = render(&mut s, 80, 24);
    let find = |buf: &ratatui::buffer::Buffer| {
        (0..24)
            .flat_map(|y| (60..75).map(move |x| (x, y)))
            .find(|&(x, y)| (0..5).map(|k| buf[(x + k, y)].symbol()).collect::<String>() == "carol")
            .expect("carol listed")
    };
    let buf = live.backend().buffer();
    let (x, y) = find(buf);
    assert_eq!(buf[(x, y)].fg, nick_colour("carol"));
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    let t = render(&mut s, 80, 24);
    let buf = t.backend().buffer();
    let (x, y) = find(buf);
    assert_eq!(buf[(x, y)].fg, Color::DarkGray);
    assert!(t.backend().to_string().contains("Last known"));
}

#[test]
fn mentions_actions_and_history_edges_are_drawn() {
    let mut s = busy();
    server(
        &mut s,
        "room:message",
        json!({"id": "30", "ts": T0 + DAY, "from": "bob", "room": "#general", "text": "alice: ping", }),
    );
    server(
        &mut s,
        "room:message",
        json!({"id": "31", "ts": T0 + DAY, "from": "carol", "room": "#general", "text": "waves", "action": true}),
    );
    let t = render(&mut s, 80, 24);
    let shown = t.backend().to_string();
    assert!(shown.contains("▶ bob: alice: ping"), "{shown}");
    assert!(shown.contains("* carol waves"));
    let buf = t.backend().buffer();
    let (x, y) = (0..24)
        .flat_map(|y| (0..70).map(move |x| (x, y)))
        .find(|&(x, y)| {
            buf[(x, y)].symbol() == "p"
                && buf[(x + 1, y)].symbol() == "i"
                && buf[(x + 2, y)].symbol() == "n"
        })
        .expect("the mention on screen");
    assert_eq!(buf[(x, y)].fg, Color::LightYellow);

    // Scrolled to the top: "loading…" while a page is on its way, then
    // "beginning of history" once the server has no more.
    // (Everything fits the screen: Home already is the top, and asks.)
    let fx = update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::Home, KeyModifiers::NONE)),
    );
    assert!(screen(&mut s, 80, 24).contains("loading older messages…"));
    net(
        &mut s,
        NetEvent::Ack {
            req: last_request(&fx),
            result: Ok(AckReply::History(chat_shared::HistoryAck {
                messages: vec![],
                more: false,
            })),
        },
    );
    assert!(screen(&mut s, 80, 24).contains("beginning of history"));
}

#[test]
fn input_line_measures_graphemes_and_shows_questions() {
    let mut s = connected();
    update(&mut s, Input::Paste("hi 👨‍👩‍👧 x".into()));
    let t = render(&mut s, 40, 10);
    // "> hi " is 5 columns, the family 2, " x" 2: the cursor is at 9.
    assert_eq!(t.backend().cursor_position(), Position::new(9, 8));
    line(&mut s, "");
    s.page = 1;
    update(&mut s, Input::Paste("a\nb\nc".into()));
    key_press(&mut s, KeyCode::Enter);
    assert!(screen(&mut s, 40, 10).contains("? send these 3 lines? (y/n)"));
}

#[test]
fn a_line_that_changes_state_is_measured_again() {
    // At 60 columns without panels the pane is 60 wide; "(sending…)" makes
    // this line wrap, its sent form fits on one row.
    let mut s = connected();
    let fx = line(&mut s, "/join #general");
    net(
        &mut s,
        NetEvent::Ack {
            req: last_request(&fx),
            result: Ok(AckReply::Joined(JoinAck {
                room: "#general".into(),
                members: vec!["alice".into()],
                history: vec![],
                topic: String::new(),
                private: false,
                role: None,
            })),
        },
    );
    for i in 0..30 {
        server(
            &mut s,
            "room:message",
            json!({"id": format!("{}", 100 + i), "ts": T0 + DAY, "from": "bob", "room": "#general", "text": format!("filler {i}")}),
        );
    }
    let text = "x".repeat(40);
    let fx = line(&mut s, &text);
    let before = screen(&mut s, 60, 20);
    let rows: Vec<&str> = before.lines().collect();
    assert!(
        rows[16].contains("(sending…)") || rows[15].contains(&text),
        "{before}"
    );
    net(
        &mut s,
        NetEvent::Ack {
            req: last_request(&fx),
            result: Ok(AckReply::Sent(chat_shared::SentAck {
                id: "200".into(),
                ts: T0 + DAY,
                queued: None,
            })),
        },
    );
    let after = screen(&mut s, 60, 20);
    let rows: Vec<&str> = after.lines().collect();
    // The message pane's last row (row 16; typing, input and status below)
    // is the line itself, not a blank left by its old height.
    assert!(rows[16].contains(&format!("alice: {text}")), "{after}");
    assert!(!after.contains("sending"));
    // And the scroll range counts it at its new height: one row.
    let all = conversation_lines(&s, s.active_conv(), 60).len();
    assert_eq!(s.max_scroll, all - 16);
}

#[test]
fn the_cap_waits_while_scrolled_up() {
    let mut s = connected();
    s.max_lines = 100;
    for i in 1..=150u32 {
        server(
            &mut s,
            "global:message",
            json!({"id": i.to_string(), "ts": T0, "from": "bob", "text": format!("m{i}")}),
        );
    }
    assert_eq!(s.active_conv().entries.len(), 100);
    let id = s.active.clone();
    s.convs.iter_mut().find(|c| c.id == id).unwrap().scroll = 30;
    for i in 151..=200u32 {
        server(
            &mut s,
            "global:message",
            json!({"id": i.to_string(), "ts": T0, "from": "bob", "text": format!("m{i}")}),
        );
    }
    // Nothing dropped under the reader (up to twice the cap)…
    assert_eq!(s.active_conv().entries.len(), 150);
    assert_eq!(s.active_conv().entries[0].text, "m51");
    // …and back at the bottom, the cap applies again.
    s.convs.iter_mut().find(|c| c.id == id).unwrap().scroll = 0;
    server(
        &mut s,
        "global:message",
        json!({"id": "201", "ts": T0, "from": "bob", "text": "m201"}),
    );
    assert_eq!(s.active_conv().entries.len(), 100);
}

/// A password typed on the input line shows as dots, behind a prompt that
/// says what it is for.
#[tokio::test]
async fn a_password_on_the_input_line_is_masked() {
    let mut s = State::new("alice", "http://127.0.0.1:3000", Instant::now(), T0 + DAY);
    net(
        &mut s,
        NetEvent::Refused {
            refusal: chat_shared::ConnectRefusal::new(
                chat_shared::ErrorCode::AuthRequired,
                "alice has an account: its password is needed",
            ),
            retrying: false,
        },
    );
    for c in "hunter22".chars() {
        update(
            &mut s,
            Input::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        );
    }
    let text = screen(&mut s, 80, 24);
    assert!(text.contains("password for alice> ••••••••"), "{text}");
    assert!(!text.contains("hunter22"), "{text}");
}

/// (v3) Alice owns the private #ops (topic set, carol an op, a blocked
/// spammer talking), was kicked from #general, and has just been invited
/// to #leadership.
fn moderated() -> State {
    let mut s = State::new("alice", "http://127.0.0.1:3000", Instant::now(), T0);
    server(
        &mut s,
        "session",
        json!({"sid": "s", "username": "alice", "session": "t", "recovered": false, "rooms": [],
               "missed": 0, "truncated": false, "role": "user", "blocked": ["spammer"]}),
    );
    let joined = |s: &mut State, room: &str, topic: &str, private: bool| {
        let fx = line(s, &format!("/join {room}"));
        let ack = JoinAck {
            room: room.into(),
            members: vec![
                "alice".into(),
                "bob".into(),
                "carol".into(),
                "spammer".into(),
            ],
            history: vec![],
            topic: topic.into(),
            private,
            role: Some(chat_shared::RoomRole::Owner),
        };
        net(
            s,
            NetEvent::Ack {
                req: last_request(&fx),
                result: Ok(AckReply::Joined(ack)),
            },
        )
    };
    joined(&mut s, "#general", "", false);
    server(
        &mut s,
        "room:event",
        json!({"id": "5", "ts": T0, "room": "#general", "kind": "kick", "by": "bob",
               "user": "alice", "reason": "off topic", "until": null}),
    );
    let fx = joined(&mut s, "#ops", "deploys at 14:00", true);
    let info = chat_shared::RoomInfoAck {
        room: "#ops".into(),
        topic: "deploys at 14:00".into(),
        private: true,
        owners: vec!["alice".into()],
        ops: vec!["carol".into()],
        members: vec![],
        invited: None,
        bans: None,
    };
    net(
        &mut s,
        NetEvent::Ack {
            req: last_request(&fx),
            result: Ok(AckReply::RoomInfo(info)),
        },
    );
    for (id, from, text) in [
        ("10", "bob", "is the deploy still on?"),
        ("11", "spammer", "cheap watches"),
        ("12", "spammer", "cheap watches!!"),
        ("13", "carol", "yes, 14:00"),
    ] {
        server(
            &mut s,
            "room:message",
            json!({"id": id, "ts": T0 + 60_000, "from": from, "room": "#ops", "text": text}),
        );
    }
    server(
        &mut s,
        "room:event",
        json!({"id": "14", "ts": T0 + 120_000, "room": "#ops", "kind": "ban", "by": "carol",
               "user": "spammer", "reason": "spam", "until": T0 + 3_600_000}),
    );
    server(
        &mut s,
        "room:invited",
        json!({"room": "#leadership", "by": "carol"}),
    );
    s
}

#[test]
fn a_moderated_room_100x24() {
    let mut s = moderated();
    let text = screen(&mut s, 100, 24);
    // The header: the room, its privacy and its topic.
    assert!(
        text.contains(" #ops [private] 4 members — deploys at 14:00 "),
        "{text}"
    );
    // Owners and ops marked, first.
    let members: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split('│').nth(2))
        .map(|l| l.trim_end_matches('"').trim())
        .filter(|l| l.starts_with('●'))
        .collect();
    assert!(
        members.ends_with(&["● ~alice", "● @carol", "● bob"]),
        "{members:?}"
    );
    // The room I was kicked from stays, marked; the spammer's lines are
    // one dim line; the ban is a line of its own; the invite is news.
    assert!(text.contains("#ge… (kicked)"), "{text}");
    assert!(text.contains("2 lines from blocked users hidden · /showblocked"));
    assert!(text.contains("spammer was banned by carol until 09:26: spam"));
    assert!(text.contains("• carol invited you to #leadership: /join #leadership"));
    insta::assert_snapshot!(text);
}

#[test]
fn a_room_i_was_put_out_of_says_so_in_its_header() {
    let mut s = moderated();
    line(&mut s, "/join #general");
    // Not answered yet: still out. Alt-2 goes to #general.
    update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)),
    );
    let text = screen(&mut s, 100, 24);
    assert!(
        text.contains(" #general (you were kicked by bob: off topic) "),
        "{text}"
    );
    assert!(text.contains("(kicked: /join)"), "{text}");
    assert!(text.contains("you were kicked by bob: off topic"));
}
