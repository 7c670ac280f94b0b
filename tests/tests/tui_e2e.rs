//! The TUI's app-and-network stacks, without a terminal, against a real
//! chat-server: what two people would see on their screens, read from each
//! client's state. Bob's network goes through a proxy that we cut.

use chat_e2e::tui::{config, texts, wait};
use chat_e2e::{Proxy, TestServer};
use chat_tui::Client;
use chat_tui::client::{KeyCode, alt, ctrl, key};
use chat_tui::state::{Conn, ConvId, Delivery, EntryKind};

fn general() -> ConvId {
    ConvId::Room("#general".into())
}

fn typing_keys(client: &Client, text: &str) {
    for c in text.chars() {
        client.input(key(KeyCode::Char(c)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_chat_and_one_recovers_after_its_network_drops() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = Proxy::start(server.addr).await;
    let alice = Client::start(config(&server.url(), "alice"));
    let bob = Client::start(config(&proxy.url(), "bob"));

    wait(&alice, "alice connected", |s| {
        s.status_text() == "connected as alice"
    })
    .await;
    wait(&bob, "bob connected", |s| {
        s.status_text() == "connected as bob"
    })
    .await;

    // Join: both in #general, each sees the other as a member.
    alice.type_line("/join #general");
    wait(&alice, "alice in #general", |s| s.active == general()).await;
    bob.type_line("/join General");
    wait(&bob, "bob in #general", |s| s.active == general()).await;
    wait(&alice, "alice sees bob join", |s| {
        s.conv(&general())
            .is_some_and(|c| c.members.contains("bob") && c.member_count == Some(2))
    })
    .await;

    // Presence: both online.
    wait(&alice, "alice sees bob online", |s| {
        s.users.contains("bob") && s.online == 2
    })
    .await;

    // A room message, shown to both, sent (not pending) for alice.
    alice.type_line("hello bob 👋");
    wait(&bob, "bob gets the room message", |s| {
        texts(s, &general()) == ["hello bob 👋"]
    })
    .await;
    wait(&alice, "alice's message acked", |s| {
        s.conv(&general()).is_some_and(|c| {
            c.entries.len() == 1 && c.entries[0].kind == EntryKind::Own(Delivery::Sent)
        })
    })
    .await;

    // A DM: opens a conversation on both sides; alice gets an unread count.
    bob.type_line("/msg alice psst");
    let bob_dm = ConvId::Dm("alice".into());
    let alice_dm = ConvId::Dm("bob".into());
    wait(&alice, "alice gets the DM", |s| {
        texts(s, &alice_dm) == ["psst"] && s.conv(&alice_dm).is_some_and(|c| c.unread == 1)
    })
    .await;
    wait(&bob, "bob's DM acked", |s| {
        s.conv(&bob_dm).is_some_and(|c| {
            c.entries
                .iter()
                .all(|e| e.kind == EntryKind::Own(Delivery::Sent))
        })
    })
    .await;

    // Typing: bob goes back to #general and types without sending.
    bob.input(alt('2'));
    wait(&bob, "bob back in #general", |s| s.active == general()).await;
    typing_keys(&bob, "still there");
    wait(&alice, "alice sees bob typing", |s| {
        s.typing_names() == ["bob"]
    })
    .await;
    // Clearing the line says bob stopped.
    bob.input(ctrl('u'));
    wait(&alice, "bob no longer typing", |s| {
        s.typing_names().is_empty()
    })
    .await;

    // An error toast: a DM to nobody.
    alice.type_line("/msg nobody hello?");
    wait(&alice, "alice sees the error toast", |s| {
        s.toasts
            .iter()
            .any(|t| t.text.starts_with("user_not_found"))
    })
    .await;
    alice.input(key(KeyCode::Esc));
    alice.input(alt('2'));
    wait(&alice, "alice back in #general", |s| {
        s.active == general() && s.toasts.is_empty()
    })
    .await;

    // Bob's network drops, and stays down for a while.
    proxy.set_down(true);
    proxy.cut();
    wait(&bob, "bob says it is reconnecting", |s| {
        matches!(s.conn, Conn::Reconnecting { .. })
    })
    .await;
    assert!(
        bob.read(|s| s.status_text())
            .starts_with("reconnecting (attempt")
    );

    // Alice keeps talking; bob types into the void.
    for text in [
        "while you were out 1",
        "while you were out 2",
        "while you were out 3",
    ] {
        alice.type_line(text);
    }
    alice.type_line("/msg bob call me");
    bob.type_line("queued one");
    bob.type_line("queued two");
    wait(&bob, "bob's lines wait in the outbox", |s| {
        s.outbox_len() == 2
    })
    .await;
    assert_eq!(
        bob.read(|s| s
            .conv(&general())
            .map(|c| c.entries.back().map(|e| e.kind.clone()))),
        Some(Some(EntryKind::Own(Delivery::Queued)))
    );
    wait(&alice, "alice's messages acked", |s| {
        texts(s, &general()).len() == 4
            && s.conv(&general())
                .is_some_and(|c| c.entries.iter().all(|e| e.id.is_some()))
    })
    .await;

    // The network comes back: bob recovers by itself.
    proxy.set_down(false);
    wait(&bob, "bob recovered", |s| {
        s.status_text()
            .starts_with("connected as bob · recovered (")
    })
    .await;
    let expected = [
        "hello bob 👋",
        "while you were out 1",
        "while you were out 2",
        "while you were out 3",
        "queued one",
        "queued two",
    ];
    wait(
        &bob,
        "bob has every message once, in order, and his outbox sent",
        |s| {
            texts(s, &general()) == expected
                && s.outbox_len() == 0
                && s.conv(&general())
                    .is_some_and(|c| c.entries.iter().all(|e| e.id.is_some()))
        },
    )
    .await;
    wait(&bob, "bob got the DM sent while away", |s| {
        texts(s, &bob_dm) == ["psst", "call me"]
    })
    .await;
    assert!(
        bob.read(|s| s.rooms()) == ["#general"],
        "bob is back in his rooms"
    );
    wait(&alice, "alice gets bob's queued lines in order", |s| {
        texts(s, &general()) == expected
    })
    .await;

    // Ids are in order on both sides.
    let ids = bob.read(|s| {
        s.conv(&general())
            .map(|c| {
                c.entries
                    .iter()
                    .filter_map(|e| e.id.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    });
    let numbers: Vec<u64> = ids.iter().filter_map(|i| i.parse().ok()).collect();
    if numbers.len() == ids.len() {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "ids in order: {ids:?}"
        );
    }

    alice.quit().await;
    bob.quit().await;
    drop(proxy);
    server.stop().await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_username_is_refused_and_another_can_be_chosen() {
    let server = TestServer::start(TestServer::config()).await;
    let first = Client::start(config(&server.url(), "carol"));
    wait(&first, "carol connected", |s| {
        s.status_text() == "connected as carol"
    })
    .await;
    let second = Client::start(config(&server.url(), "Carol"));
    wait(&second, "the second carol refused", |s| {
        s.status_text().starts_with("refused (username_taken")
            && s.toasts.iter().any(|t| t.text.contains("Carol is taken"))
    })
    .await;
    // The second user types another name and is in, without restarting.
    second.type_line("carol2");
    wait(
        &second,
        "the second user connected under the new name",
        |s| s.status_text() == "connected as carol2",
    )
    .await;
    first.quit().await;
    second.quit().await;
    server.stop().await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_that_goes_silent_is_noticed_and_said() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = Proxy::start(server.addr).await;
    let dave = Client::start(config(&proxy.url(), "dave"));
    wait(&dave, "dave connected", |s| {
        s.status_text() == "connected as dave"
    })
    .await;
    dave.type_line("/join #quiet");
    wait(&dave, "dave in #quiet", |s| {
        s.active == ConvId::Room("#quiet".into())
    })
    .await;

    // Nothing is closed: bytes just stop flowing (a half-open connection).
    // Only the client's own liveness check can tell.
    proxy.freeze();
    wait(&dave, "dave says the connection is gone", |s| {
        s.status_text().starts_with("reconnecting (attempt")
    })
    .await;
    // What he types now waits, visibly.
    dave.type_line("anyone?");
    wait(&dave, "dave's line is queued", |s| {
        s.queued_len() == 1
            && s.conv(&ConvId::Room("#quiet".into())).is_some_and(|c| {
                c.entries
                    .back()
                    .is_some_and(|e| e.kind == EntryKind::Own(Delivery::Queued))
            })
    })
    .await;

    dave.quit().await;
    drop(proxy);
    server.stop().await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_connect_is_retried_until_the_server_is_reachable() {
    let server = TestServer::start(TestServer::config()).await;
    let proxy = Proxy::start(server.addr).await;
    proxy.set_down(true);
    let erin = Client::start(config(&proxy.url(), "erin"));
    wait(&erin, "erin keeps trying", |s| {
        s.status_text().contains("(attempt 3)")
    })
    .await;
    assert!(erin.read(|s| s.status_text()).starts_with("connecting to "));
    proxy.set_down(false);
    wait(&erin, "erin connected", |s| {
        s.status_text() == "connected as erin"
    })
    .await;
    erin.quit().await;
    drop(proxy);
    server.stop().await.expect("server stops");
}

/// Many requests at once (here 45 joins typed in a burst) are each answered
/// with their own ack. rust_socketio picks ack ids at random in 0..999; two
/// in flight with the same id get each other's answers and end its reader,
/// so chat-tui sends one request at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_requests_gets_every_answer_right() {
    let server = TestServer::start(chat_server::Config {
        event_rate: 0.0,
        ..TestServer::config()
    })
    .await;
    let bob = Client::start(config(&server.url(), "bob"));
    wait(&bob, "bob connected", |s| {
        s.status_text() == "connected as bob"
    })
    .await;
    for i in 0..45 {
        bob.type_line(&format!("/join #r{i}"));
    }
    wait(&bob, "every join answered as a join", |s| {
        (0..45).all(|i| {
            s.conv(&ConvId::Room(format!("#r{i}")))
                .is_some_and(|c| c.member_count == Some(1) && c.members.contains("bob"))
        })
    })
    .await;
}
