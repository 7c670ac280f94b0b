//! Smoke test of the real `chat-tui` binary: two of them in tmux against an
//! in-process server. Alice starts from a configuration file that names the
//! server, her name and two rooms to join; bob's mention of her rings her
//! terminal's bell (tmux's bell flag); they exchange a room message and a
//! DM, and each screen (capture-pane) shows them. Skipped, with a message,
//! when tmux is not installed.

use std::path::PathBuf;
use std::time::Duration;

use chat_e2e::tmux::Tmux;
use chat_e2e::{TestServer, WAIT};

fn chat_tui_binary() -> PathBuf {
    chat_e2e::workspace_binary("chat-tui", "chat-tui")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_in_tmux() {
    if !chat_e2e::installed("tmux", "-V", "two_users_chat_in_tmux") {
        return;
    }
    let bin = chat_tui_binary();
    let server = TestServer::start(TestServer::config()).await;
    let tmux = Tmux::new("test");
    let dir = tempfile::tempdir().expect("temp dir");
    let alice_conf = dir.path().join("alice.toml");
    std::fs::write(
        &alice_conf,
        format!(
            "server = \"{}\"\nuser = \"alice\"\nrooms = [\"#general\", \"#ops\"]\n",
            server.url()
        ),
    )
    .expect("write alice's config");
    let bob_conf = dir.path().join("bob.toml");
    std::fs::write(&bob_conf, "[notify]\nbell = false\n").expect("write bob's config");
    for user in ["alice", "bob"] {
        let cmd = if user == "alice" {
            format!("{} --config {}", bin.display(), alice_conf.display())
        } else {
            format!(
                "{} --config {} --user bob --server {}",
                bin.display(),
                bob_conf.display(),
                server.url()
            )
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            user,
            "-x",
            "100",
            "-y",
            "30",
            &cmd,
        ]);
    }
    tmux.wait_for("alice", "connected as alice").await;
    tmux.wait_for("bob", "connected as bob").await;

    // The configuration's rooms are joined on connect, the first shown.
    tmux.wait_for("alice", "#general 1 members").await;
    tmux.wait_for("alice", "#ops").await;
    tmux.line("bob", "/join #general");
    tmux.wait_for("alice", "#general 2 members").await;

    // A mention rings alice's bell (tmux flags the window of a detached
    // session that rang).
    assert_eq!(tmux.bell_flag("alice"), "0", "no bell before the mention");
    tmux.line("bob", "alice: are you there?");
    tmux.wait_for("alice", "bob: alice: are you there?").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while tmux.bell_flag("alice") != "1" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mention did not ring alice's bell"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    tmux.line("alice", "hello bob, 日本語 ok?");
    tmux.wait_for("bob", "alice: hello bob, 日本語 ok?").await;

    tmux.line("bob", "/msg alice just between us");
    // Alice sees the DM conversation appear with an unread count, opens it
    // with Alt-4 (feed, #general, #ops, @bob) and reads it.
    tmux.wait_for("alice", "@bob").await;
    tmux.keys("alice", &["M-4"]);
    tmux.wait_for("alice", "bob: just between us").await;

    // Ctrl-C quits and gives the terminal back.
    tmux.keys("alice", &["C-c"]);
    let deadline = tokio::time::Instant::now() + WAIT;
    while tmux
        .run(&["list-sessions", "-F", "#{session_name}"])
        .lines()
        .any(|l| l == "alice")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chat-tui did not quit on Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tmux);
    server.stop().await.expect("server stops");
}
