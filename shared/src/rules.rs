//! Validation rules shared by the server (which enforces them) and clients
//! (which check early, to give the user a quick answer).

use crate::error::ErrorCode;

/// Longest username, in characters.
pub const USERNAME_MAX: usize = 32;
/// Longest room name after the `#`, in characters.
pub const ROOM_NAME_MAX: usize = 32;
/// Default longest message text, in Unicode scalar values after trimming.
pub const DEFAULT_MAX_TEXT: usize = 2000;
/// Shortest password, in Unicode scalar values (v2 accounts).
pub const MIN_PASSWORD: usize = 8;
/// Longest password, in Unicode scalar values: bounds the work a slow hash
/// does for one connect attempt.
pub const MAX_PASSWORD: usize = 256;
/// How many messages a `history` request without `limit` returns.
pub const HISTORY_DEFAULT_LIMIT: u64 = 50;
/// The most messages one `history` request returns, whatever its `limit`.
pub const HISTORY_MAX_LIMIT: u64 = 200;

/// A username is 1–32 characters of `A–Z a–z 0–9 _ . -`.
pub fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= USERNAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The key under which a username is unique: usernames compare
/// case-insensitively, the display form keeps its case.
pub fn username_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// The canonical form of a room name: trimmed, lower-cased, with a leading
/// `#`; `None` when the result breaks the rule `#` + 1–32 of `a–z 0–9 _ -`.
///
/// `general`, `#General` and ` #general ` all become `#general`.
pub fn canonical_room(input: &str) -> Option<String> {
    let trimmed = input.trim();
    let body = trimmed.strip_prefix('#').unwrap_or(trimmed);
    let ok = !body.is_empty()
        && body.len() <= ROOM_NAME_MAX
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    ok.then(|| format!("#{}", body.to_ascii_lowercase()))
}

/// Why a message text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is longer than {limit} characters")]
    TooLong { limit: usize },
    #[error("the message holds control characters (only newline and tab are allowed)")]
    InvalidCharacters,
}

impl TextError {
    pub fn code(self) -> ErrorCode {
        match self {
            TextError::Empty => ErrorCode::EmptyMessage,
            TextError::TooLong { .. } => ErrorCode::MessageTooLong,
            TextError::InvalidCharacters => ErrorCode::InvalidCharacters,
        }
    }
}

/// Applies the text rules and returns the trimmed text: 1–`max_chars`
/// Unicode scalar values after trimming, no control characters other than
/// newline and tab (so no terminal escape sequences).
pub fn check_text(text: &str, max_chars: usize) -> Result<&str, TextError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(TextError::Empty);
    }
    // Count lazily: stop as soon as the limit is passed.
    if trimmed.chars().nth(max_chars).is_some() {
        return Err(TextError::TooLong { limit: max_chars });
    }
    if trimmed.chars().any(is_forbidden_char) {
        return Err(TextError::InvalidCharacters);
    }
    Ok(trimmed)
}

/// Why a password was refused (`weak_password`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is shorter than {min} characters")]
    TooShort { min: usize },
    #[error("the password is longer than {max} characters")]
    TooLong { max: usize },
}

impl PasswordError {
    pub fn code(self) -> ErrorCode {
        ErrorCode::WeakPassword
    }
}

/// Applies the password rule: [`MIN_PASSWORD`]–[`MAX_PASSWORD`] Unicode
/// scalar values. Nothing is trimmed: every character of a password counts,
/// and the client sends exactly what the user typed.
pub fn check_password(p: &str) -> Result<(), PasswordError> {
    // Count lazily: a huge input stops being counted past the limit.
    let mut chars = p.chars();
    if chars.by_ref().take(MIN_PASSWORD).count() < MIN_PASSWORD {
        return Err(PasswordError::TooShort { min: MIN_PASSWORD });
    }
    if chars.nth(MAX_PASSWORD - MIN_PASSWORD).is_some() {
        return Err(PasswordError::TooLong { max: MAX_PASSWORD });
    }
    Ok(())
}

