//! `chat-tui`: the terminal client of the chat server.
//!
//! Layout:
//! - [`commands`]: the input line's language: `/join` and the other slash
//!   commands, and Tab completion of commands, rooms, usernames and (v3)
//!   emoji names.
//! - (v3) [`substitution`]: `s/old/new/` typed as a line, which edits my
//!   last message; [`emoji`]: the emoji short names (`:+1:`) for `/react`
//!   and Tab.
//! - [`state`]: the application state and the pure
//!   `update(&mut State, Input) -> Vec<Effect>`, one file per concern
//!   (conversations, outbox, session, editor, actions, viewport, backlog,
//!   presence, typing, notify, search, account; and for roles and
//!   moderation: moderation, room_events, blocking, rename, refusals,
//!   when; and for one account on several clients: markers, clients;
//!   and for messages that change: changes, change_commands, selection),
//!   each owning its fields.
//! - [`config`]: the configuration file, flags and environment merged
//!   into the effective settings, and the checks done before the screen
//!   opens (server URL, username, CA file).
//! - [`theme`]: the colours a user may change.
//! - [`login`]: (v3) `--login` once, then an API token kept in the data
//!   directory instead of the password; `/logout` revokes it.
//! - [`password`]: where the password comes from (file, environment, a
//!   question without echo), kept in a type that never prints it.
//! - [`msg`]: the messages between the app, the state and the network
//!   task (`Input`, `Effect`, `NetCommand`, `NetEvent`), so that neither
//!   imports the other.
//! - [`view`]: drawing the state with ratatui, nothing else: one file per
//!   panel (messages, sidebar, input, status) and `text` for what they share.
//! - [`net`]: the network task that owns the rust_socketio client: `run`
//!   (attempts and back-off), `attempt` (open, wait for the namespace, then
//!   `live`: events, commands, the liveness check), `requests` (the queue
//!   of acked requests), `classify` (why an attempt failed). It talks to
//!   the app only through channels of typed events.
//! - [`client`]: the app-and-network stack without a terminal ([`Client`]),
//!   used by the terminal app and by the end-to-end tests.
//! - [`app`]: the terminal app: the `select!` loop over keys, network and
//!   clock, drawing when something changed, restoring the terminal on exit
//!   and on panic.

pub mod app;
pub mod client;
pub mod commands;
pub mod config;
pub mod emoji;
pub mod login;
pub mod msg;
pub mod net;
pub mod password;
pub mod state;
pub mod substitution;
pub mod theme;
pub mod view;

pub use client::Client;
pub use net::NetConfig;

/// Runs the terminal client for `username` against `server` (like
/// `http://127.0.0.1:3000`) until the user quits.
pub async fn run(server: &str, username: &str) -> std::io::Result<()> {
    app::run(NetConfig::new(server, username)).await
}
