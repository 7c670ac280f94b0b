//! Keeps per-connection memory down. hyper parses the URI and headers as
//! slices of its 8–16 KiB read buffer, and the socket.io engine keeps the
//! request parts for the connection's whole life, which pins that whole
//! buffer per user. Copying the few parts the engine reads into fresh
//! values (and dropping axum's `OriginalUri`) lets the buffer go.
//!
//! Only the headers the engine reads are kept: a request carries at most
//! one of them, so the copy is a one-entry map (about 100 bytes a user
//! instead of about 1.2 KiB for a map sized for every upgrade header).
//! hyper decides on the upgrade while parsing, before this runs. Only
//! the engine's requests (under `/socket.io`) are trimmed: the other
//! routes (the HTTP API) read their headers and keep nothing.

use std::sync::Arc;

use axum::extract::{OriginalUri, Request, State};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};

use crate::http::listener::ConnHandle;
use crate::http::transport::{Transports, sid_of};

/// The headers the engine reads: the WebSocket key (to answer the upgrade)
/// and the content type of a long-polling POST.
const KEPT: [header::HeaderName; 2] = [header::SEC_WEBSOCKET_KEY, header::CONTENT_TYPE];

/// Also notes which connection each request of a `/chat` socket came on
/// ([`Transports::seen`]), and refuses requests for a socket whose
/// transport the server ended.
pub async fn lean(
    State(transports): State<Arc<Transports>>,
    req: Request,
) -> Result<Request, StatusCode> {
    if !req.uri().path().starts_with("/socket.io") {
        return Ok(req);
    }
    let (mut parts, body) = req.into_parts();
    if let (Some(sid), Some(conn)) = (
        sid_of(parts.uri.query()),
        parts.extensions.get::<ConnHandle>(),
    ) && !transports.seen(sid, conn)
    {
        return Err(StatusCode::BAD_REQUEST);
    }
    parts.extensions.remove::<OriginalUri>();
    if let Ok(uri) = parts.uri.to_string().parse::<Uri>() {
        parts.uri = uri;
    }
    let mut headers = HeaderMap::with_capacity(1);
    for name in KEPT {
        if let Some(v) = parts.headers.get(&name)
            && let Ok(v) = HeaderValue::from_bytes(v.as_bytes())
        {
            headers.insert(name, v);
        }
    }
    parts.headers = headers;
    Ok(Request::from_parts(parts, body))
}
