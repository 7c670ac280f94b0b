//! Unit tests of roles and moderation in the client (v3): the commands and
//! their durations and reasons, room events as lines, the topic, private
//! rooms and role marks, invites, being put out of a room or off the
//! server, renames, blocking, and every refusal in plain words.

use chat_shared::{
    AckError, BanInfo, BansAck, BlockAck, ChatError, ConnectRefusal, ErrorCode, JoinAck, RenameAck,
    RenameRequest, RoomInfoAck, RoomMemberInfo, RoomRole, RoomRoleRequest, RoomSanctionRequest,
    RoomSettingsRequest, RoomUserRequest, UserRequest, UserSanctionRequest,
};
use serde_json::json;
use tokio::time::Instant;

use super::testing::{
    T0, enter_line, net, net_commands, notifications, requests, server, type_text,
};
use super::*;

/// 14:05 on the day of [`T0`] (08:26:40 UTC).
const AT_14_05: u64 = T0 + 20_300_000;

/// The one request a command line sent.
fn sent(fx: &[Effect]) -> (u64, ClientEvent) {
    let mut r = requests(fx);
    assert_eq!(r.len(), 1, "one request: {r:?}");
    r.remove(0)
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
fn refuse(s: &mut State, req: u64, err: ChatError) {
    net(
        s,
        NetEvent::Ack {
            req,
            result: Err(AckError::Refused(err.clone())),
        },
    );
    server(s, "chat:error", serde_json::to_value(&err).unwrap());
}

fn toasts(s: &State) -> Vec<String> {
    s.toasts.iter().map(|t| t.text.clone()).collect()
}

fn general() -> ConvId {
    ConvId::Room("#general".into())
}

fn texts(s: &State, id: &ConvId) -> Vec<String> {
    s.conv(id)
        .map(|c| c.entries.iter().map(|e| e.text.clone()).collect())
        .unwrap_or_default()
}

fn last_text(s: &State, id: &ConvId) -> String {
    texts(s, id).pop().unwrap_or_default()
}

/// The message pane's lines of `id`, as the user reads them.
fn screen_lines(s: &State, id: &ConvId) -> Vec<String> {
    let c = s.conv(id).expect("conversation");
    crate::view::conversation_lines(s, c, 100)
        .iter()
        .map(|l| l.spans.iter().map(|sp| sp.content.as_ref()).collect())
        .collect()
}

fn session_as(s: &mut State, role: Option<&str>, blocked: &[&str]) -> Vec<Effect> {
    let mut v = json!({"sid": "x", "username": "alice", "session": "tok", "recovered": false,
        "rooms": [], "missed": 0, "truncated": false, "blocked": blocked});
    if let Some(role) = role {
        v["role"] = json!(role);
    }
    server(s, "session", v)
}

fn join_ack(room: &str, members: &[&str], role: RoomRole) -> JoinAck {
    JoinAck {
        room: room.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        history: vec![],
        topic: String::new(),
        private: false,
        role: Some(role),
    }
}

/// Joins `room` with this ack; returns the effects of the ack.
fn join(s: &mut State, ack: JoinAck) -> Vec<Effect> {
    let fx = enter_line(s, &format!("/join {}", ack.room));
    let (req, _) = sent(&fx);
    answer(s, req, AckReply::Joined(ack))
}

/// Connected as the account alice (role `user`), in #general (active) with
/// bob and carol, alice a plain member.
fn in_general() -> State {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    session_as(&mut s, Some("user"), &[]);
    join(
        &mut s,
        join_ack("#general", &["alice", "bob", "carol"], RoomRole::Member),
    );
    s.toasts.clear();
    s
}

fn room_event(s: &mut State, v: serde_json::Value) -> Vec<Effect> {
    server(s, "room:event", v)
}

fn ev(id: &str, kind: &str, by: &str, user: Option<&str>) -> serde_json::Value {
    json!({"id": id, "ts": T0, "room": "#general", "kind": kind, "by": by, "user": user,
           "reason": null, "until": null})
}

fn room_msg(id: &str, from: &str, text: &str) -> serde_json::Value {
    json!({"id": id, "ts": T0, "from": from, "room": "#general", "text": text})
}

fn info_ack(room: &str) -> RoomInfoAck {
    let member = |u: &str, role, online| RoomMemberInfo {
        username: u.into(),
        role,
        online,
    };
    RoomInfoAck {
        room: room.into(),
        topic: "deploys at 14:00".into(),
        private: false,
        owners: vec!["alice".into()],
        ops: vec!["carol".into()],
        members: vec![
            member("bob", RoomRole::Member, false),
            member("carol", RoomRole::Op, true),
            member("alice", RoomRole::Owner, true),
        ],
        invited: Some(vec!["erin".into()]),
        bans: Some(vec![BanInfo {
            user: "dave".into(),
            kind: "ban".into(),
            room: Some(room.into()),
            by: "alice".into(),
            reason: Some("spam".into()),
            until: Some(AT_14_05),
        }]),
    }
}

// ------------------------------------------------------------- commands

#[test]
fn a_second_word_is_a_duration_only_when_it_reads_as_one() {
    let mut s = in_general();
    let sanction = |ev: ClientEvent| match ev {
        ClientEvent::RoomBan(r) | ClientEvent::RoomMute(r) | ClientEvent::RoomKick(r) => {
            (r.user, r.for_secs, r.reason)
        }
        ClientEvent::UserBan(r) | ClientEvent::UserMute(r) | ClientEvent::UserKick(r) => {
            (r.user, r.for_secs, r.reason)
        }
        other => panic!("not a sanction: {other:?}"),
    };
    // A line, and the user, seconds and reason it sends.
    type Sends<'a> = (&'a str, Option<u64>, Option<&'a str>);
    let cases: [(&str, Sends); 9] = [
        ("/ban bob 10m spam", ("bob", Some(600), Some("spam"))),
        (
            "/ban bob spam and flood",
            ("bob", None, Some("spam and flood")),
        ),
        ("/ban bob 2h", ("bob", Some(7200), None)),
        ("/ban bob", ("bob", None, None)),
        (
            "/mute @bob 60 calm down",
            ("bob", Some(60), Some("calm down")),
        ),
        ("/mute bob 5x", ("bob", None, Some("5x"))),
        // A kick has no duration: the word is the reason's.
        ("/kick bob 10m late", ("bob", None, Some("10m late"))),
        (
            "/serverban bob 1d flood",
            ("bob", Some(86_400), Some("flood")),
        ),
        ("/servermute bob 0 zero", ("bob", None, Some("0 zero"))),
    ];
    for (line, (user, secs, reason)) in cases {
        let fx = enter_line(&mut s, line);
        let (_, ev) = sent(&fx);
        assert_eq!(
            sanction(ev),
            (user.to_owned(), secs, reason.map(str::to_owned)),
            "{line}"
        );
    }
    // Missing arguments: the usage, nothing sent.
    for (line, usage) in [
        ("/ban", "usage: /ban user [duration] [reason]"),
        ("/private maybe", "usage: /private on|off"),
        ("/invite", "usage: /invite user"),
    ] {
        assert!(requests(&enter_line(&mut s, line)).is_empty());
        assert_eq!(toasts(&s).last().map(String::as_str), Some(usage));
    }
}

#[test]
fn room_commands_act_on_the_open_room() {
    let mut s = in_general();
    let room = || "#general".to_owned();
    let user = |u: &str| RoomUserRequest {
        room: room(),
        user: u.into(),
    };
    let role = |u: &str, role| {
        ClientEvent::RoomRole(RoomRoleRequest {
            room: room(),
            user: u.into(),
            role,
        })
    };
    let cases = [
        (
            "/topic deploys at 14:00",
            ClientEvent::RoomSettings(RoomSettingsRequest {
                room: room(),
                topic: Some("deploys at 14:00".into()),
                private: None,
            }),
        ),
        (
            "/topic -",
            ClientEvent::RoomSettings(RoomSettingsRequest {
                room: room(),
                topic: Some(String::new()),
                private: None,
            }),
        ),
        (
            "/private on",
            ClientEvent::RoomSettings(RoomSettingsRequest {
                room: room(),
                topic: None,
                private: Some(true),
            }),
        ),
        ("/invite erin", ClientEvent::RoomInvite(user("erin"))),
        (
            "/kick bob spam",
            ClientEvent::RoomKick(RoomSanctionRequest {
                room: room(),
                user: "bob".into(),
                reason: Some("spam".into()),
                for_secs: None,
            }),
        ),
        ("/unban bob", ClientEvent::RoomUnban(user("bob"))),
        ("/unmute bob", ClientEvent::RoomUnmute(user("bob"))),
        ("/op carol", role("carol", RoomRole::Op)),
        ("/deop carol", role("carol", RoomRole::Member)),
        ("/owner carol", role("carol", RoomRole::Owner)),
        (
            "/info",
            ClientEvent::RoomInfo(chat_shared::RoomRequest { room: room() }),
        ),
        ("/bans", ClientEvent::UserBans),
        (
            "/serverkick bob",
            ClientEvent::UserKick(UserSanctionRequest {
                user: "bob".into(),
                reason: None,
                for_secs: None,
            }),
        ),
        (
            "/serverunban bob",
            ClientEvent::UserUnban(UserRequest { user: "bob".into() }),
        ),
        (
            "/serverunmute bob",
            ClientEvent::UserUnmute(UserRequest { user: "bob".into() }),
        ),
        (
            "/role bob moderator",
            ClientEvent::UserRole(chat_shared::UserRoleRequest {
                user: "bob".into(),
                role: chat_shared::Role::Moderator,
            }),
        ),
    ];
    for (line, want) in cases {
        let fx = enter_line(&mut s, line);
        assert_eq!(sent(&fx).1, want, "{line}");
    }
    assert!(s.toasts.is_empty(), "{:?}", s.toasts);

    // Not on myself, not outside a room, not a bad name: said, not sent.
    assert!(requests(&enter_line(&mut s, "/kick alice")).is_empty());
    assert_eq!(toasts(&s).last().unwrap(), "you cannot kick yourself");
    assert!(requests(&enter_line(&mut s, "/role bob king")).is_empty());
    assert!(
        toasts(&s)
            .last()
            .unwrap()
            .contains("/role user user|moderator|admin")
    );
    assert!(requests(&enter_line(&mut s, "/ban bob!! x")).is_empty());
    assert!(toasts(&s).last().unwrap().starts_with("invalid_username"));
    let fx = enter_line(&mut s, "/msg bob");
    s.toasts.clear();
    assert!(requests(&fx).is_empty());
    assert!(requests(&enter_line(&mut s, "/kick carol")).is_empty());
    assert!(
        toasts(&s)[0].starts_with("/kick works in a room"),
        "{:?}",
        s.toasts
    );
}

#[test]
fn topic_alone_shows_it_and_help_lists_every_command() {
    let mut s = in_general();
    enter_line(&mut s, "/topic");
    assert_eq!(
        last_text(&s, &general()),
        "#general has no topic (ops set one with /topic text)"
    );
    enter_line(&mut s, "/help");
    let lines = texts(&s, &general());
    for cmd in [
        "/topic [text|-]",
        "/private on|off",
        "/ban user [duration] [reason]",
        "/serverban user [duration] [reason]",
        "/bans",
        "/block [user]",
        "/showblocked",
        "/reconnect",
    ] {
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with(cmd)),
            "{cmd} in /help"
        );
    }
    assert!(lines.contains(&"server-wide (moderators and admins):".to_owned()));
}

