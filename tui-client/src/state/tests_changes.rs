//! Unit tests of replies, edits, deletions and reactions (v3): the
//! selection and which message each command acts on, `s/old/new/`, the
//! question before a deletion, `message:update` and folded history
//! applied to the lines, a deleted text gone from everything the state
//! keeps, refusals in plain words, and Tab on emoji names.

use chat_shared::{AckError, ChatError, ErrorCode, HistoryAck, HistoryMessage, JoinAck, SentAck};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use tokio::time::Instant;

use super::testing::{T0, enter_line, key, net, notifications, requests, server, type_text};
use super::*;

fn general() -> ConvId {
    ConvId::Room("#general".into())
}

fn alt(code: KeyCode) -> Input {
    Input::Key(KeyEvent::new(code, KeyModifiers::ALT))
}

fn room_msg(id: &str, from: &str, text: &str) -> chat_shared::RoomMessage {
    chat_shared::RoomMessage {
        id: id.into(),
        ts: T0,
        from: from.into(),
        room: "#general".into(),
        text: text.into(),
        ..Default::default()
    }
}

fn ack(s: &mut State, req: u64, result: Result<AckReply, AckError>) -> Vec<Effect> {
    net(s, NetEvent::Ack { req, result })
}

fn sent(id: &str) -> Result<AckReply, AckError> {
    Ok(AckReply::Sent(SentAck {
        id: id.into(),
        ts: T0 + 1,
        queued: None,
    }))
}

/// Connected as alice, in #general (open), whose history holds bob's
/// question (1), alice's pasted secret (2) and carol's greeting (3).
fn in_general_with(history: Vec<chat_shared::RoomMessage>) -> State {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    server(
        &mut s,
        "session",
        json!({"sid": "x", "username": "alice", "session": "t", "recovered": false,
               "rooms": [], "missed": 0, "truncated": false}),
    );
    let fx = enter_line(&mut s, "/join #general");
    let (req, _) = requests(&fx).pop().expect("join");
    let ack_body = JoinAck {
        room: "#general".into(),
        members: vec!["alice".into(), "bob".into(), "carol".into()],
        history,
        topic: String::new(),
        private: false,
        role: None,
    };
    ack(&mut s, req, Ok(AckReply::Joined(ack_body)));
    assert_eq!(s.active, general());
    s
}

fn in_general() -> State {
    in_general_with(vec![
        room_msg("1", "bob", "where is the deploy doc?"),
        room_msg("2", "alice", "my password is hunter2"),
        room_msg("3", "carol", "good morning"),
    ])
}

fn line<'a>(s: &'a State, id: &str) -> &'a Entry {
    s.conv(&general())
        .and_then(|c| c.entries.iter().find(|e| e.id.as_deref() == Some(id)))
        .expect("the line is held")
}

/// The changes and messages among the requests: `(req, event)`.
fn change_requests(fx: &[Effect]) -> Vec<(u64, ClientEvent)> {
    requests(fx)
        .into_iter()
        .filter(|(_, ev)| {
            matches!(
                ev,
                ClientEvent::MessageEdit(_)
                    | ClientEvent::MessageDelete(_)
                    | ClientEvent::MessageReact(_)
                    | ClientEvent::RoomMessage(_)
                    | ClientEvent::DmMessage(_)
                    | ClientEvent::GlobalMessage(_)
            )
        })
        .collect()
}

fn only_change(fx: &[Effect]) -> (u64, ClientEvent) {
    let mut all = change_requests(fx);
    assert_eq!(all.len(), 1, "one request: {all:?}");
    all.remove(0)
}

fn last_toast(s: &State) -> String {
    s.toasts.last().map(|t| t.text.clone()).unwrap_or_default()
}

fn update(s: &mut State, v: serde_json::Value) -> Vec<Effect> {
    server(s, "message:update", v)
}

// ------------------------------------------------------------ selection

