//! (v3) chat-tui logs in once, in tmux: `--login` asks for the password
//! once (before the screen opens) and keeps an API token in the data
//! directory; the next start, with no password anywhere, connects with
//! it; `/logout` revokes the token, deletes the file and quits.
//! Skipped, with a message, when tmux is not installed (CI fails instead).

use chat_e2e::TestServer;
use chat_e2e::tmux::Tmux;

const PASSWORD: &str = "ann's long password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_once_then_start_without_a_password_then_logout() {
    if !chat_e2e::installed(
        "tmux",
        "-V",
        "login_once_then_start_without_a_password_then_logout",
    ) {
        return;
    }
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let http = reqwest::Client::new();
    let api = format!("{url}/api/v1");
    let created = http
        .post(format!("{api}/accounts"))
        .json(&serde_json::json!({"username": "ann", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    let tmux = Tmux::new("login");
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("chat-tui.toml");
    std::fs::write(&conf, "[notify]\nbell = false\n").expect("write the config");
    let data = dir.path().join("data");
    // After chat-tui ends, the pane stays to show what it printed.
    let args = |extra: &str| {
        format!(
            "--config {} --server {url} --user ann --data-dir {} {extra}; \
             echo chat-tui ended; sleep 600",
            conf.display(),
            data.display()
        )
    };

    // --login: the password once, on the terminal, then the chat.
    tmux.chat_tui("first", &args("--login"));
    tmux.wait_for("first", "password for ann:").await;
    tmux.line("first", PASSWORD);
    tmux.wait_for("first", "connected as ann").await;
    let file = chat_tui::login::login_path(&data, &url, "ann");
    let saved = chat_tui::login::load(&file).expect("the login is kept");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by the user alone: {mode:o}");
    }
    let listed: serde_json::Value = http
        .get(format!("{api}/tokens"))
        .bearer_auth(&saved.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Labelled as the client calls itself: "chat-tui on HOSTNAME".
    let label = listed["tokens"][0]["label"].as_str().unwrap_or_default();
    assert!(label.starts_with("chat-tui"), "{listed}");
    tmux.line("first", "/quit");
    tmux.wait_for("first", "chat-tui ended").await;
    tmux.run(&["kill-session", "-t", "first"]);

    // The next start: no password given anywhere, none asked.
    tmux.chat_tui("again", &args(""));
    tmux.wait_for("again", "connected as ann").await;
    assert!(
        !tmux.capture("again").contains("password"),
        "{}",
        tmux.capture("again")
    );
    tmux.line("again", "/sessions");
    tmux.wait_for("again", "your sessions (1):").await;

    // /logout: revoked on the server, forgotten here, quit.
    tmux.line("again", "/logout");
    tmux.wait_for("again", "chat-tui ended").await;
    assert!(
        tmux.capture("again").contains("logged out"),
        "{}",
        tmux.capture("again")
    );
    assert!(!file.exists(), "the saved login is deleted");
    let revoked = http
        .get(format!("{api}/tokens"))
        .bearer_auth(&saved.token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 401, "the token is revoked");
    tmux.run(&["kill-session", "-t", "again"]);
    server.stop().await.unwrap();
}