// ------------------------------------------------- what the room shows

#[test]
fn the_join_and_room_info_give_the_topic_private_and_role_marks() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    session_as(&mut s, Some("user"), &[]);
    let mut ack = join_ack("#ops", &["alice", "bob", "carol"], RoomRole::Owner);
    ack.topic = "deploys at 14:00".into();
    ack.private = true;
    let fx = join(&mut s, ack);
    let ops = ConvId::Room("#ops".into());
    let c = s.conv(&ops).unwrap();
    assert_eq!(c.room.topic, "deploys at 14:00");
    assert!(c.room.private);
    // The others' roles are asked for at once, without a word on screen.
    let (req, ev) = sent(&fx);
    assert_eq!(
        ev,
        ClientEvent::RoomInfo(chat_shared::RoomRequest {
            room: "#ops".into()
        })
    );
    let before = texts(&s, &ops).len();
    answer(&mut s, req, AckReply::RoomInfo(info_ack("#ops")));
    assert_eq!(texts(&s, &ops).len(), before, "a quiet info says nothing");
    let marked: Vec<String> = s
        .conv(&ops)
        .unwrap()
        .ranked_members()
        .into_iter()
        .map(|(m, r)| format!("{}{m}", role_mark(r)))
        .collect();
    assert_eq!(marked, ["~alice", "@carol", "bob"]);

    // A role event keeps the marks up to date.
    server(
        &mut s,
        "room:event",
        json!({"id": "9", "ts": T0, "room": "#ops", "kind": "role", "by": "alice",
               "user": "bob", "role": "op", "reason": null, "until": null}),
    );
    assert_eq!(last_text(&s, &ops), "bob is now an op (by you)");
    assert_eq!(s.conv(&ops).unwrap().room.role_of("bob"), RoomRole::Op);
}

