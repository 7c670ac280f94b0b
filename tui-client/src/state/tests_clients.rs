//! Unit tests of one account on several clients (v3): the unread counts
//! and read markers at connect, marking read what was seen (focus, scroll,
//! one request on its way, coalesced and paced), a marker moved by another
//! client, the "new messages" divider at the marker, rooms joined or left
//! elsewhere, DMs sent from another client, `/sessions` and `/sessions end`.

use std::time::Duration;

use chat_shared::sessions::Conversation as At;
use chat_shared::{
    AckError, ChatError, ErrorCode, HistoryAck, HistoryMessage, HistoryTarget, JoinAck, ReadMarker,
    RoomMessage, RoomRole, SentAck, SessionEndRequest, SessionListAck, SessionSummary,
};
use crossterm::event::KeyCode;
use serde_json::json;
use tokio::time::Instant;

use super::markers::READ_MARK_EVERY;
use super::testing::{T0, enter_line, key, net, notifications, requests, server};
use super::*;

fn general() -> ConvId {
    ConvId::Room("#general".into())
}

fn room(r: &str) -> At {
    At::Room(r.into())
}

/// A `session` event of a v3 server for the account alice.
fn session(
    s: &mut State,
    recovered: bool,
    rooms: &[&str],
    markers: serde_json::Value,
) -> Vec<Effect> {
    server(
        s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "tok", "recovered": recovered,
               "rooms": rooms, "missed": 0, "truncated": false, "role": "user",
               "markers": markers}),
    )
}

fn room_msg(id: &str, from: &str, text: &str) -> serde_json::Value {
    json!({"id": id, "ts": T0, "from": from, "room": "#general", "text": text})
}

fn answer(s: &mut State, req: u64, reply: AckReply) -> Vec<Effect> {
    net(
        s,
        NetEvent::Ack {
            req,
            result: Ok(reply),
        },
    )
}

/// A refusal as it arrives: in the ack and as `chat:error`.
fn refuse(s: &mut State, req: u64, err: ChatError) -> Vec<Effect> {
    let mut fx = net(
        s,
        NetEvent::Ack {
            req,
            result: Err(AckError::Refused(err.clone())),
        },
    );
    fx.extend(server(s, "chat:error", serde_json::to_value(&err).unwrap()));
    fx
}

/// The `read:mark`s among the effects: `(req, conversation, id)`.
fn marks(fx: &[Effect]) -> Vec<(u64, At, String)> {
    requests(fx)
        .into_iter()
        .filter_map(|(req, ev)| match ev {
            ClientEvent::ReadMark(r) => Some((req, r.at, r.id)),
            _ => None,
        })
        .collect()
}

fn ack_mark(s: &mut State, req: u64, at: At, id: &str) -> Vec<Effect> {
    answer(
        s,
        req,
        AckReply::ReadMarked(ReadMarker { at, id: id.into() }),
    )
}

fn advance(s: &mut State, d: Duration) -> Vec<Effect> {
    let now = s.now + d;
    let wall = s.wall_ms + d.as_millis() as u64;
    update(s, Input::Tick { now, wall_ms: wall })
}

fn texts(s: &State, id: &ConvId) -> Vec<String> {
    s.conv(id)
        .map(|c| c.entries.iter().map(|e| e.text.clone()).collect())
        .unwrap_or_default()
}

fn toasts(s: &State) -> Vec<String> {
    s.toasts.iter().map(|t| t.text.clone()).collect()
}

/// The text of the line the divider sits above, if any.
fn divider_at(s: &State, id: &ConvId) -> Option<String> {
    let c = s.conv(id)?;
    let seq = c.unread_marker?;
    c.entries
        .iter()
        .find(|e| e.seq == seq)
        .map(|e| e.text.clone())
}

fn history(ids: std::ops::RangeInclusive<u32>, from: &str) -> HistoryAck {
    HistoryAck {
        messages: ids
            .map(|i| {
                HistoryMessage::Room(RoomMessage {
                    id: i.to_string(),
                    ts: T0,
                    from: from.into(),
                    room: "#general".into(),
                    text: format!("line {i}"),
                    replayed: None,
                    action: None,
                    ..Default::default()
                })
            })
            .collect(),
        more: false,
    }
}

