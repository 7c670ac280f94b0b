//! (v3) How a time to come is said in moderation lines and refusals:
//! "until 14:05" (with the day when it is not today), "for 9 more
//! minutes", "for 2 hours"; and a time past in `/sessions`: "2 hours
//! ago". Times are the user's local time, in the configured time format,
//! from the state's clock (no clock of its own).

use chrono::{DateTime, FixedOffset};

use super::State;

fn local(ms: u64, offset_secs: i32) -> Option<DateTime<FixedOffset>> {
    let offset = FixedOffset::east_opt(offset_secs)?;
    Some(DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?.with_timezone(&offset))
}

/// `ms` (since the Unix epoch) as a clock time: `14:05` today, `Sun 23
/// Nov 14:05` another day.
pub(super) fn clock(state: &State, ms: u64) -> String {
    let Some(t) = local(ms, state.utc_offset_secs) else {
        return "later".to_owned();
    };
    let time = t.format(&state.time_format).to_string();
    let today = local(state.wall_ms, state.utc_offset_secs).map(|n| n.date_naive());
    if today == Some(t.date_naive()) {
        time
    } else {
        format!("{} {time}", t.format("%a %d %b"))
    }
}

/// `" until 14:05"`, or nothing for no end.
pub(super) fn until(state: &State, ms: Option<u64>) -> String {
    ms.map(|ms| format!(" until {}", clock(state, ms)))
        .unwrap_or_default()
}

/// What is left until `ms`: `9 more minutes` (rounded up), `2 more
/// hours`, `40 more seconds`.
pub(super) fn left(state: &State, ms: u64) -> String {
    let secs = ms.saturating_sub(state.wall_ms).div_ceil(1000).max(1);
    let (n, unit) = match secs {
        0..60 => (secs, "second"),
        60..5_400 => (secs.div_ceil(60), "minute"),
        5_400..172_800 => (secs.div_ceil(3600), "hour"),
        _ => (secs.div_ceil(86_400), "day"),
    };
    format!("{n} more {unit}{}", if n == 1 { "" } else { "s" })
}

/// How long ago `ms` was: `just now` (under a minute), `5 minutes ago`,
/// `2 hours ago`, `3 days ago` (rounded down: "an hour ago" from 60
/// minutes on).
pub(super) fn ago(state: &State, ms: u64) -> String {
    let secs = state.wall_ms.saturating_sub(ms) / 1000;
    let (n, unit) = match secs {
        0..60 => return "just now".to_owned(),
        60..3_600 => (secs / 60, "minute"),
        3_600..86_400 => (secs / 3_600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A duration as typed (`10m`, `2h`) said back: `10 minutes`, `2 hours`,
/// `90 seconds`: the largest unit that divides it.
pub(super) fn span(secs: u64) -> String {
    let (n, unit) = if secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::state::testing::T0;

    #[test]
    fn times_to_come_read_naturally() {
        // T0 is 2025-11-22 08:26:40 UTC.
        let s = State::new("alice", "http://test", Instant::now(), T0);
        assert_eq!(clock(&s, T0 + 20_300_000), "14:05");
        assert_eq!(clock(&s, T0 + 86_400_000), "Sun 23 Nov 08:26");
        assert_eq!(until(&s, None), "");
        assert_eq!(left(&s, T0 + 8 * 60_000 + 1), "9 more minutes");
        assert_eq!(left(&s, T0 + 1_000), "1 more second");
        assert_eq!(left(&s, T0 + 2 * 3_600_000), "2 more hours");
        assert_eq!(span(600), "10 minutes");
        assert_eq!(span(7200), "2 hours");
        assert_eq!(span(86_400), "1 day");
        assert_eq!(span(90), "90 seconds");
        assert_eq!(ago(&s, T0 - 20_000), "just now");
        assert_eq!(ago(&s, T0 + 5_000), "just now", "a clock ahead is now");
        assert_eq!(ago(&s, T0 - 61_000), "1 minute ago");
        assert_eq!(ago(&s, T0 - 2 * 3_600_000 - 59_000), "2 hours ago");
        assert_eq!(ago(&s, T0 - 3 * 86_400_000), "3 days ago");
    }
}