#[test]
fn a_v2_server_is_never_asked_for_room_info() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    session_as(&mut s, None, &[]);
    let fx = join(
        &mut s,
        JoinAck {
            role: None,
            ..join_ack("#general", &["alice"], RoomRole::Member)
        },
    );
    assert!(requests(&fx).is_empty());
    // And /info there says plainly that the server is older.
    let (req, _) = sent(&enter_line(&mut s, "/info"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::UnknownEvent, "unknown event", "room:info"),
    );
    assert_eq!(
        toasts(&s),
        ["this server does not know room:info (it is older than roles and moderation)"]
    );
    // A block there holds on this client, across reconnects.
    let (req, _) = sent(&enter_line(&mut s, "/block bob"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::UnknownEvent, "unknown event", "user:block"),
    );
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    session_as(&mut s, None, &[]);
    server(&mut s, "room:message", room_msg("7", "bob", "still here"));
    assert!(
        screen_lines(&s, &general())
            .iter()
            .any(|l| l.contains("1 line from a blocked user hidden"))
    );
}

#[test]
fn info_and_bans_answers_are_lines_of_the_conversation() {
    let mut s = in_general();
    let (req, _) = sent(&enter_line(&mut s, "/info"));
    answer(&mut s, req, AckReply::RoomInfo(info_ack("#general")));
    let lines = texts(&s, &general());
    let n = lines.len();
    assert_eq!(
        lines[n - 7..],
        [
            "#general: open, topic: deploys at 14:00",
            "owners: alice",
            "ops: carol",
            "members (3): ~alice, @carol, bob (offline)",
            "invited: erin",
            "bans and mutes:",
            "  dave: banned from #general by alice until 14:05 (spam)",
        ]
    );
    assert_eq!(s.conv(&general()).unwrap().room.topic, "deploys at 14:00");

    let (req, _) = sent(&enter_line(&mut s, "/bans"));
    let bans = vec![
        BanInfo {
            user: "eve".into(),
            kind: "ban".into(),
            room: None,
            by: "mod".into(),
            reason: None,
            until: None,
        },
        BanInfo {
            user: "bob".into(),
            kind: "mute".into(),
            room: Some("#ops".into()),
            by: "carol".into(),
            reason: Some("caps".into()),
            until: Some(T0 + 86_400_000),
        },
    ];
    answer(&mut s, req, AckReply::Bans(BansAck { bans }));
    let lines = texts(&s, &general());
    let n = lines.len();
    assert_eq!(
        lines[n - 3..],
        [
            "bans and mutes in force (2):",
            "  eve: banned from the server by mod",
            "  bob: muted in #ops by carol until Sun 23 Nov 08:26 (caps)",
        ]
    );
    let (req, _) = sent(&enter_line(&mut s, "/bans"));
    answer(&mut s, req, AckReply::Bans(BansAck { bans: vec![] }));
    assert_eq!(last_text(&s, &general()), "no bans or mutes in force");
}

