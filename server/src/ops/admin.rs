//! The `/admin` namespace: token middleware (constant-time compare), a
//! snapshot on connect, the periodic `admin:stats`, and `read_only` for
//! anything an admin client sends.

use std::sync::Arc;

use chat_shared::{
    ADMIN_NS, AckErr, AdminAuth, AdminStats, CHAT_NS, ChatError, ConnectRefusal, ErrorCode,
    TRANSPORT_POLLING, TRANSPORT_WEBSOCKET, names,
};
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::Sid;
use socketioxide::{SocketIo, TransportType};
use subtle::ConstantTimeEq;

use crate::live::ChatState;
use crate::ops::metrics::Metrics;

/// Registers `/admin` on `io`.
pub fn register(
    io: &SocketIo,
    state: Arc<ChatState>,
    moderation: Arc<crate::live::policy::Moderation>,
) {
    let mw_state = Arc::clone(&state);
    let chat_io = io.clone();
    io.ns(
        ADMIN_NS,
        (move |s: SocketRef| {
            let state = Arc::clone(&state);
            let io = chat_io.clone();
            let moderation = Arc::clone(&moderation);
            async move { connected(s, &io, state, &moderation) }
        })
        .with(move |TryData(auth): TryData<Value>| {
            let state = Arc::clone(&mw_state);
            async move { authorize(&state, auth.ok()) }
        }),
    );
}

fn authorize(state: &ChatState, auth: Option<Value>) -> Result<(), ConnectRefusal> {
    let Some(expected) = state
        .config
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Err(ConnectRefusal::new(
            ErrorCode::Unauthorized,
            "no admin token is configured",
        ));
    };
    let given = auth
        .and_then(|v| serde_json::from_value::<AdminAuth>(v).ok())
        .map(|a| a.token)
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        tracing::info!("admin connect refused");
        Err(ConnectRefusal::new(
            ErrorCode::Unauthorized,
            "admin token required",
        ))
    }
}

/// The transport a `/chat` socket is on now (it changes on upgrade).
fn transport_of(io: &SocketIo, sid: Sid) -> String {
    let socket = io.of(CHAT_NS).and_then(|ns| ns.get_socket(sid));
    match socket.map(|s| s.transport_type()) {
        Some(TransportType::Websocket) => TRANSPORT_WEBSOCKET,
        _ => TRANSPORT_POLLING,
    }
    .to_owned()
}

fn connected(
    s: SocketRef,
    io: &SocketIo,
    state: Arc<ChatState>,
    moderation: &crate::live::policy::Moderation,
) {
    state.admin_joined();
    let policy = moderation.cached();
    let snapshot = state.admin_snapshot(
        |sid| transport_of(io, sid),
        |key, account| policy.role(key, account),
    );
    let _ = s.emit(names::ADMIN_SNAPSHOT, &snapshot);
    s.on_fallback(
        |s: SocketRef, Event(event): Event, ack: AckSender| async move {
            let err = ChatError::new(
                ErrorCode::ReadOnly,
                "the admin namespace is read-only",
                &event,
            );
            let _ = s.emit(names::CHAT_ERROR, &err);
            let _ = ack.send(&AckErr::new(&err));
        },
    );
    s.on_disconnect(move |_s: SocketRef| {
        let state = Arc::clone(&state);
        async move { state.admin_left() }
    });
    tracing::info!("admin connected");
}

/// Sends `admin:stats` every `--stats-interval` while admins listen.
/// Its counts are the ones `/metrics` shows.
pub async fn stats_loop(io: SocketIo, state: Arc<ChatState>, metrics: Arc<Metrics>) {
    let period = state
        .config
        .stats_interval
        .max(std::time::Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    let mut last_total = metrics.messages_total();
    loop {
        tick.tick().await;
        let total = metrics.messages_total();
        let stats = AdminStats {
            online: state.online(),
            rooms: state.room_count(),
            messages_total: total,
            messages_per_sec: (total - last_total) as f64 / period.as_secs_f64(),
            errors_total: metrics.errors_total(),
            uptime_ms: state.uptime_ms(),
        };
        last_total = total;
        if state.admins() == 0 {
            continue;
        }
        if let Some(ns) = io.of(ADMIN_NS)
            && let Err(e) = ns.emit(names::ADMIN_STATS, &stats).await
        {
            tracing::debug!("admin stats: {e}");
        }
    }
}
