//! The chat wire contract (`docs/PROTOCOL.md`, v2) as Rust types. No I/O.
//!
//! v2 adds, without breaking a v1 client: accounts (`Auth.password`,
//! `Auth.register`, `account:password`), `history` paging, `ping`, action
//! (`/me`) messages, `queued` DM acks, the account and `unavailable` error
//! codes, and an `/admin` snapshot that names each user's transport instead
//! of its socket id. Every v2 field is optional on the wire and left out when
//! unused, so v1 payloads read and serialise exactly as before.
//!
//! Layout:
//! - [`rules`]: the validation rules both sides apply: usernames, room-name
//!   canonicalisation, the text rules, the password rule, the `history`
//!   limits, and the display sanitiser.
//! - [`error`]: [`ErrorCode`] and the structured [`ChatError`] object that
//!   every refusal carries (`chat:error` and `{ok:false, error}` acks).
//! - [`events`]: the payload structs and the two event enums,
//!   [`ClientEvent`] (client → server) and [`ServerEvent`] (server → client),
//!   each with its wire name and a parser from `(name, json)`.
//! - [`ack`]: the acknowledgement bodies (among them [`HistoryAck`] and
//!   [`PingAck`]) and the parser a client uses to turn an ack into
//!   `Result<T, ChatError>`.
//! - [`admin`]: the `/admin` namespace's payloads, and [`RoomCount`],
//!   which `room:list` and `presence:get` share with them.
//! - [`changes`]: (v3) replies, edits, deletions and reactions: their
//!   requests, `message:update`, the reaction rule.
//! - [`api`]: (v3) the HTTP API's request and answer bodies, and the
//!   HTTP status of each error code.
//! - [`moderation`]: (v3) server and room roles, the rank rule, room
//!   events, and the payloads of moderation, blocks and renames.
//!
//! Imports run one way (tests aside), each file using only those before it:
//! `error`, `rules`, `moderation`, `admin`, `events` (whose [`ServerEvent`] carries the
//! admin payloads), `ack` (whose history entries are the events' messages).

pub mod ack;
pub mod admin;
pub mod api;
pub mod changes;
pub mod error;
pub mod events;
pub mod moderation;
pub mod rules;
pub mod sessions;

pub use ack::*;
pub use admin::*;
pub use api::*;
pub use changes::*;
pub use error::*;
pub use events::*;
pub use moderation::*;
pub use rules::*;
pub use sessions::*;

/// The namespace people chat on.
pub const CHAT_NS: &str = "/chat";
/// The read-only monitoring namespace.
pub const ADMIN_NS: &str = "/admin";
