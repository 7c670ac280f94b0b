//! (v3) Messages that change after they were sent: `replyTo` on the four
//! message requests, `message:edit`, `message:delete` and
//! `message:react`.
//!
//! A change is numbered in the message sequence and travels exactly like
//! a message ([`ChatService::deliver`]): stored (the store folds it into
//! its target in the same write), kept for replay (the node's log and
//! room history fold it too), emitted as `message:update` to the
//! target's audience, acked `{ok:true, id, ts}` once committed. Who may
//! change what is decided here, in [`ChatService::changeable`] and the
//! three handlers, on the message as it stands now.

use super::messaging::Draft;
use super::moderation::forbidden;
use super::*;
use crate::store::{Change, ChangeOp};
use chat_shared::{
    MessageDeleteRequest, MessageEditRequest, MessageReactRequest, is_valid_emoji, username_key,
};

/// `message_not_found` for `id`: no message the sender can see has it.
fn not_found(event: &str, id: &str) -> ChatError {
    ChatError::new(
        ErrorCode::MessageNotFound,
        format!("no message {id} that you can see"),
        event,
    )
    .with("id", id)
}

/// Whether an edit at `now` (ms) of a message sent at `sent` (ms) is
/// inside `window`. A zero window allows none.
pub(super) fn within_edit_window(sent: u64, now: u64, window: Duration) -> bool {
    let window = window.as_millis().min(u128::from(u64::MAX)) as u64;
    window > 0 && now.saturating_sub(sent) <= window
}

/// A change's audience: its target's, where a broadcast's changes reach
/// everyone (its sender too) and a DM's the side that did not make it.
fn audience(target: &MessageRecord, by: &Me) -> Destination {
    match &target.dest {
        Destination::Broadcast => Destination::Global,
        Destination::Dm { to } if username_key(to) == by.key => Destination::Dm {
            to: target.from.clone(),
        },
        other => other.clone(),
    }
}

impl ChatService {
    /// The message `id` as it stands now: from this node's log when it
    /// holds it, else from the store.
    async fn message_now(
        &self,
        event: &str,
        id: u64,
    ) -> Result<Option<Arc<MessageRecord>>, ChatError> {
        if let Some(m) = self.state.logged(id) {
            return Ok(Some(m));
        }
        self.store.message(id).await.map_err(|e| {
            tracing::warn!("store: {e}");
            unavailable(event, "read messages")
        })
    }

    /// The message `raw` names, if the sender can see it: a room message
    /// of a room it is in, a DM it sent or received (a guest: in its
    /// current session), any global or broadcast message. Room events,
    /// changes and deleted messages are not found.
    pub(super) async fn changeable(
        &self,
        ctx: &dyn Acting,
        event: &str,
        raw: &str,
    ) -> Result<Arc<MessageRecord>, ChatError> {
        let Some(id) = raw.parse::<u64>().ok().filter(|&id| id > 0) else {
            return Err(not_found(event, raw));
        };
        let Some(m) = self.message_now(event, id).await? else {
            return Err(not_found(event, raw));
        };
        if !m.is_message() || m.deleted() {
            return Err(not_found(event, raw));
        }
        let me = ctx.key();
        let visible = match &m.dest {
            Destination::Room(room) => ctx.is_member(&self.state, room),
            Destination::Dm { to } => {
                // An account sees all its DMs; a guest those of its session.
                let floor = if ctx.is_account(&self.state) {
                    0
                } else {
                    self.state.dm_floor(&me)
                };
                (username_key(to) == me || username_key(&m.from) == me) && m.id > floor
            }
            Destination::Global | Destination::Broadcast => true,
        };
        if visible {
            Ok(m)
        } else {
            Err(not_found(event, raw))
        }
    }

    /// `replyTo` of a message to `dest`: a message in the same room or DM
    /// conversation, or, for a global or broadcast message, a global or
    /// broadcast one.
    pub(super) async fn reply_target(
        &self,
        ctx: &dyn Acting,
        event: &str,
        raw: Option<&str>,
        dest: &Destination,
    ) -> Result<Option<u64>, ChatError> {
        let Some(raw) = raw else { return Ok(None) };
        let m = self.changeable(ctx, event, raw).await?;
        let same = match (&m.dest, dest) {
            (Destination::Room(a), Destination::Room(b)) => a == b,
            (Destination::Dm { to }, Destination::Dm { to: peer }) => {
                let pair = |a: &str, b: &str| {
                    let (a, b) = (username_key(a), username_key(b));
                    if a <= b { (a, b) } else { (b, a) }
                };
                pair(&m.from, to) == pair(&ctx.username(), peer)
            }
            (
                Destination::Global | Destination::Broadcast,
                Destination::Global | Destination::Broadcast,
            ) => true,
            _ => false,
        };
        if same {
            Ok(Some(m.id))
        } else {
            Err(not_found(event, raw).with("replyTo", raw))
        }
    }

    /// Whether the sender wrote `m`: the same account, or the same guest
    /// session (a guest's name may have been someone else's before).
    fn is_author(&self, ctx: &SocketCtx, m: &MessageRecord) -> bool {
        let me = ctx.me();
        username_key(&m.from) == me.key
            && (me.account || m.id > self.state.session_since(&me.key, &ctx.admission.token))
    }

