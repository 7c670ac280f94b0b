use clap::Parser;

use chat_server::Config;
use chat_server::config::Command;

/// jemalloc rather than the system allocator: under load the server
/// allocates and frees per packet across worker threads, where glibc's
/// malloc cost about a fifth of the DM ceiling (BENCHMARKS.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    chat_server::ops::logging::init(config.log_format);
    if let Some(Command::Account { action }) = &config.command {
        let source = chat_server::cli::account::stdin_source();
        let mut out = std::io::stdout();
        return match chat_server::cli::account::run(&config, action, source, &mut out).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chat-server: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if config.check {
        return chat_server::cli::check::main(&config).await;
    }
    // Each connection is a file descriptor: run with the most the system allows.
    match chat_server::http::listener::raise_fd_limit() {
        Some(n) => tracing::info!("open files limit: {n}"),
        None => tracing::info!("open files limit: unknown"),
    }
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("chat-server: cannot listen on {}: {e}", config.bind);
            return std::process::ExitCode::FAILURE;
        }
    };
    if config.admin_token.as_deref().is_none_or(str::is_empty) {
        tracing::info!("no --admin-token: /admin refuses every connect");
    }
    match chat_server::serve(listener, config, shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed here, before
/// the server says it listens, so that a signal sent right after that line
/// stops it cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(int) => {},
                () = wait(term) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
