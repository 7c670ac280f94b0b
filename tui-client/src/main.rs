//! `chat-tui --user alice [--server http://127.0.0.1:3000]`

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "chat-tui", about = "Terminal chat client for chat-server")]
struct Args {
    /// Your username: 1-32 of A-Z a-z 0-9 _ . -
    #[arg(long, env = "CHAT_USER")]
    user: String,
    /// The server's address.
    #[arg(long, env = "CHAT_SERVER", default_value = "http://127.0.0.1:3000")]
    server: String,
    /// Write a debug log to this file (never to the terminal).
    #[arg(long, env = "CHAT_TUI_LOG")]
    log_file: Option<PathBuf>,
    /// How long to wait for the server to acknowledge a request, in ms.
    #[arg(long, env = "CHAT_TUI_ACK_TIMEOUT_MS", default_value_t = 10_000)]
    ack_timeout_ms: u64,
    /// Time between two liveness checks of the connection, in ms.
    #[arg(long, env = "CHAT_TUI_LIVENESS_INTERVAL_MS", default_value_t = 5_000)]
    liveness_interval_ms: u64,
    /// How long a liveness check may go unanswered before the connection is
    /// declared dead and rebuilt, in ms.
    #[arg(long, env = "CHAT_TUI_LIVENESS_TIMEOUT_MS", default_value_t = 5_000)]
    liveness_timeout_ms: u64,
    /// The longest wait between two connection attempts, in ms.
    #[arg(long, env = "CHAT_TUI_BACKOFF_MAX_MS", default_value_t = 10_000)]
    backoff_max_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !chat_shared::is_valid_username(&args.user) {
        eprintln!(
            "chat-tui: {:?} is not a valid username (1-32 of A-Z a-z 0-9 _ . -)",
            args.user
        );
        return std::process::ExitCode::from(2);
    }
    if let Some(path) = &args.log_file {
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
            Err(e) => {
                eprintln!("chat-tui: cannot open log file {}: {e}", path.display());
                return std::process::ExitCode::from(2);
            }
        }
    }
    let ms = std::time::Duration::from_millis;
    let config = chat_tui::NetConfig {
        ack_timeout: ms(args.ack_timeout_ms.max(1)),
        liveness_interval: ms(args.liveness_interval_ms.max(1)),
        liveness_timeout: ms(args.liveness_timeout_ms.max(1)),
        backoff_max: ms(args.backoff_max_ms.max(1)),
        ..chat_tui::NetConfig::new(&args.server, &args.user)
    };
    match chat_tui::app::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-tui: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
