//! [`FaultyStore`]: wraps a store and makes its writes fail on demand.
//! This is how a test shows what a client sees when the disk is full
//! (`unavailable`, nothing delivered) without filling a disk: the failure
//! comes through the same seam, as the same [`StoreError`]. It can also
//! fail message commits while still looking healthy (the disk that fills
//! up under a message already numbered), and hold commits back, as a slow
//! disk would.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use super::{
    AccountChange, AccountRecord, Committed, MessageRecord, Page, SessionRecord, Startup, Store,
    StoreError,
};

/// Delegates everything to `inner`, except that while
/// [`fail_writes`](FaultyStore::fail_writes) is on, every write resolves
/// to [`StoreError::Unavailable`] without reaching `inner`, and while
/// [`hold_commits`](FaultyStore::hold_commits) is on, appended messages
/// reach `inner` but their commits resolve only once it is off again.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    /// Message commits fail while the store still looks healthy.
    failing_commits: AtomicBool,
    holding: watch::Sender<bool>,
    /// Settled when the last held commit has been handed on: the next one
    /// waits for it, so held commits resolve in queue order, as a real
    /// store's do (the server delivers messages in that order).
    last_held: std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            failing: AtomicBool::new(false),
            failing_commits: AtomicBool::new(false),
            holding: watch::Sender::new(false),
            last_held: std::sync::Mutex::new(None),
        }
    }

    /// Holds message commits back (a slow disk) or lets them all go.
    pub fn hold_commits(&self, hold: bool) {
        self.holding.send_replace(hold);
    }

    /// Makes writes fail (as a full disk would) or lets them through again.
    pub fn fail_writes(&self, fail: bool) {
        self.failing.store(fail, Ordering::SeqCst);
    }

    /// Makes message commits fail while [`healthy`](Store::healthy) still
    /// says yes: the first write on a disk that has just filled up, which
    /// the server numbers before it learns that it cannot be stored.
    pub fn fail_commits(&self, fail: bool) {
        self.failing_commits.store(fail, Ordering::SeqCst);
    }

    /// The refusal a write gets while failing, or `None` to delegate. As
    /// with a real disk, the write is accepted into the queue and fails at
    /// commit, so callers meet the failure where they would in production.
    fn refusal(&self) -> Option<Committed> {
        self.failing.load(Ordering::SeqCst).then(|| {
            Committed::ready(Err(StoreError::Unavailable(
                "injected write failure (disk full)".into(),
            )))
        })
    }
}

#[async_trait::async_trait]
impl Store for FaultyStore {
    async fn startup(&self) -> Result<Startup, StoreError> {
        self.inner.startup().await
    }

    async fn append(&self, msg: Arc<MessageRecord>) -> Result<Committed, StoreError> {
        if self.failing_commits.load(Ordering::SeqCst) {
            return Ok(Committed::ready(Err(StoreError::Unavailable(
                "injected commit failure (disk full)".into(),
            ))));
        }
        match self.refusal() {
            Some(refused) => Ok(refused),
            None => {
                let committed = self.inner.append(msg).await?;
                let mut last = self.last_held.lock().unwrap_or_else(|e| e.into_inner());
                // A held commit not yet handed on: this one goes after it.
                let before = match last.as_mut().map(|r| r.try_recv()) {
                    Some(Err(tokio::sync::oneshot::error::TryRecvError::Empty)) => last.take(),
                    _ => None,
                };
                if before.is_none() && !*self.holding.borrow() {
                    *last = None;
                    return Ok(committed);
                }
                let mut released = self.holding.subscribe();
                let (done, held) = Committed::pending();
                let (handed_on, next) = tokio::sync::oneshot::channel();
                *last = Some(next);
                drop(last);
                tokio::spawn(async move {
                    let _ = released.wait_for(|holding| !holding).await;
                    if let Some(before) = before {
                        let _ = before.await;
                    }
                    done.resolve(committed.await);
                    let _ = handed_on.send(());
                });
                Ok(held)
            }
        }
    }

    async fn put_session(&self, session: &SessionRecord) -> Result<Committed, StoreError> {
        match self.refusal() {
            Some(refused) => Ok(refused),
            None => self.inner.put_session(session).await,
        }
    }

