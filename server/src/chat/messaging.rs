//! The four message kinds, and how any message travels, in the delivery
//! order ([`DeliveryOrder`]): it is numbered and queued for the store in
//! one order ([`ChatService::deliver`], under [`DeliveryOrder::number`]);
//! once its write has committed it is kept for replay and emitted under
//! the delivery lock ([`ChatService::deliver_committed`]), then its ack
//! goes out ([`ChatService::ack_on_commit`]). The sender's
//! turn is handed on as soon as the message is queued (see
//! [`super::sequencer`]).

use super::*;
use crate::cluster::Cluster;
use crate::live::Target;
use chat_shared::username_key;

/// A message before it is numbered: what the sender asked for.
pub(super) struct Draft<'a> {
    pub(super) text: &'a str,
    pub(super) dest: Destination,
    pub(super) action: bool,
    /// (v3) A room event: `text` holds its fields.
    pub(super) note: bool,
    /// (v3) The message it answers (checked).
    pub(super) reply_to: Option<u64>,
    /// (v3) A change to another message (checked).
    pub(super) change: Option<crate::store::Change>,
}

impl<'a> Draft<'a> {
    /// A plain message of `text` to `dest`.
    pub(super) fn message(text: &'a str, dest: Destination, action: bool) -> Self {
        Draft {
            text,
            dest,
            action,
            note: false,
            reply_to: None,
            change: None,
        }
    }
}

