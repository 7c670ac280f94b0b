//! Unit tests of the state: what the user would notice after a sequence of
//! keys and network events. The clock is injected with `Input::Tick`.

use super::testing::{T0, ctrl, enter_line, key, net, requests, server, type_text};
use super::*;
use chat_shared::{
    AckError, ChatError, ConnectRefusal, DmRequest, ErrorCode, JoinAck, PresenceSnapshot,
    PresenceSummary, RoomCount, RoomMessage, RoomMessageRequest, RoomRequest, SentAck, TextRequest,
    TypingRequest, TypingTarget,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;

fn new_state() -> State {
    State::new("alice", "http://test", Instant::now(), T0)
}

fn session(s: &mut State, recovered: bool, rooms: &[&str], missed: u64) -> Vec<Effect> {
    server(
        s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "tok", "recovered": recovered,
               "rooms": rooms, "missed": missed, "truncated": false}),
    )
}

fn advance(s: &mut State, d: Duration) -> Vec<Effect> {
    let now = s.now + d;
    let wall = s.wall_ms + d.as_millis() as u64;
    update(s, Input::Tick { now, wall_ms: wall })
}

fn volatiles(fx: &[Effect]) -> Vec<ClientEvent> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Net(NetCommand::Volatile(ev)) => Some(ev.clone()),
            _ => None,
        })
        .collect()
}

/// Acks the one message request among `fx` with id `id`.
fn ack_sent(s: &mut State, fx: &[Effect], id: &str) -> Vec<Effect> {
    let (req, _) = requests(fx)
        .into_iter()
        .find(|(_, e)| !matches!(e, ClientEvent::PresenceGet))
        .expect("a message request");
    net(
        s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Sent(SentAck {
                id: id.into(),
                ts: T0,
                queued: None,
            })),
        },
    )
}

fn room_msg(id: &str, from: &str, room: &str, text: &str) -> serde_json::Value {
    json!({"id": id, "ts": T0, "from": from, "room": room, "text": text})
}

/// Connected, in `#general` (active), with bob in it.
fn in_general() -> State {
    let mut s = new_state();
    session(&mut s, false, &[], 0);
    let fx = enter_line(&mut s, "/join general");
    let (req, ev) = requests(&fx).pop().expect("a join request");
    assert_eq!(
        ev,
        ClientEvent::RoomJoin(RoomRequest {
            room: "#general".into()
        })
    );
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
    s
}

fn texts(s: &State, id: &ConvId) -> Vec<String> {
    s.conv(id)
        .map(|c| c.entries.iter().map(|e| e.text.clone()).collect())
        .unwrap_or_default()
}

fn general() -> ConvId {
    ConvId::Room("#general".into())
}

#[test]
fn status_bar_tells_each_connection_state() {
    let mut s = new_state();
    assert_eq!(s.status_text(), "connecting to http://test…");
    session(&mut s, false, &[], 0);
    assert_eq!(s.status_text(), "connected as alice");
    let contact = s.now;
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: Some(contact),
        },
    );
    advance(&mut s, Duration::from_secs(7));
    assert_eq!(
        s.status_text(),
        "reconnecting (attempt 1, last contact 7 s ago)"
    );
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 3,
            last_contact: Some(contact),
        },
    );
    assert_eq!(
        s.status_text(),
        "reconnecting (attempt 3, last contact 7 s ago)"
    );
    session(&mut s, true, &[], 4);
    assert_eq!(s.status_text(), "connected as alice · recovered (4 missed)");
    advance(&mut s, RECOVERED_SHOWN);
    assert_eq!(s.status_text(), "connected as alice");
    net(
        &mut s,
        NetEvent::Refused {
            refusal: ConnectRefusal::new(ErrorCode::UsernameTaken, "alice is in use"),
            retrying: false,
        },
    );
    assert_eq!(s.status_text(), "refused (username_taken: alice is in use)");
    assert_eq!(s.toasts.len(), 1, "a refused connect is also a toast");
}

