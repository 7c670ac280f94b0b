//! The restart scenario against the real chat-server binary on its on-disk
//! store, killed with SIGKILL (the harder case: a crash): every stored
//! message is acked, the server comes back on the same data directory, the
//! user resumes its session and reads its DMs back. It asserts what was
//! stored and read, no timing figure.

use std::time::Duration;

use clap::Parser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_stored_history_resumes_and_reads_back() {
    let bin = chat_e2e::workspace_binary("chat-server", "chat-server");
    let bin = bin.to_str().expect("a UTF-8 path");
    let args = [
        "chat-bench",
        "--chat-server-bin",
        bin,
        "--scenarios",
        "restart",
        "--dm-pairs",
        "20",
        "--restart-messages",
        "3000",
        "--restart-rate",
        "1500",
        "--restart-kill",
    ];
    let cfg = chat_bench::Config::try_parse_from(args).expect("bench flags");
    let reports = tokio::time::timeout(Duration::from_secs(120), chat_bench::run(&cfg))
        .await
        .expect("the run ends in time")
        .expect("the bench runs");
    let report = reports.first().expect("a restart report");
    let value = |metric: &str| {
        report
            .value(&format!("restart: {metric}"), "chat-server")
            .unwrap_or_else(|| panic!("no figure {metric:?}\n{}", report.table()))
    };
    assert_eq!(value("messages sent"), 3000.0, "{}", report.table());
    assert_eq!(value("messages acked"), 3000.0, "{}", report.table());
    assert_eq!(value("lost"), 0.0);
    assert_eq!(value("duplicates"), 0.0);
    assert!(value("store on disk") > 0.0);
    assert_eq!(value("reader recovered"), 1.0, "{}", report.table());
    // 3000 DMs over 20 pairs: 150 between the reader and its partner.
    assert_eq!(value("history page messages"), 50.0, "{}", report.table());
    for figure in [
        "stop (SIGKILL to exit)",
        "start (exec to a resumed session)",
        "RSS after start, all stored",
    ] {
        assert!(value(figure) > 0.0, "{figure}\n{}", report.table());
    }
}
