//! `deploy/chat-server.service` as systemd reads it: `systemd-analyze
//! verify` on a copy whose `ExecStart=` names the binary just built (the
//! unit's own path, /usr/local/bin, is where the README installs it).

use std::process::Command;

use chat_e2e::workspace_binary;

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    if !chat_e2e::installed(
        "systemd-analyze",
        "--version",
        "the check of the unit file (Debian package systemd)",
    ) {
        return;
    }
    let unit =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/chat-server.service");
    let text = std::fs::read_to_string(&unit).expect("read deploy/chat-server.service");
    assert!(text.contains("ExecStart=/usr/local/bin/chat-server\n"));
    let exe = workspace_binary("chat-server", "chat-server");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("chat-server.service");
    std::fs::write(
        &copy,
        text.replace(
            "ExecStart=/usr/local/bin/chat-server",
            &format!("ExecStart={}", exe.display()),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{said}"
    );
    // Unknown or misspelt settings are only warnings: none is allowed.
    assert!(said.trim().is_empty(), "systemd-analyze verify:\n{said}");
}
