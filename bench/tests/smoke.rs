//! A short run of every scenario against chat-server started in this process:
//! a few hundred clients for a few seconds. It checks that the bench works
//! end to end and that the server delivers every message exactly once,
//! recovery included. It asserts no timing figures.

use std::time::Duration;

use chat_bench::report::ScenarioReport;
use clap::Parser;
use tokio::net::TcpListener;

const TARGET: &str = "chat-server";

fn value(r: &ScenarioReport, metric: &str) -> f64 {
    r.value(metric, TARGET)
        .unwrap_or_else(|| panic!("{}: no figure {metric:?}\n{}", r.scenario, r.table()))
}

fn scenario<'a>(reports: &'a [ScenarioReport], name: &str) -> &'a ScenarioReport {
    reports
        .iter()
        .find(|r| r.scenario == name)
        .unwrap_or_else(|| panic!("no {name} report"))
}

/// The sessions scenario's flags for a short run: 20 accounts in rooms of
/// 10 (10 DM pairs), 1 then 2 sessions each, 50 messages/s; an account in
/// 5 rooms with 10 DM conversations, 3 connects of each kind.
const SESSIONS_ARGS: [&str; 20] = [
    "--sessions-accounts",
    "20",
    "--sessions-per-account",
    "1,2",
    "--sessions-room-size",
    "10",
    "--sessions-room-rate",
    "50",
    "--sessions-dm-rate",
    "50",
    "--markers-rooms",
    "5",
    "--markers-room-messages",
    "4",
    "--markers-dms",
    "10",
    "--markers-dm-messages",
    "2",
    "--markers-reconnects",
    "3",
];

/// Every session came up in its account's room and received every room
/// message and DM meant for it exactly once, with 1 and with 2 sessions per
/// account; every measured connect came up (resumes recovered) with nothing
/// to replay; the loaded account's `session.markers` listed its 5 rooms and
/// 10 conversations, each with the marker it set and the unread count after
/// it, every time, and the plain account had none.
fn assert_sessions(r: &ScenarioReport) {
    let table = r.table();
    for (k, label) in [
        (1.0, "1 session per account"),
        (2.0, "2 sessions per account"),
    ] {
        assert_eq!(
            value(r, &format!("{label}: sessions up")),
            20.0 * k,
            "{table}"
        );
        assert_eq!(value(r, &format!("{label}: logins failed")), 0.0, "{table}");
        assert_eq!(
            value(
                r,
                &format!("{label}: new sessions not in their account's room")
            ),
            0.0,
            "{table}"
        );
        // A room message reaches every session of the room's 10 accounts;
        // a DM every session of its recipient and the sender's other ones.
        for (step, fan) in [("rooms of 10", 10.0 * k), ("10 DM pairs", 2.0 * k - 1.0)] {
            let step = format!("{label}, {step} at 50 msgs/s: ");
            assert!(value(r, &format!("{step}deliveries/s")) > 0.0, "{table}");
            assert_eq!(
                value(r, &format!("{step}deliveries per message")),
                fan,
                "{table}"
            );
            for what in ["lost", "duplicates", "unexpected"] {
                assert_eq!(value(r, &format!("{step}{what}")), 0.0, "{table}");
            }
        }
    }
    assert_eq!(value(r, "markers: entries expected"), 15.0, "{table}");
    for who in [
        "plain account",
        "loaded account (5 rooms, 10 conversations)",
    ] {
        assert_eq!(value(r, &format!("{who}: connects failed")), 0.0, "{table}");
        assert_eq!(
            value(r, &format!("{who}: resumes not recovered")),
            0.0,
            "{table}"
        );
        assert_eq!(
            value(
                r,
                &format!("{who}: missed (replayed) at the measured connects")
            ),
            0.0,
            "{table}"
        );
    }
    for (who, entries) in [
        ("plain account", 0.0),
        ("loaded account (5 rooms, 10 conversations)", 15.0),
    ] {
        assert_eq!(
            value(r, &format!("{who}: markers entries")),
            entries,
            "{table}"
        );
        assert_eq!(
            value(r, &format!("{who}: connects with wrong markers")),
            0.0,
            "{table}"
        );
    }
}

/// The changes scenario's flags for a short run: 100 users in rooms of 50,
/// 10 % of the sends changes; a room of 2 000 messages, 10 pages of each
/// kind.
const CHANGES_ARGS: [&str; 10] = [
    "--changes-users",
    "100",
    "--changes-room-size",
    "50",
    "--changes-rates",
    "2000,4000",
    "--changes-history-messages",
    "2000",
    "--changes-history-requests",
    "10",
];

