//! `history`: pages of a room's messages or of a DM conversation, from
//! this process's recent messages and the store.

use super::*;

/// A stored message as the contract's history entry (room messages and
/// DMs; the feeds have no history). A room event is one only when `events`
/// was asked for.
pub(super) fn history_message(m: &MessageRecord, events: bool) -> Option<HistoryMessage> {
    if m.note {
        return events
            .then(|| serde_json::to_value(m).ok())
            .flatten()
            .and_then(|v| serde_json::from_value(v).ok())
            .map(HistoryMessage::Event);
    }
    if !m.is_message() {
        return None;
    }
    let id = m.id.to_string();
    let action = m.action.then_some(true);
    // (v3) As the message stands now.
    let reply_to = m.reply_to.map(|r| r.to_string());
    let edited = m.edited();
    let deleted = m.deleted().then_some(true);
    let reactions = reactions(m);
    match &m.dest {
        Destination::Room(room) => Some(HistoryMessage::Room(chat_shared::RoomMessage {
            id,
            ts: m.ts,
            from: m.from.clone(),
            room: room.clone(),
            text: m.text.clone(),
            replayed: None,
            action,
            reply_to,
            edited,
            deleted,
            reactions,
        })),
        Destination::Dm { to } => Some(HistoryMessage::Dm(chat_shared::DmMessage {
            id,
            ts: m.ts,
            from: m.from.clone(),
            to: to.clone(),
            text: m.text.clone(),
            replayed: None,
            action,
            reply_to,
            edited,
            deleted,
            reactions,
        })),
        Destination::Global | Destination::Broadcast => None,
    }
}

/// (v3) A message's reactions as the contract shows them: a count each,
/// and at most [`chat_shared::REACTION_USERS_MAX`] names.
fn reactions(m: &MessageRecord) -> Vec<chat_shared::Reaction> {
    m.reactions()
        .iter()
        .map(|r| chat_shared::Reaction {
            emoji: r.emoji.clone(),
            count: r.users.len() as u64,
            users: r
                .users
                .iter()
                .take(chat_shared::REACTION_USERS_MAX)
                .cloned()
                .collect(),
        })
        .collect()
}

impl ChatService {
    /// A page of a room's history, oldest first, and whether older
    /// messages exist: this process's newest ones from memory (they may not
    /// be committed yet), the rest from the store.
    pub(super) async fn room_page(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
        events: bool,
    ) -> (Vec<Arc<MessageRecord>>, bool) {
        let mut recent: Vec<Arc<MessageRecord>> = self
            .state
            .room_recent(room)
            .into_iter()
            .filter(|m| (m.is_message() || (events && m.note)) && before.is_none_or(|b| m.id < b))
            .collect();
        if recent.len() > limit {
            recent.drain(..recent.len() - limit);
            return (recent, true);
        }
        let older_than = recent.first().map(|m| m.id).or(before);
        let need = limit - recent.len();
        self.metrics.history_read();
        match self
            .store
            .room_entries(room, older_than, need.max(1), events)
            .await
        {
            Ok((mut older, more)) => {
                let more = more || older.len() > need;
                if older.len() > need {
                    older.drain(..older.len() - need);
                }
                older.append(&mut recent);
                (older, more)
            }
            Err(e) => {
                self.metrics
                    .store_error(crate::ops::metrics::StoreOp::History);
                tracing::warn!("room history from the store: {e}");
                (recent, false)
            }
        }
    }

    pub(super) async fn history(
        &self,
        ctx: &dyn Acting,
        h: HistoryRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::HISTORY;
        let limit = h.effective_limit() as usize;
        let before = match h.before.as_deref() {
            None => None,
            Some(b) => Some(b.parse::<u64>().map_err(|_| {
                ChatError::new(
                    ErrorCode::InvalidPayload,
                    "before must be the id of a message",
                    event,
                )
            })?),
        };
        let (messages, more) = match h.target {
            HistoryTarget::Room(raw) => {
                let room = self.member_room(ctx, event, &raw)?;
                self.room_page(&room, before, limit, h.events).await
            }
            HistoryTarget::With(with) => {
                if !is_valid_username(&with) {
                    return Err(ChatError::new(
                        ErrorCode::UserNotFound,
                        format!("no user {with}"),
                        event,
                    )
                    .with("with", with));
                }
                // An account reads all of its DMs, a guest only those of
                // its current session.
                let since = self.state.dm_floor(&ctx.key());
                let other = chat_shared::username_key(&with);
                self.metrics.history_read();
                self.store
                    .dm_history(&ctx.key(), &other, before, since, limit)
                    .await
                    .map_err(|e| {
                        self.metrics
                            .store_error(crate::ops::metrics::StoreOp::History);
                        tracing::warn!("dm history: {e}");
                        ChatError::new(ErrorCode::Unavailable, "history is unavailable", event)
                    })?
            }
        };
        Ok(Reply::History(HistoryAck {
            messages: messages
                .iter()
                .filter_map(|m| history_message(m, h.events))
                .collect(),
            more,
        }))
    }
}
