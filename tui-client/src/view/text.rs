//! Text as the panels draw it: styled cells measured by display width
//! (emoji and CJK take two columns, a grapheme cluster is never split),
//! wrapping, URLs found and numbered for OSC 8 links, search matches
//! highlighted, nick colours, truncation and times.

use chrono::{DateTime, FixedOffset};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::theme::Theme;

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

pub(super) fn truncate(text: &str, width: usize) -> String {
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

pub(super) fn local_time(ts: u64, offset_secs: i32) -> Option<DateTime<FixedOffset>> {
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
pub(super) struct Row {
    pub line: Line<'static>,
    pub links: Vec<(u16, String, String)>,
}

pub(super) fn cells_to_row(cells: Vec<Cell>, urls: &[String]) -> Row {
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

pub(super) fn push_str(cells: &mut Vec<Cell>, text: &str, style: Style) {
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
pub(super) fn push_text(
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

pub(super) fn rule(label: &str, width: usize, style: Style) -> Row {
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