#[test]
fn alt_up_and_down_move_a_selection_over_messages_only() {
    let mut s = in_general();
    // A notice and a line still on its way are not messages to act on.
    enter_line(&mut s, "/help");
    enter_line(&mut s, "on its way");
    assert!(s.selected().is_none());
    super::update(&mut s, alt(KeyCode::Up));
    assert_eq!(s.selected().and_then(|e| e.id.as_deref()), Some("3"));
    super::update(&mut s, alt(KeyCode::Up));
    assert_eq!(s.selected().and_then(|e| e.id.as_deref()), Some("2"));
    super::update(&mut s, alt(KeyCode::Up));
    super::update(&mut s, alt(KeyCode::Up));
    // The oldest stays selected at the top.
    assert_eq!(s.selected().and_then(|e| e.id.as_deref()), Some("1"));
    super::update(&mut s, alt(KeyCode::Down));
    assert_eq!(s.selected().and_then(|e| e.id.as_deref()), Some("2"));
    let hint = s.selection_text().expect("the hint says what is selected");
    assert!(hint.contains("alice: my password is hunter2"), "{hint}");
    // Down past the newest message ends the selection.
    super::update(&mut s, alt(KeyCode::Down));
    super::update(&mut s, alt(KeyCode::Down));
    assert!(s.selected().is_none());
    // Esc clears it.
    super::update(&mut s, alt(KeyCode::Up));
    assert!(s.selected().is_some());
    super::update(&mut s, key(KeyCode::Esc));
    assert!(s.selected().is_none());
}

#[test]
fn up_and_down_stay_the_input_history() {
    let mut s = in_general();
    enter_line(&mut s, "an earlier line");
    super::update(&mut s, key(KeyCode::Up));
    assert_eq!(s.editor.input, "an earlier line");
    assert!(s.selected().is_none(), "plain Up selects nothing");
}

#[test]
fn another_conversation_has_no_selection() {
    let mut s = in_general();
    super::update(&mut s, alt(KeyCode::Up));
    assert!(s.selected().is_some());
    super::update(&mut s, super::testing::ctrl('n'));
    assert_ne!(s.active, general());
    assert!(s.selected().is_none());
    assert_eq!(s.selection.seq, None);
}

// ------------------------------------------------------------ which line

#[test]
fn reply_answers_the_newest_of_someone_else_or_the_selected_one() {
    let mut s = in_general();
    // Mine is not the newest of someone else: carol's greeting is.
    let (_, ev) = only_change(&enter_line(&mut s, "/reply morning!"));
    let ClientEvent::RoomMessage(m) = ev else {
        panic!("a room message")
    };
    assert_eq!(
        (m.text.as_str(), m.reply_to.as_deref()),
        ("morning!", Some("3"))
    );
    // The line shows at once, and says what it answers.
    let c = s.conv(&general()).unwrap();
    let pending = c.entries.back().unwrap();
    assert_eq!(pending.changes.reply_to.as_deref(), Some("3"));
    assert!(pending.id.is_none());

    // Selected (bob's question, two up): that one.
    let mut s = in_general();
    for _ in 0..3 {
        super::update(&mut s, alt(KeyCode::Up));
    }
    let (_, ev) = only_change(&enter_line(&mut s, "/reply in the wiki"));
    let ClientEvent::RoomMessage(m) = ev else {
        panic!("a room message")
    };
    assert_eq!(m.reply_to.as_deref(), Some("1"));
    assert!(s.selected().is_none(), "the selection is used up");
}

#[test]
fn edit_takes_my_newest_or_the_selected_one_if_mine() {
    let mut s = in_general();
    let (_, ev) = only_change(&enter_line(&mut s, "/edit my password is secret"));
    assert_eq!(
        ev,
        ClientEvent::MessageEdit(chat_shared::MessageEditRequest {
            id: "2".into(),
            text: "my password is secret".into()
        })
    );
    // Someone else's selected line: refused here, nothing sent.
    super::update(&mut s, alt(KeyCode::Up));
    assert_eq!(s.selected().map(|e| e.from.as_str()), Some("carol"));
    assert!(change_requests(&enter_line(&mut s, "/edit nope")).is_empty());
    assert!(
        last_toast(&s).contains("you can only edit your own messages"),
        "{}",
        last_toast(&s)
    );
}

