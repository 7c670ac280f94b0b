//! The message pane: each entry as wrapped rows (time, nick, text, delivery
//! state), day rules and the "new messages" rule, the history header, one
//! dim row for each run of lines from blocked users, and the window of rows
//! on screen, built from the bottom so that a draw costs the screen, not
//! the conversation. The title carries the room's topic and marks.

use chat_shared::sanitize_for_display;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_width::UnicodeWidthStr;

use super::ViewReport;
use super::changes;
use super::text::{
    Link, Row, cells_to_row, link_style, local_time, nick_colour, push_str, push_text, rule,
    truncate, wrap_cells,
};
use crate::state::{Backlog, ConvId, Conversation, Delivery, Entry, EntryKind, State};
use crate::theme::Theme;

/// How one entry is drawn: the time format and offset, and the search;
/// (v3) its conversation (for the quote above a reply), my name (for my
/// reactions) and the selected line.
struct EntryLook<'a> {
    theme: &'a Theme,
    time_format: &'a str,
    offset_secs: i32,
    search: Option<&'a str>,
    current_match: Option<u64>,
    conv: &'a Conversation,
    me: &'a str,
    selected: Option<u64>,
}

/// The lines of one entry at `width` columns.
fn entry_rows(e: &Entry, width: usize, look: &EntryLook) -> Vec<Row> {
    let dim = Style::new().fg(Color::DarkGray);
    let time = local_time(e.ts, look.offset_secs)
        .map(|t| format!("{} ", t.format(look.time_format)))
        .unwrap_or_else(|| "--:-- ".to_owned());
    let indent = UnicodeWidthStr::width(time.as_str()).min(width / 2);
    let mut rows = Vec::new();
    if let Some(answered) = e.changes.reply_to.as_deref()
        && e.kind != EntryKind::System
    {
        rows.push(changes::quote_row(look.conv, e, answered, indent, width));
    }
    let mut cells = Vec::new();
    let mut urls = Vec::new();
    // (v3) The selected line: its time and nick in reverse video (a style,
    // not a mark, so that its wrapping stays the same).
    let selected = look.selected == Some(e.seq);
    let time_style = if selected {
        dim.add_modifier(Modifier::REVERSED)
    } else {
        dim
    };
    push_str(&mut cells, &time, time_style);
    let search = look.search.map(|q| (q, look.current_match == Some(e.seq)));
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
            if selected {
                nick_style = nick_style.add_modifier(Modifier::REVERSED);
            }
            let mut text_style = match kind {
                EntryKind::Own(Delivery::Pending | Delivery::Queued) => {
                    Style::new().fg(Color::Gray)
                }
                EntryKind::Own(Delivery::Failed(_)) => Style::new().fg(Color::Red),
                _ => Style::new(),
            };
            if e.mention {
                // A line that names me stands out in the conversation too.
                text_style = text_style
                    .fg(look.theme.mention)
                    .add_modifier(Modifier::BOLD);
                push_str(&mut cells, "▶ ", Style::new().fg(look.theme.mention));
            }
            if e.action {
                push_str(&mut cells, "* ", dim);
                push_str(&mut cells, &sanitize_for_display(&e.from), nick_style);
                push_str(&mut cells, " ", text_style);
                text_style = text_style.add_modifier(Modifier::ITALIC);
            } else {
                push_str(&mut cells, &sanitize_for_display(&e.from), nick_style);
                push_str(&mut cells, if e.broadcast { " » " } else { ": " }, dim);
            }
            let link = link_style(look.theme);
            if e.changes.deleted {
                push_str(&mut cells, changes::DELETED, changes::deleted_style());
            } else {
                push_text(&mut cells, &mut urls, &e.text, text_style, link, search);
                if e.changes.edited {
                    push_str(&mut cells, changes::EDITED, changes::edited_style());
                }
            }
            match kind {
                EntryKind::Own(Delivery::Pending) => push_str(&mut cells, " (sending…)", dim),
                EntryKind::Own(Delivery::Queued) => push_str(&mut cells, " (queued)", dim),
                EntryKind::Own(Delivery::Held(to)) => push_str(
                    &mut cells,
                    &format!(" (queued for {})", sanitize_for_display(to)),
                    dim,
                ),
                EntryKind::Own(Delivery::Failed(code)) => push_str(
                    &mut cells,
                    &format!(" (failed: {code})"),
                    Style::new().fg(Color::Red),
                ),
                _ => {}
            }
        }
    }
    rows.extend(
        wrap_cells(&cells, width, indent)
            .into_iter()
            .map(|cells| cells_to_row(cells, &urls)),
    );
    if !e.changes.deleted {
        rows.extend(changes::reaction_rows(
            &e.changes.reactions,
            look.me,
            indent,
            width,
        ));
    }
    rows
}