/// The one `history` request among the effects, for `target`.
fn history_request(fx: &[Effect], target: &HistoryTarget) -> u64 {
    requests(fx)
        .into_iter()
        .find_map(|(req, ev)| match ev {
            ClientEvent::History(h) if &h.target == target => Some(req),
            _ => None,
        })
        .expect("a history request")
}

/// Connected to a v3 server as the account alice, in #general (active)
/// with bob, no marker known for it yet.
fn in_general() -> State {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    session(&mut s, false, &[], json!([]));
    let fx = enter_line(&mut s, "/join #general");
    let (req, _) = requests(&fx).pop().expect("a join");
    let ack = JoinAck {
        room: "#general".into(),
        members: vec!["alice".into(), "bob".into()],
        history: vec![],
        topic: String::new(),
        private: false,
        role: Some(RoomRole::Member),
    };
    answer(&mut s, req, AckReply::Joined(ack));
    s.toasts.clear();
    s
}

// ------------------------------------------------------------ at connect

#[test]
fn the_session_gives_unread_counts_and_lists_dm_conversations_with_news() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    let fx = session(
        &mut s,
        false,
        &["#general", "#ops"],
        json!([{"room": "#general", "id": "10", "unread": 3},
               {"room": "#ops", "id": null, "unread": 0},
               {"with": "Bob", "id": "5", "unread": 2},
               {"with": "carol", "id": "7", "unread": 0}]),
    );
    assert_eq!(s.conv(&general()).unwrap().unread, 3);
    assert_eq!(s.conv(&ConvId::Room("#ops".into())).unwrap().unread, 0);
    // A DM conversation with news is listed before any line of it arrives,
    // and asks for attention as a DM does; one read to the end is not.
    let bob = ConvId::Dm("Bob".into());
    let c = s.conv(&bob).expect("@Bob listed");
    assert_eq!((c.unread, c.mentioned), (2, true));
    assert!(c.entries.is_empty());
    assert!(s.conv(&ConvId::Dm("carol".into())).is_none());
    // No history is fetched for a count; the rooms' remembered lines are
    // fetched as before (a fresh session of an account).
    let asked: Vec<ClientEvent> = requests(&fx).into_iter().map(|(_, e)| e).collect();
    assert!(
        !asked.iter().any(|e| matches!(e, ClientEvent::History(h)
            if matches!(&h.target, HistoryTarget::With(_)))),
        "{asked:?}"
    );
    assert_eq!(
        s.read_mark(&bob).and_then(|m| m.marker.clone()).as_deref(),
        Some("5")
    );
    // A line of #general's history arriving places the divider at the
    // marker: above the first message after id 10. The count stays the
    // server's.
    let req = history_request(&fx, &HistoryTarget::Room("#general".into()));
    answer(&mut s, req, AckReply::History(history(7..=13, "bob")));
    assert_eq!(divider_at(&s, &general()).as_deref(), Some("line 11"));
    assert_eq!(s.conv(&general()).unwrap().unread, 3);
    // The view shows the counts in the conversations pane.
    let lines = sidebar(&mut s);
    let badge = |name: &str, badge: &str| {
        lines
            .iter()
            .any(|l| l.contains(name) && l.trim_end_matches('│').ends_with(badge))
    };
    assert!(badge("#general", " 3"), "{lines:?}");
    assert!(badge("@Bob", " 2!"), "{lines:?}");
}