#[test]
fn unread_counts_and_mentions() {
    let mut s = in_general();
    // Switch away to the feed, then messages arrive in #general.
    update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::Char('1'), KeyModifiers::ALT)),
    );
    assert_eq!(s.active, ConvId::Feed);
    server(
        &mut s,
        "room:message",
        room_msg("1", "bob", "#general", "hi all"),
    );
    server(
        &mut s,
        "room:message",
        room_msg("2", "bob", "#general", "hey @Alice look"),
    );
    let c = s.conv(&general()).unwrap();
    assert_eq!(c.unread, 2);
    assert!(c.mentioned);
    // My own messages never count.
    server(
        &mut s,
        "room:message",
        room_msg("3", "alice", "#general", "from my other window"),
    );
    assert_eq!(s.conv(&general()).unwrap().unread, 2);
    // Going there clears the count and the mark.
    update(&mut s, ctrl('n'));
    assert_eq!(s.active, general());
    let c = s.conv(&general()).unwrap();
    assert_eq!((c.unread, c.mentioned), (0, false));
    // Messages in the active conversation are read as they come.
    server(
        &mut s,
        "room:message",
        room_msg("4", "bob", "#general", "still here"),
    );
    assert_eq!(s.conv(&general()).unwrap().unread, 0);
}

#[test]
fn mention_matches_whole_names_only() {
    assert!(mentions("hi alice!", "alice"));
    assert!(mentions("@ALICE: ping", "alice"));
    assert!(!mentions("malice aforethought", "alice"));
    assert!(!mentions("alice_b is here", "alice"));
}

#[test]
fn own_messages_show_pending_then_sent_without_duplicate_echo() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "hello");
    let (req, ev) = requests(&fx).pop().expect("a message request");
    assert_eq!(
        ev,
        ClientEvent::RoomMessage(RoomMessageRequest {
            room: "#general".into(),
            text: "hello".into(),
            action: false,
            ..Default::default()
        })
    );
    let e = s.conv(&general()).unwrap().entries.back().unwrap().clone();
    assert_eq!(e.kind, EntryKind::Own(Delivery::Pending));
    // The echo comes before the ack: one line, now sent.
    server(
        &mut s,
        "room:message",
        room_msg("10", "alice", "#general", "hello"),
    );
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Sent(SentAck {
                id: "10".into(),
                ts: T0,
                queued: None,
            })),
        },
    );
    let c = s.conv(&general()).unwrap();
    assert_eq!(c.entries.len(), 1);
    assert_eq!(c.entries[0].kind, EntryKind::Own(Delivery::Sent));
    assert_eq!(c.entries[0].id.as_deref(), Some("10"));
    // Ack first, echo after: still one line.
    let fx = enter_line(&mut s, "again");
    let (req, _) = requests(&fx).pop().unwrap();
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Sent(SentAck {
                id: "11".into(),
                ts: T0,
                queued: None,
            })),
        },
    );
    server(
        &mut s,
        "room:message",
        room_msg("11", "alice", "#general", "again"),
    );
    assert_eq!(texts(&s, &general()), vec!["hello", "again"]);
}

#[test]
fn refused_and_timed_out_messages_show_failed_with_the_code() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "spam");
    let (req, _) = requests(&fx).pop().unwrap();
    let err = ChatError::new(ErrorCode::NotMember, "join first", "room:message");
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Err(AckError::Refused(err.clone())),
        },
    );
    server(&mut s, "chat:error", serde_json::to_value(&err).unwrap());
    let e = s.conv(&general()).unwrap().entries.back().unwrap().clone();
    assert_eq!(
        e.kind,
        EntryKind::Own(Delivery::Failed("not_member".into()))
    );
    assert_eq!(s.toasts.len(), 1);
    assert!(s.toasts[0].text.starts_with("not_member: join first"));

    let fx = enter_line(&mut s, "lost");
    let (req, _) = requests(&fx).pop().unwrap();
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Err(AckError::Timeout),
        },
    );
    let e = s.conv(&general()).unwrap().entries.back().unwrap().clone();
    assert_eq!(e.kind, EntryKind::Own(Delivery::Failed("timeout".into())));
    // It did get through after all (the ack was lost with the connection):
    // its echo or replay turns that line into a sent one, not a second line.
    server(
        &mut s,
        "room:message",
        room_msg("12", "alice", "#general", "lost"),
    );
    let c = s.conv(&general()).unwrap();
    assert_eq!(c.entries.iter().filter(|e| e.text == "lost").count(), 1);
    assert_eq!(
        c.entries.back().unwrap().kind,
        EntryKind::Own(Delivery::Sent)
    );
}