/// What a draw knows of the bottom of a conversation.
struct Tail {
    /// The rows of the window asked for, oldest first.
    rows: Vec<Row>,
    /// Rows counted from the bottom (at least `need`, or all of them).
    total: usize,
    /// Whether the walk reached the first entry.
    at_top: bool,
    /// For `until`: the rows below the end of that entry and its row count.
    target: Option<(usize, usize)>,
}

/// Whether entry `i` is hidden but not the first of its run of hidden
/// lines (a run is cut at a day's end): it takes no row, the first one
/// draws the count of the run.
fn inside_hidden_run(state: &State, c: &Conversation, i: usize) -> bool {
    let day = |e: &Entry| local_time(e.ts, state.utc_offset_secs).map(|t| t.date_naive());
    i > 0
        && state.hides(c, &c.entries[i])
        && state.hides(c, &c.entries[i - 1])
        && day(&c.entries[i]) == day(&c.entries[i - 1])
}

/// The one row that stands for `n` hidden lines of blocked users, the
/// first of them at `ts`.
fn hidden_row(n: usize, ts: u64, width: usize, look: &EntryLook) -> Row {
    let time = local_time(ts, look.offset_secs)
        .map(|t| format!("{} ", t.format(look.time_format)))
        .unwrap_or_default();
    let text = if n == 1 {
        format!("{time}-- 1 line from a blocked user hidden · /showblocked")
    } else {
        format!("{time}-- {n} lines from blocked users hidden · /showblocked")
    };
    Row {
        line: Line::styled(
            truncate(&text, width),
            Style::new()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        ),
        links: Vec::new(),
    }
}

/// How an entry is preceded: a day rule when the day changes, the "new
/// messages" rule at the marker.
fn separators(state: &State, c: &Conversation, i: usize) -> (Option<String>, bool) {
    let day = |e: &Entry| local_time(e.ts, state.utc_offset_secs).map(|t| t.date_naive());
    let e = &c.entries[i];
    let d = day(e);
    let day_rule = match d {
        Some(d) if i == 0 || Some(d) != day(&c.entries[i - 1]) => {
            Some(format!(" {} ", d.format("%a %d %b %Y")))
        }
        _ => None,
    };
    (day_rule, c.unread_marker == Some(e.seq))
}

/// The rows of entry `e`, with its wrapped height remembered in the entry.
fn entry_height(e: &Entry, width: usize, look: &EntryLook) -> usize {
    let memo = e.wrapped.get();
    let w = (width as u32).min(0xffff);
    if memo != 0 && memo >> 16 == w {
        return (memo & 0xffff) as usize;
    }
    let n = entry_rows(e, width, look).len();
    e.wrapped.set(w << 16 | (n as u32).min(0xffff));
    n
}

/// Walks a conversation up from the bottom, counting rows (from memos where
/// it can) until `need` rows or the entry `until` are passed, and builds
/// only the rows in `window` (row offsets from the bottom, end excluded).
/// So a draw costs the screen, not the conversation.
fn tail_rows(
    state: &State,
    c: &Conversation,
    width: usize,
    need: usize,
    until: Option<u64>,
    window: (usize, usize),
) -> Tail {
    let look = EntryLook {
        theme: &state.theme,
        time_format: &state.time_format,
        offset_secs: state.utc_offset_secs,
        search: state.search.as_ref().map(|s| s.query.as_str()),
        current_match: state.search.as_ref().and_then(|s| s.current_seq()),
        conv: c,
        me: &state.me,
        selected: state.selection.seq,
    };
    let (lo, hi) = window;
    let mut blocks: Vec<Vec<Row>> = Vec::new();
    let mut count = 0usize;
    let mut target = None;
    let mut found = until.is_none();
    let mut i = c.entries.len();
    // Hidden lines (of blocked users) met so far in the current run.
    let mut hidden = 0usize;
    while i > 0 && (count < need || !found) {
        i -= 1;
        let e = &c.entries[i];
        let hides = state.hides(c, e);
        if hides {
            hidden += 1;
            if inside_hidden_run(state, c, i) {
                continue;
            }
        }
        let seps = separators(state, c, i);
        let n = if hides {
            1
        } else {
            entry_height(e, width, &look)
        };
        let len = n + usize::from(seps.0.is_some()) + usize::from(seps.1);
        if until == Some(e.seq) {
            target = Some((count, n));
            found = true;
        }
        if count < hi && count + len > lo {
            let body = if hides {
                vec![hidden_row(hidden, e.ts, width, &look)]
            } else {
                entry_rows(e, width, &look)
            };
            blocks.push(block_rows(body, seps, width, &look, count + len, window));
        }
        if hides {
            hidden = 0;
        }
        count += len;
    }
    let at_top = i == 0;
    let mut rows = Vec::new();
    if at_top
        && !matches!(c.id, ConvId::Feed)
        && let Some(h) = history_header(c, width)
    {
        if count >= lo && count < hi {
            rows.push(h);
        }
        count += 1;
    }
    for block in blocks.into_iter().rev() {
        rows.extend(block);
    }
    Tail {
        rows,
        total: count,
        at_top,
        target,
    }
}

