//! Drawing only: `draw(frame, &State)` turns the state into a screen. No
//! input, no network. Text is measured with `unicode-width`, so emoji and
//! CJK take their two columns and lines wrap where the terminal wraps them.

use chat_shared::sanitize_for_display;
use chrono::{DateTime, FixedOffset};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use unicode_width::UnicodeWidthChar;

use crate::state::{Conn, ConvId, Conversation, Delivery, Entry, EntryKind, State};

/// What the app needs back from a draw to scroll sensibly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewReport {
    /// The most lines the message pane can scroll up.
    pub max_scroll: usize,
    /// The message pane's height, for PgUp/PgDn.
    pub page: usize,
}

const NICK_COLOURS: [Color; 8] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::LightBlue,
    Color::LightRed,
    Color::LightGreen,
    Color::LightMagenta,
];

/// A colour per nick, stable across runs (FNV-1a of the lower-cased name).
pub fn nick_colour(nick: &str) -> Color {
    let mut h: u32 = 0x811c9dc5;
    for b in nick.to_ascii_lowercase().bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    NICK_COLOURS[(h as usize) % NICK_COLOURS.len()]
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, state: &State) -> ViewReport {
    let area = frame.area();
    if area.width < 40 || area.height < 8 {
        frame.render_widget(Paragraph::new("terminal too small"), area);
        return ViewReport {
            max_scroll: 0,
            page: 1,
        };
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
    let [left, centre, right] = Layout::horizontal([
        Constraint::Length(left_w),
        Constraint::Min(10),
        Constraint::Length(right_w),
    ])
    .areas(main);

    draw_conversations(frame, state, left);
    let report = draw_messages(frame, state, centre);
    draw_presence(frame, state, right);
    draw_typing(frame, state, typing);
    draw_input(frame, state, input);
    draw_status(frame, state, status);
    // Toasts float over the messages and the sidebar: room for long texts.
    draw_toasts(frame, state, centre.union(right));
    report
}

fn truncate(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for c in text.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > width {
            if width > 0 && !out.is_empty() {
                out.pop();
                out.push('…');
            }
            break;
        }
        w += cw;
        out.push(c);
    }
    out
}

