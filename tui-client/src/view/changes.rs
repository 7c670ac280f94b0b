//! (v3) How a message that changed looks: the dim quote above a reply
//! ("↳ alice: first words of the line…"), "(edited)" after an edited text,
//! "[deleted]" in place of a deleted one, and the reactions under a line
//! with their counts, mine highlighted.

use chat_shared::sanitize_for_display;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;

use super::text::{Cell, Row, cells_to_row, push_str, truncate, wrap_cells};
use crate::state::change_commands::start_of;
use crate::state::{Conversation, Entry, ReactionSet};

/// What a deleted line shows in place of its text.
pub const DELETED: &str = "[deleted]";
/// What follows an edited line's text.
pub const EDITED: &str = " (edited)";

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// The style of a deleted line's "[deleted]".
pub(super) fn deleted_style() -> Style {
    dim().add_modifier(Modifier::ITALIC)
}

/// The style of "(edited)".
pub(super) fn edited_style() -> Style {
    dim()
}

/// The row above a reply: the answered line's author and start, under the
/// time column (`indent`), cut to `width`. A line not loaded here is said
/// so; a deleted one shows as deleted.
pub(super) fn quote_row(
    conv: &Conversation,
    reply: &Entry,
    answered: &str,
    indent: usize,
    width: usize,
) -> Row {
    let quoted = match conv.message(answered, reply.epoch) {
        Some(e) if e.changes.deleted => {
            format!("{}: {DELETED}", sanitize_for_display(&e.from))
        }
        Some(e) if e.action => format!("* {} {}", sanitize_for_display(&e.from), start_of(&e.text)),
        Some(e) => format!("{}: {}", sanitize_for_display(&e.from), start_of(&e.text)),
        None => "an earlier message (not loaded here)".to_owned(),
    };
    let text = format!("{}↳ {quoted}", " ".repeat(indent));
    Row {
        line: Line::styled(truncate(&text, width), dim().add_modifier(Modifier::ITALIC)),
        links: Vec::new(),
    }
}

/// How one emoji's reactions look: mine stand out.
pub(super) fn reaction_style(mine: bool) -> Style {
    if mine {
        Style::new()
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::Gray).bg(Color::DarkGray)
    }
}

/// The rows under a line with reactions: `👍 2  🎉 1`, under the text
/// (`indent` columns in), wrapped to `width`.
pub(super) fn reaction_rows(
    reactions: &[ReactionSet],
    me: &str,
    indent: usize,
    width: usize,
) -> Vec<Row> {
    if reactions.is_empty() {
        return Vec::new();
    }
    let mut cells: Vec<Cell> = Vec::new();
    push_str(&mut cells, &" ".repeat(indent), Style::new());
    for (i, r) in reactions.iter().enumerate() {
        if i > 0 {
            push_str(&mut cells, " ", Style::new());
        }
        let style = reaction_style(r.holds(me));
        push_str(&mut cells, &format!(" {} {} ", r.emoji, r.count()), style);
    }
    wrap_cells(&cells, width, indent)
        .into_iter()
        .map(|row| cells_to_row(row, &[]))
        .collect()
}
