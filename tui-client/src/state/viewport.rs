//! The message pane's window on the active conversation: scrolling by
//! lines and pages, and at the top of what is loaded, asking for older
//! history.

use super::{Effect, NARROW, State, backlog};

/// The viewport's part of the state.
#[derive(Debug)]
pub struct Viewport {
    /// The conversations and online panels: `None` shows them from
    /// [`NARROW`] columns on; F2 forces them on or off.
    pub panels: Option<bool>,
    /// The screen's width at the last draw.
    pub screen_width: u16,
    /// Whether the last draw reached the oldest loaded line of the active
    /// conversation (its `max_scroll` is then the top).
    pub at_top: bool,
    pub mouse_capture: bool,
    /// Whether the terminal has the focus (crossterm's focus reports); a
    /// terminal that never reports counts as focused. A conversation is
    /// marked read only while it has (see [`super::markers`]).
    pub focused: bool,
}

impl Viewport {
    pub(super) fn new() -> Viewport {
        Viewport {
            panels: None,
            screen_width: NARROW,
            at_top: true,
            mouse_capture: true,
            focused: true,
        }
    }
}

pub(super) fn scroll(state: &mut State, up: bool, lines: usize, fx: &mut Vec<Effect>) {
    let max = state.max_scroll;
    let id = state.active.clone();
    let Some(c) = state.conv_mut(&id) else { return };
    let wanted = if up {
        c.scroll.saturating_add(lines)
    } else {
        c.scroll.saturating_sub(lines)
    };
    c.scroll = wanted.min(max);
    if up && wanted >= max && state.viewport.at_top {
        // At the top of what is loaded: ask for older lines.
        backlog::fetch_older(state, fx);
    }
}
