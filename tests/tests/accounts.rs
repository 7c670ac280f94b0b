//! Accounts end to end: registration, logins and refusals, a guest
//! claiming its own name, the lock after wrong passwords, DMs kept for an
//! account that is offline (across a restart), remembered rooms, DM
//! history, `account:password`, the admin feed, and the `chat-server
//! account` commands on the real binary.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chat_e2e::{Opts, TestClient, TestServer, err_code, ok, workspace_binary};
use chat_server::Config;
use chat_server::config::{AuthMode, Registration};
use chat_server::store::{AccountRecord, MemoryStore, Store};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

fn login(name: &str, password: &str) -> Value {
    json!({"username": name, "password": password})
}

fn register(name: &str, password: &str) -> Value {
    json!({"username": name, "password": password, "register": true})
}

/// The code of a refused connect (`"<code>: <text>"`).
fn refused(result: Result<TestClient, String>) -> String {
    match result {
        Ok(c) => panic!("connected as {:?}", c.session),
        Err(message) => message,
    }
}

fn code(message: &str) -> &str {
    message.split(':').next().unwrap_or("")
}

async fn refusal(url: &str, auth: Value) -> String {
    refused(TestClient::connect(url, auth).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_its_owners_alone() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();

    let alice = TestClient::connect(&url, register("Alice", PASSWORD))
        .await
        .expect("registered");
    let session = alice.session.clone().unwrap();
    assert_eq!(session["username"], "Alice");
    assert_eq!(session["recovered"], false);

    // While she is online nobody else gets the name, password or not.
    let m = refusal(&url, json!({"username": "alice"})).await;
    assert_eq!(code(&m), "auth_required", "{m}");
    alice.disconnect().await;

    // Offline, the name still needs its password.
    let m = refusal(&url, json!({"username": "ALICE"})).await;
    assert_eq!(code(&m), "auth_required", "{m}");
    assert!(m.contains("password"), "says what is missing: {m}");
    let m = refusal(&url, login("alice", "wrong password")).await;
    assert_eq!(code(&m), "bad_credentials", "{m}");
    assert!(
        !m.contains("wrong password\""),
        "the password is not echoed"
    );
    let m = refusal(&url, register("alice", "another password")).await;
    assert_eq!(code(&m), "username_taken", "{m}");

    let back = TestClient::connect(&url, login("alice", PASSWORD))
        .await
        .expect("her password lets her in");
    assert_eq!(
        back.session.as_ref().unwrap()["username"],
        "Alice",
        "the account's display name, whatever case was typed"
    );

    // Guests are as before; a password for a name without an account is
    // refused rather than silently ignored.
    TestClient::chat(&url, "bob").await;
    let m = refusal(&url, login("carol", PASSWORD)).await;
    assert_eq!(code(&m), "bad_credentials", "{m}");
    assert!(m.contains("no account"), "{m}");

    let m = refusal(&url, register("dave", "short")).await;
    assert_eq!(code(&m), "weak_password", "{m}");
    let m = refusal(&url, json!({"username": "dave", "register": true})).await;
    assert_eq!(code(&m), "weak_password", "{m}");
    let m = refusal(&url, register("bob", PASSWORD)).await;
    assert_eq!(code(&m), "username_taken", "a live guest's name: {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_only_server_refuses_guests_and_registrations() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(1000));
    let hash = chat_server::auth::hash_now(PASSWORD).unwrap();
    store
        .create_account(&AccountRecord {
            username: "alice".into(),
            hash,
            rooms: vec![],
            seen: 0,
            created_ms: 0,
        })
        .await
        .unwrap()
        .await
        .unwrap();
    let config = Config {
        auth: AuthMode::Accounts,
        ..TestServer::config()
    };
    let server = TestServer::start_on(config, store).await;
    let url = server.url();
    let m = refusal(&url, json!({"username": "guest"})).await;
    assert_eq!(code(&m), "auth_required", "{m}");
    let m = refusal(&url, register("newbie", PASSWORD)).await;
    assert_eq!(code(&m), "registration_closed", "{m}");
    TestClient::connect(&url, login("alice", PASSWORD))
        .await
        .expect("an account gets in");

    // Registration can be opened explicitly.
    let open = TestServer::start(Config {
        auth: AuthMode::Accounts,
        registration: Some(Registration::Open),
        ..TestServer::config()
    })
    .await;
    TestClient::connect(&open.url(), register("newbie", PASSWORD))
        .await
        .expect("registered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_guest_claims_its_name_and_keeps_its_session() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let mut guest = TestClient::chat(&url, "alice").await;
    ok(guest.ack("room:join", json!({"room": "#home"})).await);
    let mut bob = TestClient::chat(&url, "bob").await;
    ok(bob.ack("room:join", json!({"room": "#home"})).await);
    let sent = ok(bob
        .ack("room:message", json!({"room": "#home", "text": "hi"}))
        .await);
    let m = guest.next("room:message").await;
    assert_eq!(m["id"], sent["id"]);

    let claim = json!({
        "username": "alice", "password": PASSWORD, "register": true,
        "session": guest.token(), "offset": m["id"],
    });
    let claimed = TestClient::connect(&url, claim).await.expect("claimed");
    let s = claimed.session.clone().unwrap();
    assert_eq!(s["recovered"], true, "{s}");
    assert_eq!(s["rooms"], json!(["#home"]));
    assert_eq!(s["session"].as_str(), Some(guest.token().as_str()));
    // The old socket of that session is told and closed.
    let replaced = guest.next("chat:error").await;
    assert_eq!(replaced["code"], "session_replaced");
    claimed.disconnect().await;

    // From now on the name needs the password, and the room was remembered.
    let m = refusal(&url, json!({"username": "alice"})).await;
    assert_eq!(code(&m), "auth_required", "{m}");
    let back = TestClient::connect(&url, login("alice", PASSWORD))
        .await
        .unwrap();
    assert_eq!(back.session.as_ref().unwrap()["rooms"], json!(["#home"]));
    let join = bob
        .next_where("presence", |p| {
            p["event"] == "join" && p["user"] == "alice" && p["recovered"] == true
        })
        .await;
    assert_eq!(join["room"], "#home");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_lock_the_name_for_a_while() {
    let config = Config {
        login_lockout: Duration::from_millis(1500),
        ..TestServer::config()
    };
    let server = TestServer::start(config).await;
    let url = server.url();
    TestClient::connect(&url, register("alice", PASSWORD))
        .await
        .unwrap()
        .disconnect()
        .await;
    for i in 0..5 {
        let m = refusal(&url, login("alice", &format!("guess number {i}"))).await;
        assert_eq!(code(&m), "bad_credentials", "{m}");
    }
    // Locked: even the right password is refused, with the wait.
    let m = refusal(&url, login("alice", PASSWORD)).await;
    assert_eq!(code(&m), "rate_limited", "{m}");
    assert!(m.contains("try again in"), "{m}");
    // Other names are not locked.
    TestClient::connect(&url, register("bob", PASSWORD))
        .await
        .unwrap();
    // The lock ends (a short configured lock: the back-off itself is
    // tested on tokio's paused clock in the unit tests).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    TestClient::connect(&url, login("alice", PASSWORD))
        .await
        .expect("the lock is over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_lets_no_guess_through() {
    // The name's own lock, alone: the limit per address (which would turn
    // most of this flood away before its handshake) has a test below.
    let config = Config {
        login_address_limit: 0,
        ..TestServer::config()
    };
    let server = TestServer::start(config).await;
    let url = server.url();
    TestClient::connect(&url, register("alice", PASSWORD))
        .await
        .unwrap()
        .disconnect()
        .await;
    let chatter = TestClient::chat(&url, "bob").await;
    ok(chatter.ack("room:join", json!({"room": "#work"})).await);

    // 200 concurrent guesses; the right password hides among them.
    let mut tries = Vec::new();
    for i in 0..200 {
        let url = url.clone();
        let password = if i == 150 {
            PASSWORD.to_owned()
        } else {
            format!("guess {i} xxxxxxx")
        };
        tries.push(tokio::spawn(async move {
            TestClient::connect(&url, login("alice", &password)).await
        }));
    }
    // Chat goes on while the guesses are checked.
    for i in 0..20 {
        ok(chatter
            .ack(
                "room:message",
                json!({"room": "#work", "text": format!("still here {i}")}),
            )
            .await);
    }
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for t in tries {
        match t.await.unwrap() {
            Ok(c) => {
                // Only the right password may get in, and only if it was
                // checked before the name was locked.
                assert_eq!(c.session.as_ref().unwrap()["username"], "alice");
                *codes.entry("connected".into()).or_default() += 1;
                c.disconnect().await;
            }
            Err(m) => *codes.entry(code(&m).to_owned()).or_default() += 1,
        }
    }
    let wrong = codes.get("bad_credentials").copied().unwrap_or(0);
    assert!(wrong <= 5, "at most 5 guesses were checked: {codes:?}");
    assert!(
        codes.get("rate_limited").copied().unwrap_or(0) >= 190,
        "the rest were refused unchecked: {codes:?}"
    );
}

/// Connects from `addr`, as the reverse proxy on the loopback (trusted by
/// default) says with `X-Forwarded-For`.
async fn connect_from(url: &str, addr: &str, auth: Value) -> Result<TestClient, String> {
    let opts = Opts {
        headers: vec![("X-Forwarded-For".into(), format!("10.0.0.1, {addr}"))],
        ..Opts::default()
    };
    TestClient::connect_with(url, auth, opts).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_is_turned_away_and_no_one_else_is() {
    let config = Config {
        login_address_limit: 6,
        ..TestServer::config()
    };
    let server = TestServer::start(config).await;
    let url = server.url();
    const ATTACKER: &str = "198.51.100.1";
    const NEIGHBOUR: &str = "198.51.100.2";
    for name in ["ann", "ben", "cat"] {
        TestClient::connect(&url, register(name, PASSWORD))
            .await
            .unwrap()
            .disconnect()
            .await;
    }
    // A guest already chatting from the attacker's address.
    let guest = connect_from(&url, ATTACKER, json!({"username": "guest"}))
        .await
        .unwrap();
    // Two guesses at each of three names: no name reaches its own lock
    // (5), but the address reaches its limit (6).
    for name in ["ann", "ben", "cat"] {
        for i in 0..2 {
            let m =
                refused(connect_from(&url, ATTACKER, login(name, &format!("guess {i} xx"))).await);
            assert_eq!(code(&m), "bad_credentials", "{m}");
        }
    }
    // The address is locked: even a right password is not looked at …
    let m = refused(connect_from(&url, ATTACKER, login("ann", PASSWORD)).await);
    assert!(m.starts_with("transport"), "{m}");
    // … and a new handshake is turned away before it starts, with the wait.
    let fwd = format!("10.0.0.1, {ATTACKER}");
    let res = chat_e2e::http::request(
        server.addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &[("X-Forwarded-For", fwd.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(res.status, 429, "{res:?}");
    assert!(res.header("retry-after").is_some(), "{res:?}");
    let body: Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    // The session already open from that address goes on.
    ok(guest.ack("room:join", json!({"room": "#lobby"})).await);
    // Another address is not affected, and the names were never locked.
    let ann = connect_from(&url, NEIGHBOUR, login("ann", PASSWORD))
        .await
        .expect("ann from her own address");
    assert_eq!(ann.session.as_ref().unwrap()["username"], "ann");
    let m = refused(connect_from(&url, NEIGHBOUR, login("ben", "not it at all")).await);
    assert_eq!(code(&m), "bad_credentials", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_to_an_offline_account_wait_for_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        rate: 0.0,
        ..TestServer::on_disk(dir.path())
    };
    let server = TestServer::start(config.clone()).await;
    let url = server.url();
    let alice = TestClient::connect(&url, register("alice", PASSWORD))
        .await
        .unwrap();
    ok(alice.ack("room:join", json!({"room": "#team"})).await);
    ok(alice.ack("room:join", json!({"room": "#random"})).await);
    ok(alice.ack("room:leave", json!({"room": "#random"})).await);
    alice.disconnect().await;

    let bob = TestClient::chat(&url, "bob").await;
    // The DMs must find alice gone, not still closing her connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let snap = ok(bob.ack("presence:get", json!({})).await);
        if !snap["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == "alice")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice never left: {snap}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ids = Vec::new();
    for text in ["are you there?", "call me tomorrow", "bring the keys"] {
        let ack = ok(bob
            .ack("dm:message", json!({"to": "ALICE", "text": text}))
            .await);
        assert_eq!(ack["queued"], true, "{ack}");
        ids.push(ack["id"].clone());
    }
    let err = bob
        .ack("dm:message", json!({"to": "nobody", "text": "hello?"}))
        .await;
    assert_eq!(err_code(&err), "user_not_found");
    server.stop().await.unwrap();

    // The next day (a restart in between).
    let server = TestServer::start(config).await;
    let url = server.url();
    let mut carol = TestClient::chat(&url, "carol").await;
    ok(carol.ack("room:join", json!({"room": "#team"})).await);
    let mut alice = TestClient::connect(&url, login("alice", PASSWORD))
        .await
        .unwrap();
    let s = alice.session.clone().unwrap();
    assert_eq!(s["recovered"], false);
    assert_eq!(s["rooms"], json!(["#team"]), "remembered, #random was left");
    assert_eq!(s["missed"], 3);
    let mut got = Vec::new();
    for _ in 0..3 {
        let dm = alice.next("dm:message").await;
        assert_eq!(dm["replayed"], true, "{dm}");
        assert_eq!(dm["from"], "bob");
        got.push(dm["id"].clone());
    }
    assert_eq!(got, ids, "in order");
    // She is in #team for real: a message there reaches her, and the
    // room saw her come back.
    carol
        .next_where("presence", |p| p["event"] == "join" && p["user"] == "alice")
        .await;
    ok(carol
        .ack("room:message", json!({"room": "#team", "text": "morning"}))
        .await);
    assert_eq!(alice.next("room:message").await["text"], "morning");

    // Her whole DM history with bob, from before the restart.
    let h = ok(alice.ack("history", json!({"with": "bob"})).await);
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["are you there?", "call me tomorrow", "bring the keys"]
    );

    // Delivered once: the next login has nothing queued.
    alice.disconnect().await;
    let alice = TestClient::connect(&url, login("alice", PASSWORD))
        .await
        .unwrap();
    assert_eq!(alice.session.as_ref().unwrap()["missed"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_login_opens_another_session_beside_a_half_open_one() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let first = TestClient::connect(&url, register("alice", PASSWORD))
        .await
        .unwrap();
    let second = TestClient::connect(&url, login("alice", PASSWORD))
        .await
        .expect("the owner gets in from a second place");
    assert_ne!(second.token(), first.token(), "a session of its own");
    // (v3) The first is not taken over: the account has both.
    ok(first.ack("ping", json!({})).await);
    let p = ok(second.ack("presence:get", json!({})).await);
    assert_eq!(p["online"], 1, "one user, counted once: {p}");
    let list = ok(second.ack("session:list", json!({})).await);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_changed_with_the_old_one() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let alice = TestClient::connect(&url, register("alice", PASSWORD))
        .await
        .unwrap();
    let new = "a much better password";
    let a = alice
        .ack(
            "account:password",
            json!({"old": "not it at all", "new": new}),
        )
        .await;
    assert_eq!(err_code(&a), "bad_credentials");
    let a = alice
        .ack("account:password", json!({"old": PASSWORD, "new": "short"}))
        .await;
    assert_eq!(err_code(&a), "weak_password");
    ok(alice
        .ack("account:password", json!({"old": PASSWORD, "new": new}))
        .await);
    alice.disconnect().await;
    let m = refusal(&url, login("alice", PASSWORD)).await;
    assert_eq!(code(&m), "bad_credentials", "{m}");
    TestClient::connect(&url, login("alice", new))
        .await
        .expect("the new password works");

    let guest = TestClient::chat(&url, "bob").await;
    let a = guest
        .ack("account:password", json!({"old": PASSWORD, "new": new}))
        .await;
    assert_eq!(err_code(&a), "auth_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_sees_registrations_and_refused_logins_never_passwords() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let mut admin = TestClient::admin(&url, "admin-secret").await.unwrap();
    TestClient::connect(&url, register("alice", PASSWORD))
        .await
        .unwrap()
        .disconnect()
        .await;
    let created = admin
        .next_where("admin:event", |e| e["type"] == "account")
        .await;
    assert_eq!(
        (&created["user"], &created["reason"]),
        (&json!("alice"), &json!("created"))
    );
    refusal(&url, login("alice", "a guess that fails")).await;
    let rejected = admin
        .next_where("admin:event", |e| e["type"] == "rejected")
        .await;
    assert_eq!(rejected["code"], "bad_credentials");
    assert_eq!(rejected["user"], "alice");
    let everything = format!("{:?}", admin.seen());
    assert!(!everything.contains("a guess that fails"));
    assert!(!everything.contains(PASSWORD));
    assert!(!everything.contains("argon2"));
}

/// Runs `chat-server <args>` on `dir` with `stdin`; its status and output.
fn account_command(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(workspace_binary("chat-server", "chat-server"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chat-server");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_commands_work_on_the_servers_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ok_, out, _) = account_command(d, &["account", "add", "Alice"], "first password\n");
    assert!(ok_ && out.contains("account Alice created"), "{out}");
    let (ok_, _, err) = account_command(d, &["account", "add", "alice"], "whatever pw\n");
    assert!(!ok_ && err.contains("already has an account"), "{err}");
    let (ok_, _, err) = account_command(d, &["account", "add", "bob"], "short\n");
    assert!(!ok_ && err.contains("shorter than 8"), "{err}");
    let (ok_, _, err) = account_command(d, &["account", "add", "bad name!"], "long enough pw\n");
    assert!(!ok_ && err.contains("not a username"), "{err}");

    // The server runs on the same directory while the commands go on.
    let server = TestServer::start(TestServer::on_disk(d)).await;
    let url = server.url();
    TestClient::connect(&url, login("alice", "first password"))
        .await
        .expect("the account made while the server was stopped");
    let (ok_, out, _) = account_command(d, &["account", "passwd", "alice"], "second password\n");
    assert!(ok_ && out.contains("password of alice changed"), "{out}");
    let m = refusal(&url, login("alice", "first password")).await;
    assert_eq!(code(&m), "bad_credentials", "{m}");
    TestClient::connect(&url, login("alice", "second password"))
        .await
        .expect("the new password, changed while running")
        .disconnect()
        .await;
    // The admin feed hears of accounts the commands make and remove.
    let mut admin = TestClient::admin(&url, "admin-secret").await.unwrap();
    let (ok_, out, _) = account_command(d, &["account", "add", "carol"], "carol password\n");
    assert!(ok_, "{out}");
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "account")
        .await;
    assert_eq!(
        (&ev["user"], &ev["reason"]),
        (&json!("carol"), &json!("created"))
    );
    let (ok_, out, _) = account_command(d, &["account", "list"], "");
    assert!(ok_);
    let names: Vec<&str> = out.lines().filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(names, ["Alice", "carol"], "{out}");
    assert!(!out.contains("argon2"), "no hashes in the list");
    let (ok_, out, _) = account_command(d, &["account", "remove", "carol"], "");
    assert!(ok_ && out.contains("account carol removed"), "{out}");
    let ev = admin
        .next_where("admin:event", |e| e["type"] == "account")
        .await;
    assert_eq!(
        (&ev["user"], &ev["reason"]),
        (&json!("carol"), &json!("removed"))
    );
    TestClient::chat(&url, "carol").await;
    let (ok_, _, err) = account_command(d, &["account", "remove", "carol"], "");
    assert!(!ok_ && err.contains("has no account"), "{err}");
    server.stop().await.unwrap();
}
