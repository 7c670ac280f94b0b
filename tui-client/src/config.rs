//! Settings: the configuration file (`config.toml` in the user's config
//! directory, found with `directories`, or `--config PATH`), overridden by
//! environment variables and flags, and validated before the screen opens:
//! the server URL, the username, the CA file.
//!
//! ```toml
//! server = "work"                 # a URL, host:port, or a name from [servers]
//! user = "alice"
//! rooms = ["#general", "#ops"]    # joined on connect
//! time_format = "%H:%M"
//! mouse = true                    # capture the mouse (F3 toggles)
//! hyperlinks = true               # URLs as OSC 8 links
//! max_lines = 10000               # lines kept in memory per conversation
//! ca_file = "/etc/chat/ca.pem"    # trust this CA for https://
//! client_label = "chat-tui on laptop" # what /sessions shows for this
//!                                 # client ("" sends none)
//!
//! [servers]
//! work = "https://chat.example.com"
//! local = "127.0.0.1:3000"
//!
//! [notify]
//! bell = true
//! desktop = true
//! min_interval_ms = 2000
//!
//! [colours]
//! mention = "lightyellow"
//! link = "lightblue"
//! marker = "lightred"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::{DEFAULT_MAX_LINES, NotifySettings};
use crate::theme::{Theme, colour_name, parse_colour};

/// The server when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3000";

/// The accepted forms of a server address, for error messages and `--help`.
pub const URL_FORMS: &str = "http://HOST[:PORT], https://HOST[:PORT], or HOST:PORT (plain http), \
     e.g. http://127.0.0.1:3000, https://chat.example.com, localhost:3000";

/// The configuration file as written (every key optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, String>,
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<String>,
    pub time_format: Option<String>,
    pub mouse: Option<bool>,
    pub hyperlinks: Option<bool>,
    pub max_lines: Option<usize>,
    pub ca_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    /// (v3) The label of this client in the account's session list;
    /// default "chat-tui on HOSTNAME", `""` sends none.
    pub client_label: Option<String>,
    #[serde(default)]
    pub notify: NotifyFile,
    #[serde(default)]
    pub colours: ColoursFile,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    pub bell: Option<bool>,
    pub desktop: Option<bool>,
    pub min_interval_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColoursFile {
    pub mention: Option<String>,
    pub link: Option<String>,
    pub marker: Option<String>,
}

/// What flags and environment variables say (they win over the file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub server: Option<String>,
    pub user: Option<String>,
    pub rooms: Vec<String>,
    pub time_format: Option<String>,
    pub no_mouse: bool,
    pub no_hyperlinks: bool,
    pub no_bell: bool,
    pub no_desktop_notify: bool,
    pub max_lines: Option<usize>,
    pub ca_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub client_label: Option<String>,
}

/// The effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The configuration file read, if any.
    pub config_path: Option<PathBuf>,
    /// The validated server URL.
    pub server: String,
    pub user: Option<String>,
    pub rooms: Vec<String>,
    pub time_format: String,
    pub mouse: bool,
    pub hyperlinks: bool,
    pub max_lines: usize,
    pub ca_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    /// (v3) The handshake's `client` label as sent (cleaned and cut as
    /// the server keeps it); `None`: none is sent.
    pub client_label: Option<String>,
    pub notify: NotifySettings,
    pub theme: Theme,
}

/// `~/.config/chat-tui/config.toml` on Linux (the platform's equivalent
/// elsewhere).
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "chat-tui").map(|d| d.config_dir().join("config.toml"))
}

/// The label a client sends when nothing says otherwise: `chat-tui on
/// HOSTNAME`, the host name from the `HOSTNAME` environment variable or
/// `/etc/hostname`; plain `chat-tui` when neither says.
pub fn default_client_label() -> String {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_file = || {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
    };
    let host = from_env
        .filter(|h| !h.trim().is_empty())
        .or_else(from_file)
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty());
    match host {
        Some(h) => format!("chat-tui on {h}"),
        None => "chat-tui".to_owned(),
    }
}

