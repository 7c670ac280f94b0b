//! `chat-server --check`: everything the server verifies before it serves
//! (flags, TLS files, the store), without serving. For an operator before
//! a restart, or a unit's `ExecStartPre=`. It does not bind the ports (the
//! running server may hold them) and it changes nothing in the store but
//! what opening it does anyway (creating an empty one, migrating an older
//! schema).

use std::process::ExitCode;

use crate::config::Config;
use crate::config::StoreKind;

/// What the server would do, one line each, or the first problem found.
pub async fn check(config: &Config) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    let tls = crate::http::tls::from_config(config).map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    report.push(format!("would serve {scheme}://{}", config.bind));
    if let Some((cert, key)) = config.tls_cert.as_ref().zip(config.tls_key.as_ref()) {
        report.push(format!(
            "TLS: certificate {} and key {} are usable",
            cert.display(),
            key.display()
        ));
    }
    // (v3) The HTTP API shares the listener, its TLS and its limits.
    let registration = if config.registration_open() {
        "sign-up open"
    } else {
        "sign-up closed"
    };
    report.push(format!(
        "HTTP API on {scheme}://{}/api/v1 ({registration}; API tokens as Bearer and auth.token; \
         posts at --rate {} a second, burst {}, per account)",
        config.bind, config.rate, config.burst
    ));
    match config.metrics_bind {
        Some(addr) if addr == config.bind => {
            return Err(format!(
                "--metrics-bind {addr} is the same address as --bind: leave it out to serve \
                 /metrics on the main port"
            ));
        }
        Some(addr) => report.push(format!("metrics on http://{addr}/metrics")),
        None => report.push(format!("metrics on {scheme}://{}/metrics", config.bind)),
    }
    match config.store {
        StoreKind::Memory => report.push("store: memory (nothing survives the process)".into()),
        StoreKind::Sqlite => {
            let dir = config.data_dir.clone();
            let opened = tokio::task::spawn_blocking(move || crate::store::SqliteStore::open(&dir))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            report.push(format!("store: {} opens", opened.path().display()));
        }
    }
    if config.admin_token.as_deref().is_none_or(str::is_empty) {
        report.push("no --admin-token: /admin refuses every connect".into());
    }
    let proxies: Vec<String> = config
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    let from = if proxies.is_empty() {
        "the TCP peer".to_owned()
    } else {
        format!("X-Forwarded-For when the peer is {}", proxies.join(" or "))
    };
    match config.login_address_limit {
        0 => report.push(format!(
            "failed logins: no limit per address (client address: {from})"
        )),
        n => report.push(format!(
            "failed logins: {n} a minute lock an address (client address: {from})"
        )),
    }
    if !config.cors_origins.is_empty() {
        report.push(format!(
            "browsers may connect from: {}",
            config.cors_origins.join(", ")
        ));
    }
    Ok(report)
}

/// Runs [`check`], prints the report on stdout or the problem on stderr,
/// and returns the exit code.
pub async fn main(config: &Config) -> ExitCode {
    match check(config).await {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            println!("configuration ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-server: {e}");
            ExitCode::FAILURE
        }
    }
}
