//! Drawing only: `draw(frame, &State)` turns the state into a screen. No
//! input, no network. Text is measured with `unicode-width`, so emoji and
//! CJK take their two columns and lines wrap where the terminal wraps them.
//!
//! One file per panel:
//! - `messages`: the message pane (the active conversation).
//! - `sidebar`: the conversations and the online panels.
//! - `input`: the typing line and the input line.
//! - `status`: the status bar and the toasts.
//! - `text`: what they share: cells, wrapping, links, colours, times.
//! - (v3) `changes`: how a changed message looks: the quote above a
//!   reply, "(edited)", "[deleted]", the reactions under a line.

mod changes;
mod input;
mod messages;
mod sidebar;
mod status;
mod text;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position};
use ratatui::widgets::Paragraph;

pub use self::input::typing_text;
use self::input::{draw_input, draw_typing};
pub use self::messages::conversation_lines;
use self::messages::draw_messages;
use self::sidebar::{draw_conversations, draw_presence};
use self::status::{draw_status, draw_toasts};
pub use self::text::{Cell, Link, find_urls, link_style, nick_colour, wrap_cells};
use crate::state::State;

// `tests` reads its names through `use super::*`, as when this was one file.
#[cfg(test)]
use ratatui::style::Color;

pub use crate::state::NARROW;

/// What the app needs back from a draw to scroll sensibly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewReport {
    /// The most lines the message pane can scroll up (as far as the draw
    /// looked: at least one page beyond the scroll).
    pub max_scroll: usize,
    /// The message pane's height, for PgUp/PgDn.
    pub page: usize,
    /// The scroll actually shown (clamped, or moved to a search match).
    pub scroll: usize,
    /// The URLs on screen, to re-emit as OSC 8 hyperlinks.
    pub links: Vec<Link>,
    /// The screen's width.
    pub width: u16,
    /// Whether the message pane reached the oldest loaded line (so that
    /// `max_scroll` is the top, and scrolling further fetches history).
    pub at_top: bool,
    /// Where the input line's cursor is (to put it back after writing
    /// hyperlinks), if shown.
    pub cursor: Option<Position>,
}

impl ViewReport {
    fn empty() -> ViewReport {
        ViewReport {
            max_scroll: 0,
            page: 1,
            scroll: 0,
            links: Vec::new(),
            width: 0,
            at_top: true,
            cursor: None,
        }
    }
}

/// Takes what a draw found out back into the state.
pub fn after_draw(state: &mut State, report: &ViewReport) {
    state.max_scroll = report.max_scroll;
    state.page = report.page;
    state.viewport.screen_width = report.width;
    state.viewport.at_top = report.at_top;
    // (v3) The selection was scrolled to (if it moved): from now on the
    // pane may be scrolled away from it.
    state.selection.reveal = false;
    let id = state.active.clone();
    if let Some(c) = state.convs.iter_mut().find(|c| c.id == id) {
        c.scroll = report.scroll;
    }
}

/// Whether the side panels are shown at `width` columns.
pub fn panels_visible(state: &State, width: u16) -> bool {
    state.viewport.panels.unwrap_or(width >= NARROW)
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, state: &State) -> ViewReport {
    let area = frame.area();
    if area.width < 30 || area.height < 8 {
        frame.render_widget(Paragraph::new("terminal too small"), area);
        return ViewReport::empty();
    }
    let [main, typing, input, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let (left_w, right_w) = if area.width >= 110 {
        (22, 24)
    } else {
        (16, 18)
    };
    let panels = panels_visible(state, area.width) && area.width >= 40;
    let (left_w, right_w) = if panels { (left_w, right_w) } else { (0, 0) };
    let [left, centre, right] = Layout::horizontal([
        Constraint::Length(left_w),
        Constraint::Min(10),
        Constraint::Length(right_w),
    ])
    .areas(main);

    if panels {
        draw_conversations(frame, state, left);
        draw_presence(frame, state, right);
    }
    let mut report = draw_messages(frame, state, centre, !panels);
    draw_typing(frame, state, typing);
    report.cursor = draw_input(frame, state, input);
    draw_status(frame, state, status, panels);
    // Toasts float over the messages and the sidebar: room for long texts.
    draw_toasts(frame, state, centre.union(right));
    report
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_changes;
