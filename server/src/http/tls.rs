//! HTTPS and WSS with rustls (`--tls-cert`, `--tls-key`): no OpenSSL.
//!
//! The certificate and key are PEM files, read at start and again on
//! SIGHUP (ACME clients renew every 60-90 days and then signal the
//! server). A reload changes what new connections get; connections already
//! open keep the session they negotiated, so nobody is disconnected. A
//! reload that fails (a half-written file, a key that does not match)
//! keeps the certificate in use and logs why.
//!
//! Each error names the file and what is wrong with it: a server that
//! cannot start its TLS says so and exits non-zero.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the TLS {what} {} is not valid PEM: {reason}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the TLS certificate file {} holds no certificate (expected a PEM \
         \"BEGIN CERTIFICATE\" block, the server's first, then its chain)",
        .0.display()
    )]
    NoCertificate(PathBuf),
    #[error(
        "the TLS key file {} holds no private key (expected a PEM \"BEGIN PRIVATE KEY\", \
         \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)",
        .0.display()
    )]
    NoKey(PathBuf),
    #[error(
        "the TLS key {} cannot be used with the certificate {}: {reason}",
        key.display(),
        cert.display()
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The certificate files and the configuration made from them; new
/// connections take the current one.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Reads both files and builds a server configuration from them.
pub fn load(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    const CERT: &str = "certificate file";
    const KEY: &str = "key file";
    let pem = read(CERT, cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(CERT, cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let pem = read(KEY, key)?;
    let private = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey(key.to_path_buf()));
        }
        Err(e) => return Err(pem_error(KEY, key, e)),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, private))
        .map_err(|e| TlsError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    // The server speaks HTTP/1.1 only (WebSocket upgrades need it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Tls {
    /// Loads `cert` and `key`; the error names the file at fault.
    pub fn new(cert: &Path, key: &Path) -> Result<Arc<Tls>, TlsError> {
        let config = load(cert, key)?;
        Ok(Arc::new(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(config)),
        }))
    }

    /// Reads the files again. On success new connections get the new
    /// certificate; on failure the current one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(load(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// An acceptor with the current certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(Arc::clone(&config))
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }
}

/// What `--tls-cert`/`--tls-key` ask for: `None` for plain HTTP.
pub fn from_config(config: &crate::config::Config) -> Result<Option<Arc<Tls>>, TlsError> {
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Tls::new(cert, key).map(Some),
        // clap requires both or neither.
        _ => Ok(None),
    }
}

/// Reloads the certificate on every SIGHUP until the returned task is
/// aborted. Without TLS, SIGHUP is logged and ignored rather than ending
/// the process, as its default action would. The handler is in place when
/// this returns, so a SIGHUP sent once the server says it is listening is
/// never fatal.
pub fn watch_sighup(
    tls: Option<Arc<Tls>>,
    metrics: Arc<crate::ops::metrics::Metrics>,
) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP: {e}");
                return tokio::spawn(async {});
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match &tls {
                    None => tracing::info!("SIGHUP: no TLS certificate to reload"),
                    Some(tls) => match tls.reload() {
                        Ok(()) => {
                            metrics.tls_reloaded(true);
                            tracing::info!(
                                "SIGHUP: TLS certificate reloaded from {}",
                                tls.cert_path().display()
                            )
                        }
                        Err(e) => {
                            metrics.tls_reloaded(false);
                            tracing::error!("SIGHUP: {e}; still serving the previous certificate")
                        }
                    },
                }
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (tls, metrics);
        tokio::spawn(async {})
    }
}