/// The conversations pane's rows, as drawn at 100x20.
fn sidebar(s: &mut State) -> Vec<String> {
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(100, 20)).unwrap();
    t.draw(|f| {
        crate::view::draw(f, s);
    })
    .unwrap();
    let buf = t.backend().buffer().clone();
    (0..buf.area.height)
        .map(|y| {
            (0..16)
                .map(|x| buf[(x, y)].symbol().to_owned())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect()
}

#[test]
fn messages_replayed_after_the_session_are_in_its_count_already() {
    let mut s = in_general();
    let fx = session(
        &mut s,
        true,
        &["#general"],
        json!([{"room": "#general", "id": null, "unread": 0},
               {"with": "bob", "id": "20", "unread": 1}]),
    );
    assert!(marks(&fx).is_empty());
    let bob = ConvId::Dm("bob".into());
    // Read on another client already: kept, no count, no divider, no bell.
    let fx = server(
        &mut s,
        "dm:message",
        json!({"id": "19", "ts": T0, "from": "bob", "to": "alice", "text": "old news", "replayed": true}),
    );
    assert!(notifications(&fx).is_empty());
    // After the marker: news, counted by the session already.
    let fx = server(
        &mut s,
        "dm:message",
        json!({"id": "21", "ts": T0, "from": "bob", "to": "alice", "text": "new", "replayed": true}),
    );
    assert_eq!(notifications(&fx).len(), 1);
    let c = s.conv(&bob).unwrap();
    assert_eq!(c.unread, 1);
    assert_eq!(texts(&s, &bob), vec!["old news", "new"]);
    assert_eq!(divider_at(&s, &bob).as_deref(), Some("new"));
    // A live one counts as always.
    server(
        &mut s,
        "dm:message",
        json!({"id": "22", "ts": T0, "from": "bob", "to": "alice", "text": "live"}),
    );
    assert_eq!(s.conv(&bob).unwrap().unread, 2);
}

// ---------------------------------------------------------- marking read

#[test]
fn the_open_conversation_is_marked_read_once_its_newest_line_is_seen() {
    let mut s = in_general();
    let fx = server(&mut s, "room:message", room_msg("11", "bob", "hi"));
    let sent = marks(&fx);
    assert_eq!(sent.len(), 1);
    let (req, at, id) = sent[0].clone();
    assert_eq!((at.clone(), id.as_str()), (room("#general"), "11"));
    // Lines coming while it is on its way: nothing more goes out.
    for (i, text) in ["a", "b", "c"].iter().enumerate() {
        let fx = server(
            &mut s,
            "room:message",
            room_msg(&(12 + i).to_string(), "bob", text),
        );
        assert!(marks(&fx).is_empty());
    }
    // The ack came, but within a second of the last: still waiting.
    let fx = ack_mark(&mut s, req, at.clone(), "11");
    assert!(marks(&fx).is_empty());
    // Then the newest of them goes, once.
    let fx = advance(&mut s, READ_MARK_EVERY);
    let sent = marks(&fx);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].2, "14");
    ack_mark(&mut s, sent[0].0, at, "14");
    assert!(marks(&advance(&mut s, READ_MARK_EVERY * 3)).is_empty());
    // My own lines count as seen, and so does the line a blocked user sent.
    let fx = enter_line(&mut s, "me too");
    let (req, _) = requests(&fx).pop().expect("the message");
    let fx = answer(
        &mut s,
        req,
        AckReply::Sent(SentAck {
            id: "15".into(),
            ts: T0,
            queued: None,
        }),
    );
    assert_eq!(marks(&fx)[0].2, "15");
}

