//! `chat-server`: the chat contract (`docs/PROTOCOL.md`) on socketioxide.
//!
//! Layout, from the edge inwards (each folder's `mod.rs` says more):
//! - [`config`]: every flag, its environment variable and default.
//! - [`http`]: the edge: the accept loop, TLS, CORS, the client's address
//!   (and the gate for addresses locked for failed logins), lean requests,
//!   ending a socket's transport from the server, `/healthz`, `/readyz`.
//! - [`chat`]: the `/chat` namespace, one file per capability (identity,
//!   accounts, recovery, rooms, messaging, history, typing, presence),
//!   and the rules they share (the per-socket sequencer, the rate limit,
//!   the presence gate, refusals).
//! - [`live`]: what only this node knows, [`ChatState`], one owner per
//!   file behind one lock: sessions, admission, rooms, the log, the
//!   recovery window, the session writer, the delivery order.
//! - [`api`]: (v3) the HTTP API under `/api/v1`: routes, bodies,
//!   statuses; what each request does is [`chat::api`]'s.
//! - [`auth`]: password hashing on threads of its own, bounded, and the
//!   lockout after wrong passwords.
//! - [`cluster`]: several nodes on one Redis: the message feed every node
//!   delivers from, names across nodes, the heartbeat.
//! - [`store`]: the durable state behind one seam (memory, SQLite or
//!   Redis).
//! - [`ops`]: running on a host: metrics, the `/admin` namespace, its
//!   event feed and account watch, logging.
//! - [`cli`]: `--check` and `chat-server account add|passwd|remove|list`.
//! - [`clock`]: the wall clock, read one way everywhere.
//!
//! Imports run one way: `chat` uses the folders below it; `cluster` uses
//! `live` and `store`; `live` uses only `store`, `config` and `clock`;
//! `http` knows nothing of chat; `api` (the HTTP API's edge) uses `chat`
//! and `http`, and nothing uses it but [`app`].
//!
//! [`serve`] runs the whole server on a bound listener until a shutdown
//! future resolves; `main.rs` only parses flags, sets up logging and calls it.

pub mod api;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod http;
pub mod live;
pub mod ops;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use socketioxide::{ParserConfig, SocketIo};
use tokio::net::TcpListener;

use self::http::{client_addr, cors, health, lean_request, listener, tls, transport};
use self::ops::{admin, admin_feed, metrics};

pub use config::Config;
pub use live::ChatState;

/// The server as a router, with its socket.io handle and state.
pub struct App {
    pub router: Router,
    pub io: SocketIo,
    pub state: Arc<ChatState>,
    pub metrics: Arc<metrics::Metrics>,
    /// The other nodes, when several share a Redis.
    pub cluster: Option<Arc<cluster::Cluster>>,
}

/// `/healthz`, `/readyz` and, when given, `/metrics`.
fn ops_routes(
    store: Arc<dyn store::Store>,
    metrics: Option<(Arc<metrics::Metrics>, Arc<ChatState>)>,
) -> Router {
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz).with_state(store));
    match metrics {
        Some(m) => router.route("/metrics", get(metrics::handler).with_state(m)),
        None => router,
    }
}

/// Messages a `--store memory` server keeps at most (the oldest go
/// first): history and replay as far back as that.
pub const MEMORY_STORE_MESSAGES: usize = 100_000;