/// A control character other than newline and tab (C0, DEL and C1).
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// What a client shows of text it did not write: control characters removed,
/// whatever the server let through, so a peer can never drive the terminal.
pub fn sanitize_for_display(text: &str) -> String {
    text.chars().filter(|&c| !is_forbidden_char(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["a", "alice", "Bob_99", "x.y-z", &"a".repeat(32)] {
            assert!(is_valid_username(ok), "{ok:?} should be valid");
        }
        for bad in [
            "",
            " alice",
            "al ice",
            "ålice",
            "a/b",
            "a#",
            &"a".repeat(33),
            "é",
        ] {
            assert!(!is_valid_username(bad), "{bad:?} should be refused");
        }
    }

    #[test]
    fn username_keys_ignore_case_only() {
        assert_eq!(username_key("Alice"), username_key("aLICE"));
        assert_ne!(username_key("alice"), username_key("alice_"));
        assert_eq!(username_key("Bob.X"), "bob.x");
    }

    #[test]
    fn room_names_are_canonicalised() {
        assert_eq!(canonical_room("general").as_deref(), Some("#general"));
        assert_eq!(canonical_room("#General").as_deref(), Some("#general"));
        assert_eq!(canonical_room(" #general ").as_deref(), Some("#general"));
        assert_eq!(canonical_room("#a-b_9").as_deref(), Some("#a-b_9"));
        assert_eq!(canonical_room(&"x".repeat(32)).map(|r| r.len()), Some(33));
    }

    #[test]
    fn bad_room_names_are_refused() {
        for bad in [
            "",
            "#",
            "  ",
            "##general",
            "gen eral",
            "#café",
            "a.b",
            &"x".repeat(33),
            "#\u{1b}[31m",
        ] {
            assert_eq!(canonical_room(bad), None, "{bad:?} should be refused");
        }
    }

    #[test]
    fn text_is_trimmed_and_checked() {
        assert_eq!(check_text("  hi  ", 2000), Ok("hi"));
        assert_eq!(
            check_text("line1\nline2\tend", 2000),
            Ok("line1\nline2\tend")
        );
        assert_eq!(check_text("   \n\t ", 2000), Err(TextError::Empty));
        assert_eq!(check_text("", 2000), Err(TextError::Empty));
    }

    #[test]
    fn text_length_counts_scalar_values_not_bytes() {
        let emoji = "😀".repeat(2000);
        assert_eq!(check_text(&emoji, 2000), Ok(emoji.as_str()));
        let over = "😀".repeat(2001);
        assert_eq!(
            check_text(&over, 2000),
            Err(TextError::TooLong { limit: 2000 })
        );
        assert_eq!(
            TextError::TooLong { limit: 5 }.code(),
            ErrorCode::MessageTooLong
        );
    }

    #[test]
    fn escape_sequences_and_control_characters_are_refused() {
        for bad in [
            "\u{1b}[2J",
            "bell\u{7}",
            "nul\0",
            "del\u{7f}",
            "c1\u{9b}31m",
            "cr\rx",
        ] {
            assert_eq!(
                check_text(bad, 2000),
                Err(TextError::InvalidCharacters),
                "{bad:?}"
            );
        }
        assert_eq!(
            TextError::InvalidCharacters.code(),
            ErrorCode::InvalidCharacters
        );
        assert_eq!(TextError::Empty.code(), ErrorCode::EmptyMessage);
    }

    #[test]
    fn display_sanitiser_strips_controls_but_keeps_layout() {
        assert_eq!(sanitize_for_display("a\u{1b}[31mb\r\nc\td"), "a[31mb\nc\td");
        assert_eq!(sanitize_for_display("日本😀"), "日本😀");
    }

    #[test]
    fn password_lengths() {
        for ok in [
            "12345678",
            "correct horse battery staple",
            &"p".repeat(MAX_PASSWORD),
            // Eight scalar values, far more bytes.
            "😀😀😀😀😀😀😀😀",
            "  spaces  ",
        ] {
            assert_eq!(check_password(ok), Ok(()), "{ok:?}");
        }
        for short in ["", "1234567", "😀😀😀😀😀😀😀"] {
            assert_eq!(
                check_password(short),
                Err(PasswordError::TooShort { min: 8 }),
                "{short:?}"
            );
        }
        assert_eq!(
            check_password(&"p".repeat(MAX_PASSWORD + 1)),
            Err(PasswordError::TooLong { max: 256 })
        );
        assert_eq!(
            check_password(&"é".repeat(MAX_PASSWORD + 1)),
            Err(PasswordError::TooLong { max: 256 })
        );
        assert_eq!(check_password(&"é".repeat(MAX_PASSWORD)), Ok(()));
    }

    #[test]
    fn password_errors_are_weak_password() {
        let short = PasswordError::TooShort { min: MIN_PASSWORD };
        let long = PasswordError::TooLong { max: MAX_PASSWORD };
        assert_eq!(short.code(), ErrorCode::WeakPassword);
        assert_eq!(long.code(), ErrorCode::WeakPassword);
        assert_eq!(
            short.to_string(),
            "the password is shorter than 8 characters"
        );
        assert_eq!(
            long.to_string(),
            "the password is longer than 256 characters"
        );
    }

    #[test]
    fn history_limits() {
        assert_eq!(HISTORY_DEFAULT_LIMIT, 50);
        assert_eq!(HISTORY_MAX_LIMIT, 200);
        assert_eq!((MIN_PASSWORD, MAX_PASSWORD), (8, 256));
    }
}
