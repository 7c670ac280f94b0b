//! One HTTP/1.1 request over a fresh connection, plain or over TLS, read
//! to the end (`Connection: close`): enough for `/metrics`, `/healthz`,
//! CORS checks and a polling handshake, without an HTTP client crate.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// A response: status, headers (names lowercased), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no response head in {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no complete response in time"))??;
    parse(&raw)
}

/// `method path` on `addr` over plain HTTP.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let tcp = TcpStream::connect(addr).await?;
    exchange(tcp, &addr.to_string(), method, path, headers).await
}

/// `GET path` on `addr`, which must answer 200: the body.
pub async fn get(addr: SocketAddr, path: &str) -> String {
    let res = request(addr, "GET", path, &[]).await.expect("GET");
    assert_eq!(res.status, 200, "GET {path}: {res:?}");
    res.body
}

/// A TLS client that trusts only `roots`.
pub fn tls_client(roots: &[CertificateDer<'static>]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).expect("add a root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `method path` on `addr` over TLS for the name `localhost`, trusting
/// only `roots`. A handshake the client refuses is an error.
pub async fn request_tls(
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = tokio::time::timeout(WAIT, tls_client(roots).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
    exchange(
        tls,
        &format!("localhost:{}", addr.port()),
        method,
        path,
        headers,
    )
    .await
}