#[test]
fn server_wide_actions_are_confirmed_on_a_line() {
    let mut s = in_general();
    for (line, said) in [
        (
            "/serverban bob 2h flood",
            "bob is banned from the server for 2 hours: flood",
        ),
        ("/servermute bob", "bob is muted on the server until lifted"),
        ("/serverkick bob bye", "bob was kicked from the server: bye"),
        (
            "/serverunban bob",
            "bob is no longer banned from the server",
        ),
    ] {
        let (req, _) = sent(&enter_line(&mut s, line));
        answer(&mut s, req, AckReply::Done);
        assert_eq!(last_text(&s, &general()), said);
    }
    // Room actions say nothing of their own: their room event does.
    let before = texts(&s, &general()).len();
    let (req, _) = sent(&enter_line(&mut s, "/kick bob"));
    answer(&mut s, req, AckReply::Done);
    assert_eq!(texts(&s, &general()).len(), before);
}

#[test]
fn room_events_read_as_lines_once_live_or_replayed() {
    let mut s = in_general();
    let mut with =
        |id: &str, kind: &str, by: &str, user: Option<&str>, extra: serde_json::Value| {
            let mut v = ev(id, kind, by, user);
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            room_event(&mut s, v);
            last_text(&s, &general())
        };
    let none = json!({});
    assert_eq!(
        with(
            "10",
            "topic",
            "bob",
            None,
            json!({"topic": "deploys at 14:00"})
        ),
        "bob set the topic to “deploys at 14:00”"
    );
    assert_eq!(
        with("11", "private", "bob", None, json!({"private": true})),
        "bob made #general private (invite-only)"
    );
    assert_eq!(
        with("12", "invite", "bob", Some("erin"), none.clone()),
        "bob invited erin"
    );
    assert_eq!(
        with("13", "role", "bob", Some("carol"), json!({"role": "op"})),
        "carol is now an op (by bob)"
    );
    assert_eq!(
        with(
            "14",
            "role",
            "bob",
            Some("carol"),
            json!({"role": "member"})
        ),
        "carol is no longer an op (by bob)"
    );
    assert_eq!(
        with(
            "15",
            "ban",
            "bob",
            Some("dave"),
            json!({"reason": "spam", "until": AT_14_05})
        ),
        "dave was banned by bob until 14:05: spam"
    );
    assert_eq!(
        with("16", "kick", "bob", Some("erin"), json!({"reason": "spam"})),
        "erin was kicked by bob: spam"
    );
    assert_eq!(
        with("17", "mute", "alice", Some("carol"), none.clone()),
        "carol was muted by you"
    );
    assert_eq!(
        with("18", "unmute", "alice", Some("carol"), none.clone()),
        "carol was unmuted by you"
    );
    assert_eq!(
        with("19", "unban", "bob", Some("dave"), none.clone()),
        "dave was unbanned by bob"
    );
    assert_eq!(
        with("20", "topic", "bob", None, json!({"topic": ""})),
        "bob cleared the topic"
    );
    // Replayed after a reconnect: already shown, not shown again.
    let n = texts(&s, &general()).len();
    let mut replay = ev("16", "kick", "bob", Some("erin"));
    replay["reason"] = json!("spam");
    replay["replayed"] = json!(true);
    room_event(&mut s, replay);
    assert_eq!(texts(&s, &general()).len(), n);
    // Their effects stay: the topic was cleared, the room is private.
    let c = s.conv(&general()).unwrap();
    assert_eq!(c.room.topic, "");
    assert!(c.room.private);
    // A replayed event not seen live is shown, in id order.
    let mut late = ev("12", "invite", "bob", Some("frank"));
    late["id"] = json!("125");
    late["replayed"] = json!(true);
    room_event(&mut s, late);
    assert!(texts(&s, &general()).contains(&"bob invited frank".to_owned()));
}

