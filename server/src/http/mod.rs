//! The HTTP edge: everything between a TCP connection and the Socket.IO
//! engine or an operations route. Nothing here knows about chat.
//!
//! - [`listener`]: the accept loop (header-read timeout, descriptor
//!   exhaustion, a kill switch per connection, the TCP peer's address).
//! - [`tls`]: HTTPS/WSS with rustls, reloaded on SIGHUP.
//! - [`cors`]: which browser origins may connect (`--cors-origin`).
//! - [`client_addr`]: the client's address (through trusted proxies), and
//!   the gate that turns away addresses locked for failed logins.
//! - [`lean_request`]: trims what each connection keeps of its request.
//! - [`transport`]: ends a socket's transport from the server, so that a
//!   client that fell behind resumes instead of missing messages.
//! - [`health`]: `GET /healthz` and `GET /readyz`.
//!
//! Imports run one way: `listener` uses `tls`; `transport` uses
//! `listener`'s connection handle; `client_addr` and `lean_request` use
//! both.

pub mod client_addr;
pub mod cors;
pub mod health;
pub mod lean_request;
pub mod listener;
pub mod tls;
pub mod transport;
