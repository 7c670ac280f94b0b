//! The `/admin` namespace: token middleware (constant-time compare), a
//! snapshot on connect, the periodic `admin:stats`, and `read_only` for
//! anything an admin client sends.

use std::sync::Arc;

use std::collections::BTreeMap;

use chat_shared::{
    ADMIN_NS, AckErr, AdminAuth, AdminSnapshot, AdminStats, AdminUser, CHAT_NS, ChatError,
    ConnectRefusal, ErrorCode, TRANSPORT_POLLING, TRANSPORT_WEBSOCKET, names, username_key,
};
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::Sid;
use socketioxide::{SocketIo, TransportType};
use subtle::ConstantTimeEq;

use crate::cluster::Cluster;
use crate::live::ChatState;
use crate::ops::metrics::Metrics;

/// Registers `/admin` on `io`. With several nodes (`cluster`), the
/// snapshot and the statistics are the cluster's.
pub fn register(
    io: &SocketIo,
    state: Arc<ChatState>,
    moderation: Arc<crate::live::policy::Moderation>,
    cluster: Option<Arc<Cluster>>,
) {
    let mw_state = Arc::clone(&state);
    let chat_io = io.clone();
    io.ns(
        ADMIN_NS,
        (move |s: SocketRef| {
            let state = Arc::clone(&state);
            let io = chat_io.clone();
            let moderation = Arc::clone(&moderation);
            let cluster = cluster.clone();
            async move { connected(s, &io, state, &moderation, cluster.as_deref()).await }
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
pub(crate) fn transport_of(io: &SocketIo, sid: Sid) -> String {
    let socket = io.of(CHAT_NS).and_then(|ns| ns.get_socket(sid));
    match socket.map(|s| s.transport_type()) {
        Some(TransportType::Websocket) => TRANSPORT_WEBSOCKET,
        _ => TRANSPORT_POLLING,
    }
    .to_owned()
}

async fn connected(
    s: SocketRef,
    io: &SocketIo,
    state: Arc<ChatState>,
    moderation: &crate::live::policy::Moderation,
    cluster: Option<&Cluster>,
) {
    state.admin_joined();
    let policy = moderation.cached();
    let mut snapshot = state.admin_snapshot(
        |sid| transport_of(io, sid),
        |key, account| policy.role(key, account),
    );
    if let Some(cluster) = cluster {
        cluster_snapshot(cluster, &state, &mut snapshot).await;
    }
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

/// (v3) This node's snapshot made the cluster's: every live node's users
/// (each with its node; an account on two nodes once, at the node of its
/// first client), and the cluster's counts. Left as this node's when
/// Redis cannot say.
async fn cluster_snapshot(cluster: &Cluster, state: &ChatState, snapshot: &mut AdminSnapshot) {
    let (presence, shares) = match (
        cluster.snapshot(state.node_presence()).await,
        cluster.admin_shares().await,
    ) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!("cluster admin snapshot: {e}");
            return;
        }
    };
    let mut users: BTreeMap<String, AdminUser> = BTreeMap::new();
    let here = snapshot
        .users
        .drain(..)
        .map(|u| (cluster.node().to_owned(), u));
    let there = shares
        .into_iter()
        .flat_map(|(node, share)| share.users.into_iter().map(move |u| (node.clone(), u)));
    for (node, mut u) in here.chain(there) {
        u.node = Some(node);
        let key = username_key(&u.username);
        match users.get_mut(&key) {
            Some(seen) => {
                seen.sessions = Some(seen.sessions.unwrap_or(0) + u.sessions.unwrap_or(0));
                if u.connected_at < seen.connected_at {
                    seen.connected_at = u.connected_at;
                    seen.node = u.node;
                    seen.transport = u.transport;
                }
            }
            None => {
                users.insert(key, u);
            }
        }
    }
    snapshot.users = users.into_values().collect();
    snapshot.online = presence.online;
    snapshot.rooms = presence.rooms;
}

/// (v3) The cluster's `online`, `rooms` and `messagesTotal` (this node's
/// counts and the other live nodes' as of their last heartbeat).
async fn cluster_counts(
    cluster: &Cluster,
    state: &ChatState,
    metrics: &Metrics,
) -> Option<(u64, u64, u64)> {
    let presence = cluster.snapshot(state.node_presence()).await.ok()?;
    let others: u64 = cluster
        .admin_shares()
        .await
        .ok()?
        .iter()
        .map(|(_, s)| s.messages_total)
        .sum();
    Some((
        presence.online,
        presence.rooms.len() as u64,
        metrics.messages_total() + others,
    ))
}

/// Sends `admin:stats` every `--stats-interval` while admins listen.
/// Its counts are the ones `/metrics` shows; (v3) with several nodes,
/// the cluster's.
pub async fn stats_loop(
    io: SocketIo,
    state: Arc<ChatState>,
    metrics: Arc<Metrics>,
    cluster: Option<Arc<Cluster>>,
) {
    let period = state
        .config
        .stats_interval
        .max(std::time::Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    let mut last_total = metrics.messages_total();
    loop {
        tick.tick().await;
        let counted = match &cluster {
            Some(c) if state.admins() > 0 => cluster_counts(c, &state, &metrics).await,
            _ => None,
        };
        let (online, rooms, total) = counted
            .unwrap_or_else(|| (state.online(), state.room_count(), metrics.messages_total()));
        let stats = AdminStats {
            online,
            rooms,
            messages_total: total,
            messages_per_sec: total.saturating_sub(last_total) as f64 / period.as_secs_f64(),
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
