//! The emoji short names chat-tui knows (`:+1:` is 👍), for `/react` and
//! for Tab on the input line. A short list of the ones people react with
//! most, not a full table: any emoji typed or pasted as itself works too,
//! and what reaches the server is always the character, never the name.

/// Each short name, colons included, and its emoji.
pub const NAMES: [(&str, &str); 24] = [
    (":+1:", "👍"),
    (":thumbsup:", "👍"),
    (":-1:", "👎"),
    (":thumbsdown:", "👎"),
    (":heart:", "❤️"),
    (":joy:", "😂"),
    (":smile:", "😄"),
    (":laughing:", "😆"),
    (":tada:", "🎉"),
    (":eyes:", "👀"),
    (":rocket:", "🚀"),
    (":white_check_mark:", "✅"),
    (":x:", "❌"),
    (":thinking:", "🤔"),
    (":pray:", "🙏"),
    (":clap:", "👏"),
    (":wave:", "👋"),
    (":fire:", "🔥"),
    (":100:", "💯"),
    (":ok_hand:", "👌"),
    (":sob:", "😭"),
    (":warning:", "⚠️"),
    (":raised_hands:", "🙌"),
    (":muscle:", "💪"),
];

/// The emoji a short name stands for (`:+1:` → 👍), case-insensitively.
pub fn by_name(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
}

/// The emoji whose short names start with `prefix` (`:th` → 🤔 👍 👎),
/// in the order of [`NAMES`], each once. Empty unless `prefix` starts with
/// a colon and has something after it.
pub fn completions(prefix: &str) -> Vec<String> {
    let prefix = prefix.to_ascii_lowercase();
    if !prefix.starts_with(':') || prefix.len() < 2 {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for (name, emoji) in NAMES {
        if name.starts_with(&prefix) && !out.iter().any(|e| e == emoji) {
            out.push(emoji.to_owned());
        }
    }
    out
}

/// What `/react WORD` sends: a short name's emoji, or the word itself.
pub fn resolve(word: &str) -> String {
    by_name(word)
        .map(str::to_owned)
        .unwrap_or_else(|| word.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_every_emoji_is_a_valid_reaction() {
        assert_eq!(by_name(":+1:"), Some("👍"));
        assert_eq!(by_name(":TADA:"), Some("🎉"));
        assert_eq!(by_name(":nope:"), None);
        assert_eq!(resolve(":heart:"), "❤️");
        assert_eq!(resolve("🦀"), "🦀");
        for (name, emoji) in NAMES {
            assert!(chat_shared::is_valid_emoji(emoji), "{name}");
        }
    }

    #[test]
    fn completions_are_prefixes_each_emoji_once() {
        assert_eq!(completions(":+1:"), vec!["👍"]);
        assert_eq!(completions(":th"), vec!["👍", "👎", "🤔"]);
        assert_eq!(completions(":ro"), vec!["🚀"]);
        assert!(completions(":").is_empty());
        assert!(completions("th").is_empty());
        assert!(completions(":zz").is_empty());
    }
}
