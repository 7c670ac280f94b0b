//! The store's contract, written once and run on every backend
//! (`memory_store::*`, `sqlite_store::*`), then what only SQLite has (a
//! file, a schema, a writer thread) and the fault injector.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use super::*;

// ------------------------------------------------------------- harness

/// A backend and how to (re)open it: for SQLite a new `SqliteStore` on the
/// same directory (the previous one must be dropped first), for memory the
/// same instance again.
struct Backend {
    open: Box<dyn Fn() -> Arc<dyn Store> + Send + Sync>,
    /// Keeps the directory alive for the test's length.
    _dir: Option<TempDir>,
}

fn memory() -> Backend {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(100_000));
    Backend {
        open: Box::new(move || Arc::clone(&store)),
        _dir: None,
    }
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    Backend {
        open: Box::new(move || Arc::new(SqliteStore::open(&path).unwrap())),
        _dir: Some(dir),
    }
}

/// A Redis store on a redis-server of its own (`None`: not installed, the
/// case is skipped). Reopening makes a new `RedisStore` on the same Redis.
fn redis() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(redis::LocalRedis::for_test(dir.path(), false)?);
    let url = server.url();
    Some(Backend {
        open: Box::new(move || {
            let _keep = &server;
            Arc::new(RedisStore::open(&url, "test-node").unwrap())
        }),
        _dir: Some(dir),
    })
}

/// Runs each named case on every backend.
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod memory_store {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::memory()).await
            })*
        }
        mod sqlite_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(super::sqlite()).await
            })*
        }
        mod redis_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(b) = super::redis() {
                    super::$case(b).await
                }
            })*
        }
    };
}

on_every_store!(
    room_history_pages_back_to_the_first_message,
    dm_history_is_both_directions_of_one_pair,
    replay_is_what_the_user_was_meant_to_get,
    sessions_are_upserted_deleted_and_survive_a_reopen,
    head_is_exact_after_a_clean_close,
    prune_deletes_by_age_and_remembers_how_far,
    accounts_are_created_once_changed_by_field_and_survive_a_reopen,
    queued_dms_are_those_to_the_user_in_the_range,
    settings_are_kept_by_scope_and_field_and_survive_a_reopen,
    room_events_are_replayed_and_kept_out_of_history,
    sessions_keep_their_meta_and_are_listed_by_user,
    read_markers_move_forward_only_and_survive_a_reopen,
    conversations_are_both_directions_newest_first,
    unread_counts_others_messages_past_the_marker_up_to_the_cap,
    changes_fold_into_their_message_and_are_replayed_in_order,
    a_deletion_erases_the_text_and_its_edits,
    dm_changes_stay_out_of_dm_history_and_unread,
    api_tokens_are_found_by_hash_listed_revoked_and_survive_a_reopen,
);

/// (v3) An API token is found by its hash, listed under its account
/// oldest first, revoked by its account alone, its last use only moves
/// forward, and removing the account takes its tokens with it.
async fn api_tokens_are_found_by_hash_listed_revoked_and_survive_a_reopen(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    for name in ["alice", "bob"] {
        store
            .create_account(&account(name))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let token = |id: &str, user: &str, created_ms: u64| TokenRecord {
        id: id.into(),
        user_key: user.into(),
        hash: format!("hash-of-{id}"),
        label: format!("label {id}"),
        created_ms,
        last_used_ms: None,
    };
    let (ci, laptop, bobs) = (
        token("t-ci", "alice", BASE_TS + 20),
        token("t-laptop", "alice", BASE_TS + 10),
        token("t-bob", "bob", BASE_TS + 5),
    );
    for t in [&ci, &laptop, &bobs] {
        store.put_token(t).await.unwrap().await.unwrap();
    }
    assert_eq!(store.token("hash-of-t-ci").await.unwrap(), Some(ci.clone()));
    assert_eq!(store.token("hash-of-nothing").await.unwrap(), None);
    assert_eq!(
        store.tokens("alice").await.unwrap(),
        vec![laptop.clone(), ci.clone()],
        "oldest first"
    );
    for at in [BASE_TS + 100, BASE_TS + 50] {
        store
            .token_used("hash-of-t-ci", at)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Bob cannot revoke Alice's token by its id.
    store
        .delete_token("bob", "t-ci")
        .await
        .unwrap()
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = (b.open)();
    store.startup().await.unwrap();
    let used = store.token("hash-of-t-ci").await.unwrap().unwrap();
    assert_eq!(used.last_used_ms, Some(BASE_TS + 100), "moves forward only");
    store
        .delete_token("alice", "t-laptop")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(store.token("hash-of-t-laptop").await.unwrap(), None);
    assert_eq!(store.tokens("alice").await.unwrap(), vec![used]);
    // A revoked token is not brought back by a late use.
    store
        .token_used("hash-of-t-laptop", BASE_TS + 200)
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(store.token("hash-of-t-laptop").await.unwrap(), None);
    store.delete_account("alice").await.unwrap().await.unwrap();
    assert_eq!(store.token("hash-of-t-ci").await.unwrap(), None);
    assert!(store.tokens("alice").await.unwrap().is_empty());
    assert_eq!(store.tokens("bob").await.unwrap(), vec![bobs]);
}

/// (v3) What `session:list` shows of a session comes back with it, at
/// startup and in its user's list; the list follows deletes and renames.
async fn sessions_keep_their_meta_and_are_listed_by_user(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    let with_meta = |token: &str, username: &str, client: Option<&str>| SessionRecord {
        username: username.into(),
        account: client.is_some(),
        meta: SessionMeta {
            id: format!("pub-{token}"),
            client: client.map(str::to_owned),
            address: Some(format!("10.0.0.{}", token.len())),
            connected_at: BASE_TS + token.len() as u64,
            token_id: (token == "t1").then(|| "tok-1".to_owned()),
        },
        ..session(token, &[("#a", 3)], None)
    };
    let phone = with_meta("t1", "Alice", Some("chat-tui 0.3"));
    let laptop = with_meta("t22", "alice", None);
    let other = with_meta("t333", "Bob", Some("web"));
    let brief = session("t4444", &[], None);
    for s in [&phone, &laptop, &other, &brief] {
        store.put_session(s).await.unwrap().await.unwrap();
    }
    let listed = |key: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let mut got = store.user_sessions(key).await.unwrap();
            got.sort_by(|a, b| a.token.cmp(&b.token));
            got
        }
    };
    assert_eq!(listed("alice").await, vec![phone.clone(), laptop.clone()]);
    assert_eq!(listed("bob").await, vec![other.clone()]);
    assert_eq!(listed("usert4444").await, vec![brief.clone()]);
    assert!(listed("carol").await.is_empty());

    store.delete_session("t22").await.unwrap().await.unwrap();
    assert_eq!(listed("alice").await, vec![phone.clone()], "deleted: gone");
    // A rename moves the session to the new name's list.
    let renamed = SessionRecord {
        username: "Alicia".into(),
        ..phone.clone()
    };
    store.put_session(&renamed).await.unwrap().await.unwrap();
    assert!(listed("alice").await.is_empty(), "renamed away");
    assert_eq!(listed("alicia").await, vec![renamed.clone()]);
    store.close().await;
    drop(store);

    let store = (b.open)();
    let mut sessions = store.startup().await.unwrap().sessions;
    sessions.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(sessions, vec![renamed.clone(), other.clone(), brief]);
    let mut got = store.user_sessions("alicia").await.unwrap();
    got.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(got, vec![renamed], "listed after a restart");
}

/// (v3) A read marker only moves forward, whatever order the marks come
/// in, each mark answers with the marker as it stands, and all of it is
/// there after a restart.
async fn read_markers_move_forward_only_and_survive_a_reopen(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    assert!(store.markers("alice").await.unwrap().is_empty());
    let ops = MarkerAt::Room("#ops".into());
    let bob = MarkerAt::Dm("bob".into());
    assert_eq!(store.put_marker("alice", &ops, 5).await.unwrap(), 5);
    assert_eq!(
        store.put_marker("alice", &ops, 3).await.unwrap(),
        5,
        "never back"
    );
    assert_eq!(store.put_marker("alice", &ops, 9).await.unwrap(), 9);
    assert_eq!(store.put_marker("alice", &bob, 4).await.unwrap(), 4);
    assert_eq!(store.put_marker("bob", &ops, 1).await.unwrap(), 1);
    // Marks racing each other: the highest wins, none goes back.
    let general = MarkerAt::Room("#general".into());
    let racing = [7u64, 19, 2, 20, 11, 3, 15, 1, 18, 6].map(|id| {
        let (store, at) = (Arc::clone(&store), general.clone());
        tokio::spawn(async move { (id, store.put_marker("alice", &at, id).await.unwrap()) })
    });
    for mark in racing {
        let (id, stood) = mark.await.unwrap();
        assert!(stood >= id, "{id} answered {stood}");
    }
    let want = BTreeMap::from([(ops.clone(), 9), (bob, 4), (general, 20)]);
    assert_eq!(store.markers("alice").await.unwrap(), want);
    assert_eq!(
        store.markers("bob").await.unwrap(),
        BTreeMap::from([(ops, 1)])
    );
    store.close().await;
    drop(store);

    let store = (b.open)();
    store.startup().await.unwrap();
    assert_eq!(store.markers("alice").await.unwrap(), want, "kept");
}