#[test]
fn delete_and_react_targets() {
    let mut s = in_general();
    // /react: the newest message, whoever wrote it.
    let (_, ev) = only_change(&enter_line(&mut s, "/react 👍"));
    assert_eq!(
        ev,
        ClientEvent::MessageReact(chat_shared::MessageReactRequest {
            id: "3".into(),
            emoji: "👍".into(),
            on: true
        })
    );
    // /delete: my newest.
    enter_line(&mut s, "/delete");
    assert!(matches!(&s.confirm, Some(Confirm::Delete { id, .. }) if id == "2"));
    super::update(&mut s, key(KeyCode::Char('n')));
    // /delete of a selected line of someone else (an op may): that one.
    for _ in 0..3 {
        super::update(&mut s, alt(KeyCode::Up));
    }
    enter_line(&mut s, "/delete");
    assert!(matches!(&s.confirm, Some(Confirm::Delete { id, .. }) if id == "1"));
}

#[test]
fn a_line_still_on_its_way_cannot_be_targeted() {
    let mut s = in_general();
    let fx = enter_line(&mut s, "helo");
    assert_eq!(change_requests(&fx).len(), 1, "the message goes out");
    // Not acked yet: my newest has no id, so no edit goes, and it is said.
    assert!(change_requests(&enter_line(&mut s, "s/helo/hello/")).is_empty());
    assert!(
        last_toast(&s).contains("not sent yet"),
        "{}",
        last_toast(&s)
    );
    assert!(change_requests(&enter_line(&mut s, "/react :+1:")).is_empty());
    assert!(
        last_toast(&s).contains("not sent yet"),
        "{}",
        last_toast(&s)
    );
}

#[test]
fn nothing_to_act_on_is_said() {
    let mut s = in_general_with(vec![room_msg("1", "alice", "only me here")]);
    assert!(change_requests(&enter_line(&mut s, "/reply hi")).is_empty());
    assert!(
        last_toast(&s).contains("nothing to reply to"),
        "{}",
        last_toast(&s)
    );
    let mut s = in_general_with(vec![room_msg("1", "bob", "only bob here")]);
    assert!(change_requests(&enter_line(&mut s, "/edit x")).is_empty());
    assert!(last_toast(&s).contains("no message here to edit"));
    enter_line(&mut s, "/delete");
    assert!(s.confirm.is_none());
    assert!(last_toast(&s).contains("no message here to delete"));
}

// ------------------------------------------------------------ s/old/new/

fn edit_text(fx: &[Effect]) -> (String, String) {
    match only_change(fx).1 {
        ClientEvent::MessageEdit(e) => (e.id, e.text),
        other => panic!("an edit, not {other:?}"),
    }
}

#[test]
fn substitution_edits_my_last_message() {
    let mut s = in_general_with(vec![
        room_msg("1", "alice", "helo helo world"),
        room_msg("2", "bob", "hi"),
    ]);
    assert_eq!(
        edit_text(&enter_line(&mut s, "s/helo/hello/")),
        ("1".into(), "hello helo world".into())
    );
    assert_eq!(
        edit_text(&enter_line(&mut s, "s/helo/hello/g")),
        ("1".into(), "hello hello world".into())
    );
    assert_eq!(
        edit_text(&enter_line(&mut s, r"s/world/a\/b/")),
        ("1".into(), "helo helo a/b".into())
    );
}

