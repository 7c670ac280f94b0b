//! Unit tests of the rules for daily use: the rate-limited outbox, the
//! notifications and their throttle, the "new messages" marker, questions
//! before quitting or sending a long paste, a taken name, history paging,
//! search, `/me`, `/close`, `/clear` and the editing keys. Time-dependent
//! rules run on tokio's paused clock.

use std::time::Duration;

use chat_shared::{
    AckError, ChatError, ConnectRefusal, ErrorCode, HistoryAck, HistoryMessage, HistoryTarget,
    JoinAck, RoomMessage, SentAck,
};
use crossterm::event::KeyCode;
use serde_json::json;
use tokio::time::Instant;

use super::testing::{T0, ctrl, enter_line, key, net, notifications, requests, server, type_text};
use super::*;

fn message_requests(fx: &[Effect]) -> Vec<(u64, String)> {
    requests(fx)
        .into_iter()
        .filter_map(|(req, ev)| match ev {
            ClientEvent::RoomMessage(m) => Some((req, m.text)),
            ClientEvent::DmMessage(m) => Some((req, m.text)),
            ClientEvent::GlobalMessage(m) => Some((req, m.text)),
            _ => None,
        })
        .collect()
}

fn general() -> ConvId {
    ConvId::Room("#general".into())
}

fn room_msg(id: &str, from: &str, text: &str) -> serde_json::Value {
    json!({"id": id, "ts": T0, "from": from, "room": "#general", "text": text})
}

/// Connected as alice, in #general (active), on the clock `now`.
fn in_general_at(now: Instant) -> State {
    let mut s = State::new("alice", "http://test", now, T0);
    server(
        &mut s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "t", "recovered": false,
               "rooms": [], "missed": 0, "truncated": false}),
    );
    let fx = enter_line(&mut s, "/join #general");
    let (req, _) = requests(&fx).pop().expect("join");
    let ack = JoinAck {
        room: "#general".into(),
        members: vec!["alice".into(), "bob".into()],
        history: vec![],
        topic: String::new(),
        private: false,
        role: None,
    };
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Joined(ack)),
        },
    );
    assert_eq!(s.active, general());
    s
}

fn in_general() -> State {
    in_general_at(Instant::now())
}

fn tick_now(s: &mut State) -> Vec<Effect> {
    let wall = s.wall_ms;
    update(
        s,
        Input::Tick {
            now: Instant::now(),
            wall_ms: wall,
        },
    )
}

fn rate_limited(retry_ms: u64) -> AckError {
    AckError::Refused(
        ChatError::new(ErrorCode::RateLimited, "slow down", "room:message")
            .with("retryAfterMs", retry_ms),
    )
}