/// (v3) A user's DM conversations: a DM either way counts, the newest
/// first with the peer's name as that DM has it, from `after` on, at most
/// `limit`; retention takes a conversation with its last DM.
async fn conversations_are_both_directions_newest_first(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    append_all(
        &store,
        [
            dm(1, "alice", "Zoe"),
            dm(2, "alice", "Bob"),
            dm(3, "Carol", "alice"),
            dm(4, "bob", "Alice"),
            dm(5, "dave", "bob"),
            dm(6, "alice", "Erin"),
            room(7, "alice", "#a"),
            msg(8, "alice", Destination::Global),
            dm(9, "carol", "ALICE"),
        ],
    )
    .await;
    let convs = |key: &'static str, after: u64, limit: usize| {
        let store = Arc::clone(&store);
        async move {
            store
                .conversations(key, after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.peer_key, c.peer, c.last_id))
                .collect::<Vec<_>>()
        }
    };
    let c = |k: &str, name: &str, id: u64| (k.to_owned(), name.to_owned(), id);
    assert_eq!(
        convs("alice", 0, 10).await,
        vec![
            c("carol", "carol", 9),
            c("erin", "Erin", 6),
            c("bob", "bob", 4),
            c("zoe", "Zoe", 1)
        ]
    );
    assert_eq!(
        convs("alice", 4, 10).await,
        vec![c("carol", "carol", 9), c("erin", "Erin", 6)],
        "only those with a DM after 4"
    );
    assert_eq!(
        convs("alice", 0, 2).await,
        vec![c("carol", "carol", 9), c("erin", "Erin", 6)]
    );
    assert_eq!(
        convs("bob", 0, 10).await,
        vec![c("dave", "dave", 5), c("alice", "Alice", 4)]
    );
    assert!(convs("alice", 9, 10).await.is_empty());
    assert!(convs("nobody", 0, 10).await.is_empty());
    assert!(convs("alice", 0, 0).await.is_empty());

    // The only DM with Zoe is older than the cutoff.
    store.prune(BASE_TS + 2).await.unwrap();
    assert_eq!(
        convs("alice", 0, 10).await,
        vec![
            c("carol", "carol", 9),
            c("erin", "Erin", 6),
            c("bob", "bob", 4)
        ]
    );
    assert!(convs("zoe", 0, 10).await.is_empty());
}

/// (v3) Unread: messages from others past the marker, room events not
/// counted, each count stopping at the cap; rooms and DMs alike.
async fn unread_counts_others_messages_past_the_marker_up_to_the_cap(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    let mut event = (*room(4, "bob", "#a")).clone();
    event.note = true;
    event.text = MessageRecord::note_text(&chat_shared::RoomEvent::new(
        chat_shared::RoomEventKind::Kick,
    ));
    append_all(
        &store,
        [
            room(1, "alice", "#a"),
            room(2, "bob", "#a"),
            room(3, "Bob", "#a"),
            Arc::new(event),
            room(5, "Alice", "#a"),
            room(6, "carol", "#a"),
            room(7, "bob", "#a"),
            room(8, "bob", "#b"),
            dm(9, "bob", "alice"),
            dm(10, "alice", "bob"),
            dm(11, "BOB", "Alice"),
            dm(12, "carol", "alice"),
            dm(13, "bob", "carol"),
            dm(14, "alice", "alice"),
        ],
    )
    .await;
    let room_at = |r: &str| MarkerAt::Room(r.into());
    let dm_at = |k: &str| MarkerAt::Dm(k.into());
    let asked = [
        (room_at("#a"), 0),
        (room_at("#a"), 2),
        (room_at("#a"), 7),
        (room_at("#b"), 0),
        (dm_at("bob"), 0),
        (dm_at("bob"), 9),
        (dm_at("carol"), 0),
        (dm_at("dave"), 0),
        (room_at("#nobody"), 0),
        (dm_at("alice"), 0),
    ];
    assert_eq!(
        store.unread("alice", &asked, 100).await.unwrap(),
        vec![4, 3, 0, 1, 2, 1, 1, 0, 0, 0]
    );
    assert_eq!(
        store
            .unread("bob", &[(room_at("#a"), 0), (dm_at("alice"), 0)], 100)
            .await
            .unwrap(),
        vec![3, 1],
        "bob's own and the event are not his unread"
    );
    let two = [(room_at("#a"), 0), (dm_at("bob"), 0)];
    assert_eq!(store.unread("alice", &two, 2).await.unwrap(), vec![2, 2]);
    assert_eq!(store.unread("alice", &two, 1).await.unwrap(), vec![1, 1]);
    assert_eq!(store.unread("alice", &two, 0).await.unwrap(), vec![0, 0]);
    assert!(store.unread("alice", &[], 10).await.unwrap().is_empty());

    // A long backlog, half of it one's own: counted over many reads, and
    // cut at the cap.
    append_all(
        &store,
        (100..700).map(|i| room(i, if i % 2 == 0 { "alice" } else { "bob" }, "#big")),
    )
    .await;
    let big = [(room_at("#big"), 0), (room_at("#big"), 599)];
    assert_eq!(
        store.unread("alice", &big, 1000).await.unwrap(),
        vec![300, 50]
    );
    assert_eq!(
        store.unread("alice", &big, 260).await.unwrap(),
        vec![260, 50]
    );
}