#[test]
fn nothing_is_marked_read_while_scrolled_up_unfocused_or_for_a_notice() {
    let mut s = in_general();
    let sent = marks(&server(
        &mut s,
        "room:message",
        room_msg("11", "bob", "one"),
    ));
    ack_mark(&mut s, sent[0].0, room("#general"), "11");
    advance(&mut s, READ_MARK_EVERY);
    // Scrolled up: not seen.
    update(&mut s, key(KeyCode::PageUp));
    assert!(s.conv(&general()).unwrap().scroll > 0);
    assert!(
        marks(&server(
            &mut s,
            "room:message",
            room_msg("12", "bob", "two")
        ))
        .is_empty()
    );
    // Back at the bottom: seen.
    let fx = update(&mut s, key(KeyCode::PageDown));
    let sent = marks(&fx);
    assert_eq!(sent.len(), 1, "{fx:?}");
    assert_eq!(sent[0].2, "12");
    ack_mark(&mut s, sent[0].0, room("#general"), "12");
    advance(&mut s, READ_MARK_EVERY);
    // The terminal lost the focus: not seen until it has it back.
    update(&mut s, Input::Focus(false));
    assert!(
        marks(&server(
            &mut s,
            "room:message",
            room_msg("13", "bob", "three")
        ))
        .is_empty()
    );
    assert!(marks(&advance(&mut s, READ_MARK_EVERY)).is_empty());
    let sent = marks(&update(&mut s, Input::Focus(true)));
    assert_eq!(sent[0].2, "13");
    ack_mark(&mut s, sent[0].0, room("#general"), "13");
    advance(&mut s, READ_MARK_EVERY);
    // A notice and a room event are no messages.
    assert!(marks(&enter_line(&mut s, "/help")).is_empty());
    let fx = server(
        &mut s,
        "room:event",
        json!({"id": "14", "ts": T0, "room": "#general", "kind": "topic", "by": "bob",
               "topic": "news", "user": null, "reason": null, "until": null}),
    );
    assert!(marks(&fx).is_empty());
    // Another conversation's lines are not seen.
    let fx = server(
        &mut s,
        "dm:message",
        json!({"id": "15", "ts": T0, "from": "carol", "to": "alice", "text": "psst"}),
    );
    assert!(marks(&fx).is_empty());
}

#[test]
fn an_id_not_newer_than_the_marker_is_never_sent_nor_one_refused_again() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    let fx = session(
        &mut s,
        false,
        &["#general"],
        json!([{"room": "#general", "id": "50", "unread": 0}]),
    );
    let req = history_request(&fx, &HistoryTarget::Room("#general".into()));
    answer(&mut s, req, AckReply::History(history(40..=45, "bob")));
    // Open, at the bottom, focused: everything there is older than the
    // marker another client set.
    let fx = update(&mut s, super::testing::ctrl('n'));
    assert_eq!(s.active, general());
    assert!(marks(&fx).is_empty());
    assert_eq!(s.conv(&general()).unwrap().unread_marker, None);
    // A newer one is sent; refused, it is not tried again, and the
    // refusal says nothing (the person did not ask).
    let sent = marks(&server(&mut s, "room:message", room_msg("51", "bob", "x")));
    assert_eq!(sent[0].2, "51");
    let fx = refuse(
        &mut s,
        sent[0].0,
        ChatError::new(ErrorCode::NotMember, "not in #general", "read:mark"),
    );
    assert!(marks(&fx).is_empty());
    assert!(marks(&advance(&mut s, READ_MARK_EVERY * 2)).is_empty());
    assert!(toasts(&s).is_empty(), "{:?}", toasts(&s));
}

#[test]
fn a_v2_server_is_never_sent_a_read_mark() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    server(
        &mut s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "t", "recovered": false,
               "rooms": [], "missed": 0, "truncated": false}),
    );
    enter_line(&mut s, "/msg bob");
    let fx = server(
        &mut s,
        "dm:message",
        json!({"id": "3", "ts": T0, "from": "bob", "to": "alice", "text": "hi"}),
    );
    assert!(marks(&fx).is_empty());
}

#[test]
fn a_server_that_does_not_know_read_mark_is_not_asked_again() {
    let mut s = in_general();
    let sent = marks(&server(&mut s, "room:message", room_msg("11", "bob", "a")));
    refuse(
        &mut s,
        sent[0].0,
        ChatError::new(ErrorCode::UnknownEvent, "unknown event", "read:mark"),
    );
    advance(&mut s, READ_MARK_EVERY);
    assert!(marks(&server(&mut s, "room:message", room_msg("12", "bob", "b"))).is_empty());
    assert!(toasts(&s).is_empty(), "{:?}", toasts(&s));
}

// ------------------------------------------------ another client's marker