#[test]
fn a_substitution_that_finds_nothing_says_so() {
    let mut s = in_general_with(vec![room_msg("1", "alice", "helo world")]);
    assert!(change_requests(&enter_line(&mut s, "s/typo/fixed/")).is_empty());
    let toast = last_toast(&s);
    assert!(
        toast.contains("\"typo\" is not in your last message"),
        "{toast}"
    );
    // An empty old is a usage, and one that would empty the text is refused.
    assert!(change_requests(&enter_line(&mut s, "s//x/")).is_empty());
    assert!(last_toast(&s).starts_with("usage: s/old/new/"));
    assert!(change_requests(&enter_line(&mut s, "s/helo world//")).is_empty());
    assert!(last_toast(&s).contains("/delete"), "{}", last_toast(&s));
    // A line starting with a space is a message (sent trimmed, as any).
    let fx = enter_line(&mut s, " s/helo/x/");
    assert!(matches!(only_change(&fx).1, ClientEvent::RoomMessage(m) if m.text == "s/helo/x/"));
}

// ------------------------------------------------------------ delete

#[test]
fn delete_asks_first_and_n_sends_nothing() {
    let mut s = in_general();
    enter_line(&mut s, "/delete");
    let q = s
        .confirm
        .as_ref()
        .map(Confirm::question)
        .unwrap_or_default();
    assert!(q.starts_with("delete? (y/n)"), "{q}");
    assert!(q.contains("alice: my password is hunter2"), "{q}");
    let fx = super::update(&mut s, key(KeyCode::Char('n')));
    assert!(change_requests(&fx).is_empty());
    assert!(s.confirm.is_none());
    assert_eq!(line(&s, "2").text, "my password is hunter2");
}

#[test]
fn delete_confirmed_erases_the_text_everywhere_the_client_keeps_it() {
    let mut s = in_general();
    // The secret was typed here once, is in the input history, and is
    // being searched for.
    enter_line(&mut s, "hunter2 again, sorry");
    enter_line(&mut s, "/search hunter2");
    assert_eq!(s.search.as_ref().map(|x| x.hits.len()), Some(2));
    // Delete the selected line 2 (the older one).
    for _ in 0..2 {
        super::update(&mut s, alt(KeyCode::Up));
    }
    // The pending line (no id) is skipped: 3, then 2.
    assert_eq!(s.selected().and_then(|e| e.id.as_deref()), Some("2"));
    enter_line(&mut s, "/delete");
    let fx = super::update(&mut s, key(KeyCode::Char('y')));
    let (req, ev) = only_change(&fx);
    assert_eq!(
        ev,
        ClientEvent::MessageDelete(chat_shared::MessageDeleteRequest { id: "2".into() })
    );
    ack(&mut s, req, sent("9"));
    let e = line(&s, "2");
    assert!(e.changes.deleted);
    assert_eq!(e.text, "");
    assert!(e.changes.reactions.is_empty());
    // Search: only the other line matches now.
    let hits = s
        .search
        .as_ref()
        .map(|x| x.hits.clone())
        .unwrap_or_default();
    assert_eq!(hits.len(), 1);
    assert_ne!(Some(hits[0]), Some(e.seq));
    // Nothing of the state holds the text any more: lines, input history.
    let c = s.conv(&general()).unwrap();
    assert!(
        !c.entries
            .iter()
            .any(|x| x.text.contains("my password is hunter2"))
    );
    assert!(
        !s.editor
            .history
            .iter()
            .any(|l| l.contains("my password is hunter2"))
    );
    assert!(!format!("{s:?}").contains("my password is hunter2"));
}

#[test]
fn the_typed_secret_leaves_the_input_history_when_deleted() {
    let mut s = in_general();
    let (req, _) = only_change(&enter_line(&mut s, "token=abc123"));
    ack(&mut s, req, sent("4"));
    enter_line(&mut s, "/delete");
    let (req, _) = only_change(&super::update(&mut s, key(KeyCode::Char('y'))));
    ack(&mut s, req, sent("5"));
    assert!(!s.editor.history.iter().any(|l| l.contains("token=abc123")));
    // Up brings back the lines typed after it, never the secret.
    super::update(&mut s, key(KeyCode::Up));
    super::update(&mut s, key(KeyCode::Up));
    super::update(&mut s, key(KeyCode::Up));
    assert!(!s.editor.input.contains("abc123"), "{}", s.editor.input);
    assert!(!format!("{s:?}").contains("token=abc123"));
}

