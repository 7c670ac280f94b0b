//! Keeps per-connection memory down. hyper parses the URI and headers as
//! slices of its 8–16 KiB read buffer, and the socket.io engine keeps the
//! request parts for the connection's whole life, which pins that whole
//! buffer per user. Copying the few parts the engine reads into fresh
//! values (and dropping axum's `OriginalUri`) lets the buffer go.
//!
//! Only the headers the engine reads are kept: a request carries at most
//! one of them, so the copy is a one-entry map (about 100 bytes a user
//! instead of about 1.2 KiB for a map sized for every upgrade header).
//! hyper decides on the upgrade while parsing, before this runs.

use axum::extract::{OriginalUri, Request};
use http::{HeaderMap, HeaderValue, Uri, header};

/// The headers the engine reads: the WebSocket key (to answer the upgrade)
/// and the content type of a long-polling POST.
const KEPT: [header::HeaderName; 2] = [header::SEC_WEBSOCKET_KEY, header::CONTENT_TYPE];

pub async fn lean(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
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
    Request::from_parts(parts, body)
}
