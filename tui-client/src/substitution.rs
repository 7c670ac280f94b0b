//! `s/old/new/` typed as a whole input line, as IRC users fix a typo: it
//! edits my last message (or the selected one), replacing the first `old`
//! with `new`; with the `g` flag (`s/old/new/g`) every `old`. Literal text,
//! not a regular expression, compared case-sensitively. `\/` is a slash
//! inside `old` or `new`, `\\` a backslash.
//!
//! A line is read as a substitution only when it has exactly that shape:
//! `s/`, two more unescaped slashes, and nothing after the last but an
//! optional `g`. So `s/he said so` is a message; to send a line that looks
//! like a substitution, start it with a space (which, as any leading
//! space of a message, is not sent).

/// A parsed `s/old/new/[g]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    pub old: String,
    pub new: String,
    /// `g`: every occurrence, not only the first.
    pub all: bool,
}

/// What a line that starts with `s/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not a substitution: a message.
    No,
    /// A substitution with nothing to replace (`s//new/`).
    EmptyOld,
    Yes(Substitution),
}

/// Reads `line` as a substitution.
pub fn parse(line: &str) -> Parsed {
    let Some(rest) = line.strip_prefix("s/") else {
        return Parsed::No;
    };
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ ('/' | '\\')) => push(&mut parts, next),
                Some(other) => {
                    push(&mut parts, '\\');
                    push(&mut parts, other);
                }
                None => push(&mut parts, '\\'),
            },
            '/' => parts.push(String::new()),
            c => push(&mut parts, c),
        }
    }
    // `old`, `new`, then the flags after the last slash.
    let Ok([old, new, flags]) = <[String; 3]>::try_from(parts) else {
        return Parsed::No;
    };
    if !(flags.is_empty() || flags == "g") {
        return Parsed::No;
    }
    if old.is_empty() {
        return Parsed::EmptyOld;
    }
    Parsed::Yes(Substitution {
        old,
        new,
        all: flags == "g",
    })
}

fn push(parts: &mut [String], c: char) {
    if let Some(last) = parts.last_mut() {
        last.push(c);
    }
}

impl Substitution {
    /// `text` with the substitution made, or `None` when `old` is not in it.
    pub fn apply(&self, text: &str) -> Option<String> {
        if !text.contains(&self.old) {
            return None;
        }
        Some(if self.all {
            text.replace(&self.old, &self.new)
        } else {
            text.replacen(&self.old, &self.new, 1)
        })
    }

    /// The substitution as typed, for messages about it.
    pub fn shown(&self) -> String {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('/', "\\/");
        format!(
            "s/{}/{}/{}",
            esc(&self.old),
            esc(&self.new),
            if self.all { "g" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(old: &str, new: &str, all: bool) -> Parsed {
        Parsed::Yes(Substitution {
            old: old.into(),
            new: new.into(),
            all,
        })
    }

    #[test]
    fn the_shapes_that_are_substitutions() {
        assert_eq!(parse("s/helo/hello/"), sub("helo", "hello", false));
        assert_eq!(parse("s/a/b/g"), sub("a", "b", true));
        assert_eq!(parse("s/typo//"), sub("typo", "", false));
        assert_eq!(parse("s/two words/one/"), sub("two words", "one", false));
        // Escaped slashes and backslashes.
        assert_eq!(parse(r"s/a\/b/c\/d/"), sub("a/b", "c/d", false));
        assert_eq!(parse(r"s/x\\/y/"), sub(r"x\", "y", false));
        assert_eq!(parse(r"s/\d/D/"), sub(r"\d", "D", false));
        assert_eq!(parse("s//new/"), Parsed::EmptyOld);
    }

    #[test]
    fn other_lines_are_messages() {
        for line in [
            "s/he said so",
            "s/a/b",
            "s/a/b/c/",
            "s/a/b/x",
            "s/a/b/gg",
            " s/a/b/",
            "S/a/b/",
            "hello",
            "s/",
            r"s/a\/b/",
        ] {
            assert_eq!(parse(line), Parsed::No, "{line:?}");
        }
    }

    #[test]
    fn apply_replaces_the_first_or_every_occurrence() {
        let Parsed::Yes(first) = parse("s/o/0/") else {
            panic!("a substitution")
        };
        assert_eq!(first.apply("foo boo").as_deref(), Some("f0o boo"));
        let Parsed::Yes(every) = parse("s/o/0/g") else {
            panic!("a substitution")
        };
        assert_eq!(every.apply("foo boo").as_deref(), Some("f00 b00"));
        // Case-sensitive, literal: no match is None, not the text unchanged.
        assert_eq!(first.apply("FOO"), None);
        let Parsed::Yes(dot) = parse("s/./!/") else {
            panic!("a substitution")
        };
        assert_eq!(dot.apply("a.b").as_deref(), Some("a!b"));
        assert_eq!(dot.shown(), "s/./!/");
        assert_eq!(
            Substitution {
                old: "a/b".into(),
                new: "".into(),
                all: true
            }
            .shown(),
            r"s/a\/b//g"
        );
    }
}