#[test]
fn every_version_of_an_edited_line_leaves_the_input_history_when_deleted() {
    let mut s = in_general();
    let (req, _) = only_change(&enter_line(&mut s, "a short ok"));
    ack(&mut s, req, sent("4"));
    let (req, _) = only_change(&enter_line(&mut s, "the key is sk-live-4242"));
    ack(&mut s, req, sent("5"));
    let (req, _) = only_change(&enter_line(&mut s, "s/sk-live-4242/[redacted]/"));
    ack(&mut s, req, sent("6"));
    assert_eq!(line(&s, "5").text, "the key is [redacted]");
    enter_line(&mut s, "/delete");
    let (req, _) = only_change(&super::update(&mut s, key(KeyCode::Char('y'))));
    ack(&mut s, req, sent("7"));
    assert!(line(&s, "5").changes.deleted);
    assert!(
        !s.editor.history.iter().any(|l| l.contains("sk-live-4242")),
        "{:?}",
        s.editor.history
    );
    assert!(!format!("{s:?}").contains("sk-live-4242"));
    // What was typed about other things stays.
    assert!(s.editor.history.iter().any(|l| l == "a short ok"));
}

#[test]
fn a_question_about_a_line_deleted_meanwhile_goes() {
    let mut s = in_general();
    enter_line(&mut s, "/delete");
    assert!(s.confirm.is_some());
    update(
        &mut s,
        json!({"id": "10", "ts": T0, "target": "2", "kind": "delete", "by": "alice", "room": "#general"}),
    );
    assert!(s.confirm.is_none());
    assert!(!format!("{s:?}").contains("hunter2"));
}

// ------------------------------------------------------------ updates

#[test]
fn updates_apply_edits_deletions_and_reactions() {
    let mut s = in_general();
    update(
        &mut s,
        json!({"id": "10", "ts": T0, "target": "1", "kind": "edit", "by": "bob",
               "room": "#general", "text": "where is the release doc?"}),
    );
    let e = line(&s, "1");
    assert_eq!(e.text, "where is the release doc?");
    assert!(e.changes.edited);

    let react = |id: &str, by: &str, emoji: &str, on: bool| {
        json!({"id": id, "ts": T0, "target": "3", "kind": "react", "by": by,
               "room": "#general", "emoji": emoji, "on": on})
    };
    update(&mut s, react("11", "bob", "👍", true));
    update(&mut s, react("12", "alice", "👍", true));
    update(&mut s, react("13", "bob", "🎉", true));
    let r = &line(&s, "3").changes.reactions;
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].emoji.as_str(), r[0].count()), ("👍", 2));
    assert!(r[0].holds("alice") && !r[1].holds("alice"));
    // Off takes that user out; a count of none takes the emoji away.
    update(&mut s, react("14", "bob", "🎉", false));
    update(&mut s, react("15", "bob", "👍", false));
    let r = &line(&s, "3").changes.reactions;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].count(), 1);

    update(
        &mut s,
        json!({"id": "16", "ts": T0, "target": "3", "kind": "delete", "by": "carol", "room": "#general"}),
    );
    let e = line(&s, "3");
    assert!(e.changes.deleted && e.text.is_empty() && e.changes.reactions.is_empty());
    // A deleted line takes no edit or reaction after.
    update(
        &mut s,
        json!({"id": "17", "ts": T0, "target": "3", "kind": "edit", "by": "carol",
               "room": "#general", "text": "back again"}),
    );
    update(&mut s, react("18", "bob", "👍", true));
    let e = line(&s, "3");
    assert!(e.text.is_empty() && e.changes.reactions.is_empty());
}