/// Every message and every change reached every member of its room once,
/// with and without changes in the traffic; the history room stored every
/// message and took every change, and every page read showed each message
/// as it stood, before and after the changes.
fn assert_changes(r: &ScenarioReport) {
    let table = r.table();
    for mix in ["rooms of 50, plain", "rooms of 50, 10 % changes"] {
        for rate in [2000, 4000] {
            let step = format!("{mix} @{rate}/s: ");
            assert!(value(r, &format!("{step}delivered/s")) > 0.0, "{table}");
            assert_eq!(value(r, &format!("{step}lost")), 0.0, "{table}");
            assert_eq!(value(r, &format!("{step}duplicates")), 0.0, "{table}");
        }
    }
    for rate in [2000, 4000] {
        let step = format!("rooms of 50, 10 % changes @{rate}/s: ");
        assert!(
            value(r, &format!("{step}changes delivered/s")) > 0.0,
            "{table}"
        );
        for what in ["lost", "duplicated", "unexpected"] {
            assert_eq!(value(r, &format!("{step}changes {what}")), 0.0, "{table}");
        }
        assert_eq!(r.value(&format!("{step}changes refused"), TARGET), None);
    }
    assert_eq!(value(r, "history: messages stored"), 2000.0, "{table}");
    assert_eq!(value(r, "history: messages edited"), 400.0, "{table}");
    assert_eq!(value(r, "history: messages deleted"), 100.0, "{table}");
    assert_eq!(value(r, "history: changes refused"), 0.0, "{table}");
    for pass in ["before changes", "after changes"] {
        assert_eq!(
            value(
                r,
                &format!("history pages {pass}: messages or pages not as they stand")
            ),
            0.0,
            "{table}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_delivers_everything_exactly_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config =
        chat_server::Config::try_parse_from(["chat-server", "--rate", "0"]).expect("server flags");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(chat_server::serve(listener, config, async {
        let _ = stopped.await;
    }));

    let url = format!("{TARGET}=http://{addr}");
    let args = [
        "chat-bench",
        "--url",
        &url,
        "--idle-users",
        "100,300",
        "--idle-settle-secs",
        "0.5",
        "--connect-concurrency",
        "50",
        "--fanout-users",
        "200",
        "--fanout-sizes",
        "10,100",
        "--fanout-rates",
        "500,1000",
        "--step-secs",
        "1",
        "--full-ladder",
        "--dm-pairs",
        "50",
        "--dm-rates",
        "200",
        "--churn-workers",
        "8",
        "--churn-secs",
        "1",
        "--storm-users",
        "200",
        "--storm-room-size",
        "20",
        "--storm-rate",
        "100",
        "--storm-gap-ms",
        "700",
        "--login-accounts",
        "20",
        "--login-workers",
        "5",
        "--login-secs",
        "1",
        "--login-chatters",
        "100",
        "--login-chat-rate",
        "500",
        "--login-flood",
        "100",
        "--login-flood-concurrency",
        "20",
        "--burst-handshakes",
        "300",
        "--burst-reap-secs",
        "0",
        "--burst-settle-secs",
        "0",
    ];
    let cfg = chat_bench::Config::try_parse_from(
        args.into_iter().chain(SESSIONS_ARGS).chain(CHANGES_ARGS),
    )
    .expect("bench flags");
    let reports = tokio::time::timeout(Duration::from_secs(240), chat_bench::run(&cfg))
        .await
        .expect("the smoke run ends in time")
        .expect("the bench runs");

    let idle = scenario(&reports, "idle");
    assert_eq!(value(idle, "300 users: failed connects"), 0.0);
    assert_eq!(value(idle, "300 users: dropped while idle"), 0.0);

    let fanout = scenario(&reports, "fanout");
    for size in [10, 100] {
        for rate in [500, 1000] {
            let step = format!("rooms of {size} @{rate}/s: ");
            assert!(
                value(fanout, &format!("{step}delivered/s")) > 0.0,
                "{}",
                fanout.table()
            );
            assert_eq!(
                value(fanout, &format!("{step}lost")),
                0.0,
                "{}",
                fanout.table()
            );
            assert_eq!(
                value(fanout, &format!("{step}duplicates")),
                0.0,
                "{}",
                fanout.table()
            );
        }
    }

    let burst = scenario(&reports, "burst");
    assert_eq!(
        value(burst, "handshakes answered"),
        300.0,
        "{}",
        burst.table()
    );

    let login = scenario(&reports, "login");
    let table = login.table();
    assert_eq!(value(login, "registrations failed"), 0.0, "{table}");
    assert_eq!(value(login, "logins failed"), 0.0, "{table}");
    assert!(
        value(login, "logins/s with a password (peer: guest connects)") > 0.0,
        "{table}"
    );
    assert_eq!(
        value(
            login,
            "flood: wrong passwords accepted (peer: no accounts, all)"
        ),
        0.0,
        "{table}"
    );
    for step in ["chat, no flood @500/s: ", "chat during the flood @500/s: "] {
        assert_eq!(value(login, &format!("{step}lost")), 0.0, "{table}");
        assert_eq!(value(login, &format!("{step}duplicates")), 0.0, "{table}");
    }

    let dm = scenario(&reports, "dm");
    assert!(
        value(dm, "50 DM pairs @200/s: delivered/s") > 0.0,
        "{}",
        dm.table()
    );
    assert_eq!(value(dm, "50 DM pairs @200/s: lost"), 0.0, "{}", dm.table());
    assert_eq!(
        value(dm, "50 DM pairs @200/s: duplicates"),
        0.0,
        "{}",
        dm.table()
    );

    assert_sessions(scenario(&reports, "sessions"));
    assert_changes(scenario(&reports, "changes"));

    let churn = scenario(&reports, "churn");
    assert!(value(churn, "cycles completed") > 0.0, "{}", churn.table());
    assert_eq!(value(churn, "cycles failed"), 0.0, "{}", churn.table());

    let rec = scenario(&reports, "recovery");
    assert_eq!(value(rec, "storm users cut"), 200.0, "{}", rec.table());
    assert_eq!(value(rec, "back (reconnected)"), 200.0, "{}", rec.table());
    assert_eq!(value(rec, "recovered: true"), 200.0, "{}", rec.table());
    assert!(
        value(rec, "replayed receipts") > 0.0,
        "messages sent during the cut are replayed\n{}",
        rec.table()
    );
    assert_eq!(value(rec, "lost"), 0.0, "{}", rec.table());
    assert_eq!(value(rec, "duplicates"), 0.0, "{}", rec.table());
    assert_eq!(value(rec, "truncated sessions"), 0.0, "{}", rec.table());

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
