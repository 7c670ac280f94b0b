//! `--chat-server-tls`: a certificate authority and a server certificate
//! for `localhost` made for the run (rcgen), and a client that trusts only
//! that authority.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// Writes `cert.pem` and `key.pem` into `dir` (created) and returns their
/// paths and a TLS client that trusts them.
pub fn make_certificate(
    dir: &Path,
) -> std::io::Result<(PathBuf, PathBuf, tokio_rustls::TlsConnector)> {
    let fail = |e: rcgen::Error| std::io::Error::other(format!("making a certificate: {e}"));
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate().map_err(fail)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().map_err(fail)?;
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .map_err(fail)?
        .signed_by(&key, &issuer)
        .map_err(fail)?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca_cert.der().clone())
        .map_err(|e| std::io::Error::other(format!("trusting the run's authority: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((
        cert_path,
        key_path,
        tokio_rustls::TlsConnector::from(Arc::new(config)),
    ))
}
