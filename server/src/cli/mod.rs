//! The commands that run instead of the server.
//!
//! - [`check`]: `--check`, the start-up checks without serving.
//! - [`account`]: `chat-server account add|passwd|remove|list`.

pub mod account;
pub mod check;
