//! Certificates made on the spot with `rcgen`: a private authority and
//! server certificates it signs, for `localhost` and `127.0.0.1`.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;

/// A certificate authority that exists only for one test.
pub struct TestCa {
    /// Its certificate, PEM (what a client is told to trust).
    pub pem: String,
    pub der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1` named `name`:
    /// (certificate PEM, private key PEM).
    pub fn server_cert(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a server certificate and its key into `dir` as `cert.pem`
    /// and `key.pem` (replacing what is there) and returns both paths.
    pub fn write_server_cert(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.server_cert(name);
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert).expect("write cert.pem");
        std::fs::write(&key_path, key).expect("write key.pem");
        (cert_path, key_path)
    }
}
