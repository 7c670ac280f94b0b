//! Who is on the other end of a request, and the gate that turns away an
//! address that keeps failing to log in.
//!
//! The client's address is the TCP peer's ([`PeerAddr`], put on every
//! request by the accept loop), unless that peer is a trusted proxy
//! (`--trusted-proxy`, by default the loopback addresses, where a reverse
//! proxy on the same host connects from): then it is the last address in
//! `X-Forwarded-For`, the one the proxy itself saw. The result goes on the
//! request as [`ClientAddr`], where the `/chat` middleware reads it.
//!
//! An address locked for failed logins (`--login-address-limit`, see
//! [`crate::auth`]) gets `429` with `Retry-After` for new Engine.IO
//! handshakes, before any WebSocket upgrade or Socket.IO work: a flood of
//! guesses then costs the server a parsed request head each, not a whole
//! handshake. Sessions already open from that address go on.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::auth::Guesses;
use crate::http::listener::PeerAddr;
use crate::http::transport::sid_of;

/// The client a request is from (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// What the gate needs: whom to believe, and the failed logins per address.
#[derive(Debug)]
pub struct Gate {
    pub trusted: Vec<IpAddr>,
    pub addresses: Option<Arc<Guesses>>,
}

impl Gate {
    /// The client behind `peer`, given the request's headers.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        if !self.trusted.contains(&peer) {
            return peer;
        }
        // Only the last entry: the ones before it are what the client
        // claimed, and anyone can claim anything.
        headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|a| a.trim().parse::<IpAddr>().ok())
            .map(|a| a.to_canonical())
            .unwrap_or(peer)
    }
}

/// Whether `req` opens a new Engine.IO session (rather than continuing one).
fn opens_session(req: &Request) -> bool {
    req.uri().path().starts_with("/socket.io") && sid_of(req.uri().query()).is_none()
}

/// The middleware: notes the client's address and turns away new
/// handshakes from a locked one.
pub async fn gate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let Some(PeerAddr(peer)) = req.extensions().get::<PeerAddr>().copied() else {
        return next.run(req).await;
    };
    let client = gate.client(peer, req.headers());
    req.extensions_mut().insert(ClientAddr(client));
    if let Some(addresses) = &gate.addresses
        && opens_session(&req)
        && let Some(wait) = addresses.locked_for(&client.to_string())
    {
        let secs = crate::auth::whole_secs(wait);
        let body = serde_json::json!({
            "code": "rate_limited",
            "message": crate::auth::address_locked_message(wait),
            "retryAfterMs": secs * 1000,
        });
        let mut res = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return res;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(trusted: &[&str]) -> Gate {
        Gate {
            trusted: trusted.iter().map(|a| a.parse().unwrap()).collect(),
            addresses: None,
        }
    }

    fn headers(xff: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_trusted_proxy_is_believed_and_no_one_else_is() {
        let g = gate(&["127.0.0.1"]);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        // The proxy appends what it saw; what the client claimed comes first.
        let h = headers(&["10.9.9.9, 198.51.100.7"]);
        assert_eq!(
            g.client(proxy, &h),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            g.client(stranger, &h),
            stranger,
            "only proxies are believed"
        );
        // Several header lines: the last one counts.
        let h = headers(&["10.9.9.9", "10.8.8.8, 2001:db8::1"]);
        assert_eq!(
            g.client(proxy, &h),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        // A last entry that is not an address is not guessed around.
        let h = headers(&["10.9.9.9, unknown"]);
        assert_eq!(g.client(proxy, &h), proxy);
        // A proxy that forwards nothing is the client itself.
        assert_eq!(g.client(proxy, &headers(&[])), proxy);
    }
}