/// The rows `body` of an entry under its separators, only those inside
/// `window`; `top` is the offset from the bottom just above the block.
fn block_rows(
    body: Vec<Row>,
    (day_rule, marker): (Option<String>, bool),
    width: usize,
    look: &EntryLook,
    top: usize,
    (lo, hi): (usize, usize),
) -> Vec<Row> {
    let mut block = Vec::new();
    if let Some(label) = day_rule {
        block.push(rule(&label, width, Style::new().fg(Color::DarkGray)));
    }
    if marker {
        block.push(rule(
            " new messages ",
            width,
            Style::new().fg(look.theme.marker),
        ));
    }
    block.extend(body);
    block
        .into_iter()
        .enumerate()
        .filter(|(j, _)| {
            let off = top - 1 - j;
            off >= lo && off < hi
        })
        .map(|(_, r)| r)
        .collect()
}

/// Above the oldest loaded line: whether older history is on its way or
/// there is none.
fn history_header(c: &Conversation, width: usize) -> Option<Row> {
    match c.backlog {
        Backlog::Loading => Some(Row {
            line: Line::styled("loading older messages…", Style::new().fg(Color::Yellow)),
            links: Vec::new(),
        }),
        Backlog::Complete => Some(rule(
            " beginning of history ",
            width,
            Style::new().fg(Color::DarkGray),
        )),
        Backlog::Unknown => None,
    }
}

/// Every line of a conversation at `width` columns, day separators included
/// (the whole history: for tests and measurements, not for drawing).
pub fn conversation_lines(state: &State, c: &Conversation, width: usize) -> Vec<Line<'static>> {
    tail_rows(state, c, width, usize::MAX, None, (0, usize::MAX))
        .rows
        .into_iter()
        .map(|r| r.line)
        .collect()
}

pub(super) fn draw_messages(
    frame: &mut Frame,
    state: &State,
    area: Rect,
    collapsed: bool,
) -> ViewReport {
    let c = state.active_conv();
    let width = area.width as usize;
    let height = area.height.saturating_sub(1) as usize;
    let (at_top, max_scroll, scroll) = scroll_window(state, c, width, height);
    let tail = tail_rows(
        state,
        c,
        width,
        scroll + height,
        None,
        (scroll, scroll + height),
    );
    let title = title(state, c, collapsed, scroll, width);
    let block = Block::new().borders(Borders::TOP).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut shown: Vec<Row> = tail.rows;
    if shown.is_empty() && c.entries.is_empty() {
        shown.push(empty_hint(&c.id));
    }
    let links = render_bottom_aligned(frame, shown, inner, height);
    ViewReport {
        max_scroll,
        page: height.saturating_sub(2).max(1),
        scroll,
        links,
        width: frame.area().width,
        at_top,
        cursor: None,
    }
}

/// Whether the count reached the oldest loaded line, the most the pane can
/// scroll, and the scroll shown (moved to keep the search match in view).
fn scroll_window(
    state: &State,
    c: &Conversation,
    width: usize,
    height: usize,
) -> (bool, usize, usize) {
    // The search match in view, or (v3) a selection that just moved.
    let until = state
        .search
        .as_ref()
        .and_then(|s| s.current_seq())
        .or(state.selection.seq.filter(|_| state.selection.reveal));
    let need = c
        .scroll
        .saturating_add(height.saturating_mul(2))
        .saturating_add(1);
    // Count first (cheap: wrapped heights are remembered), then build
    // only the rows on screen.
    let counted = tail_rows(state, c, width, need, until, (0, 0));
    let max_scroll = counted.total.saturating_sub(height);
    let mut scroll = c.scroll.min(max_scroll);
    if let Some((below, n)) = counted.target {
        // Keep the current search match (or the selection) in view.
        let visible = below >= scroll && below + n <= scroll + height;
        if !visible {
            scroll = (below + n / 2).saturating_sub(height / 2).min(max_scroll);
        }
    }
    (counted.at_top, max_scroll, scroll)
}

