//! Helpers for tests that drive chat-tui's app-and-network stack (no
//! terminal) against real servers: quick timings, the text of a
//! conversation as the user reads it, and waiting for what a screen shows.

use std::time::Duration;

use chat_tui::state::{ConvId, EntryKind, State};
use chat_tui::{Client, NetConfig};

use crate::WAIT;

/// Short liveness and back-off timings, so that a lost connection shows
/// within a second or two.
pub fn config(url: &str, user: &str) -> NetConfig {
    NetConfig {
        ack_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        liveness_interval: Duration::from_millis(400),
        liveness_timeout: Duration::from_millis(800),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(500),
        ..NetConfig::new(url, user)
    }
}

/// The lines of a conversation, without the client's own notices.
pub fn texts(s: &State, id: &ConvId) -> Vec<String> {
    s.conv(id)
        .map(|c| {
            c.entries
                .iter()
                .filter(|e| e.kind != EntryKind::System)
                .map(|e| e.text.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (at most [`WAIT`]) until `f` holds for the client's state; fails
/// the test with the status bar, the toasts and the conversations if not.
pub async fn wait(client: &Client, what: &str, f: impl FnMut(&State) -> bool) {
    assert!(
        client.wait_for(WAIT, f).await,
        "timed out waiting for: {what}\nstatus: {}\ntoasts: {:?}\nconversations: {:?}",
        client.read(|s| s.status_text()),
        client.read(|s| s.toasts.iter().map(|t| t.text.clone()).collect::<Vec<_>>()),
        client.read(|s| s
            .convs
            .iter()
            .map(|c| (c.id.label(), texts(s, &c.id)))
            .collect::<Vec<_>>()),
    );
}
