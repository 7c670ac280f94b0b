//! The side panels: the conversations (numbered for Alt-1..9, unread
//! counts, mentions, rooms I was put out of) on the left; on the right who
//! is online and, below, the active room's members (owners `~` and ops `@`
//! first) or the DM peer's presence.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::text::{nick_colour, truncate};
use crate::state::{ConvId, State, role_mark};

pub(super) fn draw_conversations(frame: &mut Frame, state: &State, area: Rect) {
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
        // (v3) A room I was put out of stays listed, marked; a long name
        // is cut, not the mark.
        let mark = c
            .room
            .removed
            .as_ref()
            .map(|r| format!(" ({})", r.how.word()))
            .unwrap_or_default();
        let name_w = label_w.saturating_sub(mark.len()).max(1);
        let label = truncate(
            &format!("{}{mark}", truncate(&c.id.label(), name_w)),
            label_w,
        );
        let pad = label_w.saturating_sub(unicode_width::UnicodeWidthStr::width(label.as_str()));
        let mut style = Style::new();
        if c.unread > 0 {
            style = style.add_modifier(Modifier::BOLD);
        }
        if c.room.removed.is_some() {
            style = style.fg(Color::DarkGray);
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

pub(super) fn draw_presence(frame: &mut Frame, state: &State, area: Rect) {
    let live = state.presence_live();
    let block = Block::new()
        .borders(Borders::LEFT)
        .title(presence_title(state, live));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let names = Names {
        live,
        me_key: state.me.to_ascii_lowercase(),
        width,
    };
    let room_part = room_part(state, &names);
    let height = inner.height as usize;
    let room_rows = if room_part.is_empty() {
        0
    } else {
        room_part.len().min(height / 2) + 1
    };
    let mut lines = online_lines(state, &names, height.saturating_sub(room_rows));
    if !room_part.is_empty() {
        lines.push(Line::default());
        let keep = height.saturating_sub(lines.len());
        lines.extend(room_part.into_iter().take(keep));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn presence_title(state: &State, live: bool) -> Span<'static> {
    let title = if live {
        format!(" Online {} ", state.online)
    } else if state.session.had_session {
        " Last known ".to_owned()
    } else {
        " Online ".to_owned()
    };
    Span::styled(
        title,
        if live {
            Style::new()
        } else {
            Style::new().fg(Color::DarkGray)
        },
    )
}

/// How a name is listed.
struct Names {
    live: bool,
    me_key: String,
    width: usize,
}

impl Names {
    fn line(&self, name: &str) -> Line<'static> {
        self.marked_line(name, "")
    }

    /// A name after the mark of its room role (`~` owner, `@` op).
    fn marked_line(&self, name: &str, mark: &str) -> Line<'static> {
        let mut style = if self.live {
            Style::new().fg(nick_colour(name))
        } else {
            // Not live: who was there when the connection went.
            Style::new().fg(Color::DarkGray)
        };
        if name.to_ascii_lowercase() == self.me_key {
            style = style.add_modifier(Modifier::BOLD);
        }
        Line::from(vec![
            Span::raw(if self.live { "● " } else { "○ " }),
            Span::styled(
                truncate(&format!("{mark}{name}"), self.width.saturating_sub(2)),
                style,
            ),
        ])
    }
}

/// Everyone online, in at most `rows` rows ("+n more" on the last).
fn online_lines(state: &State, names: &Names, rows: usize) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let users: Vec<&String> = state.users.iter().collect();
    for (i, u) in users.iter().enumerate() {
        if lines.len() + 1 == rows && i + 1 < users.len() {
            lines.push(Line::styled(
                format!("+{} more", users.len() - i),
                Style::new().fg(Color::DarkGray),
            ));
            break;
        }
        lines.push(names.line(u));
    }
    lines
}

/// The active room's members, or the DM peer's presence.
fn room_part(state: &State, names: &Names) -> Vec<Line<'static>> {
    let (live, width) = (names.live, names.width);
    let c = state.active_conv();
    let mut room_part = Vec::new();
    match &c.id {
        ConvId::Room(r) => {
            let count = c.member_count.unwrap_or(c.members.len() as u64);
            room_part.push(Line::styled(
                truncate(&format!("{r} ({count})"), width),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            if let Some(r) = &c.room.removed {
                room_part.push(Line::styled(
                    truncate(&format!("({}: /join)", r.how.word()), width),
                    Style::new().fg(Color::DarkGray),
                ));
            }
            room_part.extend(
                c.ranked_members()
                    .into_iter()
                    .map(|(m, role)| names.marked_line(&m, role_mark(role))),
            );
        }
        ConvId::Dm(u) => {
            let on = state.users.iter().any(|x| x.eq_ignore_ascii_case(u));
            room_part.push(Line::styled(
                truncate(
                    &format!(
                        "@{u}: {}{}",
                        if on { "online" } else { "away" },
                        if live { "" } else { "?" }
                    ),
                    width,
                ),
                if live {
                    Style::new().add_modifier(Modifier::BOLD)
                } else {
                    Style::new().fg(Color::DarkGray)
                },
            ));
        }
        ConvId::Feed => {}
    }
    room_part
}
