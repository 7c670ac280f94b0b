//! `--ca-file`: the TUI's stack reaches a server behind TLS whose
//! certificate is signed by a private certificate authority only when told
//! to trust that authority, and says "TLS failure" otherwise. The CA and
//! the server certificate are made with the `openssl` command for this test
//! (skipped, with a message, when it is not installed); a small TLS
//! terminator in front of the in-process server plays the HTTPS front end.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chat_e2e::{TestServer, WAIT};
use chat_tui::state::ConnectFailure;
use chat_tui::{Client, NetConfig};
use tokio::net::{TcpListener, TcpStream};

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it
/// (`server.p12`, password `test`). False if openssl is missing.
fn make_certificates(dir: &Path) -> bool {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=chat test CA",
        ],
    ) && openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ) && {
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .is_ok()
    } && openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ) && openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-out",
            "server.p12",
            "-inkey",
            "server.key",
            "-in",
            "server.pem",
            "-passout",
            "pass:test",
        ],
    )
}

/// Terminates TLS on a loopback port and forwards to `target`.
async fn tls_front(identity: native_tls::Identity, target: std::net::SocketAddr) -> u16 {
    let acceptor = tokio_native_tls::TlsAcceptor::from(
        native_tls::TlsAcceptor::new(identity).expect("TLS acceptor"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    port
}

fn config(url: &str, user: &str) -> NetConfig {
    NetConfig {
        ack_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        ..NetConfig::new(url, user)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_is_trusted_with_ca_file_and_refused_without() {
    let dir = tempfile::tempdir().expect("temp dir");
    if !make_certificates(dir.path()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI has openssl (.ci/run installs it)"
        );
        println!("SKIPPED: the openssl command is not available");
        return;
    }
    let p12 = std::fs::read(dir.path().join("server.p12")).expect("server.p12");
    let identity = native_tls::Identity::from_pkcs12(&p12, "test").expect("identity");
    let server = TestServer::start(TestServer::config()).await;
    let port = tls_front(identity, server.addr).await;
    let url = format!("https://127.0.0.1:{port}");

    // Without the CA: the certificate is not trusted, and that is said.
    let stranger = Client::start(config(&url, "alice"));
    assert!(
        stranger
            .wait_for(WAIT, |s| s.last_failure == Some(ConnectFailure::Tls))
            .await,
        "status: {}",
        stranger.read(|s| s.status_text())
    );
    stranger.quit().await;

    // With --ca-file: connected.
    let tls = chat_tui::config::tls_with_ca(&dir.path().join("ca.pem")).expect("CA file");
    let trusted = Client::start(NetConfig {
        tls: Some(tls),
        ..config(&url, "alice")
    });
    assert!(
        trusted
            .wait_for(WAIT, |s| s.status_text() == "connected as alice")
            .await,
        "status: {}",
        trusted.read(|s| s.status_text())
    );
    trusted.type_line("/join #secure");
    assert!(
        trusted
            .wait_for(WAIT, |s| s.active
                == chat_tui::state::ConvId::Room("#secure".into()))
            .await
    );
    trusted.quit().await;
    server.stop().await.expect("server stops");
}
