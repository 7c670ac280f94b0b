//! Resuming a session: `session`, the replay of what the client missed
//! (from this process's log and the store), the catch-up and the join to
//! the rooms as they are now; and ending the transport of a socket that
//! fell behind, so that its client resumes instead of missing messages.

use super::*;

/// A resumed socket's catch-up is finished under the delivery lock once
/// this few messages are left (the rest are sent with the lock released).
pub(super) const CATCH_UP_UNDER_LOCK: usize = 64;

impl ChatService {
    /// Sends `session`, then every missed message marked `replayed` (for
    /// a resumed session what it missed, for a fresh account session the
    /// DMs kept for it), then whatever arrived meanwhile, and only then
    /// joins the socket to its rooms, under the delivery lock: each message
    /// reaches the client once, replayed or live, and in order.
    pub(super) async fn restore(&self, s: &SocketRef, ctx: &SocketCtx) {
        let adm = &ctx.admission;
        // (v3) Rooms the user was removed from while away: it is out of
        // them from now on, and hears of them up to the event that
        // removed it, and nothing after.
        let removed = self.removals(&adm.key);
        let mut replay = if adm.recovered {
            self.state
                .replay(&adm.key, &adm.token, ctx.offset.as_deref())
        } else if let Some(seen) = adm.queued_after {
            self.state.queued(&adm.key, &adm.token, seen)
        } else {
            crate::live::Replay {
                upto: self.state.session_since(&adm.key, &adm.token),
                ..Default::default()
            }
        };
        if let Some((after, upto)) = replay.stored {
            // Older than this process's log: read from the store. At most
            // `--replay-buffer` messages in all, the newest.
            let limit = self
                .state
                .config
                .replay_buffer
                .saturating_sub(replay.messages.len());
            self.metrics.replay_read();
            let older = if adm.recovered {
                self.store
                    .replay(&adm.key, &replay.rooms, after, upto, limit + 1)
                    .await
            } else {
                self.store
                    .queued_dms(&adm.key, after, upto, limit + 1)
                    .await
            };
            match older {
                Ok(mut older) => {
                    if older.len() > limit {
                        older.drain(..older.len() - limit);
                        replay.truncated = true;
                    }
                    older.append(&mut replay.messages);
                    replay.messages = older;
                }
                Err(e) => {
                    self.metrics
                        .store_error(crate::ops::metrics::StoreOp::Replay);
                    tracing::warn!("replay from the store: {e}");
                    replay.truncated = true;
                }
            }
        }
        if !removed.is_empty() {
            // Out of them before the catch-up, which reads the rooms as
            // they are now.
            for (room, _) in &removed {
                let _ = self.state.leave(&adm.key, room);
            }
            replay.messages.retain(|m| match &m.dest {
                Destination::Room(r) => removed
                    .iter()
                    .all(|(gone, upto)| gone != r || m.id <= *upto),
                _ => true,
            });
        }
        let policy = self.moderation.cached();
        let rooms: Vec<String> = adm
            .rooms
            .iter()
            .filter(|r| removed.iter().all(|(gone, _)| gone != *r))
            .cloned()
            .collect();
        let markers = self.markers_for(adm, &rooms).await;
        let session = SessionInfo {
            sid: s.id.to_string(),
            username: adm.username.clone(),
            session: adm.token.clone(),
            recovered: adm.recovered,
            rooms,
            missed: replay.messages.len() as u64,
            truncated: replay.truncated,
            role: Some(policy.role(&adm.key, adm.account)),
            blocked: policy.blocked_by(&adm.key),
            markers,
        };
        self.metrics.connected(adm.recovered, replay.truncated);
        if !emit_paced(s, names::SESSION, &session).await {
            self.fell_behind(s, &adm.key);
            return;
        }
        for m in &replay.messages {
            if !emit_paced(s, m.event(), &Replayed(m)).await {
                self.fell_behind(s, &adm.key);
                return;
            }
        }
        let mut after = replay.upto;
        loop {
            let more = match self.finish_catch_up(s, &adm.key, after) {
                CatchUp::Done | CatchUp::FellBehind => return,
                CatchUp::More(more, head) => {
                    after = head;
                    more
                }
            };
            for m in &more {
                if !emit_paced(s, m.event(), &**m).await {
                    self.fell_behind(s, &adm.key);
                    return;
                }
            }
        }
    }

    /// Under the delivery lock: when few messages arrived since `after`,
    /// sends them and joins the socket to its rooms as they are now (not
    /// as they were at admission), after which messages reach it live;
    /// otherwise hands them back to be sent with the lock released.
    fn finish_catch_up(&self, s: &SocketRef, key: &str, after: u64) -> CatchUp {
        let delivering = self.delivery.hold();
        let (more, head) = self.state.catch_up(&delivering, key, after);
        if more.len() > CATCH_UP_UNDER_LOCK {
            return CatchUp::More(more, head);
        }
        for m in &more {
            if s.emit(m.event(), &**m).is_err() {
                self.fell_behind(s, key);
                return CatchUp::FellBehind;
            }
        }
        let current = self.state.rooms_of(key);
        let mut rooms = Vec::with_capacity(current.len() + 2);
        rooms.push(s.id.to_string());
        rooms.push(EVERYONE.to_owned());
        rooms.extend(current);
        s.join(rooms);
        self.state.set_ready(&delivering, key, s.id);
        CatchUp::Done
    }

    /// A message (or an answer) could not be queued for `s`: rather than
    /// let its client miss it without knowing, stop delivering to the
    /// socket and end its transport as an unplanned disconnect. Its session
    /// and window stay, so the client resumes from its offset and gets the
    /// rest, in order, once.
    pub(super) fn fell_behind(&self, s: &SocketRef, key: &str) {
        if !self.transports.end(s) {
            return;
        }
        self.metrics.fell_behind();
        self.state.set_lagging(key, s.id);
        // No more live messages: a message delivered after the one it
        // missed would move its client's offset past the gap.
        s.leave_all();
        tracing::info!(user = %key, "socket fell behind: ending its transport so it resumes");
    }
}

/// What one step of a resumed socket's catch-up left to do.
enum CatchUp {
    /// Caught up and joined to its rooms.
    Done,
    /// The socket fell behind and was let go.
    FellBehind,
    /// These arrived meanwhile (up to the head given): send them, then try
    /// again.
    More(Vec<Arc<MessageRecord>>, u64),
}
