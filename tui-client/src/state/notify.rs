//! Notifications: a DM or a mention of my name rings the terminal bell and
//! raises a desktop notification (both switchable), at most once per
//! [`NotifySettings::min_interval`] so that a burst makes one sound.

use std::time::Duration;

use super::{Effect, State};
use crate::msg::Notification;

/// What a DM or a mention does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    pub bell: bool,
    pub desktop: bool,
    /// The least time between two notifications.
    pub min_interval: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            bell: true,
            desktop: true,
            min_interval: Duration::from_secs(2),
        }
    }
}

/// Asks the terminal for attention about `title`/`body`, unless switched
/// off or another notification went out less than `min_interval` ago.
pub(super) fn notify(state: &mut State, title: String, body: String, fx: &mut Vec<Effect>) {
    let s = &state.notify;
    if !s.bell && !s.desktop {
        return;
    }
    if let Some(at) = state.last_notified
        && state.now.saturating_duration_since(at) < s.min_interval
    {
        return;
    }
    state.last_notified = Some(state.now);
    fx.push(Effect::Notify(Notification {
        bell: s.bell,
        desktop: s.desktop,
        title,
        body,
    }));
}
