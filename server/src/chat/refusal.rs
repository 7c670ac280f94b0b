//! One place that turns a refusal into what the client sees:
//! [`ChatService::refuse`] sends `chat:error` and the same object in the
//! ack; the refusals more than one handler gives are built here, with the
//! one [`RETRY_AFTER`] they tell the client to wait.

use super::*;

/// How long a client is told to wait (`retryAfterMs`) after a refusal
/// for a passing trouble: the store cannot take a write, accounts cannot
/// be looked up, every password check is busy.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// `retryAfterMs` for `wait`: whole milliseconds, at least one.
fn retry_after_ms(wait: Duration) -> u64 {
    wait.as_millis().max(1) as u64
}

/// `unavailable`: the server cannot do `what` right now (say, "store
/// messages"); the client may try again after [`RETRY_AFTER`].
pub(super) fn unavailable(event: &str, what: &str) -> ChatError {
    ChatError::new(
        ErrorCode::Unavailable,
        format!("the server cannot {what} right now: try again"),
        event,
    )
    .with("retryAfterMs", retry_after_ms(RETRY_AFTER))
}

/// A message write the store failed: logged, and refused as unavailable.
pub(super) fn store_failed(event: &str, e: crate::store::StoreError) -> ChatError {
    tracing::warn!("store: {e}");
    unavailable(event, "store messages")
}

/// `too_many_rooms`: a join beyond `--max-rooms-per-user` (`limit`).
pub(super) fn too_many_rooms(event: &str, limit: usize, room: &str) -> ChatError {
    ChatError::new(
        ErrorCode::TooManyRooms,
        format!("at most {limit} rooms at once"),
        event,
    )
    .with("limit", limit)
    .with("room", room)
}

/// `rate_limited`, with how long to wait.
pub(super) fn rate_limited(event: &str, message: &str, wait: Duration) -> ChatError {
    ChatError::new(ErrorCode::RateLimited, message, event)
        .with("retryAfterMs", retry_after_ms(wait))
}

/// Takes one token from `bucket` (no bucket: no limit), or refuses with
/// `rate_limited` and how long to wait.
pub(super) fn take_token(
    bucket: Option<&Mutex<TokenBucket>>,
    event: &str,
    message: &str,
) -> Result<(), ChatError> {
    let Some(bucket) = bucket else { return Ok(()) };
    let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
    b.try_take()
        .map_err(|wait| rate_limited(event, message, wait))
}

impl ChatService {
    /// `chat:error` to the sender, the same object in the ack. The error
    /// waits (a bounded time) for room in the sender's queue: a client that
    /// floods requests gets every refusal, paced by how fast it reads.
    pub(super) async fn refuse(
        &self,
        s: &SocketRef,
        ctx: &SocketCtx,
        ack: AckSender,
        err: ChatError,
    ) {
        self.metrics.error(err.code);
        tracing::debug!(user = %ctx.username(), code = %err.code, "refused: {}", err.message);
        if !emit_paced(s, names::CHAT_ERROR, &err).await {
            self.fell_behind(s, &ctx.key());
            return;
        }
        self.answer(s, ctx, ack, &AckErr::new(&err));
        let mut ev = admin_event(AdminEventType::Error);
        ev.user = Some(ctx.username().clone());
        ev.code = Some(err.code);
        self.admin.send(ev);
    }
}
