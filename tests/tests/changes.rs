//! (v3) Replies, edits, deletions and reactions, end to end: who may
//! change what, each audience (a room, a DM on every session of both
//! sides, the global and broadcast feeds), the edit window, the replay of
//! changes after a reconnect, history's folded view, and a deleted text
//! gone from the data directory's files after a SIGKILL.

use std::sync::Arc;

use chat_e2e::server_process::ServerProcess;
use chat_e2e::{Proxy, TestClient, TestServer, err_code, ok};
use chat_server::store::{MemoryStore, Store};
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

async fn login(url: &str, name: &str, client: &str) -> TestClient {
    TestClient::connect(
        url,
        json!({"username": name, "password": PASSWORD, "client": client}),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn no_rate() -> chat_server::Config {
    chat_server::Config {
        rate: 0.0,
        ..TestServer::config()
    }
}

/// `c` posts `text` in `room` (optionally answering `reply_to`): its id.
async fn say(c: &TestClient, room: &str, text: &str) -> String {
    let a = ok(c
        .ack("room:message", json!({"room": room, "text": text}))
        .await);
    a["id"].as_str().unwrap().to_owned()
}

fn id_of(ack: &Value) -> String {
    ack["id"].as_str().unwrap().to_owned()
}

/// The next `message:update` of `target` of `kind`.
async fn update(c: &mut TestClient, target: &str, kind: &str) -> Value {
    c.next_where("message:update", |u| {
        u["target"] == target && u["kind"] == kind
    })
    .await
}

async fn joined(url: &str, name: &str, room: &str) -> TestClient {
    let c = TestClient::chat(url, name).await;
    ok(c.ack("room:join", json!({"room": room})).await);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_sees_replies_edits_reactions_and_deletions_as_they_happen() {
    let server = TestServer::start(no_rate()).await;
    let url = server.url();
    let mut alice = joined(&url, "alice", "#ops").await;
    let mut bob = joined(&url, "bob", "#ops").await;
    let outsider = TestClient::chat(&url, "eve").await;
    let question = say(&alice, "#ops", "is the deploy done?").await;

    // A reply names what it answers, live and in history.
    let answer = ok(bob
        .ack(
            "room:message",
            json!({"room": "#ops", "text": "yes", "replyTo": question}),
        )
        .await);
    let live = alice
        .next_where("room:message", |m| m["text"] == "yes")
        .await;
    assert_eq!(live["replyTo"], question.as_str(), "{live}");
    // A reply must answer a message of the same room.
    ok(alice.ack("room:join", json!({"room": "#other"})).await);
    let elsewhere = alice
        .ack(
            "room:message",
            json!({"room": "#other", "text": "hm", "replyTo": question}),
        )
        .await;
    assert_eq!(err_code(&elsewhere), "message_not_found", "{elsewhere}");
    let nowhere = alice
        .ack(
            "room:message",
            json!({"room": "#ops", "text": "hm", "replyTo": "999999"}),
        )
        .await;
    assert_eq!(err_code(&nowhere), "message_not_found");

    // The author edits; both see it; nobody else may.
    let edit = ok(alice
        .ack(
            "message:edit",
            json!({"id": question, "text": "is the deploy finished?"}),
        )
        .await);
    for c in [&mut alice, &mut bob] {
        let u = update(c, &question, "edit").await;
        assert_eq!(u["text"], "is the deploy finished?");
        assert_eq!(u["by"], "alice");
        assert_eq!(u["room"], "#ops");
        assert_eq!(u["id"], edit["id"], "the change has its own id: {u}");
    }
    let theirs = bob
        .ack("message:edit", json!({"id": question, "text": "no"}))
        .await;
    assert_eq!(err_code(&theirs), "forbidden", "{theirs}");
    let bad_text = alice
        .ack("message:edit", json!({"id": question, "text": "  "}))
        .await;
    assert_eq!(err_code(&bad_text), "empty_message");

    // Reactions: anyone who can see it, one per user and emoji.
    ok(bob
        .ack(
            "message:react",
            json!({"id": question, "emoji": "👍", "on": true}),
        )
        .await);
    let u = update(&mut alice, &question, "react").await;
    assert_eq!(
        (u["emoji"].clone(), u["on"].clone(), u["by"].clone()),
        (json!("👍"), json!(true), json!("bob"))
    );
    ok(alice
        .ack(
            "message:react",
            json!({"id": question, "emoji": "👍", "on": true}),
        )
        .await);
    ok(bob
        .ack(
            "message:react",
            json!({"id": question, "emoji": "🎉", "on": true}),
        )
        .await);
    ok(bob
        .ack(
            "message:react",
            json!({"id": question, "emoji": "🎉", "on": false}),
        )
        .await);
    for bad in ["", "two words", "\u{1b}[31m", "abcdefghijklmnopq"] {
        let a = bob
            .ack(
                "message:react",
                json!({"id": question, "emoji": bad, "on": true}),
            )
            .await;
        assert_eq!(err_code(&a), "invalid_payload", "{bad:?}: {a}");
    }
    let outside = outsider
        .ack(
            "message:react",
            json!({"id": question, "emoji": "👍", "on": true}),
        )
        .await;
    assert_eq!(
        err_code(&outside),
        "message_not_found",
        "not a member: {outside}"
    );

    // History shows the message as it stands.
    let h = ok(bob.ack("history", json!({"room": "#ops"})).await);
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "changes are not messages: {h}");
    assert_eq!(msgs[0]["text"], "is the deploy finished?");
    assert!(msgs[0]["edited"].as_u64().is_some(), "{h}");
    assert_eq!(
        msgs[0]["reactions"],
        json!([{"emoji": "👍", "count": 2, "users": ["bob", "alice"]}])
    );
    assert_eq!(msgs[1]["replyTo"], question.as_str());
    // And so does a new member's join.
    let carol = TestClient::chat(&url, "carol").await;
    let j = ok(carol.ack("room:join", json!({"room": "#ops"})).await);
    assert_eq!(j["history"][0]["text"], "is the deploy finished?", "{j}");

    // Deletion: the text is gone for everyone; no more edits or reactions.
    let other = bob.ack("message:delete", json!({"id": question})).await;
    assert_eq!(err_code(&other), "forbidden", "a member cannot: {other}");
    assert_eq!(other["error"]["context"]["need"], "op");
    ok(alice.ack("message:delete", json!({"id": question})).await);
    let u = update(&mut bob, &question, "delete").await;
    assert_eq!(u.get("text"), None, "{u}");
    for (event, payload) in [
        ("message:edit", json!({"id": question, "text": "again"})),
        (
            "message:react",
            json!({"id": question, "emoji": "👍", "on": false}),
        ),
        ("message:delete", json!({"id": question})),
    ] {
        let a = alice.ack(event, payload).await;
        assert_eq!(err_code(&a), "message_not_found", "{event}: {a}");
    }
    let h = ok(bob.ack("history", json!({"room": "#ops"})).await);
    let first = &h["messages"][0];
    assert_eq!(first["deleted"], true, "{h}");
    assert_eq!(first.get("text"), None, "{h}");
    assert_eq!(first.get("reactions"), None, "{h}");
    assert!(!h.to_string().contains("deploy"), "{h}");
    let _ = answer;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_ops_and_moderators_delete_others_messages_and_nobody_deletes_a_dm_but_its_author() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(10_000));
    store.startup().await.unwrap();
    ok_commit(
        store
            .put_setting("roles", "mod", Some("moderator".into()))
            .await
            .unwrap(),
    )
    .await;
    let server = TestServer::start_on(no_rate(), Arc::clone(&store)).await;
    let url = server.url();
    // alice creates #ops and so owns it; bob is a member; "mod" a
    // moderator; carol makes bob... nothing.
    let owner = account(&url, "alice").await;
    let member = account(&url, "bob").await;
    let moderator = account(&url, "mod").await;
    let guest = TestClient::chat(&url, "carol").await;
    for c in [&owner, &member, &moderator, &guest] {
        ok(c.ack("room:join", json!({"room": "#ops"})).await);
    }
    let m1 = say(&guest, "#ops", "spam one").await;
    let m2 = say(&guest, "#ops", "spam two").await;
    let m3 = say(&owner, "#ops", "the owner's own").await;
    let refused = member.ack("message:delete", json!({"id": m1})).await;
    assert_eq!(err_code(&refused), "forbidden");
    ok(owner.ack("message:delete", json!({"id": m1})).await);
    ok(moderator.ack("message:delete", json!({"id": m2})).await);
    // An op may delete even the owner's message: the rule is by room
    // role, not by rank.
    ok(owner
        .ack(
            "room:role",
            json!({"room": "#ops", "user": "bob", "role": "op"}),
        )
        .await);
    ok(member.ack("message:delete", json!({"id": m3})).await);

    // Global and broadcast: the author or a moderator.
    let g = id_of(&ok(guest
        .ack("global:message", json!({"text": "hello world"}))
        .await));
    let refused = owner.ack("message:delete", json!({"id": g})).await;
    assert_eq!(err_code(&refused), "forbidden");
    assert_eq!(refused["error"]["context"]["need"], "moderator");
    ok(moderator.ack("message:delete", json!({"id": g})).await);

    // A DM: its author only, whoever else asks.
    let d = id_of(&ok(guest
        .ack("dm:message", json!({"to": "mod", "text": "psst"}))
        .await));
    let refused = moderator.ack("message:delete", json!({"id": d})).await;
    assert_eq!(err_code(&refused), "forbidden", "{refused}");
    let unseen = owner.ack("message:delete", json!({"id": d})).await;
    assert_eq!(err_code(&unseen), "message_not_found", "not hers to see");
    ok(guest.ack("message:delete", json!({"id": d})).await);
    server.stop().await.unwrap();
}

async fn ok_commit(c: chat_server::store::Committed) {
    c.await.expect("committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_change_reaches_both_sides_on_every_session_and_feeds_reach_everyone() {
    let server = TestServer::start(no_rate()).await;
    let url = server.url();
    let mut laptop = account(&url, "alice").await;
    let mut phone = login(&url, "alice", "phone").await;
    let mut bob = TestClient::chat(&url, "bob").await;
    let d = id_of(&ok(laptop
        .ack("dm:message", json!({"to": "bob", "text": "lunch at noon?"}))
        .await));
    ok(bob
        .ack("message:react", json!({"id": d, "emoji": "👍", "on": true}))
        .await);
    for c in [&mut laptop, &mut phone, &mut bob] {
        let u = update(c, &d, "react").await;
        assert_eq!(u["dm"], json!(["alice", "bob"]), "{u}");
        assert_eq!(u.get("room"), None);
    }
    // A reply in the conversation, from either side.
    let r = ok(bob
        .ack(
            "dm:message",
            json!({"to": "alice", "text": "sure", "replyTo": d}),
        )
        .await);
    let got = phone
        .next_where("dm:message", |m| m["text"] == "sure")
        .await;
    assert_eq!(got["replyTo"], d.as_str());
    // The DM edited from her phone reaches the laptop and bob.
    ok(phone
        .ack("message:edit", json!({"id": d, "text": "lunch at one?"}))
        .await);
    for c in [&mut laptop, &mut bob] {
        assert_eq!(update(c, &d, "edit").await["text"], "lunch at one?");
    }
    let h = ok(bob.ack("history", json!({"with": "alice"})).await);
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{h}");
    assert_eq!(msgs[0]["text"], "lunch at one?");
    assert_eq!(msgs[0]["reactions"][0]["count"], 1);
    assert_eq!(msgs[1]["id"], r["id"]);

    // A broadcast's changes reach everyone, its author included.
    let b = id_of(&ok(bob
        .ack("broadcast:message", json!({"text": "coffee's here"}))
        .await));
    ok(laptop
        .ack("message:react", json!({"id": b, "emoji": "☕", "on": true}))
        .await);
    for c in [&mut laptop, &mut phone, &mut bob] {
        let u = update(c, &b, "react").await;
        assert_eq!((u.get("room"), u.get("dm")), (None, None), "{u}");
    }
    // A global reply must answer a global or broadcast message.
    ok(bob
        .ack("global:message", json!({"text": "thanks", "replyTo": b}))
        .await);
    let wrong = bob
        .ack("global:message", json!({"text": "x", "replyTo": d}))
        .await;
    assert_eq!(err_code(&wrong), "message_not_found");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_after_the_window_is_refused() {
    let config = chat_server::Config {
        edit_window: std::time::Duration::ZERO,
        ..no_rate()
    };
    let server = TestServer::start(config).await;
    let alice = joined(&server.url(), "alice", "#a").await;
    let id = say(&alice, "#a", "typo").await;
    let late = alice
        .ack("message:edit", json!({"id": id, "text": "fixed"}))
        .await;
    assert_eq!(err_code(&late), "edit_window_passed", "{late}");
    // Reactions and deletion have no window.
    ok(alice
        .ack(
            "message:react",
            json!({"id": id, "emoji": "✅", "on": true}),
        )
        .await);
    ok(alice.ack("message:delete", json!({"id": id})).await);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_missed_while_away_are_replayed_in_order_after_their_message() {
    let server = TestServer::start(no_rate()).await;
    let proxy = Proxy::start(server.addr).await;
    let alice = TestClient::chat(&proxy.url(), "alice").await;
    ok(alice.ack("room:join", json!({"room": "#a"})).await);
    let mut bob = joined(&server.url(), "bob", "#a").await;
    let old = say(&bob, "#a", "before").await;
    let mut alice = alice;
    alice
        .next_where("room:message", |m| m["id"] == old.as_str())
        .await;
    let token = alice.token();
    proxy.cut();
    bob.next_where("presence", |p| p["event"] == "disconnect")
        .await;
    // While she is away: an edit of an old message, a new message, its
    // reaction and its deletion.
    let mut sent = vec![id_of(&ok(bob
        .ack("message:edit", json!({"id": old, "text": "before, edited"}))
        .await))];
    let new = say(&bob, "#a", "secret").await;
    sent.push(new.clone());
    sent.push(id_of(&ok(bob
        .ack(
            "message:react",
            json!({"id": new, "emoji": "👀", "on": true}),
        )
        .await)));
    sent.push(id_of(&ok(bob
        .ack("message:delete", json!({"id": new}))
        .await)));
    proxy.set_down(false);
    let mut back = TestClient::connect(
        &proxy.url(),
        json!({"username": "alice", "session": token, "offset": old}),
    )
    .await
    .unwrap();
    assert_eq!(back.session.as_ref().unwrap()["missed"], sent.len());
    let mut got = Vec::new();
    let mut entries = Vec::new();
    while got.len() < sent.len() {
        let (name, m) = back.next_of(&["room:message", "message:update"]).await;
        assert_eq!(m["replayed"], true, "{name} {m}");
        got.push(m["id"].as_str().unwrap().to_owned());
        entries.push((name, m));
    }
    assert_eq!(got, sent, "every missed entry once, in order");
    // The message comes as it stands now: deleted, without its text.
    let (_, replayed) = &entries[1];
    assert_eq!(replayed["deleted"], true, "{replayed}");
    assert_eq!(replayed.get("text"), None);
    assert!(!format!("{entries:?}").contains("secret"));
    server.stop().await.unwrap();
}

/// The erased text is in no file of the data directory once the
/// deletion is acknowledged, even after a SIGKILL and a restart.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_text_is_gone_from_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::on_disk(dir.path());
    let url = format!("http://{}", server.addr().await);
    let alice = joined(&url, "alice", "#general").await;
    let bob = joined(&url, "bob", "#general").await;
    let secret = format!("hunter2-{}", std::process::id());
    let id = say(&alice, "#general", &format!("my password is {secret}")).await;
    // Many messages around it, so that it is one row among pages.
    for i in 0..20 {
        say(&bob, "#general", &format!("filler {i}")).await;
    }
    ok(alice
        .ack(
            "message:edit",
            json!({"id": id, "text": format!("my password is {secret}!")}),
        )
        .await);
    let files_hold = |needle: &str| -> Vec<String> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                let bytes = std::fs::read(&p).unwrap_or_default();
                bytes
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
                    .then(|| p.display().to_string())
            })
            .collect()
    };
    assert!(
        !files_hold(&secret).is_empty(),
        "the test would prove nothing if the text were never on disk"
    );
    ok(alice.ack("message:delete", json!({"id": id})).await);
    // The writer empties the WAL right after the deletion commits: wait
    // for what a person could look at, the files.
    let deadline = tokio::time::Instant::now() + chat_e2e::WAIT;
    while !files_hold(&secret).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still on disk: {:?}",
            files_hold(&secret)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    alice.disconnect().await;
    bob.disconnect().await;
    server.kill().await;
    let mut server = ServerProcess::on_disk(dir.path());
    let url = format!("http://{}", server.addr().await);
    let carol = joined(&url, "carol", "#general").await;
    let h = ok(carol
        .ack("history", json!({"room": "#general", "limit": 200}))
        .await);
    assert!(!h.to_string().contains(&secret), "{h}");
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 21, "{h}");
    let m = msgs.iter().find(|m| m["id"] == id.as_str()).unwrap();
    assert_eq!(m["deleted"], true, "{m}");
    assert_eq!(m.get("text"), None, "{m}");

    carol.disconnect().await;
    server.stop().await;
    assert!(files_hold(&secret).is_empty(), "{:?}", files_hold(&secret));
}