#[test]
fn outbox_holds_messages_until_the_session_is_back_and_sends_them_in_order() {
    let mut s = in_general();
    let now = s.now;
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: Some(now),
        },
    );
    assert!(requests(&enter_line(&mut s, "one")).is_empty());
    assert!(requests(&enter_line(&mut s, "two")).is_empty());
    assert!(requests(&enter_line(&mut s, "/msg bob three")).is_empty());
    assert_eq!(s.outbox_len(), 3);
    let e = s.conv(&general()).unwrap().entries.back().unwrap().clone();
    assert_eq!(e.kind, EntryKind::Own(Delivery::Queued));

    // Back: one at a time, each after the previous ack, in the order typed.
    let mut fx = session(&mut s, true, &["#general"], 0);
    let mut sent = Vec::new();
    for id in ["20", "21", "22"] {
        let (req, ev) = requests(&fx)
            .into_iter()
            .find(|(_, e)| !matches!(e, ClientEvent::PresenceGet))
            .expect("the next queued message");
        assert_eq!(
            requests(&fx)
                .iter()
                .filter(|(_, e)| !matches!(e, ClientEvent::PresenceGet))
                .count(),
            1
        );
        sent.push(ev);
        fx = net(
            &mut s,
            NetEvent::Ack {
                req,
                result: Ok(AckReply::Sent(SentAck {
                    id: id.into(),
                    ts: T0,
                    queued: None,
                })),
            },
        );
    }
    assert_eq!(
        sent,
        vec![
            ClientEvent::RoomMessage(RoomMessageRequest {
                room: "#general".into(),
                text: "one".into(),
                action: false,
                ..Default::default()
            }),
            ClientEvent::RoomMessage(RoomMessageRequest {
                room: "#general".into(),
                text: "two".into(),
                action: false,
                ..Default::default()
            }),
            ClientEvent::DmMessage(DmRequest {
                to: "bob".into(),
                text: "three".into(),
                action: false,
                ..Default::default()
            }),
        ]
    );
    assert_eq!(s.outbox_len(), 0);
    let e = s.conv(&general()).unwrap().entries.back().unwrap().clone();
    assert_eq!(e.kind, EntryKind::Own(Delivery::Sent));
}

#[test]
fn a_message_the_network_could_not_send_goes_back_to_the_outbox_in_order() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "first");
    let (r1, _) = requests(&fx).pop().unwrap();
    assert!(
        requests(&enter_line(&mut s, "second")).is_empty(),
        "waits for the first one's ack"
    );
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    net(
        &mut s,
        NetEvent::Ack {
            req: r1,
            result: Err(AckError::NotSent("not connected".into())),
        },
    );
    assert_eq!(s.outbox_len(), 2);
    assert_eq!(s.queued_len(), 2);
    let fx = session(&mut s, true, &["#general"], 0);
    let first: Vec<String> = requests(&fx)
        .into_iter()
        .filter_map(|(_, e)| match e {
            ClientEvent::RoomMessage(m) => Some(m.text),
            _ => None,
        })
        .collect();
    assert_eq!(first, vec!["first"], "the oldest goes first, alone");
}

#[test]
fn replayed_messages_merge_in_order_without_duplicates() {
    let mut s = in_general();
    server(
        &mut s,
        "room:message",
        room_msg("5", "bob", "#general", "five"),
    );
    server(
        &mut s,
        "room:message",
        room_msg("9", "bob", "#general", "nine"),
    );
    // Replay after a reconnect: some known, some new, out of place.
    for (id, text) in [
        ("5", "five"),
        ("7", "seven"),
        ("8", "eight"),
        ("9", "nine"),
        ("10", "ten"),
    ] {
        let mut m = room_msg(id, "bob", "#general", text);
        m["replayed"] = json!(true);
        server(&mut s, "room:message", m);
    }
    assert_eq!(
        texts(&s, &general()),
        vec!["five", "seven", "eight", "nine", "ten"]
    );
    // Ids compare as numbers, not strings ("10" after "9").
    assert_eq!(id_order("10", "9"), Some(std::cmp::Ordering::Greater));
    // Opaque ids are not compared: they keep arrival order.
    assert_eq!(id_order("a1", "9"), None);
    server(
        &mut s,
        "room:message",
        room_msg("zz", "bob", "#general", "opaque"),
    );
    assert_eq!(
        texts(&s, &general()).last().map(String::as_str),
        Some("opaque")
    );
}