#[test]
fn an_invite_offers_the_join_and_stays_on_a_line() {
    let mut s = in_general();
    let fx = server(
        &mut s,
        "room:invited",
        json!({"room": "#leadership", "by": "carol"}),
    );
    let text = "carol invited you to #leadership: /join #leadership";
    assert_eq!(toasts(&s), [text]);
    assert!(s.toasts[0].info, "an invite is news, not an error");
    assert_eq!(last_text(&s, &general()), text);
    assert_eq!(notifications(&fx).len(), 1);
    assert!(s.known_rooms.contains("#leadership"));
}

// ------------------------------------------------ put out of a room

#[test]
fn kicked_from_a_room_i_see_why_and_nothing_goes_there_until_i_join() {
    let mut s = in_general();
    let mut kick = ev("30", "kick", "bob", Some("alice"));
    kick["reason"] = json!("spam");
    room_event(&mut s, kick);
    server(
        &mut s,
        "presence",
        json!({"event": "leave", "user": "alice", "room": "#general", "online": 3,
               "members": 2, "reason": "kick"}),
    );
    let lines = texts(&s, &general());
    assert_eq!(
        lines[lines.len() - 2..],
        ["you were kicked by bob: spam", "/join #general to go back"]
    );
    assert_eq!(
        s.removed_from(&general()).map(|r| r.why.as_str()),
        Some("kicked by bob: spam")
    );
    // The room stays in the list, with no member count (it would go
    // stale while I am out).
    assert!(s.rooms().contains(&"#general".to_owned()));
    assert_eq!(s.conv(&general()).unwrap().member_count, None);

    // Typing there: told, not sent, not even a typing signal.
    let fx = enter_line(&mut s, "hello?");
    assert!(net_commands(&fx).is_empty(), "{fx:?}");
    assert_eq!(
        toasts(&s).last().unwrap(),
        "you are not in #general (kicked by bob: spam): /join #general to go back; nothing sent"
    );
    assert!(requests(&enter_line(&mut s, "/topic x")).is_empty());

    // /join again: back in, and lines go out again.
    join(
        &mut s,
        join_ack("#general", &["alice", "bob"], RoomRole::Member),
    );
    assert!(s.removed_from(&general()).is_none());
    let fx = enter_line(&mut s, "sorry");
    assert!(matches!(
        sent(&fx).1,
        ClientEvent::RoomMessage(m) if m.text == "sorry"
    ));
}

#[test]
fn a_ban_seen_only_as_presence_marks_the_room_and_leave_just_closes_it() {
    let mut s = in_general();
    server(
        &mut s,
        "presence",
        json!({"event": "leave", "user": "alice", "room": "#general", "online": 3,
               "members": 2, "reason": "ban"}),
    );
    assert_eq!(
        last_text(&s, &general()),
        "you were banned from #general: /join #general to go back"
    );
    assert!(
        s.removed_from(&general())
            .is_some_and(|r| r.how == Removed::Banned)
    );
    assert!(s.conv(&general()).unwrap().members.is_empty());
    // Nothing to leave on the server: the conversation just closes.
    let fx = enter_line(&mut s, "/leave");
    assert!(requests(&fx).is_empty());
    assert!(s.conv(&general()).is_none());
}

#[test]
fn a_fresh_session_does_not_join_again_a_room_i_was_put_out_of() {
    let mut s = in_general();
    join(&mut s, join_ack("#rust", &["alice"], RoomRole::Member));
    room_event(&mut s, ev("40", "ban", "bob", Some("alice")));
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    let fx = session_as(&mut s, Some("guest"), &[]);
    let joins: Vec<ClientEvent> = requests(&fx)
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, ClientEvent::RoomJoin(_)))
        .collect();
    assert_eq!(
        joins,
        [ClientEvent::RoomJoin(chat_shared::RoomRequest {
            room: "#rust".into()
        })]
    );
    assert!(s.removed_from(&general()).is_some());
}

// -------------------------------------------- put off the server

