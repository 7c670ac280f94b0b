//! Accounts through chat-tui's app-and-network stack against a real
//! chat-server: two people register, one quits, the other sends a DM
//! ("queued for …"), the server restarts, the first comes back with a
//! password typed at the prompt, finds the DM and the rooms; a third
//! person cannot take either name; a guest claims its own name with
//! `/register` without losing its session.

use chat_e2e::TestServer;
use chat_e2e::tui::{config, texts, wait};
use chat_tui::password::Password;
use chat_tui::state::{ConvId, Delivery, EntryKind};
use chat_tui::{Client, NetConfig};

fn registering(url: &str, user: &str, password: &str) -> NetConfig {
    NetConfig {
        password: Some(Password::new(password)),
        register: true,
        ..config(url, user)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_register_one_comes_back_the_next_day_to_a_kept_dm() {
    let dir = tempfile::tempdir().unwrap();
    let server_config = TestServer::on_disk(dir.path());
    let server = TestServer::start(server_config.clone()).await;
    let url = server.url();

    let ann = Client::start(registering(&url, "ann", "ann's long password"));
    let ben = Client::start(registering(&url, "ben", "ben's long password"));
    for (c, name) in [(&ann, "ann"), (&ben, "ben")] {
        wait(c, "registered and connected", |s| {
            s.status_text() == format!("connected as {name}")
        })
        .await;
    }
    ann.type_line("/join #team");
    wait(&ann, "ann in #team", |s| {
        s.conv(&ConvId::Room("#team".into())).is_some()
    })
    .await;
    // Ben's DM must find ann gone, not still closing her connection (a
    // DM to a socket still there is delivered, not kept): wait until the
    // server has told ben she left.
    wait(&ben, "ben sees ann online", |s| s.users.contains("ann")).await;
    ann.quit().await;
    wait(&ben, "ben sees ann leave", |s| !s.users.contains("ann")).await;

    let ann_dm = ConvId::Dm("ann".into());
    ben.type_line("/msg ann the keys are under the mat");
    wait(&ben, "the DM is queued for ann", |s| {
        s.conv(&ann_dm).is_some_and(|c| {
            c.entries
                .iter()
                .any(|e| e.kind == EntryKind::Own(Delivery::Held("ann".into())))
        })
    })
    .await;
    ben.quit().await;

    // The next day: the server restarted in between.
    server.stop().await.unwrap();
    let server = TestServer::start(server_config).await;
    let url = server.url();

    // A third person cannot be either of them.
    let eve = Client::start(config(&url, "ann"));
    wait(&eve, "eve is asked for ann's password", |s| {
        s.asking_secret()
    })
    .await;
    eve.type_line("a guess at it");
    wait(&eve, "a wrong password is refused and asked again", |s| {
        s.asking_secret() && s.status_text().contains("bad_credentials")
    })
    .await;
    eve.quit().await;

    // Ann comes back and types her password at the prompt.
    let ann = Client::start(config(&url, "ann"));
    wait(&ann, "ann is asked for her password", |s| s.asking_secret()).await;
    ann.type_line("ann's long password");
    wait(&ann, "ann connected", |s| {
        s.status_text() == "connected as ann"
    })
    .await;
    wait(&ann, "the DM kept for her, and her room", |s| {
        texts(s, &ConvId::Dm("ben".into())) == ["the keys are under the mat"]
            && s.conv(&ConvId::Room("#team".into())).is_some()
    })
    .await;
    ann.quit().await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_registers_its_name_without_losing_its_session() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let guest = Client::start(config(&url, "gus"));
    wait(&guest, "gus connected", |s| {
        s.status_text() == "connected as gus"
    })
    .await;
    guest.type_line("/join #lobby");
    wait(&guest, "gus in #lobby", |s| {
        s.conv(&ConvId::Room("#lobby".into())).is_some()
    })
    .await;
    guest.type_line("/register");
    guest.type_line("gus's new password");
    guest.type_line("gus's new password");
    wait(&guest, "the session resumed as an account", |s| {
        s.status_text().starts_with("connected as gus · recovered")
    })
    .await;
    // The name is an account now: without the password it is refused.
    let other = Client::start(config(&url, "gus"));
    wait(&other, "someone else is asked for the password", |s| {
        s.asking_secret()
    })
    .await;
    other.quit().await;
    guest.quit().await;
    server.stop().await.unwrap();
}
