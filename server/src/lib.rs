//! `chat-server`: the chat contract (`docs/PROTOCOL.md`) on socketioxide.
//!
//! Layout:
//! - [`config`]: every flag, its environment variable and default.
//! - [`state`]: [`ChatState`], the one state type (users, sessions, room
//!   membership, the replay log, room history) that every handler calls.
//! - [`chat`]: the `/chat` namespace: username middleware, the connect
//!   sequence with session recovery, the event dispatcher, disconnects.
//! - [`admin`]: the read-only `/admin` namespace and its stats.
//! - [`admin_feed`]: the ordered, lossy queue of `admin:event`s.
//! - [`presence`]: the per-scope presence storm guard.
//! - [`rate_limit`]: the per-socket token bucket.
//! - [`sequencer`]: keeps each socket's events in arrival order.
//! - [`store`]: the durable state behind one seam (memory or SQLite).
//! - [`lean_request`]: trims what each connection keeps of its request.
//! - [`listener`]: the accept loop (header-read timeout, descriptor
//!   exhaustion, a kill switch per connection).
//! - [`transport`]: ends a socket's transport from the server, so that a
//!   client that fell behind resumes instead of missing messages.
//!
//! [`serve`] runs the whole server on a bound listener until a shutdown
//! future resolves; `main.rs` only parses flags, sets up logging and calls it.

pub mod admin;
pub mod admin_feed;
pub mod chat;
pub mod config;
pub mod lean_request;
pub mod listener;
pub mod presence;
pub mod rate_limit;
pub mod sequencer;
pub mod state;
pub mod store;
pub mod transport;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use socketioxide::{ParserConfig, SocketIo};
use tokio::net::TcpListener;

pub use config::Config;
pub use state::ChatState;

/// The server as a router, with its socket.io handle and state.
pub struct App {
    pub router: Router,
    pub io: SocketIo,
    pub state: Arc<ChatState>,
}

/// Builds the server. Must run inside a tokio runtime (it starts the admin
/// feed task).
pub fn app(config: Config) -> App {
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
    let feed = admin_feed::AdminFeed::start(io.clone(), Arc::clone(&state));
    let transports = Arc::new(transport::Transports::default());
    chat::register(chat::ChatService {
        state: Arc::clone(&state),
        io: io.clone(),
        admin: feed,
        transports: Arc::clone(&transports),
    });
    admin::register(&io, Arc::clone(&state));
    let router = Router::new()
        .layer(layer)
        .layer(axum::middleware::map_request_with_state(
            transports,
            lean_request::lean,
        ));
    App { router, io, state }
}

/// Serves on `listener` until `shutdown` resolves, then closes every socket
/// (reason: server shutting down) and returns within the shutdown grace.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
    let header_timeout = config.header_timeout;
    let App { router, io, state } = app(config);
    let stats = tokio::spawn(admin::stats_loop(io.clone(), Arc::clone(&state)));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener::serve(
        listener,
        router,
        header_timeout,
        grace,
        async move {
            let _ = stop_rx.await;
        },
    ));
    shutdown.await;
    tracing::info!("shutting down");
    stats.abort();
    let _ = tokio::time::timeout(grace, io.close()).await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace + grace, server).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(std::io::Error::other(join)),
        Err(_) => {
            tracing::warn!("connections still open after the grace period; exiting anyway");
            Ok(())
        }
    }
}
