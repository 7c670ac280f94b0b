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
        let mut replay = if adm.recovered {
            self.state.replay(&adm.key, ctx.offset.as_deref())
        } else if let Some(seen) = adm.queued_after {
            self.state.queued(&adm.key, seen)
        } else {
            crate::state::Replay {
                upto: self.state.session_since(&adm.key),
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
                    tracing::warn!("replay from the store: {e}");
                    replay.truncated = true;
                }
            }
        }
        let session = SessionInfo {
            sid: s.id.to_string(),
            username: adm.username.clone(),
            session: adm.token.clone(),
            recovered: adm.recovered,
            rooms: adm.rooms.clone(),
            missed: replay.messages.len() as u64,
            truncated: replay.truncated,
        };
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
            let guard = self.delivery.hold().await;
            let (more, head) = self.state.catch_up(&adm.key, after);
            if more.len() <= CATCH_UP_UNDER_LOCK {
                for m in &more {
                    if s.emit(m.event(), &**m).is_err() {
                        self.fell_behind(s, &adm.key);
                        return;
                    }
                }
                // The rooms as they are now, not as they were at admission.
                let current = self.state.rooms_of(&adm.key);
                let mut rooms = Vec::with_capacity(current.len() + 2);
                rooms.push(s.id.to_string());
                rooms.push(EVERYONE.to_owned());
                rooms.extend(current);
                s.join(rooms);
                self.state.set_ready(&adm.key, s.id);
                drop(guard);
                return;
            }
            drop(guard);
            for m in &more {
                if !emit_paced(s, m.event(), &**m).await {
                    self.fell_behind(s, &adm.key);
                    return;
                }
            }
            after = head;
        }
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
        self.state.set_lagging(key, s.id);
        // No more live messages: a message delivered after the one it
        // missed would move its client's offset past the gap.
        s.leave_all();
        tracing::info!(user = %key, "socket fell behind: ending its transport so it resumes");
    }
}
