//! Running the server on a host: what an operator watches and reads.
//!
//! - [`metrics`]: the counters behind `GET /metrics` and `admin:stats`.
//! - [`admin`]: the read-only `/admin` namespace and its stats.
//! - [`admin_feed`]: the ordered, lossy queue of `admin:event`s.
//! - [`account_watch`]: accounts created or removed by another process
//!   or node, told to `/admin`.
//! - [`logging`]: stderr, text or JSON, never message text.

pub mod account_watch;
pub mod admin;
pub mod admin_feed;
pub mod logging;
pub mod metrics;