/// How often retention runs.
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Opens the store `config` names and reads what it kept. Errors say what
/// is wrong and where.
pub async fn open_store(
    config: &Config,
) -> Result<(Arc<dyn store::Store>, store::Startup), store::StoreError> {
    if let Some(url) = &config.redis_url {
        let node = config
            .node_id
            .clone()
            .unwrap_or_else(cluster::random_node_id);
        let redis = store::RedisStore::open(url, &node)?;
        let startup = store::Store::startup(&redis).await?;
        tracing::info!(node = %node, head = startup.head, "store: redis at {url}");
        return Ok((Arc::new(redis), startup));
    }
    let store: Arc<dyn store::Store> = match config.store {
        config::StoreKind::Memory => Arc::new(store::MemoryStore::new(MEMORY_STORE_MESSAGES)),
        config::StoreKind::Sqlite => {
            let dir = config.data_dir.clone();
            let opened = tokio::task::spawn_blocking(move || store::SqliteStore::open(&dir))
                .await
                .map_err(|e| store::StoreError::Unavailable(e.to_string()))??;
            tracing::info!("store: {}", opened.path().display());
            Arc::new(opened)
        }
    };
    let startup = store.startup().await?;
    Ok((store, startup))
}

/// Password hashes run at once: half the cores (at least one), so that a
/// flood of logins leaves CPU for the people chatting.
fn hashing_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Builds the server on an opened store. Must run inside a tokio runtime
/// (it starts the admin feed and the session writer).
pub fn app(config: Config, store: Arc<dyn store::Store>, startup: &store::Startup) -> App {
    let cors = Arc::new(cors::Cors::new(&config.cors_origins));
    let metrics_here = config.metrics_bind.is_none();
    let metrics = Arc::new(metrics::Metrics::new());
    let (layer, io) = SocketIo::builder()
        .max_payload(config.max_payload)
        .ws_max_message_size(config.max_payload as usize)
        .ws_max_frame_size(config.max_payload as usize)
        .max_buffer_size(config.socket_buffer)
        .ping_interval(config.ping_interval)
        .ping_timeout(config.ping_timeout)
        .ws_read_buffer_size(512)
        .connect_timeout(config.connect_timeout)
        // The contract has no binary attachments: any is refused.
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(0)
                .max_incoming_binary_buf_size(0),
        )
        .build_layer();
    let state = ChatState::new(config);
    let (sessions_tx, sessions_rx) = tokio::sync::mpsc::unbounded_channel();
    state.persist_sessions(sessions_tx);
    let cluster = store
        .as_redis()
        .map(|redis| Arc::new(cluster::Cluster::new(redis, startup.head)));
    if cluster.is_some() {
        // Several nodes: a session is taken up by whichever node its
        // client reconnects to, when it does (chat::accounts), not by every
        // node at start.
        state.restore(&store::Startup {
            sessions: Vec::new(),
            ..startup.clone()
        });
    } else {
        state.restore(startup);
    }
    {
        // Session changes go to the store in the order they happened.
        let metrics = Arc::clone(&metrics);
        tokio::spawn(live::write_sessions(
            sessions_rx,
            Arc::clone(&store),
            move |_| metrics.store_error(metrics::StoreOp::Session),
        ));
    }
    {
        let store = Arc::clone(&store);
        let state = Arc::clone(&state);
        let metrics = Arc::clone(&metrics);
        let retention = state.config.retention;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_INTERVAL);
            loop {
                tick.tick().await;
                let cutoff = clock::now_ms().saturating_sub(retention.as_millis() as u64);
                match store.prune(cutoff).await {
                    Ok(upto) => state.set_pruned_upto(upto),
                    Err(e) => {
                        metrics.store_error(metrics::StoreOp::Prune);
                        tracing::warn!("retention: {e}");
                    }
                }
            }
        });
    }
    let accounts = Arc::new(auth::Accounts::new(
        hashing_workers(),
        state.config.login_lockout,
        state.config.login_address_limit,
    ));
    let gate = Arc::new(client_addr::Gate {
        trusted: state.config.trusted_proxies.clone(),
        addresses: accounts.addresses.clone(),
    });
    let feed = admin_feed::AdminFeed::start(io.clone(), Arc::clone(&state));
    let transports = Arc::new(transport::Transports::default());
    let svc = chat::ChatService {
        state: Arc::clone(&state),
        io: io.clone(),
        admin: feed,
        transports: Arc::clone(&transports),
        store: Arc::clone(&store),
        delivery: Arc::default(),
        accounts: Arc::clone(&accounts),
        metrics: Arc::clone(&metrics),
        presence_gate: Arc::new(chat::presence_gate::PresenceGate::new(
            state.config.presence_burst,
        )),
        cluster,
        account_watch: Arc::default(),
        moderation: Arc::new(chat::Moderation::new(Arc::clone(&store))),
        api: Arc::default(),
    };
    svc.follow_cluster(startup.head);
    svc.watch_policy();
    svc.account_watch
        .start(Arc::clone(&svc.store), svc.admin.clone());
    let moderation = Arc::clone(&svc.moderation);
    let cluster = svc.cluster.clone();
    let api_routes = api::routes(api::Api {
        svc: Arc::new(svc.clone()),
        metrics: Arc::clone(&metrics),
        max_body: usize::try_from(state.config.max_payload).unwrap_or(usize::MAX),
        body_timeout: state.config.header_timeout,
    });
    chat::register(svc);
    admin::register(&io, Arc::clone(&state), moderation, cluster.clone());
    let on_main_port = metrics_here.then(|| (Arc::clone(&metrics), Arc::clone(&state)));
    let router = ops_routes(store, on_main_port)
        .merge(api_routes)
        .layer(layer)
        .layer(axum::middleware::map_request_with_state(
            transports,
            lean_request::lean,
        ))
        .layer(axum::middleware::from_fn_with_state(
            gate,
            client_addr::gate,
        ))
        .layer(axum::middleware::from_fn_with_state(cors, cors::guard));
    App {
        router,
        io,
        state,
        metrics,
        cluster,
    }
}