#[test]
fn replayed_updates_apply_and_an_unknown_id_is_ignored() {
    let mut s = in_general();
    let before: Vec<Entry> = s
        .conv(&general())
        .unwrap()
        .entries
        .iter()
        .cloned()
        .collect();
    update(
        &mut s,
        json!({"id": "20", "ts": T0, "target": "999", "kind": "delete", "by": "bob", "room": "#general"}),
    );
    update(
        &mut s,
        json!({"id": "21", "ts": T0, "target": "1", "kind": "delete", "by": "bob", "room": "#nowhere"}),
    );
    let after: Vec<Entry> = s
        .conv(&general())
        .unwrap()
        .entries
        .iter()
        .cloned()
        .collect();
    assert_eq!(before, after);
    // A replay after a reconnect, in order: edit then delete.
    server(
        &mut s,
        "session",
        json!({"sid": "y", "username": "alice", "session": "t", "recovered": true,
               "rooms": ["#general"], "missed": 2, "truncated": false}),
    );
    update(
        &mut s,
        json!({"id": "22", "ts": T0, "target": "1", "kind": "edit", "by": "bob",
               "room": "#general", "text": "edited while away", "replayed": true}),
    );
    assert_eq!(line(&s, "1").text, "edited while away");
    update(
        &mut s,
        json!({"id": "23", "ts": T0, "target": "1", "kind": "delete", "by": "bob",
               "room": "#general", "replayed": true}),
    );
    assert!(line(&s, "1").changes.deleted);
}

#[test]
fn an_older_edit_arriving_late_does_not_undo_a_newer_one() {
    let mut s = in_general();
    let edit = |id: &str, text: &str| {
        json!({"id": id, "ts": T0, "target": "1", "kind": "edit", "by": "bob",
               "room": "#general", "text": text})
    };
    update(&mut s, edit("31", "newest"));
    update(&mut s, edit("30", "older"));
    assert_eq!(line(&s, "1").text, "newest");
}

#[test]
fn dm_and_feed_updates_find_their_conversation() {
    let mut s = in_general();
    server(
        &mut s,
        "dm:message",
        json!({"id": "40", "ts": T0, "from": "bob", "to": "alice", "text": "psst: the key is 42"}),
    );
    server(
        &mut s,
        "global:message",
        json!({"id": "41", "ts": T0, "from": "carol", "text": "hello world"}),
    );
    update(
        &mut s,
        json!({"id": "42", "ts": T0, "target": "40", "kind": "delete", "by": "bob", "dm": ["alice", "bob"]}),
    );
    update(
        &mut s,
        json!({"id": "43", "ts": T0, "target": "41", "kind": "edit", "by": "carol", "text": "hello all"}),
    );
    let dm = s.conv(&ConvId::Dm("bob".into())).unwrap();
    assert!(dm.entries[0].changes.deleted && dm.entries[0].text.is_empty());
    let feed = s.conv(&ConvId::Feed).unwrap();
    let e = feed
        .entries
        .iter()
        .find(|e| e.id.as_deref() == Some("41"))
        .unwrap();
    assert_eq!(e.text, "hello all");
}