#[test]
fn a_marker_moved_elsewhere_clears_the_count_and_moves_the_divider() {
    let mut s = in_general();
    s.switch_to(ConvId::Feed, &mut Vec::new());
    for i in 11..=13 {
        server(
            &mut s,
            "room:message",
            room_msg(&i.to_string(), "bob", &format!("m{i}")),
        );
    }
    let c = s.conv(&general()).unwrap();
    assert_eq!(c.unread, 3);
    assert_eq!(divider_at(&s, &general()).as_deref(), Some("m11"));
    // Another client read up to 12: one left, the divider above it.
    let fx = server(
        &mut s,
        "read:marker",
        json!({"room": "#general", "id": "12"}),
    );
    assert!(marks(&fx).is_empty());
    assert_eq!(s.conv(&general()).unwrap().unread, 1);
    assert_eq!(divider_at(&s, &general()).as_deref(), Some("m13"));
    // An older marker changes nothing.
    server(
        &mut s,
        "read:marker",
        json!({"room": "#general", "id": "11"}),
    );
    assert_eq!(s.conv(&general()).unwrap().unread, 1);
    // Up to the newest: nothing unread, no divider.
    server(
        &mut s,
        "read:marker",
        json!({"room": "#general", "id": "13"}),
    );
    let c = s.conv(&general()).unwrap();
    assert_eq!((c.unread, c.mentioned, c.unread_marker), (0, false, None));
    // A DM, named in another case.
    server(
        &mut s,
        "dm:message",
        json!({"id": "14", "ts": T0, "from": "Bob", "to": "alice", "text": "psst"}),
    );
    let bob = ConvId::Dm("Bob".into());
    assert_eq!(s.conv(&bob).unwrap().unread, 1);
    server(&mut s, "read:marker", json!({"with": "bob", "id": "14"}));
    let c = s.conv(&bob).unwrap();
    assert_eq!((c.unread, c.mentioned), (0, false));
    // Coming back to a conversation read elsewhere sends nothing.
    let fx = update(&mut s, super::testing::ctrl('n'));
    assert_eq!(s.active, general());
    assert!(marks(&fx).is_empty());
}

#[test]
fn the_divider_stays_while_i_read_and_leaving_moves_it_to_the_marker() {
    let mut s = in_general();
    let sent = marks(&server(
        &mut s,
        "room:message",
        room_msg("10", "bob", "seen"),
    ));
    ack_mark(&mut s, sent[0].0, room("#general"), "10");
    s.switch_to(ConvId::Feed, &mut Vec::new());
    server(&mut s, "room:message", room_msg("11", "bob", "first new"));
    server(&mut s, "room:message", room_msg("12", "bob", "second new"));
    advance(&mut s, READ_MARK_EVERY);
    // Back in it: marked read, and the divider stays while I am there.
    let fx = update(&mut s, super::testing::ctrl('n'));
    let sent = marks(&fx);
    assert_eq!(sent[0].2, "12");
    ack_mark(&mut s, sent[0].0, room("#general"), "12");
    assert_eq!(divider_at(&s, &general()).as_deref(), Some("first new"));
    // Leaving after reading it all: no divider.
    s.switch_to(ConvId::Feed, &mut Vec::new());
    assert_eq!(s.conv(&general()).unwrap().unread_marker, None);
    // Leaving while scrolled up: the divider sits at what I had not seen.
    advance(&mut s, READ_MARK_EVERY);
    s.switch_to(general(), &mut Vec::new());
    update(&mut s, key(KeyCode::PageUp));
    server(&mut s, "room:message", room_msg("13", "bob", "unseen"));
    s.switch_to(ConvId::Feed, &mut Vec::new());
    assert_eq!(divider_at(&s, &general()).as_deref(), Some("unseen"));
}

// ------------------------------------------- rooms joined or left elsewhere

#[test]
fn a_room_joined_on_another_client_is_listed_and_filled_here() {
    let mut s = in_general();
    let fx = server(&mut s, "room:joined", json!({"room": "#Rust"}));
    let rust = ConvId::Room("#rust".into());
    assert_eq!(s.active, general(), "no switch");
    assert_eq!(
        texts(&s, &rust),
        vec!["joined #rust on another of your clients"]
    );
    let asked: Vec<ClientEvent> = requests(&fx).into_iter().map(|(_, e)| e).collect();
    assert!(
        asked.contains(&ClientEvent::RoomInfo(chat_shared::RoomRequest {
            room: "#rust".into()
        }))
    );
    // Its latest lines, as for a join: context, not news.
    let req = history_request(&fx, &HistoryTarget::Room("#rust".into()));
    let mut page = history(1..=2, "bob");
    for m in page.messages.iter_mut() {
        if let HistoryMessage::Room(r) = m {
            r.room = "#rust".into();
        }
    }
    answer(&mut s, req, AckReply::History(page));
    assert_eq!(
        texts(&s, &rust),
        vec![
            "line 1",
            "line 2",
            "joined #rust on another of your clients"
        ]
    );
    assert_eq!(s.conv(&rust).unwrap().unread, 0);
    // Told twice (my own join answered first): once is enough.
    let fx = server(&mut s, "room:joined", json!({"room": "#rust"}));
    assert!(requests(&fx).is_empty());
    assert_eq!(texts(&s, &rust).len(), 3);
}

