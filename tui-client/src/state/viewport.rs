//! The message pane's window on the active conversation: scrolling by
//! lines and pages, and at the top of what is loaded, asking for older
//! history.

use super::{Effect, State, backlog};

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
    if up && wanted >= max && state.view_at_top {
        // At the top of what is loaded: ask for older lines.
        backlog::fetch_older(state, fx);
    }
}