#[test]
fn history_brings_messages_as_they_stand() {
    let mut s = in_general_with(vec![
        chat_shared::RoomMessage {
            edited: Some(T0 + 5),
            ..room_msg("1", "bob", "fixed text")
        },
        chat_shared::RoomMessage {
            deleted: Some(true),
            // A server that sent the text anyway: it is not shown.
            ..room_msg("2", "bob", "should never show")
        },
        chat_shared::RoomMessage {
            reply_to: Some("1".into()),
            reactions: vec![chat_shared::Reaction {
                emoji: "👍".into(),
                count: 23,
                users: vec!["alice".into(), "bob".into()],
            }],
            ..room_msg("3", "carol", "agreed")
        },
    ]);
    assert!(line(&s, "1").changes.edited);
    assert!(line(&s, "2").changes.deleted && line(&s, "2").text.is_empty());
    let e = line(&s, "3");
    assert_eq!(e.changes.reply_to.as_deref(), Some("1"));
    assert_eq!(e.changes.reactions[0].count(), 23);
    assert!(e.changes.reactions[0].holds("alice"));
    // The same line again in a later page, deleted meanwhile: erased here.
    let fx = {
        s.conv_mut(&general()).unwrap().backlog = Backlog::Unknown;
        let _ = super::update(&mut s, key(KeyCode::Home));
        super::update(&mut s, key(KeyCode::Home))
    };
    let _ = fx;
    let req = *s
        .session
        .requests
        .iter()
        .find(|(_, r)| matches!(r, Request::History(_)))
        .map(|(k, _)| k)
        .expect("a history page is asked for");
    let page = HistoryAck {
        messages: vec![HistoryMessage::Room(chat_shared::RoomMessage {
            deleted: Some(true),
            ..room_msg("3", "carol", "")
        })],
        more: false,
    };
    ack(&mut s, req, Ok(AckReply::History(page)));
    let e = line(&s, "3");
    assert!(e.changes.deleted && e.text.is_empty());
    assert_eq!(
        s.conv(&general()).unwrap().entries.len(),
        3,
        "no second copy"
    );
}

#[test]
fn a_replayed_deleted_message_is_no_news() {
    let mut s = in_general();
    super::update(&mut s, super::testing::ctrl('n'));
    server(
        &mut s,
        "room:message",
        json!({"id": "50", "ts": T0, "from": "bob", "room": "#general", "deleted": true,
               "replayed": true}),
    );
    let c = s.conv(&general()).unwrap();
    assert!(c.entries.back().is_some_and(|e| e.changes.deleted));
    assert_eq!(c.unread, 0);
}

// ------------------------------------------------------------ acks

#[test]
fn an_acked_change_shows_at_once() {
    let mut s = in_general();
    let (req, _) = only_change(&enter_line(&mut s, "s/hunter2/********/"));
    ack(&mut s, req, sent("60"));
    let e = line(&s, "2");
    assert_eq!(e.text, "my password is ********");
    assert!(e.changes.edited);
    // The update of the same change, after: nothing more changes.
    update(
        &mut s,
        json!({"id": "60", "ts": T0, "target": "2", "kind": "edit", "by": "alice",
               "room": "#general", "text": "my password is ********"}),
    );
    assert_eq!(line(&s, "2").text, "my password is ********");

    let (req, _) = only_change(&enter_line(&mut s, "/react :tada:"));
    ack(&mut s, req, sent("61"));
    let r = line(&s, "3").changes.reaction("🎉").cloned().expect("held");
    assert!(r.holds("alice"));
    // /react on an emoji I hold takes it back.
    let (req, ev) = only_change(&enter_line(&mut s, "/react 🎉"));
    assert!(matches!(ev, ClientEvent::MessageReact(r) if !r.on));
    ack(&mut s, req, sent("62"));
    assert!(line(&s, "3").changes.reactions.is_empty());
}

#[test]
fn refusals_are_told_in_plain_words() {
    let cases = [
        (
            "/edit x",
            ErrorCode::EditWindowPassed,
            "message:edit",
            "too late to edit",
        ),
        (
            "/react 👍",
            ErrorCode::MessageNotFound,
            "message:react",
            "that message is gone",
        ),
        (
            "/edit x",
            ErrorCode::Forbidden,
            "message:edit",
            "only its author can edit",
        ),
        (
            "/react 👍",
            ErrorCode::InvalidPayload,
            "message:react",
            "not take that as a reaction",
        ),
        (
            "/edit x",
            ErrorCode::Muted,
            "message:edit",
            "you are muted in #general",
        ),
    ];
    for (typed, code, event, says) in cases {
        let mut s = in_general();
        let (req, _) = only_change(&enter_line(&mut s, typed));
        let err = ChatError::new(code, "refused", event).with("room", "#general");
        // The chat:error copy says nothing; the ack says it once.
        server(
            &mut s,
            "chat:error",
            serde_json::to_value(&err).expect("an error"),
        );
        assert!(s.toasts.is_empty(), "{code:?}: {:?}", s.toasts);
        ack(&mut s, req, Err(AckError::Refused(err)));
        assert_eq!(s.toasts.len(), 1);
        assert!(
            last_toast(&s).contains(says),
            "{code:?}: {}",
            last_toast(&s)
        );
        // Nothing changed here.
        assert!(!line(&s, "2").changes.edited);
        assert!(line(&s, "3").changes.reactions.is_empty());
    }
}