#[test]
fn a_room_left_on_another_client_goes_from_here_with_a_line() {
    let mut s = in_general();
    let sent = marks(&server(&mut s, "room:message", room_msg("11", "bob", "hi")));
    ack_mark(&mut s, sent[0].0, room("#general"), "11");
    server(&mut s, "room:left", json!({"room": "#general"}));
    assert!(s.conv(&general()).is_none());
    assert_eq!(s.active, ConvId::Feed);
    assert_eq!(
        texts(&s, &ConvId::Feed).last().map(String::as_str),
        Some("left #general on another of your clients")
    );
    assert!(s.read_mark(&general()).is_none(), "its marker goes too");
    assert!(!s.rooms().contains(&"#general".to_string()));
    // A room this client does not hold: nothing to do.
    server(&mut s, "room:left", json!({"room": "#nowhere"}));
    assert_eq!(texts(&s, &ConvId::Feed).len(), 1);
}

// -------------------------------------------- DMs from another client

#[test]
fn a_dm_i_sent_from_another_client_shows_as_mine_once() {
    let mut s = in_general();
    let bob = ConvId::Dm("bob".into());
    let fx = server(
        &mut s,
        "dm:message",
        json!({"id": "30", "ts": T0, "from": "alice", "to": "bob", "text": "from my phone"}),
    );
    assert!(notifications(&fx).is_empty());
    let c = s.conv(&bob).expect("the conversation with bob");
    assert_eq!(c.unread, 0);
    assert_eq!(c.entries[0].kind, EntryKind::Own(Delivery::Sent));
    // The same words typed here while it is on its way stay two lines: the
    // other client's DM does not take the place of mine.
    let fx = enter_line(&mut s, "/msg bob ok");
    let (req, _) = requests(&fx)
        .into_iter()
        .find(|(_, e)| matches!(e, ClientEvent::DmMessage(_)))
        .expect("the DM");
    server(
        &mut s,
        "dm:message",
        json!({"id": "31", "ts": T0, "from": "alice", "to": "bob", "text": "ok"}),
    );
    answer(
        &mut s,
        req,
        AckReply::Sent(SentAck {
            id: "32".into(),
            ts: T0,
            queued: None,
        }),
    );
    // A copy of mine by id (a replay) is dropped.
    server(
        &mut s,
        "dm:message",
        json!({"id": "32", "ts": T0, "from": "alice", "to": "bob", "text": "ok", "replayed": true}),
    );
    let c = s.conv(&bob).unwrap();
    let ids: Vec<Option<&str>> = c.entries.iter().map(|e| e.id.as_deref()).collect();
    assert_eq!(
        ids,
        vec![Some("30"), Some("31"), Some("32")],
        "{:?}",
        c.entries
    );
    assert!(
        c.entries
            .iter()
            .all(|e| e.kind == EntryKind::Own(Delivery::Sent))
    );
    assert_eq!(c.unread, 0);
}

// -------------------------------------------------------------- /sessions

fn summary(
    id: &str,
    client: Option<&str>,
    ago_ms: u64,
    live: bool,
    current: bool,
) -> SessionSummary {
    SessionSummary {
        id: id.into(),
        client: client.map(str::to_owned),
        address: Some("192.0.2.7".into()),
        connected_at: T0 - ago_ms,
        last_active_at: T0 - 300_000,
        live,
        current,
    }
}

