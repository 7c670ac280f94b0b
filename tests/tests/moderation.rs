//! (v3) Roles and moderation end to end: who may act on whom (the rank
//! rule), private rooms, room events live and after an absence, kicks,
//! bans that end by themselves, mutes on every kind of message, blocks
//! both ways, server bans of a guest's name and address, the role command
//! on the real binary while the server runs, and roles and bans after a
//! SIGKILL.

use std::process::Stdio;
use std::time::Duration;

use chat_e2e::server_process::ServerProcess;
use chat_e2e::{Proxy, TestClient, TestServer, err_code, ok, workspace_binary};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn account(url: &str, name: &str) -> TestClient {
    TestClient::connect(
        url,
        json!({"username": name, "password": PASSWORD, "register": true}),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn login(url: &str, name: &str) -> TestClient {
    TestClient::connect(url, json!({"username": name, "password": PASSWORD}))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn no_rate() -> chat_server::Config {
    chat_server::Config {
        rate: 0.0,
        ..TestServer::config()
    }
}

/// The refusal's `context.need`.
fn need(ack: &Value) -> &str {
    ack["error"]["context"]["need"].as_str().unwrap_or_default()
}

/// Polls `f` until it is true, for at most a few seconds.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + chat_e2e::WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: never");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_creator_owns_a_room_and_rank_decides_who_acts_on_whom() {
    let server = TestServer::start(no_rate()).await;
    let url = server.url();
    let alice = account(&url, "alice").await;
    let bob = account(&url, "bob").await;
    let mut carol = TestClient::chat(&url, "carol").await;
    assert_eq!(alice.session.as_ref().unwrap()["role"], "user");
    assert_eq!(carol.session.as_ref().unwrap()["role"], "guest");

    let joined = ok(alice.ack("room:join", json!({"room": "#ops"})).await);
    assert_eq!(
        joined["role"], "owner",
        "the account that creates a room owns it"
    );
    let joined = ok(bob.ack("room:join", json!({"room": "#ops"})).await);
    assert_eq!(joined["role"], "member");
    ok(carol.ack("room:join", json!({"room": "#ops"})).await);

    // A member may not kick; the need is the role the action requires.
    let no = bob
        .ack("room:kick", json!({"room": "#ops", "user": "carol"}))
        .await;
    assert_eq!((err_code(&no), need(&no)), ("forbidden", "op"), "{no}");
    // Roles: only for accounts; an owner makes bob an op.
    let no = alice
        .ack(
            "room:role",
            json!({"room": "#ops", "user": "carol", "role": "op"}),
        )
        .await;
    assert_eq!(err_code(&no), "invalid_target", "{no}");
    let made = ok(alice
        .ack(
            "room:role",
            json!({"room": "#ops", "user": "bob", "role": "op"}),
        )
        .await);
    assert_eq!(made["role"], "op");
    // An op may not act on the owner: the rank above an owner's is a
    // moderator's.
    let no = bob
        .ack("room:kick", json!({"room": "#ops", "user": "alice"}))
        .await;
    assert_eq!(
        (err_code(&no), need(&no)),
        ("forbidden", "moderator"),
        "{no}"
    );
    // Nor on itself.
    let no = alice
        .ack("room:kick", json!({"room": "#ops", "user": "alice"}))
        .await;
    assert_eq!(err_code(&no), "forbidden", "{no}");
    // Nor on someone not in the room.
    let _dave = TestClient::chat(&url, "dave").await;
    let no = bob
        .ack("room:kick", json!({"room": "#ops", "user": "dave"}))
        .await;
    assert_eq!(err_code(&no), "not_member", "{no}");
    let no = bob
        .ack("room:kick", json!({"room": "#ops", "user": "nobody"}))
        .await;
    assert_eq!(err_code(&no), "user_not_found", "{no}");

    // The op kicks the guest: it hears why, then leaves the room.
    carol.clear();
    ok(bob
        .ack(
            "room:kick",
            json!({"room": "#ops", "user": "carol", "reason": "spam"}),
        )
        .await);
    let ev = carol.next("room:event").await;
    assert_eq!(ev["kind"], "kick");
    assert_eq!(
        (ev["by"].as_str(), ev["user"].as_str()),
        (Some("bob"), Some("carol"))
    );
    assert_eq!(ev["reason"], "spam");
    let leave = carol
        .next_where("presence", |p| {
            p["event"] == "leave" && p["user"] == "carol"
        })
        .await;
    assert_eq!(leave["reason"], "kick");
    let no = carol
        .ack("room:message", json!({"room": "#ops", "text": "hi"}))
        .await;
    assert_eq!(err_code(&no), "not_member", "{no}");
    // A kick is not a ban: an open room takes it back.
    ok(carol.ack("room:join", json!({"room": "#ops"})).await);

    // room:info names the roles.
    let info = ok(carol.ack("room:info", json!({"room": "#ops"})).await);
    assert_eq!(info["owners"], json!(["alice"]));
    assert_eq!(info["ops"], json!(["bob"]));
    assert!(info.get("bans").is_none(), "bans are for ops: {info}");
    let members = info["members"].as_array().unwrap();
    assert!(
        members
            .iter()
            .any(|m| m["username"] == "bob" && m["role"] == "op")
    );
    // History holds messages; with `events: true`, the room's events too.
    ok(alice
        .ack("room:message", json!({"room": "#ops", "text": "a message"}))
        .await);
    let plain = ok(alice.ack("history", json!({"room": "#ops"})).await);
    assert!(
        plain["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.get("kind").is_none()),
        "{plain}"
    );
    assert!(plain["messages"].to_string().contains("a message"));
    let with = ok(alice
        .ack("history", json!({"room": "#ops", "events": true}))
        .await);
    let kinds: Vec<&str> = with["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["role", "kick"], "{with}");
    let joined = ok(alice.ack("room:join", json!({"room": "#ops"})).await);
    assert!(
        !joined["history"].to_string().contains("\"kind\""),
        "room events in the join's history: {joined}"
    );
    // Giving up one's own role needs no rank.
    ok(bob
        .ack(
            "room:role",
            json!({"room": "#ops", "user": "bob", "role": "member"}),
        )
        .await);
    let no = bob
        .ack("room:kick", json!({"room": "#ops", "user": "carol"}))
        .await;
    assert_eq!(err_code(&no), "forbidden", "{no}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_stays_private() {
    let server = TestServer::start(no_rate()).await;
    let url = server.url();
    let alice = account(&url, "alice").await;
    let mut carol = TestClient::chat(&url, "carol").await;
    ok(alice.ack("room:join", json!({"room": "#leadership"})).await);
    let set = ok(alice
        .ack(
            "room:settings",
            json!({"room": "#leadership", "private": true, "topic": "plans"}),
        )
        .await);
    assert_eq!(
        (set["private"].as_bool(), set["topic"].as_str()),
        (Some(true), Some("plans"))
    );
    ok(alice
        .ack(
            "room:message",
            json!({"room": "#leadership", "text": "secret"}),
        )
        .await);

    // Nobody uninvited sees it, looks into it or joins it.
    let list = ok(carol.ack("room:list", json!({})).await);
    assert!(
        !list["rooms"].to_string().contains("#leadership"),
        "listed to a stranger: {list}"
    );
    let p = ok(carol.ack("presence:get", json!({})).await);
    assert!(!p["rooms"].to_string().contains("#leadership"), "{p}");
    let no = carol.ack("room:join", json!({"room": "#leadership"})).await;
    assert_eq!(err_code(&no), "invite_only", "{no}");
    let no = carol.ack("room:info", json!({"room": "#leadership"})).await;
    assert_eq!(err_code(&no), "invite_only", "{no}");
    let no = carol.ack("history", json!({"room": "#leadership"})).await;
    assert_eq!(err_code(&no), "not_member", "{no}");
    // The member sees it, with its settings.
    let list = ok(alice.ack("room:list", json!({})).await);
    let mine = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room"] == "#leadership")
        .cloned()
        .expect("listed to its member");
    assert_eq!(
        (mine["private"].as_bool(), mine["topic"].as_str()),
        (Some(true), Some("plans"))
    );

    // An invite lets carol in once.
    ok(alice
        .ack(
            "room:invite",
            json!({"room": "#leadership", "user": "carol"}),
        )
        .await);
    let invited = carol.next("room:invited").await;
    assert_eq!(
        (invited["room"].as_str(), invited["by"].as_str()),
        (Some("#leadership"), Some("alice"))
    );
    let joined = ok(carol.ack("room:join", json!({"room": "#leadership"})).await);
    assert_eq!(
        (joined["private"].as_bool(), joined["topic"].as_str()),
        (Some(true), Some("plans"))
    );
    assert!(joined["history"].to_string().contains("secret"));
    ok(carol
        .ack("room:leave", json!({"room": "#leadership"}))
        .await);
    let no = carol.ack("room:join", json!({"room": "#leadership"})).await;
    assert_eq!(err_code(&no), "invite_only", "the invite was used up: {no}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_keeps_someone_out_until_it_ends_by_itself() {
    let server = TestServer::start(no_rate()).await;
    let url = server.url();
    let alice = account(&url, "alice").await;
    let mut carol = TestClient::chat(&url, "carol").await;
    ok(alice.ack("room:join", json!({"room": "#general"})).await);
    ok(carol.ack("room:join", json!({"room": "#general"})).await);
    ok(alice
        .ack(
            "room:ban",
            json!({"room": "#general", "user": "carol", "reason": "flood", "for": 2}),
        )
        .await);
    let ev = carol.next("room:event").await;
    assert_eq!(
        (ev["kind"].as_str(), ev["reason"].as_str()),
        (Some("ban"), Some("flood"))
    );
    assert!(ev["until"].as_u64().is_some(), "{ev}");
    let no = carol.ack("room:join", json!({"room": "#general"})).await;
    assert_eq!(err_code(&no), "banned", "{no}");
    assert_eq!(no["error"]["context"]["reason"], "flood");
    assert!(no["error"]["context"]["until"].as_u64().is_some(), "{no}");
    let bans = alice.ack("user:bans", json!({})).await;
    assert_eq!(err_code(&bans), "forbidden", "user:bans is for moderators");
    // It ends by itself, with no unban.
    eventually("the ban ends", || async {
        carol.ack("room:join", json!({"room": "#general"})).await["ok"] == true
    })
    .await;
    // Unbanning someone not banned is fine and makes no event.
    ok(alice
        .ack("room:unban", json!({"room": "#general", "user": "carol"}))
        .await);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_silences_every_kind_of_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = chat_server::Config {
        rate: 0.0,
        ..TestServer::on_disk(dir.path())
    };
    let server = TestServer::start(config.clone()).await;
    let url = server.url();
    let _admin = account(&url, "root").await;
    let _alice = account(&url, "alice").await;
    server.stop().await.unwrap();
    role_command(dir.path(), "root", "admin");
    let server = TestServer::start(config).await;
    let url = server.url();
    let root = login(&url, "root").await;
    assert_eq!(root.session.as_ref().unwrap()["role"], "admin");
    let alice = login(&url, "alice").await;
    let carol = TestClient::chat(&url, "carol").await;
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    ok(carol.ack("room:join", json!({"room": "#a"})).await);

    // In one room.
    ok(alice
        .ack(
            "room:mute",
            json!({"room": "#a", "user": "carol", "for": 600}),
        )
        .await);
    let no = carol
        .ack("room:message", json!({"room": "#a", "text": "x"}))
        .await;
    assert_eq!(err_code(&no), "muted", "{no}");
    assert_eq!(no["error"]["context"]["room"], "#a");
    ok(carol
        .ack("dm:message", json!({"to": "alice", "text": "dm is fine"}))
        .await);
    ok(alice
        .ack("room:unmute", json!({"room": "#a", "user": "carol"}))
        .await);
    ok(carol
        .ack("room:message", json!({"room": "#a", "text": "back"}))
        .await);

    // /admin sees each action (and each user's role), never a secret.
    let mut admin = TestClient::admin(&url, "admin-secret").await.unwrap();
    let snap = admin.next("admin:snapshot").await;
    let roles: Vec<(String, String)> = snap["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["username"].as_str().unwrap().to_owned(),
                u["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(roles.contains(&("root".into(), "admin".into())), "{snap}");
    assert!(roles.contains(&("carol".into(), "guest".into())), "{snap}");
    // Server-wide: every kind, but typing still works.
    ok(root
        .ack("user:mute", json!({"user": "carol", "reason": "cool down"}))
        .await);
    for (event, body) in [
        ("room:message", json!({"room": "#a", "text": "x"})),
        ("dm:message", json!({"to": "alice", "text": "x"})),
        ("global:message", json!({"text": "x"})),
        ("broadcast:message", json!({"text": "x"})),
    ] {
        let no = carol.ack(event, body).await;
        assert_eq!(err_code(&no), "muted", "{event}: {no}");
    }
    ok(carol
        .ack("typing", json!({"room": "#a", "typing": true}))
        .await);
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "moderation")
        .await;
    assert_eq!(
        (
            ev["action"].as_str(),
            ev["user"].as_str(),
            ev["by"].as_str()
        ),
        (Some("mute"), Some("carol"), Some("root")),
        "{ev}"
    );
    assert_eq!(ev["reason"], "cool down");
    assert!(!ev.to_string().contains(PASSWORD));
    let bans = ok(root.ack("user:bans", json!({})).await);
    let listed = &bans["bans"][0];
    assert_eq!(
        (
            listed["user"].as_str(),
            listed["kind"].as_str(),
            listed["room"].as_str()
        ),
        (Some("carol"), Some("mute"), None),
        "{bans}"
    );
    // A plain user cannot lift it; a moderator or admin can.
    let no = alice.ack("user:unmute", json!({"user": "carol"})).await;
    assert_eq!(
        (err_code(&no), need(&no)),
        ("forbidden", "moderator"),
        "{no}"
    );
    ok(root.ack("user:unmute", json!({"user": "carol"})).await);
    ok(carol
        .ack("global:message", json!({"text": "hello all"}))
        .await);

    // An admin gives server roles over the wire; nobody else does.
    let no = root
        .ack("user:role", json!({"user": "carol", "role": "moderator"}))
        .await;
    assert_eq!(
        err_code(&no),
        "invalid_target",
        "a guest holds no role: {no}"
    );
    let made = ok(root
        .ack("user:role", json!({"user": "alice", "role": "moderator"}))
        .await);
    assert_eq!(made["role"], "moderator");
    ok(alice.ack("user:bans", json!({})).await);
    let no = alice
        .ack("user:role", json!({"user": "alice", "role": "admin"}))
        .await;
    assert_eq!((err_code(&no), need(&no)), ("forbidden", "admin"), "{no}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_stops_dms_and_typing_both_ways() {
    let server = TestServer::start(no_rate()).await;
    let url = server.url();
    let alice = account(&url, "alice").await;
    let mut bob = TestClient::chat(&url, "bob").await;
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    ok(bob.ack("room:join", json!({"room": "#a"})).await);
    let blocked = ok(alice.ack("user:block", json!({"user": "bob"})).await);
    assert_eq!(blocked["blocked"], json!(["bob"]));
    let no = bob
        .ack("dm:message", json!({"to": "alice", "text": "hey"}))
        .await;
    assert_eq!(err_code(&no), "blocked", "{no}");
    let no = alice
        .ack("dm:message", json!({"to": "bob", "text": "hey"}))
        .await;
    assert_eq!(err_code(&no), "blocked", "either way: {no}");
    // Typing is dropped: bob sees alice's room message and no typing
    // before it.
    bob.clear();
    ok(alice
        .ack("typing", json!({"to": "bob", "typing": true}))
        .await);
    ok(alice
        .ack("room:message", json!({"room": "#a", "text": "after"}))
        .await);
    bob.next("room:message").await;
    assert_eq!(bob.count("typing"), 0, "typing from a blocker arrived");
    // The account's blocks are kept: its next session says so.
    alice.disconnect().await;
    let alice = login(&url, "alice").await;
    assert_eq!(alice.session.as_ref().unwrap()["blocked"], json!(["bob"]));
    let none = ok(alice.ack("user:unblock", json!({"user": "bob"})).await);
    assert_eq!(none["blocked"], json!([]));
    ok(bob
        .ack("dm:message", json!({"to": "alice", "text": "friends"}))
        .await);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_was_away_learns_why_it_left_and_nothing_after() {
    let server = TestServer::start(no_rate()).await;
    let proxy = Proxy::start(server.addr).await;
    let alice = account(&server.url(), "alice").await;
    ok(alice.ack("room:join", json!({"room": "#general"})).await);
    let mut carol = TestClient::chat(&proxy.url(), "carol").await;
    ok(carol.ack("room:join", json!({"room": "#general"})).await);
    let token = carol.token();
    let before = ok(alice
        .ack(
            "room:message",
            json!({"room": "#general", "text": "before"}),
        )
        .await);
    let seen = carol.next("room:message").await;
    assert_eq!(seen["id"], before["id"]);
    // Carol's network goes; she is away, in her recovery window.
    proxy.cut();
    drop(carol);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok(alice
        .ack(
            "room:kick",
            json!({"room": "#general", "user": "carol", "reason": "away too long"}),
        )
        .await);
    ok(alice
        .ack("room:message", json!({"room": "#general", "text": "after"}))
        .await);
    let mut carol = TestClient::connect(
        &server.url(),
        json!({"username": "carol", "session": token, "offset": before["id"]}),
    )
    .await
    .unwrap();
    let session = carol.session.clone().unwrap();
    assert_eq!(session["recovered"], true);
    assert_eq!(session["rooms"], json!([]), "{session}");
    let ev = carol.next("room:event").await;
    assert_eq!(
        (ev["kind"].as_str(), ev["replayed"].as_bool()),
        (Some("kick"), Some(true))
    );
    assert_eq!(ev["reason"], "away too long");
    ok(carol.ack("ping", json!({})).await);
    let after: Vec<_> = carol
        .seen()
        .into_iter()
        .filter(|(n, v)| n == "room:message" && v["text"] == "after")
        .collect();
    assert!(after.is_empty(), "got the room after the kick: {after:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_ban_of_a_guest_holds_its_name_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = chat_server::Config {
        rate: 0.0,
        ..TestServer::on_disk(dir.path())
    };
    let server = TestServer::start(config.clone()).await;
    let _mod = account(&server.url(), "mod").await;
    let _alice = account(&server.url(), "alice").await;
    server.stop().await.unwrap();
    role_command(dir.path(), "mod", "moderator");
    let server = TestServer::start(config).await;
    let url = server.url();
    let moderator = login(&url, "mod").await;
    let alice = login(&url, "alice").await;
    let mut spam = TestClient::chat(&url, "spammer").await;
    // A plain user cannot; a moderator cannot act on itself.
    let no = alice.ack("user:ban", json!({"user": "spammer"})).await;
    assert_eq!(
        (err_code(&no), need(&no)),
        ("forbidden", "moderator"),
        "{no}"
    );
    ok(moderator
        .ack("user:ban", json!({"user": "spammer", "reason": "spam"}))
        .await);
    let err = spam.next("chat:error").await;
    assert_eq!(err["code"], "banned", "{err}");
    assert_eq!(err["context"]["reason"], "spam");
    // The name, and guests from its address, stay out; accounts do not.
    let m = TestClient::connect(&url, json!({"username": "spammer"}))
        .await
        .err()
        .expect("the banned name connected");
    assert!(m.starts_with("banned:"), "{m}");
    let m = TestClient::connect(&url, json!({"username": "spammer2"}))
        .await
        .err()
        .expect("another guest name from the banned address connected");
    assert!(
        m.starts_with("banned:") && m.contains("your address"),
        "{m}"
    );
    alice.disconnect().await;
    let _alice = login(&url, "alice").await;
    let bans = ok(moderator.ack("user:bans", json!({})).await);
    assert!(bans["bans"].to_string().contains("spammer"), "{bans}");
    ok(moderator
        .ack("user:unban", json!({"user": "spammer"}))
        .await);
    TestClient::chat(&url, "spammer").await;
    server.stop().await.unwrap();
}

/// `chat-server account role` on the data directory.
fn role_command(dir: &std::path::Path, name: &str, role: &str) -> String {
    let out = std::process::Command::new(workspace_binary("chat-server", "chat-server"))
        .args(["account", "role", name, role, "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run chat-server account role");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The role command on the real binary while the real binary serves, and
/// roles and bans after a SIGKILL.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_bans_apply_while_running_and_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let start = || ServerProcess::on_disk(dir.path());
    let mut server = start();
    let url = format!("http://{}", server.addr().await);
    let register = json!({"username": "boss", "password": PASSWORD, "register": true});
    let boss = TestClient::connect(&url, register).await.unwrap();
    let carol = TestClient::chat(&url, "carol").await;
    let no = boss.ack("user:bans", json!({})).await;
    assert_eq!(err_code(&no), "forbidden");
    let said = role_command(dir.path(), "boss", "moderator");
    assert!(said.contains("boss is now moderator"), "{said}");
    // The running server applies it within a second, with no reconnect.
    eventually("the role applies", || async {
        boss.ack("user:bans", json!({})).await["ok"] == true
    })
    .await;
    ok(boss.ack("room:join", json!({"room": "#kept"})).await);
    ok(boss
        .ack(
            "room:settings",
            json!({"room": "#kept", "topic": "still here"}),
        )
        .await);
    ok(boss
        .ack("user:ban", json!({"user": "carol", "reason": "gone"}))
        .await);
    drop(carol);
    server.kill().await;

    let mut server = start();
    let url = format!("http://{}", server.addr().await);
    let relogin = json!({"username": "boss", "password": PASSWORD});
    let boss = TestClient::connect(&url, relogin).await.unwrap();
    assert_eq!(boss.session.as_ref().unwrap()["role"], "moderator");
    let m = TestClient::connect(&url, json!({"username": "carol"}))
        .await
        .err()
        .expect("banned before the crash, let in after it");
    assert!(m.starts_with("banned:"), "{m}");
    let joined = ok(boss.ack("room:join", json!({"room": "#kept"})).await);
    assert_eq!(joined["topic"], "still here");
    assert_eq!(joined["role"], "owner");
    server.kill().await;
}

/// (v3) A guest renames itself in place: everyone hears it, its rooms and
/// session stay, and it resumes under the new name; names that are not
/// free, and accounts, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_renames_in_place_and_resumes_under_the_new_name() {
    let server = TestServer::start(no_rate()).await;
    let proxy = Proxy::start(server.addr).await;
    let alice = account(&server.url(), "alice").await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    let carol = TestClient::chat(&proxy.url(), "carol").await;
    ok(bob.ack("room:join", json!({"room": "#r"})).await);
    ok(carol.ack("room:join", json!({"room": "#r"})).await);

    for (name, code) in [
        ("alice", "username_taken"),
        ("bob", "username_taken"),
        ("no way", "invalid_username"),
    ] {
        let no = carol.ack("user:rename", json!({"username": name})).await;
        assert_eq!(err_code(&no), code, "{name}: {no}");
    }
    let no = alice
        .ack("user:rename", json!({"username": "alicia"}))
        .await;
    assert_eq!(
        err_code(&no),
        "forbidden",
        "an account's name is fixed: {no}"
    );

    bob.clear();
    let done = ok(carol
        .ack("user:rename", json!({"username": "Caroline"}))
        .await);
    assert_eq!(done["username"], "Caroline");
    let p = bob.next_where("presence", |p| p["event"] == "rename").await;
    assert_eq!(
        (p["user"].as_str(), p["from"].as_str()),
        (Some("Caroline"), Some("carol"))
    );
    // Same session, same rooms, the new name on what it sends.
    ok(carol
        .ack("room:message", json!({"room": "#r", "text": "same me"}))
        .await);
    let m = bob.next("room:message").await;
    assert_eq!(m["from"], "Caroline");
    let who = ok(bob.ack("presence:get", json!({})).await);
    assert!(who["users"].to_string().contains("Caroline"), "{who}");
    assert!(!who["users"].to_string().contains("\"carol\""), "{who}");
    // The old name is free again.
    let other = TestClient::chat(&server.url(), "carol").await;
    other.disconnect().await;

    // Her network goes; she resumes under the new name and misses nothing.
    let token = carol.token();
    proxy.cut();
    drop(carol);
    let missed = ok(bob
        .ack("room:message", json!({"room": "#r", "text": "while away"}))
        .await);
    let mut back = TestClient::connect(
        &server.url(),
        json!({"username": "Caroline", "session": token, "offset": m["id"]}),
    )
    .await
    .unwrap();
    let s = back.session.clone().unwrap();
    assert_eq!(
        (s["recovered"].as_bool(), s["username"].as_str()),
        (Some(true), Some("Caroline"))
    );
    assert_eq!(s["rooms"], json!(["#r"]));
    let replayed = back.next("room:message").await;
    assert_eq!(replayed["id"], missed["id"]);
    server.stop().await.unwrap();
}

/// (v3) Room events are stored like messages: a client that was away when
/// it was kicked, and comes back after the server restarted, gets the
/// kick from the store (not this process's memory), and nothing of the
/// room after it; `history` with `events: true` still lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_survives_a_restart_for_the_client_that_was_away() {
    let dir = tempfile::tempdir().unwrap();
    let config = chat_server::Config {
        rate: 0.0,
        ..TestServer::on_disk(dir.path())
    };
    let server = TestServer::start(config.clone()).await;
    let proxy = Proxy::start(server.addr).await;
    let alice = account(&server.url(), "alice").await;
    ok(alice.ack("room:join", json!({"room": "#general"})).await);
    let mut carol = TestClient::chat(&proxy.url(), "carol").await;
    ok(carol.ack("room:join", json!({"room": "#general"})).await);
    let token = carol.token();
    let before = ok(alice
        .ack(
            "room:message",
            json!({"room": "#general", "text": "before"}),
        )
        .await);
    carol.next("room:message").await;
    proxy.cut();
    drop(carol);
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok(alice
        .ack(
            "room:kick",
            json!({"room": "#general", "user": "carol", "reason": "gone quiet"}),
        )
        .await);
    ok(alice
        .ack("room:message", json!({"room": "#general", "text": "after"}))
        .await);
    alice.disconnect().await;
    server.stop().await.unwrap();

    let server = TestServer::start(config).await;
    let mut carol = TestClient::connect(
        &server.url(),
        json!({"username": "carol", "session": token, "offset": before["id"]}),
    )
    .await
    .unwrap();
    let s = carol.session.clone().unwrap();
    assert_eq!(
        (s["recovered"].as_bool(), &s["rooms"]),
        (Some(true), &json!([])),
        "{s}"
    );
    let ev = carol.next("room:event").await;
    assert_eq!(
        (ev["kind"].as_str(), ev["reason"].as_str()),
        (Some("kick"), Some("gone quiet"))
    );
    assert_eq!(ev["replayed"], true);
    ok(carol.ack("ping", json!({})).await);
    assert!(
        !carol
            .seen()
            .iter()
            .any(|(n, v)| n == "room:message" && v["text"] == "after"),
        "the room after the kick was replayed"
    );
    let alice = login(&server.url(), "alice").await;
    let page = ok(alice
        .ack("history", json!({"room": "#general", "events": true}))
        .await);
    let kinds: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap_or("message"))
        .collect();
    assert_eq!(kinds, ["message", "kick", "message"], "{page}");
    server.stop().await.unwrap();
}