/// Reads a configuration file.
pub fn load(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks a server address and writes it as a URL: `http://` or
/// `https://`, a host (name, IPv4 or `[IPv6]`), an optional port, nothing
/// after it but `/`. A bare `host:port` means `http://host:port`.
pub fn parse_server_url(input: &str) -> Result<String, String> {
    let s = input.trim();
    let bad = |why: &str| format!("{input:?} is not a server address ({why}); use {URL_FORMS}");
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "http" && scheme != "https" {
                return Err(bad(&format!("{scheme}:// is not http:// or https://")));
            }
            (scheme, rest)
        }
        None => {
            if !s.contains(':') {
                return Err(bad("a port is needed without http:// or https://"));
            }
            ("http".to_owned(), s)
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/") {
        return Err(bad("no path: the client adds /socket.io/ itself"));
    }
    if authority.contains('@') {
        return Err(bad("no user@ part"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(bad("not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
        };
        (format!("[{h}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(bad("the host has characters a host name cannot have"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(bad(&format!("{p:?} is not a port (1-65535)"))),
        },
    };
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// Merges the file and the overrides into the effective settings.
pub fn resolve(
    file: FileConfig,
    config_path: Option<PathBuf>,
    over: Overrides,
) -> Result<Settings, String> {
    let server = over
        .server
        .or(file.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    // A name from [servers], or an address.
    let server = file.servers.get(&server).cloned().unwrap_or(server);
    let server = parse_server_url(&server)?;
    let user = over.user.or(file.user);
    if let Some(u) = &user
        && !chat_shared::is_valid_username(u)
    {
        return Err(format!(
            "{u:?} is not a valid username (1-32 of A-Z a-z 0-9 _ . -)"
        ));
    }
    let rooms = if over.rooms.is_empty() {
        file.rooms
    } else {
        over.rooms
    };
    for r in &rooms {
        if chat_shared::canonical_room(r).is_none() {
            return Err(format!(
                "{r:?} is not a room name (# then 1-32 of a-z 0-9 _ -)"
            ));
        }
    }
    let time_format = over
        .time_format
        .or(file.time_format)
        .unwrap_or_else(|| "%H:%M".to_owned());
    check_time_format(&time_format)?;
    let defaults = NotifySettings::default();
    let notify = NotifySettings {
        bell: !over.no_bell && file.notify.bell.unwrap_or(defaults.bell),
        desktop: !over.no_desktop_notify && file.notify.desktop.unwrap_or(defaults.desktop),
        min_interval: file
            .notify
            .min_interval_ms
            .map(Duration::from_millis)
            .unwrap_or(defaults.min_interval),
    };
    let mut theme = Theme::default();
    if let Some(c) = &file.colours.mention {
        theme.mention = parse_colour(c)?;
    }
    if let Some(c) = &file.colours.link {
        theme.link = parse_colour(c)?;
    }
    if let Some(c) = &file.colours.marker {
        theme.marker = parse_colour(c)?;
    }
    Ok(Settings {
        config_path,
        server,
        user,
        rooms,
        time_format,
        mouse: !over.no_mouse && file.mouse.unwrap_or(true),
        hyperlinks: !over.no_hyperlinks && file.hyperlinks.unwrap_or(true),
        max_lines: over
            .max_lines
            .or(file.max_lines)
            .unwrap_or(DEFAULT_MAX_LINES)
            .max(100),
        ca_file: over.ca_file.or(file.ca_file),
        log_file: over.log_file.or(file.log_file),
        client_label: chat_shared::client_label(
            &over
                .client_label
                .or(file.client_label)
                .unwrap_or_else(default_client_label),
        ),
        notify,
        theme,
    })
}

fn check_time_format(f: &str) -> Result<(), String> {
    use std::fmt::Write;
    let items = chrono::format::StrftimeItems::new(f);
    let mut out = String::new();
    let t = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
    write!(out, "{}", t.format_with_items(items))
        .map_err(|_| format!("{f:?} is not a time format (strftime, like %H:%M)"))
}

impl Settings {
    /// The effective settings as a configuration file (`--print-config`).
    pub fn to_toml(&self) -> String {
        let file = FileConfig {
            server: Some(self.server.clone()),
            servers: BTreeMap::new(),
            user: self.user.clone(),
            rooms: self.rooms.clone(),
            time_format: Some(self.time_format.clone()),
            mouse: Some(self.mouse),
            hyperlinks: Some(self.hyperlinks),
            max_lines: Some(self.max_lines),
            ca_file: self.ca_file.clone(),
            log_file: self.log_file.clone(),
            client_label: Some(self.client_label.clone().unwrap_or_default()),
            notify: NotifyFile {
                bell: Some(self.notify.bell),
                desktop: Some(self.notify.desktop),
                min_interval_ms: Some(self.notify.min_interval.as_millis() as u64),
            },
            colours: ColoursFile {
                mention: Some(colour_name(self.theme.mention)),
                link: Some(colour_name(self.theme.link)),
                marker: Some(colour_name(self.theme.marker)),
            },
        };
        let from = match &self.config_path {
            Some(p) => format!("# read from {}\n", p.display()),
            None => "# no configuration file read\n".to_owned(),
        };
        from + &toml::to_string(&file).unwrap_or_default()
    }
}

/// Loads the certificate authority in `path` (PEM, or DER) into a TLS
/// connector for `https://` servers.
pub fn tls_with_ca(path: &Path) -> Result<native_tls::TlsConnector, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    let cert = native_tls::Certificate::from_pem(&bytes)
        .or_else(|_| native_tls::Certificate::from_der(&bytes))
        .map_err(|e| format!("{} is not a PEM or DER certificate: {e}", path.display()))?;
    native_tls::TlsConnector::builder()
        .add_root_certificate(cert)
        .build()
        .map_err(|e| format!("cannot use CA file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_checked_before_the_screen_opens() {
        assert_eq!(
            parse_server_url("http://127.0.0.1:3000").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            parse_server_url("HTTPS://chat.example.com/").unwrap(),
            "https://chat.example.com"
        );
        assert_eq!(
            parse_server_url("localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(
            parse_server_url("http://[::1]:8080").unwrap(),
            "http://[::1]:8080"
        );
        for bad in [
            "localhost",
            "ftp://x:1",
            "http://:3000",
            "http://host:0",
            "http://host:99999",
            "http://host:3000/chat",
            "http://us er:1",
            "http://a@b:1",
            "",
        ] {
            let e = parse_server_url(bad).unwrap_err();
            assert!(e.contains("http://HOST[:PORT]"), "{bad}: {e}");
        }
    }

    #[test]
    fn flags_override_the_file_and_names_come_from_servers() {
        let file: FileConfig = toml::from_str(
            r##"
            server = "work"
            user = "alice"
            rooms = ["#general", "ops"]
            [servers]
            work = "https://chat.example.com"
            [notify]
            bell = false
            min_interval_ms = 500
            [colours]
            mention = "#ff8800"
            "##,
        )
        .unwrap();
        let s = resolve(file.clone(), None, Overrides::default()).unwrap();
        assert_eq!(s.server, "https://chat.example.com");
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.rooms, ["#general", "ops"]);
        assert!(!s.notify.bell && s.notify.desktop);
        assert_eq!(s.notify.min_interval, Duration::from_millis(500));
        assert_eq!(s.theme.mention, ratatui::style::Color::Rgb(0xff, 0x88, 0));
        let over = Overrides {
            server: Some("localhost:4000".into()),
            user: Some("bob".into()),
            rooms: vec!["#x".into()],
            no_desktop_notify: true,
            ..Overrides::default()
        };
        let s = resolve(file, None, over).unwrap();
        assert_eq!(s.server, "http://localhost:4000");
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.rooms, ["#x"]);
        assert!(!s.notify.desktop);
        assert_eq!(
            s.client_label,
            chat_shared::client_label(&default_client_label()),
            "no label configured: chat-tui on this host"
        );
        // What --print-config prints reads back as the same settings.
        let printed = s.to_toml();
        let again = resolve(
            toml::from_str(&printed).unwrap(),
            None,
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn the_client_label_comes_from_the_flag_the_file_or_the_host_name() {
        let file: FileConfig = toml::from_str("client_label = \"  desk  \"").unwrap();
        let s = resolve(file.clone(), None, Overrides::default()).unwrap();
        assert_eq!(s.client_label.as_deref(), Some("desk"));
        let over = Overrides {
            client_label: Some("laptop".into()),
            ..Overrides::default()
        };
        let s = resolve(file, None, over).unwrap();
        assert_eq!(s.client_label.as_deref(), Some("laptop"));
        // An empty label sends none, and says so in --print-config.
        let none: FileConfig = toml::from_str("client_label = \"\"").unwrap();
        let s = resolve(none, None, Overrides::default()).unwrap();
        assert_eq!(s.client_label, None);
        let again = resolve(
            toml::from_str(&s.to_toml()).unwrap(),
            None,
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(again.client_label, None);
        // Cut to what the server keeps.
        let long = Overrides {
            client_label: Some("x".repeat(100)),
            ..Overrides::default()
        };
        let s = resolve(FileConfig::default(), None, long).unwrap();
        assert_eq!(s.client_label.map(|l| l.chars().count()), Some(64));
        assert!(default_client_label().starts_with("chat-tui"));
    }

    #[test]
    fn mistakes_in_the_file_are_reported() {
        assert!(
            toml::from_str::<FileConfig>("sever = \"x\"").is_err(),
            "typos are not ignored"
        );
        let bad = |t: &str| resolve(toml::from_str(t).unwrap(), None, Overrides::default());
        assert!(bad("user = \"a b\"").unwrap_err().contains("username"));
        assert!(bad("rooms = [\"#Bad Room\"]").unwrap_err().contains("room"));
        assert!(
            bad("[colours]\nlink = \"blurple\"")
                .unwrap_err()
                .contains("colour")
        );
        assert!(
            bad("server = \"nope\"")
                .unwrap_err()
                .contains("not a server address")
        );
    }

    #[test]
    fn a_ca_file_must_be_a_certificate() {
        let dir = std::env::temp_dir().join(format!("chat-tui-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        assert!(tls_with_ca(&path).unwrap_err().contains("not a PEM or DER"));
        assert!(
            tls_with_ca(&dir.join("missing.pem"))
                .unwrap_err()
                .contains("cannot read")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