#[test]
fn kicked_or_banned_from_the_server_is_said_and_not_retried_silently() {
    let mut s = in_general();
    server(
        &mut s,
        "chat:error",
        json!({"code": "kicked", "message": "kicked", "context": {"by": "mod", "reason": "flood"}}),
    );
    assert_eq!(toasts(&s), ["kicked from the server by mod: flood"]);
    // The network task stops and says why; the state keeps the words.
    net(
        &mut s,
        NetEvent::Refused {
            refusal: ConnectRefusal::new(ErrorCode::Kicked, "kicked"),
            retrying: false,
        },
    );
    assert_eq!(
        s.status_text(),
        "kicked from the server by mod: flood · /reconnect to try again"
    );
    assert_eq!(s.toasts.len(), 1, "said once");
    // Nothing reconnects until asked.
    let fx = enter_line(&mut s, "/reconnect");
    assert_eq!(net_commands(&fx), [NetCommand::Reconnect]);

    let mut s = in_general();
    server(
        &mut s,
        "chat:error",
        json!({"code": "banned", "message": "banned", "context": {"by": "mod",
               "reason": "spam", "until": AT_14_05}}),
    );
    assert_eq!(
        s.status_text(),
        "banned from the server by mod: spam (until 14:05) · /reconnect to try again"
    );
    // A ban found when connecting later is said as plainly.
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    net(
        &mut s,
        NetEvent::Refused {
            refusal: ConnectRefusal::new(ErrorCode::Banned, "until 14:05: spam"),
            retrying: false,
        },
    );
    assert_eq!(
        s.status_text(),
        "banned from the server: until 14:05: spam · /reconnect to try again"
    );
}

#[test]
fn a_room_ban_refusal_is_not_the_end_of_the_session() {
    let err = ChatError::new(ErrorCode::Banned, "banned", "room:join");
    assert!(!crate::msg::ends_session(&err));
    let mut s = in_general();
    server(&mut s, "chat:error", serde_json::to_value(&err).unwrap());
    assert_eq!(s.status_text(), "connected as alice");
}

// ------------------------------------------------------------- renames

#[test]
fn someone_renamed_is_renamed_in_members_roles_and_dms() {
    let mut s = in_general();
    server(
        &mut s,
        "presence",
        json!({"event": "connect", "user": "bob", "room": null, "members": null, "online": 3}),
    );
    server(
        &mut s,
        "room:event",
        json!({"id": "50", "ts": T0, "room": "#general", "kind": "role", "by": "carol",
               "user": "bob", "role": "op", "reason": null, "until": null}),
    );
    server(
        &mut s,
        "dm:message",
        json!({"id": "51", "ts": T0, "from": "bob", "to": "alice", "text": "psst"}),
    );
    enter_line(&mut s, "/msg bob");
    server(
        &mut s,
        "presence",
        json!({"event": "rename", "user": "robert", "from": "bob", "room": null,
               "members": null, "online": 3}),
    );
    let dm = ConvId::Dm("robert".into());
    assert_eq!(s.active, dm, "the open DM follows the new name");
    assert!(s.conv(&ConvId::Dm("bob".into())).is_none());
    assert_eq!(last_text(&s, &dm), "bob is now known as robert");
    let c = s.conv(&general()).unwrap();
    assert!(c.members.contains("robert") && !c.members.contains("bob"));
    assert_eq!(c.room.role_of("robert"), RoomRole::Op);
    assert_eq!(last_text(&s, &general()), "bob is now known as robert");
    assert!(s.users.contains("robert"));
}

#[test]
fn nick_renames_a_guest_in_place_and_an_account_is_told_its_name_is_fixed() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    session_as(&mut s, Some("guest"), &[]);
    join(
        &mut s,
        join_ack("#general", &["alice", "bob"], RoomRole::Member),
    );
    let (req, ev) = sent(&enter_line(&mut s, "/nick ally"));
    assert_eq!(
        ev,
        ClientEvent::UserRename(RenameRequest {
            username: "ally".into()
        })
    );
    let fx = answer(
        &mut s,
        req,
        AckReply::Renamed(RenameAck {
            username: "ally".into(),
        }),
    );
    assert!(net_commands(&fx).contains(&NetCommand::UseName("ally".into())));
    assert_eq!(s.status_text(), "connected as ally");
    assert_eq!(last_text(&s, &general()), "you are now known as ally");
    assert!(s.conv(&general()).unwrap().members.contains("ally"));
    // The presence event that follows changes nothing more.
    server(
        &mut s,
        "presence",
        json!({"event": "rename", "user": "ally", "from": "alice", "room": null,
               "members": null, "online": 2}),
    );
    assert_eq!(last_text(&s, &general()), "you are now known as ally");

    // An account: its name is fixed, nothing is sent.
    let mut s = in_general();
    assert!(requests(&enter_line(&mut s, "/nick ally")).is_empty());
    assert_eq!(
        toasts(&s),
        ["alice is an account: its name is fixed (connect with --user NAME to be someone else)"]
    );

    // A v2 server: the old advice.
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    session_as(&mut s, None, &[]);
    let (req, _) = sent(&enter_line(&mut s, "/nick ally"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::UnknownEvent, "unknown", "user:rename"),
    );
    assert_eq!(
        toasts(&s),
        [
            "this server cannot rename you while connected (it is older than v3): restart with --user NAME"
        ]
    );
    assert_eq!(s.me, "alice");
}