#[test]
fn join_history_merges_and_does_not_count_as_unread() {
    let mut s = in_general();
    server(
        &mut s,
        "room:message",
        room_msg("3", "bob", "#general", "three"),
    );
    // A join of a second room whose history has a message I already saw
    // (a re-join) and older ones.
    let fx = enter_line(&mut s, "/join #rust");
    let (req, _) = requests(&fx).pop().unwrap();
    let history = vec![
        RoomMessage {
            id: "1".into(),
            ts: T0,
            from: "carol".into(),
            room: "#rust".into(),
            text: "old".into(),
            replayed: None,
            action: None,
            ..Default::default()
        },
        RoomMessage {
            id: "2".into(),
            ts: T0,
            from: "carol".into(),
            room: "#rust".into(),
            text: "older?".into(),
            replayed: None,
            action: None,
            ..Default::default()
        },
    ];
    let ack = JoinAck {
        room: "#rust".into(),
        members: vec!["carol".into()],
        history: history.clone(),
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
    let rust = ConvId::Room("#rust".into());
    assert_eq!(s.active, rust, "/join switches to the room");
    assert_eq!(texts(&s, &rust), vec!["old", "older?"]);
    assert_eq!(s.conv(&rust).unwrap().unread, 0);
    // Joining again (idempotent) merges the same history without doubles.
    let fx = enter_line(&mut s, "/join rust");
    let (req, _) = requests(&fx).pop().unwrap();
    let ack = JoinAck {
        room: "#rust".into(),
        members: vec!["carol".into()],
        history,
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
    assert_eq!(texts(&s, &rust), vec!["old", "older?"]);
    assert_eq!(s.rooms(), vec!["#general", "#rust"]);
}

#[test]
fn typing_from_others_expires_six_seconds_after_the_last_signal() {
    let mut s = in_general();
    server(
        &mut s,
        "typing",
        json!({"from": "bob", "room": "#general", "typing": true}),
    );
    assert_eq!(s.typing_names(), vec!["bob"]);
    advance(&mut s, Duration::from_secs(4));
    server(
        &mut s,
        "typing",
        json!({"from": "bob", "room": "#general", "typing": true}),
    );
    advance(&mut s, Duration::from_secs(4));
    assert_eq!(
        s.typing_names(),
        vec!["bob"],
        "renewed by the second signal"
    );
    advance(&mut s, Duration::from_millis(2001));
    assert!(
        s.typing_names().is_empty(),
        "forgotten 6 s after the last signal"
    );
    // typing:false and a message both end it at once.
    server(
        &mut s,
        "typing",
        json!({"from": "bob", "room": "#general", "typing": true}),
    );
    server(
        &mut s,
        "typing",
        json!({"from": "bob", "room": "#general", "typing": false}),
    );
    assert!(s.typing_names().is_empty());
    server(
        &mut s,
        "typing",
        json!({"from": "bob", "room": "#general", "typing": true}),
    );
    server(
        &mut s,
        "room:message",
        room_msg("1", "bob", "#general", "done"),
    );
    assert!(s.typing_names().is_empty());
    // A DM typing signal shows in the DM conversation only.
    server(
        &mut s,
        "typing",
        json!({"from": "carol", "to": "alice", "typing": true}),
    );
    assert!(s.typing_names().is_empty());
    enter_line(&mut s, "/msg carol");
    assert_eq!(s.typing_names(), vec!["carol"]);
}

#[test]
fn my_typing_goes_out_at_most_every_two_seconds_and_stops_on_send_or_clear() {
    let mut s = in_general();
    let typing = |on: bool| {
        ClientEvent::Typing(TypingRequest {
            target: TypingTarget::Room("#general".into()),
            typing: on,
        })
    };
    assert_eq!(volatiles(&type_text(&mut s, "hel")), vec![typing(true)]);
    advance(&mut s, Duration::from_secs(1));
    assert!(volatiles(&type_text(&mut s, "lo")).is_empty());
    advance(&mut s, Duration::from_secs(1));
    assert_eq!(volatiles(&type_text(&mut s, "!")), vec![typing(true)]);
    // Sending says I stopped.
    let fx = update(&mut s, key(KeyCode::Enter));
    assert_eq!(volatiles(&fx), vec![typing(false)]);
    // Typing then clearing the line says it too.
    type_text(&mut s, "x");
    let fx = update(&mut s, key(KeyCode::Backspace));
    assert_eq!(volatiles(&fx), vec![typing(false)]);
    // Commands are not typing.
    assert!(volatiles(&type_text(&mut s, "/who")).is_empty());
}

#[test]
fn presence_events_keep_the_sidebar_live() {
    let mut s = in_general();
    let snap = PresenceSnapshot {
        online: 2,
        users: vec!["alice".into(), "bob".into()],
        rooms: vec![RoomCount::new("#general", 2)],
    };
    net(&mut s, NetEvent::Presence(snap));
    assert_eq!(s.online, 2);
    server(
        &mut s,
        "presence",
        json!({"event": "connect", "user": "carol", "room": null, "online": 3, "members": null}),
    );
    assert_eq!(
        s.users.iter().cloned().collect::<Vec<_>>(),
        vec!["alice", "bob", "carol"]
    );
    assert_eq!(s.online, 3);
    server(
        &mut s,
        "presence",
        json!({"event": "join", "user": "carol", "room": "#general", "online": 3, "members": 3}),
    );
    let c = s.conv(&general()).unwrap();
    assert!(c.members.contains("carol"));
    assert_eq!(c.member_count, Some(3));
    server(
        &mut s,
        "presence",
        json!({"event": "leave", "user": "bob", "room": "#general", "online": 3, "members": 2, "reason": "disconnect"}),
    );
    server(
        &mut s,
        "presence",
        json!({"event": "disconnect", "user": "bob", "room": null, "online": 2, "members": null}),
    );
    assert!(!s.conv(&general()).unwrap().members.contains("bob"));
    assert!(!s.users.contains("bob"));
    assert_eq!(s.online, 2);
}

#[test]
fn presence_summaries_apply_their_lists_or_ask_for_a_snapshot() {
    let mut s = in_general();
    let fx = server(
        &mut s,
        "presence",
        json!({"event": "summary", "user": null, "room": "#general", "online": 40, "members": 30,
               "joined": ["dave", "erin"], "left": ["bob"], "joinedCount": 2, "leftCount": 1}),
    );
    assert!(requests(&fx).is_empty(), "complete lists need no snapshot");
    let c = s.conv(&general()).unwrap();
    assert!(c.members.contains("dave") && c.members.contains("erin") && !c.members.contains("bob"));
    assert_eq!(c.member_count, Some(30));
    assert_eq!(s.online, 40);
    let fx = server(
        &mut s,
        "presence",
        json!({"event": "summary", "user": null, "room": null, "online": 900, "members": null,
               "joined": null, "left": [], "joinedCount": 850, "leftCount": 0}),
    );
    assert_eq!(
        requests(&fx)
            .into_iter()
            .map(|(_, e)| e)
            .collect::<Vec<_>>(),
        vec![ClientEvent::PresenceGet]
    );
    assert_eq!(s.online, 900);
}

#[test]
fn direct_messages_open_a_conversation_with_the_peer() {
    let mut s = in_general();
    server(
        &mut s,
        "dm:message",
        json!({"id": "4", "ts": T0, "from": "Bob", "to": "alice", "text": "psst"}),
    );
    let dm = ConvId::Dm("Bob".into());
    assert_eq!(s.conv(&dm).unwrap().unread, 1);
    // /msg with another case reaches the same conversation.
    let fx = enter_line(&mut s, "/msg bob hi back");
    assert_eq!(s.active, dm);
    assert_eq!(
        requests(&fx).pop().map(|(_, e)| e),
        Some(ClientEvent::DmMessage(DmRequest {
            to: "Bob".into(),
            text: "hi back".into(),
            action: false,
            ..Default::default()
        }))
    );
    assert_eq!(texts(&s, &dm), vec!["psst", "hi back"]);
    ack_sent(&mut s, &fx, "5");
    // Plain text in a DM conversation is a DM.
    let fx = enter_line(&mut s, "more");
    assert!(matches!(
        requests(&fx).pop(),
        Some((_, ClientEvent::DmMessage(_)))
    ));
}

#[test]
fn text_from_others_is_sanitised() {
    let mut s = in_general();
    server(
        &mut s,
        "room:message",
        room_msg("1", "bob", "#general", "red\u{1b}[31m alert\u{7}"),
    );
    assert_eq!(texts(&s, &general()), vec!["red[31m alert"]);
    server(
        &mut s,
        "chat:error",
        json!({"code": "internal", "message": "bad\u{1b}[2J", "context": {}}),
    );
    assert_eq!(s.toasts.last().unwrap().text, "internal: bad[2J");
}

#[test]
fn feed_commands_and_local_checks() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "/all hello world");
    assert_eq!(
        requests(&fx).pop().map(|(_, e)| e),
        Some(ClientEvent::GlobalMessage(TextRequest {
            text: "hello world".into(),
            action: false,
            ..Default::default()
        }))
    );
    ack_sent(&mut s, &fx, "1");
    let fx = enter_line(&mut s, "/bcast to the rest");
    assert_eq!(
        requests(&fx).pop().map(|(_, e)| e),
        Some(ClientEvent::BroadcastMessage(TextRequest {
            text: "to the rest".into(),
            action: false,
            ..Default::default()
        }))
    );
    assert_eq!(texts(&s, &ConvId::Feed), vec!["hello world", "to the rest"]);
    assert!(s.conv(&ConvId::Feed).unwrap().entries[1].broadcast);
    // Local checks answer at once with a toast, nothing is sent.
    let n = s.toasts.len();
    assert!(requests(&enter_line(&mut s, "/join #Bad!")).is_empty());
    assert!(requests(&enter_line(&mut s, "/msg alice hi")).is_empty());
    assert!(requests(&enter_line(&mut s, "/frobnicate")).is_empty());
    assert_eq!(s.toasts.len(), (n + 3).min(TOASTS_MAX));
}