/// (v3) The moderation settings: a write per field, a version that moves
/// with every change, and all of it after a restart.
async fn settings_are_kept_by_scope_and_field_and_survive_a_reopen(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    assert!(store.settings().await.unwrap().is_empty());
    let v0 = store.settings_version().await.unwrap();
    for (scope, field, value) in [
        ("roles", "alice", Some("admin")),
        ("room:#ops", "private", Some("1")),
        (
            "room:#ops",
            "ban:bob",
            Some(r#"{"user":"bob","by":"alice"}"#),
        ),
        ("room:#ops", "topic", Some("first")),
        ("room:#ops", "topic", Some("second")),
        ("blocks:carol", "bob", Some("Bob")),
        ("blocks:carol", "bob", None),
    ] {
        store
            .put_setting(scope, field, value.map(str::to_owned))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let v1 = store.settings_version().await.unwrap();
    assert_ne!(v0, v1, "a change moves the version");
    let mut want = vec![
        ("roles".to_owned(), "alice".to_owned(), "admin".to_owned()),
        (
            "room:#ops".into(),
            "ban:bob".into(),
            r#"{"user":"bob","by":"alice"}"#.into(),
        ),
        ("room:#ops".into(), "private".into(), "1".into()),
        ("room:#ops".into(), "topic".into(), "second".into()),
    ];
    want.sort();
    let mut got = store.settings().await.unwrap();
    got.sort();
    assert_eq!(got, want);
    store.close().await;
    drop(store);
    let store = (b.open)();
    store.startup().await.unwrap();
    let mut got = store.settings().await.unwrap();
    got.sort();
    assert_eq!(got, want, "kept across a restart");
    assert_eq!(store.settings_version().await.unwrap(), v1);
}

/// (v3) A room event is an entry of the room's log: replayed to the
/// room's members like a message, never in a page of `history`.
async fn room_events_are_replayed_and_kept_out_of_history(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    let mut event = (*room(2, "alice", "#ops")).clone();
    event.note = true;
    let kick = chat_shared::RoomEvent {
        user: Some("bob".into()),
        reason: Some("spam".into()),
        ..chat_shared::RoomEvent::new(chat_shared::RoomEventKind::Kick)
    };
    event.text = MessageRecord::note_text(&kick);
    append_all(
        &store,
        [
            room(1, "alice", "#ops"),
            Arc::new(event),
            room(3, "bob", "#ops"),
        ],
    )
    .await;
    let (page, _) = store.room_history("#ops", None, 10).await.unwrap();
    let ids: Vec<u64> = page.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![1, 3], "history holds messages only");
    let rooms = BTreeMap::from([("#ops".to_owned(), 0)]);
    let replay = store.replay("carol", &rooms, 0, 3, 10).await.unwrap();
    let ids: Vec<u64> = replay.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!(replay[1].note && !replay[0].note);
    let note = replay[1].room_note().unwrap();
    assert_eq!((note.id.as_str(), note.room.as_str()), ("2", "#ops"));
    assert_eq!(note.user.as_deref(), Some("bob"));
    assert_eq!(note.reason.as_deref(), Some("spam"));
}

/// (v3) A change numbered `id` by `by` of the message `target`, to
/// `dest` (the target's audience).
fn change(
    id: u64,
    by: &str,
    dest: Destination,
    target: u64,
    op: ChangeOp,
    text: &str,
) -> Arc<MessageRecord> {
    Arc::new(MessageRecord {
        change: Some(Box::new(Change { target, op })),
        ..MessageRecord::new(id, BASE_TS + id, by, dest, text)
    })
}

fn react(emoji: &str, on: bool) -> ChangeOp {
    ChangeOp::React {
        emoji: emoji.into(),
        on,
    }
}

/// (v3) Edits and reactions fold into their message: a history page
/// (one read) shows it as it stands, changes stay out of history, a
/// replay has every change in order after the message, and it all
/// survives a reopen.
async fn changes_fold_into_their_message_and_are_replayed_in_order(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    let ops = || Destination::Room("#ops".into());
    let mut answer = (*room(2, "bob", "#ops")).clone();
    answer.reply_to = Some(1);
    append_all(
        &store,
        [
            room(1, "alice", "#ops"),
            Arc::new(answer),
            change(3, "alice", ops(), 1, ChangeOp::Edit, "hello, fixed"),
            change(4, "bob", ops(), 1, react("👍", true), ""),
            change(5, "Carol", ops(), 1, react("👍", true), ""),
            change(6, "carol", ops(), 1, react("👍", true), ""),
            change(7, "bob", ops(), 1, react("🎉", true), ""),
            change(8, "bob", ops(), 1, react("🎉", false), ""),
            change(9, "alice", ops(), 1, react("👀", false), ""),
        ],
    )
    .await;
    for store in [Arc::clone(&store), {
        store.close().await;
        drop(store);
        let again = (b.open)();
        again.startup().await.unwrap();
        again
    }] {
        let (page, more) = store.room_history("#ops", None, 10).await.unwrap();
        assert_eq!(ids(&page), vec![1, 2], "history holds the messages only");
        assert!(!more);
        let first = &page[0];
        assert_eq!(first.text, "hello, fixed");
        assert_eq!(first.edited(), Some(BASE_TS + 3));
        assert!(!first.deleted());
        // One reaction a user: Carol's second 👍 (another case) counts
        // once; 🎉 was taken back; taking back what one never held does
        // nothing.
        assert_eq!(
            first.reactions(),
            &[ReactionRecord {
                emoji: "👍".into(),
                users: vec!["bob".into(), "Carol".into()],
            }]
        );
        assert_eq!(page[1].reply_to, Some(1));
        let found = store.message(1).await.unwrap().unwrap();
        assert_eq!(found.text, "hello, fixed");
        assert!(store.message(42).await.unwrap().is_none());
        let edit = store.message(3).await.unwrap().unwrap();
        assert_eq!(edit.change.as_deref().map(|c| c.target), Some(1));
        let rooms = BTreeMap::from([("#ops".to_owned(), 0)]);
        let replay = store.replay("dave", &rooms, 0, 9, 100).await.unwrap();
        assert_eq!(ids(&replay), (1..=9).collect::<Vec<_>>());
        assert_eq!(
            replay[0].text, "hello, fixed",
            "a replayed message is as it stands"
        );
        assert_eq!(
            replay[4].change.as_deref().map(|c| (&c.op, c.target)),
            Some((&react("👍", true), 1))
        );
    }
}

/// (v3) A deletion leaves the message without its text, its reactions or
/// the text of its earlier edits, everywhere a read can find them; later
/// edits and reactions of it change nothing.
async fn a_deletion_erases_the_text_and_its_edits(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    let general = || Destination::Room("#general".into());
    let mut first = (*room(1, "alice", "#general")).clone();
    first.text = "my password is hunter2".into();
    append_all(
        &store,
        [
            Arc::new(first),
            change(
                2,
                "alice",
                general(),
                1,
                ChangeOp::Edit,
                "my password is hunter3",
            ),
            change(3, "bob", general(), 1, react("😱", true), ""),
            change(4, "alice", general(), 1, ChangeOp::Delete, ""),
            change(5, "alice", general(), 1, ChangeOp::Edit, "back again"),
            change(6, "bob", general(), 1, react("👍", true), ""),
        ],
    )
    .await;
    let (page, _) = store.room_history("#general", None, 10).await.unwrap();
    assert_eq!(ids(&page), vec![1]);
    assert!(page[0].deleted());
    assert_eq!(page[0].text, "");
    assert!(page[0].reactions().is_empty());
    let rooms = BTreeMap::from([("#general".to_owned(), 0)]);
    let replay = store.replay("carol", &rooms, 0, 6, 100).await.unwrap();
    assert_eq!(ids(&replay), (1..=6).collect::<Vec<_>>());
    for m in &replay {
        assert!(!m.text.contains("hunter"), "{m:?}");
    }
    let wire = serde_json::to_value(&*page[0]).unwrap();
    assert_eq!(
        wire.get("text"),
        None,
        "a deleted message has no text: {wire}"
    );
    assert_eq!(wire["deleted"], json!(true));
}

/// (v3) Changes of DMs reach the other side in a replay, but are not
/// DMs: history, unread counts and conversations count messages only.
async fn dm_changes_stay_out_of_dm_history_and_unread(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    let to = |u: &str| Destination::Dm { to: u.into() };
    append_all(
        &store,
        [
            dm(1, "alice", "bob"),
            change(2, "bob", to("alice"), 1, react("👍", true), ""),
            change(3, "alice", to("bob"), 1, ChangeOp::Edit, "edited"),
        ],
    )
    .await;
    let (page, _) = store.dm_history("alice", "bob", None, 0, 10).await.unwrap();
    assert_eq!(ids(&page), vec![1]);
    assert_eq!(page[0].text, "edited");
    assert_eq!(page[0].reactions().len(), 1);
    let unread = store
        .unread("alice", &[(MarkerAt::Dm("bob".into()), 0)], 100)
        .await
        .unwrap();
    assert_eq!(unread, vec![0], "a reaction is not an unread message");
    let none = BTreeMap::new();
    let to_alice = store.replay("alice", &none, 0, 3, 10).await.unwrap();
    assert_eq!(ids(&to_alice), vec![2], "alice hears of bob's reaction");
    let to_bob = store.replay("bob", &none, 0, 3, 10).await.unwrap();
    assert_eq!(ids(&to_bob), vec![1, 3]);
}

const BASE_TS: u64 = 1_700_000_000_000;

fn msg(id: u64, from: &str, dest: Destination) -> Arc<MessageRecord> {
    Arc::new(MessageRecord {
        id,
        ts: BASE_TS + id,
        from: from.into(),
        dest,
        text: format!("message {id}"),
        action: false,
        note: false,
        ..Default::default()
    })
}

fn room(id: u64, from: &str, room: &str) -> Arc<MessageRecord> {
    msg(id, from, Destination::Room(room.into()))
}

fn dm(id: u64, from: &str, to: &str) -> Arc<MessageRecord> {
    msg(id, from, Destination::Dm { to: to.into() })
}

/// Appends in order and waits until all are committed.
async fn append_all(store: &Arc<dyn Store>, msgs: impl IntoIterator<Item = Arc<MessageRecord>>) {
    let mut pending = Vec::new();
    for m in msgs {
        pending.push(store.append(m).await.unwrap());
    }
    for committed in pending {
        committed.await.unwrap();
    }
}

fn ids(msgs: &[Arc<MessageRecord>]) -> Vec<u64> {
    msgs.iter().map(|m| m.id).collect()
}

fn session(token: &str, rooms: &[(&str, u64)], window_ends_at: Option<u64>) -> SessionRecord {
    SessionRecord {
        token: token.into(),
        username: format!("User{token}"),
        since: 1,
        rooms: rooms.iter().map(|&(r, j)| (r.to_string(), j)).collect(),
        window_ends_at,
        account: false,
        meta: Default::default(),
    }
}

fn account(name: &str) -> AccountRecord {
    AccountRecord {
        username: name.into(),
        hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt-of-{name}$hash"),
        rooms: Vec::new(),
        seen: 0,
        created_ms: BASE_TS,
    }
}

// ------------------------------------------------------- the contract

async fn room_history_pages_back_to_the_first_message(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    // 300 messages in #a among 900, interleaved with another room and DMs.
    append_all(
        &store,
        (1..=900).map(|i| match i % 3 {
            1 => room(i, "alice", "#a"),
            2 => room(i, "bob", "#b"),
            _ => dm(i, "alice", "bob"),
        }),
    )
    .await;
    let all_a: Vec<u64> = (1..=900).filter(|i| i % 3 == 1).collect();

    let (newest, more) = store.room_history("#a", None, 50).await.unwrap();
    assert_eq!(ids(&newest), all_a[250..], "the newest 50, oldest first");
    assert!(more);

    let mut seen = ids(&newest);
    let mut before = newest[0].id;
    let mut pages = 1;
    loop {
        let (page, more) = store.room_history("#a", Some(before), 50).await.unwrap();
        assert_eq!(page.len(), 50);
        assert!(page.iter().all(|m| m.id < before));
        seen.splice(0..0, ids(&page));
        before = page[0].id;
        pages += 1;
        if !more {
            break;
        }
    }
    assert_eq!(pages, 6, "the last full page says there is nothing older");
    assert_eq!(seen, all_a);

    let (page, more) = store.room_history("#a", Some(all_a[3]), 50).await.unwrap();
    assert_eq!((ids(&page), more), (all_a[..3].to_vec(), false));
    assert!(
        page.iter()
            .all(|m| matches!(&m.dest, Destination::Room(r) if r == "#a"))
    );
    let (page, more) = store.room_history("#nobody", None, 50).await.unwrap();
    assert!(page.is_empty() && !more);
}

async fn dm_history_is_both_directions_of_one_pair(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    append_all(
        &store,
        [
            dm(1, "Alice", "Bob"),
            dm(2, "bob", "ALICE"),
            dm(3, "alice", "carol"),
            room(4, "alice", "#a"),
            dm(5, "carol", "bob"),
            dm(6, "Bob", "alice"),
            msg(7, "alice", Destination::Global),
            dm(8, "alice", "bob"),
        ],
    )
    .await;

    let (all, more) = store.dm_history("alice", "bob", None, 0, 50).await.unwrap();
    assert_eq!((ids(&all), more), (vec![1, 2, 6, 8], false));
    assert_eq!(all[0].from, "Alice", "display names keep their case");
    let (other_way, _) = store.dm_history("bob", "alice", None, 0, 50).await.unwrap();
    assert_eq!(ids(&other_way), vec![1, 2, 6, 8]);

    let (page, more) = store.dm_history("alice", "bob", None, 0, 2).await.unwrap();
    assert_eq!((ids(&page), more), (vec![6, 8], true));
    let (page, more) = store
        .dm_history("alice", "bob", Some(6), 0, 2)
        .await
        .unwrap();
    assert_eq!((ids(&page), more), (vec![1, 2], false));

    // `after` bounds from below: nothing at or under it counts, not even
    // for `more`.
    let (page, more) = store.dm_history("alice", "bob", None, 2, 50).await.unwrap();
    assert_eq!((ids(&page), more), (vec![6, 8], false));
    let (page, more) = store.dm_history("alice", "bob", None, 1, 2).await.unwrap();
    assert_eq!((ids(&page), more), (vec![6, 8], true));
    let (page, more) = store
        .dm_history("alice", "bob", Some(6), 2, 50)
        .await
        .unwrap();
    assert!(page.is_empty() && !more);

    let (carol, _) = store
        .dm_history("carol", "alice", None, 0, 50)
        .await
        .unwrap();
    assert_eq!(ids(&carol), vec![3]);
}

async fn replay_is_what_the_user_was_meant_to_get(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    let all = vec![
        msg(1, "alice", Destination::Global),     // at or before `after`
        dm(2, "alice", "carol"),                  // at or before `after`
        room(3, "alice", "#a"),                   // before carol joined #a
        dm(4, "alice", "Carol"),                  // to carol: yes
        room(5, "alice", "#a"),                   // the join id itself: no
        room(6, "alice", "#a"),                   // yes
        room(7, "alice", "#c"),                   // not her room
        dm(8, "carol", "alice"),                  // from her: she had the ack
        msg(9, "Carol", Destination::Broadcast),  // her own broadcast
        msg(10, "alice", Destination::Broadcast), // yes
        msg(11, "CAROL", Destination::Global),    // globals include the sender
        room(12, "bob", "#b"),                    // yes
        dm(13, "bob", "alice"),                   // not hers
        room(14, "bob", "#b"),                    // past `upto`
    ];
    append_all(&store, all.iter().cloned()).await;
    let rooms: BTreeMap<String, u64> = [("#a".to_string(), 5), ("#b".to_string(), 0)].into();

    let got = store.replay("carol", &rooms, 2, 13, 100).await.unwrap();
    assert_eq!(ids(&got), vec![4, 6, 10, 11, 12]);
    let by_rule: Vec<u64> = all
        .iter()
        .filter(|m| m.id <= 13 && m.is_for("carol", &rooms, 2))
        .map(|m| m.id)
        .collect();
    assert_eq!(ids(&got), by_rule, "the store agrees with is_for");

    let newest = store.replay("carol", &rooms, 2, 13, 2).await.unwrap();
    assert_eq!(ids(&newest), vec![11, 12], "a limit keeps the newest");
    let everything = store.replay("carol", &rooms, 0, 14, 100).await.unwrap();
    assert_eq!(ids(&everything), vec![1, 2, 4, 6, 10, 11, 12, 14]);
    assert!(
        store
            .replay("carol", &rooms, 13, 13, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .replay("carol", &rooms, 2, 13, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let nothing_joined = store
        .replay("carol", &BTreeMap::new(), 2, 13, 100)
        .await
        .unwrap();
    assert_eq!(ids(&nothing_joined), vec![4, 10, 11]);
}

async fn sessions_are_upserted_deleted_and_survive_a_reopen(b: Backend) {
    let store = (b.open)();
    assert!(store.startup().await.unwrap().sessions.is_empty());
    let now = now_ms();
    let live = session("t1", &[("#a", 3)], None);
    let away = session("t2", &[], Some(now + 60_000));
    let expired = session("t3", &[("#a", 1)], Some(now.saturating_sub(1)));
    let gone = session("t4", &[("#z", 9)], None);
    for s in [&live, &away, &expired, &gone] {
        store.put_session(s).await.unwrap().await.unwrap();
    }
    // An update replaces the whole record, rooms included.
    let live = SessionRecord {
        since: 2,
        rooms: [("#b".to_string(), 7), ("#c".to_string(), 8)].into(),
        ..live
    };
    store.put_session(&live).await.unwrap().await.unwrap();
    store.delete_session("t4").await.unwrap().await.unwrap();
    store
        .delete_session("never-existed")
        .await
        .unwrap()
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = (b.open)();
    let mut sessions = store.startup().await.unwrap().sessions;
    sessions.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(
        sessions,
        vec![live, away],
        "live ones as they were, unexpired ones, not the expired or deleted"
    );
}

async fn accounts_are_created_once_changed_by_field_and_survive_a_reopen(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    assert_eq!(store.account("alice").await.unwrap(), None);
    store
        .create_account(&account("Alice"))
        .await
        .unwrap()
        .await
        .unwrap();
    // A second registration of the same name, in any case, loses.
    let again = store.create_account(&account("ALICE")).await.unwrap().await;
    assert!(
        matches!(&again, Err(StoreError::AccountExists(n)) if n == "ALICE"),
        "{again:?}"
    );
    assert!(store.healthy(), "a name taken is not a store failure");
    store
        .create_account(&account("bob"))
        .await
        .unwrap()
        .await
        .unwrap();

    let rooms = vec!["#a".to_string(), "#b".to_string()];
    for change in [
        AccountChange::Rooms(rooms.clone()),
        AccountChange::Seen(40),
        AccountChange::Seen(12),
        AccountChange::Password("$argon2id$new".into()),
    ] {
        store
            .update_account("alice", change)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Changing an account that does not exist changes nothing.
    store
        .update_account("nobody", AccountChange::Seen(5))
        .await
        .unwrap()
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = (b.open)();
    store.startup().await.unwrap();
    let alice = store.account("alice").await.unwrap().unwrap();
    assert_eq!(alice.username, "Alice", "the display name keeps its case");
    assert_eq!(alice.rooms, rooms);
    assert_eq!(alice.seen, 40, "seen is only ever raised");
    assert_eq!(alice.hash, "$argon2id$new");
    assert_eq!(alice.created_ms, BASE_TS);
    assert!(
        !format!("{alice:?}").contains("argon2"),
        "Debug hides the hash"
    );
    let names: Vec<String> = store
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, ["Alice", "bob"]);
    store.delete_account("bob").await.unwrap().await.unwrap();
    assert_eq!(store.account("bob").await.unwrap(), None);
    assert_eq!(store.accounts().await.unwrap().len(), 1);
}

async fn queued_dms_are_those_to_the_user_in_the_range(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    append_all(
        &store,
        [
            dm(1, "bob", "Alice"),
            dm(2, "alice", "bob"),
            room(3, "bob", "#a"),
            dm(4, "carol", "ALICE"),
            msg(5, "bob", Destination::Global),
            dm(6, "bob", "alice"),
            dm(7, "bob", "alice"),
        ],
    )
    .await;
    let q = store.queued_dms("alice", 0, 7, 50).await.unwrap();
    assert_eq!(ids(&q), vec![1, 4, 6, 7], "only DMs to alice, oldest first");
    let q = store.queued_dms("alice", 1, 6, 50).await.unwrap();
    assert_eq!(ids(&q), vec![4, 6], "after < id <= upto");
    let q = store.queued_dms("alice", 0, 7, 2).await.unwrap();
    assert_eq!(ids(&q), vec![6, 7], "the newest `limit`");
    assert!(
        store
            .queued_dms("alice", 7, 7, 50)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn head_is_exact_after_a_clean_close(b: Backend) {
    let store = (b.open)();
    let first = store.startup().await.unwrap();
    assert_eq!((first.head, first.pruned_upto), (0, 0), "a new store");
    append_all(&store, (1..=10).map(|i| room(i, "alice", "#a"))).await;
    store.close().await;
    drop(store);

    let store = (b.open)();
    let again = store.startup().await.unwrap();
    assert_eq!(again.head, 10);
    append_all(&store, [room(11, "alice", "#a")]).await;
    let (page, _) = store.room_history("#a", None, 3).await.unwrap();
    assert_eq!(ids(&page), vec![9, 10, 11]);
}

async fn prune_deletes_by_age_and_remembers_how_far(b: Backend) {
    let store = (b.open)();
    store.startup().await.unwrap();
    append_all(
        &store,
        (1..=10).map(|i| {
            let mut m = (*room(i, "alice", "#a")).clone();
            m.ts = 1000 * i;
            Arc::new(m)
        }),
    )
    .await;
    assert_eq!(store.prune(5500).await.unwrap(), 5);
    let (left, more) = store.room_history("#a", None, 50).await.unwrap();
    assert_eq!((ids(&left), more), (vec![6, 7, 8, 9, 10], false));
    assert_eq!(
        store.prune(3000).await.unwrap(),
        5,
        "nothing to delete: the mark stays"
    );
    let rooms: BTreeMap<String, u64> = [("#a".to_string(), 0)].into();
    assert_eq!(
        ids(&store.replay("bob", &rooms, 0, 10, 50).await.unwrap()),
        vec![6, 7, 8, 9, 10]
    );
    store.close().await;
    drop(store);

    let store = (b.open)();
    let startup = store.startup().await.unwrap();
    assert_eq!((startup.pruned_upto, startup.head), (5, 10));
}

// ------------------------------------------------------ records on the wire

#[test]
fn a_message_serialises_as_its_wire_payload() {
    let mut m = (*room(7, "Alice", "#general")).clone();
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({"id": "7", "ts": BASE_TS + 7, "from": "Alice", "room": "#general", "text": "message 7"})
    );
    assert_eq!((m.event(), m.kind()), ("room:message", MessageKind::Room));

    m.dest = Destination::Dm { to: "Bob".into() };
    m.action = true;
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({"id": "7", "ts": BASE_TS + 7, "from": "Alice", "to": "Bob", "text": "message 7", "action": true})
    );
    assert_eq!((m.event(), m.kind()), ("dm:message", MessageKind::Dm));

    m.dest = Destination::Global;
    m.action = false;
    assert_eq!(
        serde_json::to_value(Replayed(&m)).unwrap(),
        json!({"id": "7", "ts": BASE_TS + 7, "from": "Alice", "text": "message 7", "replayed": true})
    );
    assert_eq!(
        (m.event(), m.kind()),
        ("global:message", MessageKind::Global)
    );

    m.dest = Destination::Broadcast;
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        format!(
            r#"{{"id":"7","ts":{},"from":"Alice","text":"message 7"}}"#,
            BASE_TS + 7
        ),
        "field order is the contract's"
    );
    assert_eq!(
        (m.event(), m.kind()),
        ("broadcast:message", MessageKind::Broadcast)
    );
}

#[test]
fn the_wire_payload_parses_as_the_shared_types() {
    let m = room(42, "alice", "#a");
    let parsed: chat_shared::RoomMessage =
        serde_json::from_value(serde_json::to_value(Replayed(&m)).unwrap()).unwrap();
    assert_eq!((parsed.id.as_str(), parsed.replayed), ("42", Some(true)));
}

// --------------------------------------------------------------- memory

#[tokio::test]
async fn memory_keeps_the_newest_capacity_and_counts_the_rest_pruned() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new(3));
    append_all(&store, (1..=5).map(|i| room(i, "alice", "#a"))).await;
    let (page, more) = store.room_history("#a", None, 50).await.unwrap();
    assert_eq!((ids(&page), more), (vec![3, 4, 5], false));
    let startup = store.startup().await.unwrap();
    assert_eq!((startup.head, startup.pruned_upto), (5, 2));
}

// --------------------------------------------------------------- SQLite

fn sqlite_dir() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_skips_ids_after_a_crash() {
    let (_dir, path) = sqlite_dir();
    let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path).unwrap()) };
    let store = open();
    assert_eq!(store.startup().await.unwrap().head, 0);
    append_all(&store, (1..=5).map(|i| room(i, "alice", "#a"))).await;
    // A crash: no close, so no clean-shutdown marker.
    drop(store);

    let store = open();
    let head = store.startup().await.unwrap().head;
    assert_eq!(head, 5 + ID_GAP_AFTER_CRASH);
    append_all(&store, [room(head + 1, "alice", "#a")]).await;
    drop(store);

    // The gap counts from the highest id known, stored or skipped to.
    let store = open();
    let head = store.startup().await.unwrap().head;
    assert_eq!(head, 5 + ID_GAP_AFTER_CRASH + 1 + ID_GAP_AFTER_CRASH);
    drop(store);
    let store = open();
    let head = store.startup().await.unwrap().head;
    assert_eq!(
        head,
        6 + 3 * ID_GAP_AFTER_CRASH,
        "a crash right after start"
    );
    store.close().await;
    drop(store);

    let store = open();
    assert_eq!(store.startup().await.unwrap().head, head, "clean: exact");
    let (page, _) = store.room_history("#a", None, 50).await.unwrap();
    assert_eq!(ids(&page), vec![1, 2, 3, 4, 5, 6 + ID_GAP_AFTER_CRASH]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reports_the_heartbeat_of_the_previous_process() {
    let (_dir, path) = sqlite_dir();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.startup().await.unwrap().last_alive_ms, None);
    let started = now_ms();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let alive = store.startup().await.unwrap().last_alive_ms.unwrap();
    assert!(alive.abs_diff(started) < 5_000, "{alive} vs {started}");
}

