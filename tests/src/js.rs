//! The official Socket.IO JavaScript client in `tests/js`, for the tests
//! that drive it (`js_client`, `tls`).

use std::path::PathBuf;
use std::process::Command;

/// The folder of the JavaScript test scripts and their `package.json`.
pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// `node` and the client library, installed with `npm ci` if missing (once
/// per test binary). `None` only outside CI on a machine without Node: the
/// test then says it did not run; in CI a missing Node fails the test.
pub fn node() -> Option<()> {
    static READY: std::sync::OnceLock<Option<()>> = std::sync::OnceLock::new();
    *READY.get_or_init(install)
}

fn install() -> Option<()> {
    if !crate::installed("node", "--version", "the JavaScript client tests") {
        return None;
    }
    if !js_dir().join("node_modules/socket.io-client").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(js_dir())
            .status()
            .expect("run npm ci in tests/js");
        assert!(status.success(), "npm ci in tests/js failed");
    }
    Some(())
}
