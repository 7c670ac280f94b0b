//! (v3) Logging in once: `chat-tui --login` asks for the password once,
//! trades it for an API token of the account (`POST /api/v1/tokens`,
//! labelled like the client), and keeps the token in the client's data
//! directory, one file per server and username, readable by the user
//! alone. Later starts with that server and name open their session with
//! the token (`auth.token`) and never need the password; `/logout`
//! revokes it on the server and deletes the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::password::Password;

/// A saved login: the token and its id (what `/logout` revokes). Its
/// `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedLogin {
    pub id: String,
    pub token: String,
}

impl std::fmt::Debug for SavedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedLogin")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The client's data directory (like `~/.local/share/chat-tui`).
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chat-tui").map(|d| d.data_dir().to_path_buf())
}

/// Where the login of `username` on `server` is kept inside `data_dir`:
/// `logins/<server>/<username>.json`, the server's URL and the name (its
/// case folded, as the server folds it) made safe as file names.
pub fn login_path(data_dir: &Path, server: &str, username: &str) -> PathBuf {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    data_dir
        .join("logins")
        .join(safe(server.trim_end_matches('/')))
        .join(format!(
            "{}.json",
            safe(&chat_shared::username_key(username))
        ))
}

/// The saved login at `path`, if there is one that reads.
pub fn load(path: &Path) -> Option<SavedLogin> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Saves `login` at `path`, readable and writable by the user alone (its
/// directories too).
pub fn save(path: &Path, login: &SavedLogin) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot save the login in {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(fail)?;
    }
    let text = serde_json::to_string(login).map_err(|e| e.to_string())?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    // A file made before with a looser mode is tightened too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(fail)
}

/// An HTTP client that trusts what the Socket.IO connection trusts.
fn http(tls: Option<&native_tls::TlsConnector>) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(15));
    let builder = match tls {
        Some(t) => builder.use_preconfigured_tls(t.clone()),
        None => builder,
    };
    builder
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// The error an API answer carries, as a line for the user.
async fn refusal(res: reqwest::Response) -> String {
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    match body["error"]["message"].as_str() {
        Some(m) => format!("{m} ({})", body["error"]["code"].as_str().unwrap_or("?")),
        None => format!("the server answered {status}"),
    }
}

/// Trades the password for a new API token labelled `label`.
pub async fn request_token(
    server: &str,
    username: &str,
    password: &Password,
    label: &str,
    tls: Option<&native_tls::TlsConnector>,
) -> Result<SavedLogin, String> {
    let body = chat_shared::NewToken {
        username: username.to_owned(),
        password: password.expose().to_owned(),
        label: Some(label.to_owned()),
    };
    let url = format!(
        "{}{}/tokens",
        server.trim_end_matches('/'),
        chat_shared::API_PREFIX
    );
    let res = http(tls)?
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("logging in failed: {}", refusal(res).await));
    }
    let made: chat_shared::TokenCreated = res
        .json()
        .await
        .map_err(|e| format!("the server's answer does not read: {e}"))?;
    Ok(SavedLogin {
        id: made.id,
        token: made.token,
    })
}

/// Revokes `login`'s token on the server (a token the server no longer
/// knows counts as revoked).
pub async fn revoke(
    server: &str,
    login: &SavedLogin,
    tls: Option<&native_tls::TlsConnector>,
) -> Result<(), String> {
    let url = format!(
        "{}{}/tokens/{}",
        server.trim_end_matches('/'),
        chat_shared::API_PREFIX,
        login.id
    );
    let res = http(tls)?
        .delete(url)
        .bearer_auth(&login.token)
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    if res.status().is_success() || res.status().as_u16() == 401 {
        return Ok(());
    }
    Err(format!("the token was not revoked: {}", refusal(res).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_per_server_and_name_readable_by_the_user_alone() {
        let dir = tempfile::tempdir().unwrap();
        let a = login_path(dir.path(), "http://127.0.0.1:3000", "Alice");
        assert_eq!(a, login_path(dir.path(), "http://127.0.0.1:3000/", "alice"));
        assert_ne!(a, login_path(dir.path(), "http://127.0.0.1:3001", "alice"));
        assert_ne!(a, login_path(dir.path(), "http://127.0.0.1:3000", "bob"));
        assert!(a.starts_with(dir.path().join("logins")), "{a:?}");
        assert_eq!(load(&a), None);
        let login = SavedLogin {
            id: "tok-1".into(),
            token: "secret-token".into(),
        };
        save(&a, &login).unwrap();
        assert_eq!(load(&a), Some(login.clone()));
        assert!(!format!("{login:?}").contains("secret-token"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&a).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
            let dir_mode = std::fs::metadata(a.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o077, 0, "{dir_mode:o}");
        }
    }
}