/// The pane's title: the conversation, whether the room is private or I
/// was put out of it, its members, how far scrolled, and the room's topic
/// in what room is left; with the panels hidden, also its place and the
/// unread count elsewhere.
fn title(
    state: &State,
    c: &Conversation,
    collapsed: bool,
    scroll: usize,
    width: usize,
) -> Line<'static> {
    let mut title = vec![Span::styled(
        format!(" {} ", c.id.label()),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if c.room.private {
        title.push(Span::styled("[private] ", Style::new().fg(Color::Yellow)));
    }
    if let Some(r) = &c.room.removed {
        title.push(Span::styled(
            format!("(you were {}) ", r.why),
            Style::new().fg(Color::LightRed),
        ));
    }
    if collapsed {
        title.extend(elsewhere(state, c));
    }
    if let Some(n) = c.member_count.filter(|_| matches!(c.id, ConvId::Room(_))) {
        title.push(Span::styled(
            format!("{n} members "),
            Style::new().fg(Color::DarkGray),
        ));
    }
    let topic_at = title.len();
    if scroll > 0 {
        title.push(Span::styled(
            format!("↓ {scroll} more "),
            Style::new().fg(Color::Yellow),
        ));
    }
    // The topic takes what room the rest leaves (a rule stays visible).
    let used: usize = title.iter().map(|s| s.width()).sum();
    let room_left = width.saturating_sub(used + 4);
    if !c.room.topic.is_empty() && room_left >= 8 {
        let topic = truncate(&format!("— {} ", c.room.topic), room_left);
        title.insert(
            topic_at,
            Span::styled(
                topic,
                Style::new().fg(Color::Cyan).add_modifier(Modifier::ITALIC),
            ),
        );
    }
    Line::from(title)
}

/// What the hidden conversations pane would show: the active one's place
/// and the unread count of the others.
fn elsewhere(state: &State, c: &Conversation) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let i = state.convs.iter().position(|x| x.id == c.id).unwrap_or(0);
    spans.push(Span::styled(
        format!("({}/{}) ", i + 1, state.convs.len()),
        Style::new().fg(Color::DarkGray),
    ));
    let unread: usize = state
        .convs
        .iter()
        .filter(|x| x.id != c.id)
        .map(|x| x.unread)
        .sum();
    let mentioned = state.convs.iter().any(|x| x.id != c.id && x.mentioned);
    if unread > 0 {
        spans.push(Span::styled(
            format!(
                "{unread}{} unread elsewhere ",
                if mentioned { "!" } else { "" }
            ),
            Style::new().fg(if mentioned {
                Color::LightRed
            } else {
                Color::Yellow
            }),
        ));
    }
    spans
}

fn empty_hint(id: &ConvId) -> Row {
    let hint = match id {
        ConvId::Feed => "global feed: /join #room, /msg user, /all text, /help",
        ConvId::Room(_) => "no messages yet",
        ConvId::Dm(_) => "direct conversation: no messages yet",
    };
    Row {
        line: Line::styled(hint, Style::new().fg(Color::DarkGray)),
        links: Vec::new(),
    }
}

/// Draws the rows bottom-aligned, like a chat; returns the links on screen.
fn render_bottom_aligned(
    frame: &mut Frame,
    shown: Vec<Row>,
    inner: Rect,
    height: usize,
) -> Vec<Link> {
    let pad = height.saturating_sub(shown.len());
    let mut links = Vec::new();
    for (k, row) in shown.iter().enumerate() {
        let y = inner.y + (pad + k) as u16;
        for (x, text, url) in &row.links {
            links.push(Link {
                x: inner.x + x,
                y,
                text: text.clone(),
                url: url.clone(),
            });
        }
    }
    let mut all = vec![Line::default(); pad];
    all.extend(shown.into_iter().map(|r| r.line));
    frame.render_widget(Paragraph::new(all), inner);
    links
}
