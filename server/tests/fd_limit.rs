//! The real binary and the open-files limit: it raises its soft limit to
//! the hard one at start-up and says so, and when descriptors run out it
//! keeps accepting once they free up again.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The chat-server command, its open-files limit set to `soft`/`hard`.
fn command(soft: u64, hard: u64) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    cmd.args(["--bind", "127.0.0.1:0", "--store", "memory"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only calls setrlimit, which is async-signal-safe, between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard)?;
            Ok(())
        });
    }
    cmd
}

/// Starts chat-server with the open-files limit at `soft`/`hard`; returns
/// it, its address and its log lines.
fn start(soft: u64, hard: u64) -> (Child, String, mpsc::Receiver<String>) {
    let mut cmd = command(soft, hard);
    let mut child = cmd.spawn().expect("spawn chat-server");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("chat-server did not start");
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on http://".len()..].trim().to_owned();
        }
    };
    (child, addr, rx)
}

fn handshake(addr: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!(
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).contains("\"sid\"")
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one_and_logged() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    let hard = hard.min(4096);
    let soft = 256.min(hard);
    let mut child = command(soft, hard).spawn().expect("spawn");
    let err = child.stderr.take().expect("stderr");
    let mut found = None;
    for line in BufReader::new(err).lines().map_while(Result::ok) {
        if let Some(i) = line.find("open files limit: ") {
            found = Some(line[i + "open files limit: ".len()..].trim().to_owned());
        }
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found, Some(hard.to_string()));
}

#[test]
fn accepting_goes_on_once_descriptors_free_up() {
    let (mut child, addr, _log) = start(48, 48);
    assert!(handshake(&addr), "serves before the flood");
    // More connections than descriptors: the server runs out.
    let held: Vec<_> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut served = false;
    while !served && Instant::now() < deadline {
        served = handshake(&addr);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "the accept loop stopped serving after EMFILE");
}
