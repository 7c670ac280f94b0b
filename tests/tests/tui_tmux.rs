//! Smoke test of the real `chat-tui` binary: two of them in tmux against an
//! in-process server; alice and bob exchange a room message and a DM, and
//! each screen (capture-pane) shows them. Skipped, with a message, when tmux
//! is not installed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chat_e2e::{TestServer, WAIT};

/// The tmux server of this test only (`tmux -L name`), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn capture(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", target])
    }

    fn keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` literally, then Enter.
    fn line(&self, target: &str, text: &str) {
        self.run(&["send-keys", "-t", target, "-l", text]);
        self.keys(target, &["Enter"]);
    }

    async fn wait_for(&self, target: &str, needle: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let screen = self.capture(target);
            if screen.contains(needle) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{target}'s screen never showed {needle:?}; it shows:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn tmux_installed() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn chat_tui_binary() -> PathBuf {
    chat_e2e::workspace_binary("chat-tui", "chat-tui")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_in_tmux() {
    if !tmux_installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have tmux (.ci/run installs it)"
        );
        println!("SKIPPED two_users_chat_in_tmux: tmux is not installed");
        return;
    }
    let bin = chat_tui_binary();
    let server = TestServer::start(TestServer::config()).await;
    let tmux = Tmux {
        socket: format!("chat-tui-test-{}", std::process::id()),
    };
    for user in ["alice", "bob"] {
        let cmd = format!("{} --user {user} --server {}", bin.display(), server.url());
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

    tmux.line("alice", "/join #general");
    tmux.wait_for("alice", "#general 1 members").await;
    tmux.line("bob", "/join #general");
    tmux.wait_for("alice", "#general 2 members").await;

    tmux.line("alice", "hello bob, 日本語 ok?");
    tmux.wait_for("bob", "alice: hello bob, 日本語 ok?").await;

    tmux.line("bob", "/msg alice just between us");
    // Alice sees the DM conversation appear with an unread count, opens it
    // with Alt-3 and reads it.
    tmux.wait_for("alice", "@bob").await;
    tmux.keys("alice", &["M-3"]);
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
