//! (v3) One account on several clients: `session:list` and `session:end`,
//! membership that follows the account to its other sessions
//! (`room:joined`, `room:left`), and read markers (`read:mark`,
//! `read:marker`, `session.markers`), here and on the other nodes.

use super::*;
use crate::cluster::feed::AccountNote;
use crate::store::{MarkerAt, SessionRecord};
use chat_shared::{
    Conversation, Marker, ReadMarkRequest, ReadMarker, RoomChanged, SessionListAck, SessionSummary,
    UNREAD_MAX, username_key,
};
use std::collections::{BTreeMap, HashSet};

/// The most DM conversations `session.markers` lists (the newest).
const MARKED_CONVERSATIONS: usize = 500;

impl ChatService {
    /// `session:list`: the account's sessions on every node, oldest first.
    pub(super) async fn session_list(&self, ctx: &SocketCtx) -> Result<Reply, ChatError> {
        let event = names::SESSION_LIST;
        let me = self.account_only(ctx, event)?;
        let mine = &ctx.admission.token;
        let mut sessions: Vec<SessionSummary> = self
            .state
            .sessions_of(&me.key)
            .into_iter()
            .map(|v| SessionSummary {
                id: v.meta.id,
                client: v.meta.client,
                address: v.meta.address,
                connected_at: v.meta.connected_at,
                last_active_at: v.last_active,
                live: v.live,
                current: &v.token == mine,
            })
            .collect();
        if self.cluster.is_some() {
            let here: HashSet<String> = sessions.iter().map(|s| s.id.clone()).collect();
            for rec in self.stored_sessions(&me.key, event).await? {
                if !here.contains(&rec.meta.id) {
                    sessions.push(summary_of(&rec));
                }
            }
        }
        sessions.sort_by(|a, b| (a.connected_at, &a.id).cmp(&(b.connected_at, &b.id)));
        let body = serde_json::to_value(SessionListAck { sessions }).unwrap_or(Value::Null);
        Ok(Reply::Body(body))
    }

    /// `session:end {id}`: ends one of the account's sessions, on whichever
    /// node holds it; its token no longer resumes.
    pub(super) async fn session_end(&self, ctx: &SocketCtx, id: &str) -> Result<Reply, ChatError> {
        let event = names::SESSION_END;
        let me = self.account_only(ctx, event)?;
        let not_found = || {
            ChatError::new(
                ErrorCode::NotFound,
                format!("you have no session {id}: see session:list"),
                event,
            )
            .with("id", id)
        };
        let here = self
            .state
            .sessions_of(&me.key)
            .into_iter()
            .find(|v| v.meta.id == id)
            .map(|v| v.token);
        let token = match here {
            Some(t) => t,
            None if self.cluster.is_some() => self
                .stored_sessions(&me.key, event)
                .await?
                .into_iter()
                .find(|r| r.meta.id == id)
                .map(|r| r.token)
                .ok_or_else(not_found)?,
            None => return Err(not_found()),
        };
        self.end_session_here(&me.key, &token, false);
        if let Some(cluster) = &self.cluster {
            // Whichever node holds it lets it go; the store forgets it so
            // that no node takes it up again.
            if let Err(e) = self.store.delete_session(&token).await {
                tracing::warn!("session:end: {e}");
            }
            let note = AccountNote::End {
                key: me.key.clone(),
                token,
                replaced: false,
            };
            if let Err(e) = cluster.announce_account(&note).await {
                tracing::warn!("cluster: {e}");
            }
        }
        tracing::info!(user = %me.key, session = id, "session ended by its account");
        Ok(Reply::Empty)
    }

