//! (v3) Moderating from the keyboard: two real `chat-tui` binaries in tmux
//! against an in-process server, read from their screens (capture-pane).
//! Ann registers an account as chat-tui starts (`--register` with a
//! password file) and creates `#general`, so she owns it; the guest bob
//! joins. Ann sets the topic (bob sees the line and the header), kicks bob
//! with a reason (bob sees why, the room stays marked, a line typed there
//! is not sent), bob joins again, ann bans him for ten minutes (bob sees
//! the ban) and bob's next `/join` is refused in plain words. A second
//! scenario: a guest renames itself with `/nick`, and a block refuses DMs
//! and folds the blocked one's lines. Skipped, with a message, when tmux
//! is not installed (CI fails instead).

use std::path::Path;

use chat_e2e::TestServer;
use chat_e2e::tmux::Tmux;

/// Starts one chat-tui per `(session, extra flags)` in `tmux`, each on
/// `server` with the configuration file `conf` (none from the home
/// directory), on a screen wide enough that no line of these scenarios is
/// cut or wrapped; waits until each says it is connected as its session's
/// name.
async fn start_clients(tmux: &Tmux, conf: &Path, server: &str, clients: &[(&str, String)]) {
    for (session, flags) in clients {
        let args = format!(
            "--config {} --server {server} --user {session} {flags}",
            conf.display()
        );
        tmux.chat_tui(session, &args);
    }
    for (session, _) in clients {
        tmux.wait_for(session, &format!("connected as {session}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_sets_the_topic_kicks_and_bans_a_guest_in_tmux() {
    if !chat_e2e::installed(
        "tmux",
        "-V",
        "an_owner_sets_the_topic_kicks_and_bans_a_guest_in_tmux",
    ) {
        return;
    }
    let server = TestServer::start(TestServer::config()).await;
    let tmux = Tmux::new("moderation");
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("chat-tui.toml");
    std::fs::write(&conf, "[notify]\nbell = false\n").expect("write the config");
    let password = dir.path().join("ann.password");
    std::fs::write(&password, "ann's long password\n").expect("write ann's password");
    let ann = format!("--register --password-file {}", password.display());
    start_clients(
        &tmux,
        &conf,
        &server.url(),
        &[("ann", ann), ("bob", String::new())],
    )
    .await;

    // Ann's account creates #general, so she owns it (`~` in the members
    // panel); then bob joins.
    tmux.line("ann", "/join #general");
    tmux.wait_for("ann", "#general 1 members").await;
    tmux.wait_for("ann", "~ann").await;
    tmux.line("bob", "/join #general");
    tmux.wait_for("ann", "#general 2 members").await;
    tmux.wait_for("bob", "#general 2 members").await;

    // The topic: a line of the room, and the header after the count.
    tmux.line("ann", "/topic deploys at 14:00");
    tmux.wait_for("bob", "ann set the topic to “deploys at 14:00”")
        .await;
    tmux.wait_for("bob", "#general 2 members — deploys at 14:00")
        .await;
    tmux.wait_for("ann", "you set the topic to “deploys at 14:00”")
        .await;

    // A kick with a reason: bob reads who and why, the room stays in his
    // list marked, its header says so, and ann's count drops.
    tmux.line("ann", "/kick bob off topic again");
    tmux.wait_for("bob", "you were kicked by ann: off topic again")
        .await;
    tmux.wait_for("bob", "#general (you were kicked by ann: off topic again)")
        .await;
    tmux.wait_for("bob", "/join #general to go back").await;
    tmux.wait_for("bob", "#general (kicked)").await;
    tmux.wait_for("ann", "bob was kicked by you: off topic again")
        .await;
    tmux.wait_for("ann", "#general 1 members").await;

    // A line typed in the room he was put out of is not sent: a toast says
    // so, and nothing shows as his.
    tmux.line("bob", "is anyone still here?");
    tmux.wait_for(
        "bob",
        "you are not in #general (kicked by ann: off topic again): \
         /join #general to go back; nothing sent",
    )
    .await;
    assert!(
        !tmux.capture("bob").contains("bob: is anyone still here?"),
        "the line typed while out of the room shows as sent:\n{}",
        tmux.capture("bob")
    );

    // A kick is not a ban: bob joins again and talks.
    tmux.line("bob", "/join #general");
    tmux.wait_for("bob", "#general 2 members — deploys at 14:00")
        .await;
    tmux.wait_for("ann", "#general 2 members").await;
    tmux.line("bob", "sorry, back on topic");
    tmux.wait_for("ann", "bob: sorry, back on topic").await;
    // The line typed while out never reached ann (it would have come
    // before this one).
    let screen = tmux.capture("ann");
    assert!(
        !screen.contains("is anyone still here?"),
        "the line typed while out of the room reached ann:\n{screen}"
    );

    // A ban for ten minutes with a reason: bob reads it with its end.
    tmux.line("ann", "/ban bob 10m spam");
    tmux.wait_for_line("bob", &["you were banned by ann until ", ": spam"])
        .await;
    tmux.wait_for("bob", "/join #general to go back once the ban ends")
        .await;
    tmux.wait_for("bob", "#general (you were banned by ann until ")
        .await;
    tmux.wait_for("bob", "#general (banned)").await;
    tmux.wait_for_line("ann", &["bob was banned by you until ", ": spam"])
        .await;
    tmux.wait_for("ann", "#general 1 members").await;

    // Joining again is refused, in plain words naming the ban.
    tmux.line("bob", "/join #general");
    tmux.wait_for_line("bob", &["you are banned from #general until ", " (spam)"])
        .await;
    // Still out: a line typed there is not sent.
    tmux.line("bob", "let me back in");
    tmux.wait_for("bob", "you are not in #general (banned by ann until ")
        .await;
    let screen = tmux.capture("bob");
    assert!(
        !screen.contains("bob: let me back in"),
        "the line typed while banned shows as sent:\n{screen}"
    );

    drop(tmux);
    server.stop().await.expect("server stops");
}

/// A guest renames itself with `/nick` and keeps its room; the other
/// client follows the new name. Then one blocks the other: the blocked
/// one's DM is refused in plain words, and its room lines are folded on
/// the blocker's screen, to be shown on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_renames_itself_and_a_block_folds_its_lines_in_tmux() {
    if !chat_e2e::installed(
        "tmux",
        "-V",
        "a_guest_renames_itself_and_a_block_folds_its_lines_in_tmux",
    ) {
        return;
    }
    let server = TestServer::start(TestServer::config()).await;
    let tmux = Tmux::new("rename-block");
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("chat-tui.toml");
    std::fs::write(&conf, "[notify]\nbell = false\n").expect("write the config");
    start_clients(
        &tmux,
        &conf,
        &server.url(),
        &[("cat", String::new()), ("dan", String::new())],
    )
    .await;
    tmux.line("cat", "/join #lobby");
    tmux.line("dan", "/join #lobby");
    tmux.wait_for("cat", "#lobby 2 members").await;
    tmux.wait_for("dan", "#lobby 2 members").await;

    // dan becomes daniel in place: same room, the new name on his lines.
    tmux.line("dan", "/nick daniel");
    tmux.wait_for("dan", "you are now known as daniel").await;
    tmux.wait_for("cat", "dan is now known as daniel").await;
    tmux.line("dan", "same person, new name");
    tmux.wait_for("cat", "daniel: same person, new name").await;
    tmux.wait_for("dan", "connected as daniel").await;

    // cat blocks daniel: his DM is refused, his room lines are folded.
    tmux.line("cat", "/block daniel");
    tmux.wait_for("cat", "you block daniel").await;
    tmux.line("dan", "/msg cat hello?");
    tmux.wait_until("dan", "the DM refused as blocked", |screen| {
        screen.contains("one of you blocks the other") || screen.contains("(failed: blocked)")
    })
    .await;
    tmux.line("dan", "/join #lobby");
    tmux.line("dan", "a line cat does not want to read");
    tmux.wait_for("dan", "daniel: a line cat does not want to read")
        .await;
    // His lines, the one before the block too, are folded on cat's screen.
    tmux.wait_until("cat", "two folded lines", |screen| {
        screen.matches("1 line from a blocked user hidden").count() == 2
    })
    .await;
    assert!(
        !tmux
            .capture("cat")
            .contains("a line cat does not want to read"),
        "a blocked user's line shows:\n{}",
        tmux.capture("cat")
    );
    tmux.line("cat", "/showblocked");
    tmux.wait_for("cat", "daniel: a line cat does not want to read")
        .await;
}