    /// Numbers, stores and delivers a change of `target`.
    async fn post_change(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        event: &'static str,
        target: &MessageRecord,
        op: ChangeOp,
        text: &str,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<messaging::Sending, ChatError> {
        let draft = Draft {
            change: Some(Change {
                target: target.id,
                op,
            }),
            ..Draft::message(text, audience(target, &ctx.me()), false)
        };
        // No origin: the sender's own socket hears of the change too.
        self.deliver(ctx, event, draft, None, turn).await
    }

    pub(super) async fn edit(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        m: MessageEditRequest,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<messaging::Sending, ChatError> {
        let event = names::MESSAGE_EDIT;
        let target = self.changeable(ctx, event, &m.id).await?;
        if !self.is_author(ctx, &target) {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                "only its author can edit a message",
                event,
            )
            .with("need", "author")
            .with("id", m.id));
        }
        let room = match &target.dest {
            Destination::Room(r) => Some(r.as_str()),
            _ => None,
        };
        self.check_muted(ctx, event, room)?;
        let window = self.state.config.edit_window;
        if !within_edit_window(target.ts, crate::clock::now_ms(), window) {
            return Err(ChatError::new(
                ErrorCode::EditWindowPassed,
                format!(
                    "a message can only be edited within {} of sending",
                    humantime::format_duration(window)
                ),
                event,
            )
            .with("id", m.id)
            .with("windowMs", window.as_millis() as u64));
        }
        let text = self.text(ctx, event, &m.text)?;
        self.post_change(ctx, event, &target, ChangeOp::Edit, text, turn)
            .await
    }

    pub(super) async fn delete(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        m: MessageDeleteRequest,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<messaging::Sending, ChatError> {
        let event = names::MESSAGE_DELETE;
        let target = self.changeable(ctx, event, &m.id).await?;
        if !self.is_author(ctx, &target) {
            // Others by their rank: ops and owners in their room,
            // moderators and admins anywhere but in a DM.
            let me = ctx.me();
            let p = self.moderation.cached();
            let (room, need) = match &target.dest {
                Destination::Room(r) => (Some(r.as_str()), 1),
                Destination::Global | Destination::Broadcast => (None, 3),
                Destination::Dm { .. } => {
                    return Err(ChatError::new(
                        ErrorCode::Forbidden,
                        "only its author can delete a direct message",
                        event,
                    )
                    .with("need", "author")
                    .with("id", m.id));
                }
            };
            if p.rank(&me.key, me.account, room) < need {
                return Err(forbidden(
                    event,
                    chat_shared::rank_name(need),
                    room,
                    "delete others' messages",
                )
                .with("id", m.id));
            }
        }
        take_token(ctx.bucket.as_ref(), event, "too many messages: slow down")?;
        self.post_change(ctx, event, &target, ChangeOp::Delete, "", turn)
            .await
    }

    pub(super) async fn react(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        m: MessageReactRequest,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<messaging::Sending, ChatError> {
        let event = names::MESSAGE_REACT;
        if !is_valid_emoji(&m.emoji) {
            return Err(ChatError::new(
                ErrorCode::InvalidPayload,
                format!(
                    "a reaction is 1-{} characters with no spaces or control characters",
                    chat_shared::EMOJI_MAX
                ),
                event,
            )
            .with("emoji", m.emoji));
        }
        let target = self.changeable(ctx, event, &m.id).await?;
        take_token(ctx.bucket.as_ref(), event, "too many messages: slow down")?;
        let op = ChangeOp::React {
            emoji: m.emoji,
            on: m.on,
        };
        self.post_change(ctx, event, &target, op, "", turn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edit_window_counts_from_sending() {
        let w = Duration::from_secs(900);
        assert!(within_edit_window(1_000, 1_000, w));
        assert!(within_edit_window(1_000, 901_000, w));
        assert!(!within_edit_window(1_000, 901_001, w));
        // A clock that went back still allows the edit.
        assert!(within_edit_window(5_000, 1_000, w));
        assert!(!within_edit_window(1_000, 1_000, Duration::ZERO));
    }

    #[test]
    fn a_change_reaches_its_targets_audience() {
        let me = |name: &str| Me {
            key: name.to_lowercase(),
            username: name.into(),
            account: true,
        };
        let room = MessageRecord::new(1, 1, "alice", Destination::Room("#a".into()), "x");
        assert_eq!(audience(&room, &me("Bob")), Destination::Room("#a".into()));
        let dm = MessageRecord::new(2, 1, "Alice", Destination::Dm { to: "Bob".into() }, "x");
        // Bob reacts: Alice hears of it; Alice edits: Bob does.
        assert_eq!(
            audience(&dm, &me("Bob")),
            Destination::Dm { to: "Alice".into() }
        );
        assert_eq!(
            audience(&dm, &me("Alice")),
            Destination::Dm { to: "Bob".into() }
        );
        let b = MessageRecord::new(3, 1, "alice", Destination::Broadcast, "x");
        assert_eq!(audience(&b, &me("alice")), Destination::Global);
    }
}