fn three_sessions() -> AckReply {
    AckReply::Sessions(SessionListAck {
        sessions: vec![
            summary(
                "3f9a1c77",
                Some("chat-tui on laptop"),
                2 * 3_600_000,
                true,
                true,
            ),
            summary("3f9b0000", None, 3 * 86_400_000, false, false),
            summary("77b2e0aa", Some("chat-tui on desk"), 30_000, true, false),
        ],
    })
}

#[test]
fn sessions_lists_my_clients_on_lines() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "/sessions");
    let (req, ev) = requests(&fx).pop().expect("session:list");
    assert_eq!(ev, ClientEvent::SessionList);
    answer(&mut s, req, three_sessions());
    let lines = texts(&s, &general());
    assert_eq!(
        lines[lines.len() - 5..],
        [
            "your sessions (3):",
            "  3f9b00  no label · 192.0.2.7 · connected 3 days ago · away, last active 5 minutes ago",
            "  3f9a1c  chat-tui on laptop · 192.0.2.7 · connected 2 hours ago · live (this one)",
            "  77b2e0  chat-tui on desk · 192.0.2.7 · connected just now · live",
            "  /sessions end ID ends one (the start of its id is enough)",
        ]
    );
    assert_eq!(
        super::clients::short_ids(&["3f9a1c77", "3f9a1c78", "ab"]),
        ["3f9a1c77", "3f9a1c78", "ab"]
    );
}

#[test]
fn sessions_end_takes_the_start_of_an_id_and_says_what_it_did() {
    let mut s = in_general();
    // The list first, then the session its start names.
    let fx = enter_line(&mut s, "/sessions end 77b");
    let (req, ev) = requests(&fx).pop().expect("session:list");
    assert_eq!(ev, ClientEvent::SessionList);
    let fx = answer(&mut s, req, three_sessions());
    let (req, ev) = requests(&fx).pop().expect("session:end");
    assert_eq!(
        ev,
        ClientEvent::SessionEnd(SessionEndRequest {
            id: "77b2e0aa".into()
        })
    );
    answer(&mut s, req, AckReply::Done);
    assert_eq!(
        texts(&s, &general()).last().map(String::as_str),
        Some("ended session 77b2e0 (chat-tui on desk)")
    );
    // Several match, none match, or this very client: said, nothing sent.
    for (typed, said) in [
        (
            "3f9",
            "3f9 starts several session ids (3f9b00, 3f9a1c): type more of one",
        ),
        (
            "zz",
            "no session of yours has an id starting with zz (/sessions lists them)",
        ),
        ("3f9a", "that is this client's session: /quit ends it"),
    ] {
        s.toasts.clear();
        let fx = enter_line(&mut s, &format!("/sessions end {typed}"));
        let (req, _) = requests(&fx).pop().expect("session:list");
        let fx = answer(&mut s, req, three_sessions());
        assert!(requests(&fx).is_empty(), "{typed}");
        assert_eq!(toasts(&s), [said]);
    }
    // Gone meanwhile: not_found in plain words, said once.
    s.toasts.clear();
    let fx = enter_line(&mut s, "/sessions end 3f9b");
    let (req, _) = requests(&fx).pop().unwrap();
    let fx = answer(&mut s, req, three_sessions());
    let (req, _) = requests(&fx).pop().expect("session:end");
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::NotFound, "no such session", "session:end"),
    );
    assert_eq!(
        toasts(&s),
        ["session 3f9b00 is not there any more: it ended already (/sessions lists them)"]
    );
}

#[test]
fn a_guest_asking_for_sessions_is_told_why_not() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    server(
        &mut s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "t", "recovered": false,
               "rooms": [], "missed": 0, "truncated": false, "role": "guest", "markers": []}),
    );
    let fx = enter_line(&mut s, "/sessions");
    let (req, _) = requests(&fx).pop().unwrap();
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::AuthRequired, "accounts only", "session:list"),
    );
    assert_eq!(
        toasts(&s),
        ["/sessions is for accounts, and alice is a guest name: /register makes it one"]
    );
    // Offline, nothing is asked.
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    assert!(requests(&enter_line(&mut s, "/sessions")).is_empty());
}
