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
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::state::{Backlog, Conn, ConvId, Conversation, Delivery, Entry, EntryKind, State};
use crate::theme::Theme;

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
    state.screen_width = report.width;
    state.view_at_top = report.at_top;
    let id = state.active.clone();
    if let Some(c) = state.convs.iter_mut().find(|c| c.id == id) {
        c.scroll = report.scroll;
    }
}

/// Whether the side panels are shown at `width` columns.
pub fn panels_visible(state: &State, width: u16) -> bool {
    state.panels.unwrap_or(width >= NARROW)
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

/// One styled character of a line being wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub ch: char,
    pub style: Style,
    /// Columns this char takes: the width of its whole grapheme cluster for
    /// the first char of a cluster, 0 for the others (a flag or a family
    /// emoji is several chars, two columns).
    pub width: u8,
    /// 1 + the index of the URL this char belongs to, 0 outside URLs.
    pub link: u16,
}

impl Cell {
    pub fn plain(text: &str, style: Style) -> Vec<Cell> {
        let mut cells = Vec::new();
        push_str(&mut cells, text, style);
        cells
    }
}

/// Wraps styled cells to `width` columns by display width, breaking after
/// the last space when there is one (so a word or URL that fits on a line
/// is never split), with continuation lines indented by `indent` columns.
/// `\n` starts a new line; a grapheme cluster is never split.
pub fn wrap_cells(cells: &[Cell], width: usize, indent: usize) -> Vec<Vec<Cell>> {
    let width = width.max(indent + 2);
    let blank = Cell {
        ch: ' ',
        style: Style::new(),
        width: 1,
        link: 0,
    };
    let mut lines: Vec<Vec<Cell>> = Vec::new();
    let mut line: Vec<Cell> = Vec::new();
    let mut w = 0usize;
    let new_line = |lines: &mut Vec<Vec<Cell>>, line: &mut Vec<Cell>, w: &mut usize| {
        lines.push(std::mem::take(line));
        line.extend(std::iter::repeat_n(blank, indent));
        *w = indent;
    };
    for &cell in cells {
        if cell.ch == '\n' {
            new_line(&mut lines, &mut line, &mut w);
            continue;
        }
        let cw = cell.width as usize;
        if cw > 0 && w + cw > width && cell.ch == ' ' {
            // A space at the edge becomes the break itself.
            new_line(&mut lines, &mut line, &mut w);
            continue;
        }
        if cw > 0 && w + cw > width {
            // Break at the last space past the indent, if any.
            let space = line
                .iter()
                .rposition(|c| c.ch == ' ')
                .filter(|&p| p >= indent && p + 1 < line.len());
            match space {
                Some(p) => {
                    let rest: Vec<Cell> = line.split_off(p + 1);
                    line.pop();
                    new_line(&mut lines, &mut line, &mut w);
                    for c in rest {
                        w += c.width as usize;
                        line.push(c);
                    }
                }
                None => new_line(&mut lines, &mut line, &mut w),
            }
        }
        w += cw;
        line.push(cell);
    }
    lines.push(line);
    lines
}

/// A hyperlink on screen: where its text starts, the text, and the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub x: u16,
    pub y: u16,
    pub text: String,
    pub url: String,
}

/// One screen line of a conversation, with the URLs on it (column, text, URL).
#[derive(Debug, Clone, Default)]
struct Row {
    line: Line<'static>,
    links: Vec<(u16, String, String)>,
}

fn cells_to_row(cells: Vec<Cell>, urls: &[String]) -> Row {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = Style::new();
    let mut links: Vec<(u16, String, String)> = Vec::new();
    let mut col = 0u16;
    let mut current_link = 0u16;
    for c in cells {
        if c.style != style && !text.is_empty() {
            spans.push(Span::styled(std::mem::take(&mut text), style));
        }
        style = c.style;
        text.push(c.ch);
        if c.link != 0 {
            let url = urls.get(c.link as usize - 1).cloned().unwrap_or_default();
            match links.last_mut() {
                Some(last) if current_link == c.link => last.1.push(c.ch),
                _ => links.push((col, c.ch.to_string(), url)),
            }
        }
        current_link = c.link;
        col = col.saturating_add(c.width as u16);
    }
    if !text.is_empty() {
        spans.push(Span::styled(text, style));
    }
    Row {
        line: Line::from(spans),
        links,
    }
}

fn push_str(cells: &mut Vec<Cell>, text: &str, style: Style) {
    push_str_link(cells, text, style, 0);
}

