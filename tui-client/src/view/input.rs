//! The two bottom lines above the status bar: who is typing (or the
//! search), and the input line: the prompt, the text scrolled to keep the
//! cursor in view, a password masked, a y/n question.

use chat_shared::sanitize_for_display;
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::text::truncate;
use crate::state::State;

/// "bob is typing…", "bob and carol are typing…", "4 people are typing…".
pub fn typing_text(names: &[String]) -> Option<String> {
    let names: Vec<String> = names.iter().map(|n| sanitize_for_display(n)).collect();
    match names.len() {
        0 => None,
        1 => Some(format!("{} is typing…", names[0])),
        2 => Some(format!("{} and {} are typing…", names[0], names[1])),
        3 => Some(format!(
            "{}, {} and {} are typing…",
            names[0], names[1], names[2]
        )),
        n => Some(format!("{n} people are typing…")),
    }
}

pub(super) fn draw_typing(frame: &mut Frame, state: &State, area: Rect) {
    if let Some(text) = state.search_text() {
        let style = Style::new().fg(Color::Yellow);
        frame.render_widget(
            Paragraph::new(Line::styled(format!(" {text}"), style)),
            area,
        );
        return;
    }
    // (v3) What the selected message is, and what acts on it.
    if let Some(text) = state.selection_text() {
        let style = Style::new().fg(Color::Cyan);
        frame.render_widget(
            Paragraph::new(Line::styled(format!(" {text}"), style)),
            area,
        );
        return;
    }
    if let Some(text) = typing_text(&state.typing_names()) {
        let style = Style::new()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::ITALIC);
        frame.render_widget(
            Paragraph::new(Line::styled(format!(" {text}"), style)),
            area,
        );
    }
}

/// Draws the input line; returns where the cursor is.
pub(super) fn draw_input(frame: &mut Frame, state: &State, area: Rect) -> Option<Position> {
    if let Some(confirm) = &state.confirm {
        let style = Style::new()
            .fg(Color::Black)
            .bg(Color::Yellow)
            .add_modifier(Modifier::BOLD);
        let text = truncate(&format!(" ? {} ", confirm.question()), area.width as usize);
        frame.render_widget(Paragraph::new(Line::styled(text, style)), area);
        return None;
    }
    let prompt = match &state.secret {
        Some(secret) => secret.prompt(&state.me),
        None if state.name_taken() => "new name> ".to_owned(),
        None => "> ".to_owned(),
    };
    let prompt_w = UnicodeWidthStr::width(prompt.as_str());
    let width = (area.width as usize).saturating_sub(prompt_w + 1);
    let shown = clusters(state);
    // The cluster the cursor is on (or after the last).
    let cursor = shown
        .iter()
        .position(|(_, at, _)| *at >= state.editor.cursor)
        .unwrap_or(shown.len());
    // Scroll horizontally so that the cursor stays visible.
    let col = |from: usize, to: usize| -> usize { shown[from..to].iter().map(|g| g.2).sum() };
    let mut start = 0;
    while start < cursor && col(start, cursor) > width {
        start += 1;
    }
    let mut text = String::new();
    let mut w = 0;
    for (g, _, gw) in &shown[start..] {
        if w + gw > width {
            break;
        }
        w += gw;
        text.push_str(g);
    }
    let line = Line::from(vec![
        Span::styled(
            prompt,
            Style::new().fg(if state.name_taken() || state.secret.is_some() {
                Color::Yellow
            } else {
                Color::Cyan
            }),
        ),
        Span::raw(text),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (prompt_w + col(start, cursor)) as u16;
    let at = Position::new(x.min(area.right().saturating_sub(1)), area.y);
    frame.set_cursor_position(at);
    Some(at)
}

/// The input's grapheme clusters as shown, each with the char index it
/// starts at and its width: a flag or a family emoji is one cluster of two
/// columns.
fn clusters(state: &State) -> Vec<(String, usize, usize)> {
    let mut shown = Vec::new();
    let mut chars = 0;
    for g in state.editor.input.graphemes(true) {
        let n = g.chars().count();
        // A password shows as one dot a character.
        let (g, w) = if state.secret.is_some() {
            ("•".to_owned(), 1)
        } else if g.contains('\n') {
            ("↵".to_owned(), 1)
        } else {
            (g.to_owned(), UnicodeWidthStr::width(g))
        };
        shown.push((g, chars, w));
        chars += n;
    }
    shown
}
