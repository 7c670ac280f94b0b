//! (v3) One account in two `chat-tui`s at once, in tmux, read from their
//! screens: a room joined in one appears in the other, reading a DM in one
//! clears its unread count in the other, a DM sent from one shows in the
//! other as the account's own line, `/sessions` lists both clients,
//! and quitting and starting one again shows the same unread counts as
//! before (they come from the server's read markers, not from the client).
//! Skipped, with a message, when tmux is not installed (CI fails instead).

use std::path::Path;

use chat_e2e::tmux::{Tmux, in_order};
use chat_e2e::{TestClient, TestServer, ok};
use serde_json::json;

/// Starts chat-tui in the tmux session `pane` as the user `user`, with
/// `flags`, and waits until it is connected.
async fn start(tmux: &Tmux, pane: &str, conf: &Path, server: &str, user: &str, flags: &str) {
    let args = format!(
        "--config {} --server {server} --user {user} {flags}",
        conf.display()
    );
    tmux.chat_tui(pane, &args);
    tmux.wait_for(pane, &format!("connected as {user}")).await;
}

/// Whether some line of `screen` shows `conv` with the unread `badge`.
fn shows_badge(screen: &str, conv: &str, badge: &str) -> bool {
    screen.lines().any(|l| in_order(l, &[conv, badge]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_in_two_panes_in_tmux() {
    if !chat_e2e::installed("tmux", "-V", "one_account_in_two_panes_in_tmux") {
        return;
    }
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let tmux = Tmux::new("sessions");
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("chat-tui.toml");
    std::fs::write(&conf, "[notify]\nbell = false\n").expect("write the config");
    let password = dir.path().join("ann.password");
    std::fs::write(&password, "ann's long password\n").expect("write the password");
    let pw = password.display();
    start(
        &tmux,
        "laptop",
        &conf,
        &url,
        "ann",
        &format!("--register --password-file {pw} --client-label laptop"),
    )
    .await;
    let desk_flags = format!("--password-file {pw} --client-label desk");
    start(&tmux, "desk", &conf, &url, "ann", &desk_flags).await;

    // Both stay connected; /sessions lists the two clients.
    tmux.line("laptop", "/sessions");
    tmux.wait_for("laptop", "your sessions (2):").await;
    tmux.wait_for_line("laptop", &["laptop", "live (this one)"])
        .await;
    tmux.wait_for_line("laptop", &["desk", "live"]).await;

    // A join in one appears in the other.
    tmux.line("laptop", "/join #general");
    tmux.wait_for_line("desk", &["2", "#general"]).await;
    tmux.keys("desk", &["M-2"]);
    tmux.wait_for("desk", "joined #general on another of your clients")
        .await;
    // Back to the feed: #general is not looked at on either client below.
    tmux.keys("desk", &["M-1"]);

    // A DM to ann is unread in both; reading it in one clears it in the
    // other.
    let bob = TestClient::chat(&url, "bob").await;
    ok(bob
        .ack("dm:message", json!({"to": "ann", "text": "are you there?"}))
        .await);
    for pane in ["laptop", "desk"] {
        tmux.wait_until(pane, "@bob unread", |s| shows_badge(s, "@bob", "1!"))
            .await;
    }
    tmux.line("laptop", "/msg bob");
    tmux.wait_for("laptop", "are you there?").await;
    tmux.wait_until("desk", "@bob read on the laptop", |s| {
        s.contains("@bob") && !shows_badge(s, "@bob", "1!")
    })
    .await;

    // A DM sent from the laptop shows on the desk as ann's own line.
    tmux.line("laptop", "yes, I am");
    let mut bob = bob;
    assert_eq!(bob.next("dm:message").await["text"], "yes, I am");
    tmux.keys("desk", &["M-3"]);
    tmux.wait_for_line("desk", &["ann", "yes, I am"]).await;
    tmux.keys("desk", &["M-1"]);

    // Three lines in #general while neither looks at it.
    ok(bob.ack("room:join", json!({"room": "#general"})).await);
    for i in 1..=3 {
        ok(bob
            .ack(
                "room:message",
                json!({"room": "#general", "text": format!("line {i}")}),
            )
            .await);
    }
    for pane in ["laptop", "desk"] {
        tmux.wait_until(pane, "#general 3 unread", |s| {
            shows_badge(s, "#general", " 3")
        })
        .await;
    }

    // The desk quits and starts again: the same counts, from the server.
    tmux.line("desk", "/quit");
    tmux.wait_until("desk", "chat-tui gone", |s| !s.contains("connected as ann"))
        .await;
    tmux.run(&["kill-session", "-t", "desk"]);
    start(&tmux, "desk", &conf, &url, "ann", &desk_flags).await;
    tmux.wait_until("desk", "#general 3 unread after a restart", |s| {
        shows_badge(s, "#general", " 3")
    })
    .await;
    let screen = tmux.capture("desk");
    assert!(
        !shows_badge(&screen, "@bob", "1!"),
        "the DM read on the laptop stays read:\n{screen}"
    );
    server.stop().await.unwrap();
}