fn push_str_link(cells: &mut Vec<Cell>, text: &str, style: Style, link: u16) {
    for g in text.graphemes(true) {
        let mut first = true;
        let gw = UnicodeWidthStr::width(g).min(4) as u8;
        for c in g.chars() {
            match c {
                '\t' => cells.extend(std::iter::repeat_n(
                    Cell {
                        ch: ' ',
                        style,
                        width: 1,
                        link,
                    },
                    4,
                )),
                '\n' => cells.push(Cell {
                    ch: '\n',
                    style,
                    width: 0,
                    link: 0,
                }),
                c if c.is_control() => {}
                c => {
                    cells.push(Cell {
                        ch: c,
                        style,
                        width: if first { gw } else { 0 },
                        link,
                    });
                    first = false;
                }
            }
        }
    }
}

/// Where URLs are in `text`: byte ranges of `http://` and `https://` words.
pub fn find_urls(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while from < text.len() {
        let rest = &text[from..];
        let Some(i) = ["https://", "http://"]
            .iter()
            .filter_map(|p| rest.find(p))
            .min()
        else {
            break;
        };
        let start = from + i;
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(text.len() - start);
        let mut end = start + len;
        // Trailing punctuation usually ends the sentence, not the URL.
        while end > start && text[..end].ends_with(['.', ',', ')', ';', ':', '!', '?', '\'']) {
            end -= 1;
        }
        if end > start + 8 {
            out.push((start, end));
        }
        from = start + len.max(1);
    }
    out
}

/// The style of a URL (also used when it is re-emitted as an OSC 8 link).
pub fn link_style(theme: &Theme) -> Style {
    Style::new()
        .fg(theme.link)
        .add_modifier(Modifier::UNDERLINED)
}

/// Pushes message text: URLs styled and numbered, search matches
/// highlighted.
fn push_text(
    cells: &mut Vec<Cell>,
    urls: &mut Vec<String>,
    text: &str,
    style: Style,
    link: Style,
    search: Option<(&str, bool)>,
) {
    let start_cell = cells.len();
    let mut at = 0;
    for (a, b) in find_urls(text) {
        push_str(cells, &text[at..a], style);
        urls.push(text[a..b].to_owned());
        push_str_link(cells, &text[a..b], link, urls.len() as u16);
        at = b;
    }
    push_str(cells, &text[at..], style);
    if let Some((query, current)) = search {
        let hl = if current {
            Style::new()
                .bg(Color::LightRed)
                .fg(Color::White)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().bg(Color::Yellow).fg(Color::Black)
        };
        // Matches are char ranges of the text; cells map 1:1 to its chars
        // except tabs (4 cells) and control chars (none).
        let mut char_to_cell = Vec::new();
        let mut k = start_cell;
        for c in text.chars() {
            char_to_cell.push(k);
            k += match c {
                '\t' => 4,
                '\n' => 1,
                c if c.is_control() => 0,
                _ => 1,
            };
        }
        char_to_cell.push(k);
        for (s, n) in crate::state::search::find_matches(text, query) {
            for cell in &mut cells[char_to_cell[s]..char_to_cell[s + n]] {
                cell.style = cell.style.patch(hl);
            }
        }
    }
}

/// How one entry is drawn: the time format and offset, and the search.
struct EntryLook<'a> {
    theme: &'a Theme,
    time_format: &'a str,
    offset_secs: i32,
    search: Option<&'a str>,
    current_match: Option<u64>,
}

/// The lines of one entry at `width` columns.
fn entry_rows(e: &Entry, width: usize, look: &EntryLook) -> Vec<Row> {
    let dim = Style::new().fg(Color::DarkGray);
    let time = local_time(e.ts, look.offset_secs)
        .map(|t| format!("{} ", t.format(look.time_format)))
        .unwrap_or_else(|| "--:-- ".to_owned());
    let indent = UnicodeWidthStr::width(time.as_str()).min(width / 2);
    let mut cells = Vec::new();
    let mut urls = Vec::new();
    push_str(&mut cells, &time, dim);
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
            push_text(&mut cells, &mut urls, &e.text, text_style, link, search);
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
    wrap_cells(&cells, width, indent)
        .into_iter()
        .map(|cells| cells_to_row(cells, &urls))
        .collect()
}

