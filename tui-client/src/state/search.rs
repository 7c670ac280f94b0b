//! `/search TEXT` and Ctrl-R: finds TEXT (case-insensitively) in the loaded
//! lines of the active conversation, highlights the matches and jumps
//! between them, newest first. Esc ends the search.

use super::State;

/// A search in the active conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub query: String,
    /// The `seq` of every line that matches, oldest first.
    pub hits: Vec<u64>,
    /// Which of `hits` is shown (the newest at first).
    pub current: usize,
}

impl Search {
    /// The line being shown, if any matched.
    pub fn current_seq(&self) -> Option<u64> {
        self.hits.get(self.current).copied()
    }
}

fn lower_chars(s: &str) -> Vec<char> {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// Where `query` occurs in `text`, case-insensitively, as char ranges of
/// `text` (start, length). Empty for an empty query.
pub fn find_matches(text: &str, query: &str) -> Vec<(usize, usize)> {
    let q = lower_chars(query);
    if q.is_empty() {
        return Vec::new();
    }
    // Lower-casing may turn one char into several; keep, for every char of
    // the lowered text, the char of `text` it came from.
    let mut lowered = Vec::new();
    let mut origin = Vec::new();
    for (i, c) in text.chars().enumerate() {
        for l in c.to_lowercase() {
            lowered.push(l);
            origin.push(i);
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i + q.len() <= lowered.len() {
        if lowered[i..i + q.len()] == q[..] {
            let start = origin[i];
            let end = origin[i + q.len() - 1] + 1;
            out.push((start, end - start));
            i += q.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Starts a search for `query` in the active conversation.
pub(super) fn start(state: &mut State, query: &str) {
    let query = query.trim();
    if query.is_empty() {
        state.search = None;
        return;
    }
    let hits = hits(state, query);
    if hits.is_empty() {
        state.toast(format!("not found in the loaded history: {query}"));
    }
    let current = hits.len().saturating_sub(1);
    state.search = Some(Search {
        query: query.to_owned(),
        hits,
        current,
    });
}

/// The `seq` of every line of the active conversation that holds `query`.
fn hits(state: &State, query: &str) -> Vec<u64> {
    let q = lower_chars(query);
    let c = state.active_conv();
    c.entries
        .iter()
        .filter(|e| !state.hides(c, e))
        .filter(|e| {
            let t = lower_chars(&e.text);
            t.windows(q.len()).any(|w| w == q.as_slice())
        })
        .map(|e| e.seq)
        .collect()
}

/// (v3) The matches found again after a line changed (an edit, a
/// deletion): a deleted line is no match any more. The match shown stays
/// shown while it still matches; otherwise the newest is.
pub(super) fn refresh(state: &mut State) {
    let Some(s) = &state.search else { return };
    let query = s.query.clone();
    let shown = s.current_seq();
    let hits = hits(state, &query);
    let current = shown
        .and_then(|seq| hits.iter().position(|h| *h == seq))
        .unwrap_or(hits.len().saturating_sub(1));
    state.search = Some(Search {
        query,
        hits,
        current,
    });
}

/// Moves to the next older (`older`) or newer match.
pub(super) fn step(state: &mut State, older: bool) {
    let Some(s) = &mut state.search else { return };
    if s.hits.is_empty() {
        return;
    }
    s.current = if older {
        s.current.saturating_sub(1)
    } else {
        (s.current + 1).min(s.hits.len() - 1)
    };
}

impl State {
    /// What the status line says about the search, if one is on.
    pub fn search_text(&self) -> Option<String> {
        let s = self.search.as_ref()?;
        Some(if s.hits.is_empty() {
            format!("search {:?}: no match · Esc ends", s.query)
        } else {
            format!(
                "search {:?}: {}/{} · Ctrl-R older, Ctrl-S newer, Esc ends",
                s.query,
                s.current + 1,
                s.hits.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_are_case_insensitive_char_ranges() {
        assert_eq!(find_matches("Hello hello", "HELLO"), vec![(0, 5), (6, 5)]);
        assert_eq!(find_matches("日本語 ok 日本", "日本"), vec![(0, 2), (7, 2)]);
        assert!(find_matches("abc", "").is_empty());
        assert!(find_matches("abc", "abcd").is_empty());
    }
}
