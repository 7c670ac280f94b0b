//! Cross-origin requests from browsers (`--cors-origin`).
//!
//! A browser puts an `Origin` header on a page's cross-origin requests
//! (and on its WebSocket handshakes). A request whose origin is neither
//! this server's own (the origin's host and port are the request's `Host`)
//! nor one of `--cors-origin` is refused with 403 before it reaches
//! Socket.IO: by default no other site's page can open a session in its
//! visitor's browser, over long-polling or WebSocket. Allowed origins get
//! the CORS headers the browser needs to read the answers, and preflight
//! (`OPTIONS`) requests are answered here.
//!
//! Requests without `Origin` (chat-tui, other non-browser clients) are not
//! concerned.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

pub use crate::config::parse_origin;

/// The origins allowed besides the server's own.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    allowed: Vec<String>,
}

/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

impl Cors {
    /// `origins` as given to `--cors-origin` (checked by [`parse_origin`]).
    pub fn new(origins: &[String]) -> Self {
        Cors {
            allowed: origins
                .iter()
                .filter_map(|o| parse_origin(o).ok())
                .collect(),
        }
    }

    fn is_listed(&self, origin: &str) -> bool {
        self.allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
    }
}

/// Whether `origin` names the server the request was sent to: its host and
/// port are the `Host` header. The scheme is not compared: behind a
/// TLS-terminating proxy the page is `https://` while this server sees
/// plain HTTP.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
    authority.eq_ignore_ascii_case(host)
}

/// The middleware.
pub async fn guard(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(req).await;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if same_origin(&origin, host) {
        return next.run(req).await;
    }
    if !cors.is_listed(&origin) {
        tracing::debug!(origin, "cross-origin request refused");
        return (
            StatusCode::FORBIDDEN,
            "cross-origin request refused: the server allows other origins with --cors-origin\n",
        )
            .into_response();
    }
    let Ok(allow) = HeaderValue::from_str(&origin) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if preflight {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::NO_CONTENT;
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
        );
        if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
        res
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_when_given() {
        assert_eq!(
            parse_origin("https://Chat.Example.org/").unwrap(),
            "https://chat.example.org"
        );
        assert_eq!(
            parse_origin("http://localhost:5173").unwrap(),
            "http://localhost:5173"
        );
        assert!(parse_origin("chat.example.org").is_err());
        assert!(parse_origin("https://chat.example.org/app").is_err());
        assert!(parse_origin("ftp://chat.example.org").is_err());
    }

    #[test]
    fn the_servers_own_origin_is_recognised_by_host() {
        assert!(same_origin("http://127.0.0.1:3000", Some("127.0.0.1:3000")));
        assert!(same_origin(
            "https://chat.example.org",
            Some("chat.example.org")
        ));
        assert!(!same_origin(
            "https://evil.example",
            Some("chat.example.org")
        ));
        assert!(!same_origin(
            "http://127.0.0.1:3001",
            Some("127.0.0.1:3000")
        ));
        assert!(!same_origin("http://127.0.0.1:3000", None));
    }
}
