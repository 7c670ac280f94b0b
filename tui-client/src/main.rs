//! `chat-tui --user alice [--server URL] [--config PATH] [--print-config]`
//!
//! Flags and environment variables override the configuration file, which
//! overrides the defaults; everything is checked before the screen opens.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

use chat_tui::config::{self, Overrides, URL_FORMS};
use chat_tui::login;

#[derive(Parser, Debug)]
#[command(
    name = "chat-tui",
    version,
    about = "Terminal chat client for chat-server"
)]
struct Args {
    /// Your username: 1-32 of A-Z a-z 0-9 _ . -
    #[arg(long, env = "CHAT_USER")]
    user: Option<String>,
    /// The server: a URL, host:port, or a name from [servers] in the
    /// configuration file (default http://127.0.0.1:3000). Give it several
    /// times (or comma-separated in CHAT_SERVER) for the nodes of a
    /// cluster: when the one in use cannot be reached, the client tries the
    /// next and resumes its session there.
    #[arg(long, env = "CHAT_SERVER", value_delimiter = ',')]
    server: Vec<String>,
    /// The configuration file (default: config.toml in the user's config
    /// directory, like ~/.config/chat-tui/config.toml).
    #[arg(long, env = "CHAT_TUI_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective settings (file, environment and flags merged)
    /// as a configuration file, and exit.
    #[arg(long)]
    print_config: bool,
    /// A room to join on connect (repeat for more; replaces the file's list).
    #[arg(long = "room", env = "CHAT_TUI_ROOMS", value_delimiter = ',')]
    rooms: Vec<String>,
    /// Trust the certificate authority in this PEM (or DER) file for https://.
    #[arg(long, env = "CHAT_TUI_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Leave the mouse to the terminal, so text can be selected (F3 toggles).
    #[arg(long, env = "CHAT_TUI_NO_MOUSE")]
    no_mouse: bool,
    /// Do not re-emit URLs as OSC 8 hyperlinks.
    #[arg(long, env = "CHAT_TUI_NO_HYPERLINKS")]
    no_hyperlinks: bool,
    /// Do not ring the bell for DMs and mentions.
    #[arg(long, env = "CHAT_TUI_NO_BELL")]
    no_bell: bool,
    /// Do not raise desktop notifications (OSC 777/9) for DMs and mentions.
    #[arg(long, env = "CHAT_TUI_NO_DESKTOP_NOTIFY")]
    no_desktop_notify: bool,
    /// Lines kept in memory per conversation (older ones are fetched again
    /// when scrolled to).
    #[arg(long, env = "CHAT_TUI_MAX_LINES")]
    max_lines: Option<usize>,
    /// How times are shown (strftime, default %H:%M).
    #[arg(long, env = "CHAT_TUI_TIME_FORMAT")]
    time_format: Option<String>,
    /// Write a debug log to this file (never to the terminal).
    #[arg(long, env = "CHAT_TUI_LOG")]
    log_file: Option<PathBuf>,
    /// What this client is called in the account's session list
    /// (/sessions on another client); default "chat-tui on HOSTNAME", ""
    /// sends none.
    #[arg(long, env = "CHAT_TUI_CLIENT_LABEL")]
    client_label: Option<String>,
    /// How long to wait for the server to acknowledge a request, in ms.
    #[arg(long, env = "CHAT_TUI_ACK_TIMEOUT_MS", default_value_t = 10_000)]
    ack_timeout_ms: u64,
    /// Time between two liveness checks (`ping`) of the connection, in ms.
    #[arg(long, env = "CHAT_TUI_LIVENESS_INTERVAL_MS", default_value_t = 5_000)]
    liveness_interval_ms: u64,
    /// How long a liveness check may go unanswered before the connection is
    /// declared dead and rebuilt, in ms.
    #[arg(long, env = "CHAT_TUI_LIVENESS_TIMEOUT_MS", default_value_t = 5_000)]
    liveness_timeout_ms: u64,
    /// Read the account's password from this file (its first line).
    #[arg(long, env = "CHAT_TUI_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Create an account for --user (asks for its password twice, unless
    /// --password-file or CHAT_PASSWORD gives it).
    #[arg(long)]
    register: bool,
    /// Log in once: ask for the password (unless --password-file or
    /// CHAT_PASSWORD gives it), get an API token for this server and
    /// --user, keep it in the data directory, and go on into the chat.
    /// Later starts use it and need no password; /logout forgets it.
    #[arg(long, conflicts_with = "register")]
    login: bool,
    /// Where logins (--login) are kept (default: the user's data
    /// directory, like ~/.local/share/chat-tui).
    #[arg(long, env = "CHAT_TUI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The longest wait between two connection attempts, in ms.
    #[arg(long, env = "CHAT_TUI_BACKOFF_MAX_MS", default_value_t = 10_000)]
    backoff_max_ms: u64,
}

