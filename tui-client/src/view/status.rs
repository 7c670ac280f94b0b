//! The status bar (the connection, what is queued, a hint) and the toasts
//! floating over the messages (errors in red, news in blue).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::text::truncate;
use crate::state::{Conn, State};

pub(super) fn draw_status(frame: &mut Frame, state: &State, area: Rect, panels: bool) {
    let (mark, colour) = match &state.conn {
        Conn::Connected => ("●", Color::Green),
        Conn::Connecting { .. } | Conn::Reconnecting { .. } => ("◌", Color::Yellow),
        Conn::Refused { .. } | Conn::Ended { .. } => ("✖", Color::Red),
    };
    let bar = Style::new().bg(Color::DarkGray).fg(Color::White);
    let left = format!(" {mark} {}", state.status_text());
    let pending = state.queued_len();
    let right = if pending > 0 {
        format!("{pending} queued · /help ")
    } else if !panels {
        "F2 panels · /help ".to_owned()
    } else {
        "/help · Ctrl-C quits ".to_owned()
    };
    let width = area.width as usize;
    // The connection state matters more than the hint: the hint goes first.
    let left_w = unicode_width::UnicodeWidthStr::width(left.as_str());
    let right = if left_w + right.len() + 1 > width && pending == 0 {
        String::new()
    } else {
        right
    };
    let left = truncate(&left, width.saturating_sub(right.len() + 1));
    let lw = unicode_width::UnicodeWidthStr::width(left.as_str());
    let pad = width.saturating_sub(lw + right.len());
    let line = Line::from(vec![
        Span::styled(left, bar.fg(colour).add_modifier(Modifier::BOLD)),
        Span::styled(" ".repeat(pad), bar),
        Span::styled(right, bar),
    ]);
    frame.render_widget(Paragraph::new(line).style(bar), area);
}

pub(super) fn draw_toasts(frame: &mut Frame, state: &State, area: Rect) {
    if state.toasts.is_empty() {
        return;
    }
    let max_w = (area.width as usize).saturating_sub(2);
    let mut y = area.y + 1;
    for t in state.toasts.iter().rev() {
        if y >= area.bottom() {
            break;
        }
        // News (an invite, a confirmation) is not dressed as an error.
        let (mark, bg) = if t.info {
            ("•", Color::Blue)
        } else {
            ("✖", Color::Red)
        };
        let text = truncate(&format!(" {mark} {} ", t.text), max_w);
        let w = unicode_width::UnicodeWidthStr::width(text.as_str()) as u16;
        let rect = Rect::new(area.right().saturating_sub(w + 1), y, w, 1);
        frame.render_widget(Clear, rect);
        frame.render_widget(
            Paragraph::new(text).style(Style::new().bg(bg).fg(Color::White)),
            rect,
        );
        y += 1;
    }
    if y < area.bottom() {
        let hint = " Esc dismisses ";
        let rect = Rect::new(
            area.right().saturating_sub(hint.len() as u16 + 1),
            y,
            hint.len() as u16,
            1,
        );
        frame.render_widget(Clear, rect);
        frame.render_widget(
            Paragraph::new(hint).style(Style::new().fg(Color::DarkGray)),
            rect,
        );
    }
}
