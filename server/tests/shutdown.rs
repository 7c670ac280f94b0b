//! The real binary: SIGTERM and SIGINT stop it cleanly (exit 0, sockets
//! told the server is going away) within a few seconds.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn start() -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--bind", "127.0.0.1:0", "--store", "memory"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chat-server");
    let out = child.stderr.take().expect("stderr: the log");
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("chat-server exited before listening")
            .expect("read");
        if let Some(i) = line.find("listening on http://") {
            break line[i + "listening on http://".len()..].trim().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn stops_on(signal: &str) {
    let (mut child, addr) = start();
    // A client connected over the network (a raw long-polling handshake).
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    use std::io::{Read, Write};
    write!(
        s,
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("\"sid\""),
        "handshake answered"
    );

    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(code) = child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code:?} after {signal}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "no longer accepting after {signal}"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    stops_on("-TERM");
}

#[test]
fn sigint_stops_the_server_cleanly() {
    stops_on("-INT");
}
