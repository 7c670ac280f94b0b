//! (v3) Replies, edits, deletions and reactions between two real
//! `chat-tui`s in tmux, read from their screens: bob answers alice's
//! question with `/reply` and her screen shows what it answers; alice fixes
//! a typo with `s/old/new/` and again with `/edit`, and bob sees the line
//! change, marked "(edited)"; alice pastes a secret and deletes it (after
//! the `delete? (y/n)` question), and it is gone from both screens; bob
//! reacts with a Tab-completed `:+1:` and alice with 🎉 on a line selected
//! with Alt-Up, each seen in the other client; a DM deleted and reacted to
//! shows so on both sides; and bob, started again, gets all of it from the
//! server's history as it stands. Skipped, with a
//! message, when tmux is not installed.

use std::path::Path;

use chat_e2e::TestServer;
use chat_e2e::tmux::{Tmux, in_order};

/// Starts chat-tui in the tmux session `pane` as the guest `user`, joins
/// #general and waits until it is there.
async fn start(tmux: &Tmux, pane: &str, conf: &Path, server: &str, user: &str) {
    let args = format!(
        "--config {} --server {server} --user {user}",
        conf.display()
    );
    tmux.chat_tui(pane, &args);
    tmux.wait_for(pane, &format!("connected as {user}")).await;
    tmux.line(pane, "/join #general");
    tmux.wait_for(pane, " #general ").await;
}

/// Whether some line of `screen` holds `first` (in order) and the line
/// right under it holds `then`.
fn line_then(screen: &str, first: &[&str], then: &[&str]) -> bool {
    let lines: Vec<&str> = screen.lines().collect();
    lines
        .windows(2)
        .any(|w| in_order(w[0], first) && in_order(w[1], then))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_edits_deletions_and_reactions_in_tmux() {
    if !chat_e2e::installed(
        "tmux",
        "-V",
        "replies_edits_deletions_and_reactions_in_tmux",
    ) {
        return;
    }
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let tmux = Tmux::new("changes");
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("chat-tui.toml");
    std::fs::write(&conf, "[notify]\nbell = false\n").expect("write the config");
    start(&tmux, "alice", &conf, &url, "alice").await;
    start(&tmux, "bob", &conf, &url, "bob").await;
    tmux.wait_for("alice", "#general 2 members").await;

    // A reply shows what it answers, above it.
    tmux.line("alice", "where is the deploy doc?");
    tmux.wait_for_line("bob", &["alice: where is the deploy doc?"])
        .await;
    tmux.line("bob", "/reply in the wiki, under ops");
    for pane in ["alice", "bob"] {
        tmux.wait_until(pane, "the reply under its quote", |s| {
            line_then(
                s,
                &["↳ alice: where is the deploy doc?"],
                &["bob: in the wiki, under ops"],
            )
        })
        .await;
    }

    // A typo fixed with s/old/new/, then the line replaced with /edit.
    tmux.line("alice", "helo everyone");
    tmux.wait_for_line("bob", &["alice: helo everyone"]).await;
    tmux.line("alice", "s/helo/hello/");
    tmux.wait_for_line("bob", &["alice: hello everyone (edited)"])
        .await;
    tmux.line("alice", "/edit hello everyone, and welcome");
    tmux.wait_for_line("bob", &["alice: hello everyone, and welcome (edited)"])
        .await;
    tmux.wait_for_line("alice", &["alice: hello everyone, and welcome (edited)"])
        .await;
    // A substitution that finds nothing says so, and sends nothing.
    tmux.line("alice", "s/goodbye/bye/");
    tmux.wait_for("alice", "\"goodbye\" is not in your last message")
        .await;

    // A secret pasted by mistake, deleted: gone from both screens.
    let secret = format!("my password is hunter2-{}", std::process::id());
    tmux.line("alice", &secret);
    tmux.wait_for_line("bob", &["alice: ", &secret]).await;
    tmux.line("alice", "/delete");
    tmux.wait_for("alice", "delete? (y/n) alice: my password is")
        .await;
    tmux.keys("alice", &["y"]);
    for pane in ["alice", "bob"] {
        tmux.wait_until(pane, "the secret gone, [deleted] in its place", |s| {
            !s.contains("hunter2") && s.lines().any(|l| in_order(l, &["alice: [deleted]"]))
        })
        .await;
    }

    // Bob reacts to the newest message (the deleted one cannot be): 👍 from
    // :+1: and Tab, shown under alice's greeting on both screens.
    tmux.run(&["send-keys", "-t", "bob", "-l", "/react :+1:"]);
    tmux.keys("bob", &["Tab"]);
    tmux.wait_for("bob", "/react 👍").await;
    tmux.keys("bob", &["Enter"]);
    for pane in ["alice", "bob"] {
        tmux.wait_until(pane, "👍 1 under alice's greeting", |s| {
            line_then(s, &["alice: hello everyone, and welcome"], &["👍 1"])
        })
        .await;
    }

    // Alice selects bob's reply (Alt-Up: her greeting, then the reply)
    // and reacts to it.
    tmux.keys("alice", &["M-Up"]);
    tmux.wait_for("alice", "selected alice: hello everyone")
        .await;
    tmux.keys("alice", &["M-Up"]);
    tmux.wait_for("alice", "selected bob: in the wiki").await;
    tmux.line("alice", "/react 🎉");
    tmux.wait_until("bob", "🎉 1 under bob's reply", |s| {
        line_then(s, &["bob: in the wiki, under ops"], &["🎉 1"])
    })
    .await;

    // In a DM too: alice's secret deleted on both sides, and her reaction
    // to bob's answer seen by him.
    tmux.line("alice", "/msg bob psst, the door code is 4711");
    tmux.line("bob", "/msg alice");
    tmux.wait_for_line("bob", &["alice: psst, the door code is 4711"])
        .await;
    tmux.line("alice", "/delete");
    tmux.wait_for("alice", "delete? (y/n) alice: psst").await;
    tmux.keys("alice", &["y"]);
    tmux.wait_until("bob", "the DM deleted", |s| {
        !s.contains("4711") && s.lines().any(|l| in_order(l, &["alice: [deleted]"]))
    })
    .await;
    tmux.line("bob", "got it, thanks");
    tmux.wait_for_line("alice", &["bob: got it, thanks"]).await;
    tmux.line("alice", "/react :eyes:");
    tmux.wait_until("bob", "👀 1 under his DM", |s| {
        line_then(s, &["bob: got it, thanks"], &["👀 1"])
    })
    .await;

    // Bob starts again: the history brings every line as it stands.
    tmux.line("bob", "/quit");
    tmux.wait_until("bob", "chat-tui gone", |s| !s.contains("connected as bob"))
        .await;
    tmux.run(&["kill-session", "-t", "bob"]);
    start(&tmux, "bob", &conf, &url, "bob").await;
    tmux.wait_until("bob", "the history as it stands", |s| {
        line_then(
            s,
            &["↳ alice: where is the deploy doc?"],
            &["bob: in the wiki, under ops"],
        ) && line_then(s, &["bob: in the wiki, under ops"], &["🎉 1"])
            && line_then(
                s,
                &["alice: hello everyone, and welcome (edited)"],
                &["👍 1"],
            )
            && s.contains("alice: [deleted]")
            && !s.contains("hunter2")
    })
    .await;
    server.stop().await.unwrap();
}