    async fn delete_session(&self, token: &str) -> Result<Committed, StoreError> {
        match self.refusal() {
            Some(refused) => Ok(refused),
            None => self.inner.delete_session(token).await,
        }
    }

    async fn replay(
        &self,
        user_key: &str,
        rooms: &BTreeMap<String, u64>,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
        self.inner.replay(user_key, rooms, after, upto, limit).await
    }

    async fn message(&self, id: u64) -> Result<Option<Arc<MessageRecord>>, StoreError> {
        self.inner.message(id).await
    }

    async fn room_entries(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        events: bool,
    ) -> Result<Page, StoreError> {
        self.inner.room_entries(room, before, limit, events).await
    }

    async fn dm_history(
        &self,
        a_key: &str,
        b_key: &str,
        before: Option<u64>,
        after: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        self.inner
            .dm_history(a_key, b_key, before, after, limit)
            .await
    }

    async fn queued_dms(
        &self,
        user_key: &str,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<Arc<MessageRecord>>, StoreError> {
        self.inner.queued_dms(user_key, after, upto, limit).await
    }

    async fn account(&self, key: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.inner.account(key).await
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.inner.accounts().await
    }

    async fn create_account(&self, account: &AccountRecord) -> Result<Committed, StoreError> {
        match self.refusal() {
            Some(refused) => Ok(refused),
            None => self.inner.create_account(account).await,
        }
    }

    async fn update_account(
        &self,
        key: &str,
        change: AccountChange,
    ) -> Result<Committed, StoreError> {
        match self.refusal() {
            Some(refused) => Ok(refused),
            None => self.inner.update_account(key, change).await,
        }
    }

    async fn delete_account(&self, key: &str) -> Result<Committed, StoreError> {
        match self.refusal() {
            Some(refused) => Ok(refused),
            None => self.inner.delete_account(key).await,
        }
    }

    async fn put_setting(
        &self,
        scope: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<Committed, StoreError> {
        match self.refusal() {
            Some(refused) => Ok(refused),
            None => self.inner.put_setting(scope, field, value).await,
        }
    }

    async fn settings(&self) -> Result<Vec<super::Setting>, StoreError> {
        self.inner.settings().await
    }

    async fn settings_version(&self) -> Result<u64, StoreError> {
        self.inner.settings_version().await
    }

    async fn user_sessions(&self, key: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.user_sessions(key).await
    }

    async fn put_token(&self, token: &super::TokenRecord) -> Result<Committed, StoreError> {
        self.inner.put_token(token).await
    }

    async fn token(&self, hash: &str) -> Result<Option<super::TokenRecord>, StoreError> {
        self.inner.token(hash).await
    }

    async fn tokens(&self, key: &str) -> Result<Vec<super::TokenRecord>, StoreError> {
        self.inner.tokens(key).await
    }

    async fn delete_token(&self, key: &str, id: &str) -> Result<Committed, StoreError> {
        self.inner.delete_token(key, id).await
    }

    async fn token_used(&self, hash: &str, at_ms: u64) -> Result<Committed, StoreError> {
        self.inner.token_used(hash, at_ms).await
    }

    async fn markers(
        &self,
        key: &str,
    ) -> Result<std::collections::BTreeMap<super::MarkerAt, u64>, StoreError> {
        self.inner.markers(key).await
    }

    async fn put_marker(
        &self,
        key: &str,
        at: &super::MarkerAt,
        id: u64,
    ) -> Result<u64, StoreError> {
        self.inner.put_marker(key, at, id).await
    }

    async fn conversations(
        &self,
        key: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<super::ConversationRecord>, StoreError> {
        self.inner.conversations(key, after, limit).await
    }

    async fn unread(
        &self,
        key: &str,
        asked: &[(super::MarkerAt, u64)],
        cap: u64,
    ) -> Result<Vec<u64>, StoreError> {
        self.inner.unread(key, asked, cap).await
    }

    async fn prune(&self, older_than_ts: u64) -> Result<u64, StoreError> {
        self.inner.prune(older_than_ts).await
    }

    fn healthy(&self) -> bool {
        !self.failing.load(Ordering::SeqCst) && self.inner.healthy()
    }

    async fn close(&self) {
        self.inner.close().await
    }
}
