//! The TUI's stack (state, view on an off-screen terminal, network) against
//! a real chat-server, for what a day's use needs: scrolling up reaches the
//! start of a busy room through `history` pages, a rate-limited burst of
//! lines all arrives in order, a mention raises a notification, and the
//! configured rooms are joined on connect.

use std::time::Duration;

use chat_e2e::tui::{config, wait};
use chat_e2e::{TestClient, TestServer, ok};
use chat_tui::Client;
use chat_tui::client::{KeyCode, ctrl, key};
use chat_tui::state::{Backlog, ConvId, Delivery, EntryKind};
use serde_json::json;

fn room(name: &str) -> ConvId {
    ConvId::Room(name.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolling_up_pages_history_to_the_start_of_a_busy_room() {
    let server = TestServer::start(chat_server::Config {
        rate: 100_000.0,
        burst: 100_000,
        ..TestServer::config()
    })
    .await;
    let bob = TestClient::chat(&server.url(), "bob").await;
    ok(bob.ack("room:join", json!({"room": "#big"})).await);
    for i in 0..300 {
        ok(bob
            .ack(
                "room:message",
                json!({"room": "#big", "text": format!("m{i}")}),
            )
            .await);
    }
    let alice = Client::start_on_screen(
        config(&server.url(), "alice"),
        |s| s.autojoin = vec!["#big".into()],
        Some((80, 24)),
    );
    // The join brings the last 50.
    wait(&alice, "alice in #big with its recent history", |s| {
        s.active == room("#big") && s.active_conv().entries.len() == 50
    })
    .await;
    // Home (with an empty line) goes to the oldest loaded line, and there
    // asks for the page before it, until the server says there is no more.
    // (The first Home reaches the top of what is loaded, the next asks.)
    for _ in 0..40 {
        let before = alice.read(|s| s.active_conv().entries.len());
        if alice.read(|s| s.active_conv().backlog == Backlog::Complete) {
            break;
        }
        alice.input(key(KeyCode::Home));
        alice
            .wait_for(Duration::from_millis(500), |s| {
                s.active_conv().entries.len() > before
                    || s.active_conv().backlog == Backlog::Complete
            })
            .await;
    }
    let texts: Vec<String> = alice.read(|s| {
        s.active_conv()
            .entries
            .iter()
            .map(|e| e.text.clone())
            .collect()
    });
    let expected: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    assert_eq!(
        texts,
        expected,
        "every line, once, in order; toasts: {:?}",
        alice.read(|s| s.toasts.clone())
    );
    assert_eq!(
        alice.read(|s| s.active_conv().backlog),
        Backlog::Complete,
        "the top says beginning of history"
    );
    alice.quit().await;
    bob.disconnect().await;
    server.stop().await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_burst_arrives_whole_and_in_order_and_a_mention_notifies() {
    let server = TestServer::start(chat_server::Config {
        rate: 4.0,
        burst: 3,
        ..TestServer::config()
    })
    .await;
    let mut bob = TestClient::chat(&server.url(), "bob").await;
    ok(bob.ack("room:join", json!({"room": "#r"})).await);
    let alice = Client::start_with(config(&server.url(), "alice"), |s| {
        s.autojoin = vec!["#r".into()]
    });
    wait(&alice, "alice in #r", |s| s.active == room("#r")).await;
    // Ten lines typed at once: the server allows three, then four a second.
    for i in 0..10 {
        alice.type_line(&format!("line {i}"));
    }
    for i in 0..10 {
        let m = bob
            .next_where("room:message", |m| m["from"] == "alice")
            .await;
        assert_eq!(m["text"], format!("line {i}"), "in order, none lost");
    }
    wait(&alice, "every line acked", |s| {
        s.outbox_len() == 0
            && s.active_conv()
                .entries
                .iter()
                .all(|e| e.kind == EntryKind::Own(Delivery::Sent) && e.id.is_some())
            && s.active_conv().entries.len() == 10
    })
    .await;
    assert!(
        alice.read(|s| s.toasts.iter().all(|t| !t.text.contains("rate_limited"))),
        "the pacing is silent"
    );

    // A mention from bob, while alice looks at the feed: a notification.
    alice.input(ctrl('p'));
    ok(bob
        .ack(
            "room:message",
            json!({"room": "#r", "text": "alice: lunch?"}),
        )
        .await);
    wait(&alice, "the mention counted", |s| {
        s.conv(&room("#r")).is_some_and(|c| c.mentioned)
    })
    .await;
    let n = alice.notifications();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].title, "#r");
    assert!(n[0].body.contains("lunch?") && n[0].bell);
    alice.quit().await;
    bob.disconnect().await;
    server.stop().await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_a_connection_fails_is_said() {
    use chat_tui::state::ConnectFailure;
    // Nothing listens on a port that was just freed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let refused = Client::start(config(&format!("http://127.0.0.1:{port}"), "erin"));
    wait(&refused, "refused said", |s| {
        s.last_failure == Some(ConnectFailure::Refused)
            && s.status_text().contains("connection refused")
    })
    .await;
    refused.quit().await;

    // A name that cannot resolve (.invalid is reserved for that).
    let unknown = Client::start(config("http://no-such-host.invalid:3000", "erin"));
    wait(&unknown, "name not resolved said", |s| {
        s.last_failure == Some(ConnectFailure::NameNotResolved)
            && s.status_text().contains("host name not found")
    })
    .await;
    unknown.quit().await;

    // https:// to a plain-http server: the TLS handshake fails.
    let server = TestServer::start(TestServer::config()).await;
    let tls = Client::start(config(&format!("https://{}", server.addr), "erin"));
    wait(&tls, "TLS failure said", |s| {
        s.last_failure == Some(ConnectFailure::Tls) && s.status_text().contains("TLS failure")
    })
    .await;
    tls.quit().await;
    server.stop().await.expect("server stops");
}