fn rule(label: &str, width: usize, style: Style) -> Row {
    let label_w = UnicodeWidthStr::width(label);
    let side = width.saturating_sub(label_w) / 2;
    Row {
        line: Line::styled(
            format!(
                "{}{label}{}",
                "─".repeat(side),
                "─".repeat(width.saturating_sub(side + label_w))
            ),
            style,
        ),
        links: Vec::new(),
    }
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
    };
    let (lo, hi) = window;
    let mut blocks: Vec<Vec<Row>> = Vec::new();
    let mut count = 0usize;
    let mut target = None;
    let mut found = until.is_none();
    let mut i = c.entries.len();
    while i > 0 && (count < need || !found) {
        i -= 1;
        let e = &c.entries[i];
        let (day_rule, marker) = separators(state, c, i);
        let n = entry_height(e, width, &look);
        let len = n + usize::from(day_rule.is_some()) + usize::from(marker);
        if until == Some(e.seq) {
            target = Some((count, n));
            found = true;
        }
        if count < hi && count + len > lo {
            let mut block = Vec::with_capacity(len);
            if let Some(label) = day_rule {
                block.push(rule(&label, width, Style::new().fg(Color::DarkGray)));
            }
            if marker {
                block.push(rule(
                    " new messages ",
                    width,
                    Style::new().fg(state.theme.marker),
                ));
            }
            block.extend(entry_rows(e, width, &look));
            // Only the rows inside the window (offsets from the bottom).
            let keep: Vec<Row> = block
                .into_iter()
                .enumerate()
                .filter(|(j, _)| {
                    let off = count + len - 1 - j;
                    off >= lo && off < hi
                })
                .map(|(_, r)| r)
                .collect();
            blocks.push(keep);
        }
        count += len;
    }
    let at_top = i == 0;
    let mut rows = Vec::new();
    if at_top && !matches!(c.id, ConvId::Feed) {
        let header = match c.backlog {
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
        };
        if let Some(h) = header {
            if count >= lo && count < hi {
                rows.push(h);
            }
            count += 1;
        }
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

/// Every line of a conversation at `width` columns, day separators included
/// (the whole history: for tests and measurements, not for drawing).
pub fn conversation_lines(state: &State, c: &Conversation, width: usize) -> Vec<Line<'static>> {
    tail_rows(state, c, width, usize::MAX, None, (0, usize::MAX))
        .rows
        .into_iter()
        .map(|r| r.line)
        .collect()
}

fn draw_messages(frame: &mut Frame, state: &State, area: Rect, collapsed: bool) -> ViewReport {
    let c = state.active_conv();
    let width = area.width as usize;
    let height = area.height.saturating_sub(1) as usize;
    let until = state.search.as_ref().and_then(|s| s.current_seq());
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
        // Keep the current search match in view.
        let visible = below >= scroll && below + n <= scroll + height;
        if !visible {
            scroll = (below + n / 2).saturating_sub(height / 2).min(max_scroll);
        }
    }
    let tail = tail_rows(
        state,
        c,
        width,
        scroll + height,
        None,
        (scroll, scroll + height),
    );
    let mut title = vec![Span::styled(
        format!(" {} ", c.id.label()),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if collapsed {
        let i = state.convs.iter().position(|x| x.id == c.id).unwrap_or(0);
        title.push(Span::styled(
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
            title.push(Span::styled(
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
    }
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
    let mut shown: Vec<Row> = tail.rows;
    if shown.is_empty() && c.entries.is_empty() {
        let hint = match &c.id {
            ConvId::Feed => "global feed: /join #room, /msg user, /all text, /help",
            ConvId::Room(_) => "no messages yet",
            ConvId::Dm(_) => "direct conversation: no messages yet",
        };
        shown.push(Row {
            line: Line::styled(hint, Style::new().fg(Color::DarkGray)),
            links: Vec::new(),
        });
    }
    // Bottom-aligned, like a chat.
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
    ViewReport {
        max_scroll,
        page: height.saturating_sub(2).max(1),
        scroll,
        links,
        width: frame.area().width,
        at_top: counted.at_top,
        cursor: None,
    }
}

fn draw_presence(frame: &mut Frame, state: &State, area: Rect) {
    let live = state.presence_live();
    let title = if live {
        format!(" Online {} ", state.online)
    } else if state.had_session {
        " Last known ".to_owned()
    } else {
        " Online ".to_owned()
    };
    let block = Block::new().borders(Borders::LEFT).title(Span::styled(
        title,
        if live {
            Style::new()
        } else {
            Style::new().fg(Color::DarkGray)
        },
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = inner.width as usize;
    let me_key = state.me.to_ascii_lowercase();
    let name_line = |name: &str| {
        let mut style = if live {
            Style::new().fg(nick_colour(name))
        } else {
            // Not live: who was there when the connection went.
            Style::new().fg(Color::DarkGray)
        };
        if name.to_ascii_lowercase() == me_key {
            style = style.add_modifier(Modifier::BOLD);
        }
        Line::from(vec![
            Span::raw(if live { "● " } else { "○ " }),
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
    if let Some(text) = state.search_text() {
        let style = Style::new().fg(Color::Yellow);
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
fn draw_input(frame: &mut Frame, state: &State, area: Rect) -> Option<Position> {
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
    // Grapheme clusters with their width and the char index they start at:
    // a flag or a family emoji is one cluster of two columns.
    let mut shown: Vec<(String, usize, usize)> = Vec::new();
    let mut chars = 0;
    for g in state.input.graphemes(true) {
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
    // The cluster the cursor is on (or after the last).
    let cursor = shown
        .iter()
        .position(|(_, at, _)| *at >= state.cursor)
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

fn draw_status(frame: &mut Frame, state: &State, area: Rect, panels: bool) {
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
