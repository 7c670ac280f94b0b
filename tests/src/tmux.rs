//! A tmux server of one test's own (`tmux -L name`), for driving the real
//! `chat-tui` as a person would: type into a pane (`send-keys`), read its
//! screen (`capture-pane`), wait for what it shows. Killed on drop.

use std::process::Command;
use std::time::Duration;

use crate::WAIT;

/// How long a screen may take to show something: generous, for a slow
/// machine running two terminals, a server and the test at once.
pub const SCREEN_WAIT: Duration = Duration::from_secs(3 * WAIT.as_secs());

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A tmux server named after `test` and this process.
    pub fn new(test: &str) -> Tmux {
        Tmux {
            socket: format!("chat-tui-{test}-{}", std::process::id()),
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts the workspace's `chat-tui` with `args` in a new tmux session
    /// `pane`, on a 160×40 screen: wide enough that no line of the
    /// scenarios is cut or wrapped.
    pub fn chat_tui(&self, pane: &str, args: &str) {
        let bin = crate::workspace_binary("chat-tui", "chat-tui");
        let cmd = format!("{} {args}", bin.display());
        self.run(&[
            "new-session",
            "-d",
            "-s",
            pane,
            "-x",
            "160",
            "-y",
            "40",
            &cmd,
        ]);
    }

    /// tmux's bell flag of `target`'s window: "1" once it rang.
    pub fn bell_flag(&self, target: &str) -> String {
        self.run(&["display-message", "-p", "-t", target, "#{window_bell_flag}"])
            .trim()
            .to_owned()
    }

    pub fn capture(&self, target: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", target])
    }

    pub fn keys(&self, target: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", target];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` literally, then Enter.
    pub fn line(&self, target: &str, text: &str) {
        self.run(&["send-keys", "-t", target, "-l", text]);
        self.keys(target, &["Enter"]);
    }

    /// Waits until `target`'s screen shows `needle`.
    pub async fn wait_for(&self, target: &str, needle: &str) {
        self.wait_until(target, &format!("{needle:?}"), |screen| {
            screen.contains(needle)
        })
        .await;
    }

    /// Waits until some line of `target`'s screen holds every one of
    /// `parts`, in order (a time of day in between, say).
    pub async fn wait_for_line(&self, target: &str, parts: &[&str]) {
        self.wait_until(target, &format!("a line with {parts:?}"), |screen| {
            screen.lines().any(|l| in_order(l, parts))
        })
        .await;
    }

    /// Waits until `ok` holds for `target`'s screen; fails with what the
    /// screen shows after [`SCREEN_WAIT`].
    pub async fn wait_until(&self, target: &str, what: &str, ok: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.capture(target);
            if ok(&screen) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("{target}'s screen never showed {what}; it shows:\n{screen}");
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

/// Whether `line` holds each of `parts`, one after the other.
pub fn in_order(line: &str, parts: &[&str]) -> bool {
    let mut rest = line;
    for part in parts {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}