#[test]
fn toasts_stack_expire_and_esc_dismisses() {
    let mut s = in_general();
    enter_line(&mut s, "/nope1");
    advance(&mut s, Duration::from_secs(3));
    enter_line(&mut s, "/nope2");
    assert_eq!(s.toasts.len(), 2);
    advance(&mut s, Duration::from_secs(3));
    assert_eq!(s.toasts.len(), 1, "the first is gone after {TOAST_TTL:?}");
    update(&mut s, key(KeyCode::Esc));
    assert!(s.toasts.is_empty());
}

#[test]
fn leave_removes_the_room_and_goes_elsewhere() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "/leave");
    let (req, ev) = requests(&fx).pop().unwrap();
    assert_eq!(
        ev,
        ClientEvent::RoomLeave(RoomRequest {
            room: "#general".into()
        })
    );
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Left(chat_shared::LeaveAck {
                room: "#general".into(),
            })),
        },
    );
    assert!(s.conv(&general()).is_none());
    assert_eq!(s.active, ConvId::Feed);
}

#[test]
fn a_fresh_session_after_a_loss_rejoins_my_rooms() {
    let mut s = in_general();
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    let fx = session(&mut s, false, &[], 0);
    let events: Vec<ClientEvent> = requests(&fx).into_iter().map(|(_, e)| e).collect();
    assert!(events.contains(&ClientEvent::RoomJoin(RoomRequest {
        room: "#general".into()
    })));
    // A recovered one does not.
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    let fx = session(&mut s, true, &["#general"], 2);
    assert!(
        !requests(&fx)
            .iter()
            .any(|(_, e)| matches!(e, ClientEvent::RoomJoin(_)))
    );
}

