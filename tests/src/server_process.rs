//! The real `chat-server` binary as a child process, for what only a
//! process shows: its stderr, its exit status, its signals.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{WAIT, workspace_binary};

/// The real binary, its stderr read line by line.
pub struct ServerProcess {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every stderr line so far.
    log: Vec<String>,
}

impl ServerProcess {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let exe = workspace_binary("chat-server", "chat-server");
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start chat-server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ServerProcess {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The real binary on the default on-disk store in `data`, on a free
    /// port, with no rate limit: what a test that kills it and starts it
    /// again on the same data directory needs.
    pub fn on_disk(data: &std::path::Path) -> ServerProcess {
        let data = data.to_str().expect("a UTF-8 data path");
        ServerProcess::start(
            &["--bind", "127.0.0.1:0", "--rate", "0", "--data-dir", data],
            &[],
        )
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(WAIT, async {
            while let Some(line) = self.lines.recv().await {
                self.log.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no {needle:?} on stderr; got:\n{}", self.log.join("\n")),
        }
    }

    /// The address from the "listening on" line.
    pub async fn addr(&mut self) -> SocketAddr {
        let line = self.wait_for("listening on ").await;
        let start = line.find("://").expect("a URL") + 3;
        let rest = &line[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':'))
            .unwrap_or(rest.len());
        rest[..end].parse().expect("an address")
    }

    /// SIGTERM, then everything it wrote: (stdout, stderr lines).
    pub async fn stop(mut self) -> (String, Vec<String>) {
        let pid = self.child.id().expect("pid").to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let mut stdout = self.child.stdout.take().expect("stdout");
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exit after SIGTERM")
            .expect("wait");
        assert!(status.success(), "exit status {status}");
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out)
            .await
            .unwrap();
        while let Ok(Some(line)) = tokio::time::timeout(WAIT, self.lines.recv()).await {
            self.log.push(line);
        }
        (out, self.log)
    }
}

impl ServerProcess {
    /// SIGKILL, and waits until the process is gone: a crash, for what
    /// must survive one.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends `signal` (a `kill` name such as `HUP`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }
}