/// Serves on `listener` until `shutdown` resolves, then closes every socket
/// (reason: server shutting down) and returns within the shutdown grace.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (store, startup) = open_store(&config)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    serve_on(listener, config, store, startup, shutdown).await
}

/// [`serve`] on a store already opened (tests pass one that fails on
/// demand).
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    store: Arc<dyn store::Store>,
    startup: store::Startup,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
    let header_timeout = config.header_timeout;
    let tls = tls::from_config(&config).map_err(|e| std::io::Error::other(e.to_string()))?;
    let metrics_listener = match config.metrics_bind {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {addr} for metrics: {e}"),
            )
        })?),
        None => None,
    };
    let App {
        router,
        io,
        state,
        metrics,
        cluster,
    } = app(config, Arc::clone(&store), &startup);
    let reloader = tls::watch_sighup(tls.clone(), Arc::clone(&metrics));
    // Said once the store is open: a server that cannot open it never
    // claims to be listening.
    if let Ok(addr) = listener.local_addr() {
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!("listening on {scheme}://{addr}");
    }
    let metrics_server = metrics_listener.map(|l| {
        if let Ok(addr) = l.local_addr() {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        let routes = ops_routes(
            Arc::clone(&store),
            Some((Arc::clone(&metrics), Arc::clone(&state))),
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, routes).await {
                tracing::warn!("metrics listener: {e}");
            }
        })
    });
    let stats = tokio::spawn(admin::stats_loop(
        io.clone(),
        Arc::clone(&state),
        Arc::clone(&metrics),
        cluster,
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener::serve(
        listener,
        router,
        tls,
        header_timeout,
        grace,
        async move {
            let _ = stop_rx.await;
        },
    ));
    shutdown.await;
    tracing::info!("shutting down");
    stats.abort();
    reloader.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    let _ = tokio::time::timeout(grace, io.close()).await;
    let _ = stop_tx.send(());
    // Every session's window is stored, then the store closes cleanly.
    let _ = tokio::time::timeout(grace, state.flush_sessions()).await;
    store.close().await;
    match tokio::time::timeout(grace + grace, server).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(std::io::Error::other(join)),
        Err(_) => {
            tracing::warn!("connections still open after the grace period; exiting anyway");
            Ok(())
        }
    }
}
