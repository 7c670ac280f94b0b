//! `chat-tui`: the terminal client of the chat server.
//!
//! Layout:
//! - [`commands`]: the input line's language: `/join` and the other slash
//!   commands, and Tab completion of commands, rooms and usernames.
//! - [`state`]: the application state and the pure
//!   `update(&mut State, Input) -> Vec<Effect>`: conversations, unread
//!   counts, the outbox, the merge of replayed messages, presence, typing,
//!   toasts and the connection status.
//! - [`view`]: drawing the state with ratatui, nothing else.
//! - [`net`]: the network task that owns the rust_socketio client, connects,
//!   checks liveness and reconnects with the session token and offset; it
//!   talks to the app only through channels of typed events.
//! - [`client`]: the app-and-network stack without a terminal ([`Client`]),
//!   used by the terminal app and by the end-to-end tests.
//! - [`app`]: the terminal app: the `select!` loop over keys, network and
//!   clock, drawing when something changed, restoring the terminal on exit
//!   and on panic.

pub mod app;
pub mod client;
pub mod commands;
pub mod net;
pub mod password;
pub mod state;
pub mod view;

pub use client::Client;
pub use net::NetConfig;

/// Runs the terminal client for `username` against `server` (like
/// `http://127.0.0.1:3000`) until the user quits.
pub async fn run(server: &str, username: &str) -> std::io::Result<()> {
    app::run(NetConfig::new(server, username)).await
}
