//! The input line and the keys: editing by grapheme cluster (a flag or a
//! family emoji is one step and one Backspace), Ctrl-W, input history,
//! Tab completion, questions that wait for y/n, and the keys that scroll,
//! switch conversations, search and toggle the panels or the mouse.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use unicode_segmentation::UnicodeSegmentation;

use super::actions::{Confirm, do_quit, quit};
use super::conversations::cycle;
use super::typing::after_edit;
use super::viewport::scroll;
use super::{ConvId, Effect, State, actions, backlog, search, selection};

/// The input line's part of the state.
#[derive(Debug, Default)]
pub struct Editor {
    pub input: String,
    /// Cursor position in chars (always on a grapheme boundary).
    pub cursor: usize,
    pub history: Vec<String>,
    pub(super) history_pos: Option<usize>,
    pub(super) draft: String,
    pub(super) completion: Option<Completion>,
}

#[derive(Debug, Clone)]
pub(super) struct Completion {
    pub start: usize,
    pub candidates: Vec<String>,
    pub index: usize,
}

pub(super) fn key_input(state: &mut State, key: KeyEvent, fx: &mut Vec<Effect>) {
    if key.kind == KeyEventKind::Release {
        return;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    if let Some(confirm) = state.confirm.take() {
        answer(state, confirm, key, ctrl, fx);
        return;
    }
    if key.code != KeyCode::Tab {
        state.editor.completion = None;
    }
    let empty = state.editor.input.is_empty();
    match key.code {
        KeyCode::Char('c') if ctrl => quit(state, fx),
        KeyCode::Char('n') if ctrl => cycle(state, 1, fx),
        KeyCode::Char('p') if ctrl => cycle(state, -1, fx),
        KeyCode::Char('u') if ctrl => {
            state.editor.input.clear();
            state.editor.cursor = 0;
            after_edit(state, fx);
        }
        KeyCode::Char('w') if ctrl => {
            delete_word(state);
            after_edit(state, fx);
        }
        KeyCode::Char('a') if ctrl => state.editor.cursor = 0,
        KeyCode::Char('e') if ctrl => state.editor.cursor = state.editor.input.chars().count(),
        KeyCode::Char('r') if ctrl => {
            if state.search.is_some() && empty {
                search::step(state, true);
            } else if !empty && !state.editor.input.starts_with('/') {
                let query = std::mem::take(&mut state.editor.input);
                state.editor.cursor = 0;
                search::start(state, &query);
                after_edit(state, fx);
            } else {
                state.editor.input = "/search ".to_owned();
                state.editor.cursor = state.editor.input.chars().count();
            }
        }
        KeyCode::Char('s') if ctrl => search::step(state, false),
        KeyCode::Char(d @ '1'..='9') if alt => {
            let i = (d as usize) - ('1' as usize);
            if let Some(c) = state.convs.get(i) {
                let id = c.id.clone();
                state.switch_to(id, fx);
            }
        }
        KeyCode::Char(c) if !ctrl && !alt => {
            insert_str(state, &c.to_string());
            after_edit(state, fx);
        }
        KeyCode::Esc => {
            state.toasts.clear();
            state.search = None;
            state.selection.clear();
            super::account::cancel(state);
        }
        // (v3) The selected message, for /reply /edit /delete /react.
        KeyCode::Up if alt => selection::step(state, true, fx),
        KeyCode::Down if alt => selection::step(state, false, fx),
        KeyCode::Char('g' | 'G') if alt => selection::go_to_answered(state, fx),
        KeyCode::Enter => actions::submit(state, fx),
        KeyCode::Tab => complete(state),
        KeyCode::Backspace if state.editor.cursor > 0 => {
            let start = prev_boundary(&state.editor.input, state.editor.cursor);
            remove_chars(state, start, state.editor.cursor);
            state.editor.cursor = start;
            after_edit(state, fx);
        }
        KeyCode::Delete if state.editor.cursor < state.editor.input.chars().count() => {
            let end = next_boundary(&state.editor.input, state.editor.cursor);
            remove_chars(state, state.editor.cursor, end);
            after_edit(state, fx);
        }
        KeyCode::Left => {
            state.editor.cursor = prev_boundary(&state.editor.input, state.editor.cursor)
        }
        KeyCode::Right => {
            state.editor.cursor = next_boundary(&state.editor.input, state.editor.cursor)
        }
        // With an empty line, Home and End go to the oldest and newest lines.
        KeyCode::Home if empty => {
            // The draw clamps this to the oldest loaded line; Home again
            // (or scrolling further) there fetches older history.
            if state.viewport.at_top && state.active_conv().scroll >= state.max_scroll {
                backlog::fetch_older(state, fx);
            }
            let id = state.active.clone();
            if let Some(c) = state.conv_mut(&id) {
                c.scroll = usize::MAX;
            }
        }
        KeyCode::End if empty => {
            let id = state.active.clone();
            if let Some(c) = state.conv_mut(&id) {
                c.scroll = 0;
            }
        }
        KeyCode::Home => state.editor.cursor = 0,
        KeyCode::End => state.editor.cursor = state.editor.input.chars().count(),
        KeyCode::Up => history_move(state, true),
        KeyCode::Down => history_move(state, false),
        KeyCode::PageUp => scroll(state, true, state.page, fx),
        KeyCode::PageDown => scroll(state, false, state.page, fx),
        KeyCode::F(2) => {
            let shown = state
                .viewport
                .panels
                .unwrap_or(state.viewport.screen_width >= super::NARROW);
            state.viewport.panels = Some(!shown);
        }
        KeyCode::F(3) => {
            state.viewport.mouse_capture = !state.viewport.mouse_capture;
            fx.push(Effect::MouseCapture(state.viewport.mouse_capture));
            state.toast(if state.viewport.mouse_capture {
                "mouse captured (wheel scrolls); F3 releases it for selecting text"
            } else {
                "mouse released: select text with it; F3 captures it again"
            });
        }
        _ => {}
    }
}

fn answer(state: &mut State, confirm: Confirm, key: KeyEvent, ctrl: bool, fx: &mut Vec<Effect>) {
    let yes = matches!(key.code, KeyCode::Char('y' | 'Y') | KeyCode::Enter)
        || (matches!(confirm, Confirm::Quit { .. }) && ctrl && key.code == KeyCode::Char('c'));
    let no = matches!(key.code, KeyCode::Char('n' | 'N') | KeyCode::Esc);
    if !yes && !no {
        // Anything else: the question stays.
        state.confirm = Some(confirm);
        return;
    }
    match (confirm, yes) {
        (Confirm::Quit { .. }, true) => do_quit(state, fx),
        (Confirm::LongText { line, .. }, true) => actions::run_line(state, &line, fx),
        (Confirm::LongText { line, .. }, false) => {
            // Back on the input line, to edit or clear.
            state.editor.input = line;
            state.editor.cursor = state.editor.input.chars().count();
        }
        (Confirm::Quit { .. }, false) => {}
        (Confirm::Delete { conv, id, .. }, yes) => {
            super::change_commands::delete_answered(state, conv, id, yes, fx)
        }
    }
}

pub(super) fn byte_at(s: &str, chars: usize) -> usize {
    s.char_indices()
        .nth(chars)
        .map(|(b, _)| b)
        .unwrap_or(s.len())
}

/// The char index of the grapheme boundary before char index `cursor`.
pub fn prev_boundary(s: &str, cursor: usize) -> usize {
    let mut pos = 0;
    for g in s.graphemes(true) {
        let end = pos + g.chars().count();
        if end >= cursor {
            return pos;
        }
        pos = end;
    }
    pos
}

/// The char index of the grapheme boundary after char index `cursor`.
pub fn next_boundary(s: &str, cursor: usize) -> usize {
    let mut pos = 0;
    for g in s.graphemes(true) {
        let end = pos + g.chars().count();
        if end > cursor {
            return end;
        }
        pos = end;
    }
    pos
}

pub(super) fn insert_str(state: &mut State, text: &str) {
    let at = byte_at(&state.editor.input, state.editor.cursor);
    state.editor.input.insert_str(at, text);
    state.editor.cursor += text.chars().count();
}

fn remove_chars(state: &mut State, from: usize, to: usize) {
    let a = byte_at(&state.editor.input, from);
    let b = byte_at(&state.editor.input, to);
    state.editor.input.replace_range(a..b, "");
}

/// Ctrl-W: deletes the word before the cursor and the spaces after it.
fn delete_word(state: &mut State) {
    let chars: Vec<char> = state.editor.input.chars().collect();
    let mut start = state.editor.cursor.min(chars.len());
    while start > 0 && chars[start - 1].is_whitespace() {
        start -= 1;
    }
    while start > 0 && !chars[start - 1].is_whitespace() {
        start -= 1;
    }
    let end = state.editor.cursor;
    remove_chars(state, start, end);
    state.editor.cursor = start;
}

fn history_move(state: &mut State, up: bool) {
    if state.editor.history.is_empty() {
        return;
    }
    let next = match (state.editor.history_pos, up) {
        (None, true) => {
            state.editor.draft = state.editor.input.clone();
            Some(state.editor.history.len() - 1)
        }
        (None, false) => None,
        (Some(p), true) => Some(p.saturating_sub(1)),
        (Some(p), false) if p + 1 < state.editor.history.len() => Some(p + 1),
        (Some(_), false) => None,
    };
    state.editor.input = match next {
        Some(p) => state.editor.history[p].clone(),
        None => std::mem::take(&mut state.editor.draft),
    };
    state.editor.history_pos = next;
    state.editor.cursor = state.editor.input.chars().count();
}

fn complete(state: &mut State) {
    if let Some(comp) = &mut state.editor.completion {
        // Tab again: replace the previous candidate with the next one.
        let prev = comp.candidates[comp.index].clone();
        comp.index = (comp.index + 1) % comp.candidates.len();
        let next = comp.candidates[comp.index].clone();
        let start = comp.start;
        replace_word(state, start, prev.chars().count(), &next);
        return;
    }
    let (start, word) = crate::commands::word_before(&state.editor.input, state.editor.cursor);
    let mut rooms: Vec<String> = state.rooms();
    rooms.extend(state.known_rooms.iter().cloned());
    let mut users: Vec<String> = state.users.iter().cloned().collect();
    users.extend(state.blocked.iter().cloned());
    for c in &state.convs {
        users.extend(c.members.iter().cloned());
        if let ConvId::Dm(u) = &c.id {
            users.push(u.clone());
        }
    }
    let candidates = crate::commands::candidates(&word, start, &rooms, &users);
    if candidates.is_empty() {
        return;
    }
    let first = candidates[0].clone();
    replace_word(state, start, word.chars().count(), &first);
    if candidates.len() > 1 {
        state.editor.completion = Some(Completion {
            start,
            candidates,
            index: 0,
        });
    } else {
        insert_str(state, " ");
    }
}

/// Replaces `len` chars at char index `start` by `with`, cursor after it.
fn replace_word(state: &mut State, start: usize, len: usize, with: &str) {
    let a = byte_at(&state.editor.input, start);
    let b = byte_at(&state.editor.input, start + len);
    state.editor.input.replace_range(a..b, with);
    state.editor.cursor = start + with.chars().count();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grapheme_boundaries_step_over_flags_and_families() {
        let s = "a🇫🇷👨‍👩‍👧b";
        // a | 🇫🇷 (2 chars) | family (5 chars) | b
        assert_eq!(next_boundary(s, 0), 1);
        assert_eq!(next_boundary(s, 1), 3);
        assert_eq!(next_boundary(s, 3), 8);
        assert_eq!(prev_boundary(s, 8), 3);
        assert_eq!(prev_boundary(s, 3), 1);
        assert_eq!(prev_boundary(s, 9), 8);
        assert_eq!(prev_boundary(s, 0), 0);
    }
}