fn kinds(s: &State) -> Vec<(String, EntryKind)> {
    s.conv(&general())
        .unwrap()
        .entries
        .iter()
        .map(|e| (e.text.clone(), e.kind.clone()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_message_is_retried_after_retry_after_in_order() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "one");
    let (req1, text) = message_requests(&fx).pop().expect("one goes out");
    assert_eq!(text, "one");
    // Two more lines wait behind it.
    assert!(message_requests(&enter_line(&mut s, "two")).is_empty());
    assert!(message_requests(&enter_line(&mut s, "three")).is_empty());

    let fx = net(
        &mut s,
        NetEvent::Ack {
            req: req1,
            result: Err(rate_limited(1500)),
        },
    );
    // Refused for now: nothing goes out, nothing is failed, no toast.
    assert!(message_requests(&fx).is_empty());
    let err = ChatError::new(ErrorCode::RateLimited, "slow down", "room:message")
        .with("retryAfterMs", 1500);
    server(&mut s, "chat:error", serde_json::to_value(&err).unwrap());
    assert!(s.toasts.is_empty(), "{:?}", s.toasts);
    assert!(
        kinds(&s)
            .iter()
            .all(|(_, k)| *k == EntryKind::Own(Delivery::Queued))
    );

    tokio::time::advance(Duration::from_millis(1400)).await;
    assert!(message_requests(&tick_now(&mut s)).is_empty(), "too early");

    tokio::time::advance(Duration::from_millis(100)).await;
    let fx = tick_now(&mut s);
    let sent = message_requests(&fx);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, "one", "the refused line goes first");
    let fx = net(
        &mut s,
        NetEvent::Ack {
            req: sent[0].0,
            result: Ok(AckReply::Sent(SentAck {
                id: "1".into(),
                ts: T0,
                queued: None,
            })),
        },
    );
    let next = message_requests(&fx);
    assert_eq!(next[0].1, "two");
    let fx = net(
        &mut s,
        NetEvent::Ack {
            req: next[0].0,
            result: Ok(AckReply::Sent(SentAck {
                id: "2".into(),
                ts: T0,
                queued: None,
            })),
        },
    );
    assert_eq!(message_requests(&fx)[0].1, "three");
    let texts: Vec<String> = kinds(&s).into_iter().map(|(t, _)| t).collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

#[tokio::test(start_paused = true)]
async fn mentions_and_dms_notify_at_most_once_per_interval() {
    let mut s = in_general();
    s.switch_to(ConvId::Feed, &mut Vec::new());
    // A plain message: no notification.
    let fx = server(&mut s, "room:message", room_msg("1", "bob", "hello all"));
    assert!(notifications(&fx).is_empty());
    // A mention rings and raises a desktop notification.
    let fx = server(&mut s, "room:message", room_msg("2", "bob", "alice: look"));
    let n = notifications(&fx);
    assert_eq!(n.len(), 1);
    assert!(n[0].bell && n[0].desktop);
    assert_eq!(n[0].title, "#general");
    assert_eq!(n[0].body, "bob: alice: look");
    // A DM a second later: throttled.
    tokio::time::advance(Duration::from_secs(1)).await;
    tick_now(&mut s);
    let dm = json!({"id": "3", "ts": T0, "from": "carol", "to": "alice", "text": "psst"});
    assert!(notifications(&server(&mut s, "dm:message", dm)).is_empty());
    // After the interval, the next one rings again.
    tokio::time::advance(Duration::from_secs(1)).await;
    tick_now(&mut s);
    let dm = json!({"id": "4", "ts": T0, "from": "carol", "to": "alice", "text": "still there?"});
    let n = notifications(&server(&mut s, "dm:message", dm));
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].title, "@carol");
    // DMs are marked like mentions in the list.
    let c = s.conv(&ConvId::Dm("carol".into())).unwrap();
    assert!(c.mentioned && c.unread == 2);
    // The mentioning line is flagged for highlighting; the other is not.
    let g = s.conv(&general()).unwrap();
    let flags: Vec<bool> = g.entries.iter().map(|e| e.mention).collect();
    assert_eq!(flags, [false, true]);
}

#[test]
fn notifications_can_be_switched_off_and_history_never_notifies() {
    let mut s = in_general();
    s.switch_to(ConvId::Feed, &mut Vec::new());
    s.notify.bell = false;
    let fx = server(&mut s, "room:message", room_msg("1", "bob", "alice?"));
    let n = notifications(&fx);
    assert!(!n[0].bell && n[0].desktop);
    s.notify.desktop = false;
    s.last_notified = None;
    assert!(
        notifications(&server(
            &mut s,
            "room:message",
            room_msg("2", "bob", "alice!")
        ))
        .is_empty()
    );

    let mut s = in_general();
    s.switch_to(ConvId::Feed, &mut Vec::new());
    let fx = enter_line(&mut s, "/join #other");
    let (req, _) = requests(&fx).pop().unwrap();
    let ack = JoinAck {
        room: "#other".into(),
        members: vec!["bob".into()],
        history: vec![RoomMessage {
            id: "5".into(),
            ts: T0,
            from: "bob".into(),
            room: "#other".into(),
            text: "alice said hi yesterday".into(),
            replayed: None,
            action: None,
            ..Default::default()
        }],
        topic: String::new(),
        private: false,
        role: None,
    };
    let fx = net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Joined(ack)),
        },
    );
    assert!(notifications(&fx).is_empty());
}

