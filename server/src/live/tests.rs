//! The state alone: admissions, windows, replays and rooms, on a paused
//! clock where time matters.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::{Auth, ErrorCode, RoomCount};
use socketioxide::socket::Sid;

use super::ChatState;
use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{Destination, SessionRecord};

fn auth(name: &str) -> Auth {
    Auth {
        username: name.into(),
        session: None,
        offset: None,
        ..Default::default()
    }
}

fn resume(name: &str, token: &str, offset: Option<&str>) -> Auth {
    Auth {
        username: name.into(),
        session: Some(token.into()),
        offset: offset.map(Into::into),
        ..Default::default()
    }
}

fn state() -> Arc<ChatState> {
    ChatState::new(Config::default())
}

#[tokio::test]
async fn usernames_are_unique_case_insensitively() {
    let s = state();
    let a = s.admit(&auth("Alice"), Sid::new()).unwrap();
    assert_eq!(a.username, "Alice");
    assert!(!a.recovered);
    let err = s.admit(&auth("alice"), Sid::new()).unwrap_err();
    assert_eq!(err.code, ErrorCode::UsernameTaken);
    assert_eq!(s.online(), 1);
}

#[tokio::test]
async fn a_session_belongs_to_its_username() {
    let s = state();
    let a = s.admit(&auth("alice"), Sid::new()).unwrap();
    let err = s
        .admit(&resume("bob", &a.token, None), Sid::new())
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidSession);
    // An unknown token is no error: a fresh session if the name is free.
    let b = s.admit(&resume("bob", "nope", None), Sid::new()).unwrap();
    assert!(!b.recovered);
}

#[tokio::test(start_paused = true)]
async fn the_username_is_reserved_for_the_window_then_freed() {
    let s = state();
    let sid = Sid::new();
    let a = s.admit(&auth("alice"), sid).unwrap();
    s.join("alice", "#general").unwrap();
    let d = s.disconnect("alice", sid, false).unwrap();
    assert_eq!(d.rooms, vec![("#general".to_string(), 0)]);
    assert_eq!(s.online(), 0);
    assert_eq!(
        s.admit(&auth("alice"), Sid::new()).unwrap_err().code,
        ErrorCode::UsernameTaken
    );

    tokio::time::sleep(Duration::from_secs(119)).await;
    assert!(s.target("alice").is_some(), "still inside the 120 s window");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(s.target("alice").is_none(), "expired after the window");
    let again = s
        .admit(&resume("alice", &a.token, None), Sid::new())
        .unwrap();
    assert!(!again.recovered, "an expired token gives a fresh session");
    assert!(again.rooms.is_empty());
}

/// A timer left from an earlier session of the name must not cut a
/// later session's window short.
#[tokio::test(start_paused = true)]
async fn an_old_timer_does_not_end_a_later_session_of_the_name() {
    let s = state();
    let first = Sid::new();
    let a = s.admit(&auth("alice"), first).unwrap();
    s.disconnect("alice", first, false).unwrap(); // timer for t = 120 s
    let back = Sid::new();
    s.admit(&resume("alice", &a.token, None), back).unwrap();
    s.disconnect("alice", back, true).unwrap(); // planned: the session ends
    tokio::time::sleep(Duration::from_secs(60)).await;
    let later = Sid::new();
    s.admit(&auth("alice"), later).unwrap();
    s.disconnect("alice", later, false).unwrap(); // its window: until t = 180 s
    tokio::time::sleep(Duration::from_secs(70)).await; // t = 130 s
    assert!(
        s.target("alice").is_some(),
        "the later session keeps its whole window"
    );
    tokio::time::sleep(Duration::from_secs(51)).await;
    assert!(s.target("alice").is_none(), "and ends with it");
}