#[test]
fn a_change_while_disconnected_is_not_sent_and_is_said() {
    let mut s = in_general();
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    assert!(change_requests(&enter_line(&mut s, "/edit x")).is_empty());
    assert!(last_toast(&s).contains("not connected"));
}

#[test]
fn an_unknown_emoji_name_is_refused_here() {
    let mut s = in_general();
    assert!(change_requests(&enter_line(&mut s, "/react :nope:")).is_empty());
    assert!(
        last_toast(&s).contains("not an emoji"),
        "{}",
        last_toast(&s)
    );
    assert!(change_requests(&enter_line(&mut s, "/react")).is_empty());
    assert!(last_toast(&s).starts_with("usage: /react"));
}

// ------------------------------------------------------------ replies

#[test]
fn a_reply_to_my_line_is_news_for_me() {
    let mut s = in_general();
    super::update(&mut s, super::testing::ctrl('n'));
    let fx = server(
        &mut s,
        "room:message",
        json!({"id": "70", "ts": T0, "from": "bob", "room": "#general",
               "text": "please rotate it", "replyTo": "2"}),
    );
    assert_eq!(notifications(&fx).len(), 1);
    let c = s.conv(&general()).unwrap();
    assert!(c.mentioned);
    assert!(c.entries.back().is_some_and(|e| e.mention));
}

#[test]
fn alt_g_goes_to_the_line_a_reply_answers() {
    let mut s = in_general();
    server(
        &mut s,
        "room:message",
        json!({"id": "70", "ts": T0, "from": "carol", "room": "#general",
               "text": "it is in the wiki", "replyTo": "1"}),
    );
    server(
        &mut s,
        "room:message",
        json!({"id": "71", "ts": T0, "from": "bob", "room": "#general", "text": "thanks"}),
    );
    // Nothing selected: the newest reply's.
    super::update(&mut s, alt(KeyCode::Char('g')));
    assert_eq!(s.selected().and_then(|e| e.id.as_deref()), Some("1"));
    assert!(s.selection.reveal, "the pane scrolls to it");
    // A reply to a line not loaded: older history is asked for.
    server(
        &mut s,
        "room:message",
        json!({"id": "72", "ts": T0, "from": "bob", "room": "#general",
               "text": "about that", "replyTo": "0"}),
    );
    super::update(&mut s, key(KeyCode::Esc));
    let fx = super::update(&mut s, alt(KeyCode::Char('g')));
    assert!(
        requests(&fx)
            .iter()
            .any(|(_, ev)| matches!(ev, ClientEvent::History(_)))
    );
}

// ------------------------------------------------------------ Tab

#[test]
fn tab_completes_emoji_names() {
    let mut s = in_general();
    type_text(&mut s, "/react :+1:");
    super::update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "/react 👍 ");
    let mut s = in_general();
    type_text(&mut s, "nice :ta");
    super::update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "nice 🎉 ");
    // Several: Tab again is the next one.
    let mut s = in_general();
    type_text(&mut s, ":th");
    super::update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "👍");
    super::update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "👎");
    super::update(&mut s, key(KeyCode::Tab));
    assert_eq!(s.editor.input, "🤔");
}