#[tokio::test]
async fn sqlite_refuses_a_file_that_is_not_a_database() {
    let (_dir, path) = sqlite_dir();
    let file = path.join("chat.db");
    std::fs::write(
        &file,
        b"this is a shopping list, not a database\n".repeat(200),
    )
    .unwrap();
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(
        matches!(&err, StoreError::Open { path, .. } if *path == file),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("move it aside or restore a backup"), "{text}");
}

#[tokio::test]
async fn sqlite_refuses_someone_elses_database() {
    let (_dir, path) = sqlite_dir();
    let other = rusqlite::Connection::open(path.join("chat.db")).unwrap();
    other
        .execute_batch("CREATE TABLE recipes (name TEXT)")
        .unwrap();
    drop(other);
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("not a chat-server one"), "{err}");
}

/// A database written by the previous schema version (1, before
/// accounts) opens, keeps its messages and sessions, and gains accounts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrates_a_version_1_database() {
    let (_dir, path) = sqlite_dir();
    {
        let mut conn = rusqlite::Connection::open(path.join("chat.db")).unwrap();
        let tx = conn.transaction().unwrap();
        super::sqlite::v0_to_v1_for_tests(&tx).unwrap();
        tx.execute_batch(
            "INSERT INTO messages (id, ts, kind, from_name, from_key, room, text)
                 VALUES (7, 1, 'room', 'Bob', 'bob', '#a', 'from version 1');
             INSERT INTO sessions (token, username, since, window_ends_at)
                 VALUES ('t', 'Bob', 0, NULL);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let startup = store.startup().await.unwrap();
    assert_eq!(startup.sessions.len(), 1);
    assert!(!startup.sessions[0].account, "old sessions are guests'");
    let (page, _) = store.room_history("#a", None, 10).await.unwrap();
    assert_eq!(page[0].text, "from version 1");
    store
        .create_account(&account("bob"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(store.account("bob").await.unwrap().is_some());
    let conn = rusqlite::Connection::open(path.join("chat.db")).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// DMs are read from `dm_index` up to the watermark and from `messages`
/// past it. Messages committed one at a time, with the watermark moved
/// every 7 ids, land on both sides of it, some DMs arriving after a higher
/// id (below the watermark already); every DM read then agrees with the
/// memory store, which has no watermark, and so do (v3) the DM
/// conversations and unread counts, which `conversations` folds at the
/// watermark. Retention takes the pruned DMs out of `dm_index` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dm_reads_agree_with_memory_across_the_watermark() {
    let (_dir, path) = sqlite_dir();
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open_with_dm_tail(&path, 7).unwrap());
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new(100_000));
    sqlite.startup().await.unwrap();
    memory.startup().await.unwrap();
    let users = ["ann", "bob", "cy"];
    let mut order: Vec<u64> = (1..=62).collect();
    // Late arrivals: 20 after 24, 41 after 47.
    order.retain(|&id| id != 20 && id != 41);
    order.insert(order.iter().position(|&id| id == 24).unwrap() + 1, 20);
    order.insert(order.iter().position(|&id| id == 47).unwrap() + 1, 41);
    for id in order {
        let (from, to) = (users[id as usize % 3], users[(id as usize / 3) % 3]);
        let m = match id % 5 {
            0 => room(id, from, "#a"),
            4 => msg(id, from, Destination::Global),
            _ => dm(id, from, to),
        };
        for store in [&sqlite, &memory] {
            store.append(Arc::clone(&m)).await.unwrap().await.unwrap();
        }
    }
    // Both sides of the watermark hold DMs.
    let db = rusqlite::Connection::open(path.join("chat.db")).unwrap();
    let (indexed, past): (i64, i64) = db
        .query_row(
            "SELECT (SELECT count(*) FROM dm_index),
                    (SELECT count(*) FROM messages WHERE to_key IS NOT NULL AND id >
                        (SELECT value FROM meta WHERE key = 'dm_indexed_upto'))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(db);
    assert!(
        indexed > 20 && past >= 2,
        "indexed {indexed}, past the watermark {past}"
    );
    let rooms = BTreeMap::from([("#a".to_string(), 0)]);
    let mut checked = 0;
    for a in users {
        for b in users {
            for before in [None, Some(13), Some(21), Some(42), Some(58)] {
                for (after, limit) in [(0, 100), (0, 3), (9, 5), (30, 100)] {
                    let got = sqlite.dm_history(a, b, before, after, limit).await.unwrap();
                    let want = memory.dm_history(a, b, before, after, limit).await.unwrap();
                    assert_eq!(
                        (ids(&got.0), got.1),
                        (ids(&want.0), want.1),
                        "dm_history {a} {b} {before:?} {after} {limit}"
                    );
                    checked += got.0.len();
                }
            }
        }
        for (after, upto, limit) in [(0, 62, 100), (0, 62, 4), (15, 44, 100), (19, 21, 100)] {
            let got = sqlite.queued_dms(a, after, upto, limit).await.unwrap();
            let want = memory.queued_dms(a, after, upto, limit).await.unwrap();
            assert_eq!(
                ids(&got),
                ids(&want),
                "queued_dms {a} {after} {upto} {limit}"
            );
            let got = sqlite.replay(a, &rooms, after, upto, limit).await.unwrap();
            let want = memory.replay(a, &rooms, after, upto, limit).await.unwrap();
            assert_eq!(ids(&got), ids(&want), "replay {a} {after} {upto} {limit}");
        }
    }
    assert!(
        checked > 200,
        "the pages were not empty ({checked} DMs read)"
    );
    let same_conversations = async |sqlite: &Arc<dyn Store>, memory: &Arc<dyn Store>| {
        for a in users {
            for (after, limit) in [(0, 100), (0, 2), (9, 100), (30, 1), (55, 100), (62, 100)] {
                let got = sqlite.conversations(a, after, limit).await.unwrap();
                let want = memory.conversations(a, after, limit).await.unwrap();
                assert_eq!(got, want, "conversations {a} {after} {limit}");
            }
        }
    };
    same_conversations(&sqlite, &memory).await;
    let db = rusqlite::Connection::open(path.join("chat.db")).unwrap();
    let folded: i64 = db
        .query_row("SELECT count(*) FROM conversations", [], |r| r.get(0))
        .unwrap();
    drop(db);
    assert!(folded >= 6, "the watermark folded DMs: {folded} rows");
    for a in users {
        for cap in [100, 3] {
            let asked: Vec<(MarkerAt, u64)> = [0, 9, 21, 40, 58]
                .into_iter()
                .flat_map(|after| {
                    users
                        .iter()
                        .map(move |b| (MarkerAt::Dm(b.to_string()), after))
                        .chain([(MarkerAt::Room("#a".into()), after)])
                })
                .collect();
            let got = sqlite.unread(a, &asked, cap).await.unwrap();
            let want = memory.unread(a, &asked, cap).await.unwrap();
            assert_eq!(got, want, "unread {a} cap {cap}");
            assert!(want.iter().any(|&n| n > 0));
        }
    }

    // Retention: messages up to id 30 go, and so do their index rows.
    sqlite.prune(BASE_TS + 31).await.unwrap();
    memory.prune(BASE_TS + 31).await.unwrap();
    same_conversations(&sqlite, &memory).await;
    let (page, _) = sqlite.dm_history("ann", "bob", None, 0, 100).await.unwrap();
    assert!(ids(&page).iter().all(|&id| id > 30), "{:?}", ids(&page));
    sqlite.close().await;
    let conn = rusqlite::Connection::open(path.join("chat.db")).unwrap();
    let stale: i64 = conn
        .query_row("SELECT count(*) FROM dm_index WHERE id <= 30", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stale, 0, "pruned DMs are gone from dm_index");
}

/// A big batch goes in through multi-row inserts: every column of every
/// kind of message reads back as it was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_big_batch_reads_back_whole() {
    let (_dir, path) = sqlite_dir();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    store.startup().await.unwrap();
    let all: Vec<Arc<MessageRecord>> = (1..=101)
        .map(|id| {
            let dest = match id % 4 {
                0 => Destination::Room("#a".into()),
                1 => Destination::Dm { to: "Ann".into() },
                2 => Destination::Global,
                _ => Destination::Broadcast,
            };
            Arc::new(MessageRecord {
                id,
                ts: BASE_TS + id * 7,
                from: if id % 2 == 0 { "Bob" } else { "Cé.line" }.into(),
                dest,
                text: format!("line {id} \u{1F600} \"quoted\""),
                action: id % 3 == 0,
                note: false,
                ..Default::default()
            })
        })
        .collect();
    append_all(&store, all.iter().cloned()).await;
    let wanted = |keep: &dyn Fn(&MessageRecord) -> bool| -> Vec<MessageRecord> {
        all.iter()
            .filter(|m| keep(m))
            .map(|m| (**m).clone())
            .collect()
    };
    let whole = |got: Vec<Arc<MessageRecord>>| -> Vec<MessageRecord> {
        got.into_iter().map(|m| (*m).clone()).collect()
    };
    let (room, _) = store.room_history("#a", None, 200).await.unwrap();
    assert_eq!(
        whole(room),
        wanted(&|m| matches!(m.dest, Destination::Room(_)))
    );
    let dms = store.queued_dms("ann", 0, 101, 200).await.unwrap();
    assert_eq!(
        whole(dms),
        wanted(&|m| matches!(m.dest, Destination::Dm { .. }))
    );
    let rooms = BTreeMap::from([("#a".to_string(), 0)]);
    let feed = store.replay("dan", &rooms, 0, 101, 200).await.unwrap();
    assert_eq!(
        whole(feed),
        wanted(&|m| !matches!(m.dest, Destination::Dm { .. }))
    );
}

/// A version 2 database (DMs found through an index on `messages`) opens
/// with its DMs in `dm_index`, and new DMs join them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrates_a_version_2_database_s_dms() {
    let (_dir, path) = sqlite_dir();
    {
        let mut conn = rusqlite::Connection::open(path.join("chat.db")).unwrap();
        let tx = conn.transaction().unwrap();
        super::sqlite::v0_to_v1_for_tests(&tx).unwrap();
        super::sqlite::v1_to_v2_for_tests(&tx).unwrap();
        tx.execute_batch(
            "INSERT INTO messages (id, ts, kind, from_name, from_key, to_name, to_key, text)
                 VALUES (3, 1, 'dm', 'Bob', 'bob', 'Ann', 'ann', 'from version 2'),
                        (5, 2, 'dm', 'Ann', 'ann', 'Bob', 'bob', 'the answer');
             INSERT INTO meta (key, value) VALUES ('head', 5), ('clean', 1);
             PRAGMA user_version = 2;",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    assert_eq!(store.startup().await.unwrap().head, 5);
    append_all(&store, [dm(6, "bob", "ann")]).await;
    let queued = store.queued_dms("ann", 0, 6, 10).await.unwrap();
    assert_eq!(ids(&queued), vec![3, 6]);
    assert_eq!(queued[0].text, "from version 2");
    let (page, more) = store.dm_history("ann", "bob", None, 0, 10).await.unwrap();
    assert_eq!((ids(&page), more), (vec![3, 5, 6], false));
}

/// (v3) A version 4 database opens at version 5: its sessions gain their
/// user's key (so they are listed by user), and its DMs, indexed or past
/// the watermark, are the users' conversations and count as unread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrates_a_version_4_database_s_sessions_and_dms() {
    let (_dir, path) = sqlite_dir();
    {
        let mut conn = rusqlite::Connection::open(path.join("chat.db")).unwrap();
        let tx = conn.transaction().unwrap();
        super::sqlite::migrate_for_tests(&tx, 4).unwrap();
        tx.execute_batch(
            "INSERT INTO messages (id, ts, kind, from_name, from_key, to_name, to_key, text)
                 VALUES (3, 1, 'dm', 'Bob', 'bob', 'Ann', 'ann', 'hi'),
                        (5, 2, 'dm', 'Ann', 'ann', 'Bob', 'bob', 'hello'),
                        (6, 3, 'dm', 'Bob', 'bob', 'Ann', 'ann', 'still there?'),
                        (7, 4, 'dm', 'Carl', 'carl', 'BOB', 'bob', 'psst'),
                        (9, 5, 'dm', 'Dee', 'dee', 'Ann', 'ann', 'past the watermark');
             INSERT INTO messages (id, ts, kind, from_name, from_key, room, text)
                 VALUES (8, 4, 'room', 'Bob', 'bob', '#a', 'in a room');
             INSERT INTO dm_index (to_key, id) VALUES ('ann', 3), ('bob', 5), ('ann', 6),
                 ('bob', 7);
             UPDATE meta SET value = 8 WHERE key = 'dm_indexed_upto';
             INSERT INTO meta (key, value) VALUES ('head', 9), ('clean', 1);
             INSERT INTO sessions (token, username, since, window_ends_at, account)
                 VALUES ('t1', 'Bob', 0, NULL, 1), ('t2', 'ann', 0, NULL, 0);
             INSERT INTO session_rooms (token, room, joined_at) VALUES ('t1', '#a', 2);",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    assert_eq!(store.startup().await.unwrap().head, 9);
    let bobs = store.user_sessions("bob").await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!((bobs[0].token.as_str(), bobs[0].account), ("t1", true));
    assert_eq!(bobs[0].rooms, BTreeMap::from([("#a".to_owned(), 2)]));
    assert_eq!(
        bobs[0].meta,
        SessionMeta::default(),
        "nothing was kept of it"
    );
    assert_eq!(store.user_sessions("ann").await.unwrap()[0].token, "t2");

    let peers = |key: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .conversations(key, 0, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.peer, c.last_id))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        peers("ann").await,
        vec![("Dee".into(), 9), ("Bob".into(), 6)]
    );
    assert_eq!(
        peers("bob").await,
        vec![("Carl".into(), 7), ("Ann".into(), 6)]
    );
    let bob_and_dee = [
        (MarkerAt::Dm("bob".into()), 0),
        (MarkerAt::Dm("bob".into()), 3),
        (MarkerAt::Dm("dee".into()), 0),
    ];
    assert_eq!(
        store.unread("ann", &bob_and_dee, 100).await.unwrap(),
        vec![2, 1, 1]
    );
    // New DMs join the old ones.
    append_all(&store, [dm(10, "ann", "carl"), dm(11, "bob", "ann")]).await;
    assert_eq!(
        peers("ann").await,
        vec![("bob".into(), 11), ("carl".into(), 10), ("Dee".into(), 9)]
    );
    assert_eq!(
        store.unread("ann", &bob_and_dee, 100).await.unwrap(),
        vec![3, 2, 1]
    );
}

#[tokio::test]
async fn sqlite_refuses_a_newer_schema() {
    let (_dir, path) = sqlite_dir();
    SqliteStore::open(&path).unwrap().close().await;
    let conn = rusqlite::Connection::open(path.join("chat.db")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match SqliteStore::open(&path) {
        Err(StoreError::NewerSchema {
            path: at,
            found,
            supported,
        }) => {
            assert_eq!((found, supported), (99, SCHEMA_VERSION));
            assert_eq!(at, path.join("chat.db"));
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("opened a newer schema"),
    }
}

#[tokio::test]
async fn sqlite_names_a_directory_it_cannot_create() {
    let (_dir, path) = sqlite_dir();
    let file = path.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("data");
    let err = SqliteStore::open(&bad).err().unwrap();
    assert!(
        matches!(&err, StoreError::Open { path, .. } if *path == bad),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
}

/// Holds the database's write lock from another connection, so that the
/// writer's next transaction waits and everything queued meanwhile lands in
/// one batch: grouping made deterministic.
fn hold_write_lock(path: &std::path::Path) -> rusqlite::Connection {
    let blocker = rusqlite::Connection::open(path.join("chat.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    blocker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_groups_concurrent_appends_into_few_commits() {
    let (_dir, path) = sqlite_dir();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    store.startup().await.unwrap();
    let before = store.commits();
    let blocker = hold_write_lock(&path);
    let tasks: Vec<_> = (1..=500)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(room(i, "alice", "#a")).await?.await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let commits = store.commits() - before;
    assert!(commits < 20, "{commits} commits for 500 messages");
    let (page, more) = store.room_history("#a", None, 500).await.unwrap();
    assert_eq!((page.len(), more), (500, false));
    assert!(page.windows(2).all(|w| w[0].id < w[1].id));
}

/// A busy stream of writes is committed in spaced groups even where an
/// fsync is cheap: 16 writes every 500 µs for 200 ms, which the writer
/// would otherwise commit a few at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_spaces_commits_under_a_busy_stream() {
    let (_dir, path) = sqlite_dir();
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    store.startup().await.unwrap();
    let before = store.commits();
    let mut tick = tokio::time::interval(Duration::from_micros(500));
    let mut tasks = Vec::new();
    for i in 0..400 {
        tick.tick().await;
        for j in 1..=16 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store.append(room(i * 16 + j, "alice", "#a")).await?.await
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let commits = store.commits() - before;
    // 200 ms at one commit per 4 ms at most is 50, plus the first few
    // before the stream counts as busy.
    assert!(commits <= 60, "{commits} commits for 6 400 writes");
    let (page, _) = store.room_history("#a", None, 1).await.unwrap();
    assert_eq!(ids(&page), vec![6400]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_full_queue_waits_then_drains() {
    let (_dir, path) = sqlite_dir();
    let store = SqliteStore::open(&path).unwrap();
    store.startup().await.unwrap();
    let n = 2 * WRITE_QUEUE_BOUND as u64 + 7;
    let mut pending = Vec::new();
    for i in 1..=n {
        // Past the bound, this waits for the writer to free slots.
        pending.push(store.append(room(i, "alice", "#a")).await.unwrap());
    }
    for committed in pending {
        committed.await.unwrap();
    }
    let (page, more) = store.room_history("#a", None, 1).await.unwrap();
    assert_eq!((ids(&page), more), (vec![n], true));
    assert!(store.commits() < n / 2, "{} commits", store.commits());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fails_a_whole_batch_together_and_recovers() {
    let (_dir, path) = sqlite_dir();
    let store = SqliteStore::open(&path).unwrap();
    store.startup().await.unwrap();
    // Id 1 twice in one batch: the second breaks the primary key, so the
    // transaction fails and nothing of it is stored. A first write takes
    // the writer into the held lock, so the next three queue up together.
    let blocker = hold_write_lock(&path);
    let sentinel = store.put_session(&session("t", &[], None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = store.append(room(1, "alice", "#a")).await.unwrap();
    let duplicate = store.append(room(1, "alice", "#a")).await.unwrap();
    let second = store.append(room(2, "alice", "#a")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    sentinel.await.unwrap();
    for result in [first.await, duplicate.await, second.await] {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
    assert!(!store.healthy());
    let (page, _) = store.room_history("#a", None, 50).await.unwrap();
    assert!(page.is_empty(), "rolled back");

    store
        .append(room(3, "alice", "#a"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(store.healthy());
    let (page, _) = store.room_history("#a", None, 50).await.unwrap();
    assert_eq!(ids(&page), vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_writes_after_close() {
    let (_dir, path) = sqlite_dir();
    let store = SqliteStore::open(&path).unwrap();
    store.startup().await.unwrap();
    let queued = store.append(room(1, "alice", "#a")).await.unwrap();
    store.close().await;
    queued.await.unwrap();
    assert!(matches!(
        store.append(room(2, "alice", "#a")).await,
        Err(StoreError::Unavailable(_))
    ));
    store.close().await;
}

// --------------------------------------------------------------- faults

#[tokio::test]
async fn faulty_writes_fail_and_health_follows() {
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new(100))));
    let store: Arc<dyn Store> = faulty.clone();
    store.startup().await.unwrap();
    append_all(&store, [room(1, "alice", "#a")]).await;
    assert!(store.healthy());

    faulty.fail_writes(true);
    let refused = store.append(room(2, "alice", "#a")).await.unwrap().await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    let session = session("t", &[], None);
    assert!(store.put_session(&session).await.unwrap().await.is_err());
    assert!(store.delete_session("t").await.unwrap().await.is_err());
    assert!(!store.healthy());
    let (page, _) = store.room_history("#a", None, 50).await.unwrap();
    assert_eq!(ids(&page), vec![1], "nothing of a failed write is kept");

    faulty.fail_writes(false);
    append_all(&store, [room(3, "alice", "#a")]).await;
    assert!(store.healthy());
    let (page, _) = store.room_history("#a", None, 50).await.unwrap();
    assert_eq!(ids(&page), vec![1, 3]);
}

// ---------------------------------------------------------------- Redis

/// Polls `cond` every 20 ms until it holds, for at most 10 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_numbers_the_messages_of_every_node_in_one_order() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = redis::LocalRedis::for_test(dir.path(), false) else {
        return;
    };
    let a = RedisStore::open(&server.url(), "a").unwrap();
    let b = RedisStore::open(&server.url(), "b").unwrap();
    a.startup().await.unwrap();
    b.startup().await.unwrap();
    let send = |store: RedisStore, who: &'static str| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..100 {
                let dest = Destination::Room("#a".into());
                let m = store
                    .append_new(who, BASE_TS + i, dest, &format!("{who}{i}"), false, false)
                    .await
                    .unwrap();
                ids.push(m.id);
            }
            ids
        })
    };
    let (ta, tb) = (send(a.clone(), "alice"), send(b.clone(), "bob"));
    let (ia, ib) = (ta.await.unwrap(), tb.await.unwrap());
    assert!(ia.windows(2).all(|w| w[0] < w[1]));
    assert!(ib.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<u64> = ia.iter().chain(&ib).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<_>>(),
        "no id twice, none skipped"
    );
    let (page, more) = b.room_history("#a", None, 200).await.unwrap();
    assert_eq!((ids(&page), more), (all, false));
    assert_eq!(b.startup().await.unwrap().head, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_health_follows_redis_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut server) = redis::LocalRedis::for_test(dir.path(), true) else {
        return;
    };
    let store = RedisStore::open(&server.url(), "a").unwrap();
    store.startup().await.unwrap();
    let first = store
        .append_new(
            "alice",
            BASE_TS,
            Destination::Global,
            "before",
            false,
            false,
        )
        .await
        .unwrap();
    assert!(store.healthy());

    server.kill();
    until("unhealthy while Redis is down", || !store.healthy()).await;
    let refused = store
        .append_new(
            "alice",
            BASE_TS,
            Destination::Global,
            "while down",
            false,
            false,
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );

    server.restart().unwrap();
    until("healthy once Redis is back", || store.healthy()).await;
    let after = store
        .append_new("alice", BASE_TS, Destination::Global, "after", false, false)
        .await
        .unwrap();
    assert_eq!(after.id, first.id + 1, "the same epoch: ids go on");
    let rooms = BTreeMap::new();
    let kept = store.replay("bob", &rooms, 0, after.id, 50).await.unwrap();
    let texts: Vec<&str> = kept.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["before", "after"], "the append-only file kept it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_lost_its_data_is_taken_up_above_every_id() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut server) = redis::LocalRedis::for_test(dir.path(), false) else {
        return;
    };
    let store = RedisStore::open(&server.url(), "a").unwrap();
    store.startup().await.unwrap();
    for i in 0..5 {
        store
            .append_new("alice", BASE_TS + i, Destination::Global, "x", false, false)
            .await
            .unwrap();
    }
    assert_eq!(store.lost_upto(), 0);
    // No persistence: a restart empties it.
    server.restart().unwrap();
    until("the loss is noticed", || store.lost_upto() > 0).await;
    assert!(store.lost_upto() >= 5);
    let next = store
        .append_new("alice", BASE_TS, Destination::Global, "y", false, false)
        .await
        .unwrap();
    assert!(next.id > store.lost_upto(), "no id handed out twice");
    let again = RedisStore::open(&server.url(), "b").unwrap();
    let startup = again.startup().await.unwrap();
    assert!(
        startup.pruned_upto >= 5,
        "replays from before it are truncated"
    );
    assert_eq!(startup.head, next.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_prunes_in_batches_and_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = redis::LocalRedis::for_test(dir.path(), false) else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(RedisStore::open(&server.url(), "a").unwrap());
    let startup = store.startup().await.unwrap();
    assert!(startup.sessions.is_empty());
    assert!(store.accounts().await.unwrap().is_empty());
    // More than one run of the retention script removes.
    append_all(
        &store,
        (1..=2500).map(|i| {
            let mut m = (*room(i, "alice", "#a")).clone();
            m.ts = i;
            Arc::new(m)
        }),
    )
    .await;
    assert_eq!(store.prune(2401).await.unwrap(), 2400);
    let (left, more) = store.room_history("#a", None, 500).await.unwrap();
    assert_eq!((ids(&left), more), ((2401..=2500).collect(), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_live_sessions_are_kept_and_windows_expire() {
    use ::redis::AsyncCommands;
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = redis::LocalRedis::for_test(dir.path(), false) else {
        return;
    };
    let store = RedisStore::open(&server.url(), "a").unwrap();
    store.startup().await.unwrap();
    let live = session("live", &[], None);
    store.put_session(&live).await.unwrap().await.unwrap();
    let away = session("away", &[], Some(now_ms() + 60_000));
    store.put_session(&away).await.unwrap().await.unwrap();
    let mut con = store.connection();
    let ttl = |con: &mut ::redis::aio::ConnectionManager, token: &'static str| {
        let mut con = con.clone();
        async move {
            let ms: i64 = con.pttl(format!("chat:session:{token}")).await.unwrap();
            ms
        }
    };
    assert!(
        ttl(&mut con, "away").await <= 60_000,
        "a window ends with it"
    );
    // Almost expired, then kept by its node.
    let _: () = con.pexpire("chat:session:live", 1000).await.unwrap();
    let cluster = crate::cluster::Cluster::new(store.clone(), 0);
    cluster.keep_sessions(&["live".to_string()]).await.unwrap();
    let kept = ttl(&mut con, "live").await;
    assert!(kept > 3_000_000, "pushed back by an hour: {kept} ms");
    // Another node's writes to a session it does not hold change nothing.
    let other = RedisStore::open(&server.url(), "b").unwrap();
    other.startup().await.unwrap();
    other.delete_session("live").await.unwrap().await.unwrap();
    assert!(store.session("live").await.unwrap().is_some());
    assert_eq!(other.claim_session("live").await.unwrap().unwrap().1, "a");
    other.delete_session("live").await.unwrap().await.unwrap();
    assert!(
        store.session("live").await.unwrap().is_none(),
        "its holder now"
    );
}

/// (v3) A user's list of sessions in Redis follows what removes a session
/// besides a delete: a window that ends (the key expires) and another node
/// that claims the session and ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_user_sessions_follow_expiry_and_other_nodes() {
    use ::redis::AsyncCommands;
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = redis::LocalRedis::for_test(dir.path(), false) else {
        return;
    };
    let a = RedisStore::open(&server.url(), "a").unwrap();
    a.startup().await.unwrap();
    let mut short = session("short", &[], Some(now_ms() + 200));
    short.username = "Ann".into();
    let mut kept = session("kept", &[], None);
    kept.username = "ann".into();
    for s in [&short, &kept] {
        a.put_session(s).await.unwrap().await.unwrap();
    }
    let tokens = |store: &RedisStore| {
        let store = store.clone();
        async move {
            let mut t: Vec<String> = store
                .user_sessions("ann")
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.token)
                .collect();
            t.sort();
            t
        }
    };
    assert_eq!(tokens(&a).await, ["kept", "short"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(tokens(&a).await, ["kept"], "the window ended");
    let mut con = a.connection();
    let left: Vec<String> = con.smembers("chat:user-sessions:ann").await.unwrap();
    assert_eq!(left, ["kept"], "and its token left the set");

    // Node b takes the session over, then ends it.
    let b = RedisStore::open(&server.url(), "b").unwrap();
    b.startup().await.unwrap();
    assert_eq!(tokens(&b).await, ["kept"], "any node lists it");
    b.claim_session("kept").await.unwrap().unwrap();
    b.delete_session("kept").await.unwrap().await.unwrap();
    assert!(tokens(&a).await.is_empty());
    let left: Vec<String> = con.smembers("chat:user-sessions:ann").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

// ------------------------------------------------------- commit outcomes

/// `Committed::then` runs its callback once the SQLite writer has
/// committed (the message is readable by then), exactly once, and a write
/// the writer never commits still calls back, with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn then_runs_after_the_commit_and_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    store.startup().await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for id in 1..=50 {
        let committed = store.append(room(id, "ann", "#a")).await.unwrap();
        let (tx, store) = (tx.clone(), Arc::clone(&store));
        committed.then(move |result| {
            // Called on the runtime: reading back what it says is stored.
            tokio::spawn(async move {
                let page = store.room_history("#a", Some(id + 1), 1).await.unwrap();
                tx.send((id, result.is_ok(), ids(&page.0))).unwrap();
            });
        });
    }
    drop(tx);
    let mut seen = Vec::new();
    while let Some((id, ok, page)) = rx.recv().await {
        assert!(ok, "message {id} committed");
        assert_eq!(
            page,
            vec![id],
            "message {id} is stored when its callback runs"
        );
        seen.push(id);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>(), "one callback each");
}

#[tokio::test]
async fn then_on_a_write_that_is_never_committed_reports_unavailable() {
    let (resolver, committed) = Committed::pending();
    let (tx, rx) = std::sync::mpsc::channel();
    committed.then(move |result| tx.send(result).unwrap());
    assert!(rx.try_recv().is_err(), "not called before the outcome");
    // The writer goes away with the write.
    drop(resolver);
    let outcome = rx.try_recv().expect("called when the resolver went away");
    assert!(matches!(outcome, Err(StoreError::Unavailable(_))));
    // Resolved before the callback is handed over: called at once.
    let (resolver, committed) = Committed::pending();
    resolver.resolve(Ok(()));
    let (tx, rx) = std::sync::mpsc::channel();
    committed.then(move |result| tx.send(result).unwrap());
    assert!(rx.try_recv().unwrap().is_ok());
}

/// What is delivered on a commit runs in commit order (the queue's, so id
/// order), before the outcome goes on to the ack; a failed write runs
/// nothing and reports unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_success_runs_in_commit_order_before_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    store.startup().await.unwrap();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for id in 1..=50 {
        let committed = store.append(room(id, "ann", "#a")).await.unwrap();
        let delivered = Arc::clone(&log);
        let acked = Arc::clone(&log);
        let tx = tx.clone();
        committed
            .on_success(move || delivered.lock().unwrap().push(("deliver", id)))
            .then(move |result| {
                acked.lock().unwrap().push(("ack", id));
                tx.send(result.is_ok()).unwrap();
            });
    }
    drop(tx);
    while let Some(ok) = rx.recv().await {
        assert!(ok);
    }
    let log = log.lock().unwrap().clone();
    let delivered: Vec<u64> = log
        .iter()
        .filter(|(what, _)| *what == "deliver")
        .map(|&(_, id)| id)
        .collect();
    assert_eq!(delivered, (1..=50).collect::<Vec<_>>(), "in commit order");
    for id in 1..=50 {
        let at = |what| log.iter().position(|&e| e == (what, id)).unwrap();
        assert!(
            at("deliver") < at("ack"),
            "message {id}: delivered, then acked"
        );
    }

    let (resolver, committed) = Committed::pending();
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let outcome =
        committed.on_success(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
    drop(resolver);
    assert!(matches!(outcome.await, Err(StoreError::Unavailable(_))));
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "nothing delivered"
    );
}

/// Commits the faulty store held back resolve in queue order once let go,
/// and a write queued right after the release waits its turn behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_commits_resolve_in_queue_order() {
    let faulty = FaultyStore::new(Arc::new(MemoryStore::new(100)));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let queue = |id: u64, committed: Committed| {
        let (order, tx) = (Arc::clone(&order), tx.clone());
        committed.then(move |result| {
            order.lock().unwrap().push(id);
            tx.send(result.is_ok()).unwrap();
        });
    };
    faulty.hold_commits(true);
    for id in 1..=30 {
        queue(id, faulty.append(room(id, "ann", "#a")).await.unwrap());
    }
    assert!(order.lock().unwrap().is_empty(), "held back");
    faulty.hold_commits(false);
    queue(31, faulty.append(room(31, "ann", "#a")).await.unwrap());
    for _ in 1..=31 {
        assert!(rx.recv().await.unwrap());
    }
    assert_eq!(*order.lock().unwrap(), (1..=31).collect::<Vec<_>>());
}