/// (v3) An account's rooms are the server's to say: a room its fresh
/// session no longer lists (left elsewhere, or taken away while it was
/// gone) is not joined again behind the person's back; it says so.
#[test]
fn a_fresh_account_session_does_not_rejoin_what_the_server_dropped() {
    let mut s = in_general();
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    let fx = server(
        &mut s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "tok", "recovered": false,
               "rooms": [], "missed": 0, "truncated": false, "role": "user", "blocked": []}),
    );
    assert!(
        !requests(&fx)
            .iter()
            .any(|(_, e)| matches!(e, ClientEvent::RoomJoin(_))),
        "joined again: {fx:?}"
    );
    let lines: Vec<String> = s
        .conv(&general())
        .unwrap()
        .entries
        .iter()
        .map(|e| e.text.clone())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("no longer in #general")),
        "{lines:?}"
    );
}

#[test]
fn input_history_paste_and_editing() {
    let mut s = in_general();
    enter_line(&mut s, "first");
    enter_line(&mut s, "second");
    type_text(&mut s, "draft");
    update(&mut s, key(KeyCode::Up));
    assert_eq!(s.editor.input, "second");
    update(&mut s, key(KeyCode::Up));
    assert_eq!(s.editor.input, "first");
    update(&mut s, key(KeyCode::Up));
    update(&mut s, key(KeyCode::Up));
    assert_eq!(s.editor.input, "/join general", "the oldest line stays");
    update(&mut s, key(KeyCode::Down));
    update(&mut s, key(KeyCode::Down));
    assert_eq!(s.editor.input, "second");
    update(&mut s, key(KeyCode::Down));
    assert_eq!(s.editor.input, "draft", "the draft comes back");
    // A paste with newlines is inserted and never sent.
    update(&mut s, ctrl('u'));
    let fx = update(&mut s, Input::Paste("line one\r\nline two\n".into()));
    assert!(requests(&fx).is_empty());
    assert_eq!(s.editor.input, "line one\nline two\n");
    // Wide characters: the cursor counts chars.
    update(&mut s, ctrl('u'));
    type_text(&mut s, "日本");
    update(&mut s, key(KeyCode::Left));
    type_text(&mut s, "x");
    assert_eq!(s.editor.input, "日x本");
    update(&mut s, key(KeyCode::Backspace));
    update(&mut s, key(KeyCode::Delete));
    assert_eq!(s.editor.input, "日");
}