#[tokio::test(start_paused = true)]
async fn a_resume_inside_the_window_cancels_the_expiry() {
    let s = state();
    let sid = Sid::new();
    let a = s.admit(&auth("alice"), sid).unwrap();
    s.join("alice", "#general").unwrap();
    s.disconnect("alice", sid, false).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let back = s
        .admit(&resume("alice", &a.token, None), Sid::new())
        .unwrap();
    assert!(back.recovered);
    assert_eq!(back.rooms, vec!["#general"]);
    assert_eq!(s.members("#general"), 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(
        s.target("alice").is_some(),
        "the old timer must not end the resumed session"
    );
}

/// One sweeper ends every window on time, soonest first: a window noted
/// while it sleeps for a later one (a session taken up with 10 s left)
/// ends first, and thousands of absences cost no task each.
#[tokio::test(start_paused = true)]
async fn windows_end_in_their_own_order_whatever_order_they_were_noted_in() {
    let s = state();
    for i in 0..2000 {
        let (name, sid) = (format!("user{i}"), Sid::new());
        s.admit(&auth(&name), sid).unwrap();
        s.disconnect(&name, sid, false).unwrap(); // ends at t = 120 s
    }
    let rec = SessionRecord {
        token: "t".into(),
        username: "Bob".into(),
        since: 0,
        rooms: Default::default(),
        window_ends_at: Some(now_ms() + 10_000),
        account: false,
        meta: Default::default(),
    };
    assert!(s.adopt(&rec)); // ends at t = 10 s
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(
        s.target("bob").is_none(),
        "the later-noted, earlier window ended"
    );
    assert!(s.target("user0").is_some() && s.target("user1999").is_some());
    tokio::time::sleep(Duration::from_secs(110)).await;
    assert!((0..2000).all(|i| s.target(&format!("user{i}")).is_none()));
}

#[tokio::test]
async fn a_planned_leave_ends_the_session_at_once() {
    let s = state();
    let sid = Sid::new();
    let a = s.admit(&auth("alice"), sid).unwrap();
    s.disconnect("alice", sid, true).unwrap();
    assert!(s.target("alice").is_none());
    let b = s
        .admit(&resume("alice", &a.token, None), Sid::new())
        .unwrap();
    assert!(!b.recovered);
}

#[tokio::test]
async fn takeover_keeps_one_live_socket() {
    let s = state();
    let old = Sid::new();
    let a = s.admit(&auth("alice"), old).unwrap();
    let new = Sid::new();
    let b = s.admit(&resume("alice", &a.token, None), new).unwrap();
    assert_eq!(b.replaced, Some(old));
    assert_eq!(s.online(), 1);
    assert!(
        s.disconnect("alice", old, false).is_none(),
        "the replaced socket changes nothing"
    );
    assert!(s.is_current("alice", new));
}

#[tokio::test]
async fn replay_is_what_the_user_missed_in_order() {
    let s = state();
    let sid = Sid::new();
    let a = s.admit(&auth("alice"), sid).unwrap();
    s.admit(&auth("bob"), Sid::new()).unwrap();
    s.join("alice", "#a").unwrap();
    s.join("bob", "#a").unwrap();
    s.join("bob", "#b").unwrap();
    let seen = s.record("bob", "seen", Destination::Room("#a".into()), false);
    s.disconnect("alice", sid, false).unwrap();
    s.record("bob", "r1", Destination::Room("#a".into()), false);
    s.record("bob", "other room", Destination::Room("#b".into()), false);
    s.record("bob", "dm", Destination::Dm { to: "Alice".into() }, false);
    s.record("bob", "g", Destination::Global, false);
    s.record("bob", "b", Destination::Broadcast, false);
    s.record("alice", "own broadcast", Destination::Broadcast, false);

    let seen_id = seen.id.to_string();
    s.admit(&resume("alice", &a.token, Some(&seen_id)), Sid::new())
        .unwrap();
    let r = s.replay("alice", &a.token, Some(&seen_id));
    let texts: Vec<String> = r.messages.iter().map(|m| m.text.clone()).collect();
    assert_eq!(texts, vec!["r1", "dm", "g", "b"]);
    assert!(!r.truncated);
    assert_eq!(r.upto, 7);
}

#[tokio::test]
async fn replay_reads_what_the_log_no_longer_holds_from_the_store() {
    let s = ChatState::new(Config {
        replay_buffer: 3,
        ..Config::default()
    });
    let sid = Sid::new();
    let a = s.admit(&auth("alice"), sid).unwrap();
    s.admit(&auth("bob"), Sid::new()).unwrap();
    s.disconnect("alice", sid, false).unwrap();
    for i in 0..5 {
        s.record("bob", &format!("g{i}"), Destination::Global, false);
    }
    s.admit(&resume("alice", &a.token, None), Sid::new())
        .unwrap();
    let r = s.replay("alice", &a.token, None);
    assert_eq!(r.messages.len(), 3);
    assert_eq!(r.stored, Some((0, 2)), "ids 1 and 2 come from the store");
    assert!(!r.truncated, "nothing was pruned");
}

#[tokio::test]
async fn rooms_join_leave_and_limits() {
    let s = ChatState::new(Config {
        max_rooms_per_user: 2,
        history: 2,
        ..Config::default()
    });
    s.admit(&auth("alice"), Sid::new()).unwrap();
    s.admit(&auth("bob"), Sid::new()).unwrap();
    assert!(s.join("alice", "#a").unwrap().fresh);
    assert!(
        !s.join("alice", "#a").unwrap().fresh,
        "joining twice is idempotent"
    );
    for t in ["1", "2", "3"] {
        s.record("alice", t, Destination::Room("#a".into()), false);
    }
    let j = s.join("bob", "#a").unwrap();
    assert_eq!(
        j.members,
        vec!["Alice".to_string().to_lowercase(), "bob".into()]
    );
    assert_eq!(j.count, 2);
    assert_eq!(
        j.history
            .iter()
            .map(|m| m.text.as_str())
            .collect::<Vec<_>>(),
        vec!["2", "3"]
    );
    s.join("alice", "#b").unwrap();
    assert_eq!(s.join("alice", "#c").unwrap_err(), ErrorCode::TooManyRooms);
    assert_eq!(s.leave("alice", "#a").unwrap(), 1);
    assert_eq!(s.leave("alice", "#a").unwrap_err(), ErrorCode::NotMember);
    assert_eq!(
        s.room_list(),
        vec![RoomCount::new("#a", 1), RoomCount::new("#b", 1),]
    );
}

#[tokio::test(start_paused = true)]
async fn history_lives_while_someone_holds_the_room() {
    let s = state();
    let sid = Sid::new();
    s.admit(&auth("alice"), sid).unwrap();
    s.join("alice", "#a").unwrap();
    s.record("alice", "kept", Destination::Room("#a".into()), false);
    s.disconnect("alice", sid, false).unwrap();
    s.admit(&auth("bob"), Sid::new()).unwrap();
    let j = s.join("bob", "#a").unwrap();
    assert_eq!(j.history.len(), 1, "alice, in her window, still holds #a");
    s.leave("bob", "#a").unwrap();
    tokio::time::sleep(Duration::from_secs(121)).await;
    let j = s.join("bob", "#a").unwrap();
    assert!(
        j.history.is_empty(),
        "the room emptied: its history is no longer kept in memory (the store has it)"
    );
}

/// A session taken up from another node: its name is held, it resumes
/// with its rooms, another node can take it back, and its window ends
/// when the record said.
#[tokio::test(start_paused = true)]
async fn a_session_from_another_node_is_taken_up_and_let_go() {
    let s = state();
    let rec = SessionRecord {
        token: "t".into(),
        username: "Alice".into(),
        since: 0,
        rooms: [("#a".to_string(), 0)].into(),
        window_ends_at: Some(now_ms() + 60_000),
        account: false,
        meta: Default::default(),
    };
    assert!(s.adopt(&rec));
    assert_eq!(
        s.admit(&auth("alice"), Sid::new()).unwrap_err().code,
        ErrorCode::UsernameTaken
    );
    let sid = Sid::new();
    let back = s.admit(&resume("alice", "t", None), sid).unwrap();
    assert!(back.recovered);
    assert_eq!(back.rooms, ["#a"]);
    assert_eq!(s.members("#a"), 1);
    assert_eq!(s.release("t"), Some(sid), "another node took it");
    assert!(s.target("alice").is_none());
    assert_eq!((s.online(), s.members("#a")), (0, 0));

    assert!(s.adopt(&rec));
    tokio::time::sleep(Duration::from_secs(58)).await;
    assert!(s.target("alice").is_some(), "inside its window");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(s.target("alice").is_none(), "ended with it");
}

#[tokio::test]
async fn server_full() {
    let s = ChatState::new(Config {
        max_connections: 1,
        ..Config::default()
    });
    s.admit(&auth("alice"), Sid::new()).unwrap();
    assert_eq!(
        s.admit(&auth("bob"), Sid::new()).unwrap_err().code,
        ErrorCode::ServerFull
    );
}

// ------------------------------------------------ (v3) several clients

fn login(name: &str) -> super::Login {
    super::Login::Account {
        username: name.into(),
        rooms: Vec::new(),
        seen: 0,
        token_id: None,
    }
}

#[tokio::test(start_paused = true)]
async fn an_account_has_several_sessions_counted_once() {
    let s = state();
    let (one, two) = (Sid::new(), Sid::new());
    let a = s
        .admit_as(&auth("alice"), one, login("Alice"), None)
        .unwrap();
    assert!(a.first);
    s.join("alice", "#a").unwrap();
    let b = s
        .admit_as(&auth("alice"), two, login("Alice"), None)
        .unwrap();
    assert!(!b.first, "the account was online already");
    assert!(!b.recovered);
    assert_ne!(a.token, b.token);
    assert_eq!(
        b.rooms,
        vec!["#a".to_string()],
        "membership is the account's"
    );
    assert_eq!(s.online(), 1, "people, not sockets");
    assert_eq!(s.members("#a"), 1);
    assert_eq!(s.sessions_of("alice").len(), 2);

    // One client goes: the account stays online, nobody is told.
    let d = s.disconnect("alice", one, false).unwrap();
    assert!(!d.last);
    assert!(d.rooms.is_empty());
    assert_eq!(s.online(), 1);
    // The last one goes: now it leaves.
    let d = s.disconnect("alice", two, false).unwrap();
    assert!(d.last);
    assert_eq!(d.rooms, vec![("#a".to_string(), 0)]);
    assert_eq!(s.online(), 0);
    // Each resumes on its own token.
    let again = s
        .admit(&resume("alice", &a.token, None), Sid::new())
        .unwrap();
    assert!(again.recovered && again.first);
    let other = s
        .admit(&resume("alice", &b.token, None), Sid::new())
        .unwrap();
    assert!(other.recovered && !other.first);
    assert_eq!(s.online(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_login_beyond_the_limit_ends_the_least_recently_active_session() {
    let s = ChatState::new(Config {
        max_sessions_per_account: 2,
        ..Config::default()
    });
    let (one, two, three) = (Sid::new(), Sid::new(), Sid::new());
    let a = s
        .admit_as(&auth("alice"), one, login("Alice"), None)
        .unwrap();
    let b = s
        .admit_as(&auth("alice"), two, login("Alice"), None)
        .unwrap();
    // The first one is active again after the second came.
    s.activity("alice", &a.token)
        .store(now_ms() + 1_000, std::sync::atomic::Ordering::Relaxed);
    let c = s
        .admit_as(&auth("alice"), three, login("Alice"), None)
        .unwrap();
    assert_eq!(c.replaced, Some(two), "the least recently active one");
    assert_eq!(s.sessions_of("alice").len(), 2);
    assert!(
        s.session_owner(&b.token).is_none(),
        "its token no longer resumes"
    );
    assert!(s.disconnect("alice", two, false).is_none(), "already gone");
    assert_eq!(s.online(), 1);
}

#[tokio::test]
async fn a_guest_name_still_has_one_session() {
    let s = state();
    s.admit(&auth("guest"), Sid::new()).unwrap();
    assert_eq!(
        s.admit(&auth("guest"), Sid::new()).unwrap_err().code,
        ErrorCode::UsernameTaken
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_window_ends_that_session_only() {
    let s = state();
    let (one, two) = (Sid::new(), Sid::new());
    let a = s
        .admit_as(&auth("alice"), one, login("Alice"), None)
        .unwrap();
    s.admit_as(&auth("alice"), two, login("Alice"), None)
        .unwrap();
    s.disconnect("alice", one, false).unwrap();
    tokio::time::sleep(Duration::from_secs(121)).await;
    assert!(s.session_owner(&a.token).is_none(), "its window ended");
    assert_eq!(s.sessions_of("alice").len(), 1, "the other stays");
    assert_eq!(s.online(), 1);
    let (held, sid) = s.end("alice", &s.sessions_of("alice")[0].token);
    assert!(held);
    assert_eq!(sid, Some(two));
    assert!(!s.name_held("alice"));
    assert_eq!(s.online(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_second_session_whose_transport_vanishes_mid_handshake_is_let_go_alone() {
    let s = state();
    let (one, two) = (Sid::new(), Sid::new());
    let a = s
        .admit_as(&auth("alice"), one, login("Alice"), None)
        .unwrap();
    s.join("alice", "#a").unwrap();
    let b = s
        .admit_as(&auth("alice"), two, login("Alice"), None)
        .unwrap();
    // The second socket never connects: its guard lets the fresh session go.
    assert!(s.abandon("alice", two, true));
    assert!(s.session_owner(&b.token).is_none(), "its token is gone");
    assert_eq!(s.sessions_of("alice").len(), 1, "the first stays");
    assert!(s.is_current("alice", one));
    assert_eq!(s.online(), 1);
    assert_eq!(s.members("#a"), 1, "still in its room");
    assert_eq!(s.session_owner(&a.token).as_deref(), Some("alice"));
}
