//! Where chat-tui's password comes from, before the screen opens: a file
//! (`--password-file`), the environment (`CHAT_PASSWORD`), or a question on
//! the terminal without echo. `--register` asks twice.
//!
//! A password is kept in a [`Password`], whose `Debug` never shows it, so
//! that no log line or panic message can carry one.

use std::path::Path;

use chat_shared::check_password;

/// A password, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Password(String);

impl Password {
    pub fn new(p: impl Into<String>) -> Password {
        Password(p.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The first line of `text`, without its line ending: a password file
/// holds the password on its first line (a trailing newline is not part of
/// it).
fn first_line(text: &str) -> &str {
    let line = text.split('\n').next().unwrap_or("");
    line.strip_suffix('\r').unwrap_or(line)
}

/// Reads the password from `path` (its first line).
pub fn from_file(path: &Path) -> Result<Password, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
    let p = first_line(&text);
    if p.is_empty() {
        return Err(format!("the password file {} is empty", path.display()));
    }
    Ok(Password::new(p))
}

/// The password a new account gets: checked against the contract's rule
/// (8-256 characters) before it is sent, so the user hears of a short one
/// before connecting.
pub fn check_new(p: &Password) -> Result<(), String> {
    check_password(p.expose()).map_err(|e| format!("{e}: choose a password of 8-256 characters"))
}

/// Asks on the terminal, without echo.
pub fn prompt(question: &str) -> Result<Password, String> {
    rpassword::prompt_password(question)
        .map(Password::new)
        .map_err(|e| format!("cannot read a password from the terminal: {e}"))
}

/// Asks twice for a new password, until both agree and it is long enough
/// (three tries).
pub fn prompt_new(name: &str) -> Result<Password, String> {
    for _ in 0..3 {
        let first = prompt(&format!("new password for {name}: "))?;
        if let Err(e) = check_new(&first) {
            eprintln!("{e}");
            continue;
        }
        let again = prompt("the same password again: ")?;
        if first == again {
            return Ok(first);
        }
        eprintln!("the two passwords differ");
    }
    Err("no password chosen".into())
}

/// The password to start with: the file, else the environment; `None` when
/// neither gives one (the client then connects without, and asks if the
/// server says the name needs one).
pub fn initial(file: Option<&Path>, env: Option<String>) -> Result<Option<Password>, String> {
    if let Some(path) = file {
        return from_file(path).map(Some);
    }
    Ok(env.filter(|p| !p.is_empty()).map(Password::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_debug() {
        let p = Password::new("hunter2 hunter2");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert_eq!(p.expose(), "hunter2 hunter2");
    }

    #[test]
    fn a_password_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "  spaces count  \r\nsecond line\n").unwrap();
        assert_eq!(from_file(&path).unwrap().expose(), "  spaces count  ");
        std::fs::write(&path, "\n").unwrap();
        assert!(from_file(&path).unwrap_err().contains("is empty"));
        let missing = dir.path().join("nope");
        assert!(
            from_file(&missing)
                .unwrap_err()
                .contains("cannot read the password file")
        );
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from the file\n").unwrap();
        let p = initial(Some(&path), Some("from the env".into())).unwrap();
        assert_eq!(p.unwrap().expose(), "from the file");
        let p = initial(None, Some("from the env".into())).unwrap();
        assert_eq!(p.unwrap().expose(), "from the env");
        assert_eq!(initial(None, Some(String::new())).unwrap(), None);
        assert_eq!(initial(None, None).unwrap(), None);
    }

    #[test]
    fn a_new_password_follows_the_contract() {
        assert!(check_new(&Password::new("short")).is_err());
        assert!(check_new(&Password::new("long enough")).is_ok());
    }
}