// ------------------------------------------------------------ blocking

#[test]
fn lines_of_blocked_users_are_hidden_counted_and_shown_on_request() {
    let mut s = State::new("alice", "http://test", Instant::now(), T0);
    session_as(&mut s, Some("user"), &["bob"]);
    join(
        &mut s,
        join_ack("#general", &["alice", "bob", "carol"], RoomRole::Member),
    );
    enter_line(&mut s, "/msg dave");
    for (id, from, text) in [
        ("1", "bob", "buy now"),
        ("2", "bob", "cheap alice"),
        ("3", "carol", "morning"),
        ("4", "bob", "last chance"),
    ] {
        server(&mut s, "room:message", room_msg(id, from, text));
    }
    let c = s.conv(&general()).unwrap();
    assert_eq!(c.unread, 1, "only carol's line is news");
    assert!(!c.mentioned, "a blocked user's mention is not one");
    let lines = screen_lines(&s, &general());
    let tail: Vec<String> = lines
        .iter()
        .filter(|l| !l.contains("Sat 22 Nov") && !l.contains("new messages"))
        .map(|l| l.trim_end().to_owned())
        .collect();
    assert_eq!(
        tail,
        [
            "08:26 -- 2 lines from blocked users hidden · /showblocked",
            "08:26 carol: morning",
            "08:26 -- 1 line from a blocked user hidden · /showblocked",
        ]
    );
    // Typing from bob is not shown either.
    server(
        &mut s,
        "typing",
        json!({"from": "bob", "room": "#general", "typing": true}),
    );
    enter_line(&mut s, "/leave");
    assert!(s.typing_names().is_empty());
    assert_eq!(s.active, general());

    enter_line(&mut s, "/showblocked");
    let shown = screen_lines(&s, &general());
    assert!(shown.iter().any(|l| l.contains("bob: buy now")));
    assert!(!shown.iter().any(|l| l.contains("hidden")));
    enter_line(&mut s, "/showblocked");
    assert!(
        !screen_lines(&s, &general())
            .iter()
            .any(|l| l.contains("buy now"))
    );
}

#[test]
fn block_and_unblock_follow_the_servers_list() {
    let mut s = in_general();
    server(&mut s, "room:message", room_msg("1", "bob", "hey"));
    let (req, ev) = sent(&enter_line(&mut s, "/block bob"));
    assert_eq!(
        ev,
        ClientEvent::UserBlock(UserRequest { user: "bob".into() })
    );
    answer(
        &mut s,
        req,
        AckReply::Blocked(BlockAck {
            blocked: vec!["bob".into()],
        }),
    );
    assert!(last_text(&s, &general()).starts_with("you block bob: their lines are hidden"));
    assert!(
        screen_lines(&s, &general())
            .iter()
            .any(|l| l.contains("1 line from a blocked user hidden")),
        "lines already there are hidden too"
    );
    // Their DMs never show, mine to them are not sent.
    server(
        &mut s,
        "dm:message",
        json!({"id": "2", "ts": T0, "from": "bob", "to": "alice", "text": "hi", "replayed": true}),
    );
    assert!(s.conv(&ConvId::Dm("bob".into())).is_none());
    enter_line(&mut s, "/block");
    assert_eq!(last_text(&s, &general()), "you block: bob");
    let fx = enter_line(&mut s, "/msg bob hello");
    assert!(requests(&fx).is_empty());
    assert_eq!(
        toasts(&s).last().unwrap(),
        "you block bob: /unblock bob to DM them; nothing sent"
    );

    let (req, _) = sent(&enter_line(&mut s, "/unblock bob"));
    answer(&mut s, req, AckReply::Blocked(BlockAck { blocked: vec![] }));
    assert!(
        screen_lines(&s, &general())
            .iter()
            .any(|l| l.contains("bob: hey"))
    );
    assert!(!s.is_blocked("bob"));

    // A server without blocks: the block holds here, and says so.
    let (req, _) = sent(&enter_line(&mut s, "/block carol"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::UnknownEvent, "unknown", "user:block"),
    );
    assert!(s.is_blocked("carol"));
    let here = s.active.clone();
    assert!(
        last_text(&s, &here).ends_with("(on this client only: the server does not know blocks)")
    );
}

// ------------------------------------------------------------ refusals