#[test]
fn the_new_messages_marker_points_at_the_first_unread_line_until_i_leave() {
    let mut s = in_general();
    server(&mut s, "room:message", room_msg("1", "bob", "read already"));
    assert_eq!(s.conv(&general()).unwrap().unread_marker, None);
    s.switch_to(ConvId::Feed, &mut Vec::new());
    server(&mut s, "room:message", room_msg("2", "bob", "first new"));
    server(&mut s, "room:message", room_msg("3", "bob", "second new"));
    let c = s.conv(&general()).unwrap();
    let first_new = c
        .entries
        .iter()
        .find(|e| e.text == "first new")
        .unwrap()
        .clone();
    assert_eq!(c.unread_marker, Some(first_new.seq));
    // Reading it keeps the marker in view; leaving it again clears it.
    s.switch_to(general(), &mut Vec::new());
    assert_eq!(
        s.conv(&general()).unwrap().unread_marker,
        Some(first_new.seq)
    );
    s.switch_to(ConvId::Feed, &mut Vec::new());
    assert_eq!(s.conv(&general()).unwrap().unread_marker, None);
}

#[test]
fn ctrl_c_with_unsent_messages_asks_first() {
    let mut s = in_general();
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    enter_line(&mut s, "not yet sent");
    let fx = update(&mut s, ctrl('c'));
    assert!(!s.quit && !fx.contains(&Effect::Quit));
    assert_eq!(
        s.confirm.as_ref().map(Confirm::question).as_deref(),
        Some("1 message not sent yet: quit anyway? (y/n)")
    );
    // n: stays; the line is still queued.
    update(&mut s, key(KeyCode::Char('n')));
    assert!(!s.quit && s.confirm.is_none());
    assert_eq!(s.outbox_len(), 1);
    // Ctrl-C then y quits.
    update(&mut s, ctrl('c'));
    let fx = update(&mut s, key(KeyCode::Char('y')));
    assert!(s.quit && fx.contains(&Effect::Quit));
    // With nothing unsent, Ctrl-C quits at once.
    let mut s = in_general();
    update(&mut s, ctrl('c'));
    assert!(s.quit);
}

#[test]
fn a_multi_line_paste_is_one_message_and_a_long_one_asks_first() {
    let mut s = in_general();
    s.page = 5;
    update(
        &mut s,
        Input::Paste("fn main() {\r\n    run();\r\n}".into()),
    );
    let fx = update(&mut s, key(KeyCode::Enter));
    let sent = message_requests(&fx);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, "fn main() {\n    run();\n}");

    let long: String = (1..=8).map(|i| format!("line {i}\n")).collect();
    update(&mut s, Input::Paste(long));
    let fx = update(&mut s, key(KeyCode::Enter));
    assert!(message_requests(&fx).is_empty());
    assert_eq!(
        s.confirm.as_ref().map(Confirm::question).as_deref(),
        Some("send these 8 lines? (y/n)")
    );
    // No: back on the input line, unchanged.
    update(&mut s, key(KeyCode::Char('n')));
    assert!(s.editor.input.starts_with("line 1\nline 2"));
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, key(KeyCode::Char('y')));
    let c = s.conv(&general()).unwrap();
    assert!(c.entries.back().unwrap().text.starts_with("line 1\nline 2"));
}