impl ChatService {
    /// Numbers a message and queues its write in the numbering order,
    /// and arranges for it to be delivered once the write has committed
    /// (so a message refused `unavailable` reached nobody). The sender's
    /// ack waits for the same commit (see [`Sending`]). A store that cannot
    /// take writes refuses the message before it is numbered.
    pub(super) async fn deliver(
        self: &Arc<Self>,
        ctx: &dyn Acting,
        event: &'static str,
        draft: Draft<'_>,
        s: Option<&SocketRef>,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<Sending, ChatError> {
        let Draft {
            text,
            dest,
            action,
            note,
            reply_to,
            change,
        } = draft;
        let from = &ctx.username();
        let record = MessageRecord {
            action,
            note,
            reply_to,
            change: change.map(Box::new),
            ..MessageRecord::new(0, 0, from, dest, text)
        };
        let sending = |msg, committed, queued_at| Sending {
            msg,
            committed,
            queued_at,
            event,
            bytes: text.len(),
            held: false,
        };
        // Refused before anyone gets it; not logged each time (the failed
        // write that made the store unhealthy was).
        if !self.store.healthy() {
            return Err(unavailable(event, "store messages"));
        }
        if let Some(cluster) = &self.cluster {
            // Several nodes: Redis numbers the message (one order for the
            // cluster) and every node, this one included, delivers it
            // from the feed. The ack waits for both.
            let origin = s.and_then(|_| ctx.origin());
            let msg = cluster
                .redis
                .append_from(origin, record)
                .await
                .map_err(|e| store_failed(event, e))?;
            turn.take();
            cluster.wait_delivered(msg.id).await;
            return Ok(sending(msg, crate::store::Committed::ready(Ok(())), None));
        }
        let numbering = self.delivery.number().await;
        let msg = self.state.number(&numbering, record);
        let queued = std::time::Instant::now();
        let committed = self.store.append(Arc::clone(&msg)).await.map(|c| {
            // Registered in the numbering order: commits run these in id
            // order.
            let (svc, msg, sender) = (Arc::clone(self), Arc::clone(&msg), s.cloned());
            c.on_success(move || svc.deliver_committed(&msg, sender.as_ref().map(|s| s.id)))
        });
        drop(numbering);
        // Numbered and queued in order: the sender's next event may go
        // ahead while this one waits for the disk.
        turn.take();
        match committed {
            Ok(c) => Ok(sending(msg, c, Some(queued))),
            Err(e) => {
                self.metrics.store_write(queued, &Err(e.clone()));
                Err(store_failed(event, e))
            }
        }
    }

    /// Keeps a committed message for replay and emits it to its
    /// recipients on this node, under the delivery lock. Messages come
    /// here in id order: this node's from their commits, a cluster's from
    /// its feed.
    pub(super) fn deliver_committed(&self, msg: &Arc<MessageRecord>, origin: Option<Sid>) {
        let delivering = self.delivery.hold();
        self.state.record_numbered(&delivering, msg);
        self.emit_live(&delivering, msg, origin);
        if msg.note {
            self.after_note(msg);
        }
    }

    /// (v3) Numbers and stores a room event like a message, and waits for
    /// its commit: by then it has been delivered, in the log's order.
    pub(super) async fn post_note(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        event: &'static str,
        room: &str,
        note: &chat_shared::RoomEvent,
    ) -> Result<Arc<MessageRecord>, ChatError> {
        let text = MessageRecord::note_text(note);
        let draft = Draft {
            note: true,
            ..Draft::message(&text, Destination::Room(room.to_owned()), false)
        };
        let sending = self.deliver(ctx, event, draft, None, &mut None).await?;
        sending
            .committed
            .await
            .map_err(|e| store_failed(event, e))?;
        Ok(sending.msg)
    }

    /// Sends a message's ack once its write has committed (and the
    /// message was delivered): from whichever task resolves the commit, so
    /// no task waits for the disk (the handler has returned by then). A
    /// failed commit gets `unavailable` (`chat:error` and the ack) instead.
    pub(super) fn ack_on_commit(
        self: &Arc<Self>,
        s: &SocketRef,
        ctx: &Arc<SocketCtx>,
        ack: AckSender,
        sending: Sending,
    ) {
        let (svc, s, ctx) = (Arc::clone(self), s.clone(), Arc::clone(ctx));
        let Sending {
            msg,
            committed,
            queued_at,
            event,
            bytes,
            held,
        } = sending;
        // The failure path waits for room in the sender's queue: it runs
        // as a task of this runtime, whatever thread resolves the commit.
        let runtime = tokio::runtime::Handle::current();
        committed.then(move |result| {
            if let Some(queued) = queued_at {
                svc.metrics.store_write(queued, &result);
            }
            match result {
                Ok(()) => {
                    svc.metrics.message(msg.kind());
                    svc.message_event(ctx.as_ref(), &msg, bytes);
                    let reply = Reply::Sent(SentAck {
                        id: msg.id.to_string(),
                        ts: msg.ts,
                        queued: held.then_some(true),
                    });
                    svc.answer(&s, &ctx, ack, &reply);
                }
                Err(e) => {
                    runtime.spawn(async move {
                        svc.refuse(&s, &ctx, ack, store_failed(event, e)).await;
                    });
                }
            }
        });
    }

    /// Emits a numbered message to its recipients on this node. A
    /// broadcast or DM skips `origin`, the socket that sent it (here), and
    /// (v3) reaches the sender's other sessions.
    pub(super) fn emit_live(&self, _: &Delivering<'_>, msg: &MessageRecord, origin: Option<Sid>) {
        let Some(ns) = self.ns() else { return };
        let recipients = match &msg.dest {
            Destination::Room(room) => ns.to(room.clone()).sockets(),
            // (v3) Every session of the recipient, and every other
            // session of the sender.
            Destination::Dm { to } => {
                let mut sids = self.state.target(to).map(|t| t.sids).unwrap_or_default();
                if let Some(me) = self.state.target(&msg.from) {
                    sids.extend(me.sids.into_iter().filter(|&sid| Some(sid) != origin));
                }
                sids.into_iter()
                    .filter_map(|sid| ns.get_socket(sid))
                    .collect()
            }
            Destination::Global => ns.to(EVERYONE).sockets(),
            Destination::Broadcast => {
                let mut all = ns.to(EVERYONE).sockets();
                if let Some(origin) = origin {
                    all.retain(|r| r.id != origin);
                }
                all
            }
        };
        self.emit_each(&recipients, msg.event(), msg);
    }

    /// Emits one message to each recipient, encoding it once. A recipient
    /// whose queue is full [falls behind](Self::fell_behind) rather than
    /// silently missing it, which is why this goes socket by socket instead
    /// of through a room broadcast (whose errors do not say whose queue
    /// was full).
    pub(super) fn emit_each<T: Serialize + ?Sized>(
        &self,
        recipients: &[SocketRef],
        event: &str,
        payload: &T,
    ) {
        if recipients.is_empty() {
            return;
        }
        let raw = match serde_json::value::to_raw_value(payload) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::error!("cannot encode a {event}: {e}");
                return;
            }
        };
        self.metrics.delivered(recipients.len());
        for r in recipients {
            if let Err(socketioxide::SendError::Socket(SocketError::InternalChannelFull)) =
                r.emit(event, &raw)
                && let Some(ctx) = r.extensions.get::<Arc<SocketCtx>>()
            {
                self.metrics.dropped();
                self.fell_behind(r, &ctx.key());
            }
        }
    }

    pub(super) fn message_event(&self, ctx: &dyn Acting, msg: &MessageRecord, bytes: usize) {
        if !self.admin.active() {
            return;
        }
        let mut ev = admin_event(AdminEventType::Message);
        ev.user = Some(ctx.username().clone());
        ev.kind = Some(msg.kind());
        ev.bytes = Some(bytes as u64);
        match &msg.dest {
            Destination::Room(room) => ev.room = Some(room.clone()),
            Destination::Dm { to } => ev.to = Some(to.clone()),
            _ => {}
        }
        self.admin.send(ev);
    }

    pub(super) async fn room_message(
        self: &Arc<Self>,
        ctx: &dyn Acting,
        m: RoomMessageRequest,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<Sending, ChatError> {
        let event = names::ROOM_MESSAGE;
        let room = self.member_room(ctx, event, &m.room)?;
        self.check_muted(ctx, event, Some(&room))?;
        let dest = Destination::Room(room);
        let reply_to = self
            .reply_target(ctx, event, m.reply_to.as_deref(), &dest)
            .await?;
        let text = self.text(ctx, event, &m.text)?;
        let draft = Draft {
            reply_to,
            ..Draft::message(text, dest, m.action)
        };
        self.deliver(ctx, event, draft, None, turn).await
    }

    /// A user who is online or inside a recovery window; with `offline`,
    /// also an account with no session (its DMs are kept for it).
    pub(super) async fn user_target(
        &self,
        ctx: &dyn Acting,
        event: &str,
        to: &str,
        offline: bool,
    ) -> Result<crate::live::Target, ChatError> {
        let not_found = || {
            ChatError::new(ErrorCode::UserNotFound, format!("no user {to}"), event).with("to", to)
        };
        if !is_valid_username(to) {
            return Err(not_found());
        }
        let found = match self.state.target(to) {
            Some(t) => Some(t),
            None => self.remote_target(to).await,
        };
        let target = match found {
            Some(t) => t,
            None if offline => {
                let key = chat_shared::username_key(to);
                match self.store.account(&key).await {
                    Ok(Some(account)) => crate::live::Target {
                        key,
                        username: account.username,
                        sids: Vec::new(),
                        live: false,
                    },
                    Ok(None) => return Err(not_found()),
                    Err(e) => {
                        tracing::warn!("accounts: {e}");
                        return Err(unavailable(event, "look up accounts"));
                    }
                }
            }
            None => return Err(not_found()),
        };
        if target.key == ctx.key() {
            return Err(
                ChatError::new(ErrorCode::InvalidTarget, "that is you", event).with("to", to),
            );
        }
        Ok(target)
    }

    pub(super) async fn dm(
        self: &Arc<Self>,
        s: Option<&SocketRef>,
        ctx: &dyn Acting,
        m: DmRequest,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<Sending, ChatError> {
        let event = names::DM_MESSAGE;
        self.check_muted(ctx, event, None)?;
        let target = self.user_target(ctx, event, &m.to, true).await?;
        if self.blocked_between(&ctx.key(), &target.key) {
            return Err(ChatError::new(
                ErrorCode::Blocked,
                format!(
                    "you cannot message {}: one of you blocks the other",
                    target.username
                ),
                event,
            )
            .with("to", target.username));
        }
        let dest = Destination::Dm {
            to: target.username,
        };
        let reply_to = self
            .reply_target(ctx, event, m.reply_to.as_deref(), &dest)
            .await?;
        let text = self.text(ctx, event, &m.text)?;
        let draft = Draft {
            reply_to,
            ..Draft::message(text, dest, m.action)
        };
        let sending = self.deliver(ctx, event, draft, s, turn).await?;
        // No socket holds the recipient's session: the DM waits for it.
        Ok(Sending {
            held: !target.live,
            ..sending
        })
    }

    pub(super) async fn feed(
        self: &Arc<Self>,
        s: &SocketRef,
        ctx: &SocketCtx,
        event: &'static str,
        m: &TextRequest,
        dest: Destination,
        turn: &mut Option<Turn<'_>>,
    ) -> Result<Sending, ChatError> {
        self.check_muted(ctx, event, None)?;
        let reply_to = self
            .reply_target(ctx, event, m.reply_to.as_deref(), &dest)
            .await?;
        let draft = Draft {
            reply_to,
            ..Draft::message(self.text(ctx, event, &m.text)?, dest, m.action)
        };
        self.deliver(ctx, event, draft, Some(s), turn).await
    }
}

impl ChatService {
    /// (v3) A message's answer over HTTP: waits for its commit (by then
    /// it was delivered), then counts it as [`Self::ack_on_commit`] does
    /// for a socket and gives the ack's body.
    pub(super) async fn sent(
        &self,
        ctx: &dyn Acting,
        sending: Sending,
    ) -> Result<SentAck, ChatError> {
        let result = sending.committed.await;
        if let Some(queued) = sending.queued_at {
            self.metrics.store_write(queued, &result);
        }
        result.map_err(|e| store_failed(sending.event, e))?;
        self.metrics.message(sending.msg.kind());
        self.message_event(ctx, &sending.msg, sending.bytes);
        Ok(SentAck {
            id: sending.msg.id.to_string(),
            ts: sending.msg.ts,
            queued: sending.held.then_some(true),
        })
    }
}

/// A message numbered and queued for the store, delivered and acked once
/// its write commits ([`ChatService::ack_on_commit`]).
pub(super) struct Sending {
    msg: Arc<MessageRecord>,
    committed: crate::store::Committed,
    /// When its write was queued, for the store's latency figure (none
    /// in a cluster, where Redis has stored it already).
    queued_at: Option<std::time::Instant>,
    event: &'static str,
    bytes: usize,
    /// A DM whose recipient has no socket: the ack says it waits.
    held: bool,
}

impl ChatService {
    /// Delivers one message of the feed to this node's sockets.
    pub(super) fn deliver_numbered(
        &self,
        cluster: &Cluster,
        msg: &Arc<MessageRecord>,
        origin: Option<&str>,
    ) {
        // The sending socket, if its session is here.
        let origin = origin.and_then(|id| self.state.sid_of_session(&msg.from, id));
        self.deliver_committed(msg, origin);
        cluster.delivered(msg.id);
    }

    /// A DM target on another node: a user whose name some node holds.
    pub(super) async fn remote_target(&self, to: &str) -> Option<Target> {
        let cluster = self.cluster.as_ref()?;
        let key = username_key(to);
        match cluster.holder_live(&key).await {
            // (v3) A user in its recovery window there: a DM to it is
            // kept, and the ack says so.
            Ok(Some((username, live))) => Some(Target {
                key,
                username,
                sids: Vec::new(),
                live,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("cluster: {e}");
                None
            }
        }
    }
}