#[test]
fn tab_completes_commands_rooms_and_users_and_cycles() {
    let mut s = in_general();
    server(
        &mut s,
        "presence",
        json!({"event": "connect", "user": "bobby", "room": null, "online": 3, "members": null}),
    );
    type_text(&mut s, "/jo");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "/join ");
    type_text(&mut s, "#ge");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "/join #general ");
    update(&mut s, ctrl('u'));
    type_text(&mut s, "hi bo");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "hi bob");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "hi bobby");
    update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "hi bob");
}

#[test]
fn conversation_switching_keys() {
    let mut s = in_general();
    enter_line(&mut s, "/msg bob");
    assert_eq!(
        s.convs.iter().map(|c| c.id.label()).collect::<Vec<_>>(),
        vec!["* feed", "#general", "@bob"]
    );
    update(&mut s, ctrl('n'));
    assert_eq!(s.active, ConvId::Feed, "wraps around");
    update(&mut s, ctrl('p'));
    assert_eq!(s.active, ConvId::Dm("bob".into()));
    update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT)),
    );
    assert_eq!(s.active, general());
    update(
        &mut s,
        Input::Key(KeyEvent::new(KeyCode::Char('9'), KeyModifiers::ALT)),
    );
    assert_eq!(
        s.active,
        general(),
        "no ninth conversation: nothing happens"
    );
}

#[test]
fn scrolling_is_bounded() {
    let mut s = in_general();
    s.max_scroll = 12;
    s.page = 5;
    update(&mut s, key(KeyCode::PageUp));
    assert_eq!(s.active_conv().scroll, 5);
    update(&mut s, Input::Wheel(3));
    assert_eq!(s.active_conv().scroll, 12);
    update(&mut s, Input::Wheel(-1));
    assert_eq!(s.active_conv().scroll, 9);
    update(&mut s, key(KeyCode::PageDown));
    update(&mut s, key(KeyCode::PageDown));
    assert_eq!(s.active_conv().scroll, 0);
}

#[test]
fn ctrl_c_and_quit_say_goodbye() {
    let mut s = in_general();
    let fx = update(&mut s, ctrl('c'));
    assert!(fx.contains(&Effect::Quit));
    assert!(s.quit);
    let mut s = in_general();
    assert!(enter_line(&mut s, "/quit").contains(&Effect::Quit));
}