#[test]
fn a_taken_username_lets_me_choose_another_without_quitting() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    net(
        &mut s,
        NetEvent::Refused {
            refusal: ConnectRefusal::new(ErrorCode::UsernameTaken, "alice is in use"),
            retrying: true,
        },
    );
    assert!(s.name_taken());
    assert!(s.toasts[0].text.contains("type another name"));
    // Not a valid name: told so, nothing sent.
    let fx = enter_line(&mut s, "al ice!");
    assert!(fx.is_empty());
    assert!(
        s.toasts
            .iter()
            .any(|t| t.text.starts_with("invalid_username"))
    );
    let fx = enter_line(&mut s, "alice2");
    assert_eq!(fx, [Effect::Net(NetCommand::Rename("alice2".into()))]);
    assert_eq!(s.me, "alice2");
    assert!(s.status_text().starts_with("connecting to"));
    // /nick does the same.
    net(
        &mut s,
        NetEvent::Refused {
            refusal: ConnectRefusal::new(ErrorCode::UsernameTaken, "in use"),
            retrying: true,
        },
    );
    let fx = enter_line(&mut s, "/nick alice3");
    assert_eq!(fx, [Effect::Net(NetCommand::Rename("alice3".into()))]);
}

fn history_page(s: &mut State, req: u64, ids: &[u32], more: bool) -> Vec<Effect> {
    let messages = ids
        .iter()
        .map(|i| {
            HistoryMessage::Room(RoomMessage {
                id: i.to_string(),
                ts: T0,
                from: "bob".into(),
                room: "#general".into(),
                text: format!("old {i}"),
                replayed: None,
                action: None,
                ..Default::default()
            })
        })
        .collect();
    net(
        s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::History(HistoryAck { messages, more })),
        },
    )
}

#[test]
fn scrolling_above_the_oldest_line_pages_history_until_its_beginning() {
    let mut s = in_general();
    server(&mut s, "room:message", room_msg("10", "bob", "newest"));
    s.max_scroll = 0;
    let fx = update(&mut s, key(KeyCode::PageUp));
    let (req, ev) = requests(&fx).pop().expect("a history request");
    let ClientEvent::History(h) = ev else {
        panic!("not history: {ev:?}")
    };
    assert_eq!(h.target, HistoryTarget::Room("#general".into()));
    assert_eq!(h.before.as_deref(), Some("10"));
    assert_eq!(s.active_conv().backlog, Backlog::Loading);
    // One request at a time.
    assert!(requests(&update(&mut s, key(KeyCode::PageUp))).is_empty());
    history_page(&mut s, req, &[8, 9], true);
    let texts: Vec<&str> = s
        .active_conv()
        .entries
        .iter()
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(texts, ["old 8", "old 9", "newest"]);
    assert_eq!(s.active_conv().backlog, Backlog::Unknown);
    let fx = update(&mut s, Input::Wheel(1));
    let (req, ev) = requests(&fx).pop().expect("the next page");
    let ClientEvent::History(h) = ev else {
        panic!()
    };
    assert_eq!(h.before.as_deref(), Some("8"));
    // A duplicate in a page is dropped; `more: false` ends the paging.
    history_page(&mut s, req, &[7, 8], false);
    assert_eq!(s.active_conv().entries.len(), 4);
    assert_eq!(s.active_conv().backlog, Backlog::Complete);
    assert!(requests(&update(&mut s, key(KeyCode::PageUp))).is_empty());
    // History is not news.
    assert_eq!(s.active_conv().unread, 0);
}

#[test]
fn conversations_are_capped_and_duplicates_found_without_a_scan() {
    let mut s = in_general();
    s.max_lines = 100;
    for i in 1..=250u32 {
        server(
            &mut s,
            "room:message",
            room_msg(&i.to_string(), "bob", &format!("m{i}")),
        );
    }
    let c = s.conv(&general()).unwrap();
    assert_eq!(c.entries.len(), 100);
    assert_eq!(c.entries[0].text, "m151");
    assert_eq!(c.backlog, Backlog::Unknown);
    // A replay of a held message is dropped; of a dropped one, kept (at the top).
    server(&mut s, "room:message", room_msg("250", "bob", "m250"));
    assert_eq!(s.conv(&general()).unwrap().entries.len(), 100);
}