fn draw_conversations(frame: &mut Frame, state: &State, area: Rect) {
    let block = Block::new()
        .borders(Borders::RIGHT)
        .title(" Conversations ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let mut lines = Vec::new();
    for (i, c) in state.convs.iter().enumerate() {
        let number = if i < 9 {
            format!("{} ", i + 1)
        } else {
            "  ".to_owned()
        };
        let badge = match (c.unread, c.mentioned) {
            (0, _) => String::new(),
            (n, true) => format!(" {n}!"),
            (n, false) => format!(" {n}"),
        };
        let label_w = width.saturating_sub(number.len() + badge.len());
        let label = truncate(&c.id.label(), label_w);
        let pad = label_w.saturating_sub(unicode_width::UnicodeWidthStr::width(label.as_str()));
        let mut style = Style::new();
        if c.unread > 0 {
            style = style.add_modifier(Modifier::BOLD);
        }
        if c.id == state.active {
            style = style.add_modifier(Modifier::REVERSED);
        }
        let badge_style = if c.mentioned {
            style.fg(Color::LightRed)
        } else {
            style.fg(Color::Yellow)
        };
        lines.push(Line::from(vec![
            Span::styled(number, style.fg(Color::DarkGray)),
            Span::styled(format!("{label}{}", " ".repeat(pad)), style),
            Span::styled(badge, badge_style),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn local_time(ts: u64, offset_secs: i32) -> Option<DateTime<FixedOffset>> {
    let offset = FixedOffset::east_opt(offset_secs)?;
    Some(DateTime::from_timestamp_millis(i64::try_from(ts).ok()?)?.with_timezone(&offset))
}

/// One styled cell of a line being wrapped.
type Cell = (char, Style);

/// Wraps styled cells to `width` columns by display width, breaking after
/// the last space when there is one, with continuation lines indented by
/// `indent` columns. `\n` starts a new line.
pub fn wrap_cells(cells: &[Cell], width: usize, indent: usize) -> Vec<Vec<Cell>> {
    let width = width.max(indent + 2);
    let mut lines: Vec<Vec<Cell>> = Vec::new();
    let mut line: Vec<Cell> = Vec::new();
    let mut w = 0usize;
    let new_line = |lines: &mut Vec<Vec<Cell>>, line: &mut Vec<Cell>, w: &mut usize| {
        lines.push(std::mem::take(line));
        line.extend(std::iter::repeat_n((' ', Style::new()), indent));
        *w = indent;
    };
    for &(c, style) in cells {
        if c == '\n' {
            new_line(&mut lines, &mut line, &mut w);
            continue;
        }
        let cw = c.width().unwrap_or(0);
        if w + cw > width && c == ' ' {
            // A space at the edge becomes the break itself.
            new_line(&mut lines, &mut line, &mut w);
            continue;
        }
        if w + cw > width {
            // Break at the last space past the indent, if any.
            let space = line
                .iter()
                .rposition(|(ch, _)| *ch == ' ')
                .filter(|&p| p >= indent && p + 1 < line.len());
            match space {
                Some(p) => {
                    let rest: Vec<Cell> = line.split_off(p + 1);
                    line.pop();
                    new_line(&mut lines, &mut line, &mut w);
                    for cell in rest {
                        w += cell.0.width().unwrap_or(0);
                        line.push(cell);
                    }
                }
                None => new_line(&mut lines, &mut line, &mut w),
            }
        }
        w += cw;
        line.push((c, style));
    }
    lines.push(line);
    lines
}

fn cells_to_line(cells: Vec<Cell>) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = Style::new();
    for (c, s) in cells {
        if s != style && !text.is_empty() {
            spans.push(Span::styled(std::mem::take(&mut text), style));
        }
        style = s;
        text.push(c);
    }
    if !text.is_empty() {
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

fn push_str(cells: &mut Vec<Cell>, text: &str, style: Style) {
    for c in text.chars() {
        match c {
            '\t' => cells.extend(std::iter::repeat_n((' ', style), 4)),
            c if c.is_control() && c != '\n' => {}
            c => cells.push((c, style)),
        }
    }
}

/// The lines of one entry at `width` columns.
fn entry_lines(e: &Entry, width: usize, offset_secs: i32) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::DarkGray);
    let time = local_time(e.ts, offset_secs)
        .map(|t| t.format("%H:%M ").to_string())
        .unwrap_or_else(|| "--:-- ".to_owned());
    let mut cells = Vec::new();
    push_str(&mut cells, &time, dim);
    match &e.kind {
        EntryKind::System => push_str(&mut cells, &format!("-- {}", e.text), dim),
        kind => {
            let own = matches!(kind, EntryKind::Own(_));
            let mut nick_style = Style::new()
                .fg(nick_colour(&e.from))
                .add_modifier(Modifier::BOLD);
            if own {
                nick_style = nick_style.add_modifier(Modifier::UNDERLINED);
            }
            push_str(&mut cells, &sanitize_for_display(&e.from), nick_style);
            push_str(&mut cells, if e.broadcast { " » " } else { ": " }, dim);
            let text_style = match kind {
                EntryKind::Own(Delivery::Pending | Delivery::Queued) => {
                    Style::new().fg(Color::Gray)
                }
                EntryKind::Own(Delivery::Failed(_)) => Style::new().fg(Color::Red),
                _ => Style::new(),
            };
            push_str(&mut cells, &e.text, text_style);
            match kind {
                EntryKind::Own(Delivery::Pending) => push_str(&mut cells, " (sending…)", dim),
                EntryKind::Own(Delivery::Queued) => push_str(&mut cells, " (queued)", dim),
                EntryKind::Own(Delivery::Failed(code)) => push_str(
                    &mut cells,
                    &format!(" (failed: {code})"),
                    Style::new().fg(Color::Red),
                ),
                _ => {}
            }
        }
    }
    wrap_cells(&cells, width, 6)
        .into_iter()
        .map(cells_to_line)
        .collect()
}

/// Every line of a conversation at `width` columns, day separators included.
pub fn conversation_lines(c: &Conversation, width: usize, offset_secs: i32) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut last_day = None;
    for e in &c.entries {
        let day = local_time(e.ts, offset_secs).map(|t| t.date_naive());
        if day.is_some() && day != last_day {
            if let Some(d) = day {
                let label = format!(" {} ", d.format("%a %d %b %Y"));
                let side = width.saturating_sub(label.len()) / 2;
                lines.push(Line::styled(
                    format!(
                        "{}{label}{}",
                        "─".repeat(side),
                        "─".repeat(width.saturating_sub(side + label.len()))
                    ),
                    Style::new().fg(Color::DarkGray),
                ));
            }
            last_day = day;
        }
        lines.extend(entry_lines(e, width, offset_secs));
    }
    lines
}

fn draw_messages(frame: &mut Frame, state: &State, area: Rect) -> ViewReport {
    let c = state.active_conv();
    let width = area.width as usize;
    let height = area.height.saturating_sub(1) as usize;
    let lines = conversation_lines(c, width, state.utc_offset_secs);
    let max_scroll = lines.len().saturating_sub(height);
    let scroll = c.scroll.min(max_scroll);
    let end = lines.len() - scroll;
    let start = end.saturating_sub(height);
    let mut title = vec![Span::styled(
        format!(" {} ", c.id.label()),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(n) = c.member_count.filter(|_| matches!(c.id, ConvId::Room(_))) {
        title.push(Span::styled(
            format!("{n} members "),
            Style::new().fg(Color::DarkGray),
        ));
    }
    if scroll > 0 {
        title.push(Span::styled(
            format!("↓ {scroll} more "),
            Style::new().fg(Color::Yellow),
        ));
    }
    let block = Block::new().borders(Borders::TOP).title(Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut shown: Vec<Line> = lines[start..end].to_vec();
    if shown.is_empty() && c.entries.is_empty() {
        let hint = match &c.id {
            ConvId::Feed => "global feed: /join #room, /msg user, /all text, /help",
            ConvId::Room(_) => "no messages yet",
            ConvId::Dm(_) => "direct conversation: no messages yet",
        };
        shown.push(Line::styled(hint, Style::new().fg(Color::DarkGray)));
    }
    // Bottom-aligned, like a chat.
    let pad = height.saturating_sub(shown.len());
    let mut all = vec![Line::default(); pad];
    all.extend(shown);
    frame.render_widget(Paragraph::new(all), inner);
    ViewReport {
        max_scroll,
        page: height.saturating_sub(2).max(1),
    }
}

fn draw_presence(frame: &mut Frame, state: &State, area: Rect) {
    let block = Block::new()
        .borders(Borders::LEFT)
        .title(format!(" Online {} ", state.online));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let me_key = state.me.to_ascii_lowercase();
    let name_line = |name: &str| {
        let mut style = Style::new().fg(nick_colour(name));
        if name.to_ascii_lowercase() == me_key {
            style = style.add_modifier(Modifier::BOLD);
        }
        Line::from(vec![
            Span::raw("● "),
            Span::styled(truncate(name, width.saturating_sub(2)), style),
        ])
    };
    let mut lines: Vec<Line> = Vec::new();
    let c = state.active_conv();
    let mut room_part: Vec<Line> = Vec::new();
    match &c.id {
        ConvId::Room(r) => {
            let count = c.member_count.unwrap_or(c.members.len() as u64);
            room_part.push(Line::styled(
                truncate(&format!("{r} ({count})"), width),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            room_part.extend(c.members.iter().map(|m| name_line(m)));
        }
        ConvId::Dm(u) => {
            let on = state.users.iter().any(|x| x.eq_ignore_ascii_case(u));
            room_part.push(Line::styled(
                truncate(
                    &format!("@{u}: {}", if on { "online" } else { "away" }),
                    width,
                ),
                Style::new().add_modifier(Modifier::BOLD),
            ));
        }
        ConvId::Feed => {}
    }
    let height = inner.height as usize;
    let room_rows = if room_part.is_empty() {
        0
    } else {
        room_part.len().min(height / 2) + 1
    };
    let users_rows = height.saturating_sub(room_rows);
    let users: Vec<&String> = state.users.iter().collect();
    for (i, u) in users.iter().enumerate() {
        if lines.len() + 1 == users_rows && i + 1 < users.len() {
            lines.push(Line::styled(
                format!("+{} more", users.len() - i),
                Style::new().fg(Color::DarkGray),
            ));
            break;
        }
        lines.push(name_line(u));
    }
    if !room_part.is_empty() {
        lines.push(Line::default());
        let keep = height.saturating_sub(lines.len());
        lines.extend(room_part.into_iter().take(keep));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

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

fn draw_typing(frame: &mut Frame, state: &State, area: Rect) {
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

fn draw_input(frame: &mut Frame, state: &State, area: Rect) {
    let prompt = "> ";
    let width = (area.width as usize).saturating_sub(prompt.len() + 1);
    let shown: Vec<char> = state
        .input
        .chars()
        .map(|c| if c == '\n' { '↵' } else { c })
        .collect();
    // Scroll horizontally so that the cursor stays visible.
    let cursor = state.cursor.min(shown.len());
    let mut start = 0;
    let col = |from: usize, to: usize| -> usize {
        shown[from..to].iter().map(|c| c.width().unwrap_or(0)).sum()
    };
    while col(start, cursor) > width {
        start += 1;
    }
    let mut text = String::new();
    let mut w = 0;
    for &c in &shown[start..] {
        let cw = c.width().unwrap_or(0);
        if w + cw > width {
            break;
        }
        w += cw;
        text.push(c);
    }
    let line = Line::from(vec![
        Span::styled(prompt, Style::new().fg(Color::Cyan)),
        Span::raw(text),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (prompt.len() + col(start, cursor)) as u16;
    frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
}

fn draw_status(frame: &mut Frame, state: &State, area: Rect) {
    let (mark, colour) = match &state.conn {
        Conn::Connected => ("●", Color::Green),
        Conn::Connecting { .. } | Conn::Reconnecting { .. } => ("◌", Color::Yellow),
        Conn::Refused { .. } => ("✖", Color::Red),
    };
    let bar = Style::new().bg(Color::DarkGray).fg(Color::White);
    let left = format!(" {mark} {}", state.status_text());
    let pending = state.queued_len();
    let right = if pending > 0 {
        format!("{pending} queued · /help ")
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

fn draw_toasts(frame: &mut Frame, state: &State, area: Rect) {
    if state.toasts.is_empty() {
        return;
    }
    let max_w = (area.width as usize).saturating_sub(2);
    let mut y = area.y + 1;
    for t in state.toasts.iter().rev() {
        if y >= area.bottom() {
            break;
        }
        let text = truncate(&format!(" ✖ {} ", t.text), max_w);
        let w = unicode_width::UnicodeWidthStr::width(text.as_str()) as u16;
        let rect = Rect::new(area.right().saturating_sub(w + 1), y, w, 1);
        frame.render_widget(Clear, rect);
        frame.render_widget(
            Paragraph::new(text).style(Style::new().bg(Color::Red).fg(Color::White)),
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

#[cfg(test)]
mod tests;
