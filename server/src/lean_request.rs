//! Keeps per-connection memory down. hyper parses the URI and headers as
//! slices of its 8–16 KiB read buffer, and the socket.io engine keeps the
//! request parts for the connection's whole life, which pins that whole
//! buffer per user. Copying the few parts the engine reads into fresh
//! values (and dropping axum's `OriginalUri`) lets the buffer go.

use axum::extract::{OriginalUri, Request};
use http::{HeaderMap, HeaderValue, Uri, header};

/// The headers the engine and the WebSocket upgrade read.
const KEPT: [header::HeaderName; 7] = [
    header::HOST,
    header::CONTENT_TYPE,
    header::UPGRADE,
    header::CONNECTION,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::ORIGIN,
];

pub async fn lean(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    parts.extensions.remove::<OriginalUri>();
    if let Ok(uri) = parts.uri.to_string().parse::<Uri>() {
        parts.uri = uri;
    }
    let mut headers = HeaderMap::with_capacity(KEPT.len());
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