#[test]
fn search_finds_highlights_and_steps_through_matches() {
    let mut s = in_general();
    for (i, t) in ["the Deploy is done", "lunch?", "deploy again", "ok"]
        .iter()
        .enumerate()
    {
        server(
            &mut s,
            "room:message",
            room_msg(&(i + 1).to_string(), "bob", t),
        );
    }
    enter_line(&mut s, "/search deploy");
    let search = s.search.clone().unwrap();
    assert_eq!(search.hits.len(), 2);
    let seq_of = |s: &State, text: &str| {
        s.active_conv()
            .entries
            .iter()
            .find(|e| e.text == text)
            .unwrap()
            .seq
    };
    // The newest match first, then older with Ctrl-R, newer with Ctrl-S.
    assert_eq!(search.current_seq(), Some(seq_of(&s, "deploy again")));
    update(&mut s, ctrl('r'));
    assert_eq!(
        s.search.as_ref().unwrap().current_seq(),
        Some(seq_of(&s, "the Deploy is done"))
    );
    update(&mut s, ctrl('s'));
    assert_eq!(
        s.search.as_ref().unwrap().current_seq(),
        Some(seq_of(&s, "deploy again"))
    );
    assert_eq!(
        s.search_text().unwrap(),
        "search \"deploy\": 2/2 · Ctrl-R older, Ctrl-S newer, Esc ends"
    );
    update(&mut s, key(KeyCode::Esc));
    assert!(s.search.is_none());
    // Ctrl-R on typed text searches for it.
    type_text(&mut s, "LUNCH");
    update(&mut s, ctrl('r'));
    assert_eq!(s.search.as_ref().unwrap().hits.len(), 1);
    assert!(s.editor.input.is_empty());
    // Ctrl-R on an empty line starts typing a search.
    update(&mut s, key(KeyCode::Esc));
    update(&mut s, ctrl('r'));
    assert_eq!(s.editor.input, "/search ");
}

#[test]
fn me_sends_an_action_and_actions_are_kept_as_such() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "/me waves");
    let (_, ev) = requests(&fx).pop().unwrap();
    let ClientEvent::RoomMessage(m) = ev else {
        panic!("{ev:?}")
    };
    assert!(m.action);
    assert_eq!(m.text, "waves");
    assert!(s.active_conv().entries.back().unwrap().action);
    server(
        &mut s,
        "room:message",
        json!({"id": "5", "ts": T0, "from": "bob", "room": "#general", "text": "shrugs", "action": true}),
    );
    let e = s
        .active_conv()
        .entries
        .iter()
        .find(|e| e.from == "bob")
        .unwrap();
    assert!(e.action);
}

#[test]
fn close_and_leave_close_a_dm_clear_empties_the_screen() {
    let mut s = in_general();
    enter_line(&mut s, "/msg bob");
    assert_eq!(s.active, ConvId::Dm("bob".into()));
    enter_line(&mut s, "/close");
    assert!(s.conv(&ConvId::Dm("bob".into())).is_none());
    assert_eq!(s.active, general());
    enter_line(&mut s, "/msg bob");
    let fx = enter_line(&mut s, "/leave");
    assert!(requests(&fx).is_empty(), "a DM is closed locally");
    assert!(s.conv(&ConvId::Dm("bob".into())).is_none());
    enter_line(&mut s, "/close");
    assert!(s.toasts.iter().any(|t| t.text.contains("/leave #general")));

    server(&mut s, "room:message", room_msg("1", "bob", "hi"));
    enter_line(&mut s, "/clear");
    assert!(s.active_conv().entries.is_empty());
    // A cleared line coming back (a replay) shows again: it is not a duplicate of nothing.
    server(&mut s, "room:message", room_msg("2", "bob", "after"));
    assert_eq!(s.active_conv().entries.len(), 1);
}