#[test]
fn help_rooms_and_who_print_system_lines() {
    let mut s = in_general();
    enter_line(&mut s, "/help");
    assert!(
        texts(&s, &general())
            .iter()
            .any(|t| t.contains("/join #room"))
    );
    let fx = enter_line(&mut s, "/rooms");
    let (req, _) = requests(&fx).pop().unwrap();
    let list = chat_shared::RoomListAck {
        rooms: vec![RoomCount::new("#general", 2)],
    };
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Rooms(list)),
        },
    );
    assert_eq!(
        texts(&s, &general()).last().map(String::as_str),
        Some("rooms: #general (2)")
    );
    let fx = enter_line(&mut s, "/who");
    let (req, _) = requests(&fx).pop().unwrap();
    let snap = PresenceSnapshot {
        online: 2,
        users: vec!["alice".into(), "bob".into()],
        rooms: vec![],
    };
    net(
        &mut s,
        NetEvent::Ack {
            req,
            result: Ok(AckReply::Presence(snap)),
        },
    );
    assert_eq!(
        texts(&s, &general()).last().map(String::as_str),
        Some("online (2): alice, bob")
    );
}

#[test]
fn odd_server_data_never_panics() {
    let mut s = in_general();
    // Names outside the rules and unknown rooms are ignored, not trusted.
    server(
        &mut s,
        "typing",
        json!({"from": "\u{1b}evil", "room": "#general", "typing": true}),
    );
    server(
        &mut s,
        "typing",
        json!({"from": "bob", "room": "#nowhere", "typing": true}),
    );
    server(
        &mut s,
        "presence",
        json!({"event": "join", "user": null, "room": "#general", "online": 1, "members": 1}),
    );
    server(
        &mut s,
        "room:message",
        room_msg("1", "bob", "not a room!", "x"),
    );
    let _ = PresenceSummary {
        joined: None,
        left: None,
        joined_count: 0,
        left_count: 0,
    };
    net(
        &mut s,
        NetEvent::Ack {
            req: 999,
            result: Err(AckError::Timeout),
        },
    );
    assert!(s.typing_names().is_empty());
}

#[test]
fn a_restarted_server_numbering_from_one_again_loses_nothing() {
    let mut s = in_general();
    server(
        &mut s,
        "room:message",
        room_msg("1", "bob", "#general", "before the restart"),
    );
    server(
        &mut s,
        "room:message",
        room_msg("2", "bob", "#general", "also before"),
    );
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    let fx = session(&mut s, false, &[], 0);
    let (req, _) = requests(&fx)
        .into_iter()
        .find(|(_, e)| matches!(e, ClientEvent::RoomJoin(_)))
        .expect("a re-join");
    // The re-join's history: the old server's message 2 (a session that
    // merely expired), and the new server's own message 1.
    let history = vec![
        RoomMessage {
            id: "2".into(),
            ts: T0,
            from: "bob".into(),
            room: "#general".into(),
            text: "also before".into(),
            replayed: None,
            action: None,
            ..Default::default()
        },
        RoomMessage {
            id: "1".into(),
            ts: T0,
            from: "carol".into(),
            room: "#general".into(),
            text: "after the restart".into(),
            replayed: None,
            action: None,
            ..Default::default()
        },
    ];
    let ack = JoinAck {
        room: "#general".into(),
        members: vec!["alice".into()],
        history,
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
    assert_eq!(
        texts(&s, &general()),
        vec!["before the restart", "also before", "after the restart"]
    );
}

#[test]
fn nothing_typed_before_the_first_session_goes_out_later() {
    let mut s = new_state();
    // No session yet (the server asks for a password, or turns us away):
    // a line typed into the input is not queued as a message.
    assert!(requests(&enter_line(&mut s, "my secret password")).is_empty());
    assert_eq!(s.outbox_len(), 0);
    let fx = session(&mut s, false, &[], 0);
    assert!(
        !format!("{:?}", requests(&fx)).contains("secret"),
        "nothing typed before goes out: {fx:?}"
    );
    // Once there has been a session, lines typed while it is away wait.
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    enter_line(&mut s, "typed while reconnecting");
    assert_eq!(s.queued_len(), 1);
}
