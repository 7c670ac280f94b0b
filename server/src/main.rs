use clap::Parser;

use chat_server::Config;

/// jemalloc rather than the system allocator: under load the server
/// allocates and frees per packet across worker threads, where glibc's
/// malloc cost about a fifth of the DM ceiling (BENCHMARKS.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    chat_server::logging::init(config.log_format);
    if config.check {
        return chat_server::check::main(&config).await;
    }
    // Each connection is a file descriptor: run with the most the system allows.
    match chat_server::listener::raise_fd_limit() {
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

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