#[test]
fn ctrl_w_home_end_and_grapheme_backspace() {
    let mut s = in_general();
    type_text(&mut s, "hello big  world");
    update(&mut s, ctrl('w'));
    assert_eq!(s.editor.input, "hello big  ");
    update(&mut s, ctrl('w'));
    assert_eq!(s.editor.input, "hello ");
    update(&mut s, ctrl('u'));
    // A flag and a family are one grapheme each: one Backspace erases one.
    update(&mut s, Input::Paste("ok 🇫🇷👨‍👩‍👧".into()));
    update(&mut s, key(KeyCode::Backspace));
    assert_eq!(s.editor.input, "ok 🇫🇷");
    update(&mut s, key(KeyCode::Left));
    assert_eq!(s.editor.cursor, 3);
    update(&mut s, key(KeyCode::Backspace));
    assert_eq!(s.editor.input, "ok🇫🇷");
    update(&mut s, ctrl('u'));
    // Empty line: Home goes to the oldest line, End to the newest.
    for i in 1..=30u32 {
        server(&mut s, "room:message", room_msg(&i.to_string(), "bob", "x"));
    }
    s.max_scroll = 25;
    update(&mut s, key(KeyCode::Home));
    // As far up as there is: the next draw clamps it to the oldest line.
    assert!(s.active_conv().scroll >= 25);
    update(&mut s, key(KeyCode::End));
    assert_eq!(s.active_conv().scroll, 0);
    // With text, they move the cursor.
    type_text(&mut s, "abc");
    update(&mut s, key(KeyCode::Home));
    assert_eq!((s.editor.cursor, s.active_conv().scroll), (0, 0));
}

#[test]
fn connect_failures_are_told_apart_in_the_status_bar() {
    let mut s = State::new("alice", "http://test:1", Instant::now(), T0);
    net(
        &mut s,
        NetEvent::Failed {
            failure: ConnectFailure::Refused,
        },
    );
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 2,
            last_contact: None,
        },
    );
    assert_eq!(
        s.status_text(),
        "connecting to http://test:1 (attempt 2): connection refused: is the server running on that port?"
    );
    assert_eq!(s.toasts.len(), 1);
    // The same failure again does not pile up toasts.
    net(
        &mut s,
        NetEvent::Failed {
            failure: ConnectFailure::Refused,
        },
    );
    assert_eq!(s.toasts.len(), 1);
    net(
        &mut s,
        NetEvent::Failed {
            failure: ConnectFailure::NameNotResolved,
        },
    );
    assert!(s.status_text().ends_with("host name not found"));
}

#[test]
fn autojoin_rooms_are_joined_once_the_first_session_is_up() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    s.autojoin = vec!["general".into(), "#Rust".into(), "bad room".into()];
    let fx = server(
        &mut s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "t", "recovered": false,
               "rooms": [], "missed": 0, "truncated": false}),
    );
    let joins: Vec<String> = requests(&fx)
        .into_iter()
        .filter_map(|(_, e)| match e {
            ClientEvent::RoomJoin(r) => Some(r.room),
            _ => None,
        })
        .collect();
    assert_eq!(joins, ["#general", "#rust"]);
    assert!(s.autojoin.is_empty());
}

#[test]
fn f3_toggles_mouse_capture_and_f2_the_panels() {
    let mut s = in_general();
    assert_eq!(
        update(&mut s, key(KeyCode::F(3))),
        [Effect::MouseCapture(false)]
    );
    assert!(!s.viewport.mouse_capture);
    assert_eq!(
        update(&mut s, key(KeyCode::F(3))),
        [Effect::MouseCapture(true)]
    );
    // Wide terminal: panels shown, F2 hides them; narrow: F2 shows them.
    s.viewport.screen_width = 120;
    update(&mut s, key(KeyCode::F(2)));
    assert_eq!(s.viewport.panels, Some(false));
    s.viewport.panels = None;
    s.viewport.screen_width = 60;
    update(&mut s, key(KeyCode::F(2)));
    assert_eq!(s.viewport.panels, Some(true));
}