#[test]
fn every_refusal_names_what_was_missing() {
    let mut s = in_general();
    let forbidden = |event: &str, need: &str| {
        ChatError::new(ErrorCode::Forbidden, "not allowed", event).with("need", need)
    };
    let cases = [
        (
            "/kick bob spam",
            forbidden("room:kick", "op"),
            "only ops of #general can kick bob",
        ),
        (
            "/kick carol",
            forbidden("room:kick", "owner"),
            "only owners of #general can kick carol",
        ),
        (
            "/private on",
            forbidden("room:settings", "owner"),
            "only owners of #general can make #general private",
        ),
        (
            "/topic hi",
            forbidden("room:settings", "op"),
            "only ops of #general can set the topic of #general",
        ),
        (
            "/serverban bob 1h",
            forbidden("user:ban", "moderator"),
            "only server moderators can ban bob from the server",
        ),
        (
            "/kick Bob",
            ChatError::new(
                ErrorCode::Forbidden,
                "you cannot kick yourself",
                "room:kick",
            )
            .with("need", "someone else"),
            "you cannot kick yourself",
        ),
        (
            "/op dave",
            ChatError::new(ErrorCode::InvalidTarget, "guest", "room:role"),
            "dave is a guest: only accounts can hold a role",
        ),
        (
            "/kick zed",
            ChatError::new(ErrorCode::NotMember, "not here", "room:kick"),
            "zed is not in #general",
        ),
    ];
    for (line, err, said) in cases {
        s.toasts.clear();
        let (req, _) = sent(&enter_line(&mut s, line));
        refuse(&mut s, req, err);
        assert_eq!(toasts(&s), [said], "{line}");
    }

    // Joining a private room, or one I am banned from.
    s.toasts.clear();
    let (req, _) = sent(&enter_line(&mut s, "/join #leadership"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::InviteOnly, "private", "room:join"),
    );
    assert_eq!(
        toasts(&s),
        ["#leadership is invite-only: ask an op for an invite"]
    );
    s.toasts.clear();
    let (req, _) = sent(&enter_line(&mut s, "/join #lobby"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::Banned, "banned", "room:join")
            .with("until", AT_14_05)
            .with("reason", "spam"),
    );
    assert_eq!(
        toasts(&s),
        ["you are banned from #lobby until 14:05 (spam)"]
    );

    // Muted: the line fails and says for how long.
    s.toasts.clear();
    let (req, _) = sent(&enter_line(&mut s, "hello"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::Muted, "muted", "room:message")
            .with("room", "#general")
            .with("until", T0 + 8 * 60_000 + 30_000),
    );
    assert_eq!(toasts(&s), ["you are muted in #general for 9 more minutes"]);
    let last = s.conv(&general()).unwrap().entries.back().unwrap().clone();
    assert_eq!(last.kind, EntryKind::Own(Delivery::Failed("muted".into())));

    // Muted on the whole server, with no end.
    s.toasts.clear();
    let (req, _) = sent(&enter_line(&mut s, "/all hi all"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::Muted, "muted", "global:message"),
    );
    assert_eq!(
        toasts(&s),
        ["you are muted on the server until a moderator lifts it"]
    );

    // A DM between people one of whom blocks the other.
    s.toasts.clear();
    let (req, _) = sent(&enter_line(&mut s, "/msg bob hi"));
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::Blocked, "blocked", "dm:message").with("to", "bob"),
    );
    assert_eq!(
        toasts(&s),
        ["you cannot DM bob: one of you blocks the other"]
    );
}

#[test]
fn a_join_refused_after_a_fresh_session_marks_the_room() {
    let mut s = in_general();
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    let fx = session_as(&mut s, Some("guest"), &[]);
    let (req, _) = requests(&fx)
        .into_iter()
        .find(|(_, e)| matches!(e, ClientEvent::RoomJoin(_)))
        .expect("a re-join");
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::Banned, "banned", "room:join").with("reason", "spam"),
    );
    assert!(
        s.removed_from(&general())
            .is_some_and(|r| r.how == Removed::Banned)
    );
    assert_eq!(
        last_text(&s, &general()),
        "you are banned from #general (spam)"
    );
    // Nothing typed there goes out.
    let fx = type_text(&mut s, "x");
    assert!(net_commands(&fx).is_empty());
}

#[test]
fn a_room_gone_private_while_i_was_away_stays_marked_invite_only() {
    let mut s = in_general();
    net(
        &mut s,
        NetEvent::Connecting {
            attempt: 1,
            last_contact: None,
        },
    );
    let fx = session_as(&mut s, Some("guest"), &[]);
    let (req, _) = requests(&fx)
        .into_iter()
        .find(|(_, e)| matches!(e, ClientEvent::RoomJoin(_)))
        .expect("a re-join");
    refuse(
        &mut s,
        req,
        ChatError::new(ErrorCode::InviteOnly, "private", "room:join"),
    );
    assert!(
        s.removed_from(&general())
            .is_some_and(|r| r.how == Removed::NotInvited)
    );
    assert_eq!(
        last_text(&s, &general()),
        "#general is invite-only now: ask an op for an invite"
    );
    assert!(toasts(&s).contains(&"#general is invite-only: ask an op for an invite".to_owned()));
}
