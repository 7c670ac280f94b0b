//! Logs: to stderr, as text (no colour codes unless stderr is a terminal)
//! or as one JSON object a line for log collectors (`--log-format json`).
//! `RUST_LOG` picks the level (default `info`).
//!
//! Never message text or passwords, at any level. Our own logs name users,
//! codes and reasons only. The libraries under us print whole packets
//! (message text) and the connect `auth` (passwords) at debug and trace:
//! socketioxide, engineioxide, tungstenite. So below `info` only this
//! crate's own events are kept, whatever `RUST_LOG` says (events bridged
//! from the `log` crate included).

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use crate::config::LogFormat;

/// Whether an event or span may be logged at all: at `info` and above,
/// anything; below, only this crate's own.
pub fn allowed(meta: &Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO || meta.target().starts_with(env!("CARGO_CRATE_NAME"))
}

/// Installs the global subscriber: stderr, `format`, `RUST_LOG` (default
/// `info`). Does nothing if one is installed already.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let guard = filter_fn(allowed);
    let registry = tracing_subscriber::registry().with(filter).with(guard);
    let _ = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