    /// Ends `key`'s session `token` if this node holds it: its socket, if
    /// any, gets `session_ended` (or, `replaced` by a login beyond the
    /// limit, `session_replaced`) and is disconnected.
    pub(super) fn end_session_here(&self, key: &str, token: &str, replaced: bool) {
        let (_, sid) = self.state.end(key, token);
        let Some(s) = sid.and_then(|sid| self.ns().and_then(|ns| ns.get_socket(sid))) else {
            return;
        };
        if let Some(ctx) = s.extensions.get::<Arc<SocketCtx>>() {
            ctx.ended.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let err = if replaced {
            ChatError::new(
                ErrorCode::SessionReplaced,
                "a newer login of your account took this session's place: it has at most as many sessions as the server allows",
                names::SESSION,
            )
        } else {
            ChatError::new(
                ErrorCode::SessionEnded,
                "this session was ended from another of your clients",
                names::SESSION,
            )
        };
        let _ = s.emit(names::CHAT_ERROR, &err);
        let _ = s.disconnect();
    }

    /// (v3) On a cluster, the session limit counts the account's sessions
    /// on every node: after a new session `adm` began here, the least
    /// recently active sessions beyond `--max-sessions-per-account`
    /// (another node's known by when they began) end wherever they are.
    /// This node's own count was kept when it admitted `adm`.
    pub(super) async fn limit_across_nodes(&self, adm: &Admission) {
        let Some(cluster) = &self.cluster else { return };
        if !adm.account || adm.recovered {
            return;
        }
        let max = self.state.config.max_sessions_per_account as usize;
        let stored = match self.store.user_sessions(&adm.key).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("sessions: {e}");
                return;
            }
        };
        // (last active, token, held here)
        let mut all: Vec<(u64, String, bool)> = self
            .state
            .sessions_of(&adm.key)
            .into_iter()
            .map(|v| (v.last_active, v.token, true))
            .collect();
        for r in stored {
            if self.state.session_owner(&r.token).is_none() {
                all.push((r.meta.connected_at, r.token, false));
            }
        }
        let excess = all.len().saturating_sub(max);
        if excess == 0 {
            return;
        }
        all.sort();
        for (_, token, here) in all
            .into_iter()
            .filter(|(_, t, _)| *t != adm.token)
            .take(excess)
        {
            if here {
                self.end_session_here(&adm.key, &token, true);
                continue;
            }
            if let Err(e) = self.store.delete_session(&token).await {
                tracing::warn!("sessions: {e}");
            }
            let note = AccountNote::End {
                key: adm.key.clone(),
                token,
                replaced: true,
            };
            if let Err(e) = cluster.announce_account(&note).await {
                tracing::warn!("cluster: {e}");
            }
        }
    }

    /// The account's sessions as the store holds them (every node's).
    async fn stored_sessions(
        &self,
        key: &str,
        event: &str,
    ) -> Result<Vec<SessionRecord>, ChatError> {
        self.store.user_sessions(key).await.map_err(|e| {
            tracing::warn!("sessions: {e}");
            unavailable(event, "list sessions")
        })
    }

    /// Accounts only: a guest is refused `auth_required`.
    fn account_only(&self, ctx: &SocketCtx, event: &str) -> Result<Me, ChatError> {
        let me = ctx.me();
        if !me.account {
            return Err(ChatError::new(
                ErrorCode::AuthRequired,
                "only an account has several sessions: register to use them",
                event,
            ));
        }
        Ok(me)
    }

    // ----------------------------------------------------------- markers

    /// `read:mark {room | with, id}`: moves the marker forward and tells
    /// the account's other sessions.
    pub(super) async fn read_mark(
        &self,
        s: &SocketRef,
        ctx: &SocketCtx,
        r: ReadMarkRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::READ_MARK;
        let me = ctx.me();
        let (at, shown) = match &r.at {
            Conversation::Room(raw) => {
                let room = self.member_room(ctx, event, raw)?;
                (MarkerAt::Room(room.clone()), Conversation::Room(room))
            }
            Conversation::With(name) => {
                if !is_valid_username(name) {
                    return Err(ChatError::new(
                        ErrorCode::UserNotFound,
                        format!("no user {name}"),
                        event,
                    )
                    .with("with", name.clone()));
                }
                (
                    MarkerAt::Dm(username_key(name)),
                    Conversation::With(name.clone()),
                )
            }
        };
        let id =
            r.id.parse::<u64>()
                .ok()
                .filter(|&id| id > 0 && id <= self.state.issued())
                .ok_or_else(|| {
                    ChatError::new(
                        ErrorCode::MessageNotFound,
                        format!("no message {}", r.id),
                        event,
                    )
                    .with("id", r.id.clone())
                })?;
        let now = if me.account {
            self.store.put_marker(&me.key, &at, id).await.map_err(|e| {
                tracing::warn!("markers: {e}");
                unavailable(event, "store read markers")
            })?
        } else {
            self.state.put_guest_marker(&me.key, &at, id)
        };
        let marker = ReadMarker {
            at: shown,
            id: now.to_string(),
        };
        if now == id {
            self.marker_moved(&me.key, Some(s.id), &marker);
            if let Some(cluster) = &self.cluster {
                let note = AccountNote::Marker {
                    key: me.key.clone(),
                    marker: marker.clone(),
                };
                if let Err(e) = cluster.announce_account(&note).await {
                    tracing::warn!("cluster: {e}");
                }
            }
        }
        Ok(Reply::Body(
            serde_json::to_value(&marker).unwrap_or(Value::Null),
        ))
    }

    /// `read:marker` to `key`'s sessions here but `except`.
    fn marker_moved(&self, key: &str, except: Option<Sid>, marker: &ReadMarker) {
        let Some(ns) = self.ns() else { return };
        let others: Vec<SocketRef> = self
            .state
            .sids_of(key)
            .into_iter()
            .filter(|&sid| Some(sid) != except)
            .filter_map(|sid| ns.get_socket(sid))
            .collect();
        self.emit_each(&others, names::READ_MARKER, marker);
    }

    /// `session.markers`: for each of `rooms` and each DM conversation of
    /// the user, its marker and how many messages from others came after
    /// it. Empty (and logged) if the store cannot say.
    pub(super) async fn markers_for(&self, adm: &Admission, rooms: &[String]) -> Vec<Marker> {
        match self.read_markers(adm, rooms).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("session markers: {e}");
                Vec::new()
            }
        }
    }

    async fn read_markers(
        &self,
        adm: &Admission,
        rooms: &[String],
    ) -> Result<Vec<Marker>, crate::store::StoreError> {
        let key = &adm.key;
        let floor = self.state.dm_floor(key);
        let marks: BTreeMap<MarkerAt, u64> = if adm.account {
            self.store.markers(key).await?
        } else {
            self.state.guest_markers(key)
        };
        let conversations = self
            .store
            .conversations(
                key,
                if adm.account { 0 } else { floor },
                MARKED_CONVERSATIONS,
            )
            .await?;
        let mut asked = Vec::with_capacity(rooms.len() + conversations.len());
        let mut shown = Vec::with_capacity(asked.capacity());
        for room in rooms {
            let at = MarkerAt::Room(room.clone());
            let mark = marks.get(&at).copied();
            asked.push((at, mark.unwrap_or(0)));
            shown.push((Conversation::Room(room.clone()), mark));
        }
        for c in conversations {
            let at = MarkerAt::Dm(c.peer_key.clone());
            let mark = marks.get(&at).copied();
            // A guest reads only the DMs of its session.
            let after = mark.unwrap_or(0).max(if adm.account { 0 } else { floor });
            asked.push((at, after));
            shown.push((Conversation::With(c.peer), mark));
        }
        let unread = self.store.unread(key, &asked, UNREAD_MAX).await?;
        Ok(shown
            .into_iter()
            .zip(unread)
            .map(|((at, mark), unread)| Marker {
                at,
                id: mark.map(|m| m.to_string()),
                unread,
            })
            .collect())
    }

    // ------------------------------------------------------- membership

    /// (v3) The account `key` joined or left `room` from the socket
    /// `origin` (none: from another node): its other sockets here follow,
    /// told with `room:joined` or `room:left`, and (from here) the other
    /// nodes are told.
    pub(super) async fn membership_changed(
        &self,
        key: &str,
        room: &str,
        joined: bool,
        origin: Option<Sid>,
    ) {
        if let Some(ns) = self.ns() {
            // Ready sockets only: one still catching up joins its rooms as
            // they are when it finishes.
            let target = self.state.target_key(key);
            let others: Vec<SocketRef> = target
                .map(|t| t.sids)
                .unwrap_or_default()
                .into_iter()
                .filter(|&sid| Some(sid) != origin)
                .filter_map(|sid| ns.get_socket(sid))
                .collect();
            let body = RoomChanged {
                room: room.to_owned(),
            };
            for s in &others {
                if joined {
                    s.join(room.to_owned());
                } else {
                    s.leave(room.to_owned());
                }
            }
            let event = if joined {
                names::ROOM_JOINED
            } else {
                names::ROOM_LEFT
            };
            self.emit_each(&others, event, &body);
            if !joined {
                // Sockets still catching up leave too (they may have
                // joined it already).
                for sid in self.state.sids_of(key) {
                    if let Some(s) = ns.get_socket(sid) {
                        s.leave(room.to_owned());
                    }
                }
            }
        }
        if origin.is_some()
            && let Some(cluster) = &self.cluster
        {
            let (key, room) = (key.to_owned(), room.to_owned());
            let note = if joined {
                AccountNote::Joined { key, room }
            } else {
                AccountNote::Left { key, room }
            };
            if let Err(e) = cluster.announce_account(&note).await {
                tracing::warn!("cluster: {e}");
            }
        }
    }

    /// What an account's session on another node did, for its sessions
    /// here.
    pub(super) async fn account_note_here(&self, note: AccountNote) {
        match note {
            AccountNote::Joined { key, room } => {
                if self.state.name_held(&key) && self.state.follow_join(&key, &room).is_ok() {
                    self.membership_changed(&key, &room, true, None).await;
                }
            }
            AccountNote::Left { key, room } => {
                if self.state.follow_leave(&key, &room).is_ok() {
                    self.membership_changed(&key, &room, false, None).await;
                }
            }
            AccountNote::Marker { key, marker } => self.marker_moved(&key, None, &marker),
            AccountNote::End {
                key,
                token,
                replaced,
            } => self.end_session_here(&key, &token, replaced),
        }
    }
}

/// A stored session as `session:list` shows it (one held by another
/// node: its last activity there is not known here, so its start).
fn summary_of(rec: &SessionRecord) -> SessionSummary {
    SessionSummary {
        id: rec.meta.id.clone(),
        client: rec.meta.client.clone(),
        address: rec.meta.address.clone(),
        connected_at: rec.meta.connected_at,
        last_active_at: rec.meta.connected_at,
        live: rec.window_ends_at.is_none(),
        current: false,
    }
}
