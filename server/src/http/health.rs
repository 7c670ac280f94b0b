//! `GET /healthz` and `GET /readyz`, for load balancers, orchestrators and
//! monitoring. Both are cheap and unauthenticated and say nothing about
//! users.
//!
//! - `/healthz`: the process is serving HTTP (200 `ok`).
//! - `/readyz`: the store answers: its last write succeeded and a small
//!   read returns within [`READY_READ_TIMEOUT`] (200 `ready`), otherwise
//!   503 with the reason. A server whose disk is full is alive but not
//!   ready: it refuses messages with `unavailable`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::store::Store;

/// How long `/readyz` waits for the store's read.
pub const READY_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A room name no client can create (rooms start with `#`): the probe
/// reads an empty page through the same index real history uses.
const PROBE_ROOM: &str = "~readyz";

/// `GET /healthz`.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// Whether the store answers, or why not.
pub async fn store_ready(store: &dyn Store) -> Result<(), String> {
    if !store.healthy() {
        return Err("store unavailable: its last write failed".into());
    }
    match tokio::time::timeout(READY_READ_TIMEOUT, store.room_history(PROBE_ROOM, None, 1)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "store unavailable: no answer within {READY_READ_TIMEOUT:?}"
        )),
    }
}

/// `GET /readyz`.
pub async fn readyz(
    axum::extract::State(store): axum::extract::State<Arc<dyn Store>>,
) -> impl IntoResponse {
    match store_ready(store.as_ref()).await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}
