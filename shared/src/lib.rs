//! The chat wire contract (`docs/PROTOCOL.md`) as Rust types. No I/O.
//!
//! Layout:
//! - [`rules`]: the validation rules both sides apply: usernames, room-name
//!   canonicalisation, the text rules, and the display sanitiser.
//! - [`error`]: [`ErrorCode`] and the structured [`ChatError`] object that
//!   every refusal carries (`chat:error` and `{ok:false, error}` acks).
//! - [`events`]: the payload structs and the two event enums,
//!   [`ClientEvent`] (client → server) and [`ServerEvent`] (server → client),
//!   each with its wire name and a parser from `(name, json)`.
//! - [`ack`]: the acknowledgement bodies and the parser a client uses to turn
//!   an ack into `Result<T, ChatError>`.
//! - [`admin`]: the `/admin` namespace's payloads.

pub mod ack;
pub mod admin;
pub mod error;
pub mod events;
pub mod rules;

pub use ack::*;
pub use admin::*;
pub use error::*;
pub use events::*;
pub use rules::*;

/// The namespace people chat on.
pub const CHAT_NS: &str = "/chat";
/// The read-only monitoring namespace.
pub const ADMIN_NS: &str = "/admin";