/// The keys, commands and server forms, after the flags in `--help`.
fn after_help() -> String {
    let mut out = String::from("Server addresses:\n  ");
    out.push_str(URL_FORMS);
    out.push_str("\n\n");
    for line in chat_tui::commands::help_lines() {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str("\nKeys:\n");
    for (key, what) in chat_tui::commands::KEYS {
        out.push_str(&format!("  {key:<18} {what}\n"));
    }
    out.push_str("\nConfiguration file: ");
    out.push_str(
        &config::default_config_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none (no home directory)".into()),
    );
    out.push_str(" (see --print-config)");
    out
}

fn fail(msg: impl std::fmt::Display) -> std::process::ExitCode {
    eprintln!("chat-tui: {msg}");
    std::process::ExitCode::from(2)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let matches = Args::command().after_help(after_help()).get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let (file, path) = match &args.config {
        Some(p) => match config::load(p) {
            Ok(f) => (f, Some(p.clone())),
            Err(e) => return fail(e),
        },
        None => match config::default_config_path().filter(|p| p.exists()) {
            Some(p) => match config::load(&p) {
                Ok(f) => (f, Some(p)),
                Err(e) => return fail(e),
            },
            None => (config::FileConfig::default(), None),
        },
    };
    // The other nodes of a cluster, tried in turn when one cannot be reached.
    let mut fallbacks = Vec::new();
    for extra in args.server.iter().skip(1) {
        let addr = file.servers.get(extra).cloned().unwrap_or(extra.clone());
        match config::parse_server_url(&addr) {
            Ok(url) => fallbacks.push(url),
            Err(e) => return fail(e),
        }
    }
    let over = Overrides {
        server: args.server.first().cloned(),
        user: args.user.clone(),
        rooms: args.rooms.clone(),
        time_format: args.time_format.clone(),
        no_mouse: args.no_mouse,
        no_hyperlinks: args.no_hyperlinks,
        no_bell: args.no_bell,
        no_desktop_notify: args.no_desktop_notify,
        max_lines: args.max_lines,
        ca_file: args.ca_file.clone(),
        log_file: args.log_file.clone(),
        client_label: args.client_label.clone(),
    };
    let settings = match config::resolve(file, path, over) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if args.print_config {
        print!("{}", settings.to_toml());
        return std::process::ExitCode::SUCCESS;
    }
    let Some(user) = settings.user.clone() else {
        return fail(
            "no username: give --user NAME, CHAT_USER, or user = \"NAME\" in the configuration file",
        );
    };
    let tls = match &settings.ca_file {
        Some(p) => match config::tls_with_ca(p) {
            Ok(t) => Some(t),
            Err(e) => return fail(e),
        },
        None => None,
    };
    if let Some(path) = &settings.log_file {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => {
                tracing_subscriber::fmt()
                    .with_env_filter(
                        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(
                            |_| tracing_subscriber::EnvFilter::new("chat_tui=debug"),
                        ),
                    )
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .init();
            }
            Err(e) => return fail(format!("cannot open log file {}: {e}", path.display())),
        }
    }
    // The password, before the screen opens: a file, CHAT_PASSWORD, or (for
    // a new account) the terminal. Without one the client connects as is
    // and asks on its input line if the server says the name needs one.
    let password = match chat_tui::password::initial(
        args.password_file.as_deref(),
        std::env::var("CHAT_PASSWORD").ok(),
    ) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let password = match (args.register, password) {
        (true, Some(p)) => match chat_tui::password::check_new(&p) {
            Ok(()) => Some(p),
            Err(e) => return fail(e),
        },
        (true, None) => match chat_tui::password::prompt_new(&user) {
            Ok(p) => Some(p),
            Err(e) => return fail(e),
        },
        (false, p) => p,
    };
    // (v3) A saved login (--login now, or from an earlier start) instead
    // of the password.
    let login_file = args
        .data_dir
        .clone()
        .or_else(login::default_data_dir)
        .map(|dir| login::login_path(&dir, &settings.server, &user));
    let (password, saved) = if args.login {
        let Some(file) = &login_file else {
            return fail("no data directory to keep the login in: give --data-dir");
        };
        let password = match password {
            Some(p) => p,
            None => match chat_tui::password::prompt(&format!("password for {user}: ")) {
                Ok(p) => p,
                Err(e) => return fail(e),
            },
        };
        let label = settings
            .client_label
            .clone()
            .unwrap_or_else(config::default_client_label);
        let made =
            match login::request_token(&settings.server, &user, &password, &label, tls.as_ref())
                .await
            {
                Ok(l) => l,
                Err(e) => return fail(e),
            };
        if let Err(e) = login::save(file, &made) {
            return fail(e);
        }
        (None, Some(made))
    } else if password.is_none() && !args.register {
        (None, login_file.as_deref().and_then(login::load))
    } else {
        (password, None)
    };
    let ms = std::time::Duration::from_millis;
    let net = chat_tui::NetConfig {
        password,
        token: saved.as_ref().map(|l| l.token.clone()),
        register: args.register,
        ack_timeout: ms(args.ack_timeout_ms.max(1)),
        liveness_interval: ms(args.liveness_interval_ms.max(1)),
        liveness_timeout: ms(args.liveness_timeout_ms.max(1)),
        backoff_max: ms(args.backoff_max_ms.max(1)),
        tls,
        fallbacks,
        client_label: settings.client_label.clone(),
        ..chat_tui::NetConfig::new(&settings.server, &user)
    };
    let options = chat_tui::app::AppOptions {
        autojoin: settings.rooms.clone(),
        notify: settings.notify.clone(),
        max_lines: settings.max_lines,
        time_format: settings.time_format.clone(),
        theme: settings.theme,
        mouse: settings.mouse,
        hyperlinks: settings.hyperlinks && std::env::var("TERM").map_or(true, |t| t != "linux"),
    };
    let tls_for_logout = net.tls.clone();
    match chat_tui::app::run_with(net, options).await {
        Ok(chat_tui::app::Exit::Quit) => std::process::ExitCode::SUCCESS,
        Ok(chat_tui::app::Exit::Logout) => {
            logout(&settings.server, &user, saved, login_file, tls_for_logout).await
        }
        Err(e) => fail(e),
    }
}

/// `/logout`: revokes the saved login's token and deletes its file (the
/// file goes even when the server cannot be reached: the token is then
/// left to revoke from another client, and the message says so).
async fn logout(
    server: &str,
    user: &str,
    saved: Option<login::SavedLogin>,
    file: Option<PathBuf>,
    tls: Option<native_tls::TlsConnector>,
) -> std::process::ExitCode {
    let (Some(saved), Some(file)) = (saved, file) else {
        println!("no saved login of {user} on {server}: nothing to log out");
        return std::process::ExitCode::SUCCESS;
    };
    let revoked = login::revoke(server, &saved, tls.as_ref()).await;
    let removed = std::fs::remove_file(&file);
    match (revoked, removed) {
        (Ok(()), Ok(())) => {
            println!("logged out: the token of {user} on {server} is revoked and forgotten");
            std::process::ExitCode::SUCCESS
        }
        (Err(e), _) => fail(format!(
            "{e}; the saved login is deleted, revoke token {} from another client",
            saved.id
        )),
        (Ok(()), Err(e)) => fail(format!(
            "the token is revoked, but {} could not be deleted: {e}",
            file.display()
        )),
    }
}
