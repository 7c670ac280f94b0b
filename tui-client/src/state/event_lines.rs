//! (v3) A room event in words, as one line of its room's conversation
//! ("bob was kicked by alice: spam", "you set the topic to …"): for the
//! events that arrive ([`super::room_events`]) and those a page of history
//! brings ([`super::backlog`]).

use chat_shared::{RoomEvent, RoomEventKind, RoomRole, sanitize_for_display};

use super::{State, when};

/// A name in a line: `you` for me.
struct Who {
    name: String,
    me: bool,
}

impl Who {
    fn of(state: &State, name: &str) -> Who {
        Who {
            name: sanitize_for_display(name),
            me: state.is_me(name),
        }
    }

    fn name(&self) -> &str {
        if self.me { "you" } else { &self.name }
    }

    /// `is` or `are`.
    fn is(&self) -> &'static str {
        if self.me { "are" } else { "is" }
    }

    /// `was` or `were`.
    fn was(&self) -> &'static str {
        if self.me { "were" } else { "was" }
    }
}

fn an(role: RoomRole) -> &'static str {
    match role {
        RoomRole::Owner => "an owner",
        RoomRole::Op => "an op",
        RoomRole::Member => "a member",
    }
}

/// `: spam`, or nothing.
fn because(reason: Option<&str>) -> String {
    reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| format!(": {}", sanitize_for_display(r)))
        .unwrap_or_default()
}

/// How a room event reads: "bob was kicked by alice: spam", "alice set the
/// topic to …", "carol is now an op (by alice)". `before` is the target's
/// role before a `role` event.
pub(super) fn line(state: &State, room: &str, ev: &RoomEvent, before: RoomRole) -> String {
    let by = Who::of(state, &ev.by);
    let user = Who::of(state, ev.user.as_deref().unwrap_or("someone"));
    let until = when::until(state, ev.until);
    let reason = because(ev.reason.as_deref());
    match ev.kind {
        RoomEventKind::Topic => match ev.topic.as_deref().map(sanitize_for_display) {
            Some(t) if !t.is_empty() => format!("{} set the topic to “{t}”", by.name()),
            _ => format!("{} cleared the topic", by.name()),
        },
        RoomEventKind::Private => {
            if ev.private == Some(true) {
                format!("{} made {room} private (invite-only)", by.name())
            } else {
                format!("{} made {room} open to everyone", by.name())
            }
        }
        RoomEventKind::Role => match ev.role.unwrap_or(RoomRole::Member) {
            RoomRole::Member if before != RoomRole::Member && by.name == user.name => {
                format!("{} gave up being {}", user.name(), an(before))
            }
            RoomRole::Member if before != RoomRole::Member => format!(
                "{} {} no longer {} (by {})",
                user.name(),
                user.is(),
                an(before),
                by.name()
            ),
            role => format!(
                "{} {} now {} (by {})",
                user.name(),
                user.is(),
                an(role),
                by.name()
            ),
        },
        RoomEventKind::Invite => format!("{} invited {}", by.name(), user.name()),
        RoomEventKind::Kick => format!(
            "{} {} kicked by {}{reason}",
            user.name(),
            user.was(),
            by.name()
        ),
        RoomEventKind::Ban => format!(
            "{} {} banned by {}{until}{reason}",
            user.name(),
            user.was(),
            by.name()
        ),
        RoomEventKind::Unban => format!("{} {} unbanned by {}", user.name(), user.was(), by.name()),
        RoomEventKind::Mute => format!(
            "{} {} muted by {}{until}{reason}",
            user.name(),
            user.was(),
            by.name()
        ),
        RoomEventKind::Unmute => format!("{} {} unmuted by {}", user.name(), user.was(), by.name()),
    }
}
