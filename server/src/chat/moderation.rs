//! (v3) Who may do what: room settings and roles, invites, kicks, bans
//! and mutes in a room and server-wide, server roles, blocks, and the
//! checks the other handlers make (a join of a private room, a muted
//! sender, a blocked DM, a banned login).
//!
//! Every action on another user goes through [`ChatService::authorize`],
//! the rank rule in one place. A room action's record is a room event:
//! an entry of the room's log, numbered and stored like a message
//! ([`ChatService::post_note`]), delivered to the room's members on every
//! node, and replayed on recovery; where it removes someone, each node
//! takes that user's sockets out of the room as it delivers it
//! ([`ChatService::after_note`]), so the target hears why before it goes.

use std::collections::BTreeMap;

use super::*;
use crate::live::policy::{self, Held, Policy, ROLES, SERVER, Sanction, blocks_scope, room_scope};
use chat_shared::{
    BansAck, BlockAck, Role, RoomEventKind, RoomInfoAck, RoomInvited, RoomMemberInfo, RoomRole,
    RoomRoleAck, RoomRoleRequest, RoomSanctionRequest, RoomSettingsAck, RoomSettingsRequest,
    RoomUserAck, RoomUserRequest, UserRequest, UserRoleAck, UserRoleRequest, UserSanctionRequest,
    need_above, rank_name, username_key,
};

/// The most characters of a topic.
pub const TOPIC_MAX: usize = 200;

/// Someone an action names: an account, or a guest that some node holds.
#[derive(Debug, Clone)]
pub(super) struct Person {
    pub key: String,
    pub username: String,
    pub account: bool,
}

/// A reason as given: trimmed, at most 200 characters, none if empty.
fn reason(r: Option<String>) -> Option<String> {
    r.map(|r| r.trim().chars().take(TOPIC_MAX).collect::<String>())
        .filter(|r| !r.is_empty())
}

/// When a sanction of `for_secs` given now ends (`None`: until lifted).
fn until(for_secs: Option<u64>) -> Option<u64> {
    for_secs.map(|s| crate::clock::now_ms().saturating_add(s.saturating_mul(1000)))
}

/// Who holds `need` (a role name), said in words: "ops of #ops",
/// "moderators and admins".
fn holders_words(need: &str, room: Option<&str>) -> String {
    match (need, room) {
        ("op", Some(r)) => format!("ops of {r}"),
        ("owner", Some(r)) => format!("owners of {r}"),
        ("op", None) => "ops".into(),
        ("owner", None) => "owners".into(),
        ("moderator", _) => "moderators and admins".into(),
        ("admin", _) => "admins".into(),
        (other, _) => format!("{other}s"),
    }
}

/// `forbidden` with `context.need`: "only ops of #ops can kick".
pub(super) fn forbidden(event: &str, need: &str, room: Option<&str>, doing: &str) -> ChatError {
    let mut e = ChatError::new(
        ErrorCode::Forbidden,
        format!("only {} can {doing}", holders_words(need, room)),
        event,
    )
    .with("need", need);
    if let Some(r) = room {
        e = e.with("room", r);
    }
    e
}

/// `banned` or `muted` with `context.until` and `context.reason`.
pub(super) fn sanctioned(
    code: ErrorCode,
    event: &str,
    s: &Sanction,
    room: Option<&str>,
) -> ChatError {
    let place = room.map_or("this server".to_owned(), str::to_owned);
    let what = if code == ErrorCode::Banned {
        "banned from"
    } else {
        "muted in"
    };
    let mut text = format!("you are {what} {place}");
    match s.until {
        Some(u) => text.push_str(&format!(
            " for {} more seconds",
            u.saturating_sub(crate::clock::now_ms()).div_ceil(1000)
        )),
        None => text.push_str(" until it is lifted"),
    }
    if let Some(r) = &s.reason {
        text.push_str(&format!(" ({r})"));
    }
    let mut e = ChatError::new(code, text, event)
        .with("until", s.until.map_or(Value::Null, Value::from))
        .with("reason", s.reason.clone().map_or(Value::Null, Value::from));
    if let Some(r) = room {
        e = e.with("room", r);
    }
    e
}

/// The rank rule, in one place: the sender (`ctx`) needs at least
/// `need` (a rank), and, acting on `target`, a rank strictly above
/// the target's (in `room`, or server-wide).
pub(super) fn authorize(
    p: &Policy,
    ctx: &dyn Acting,
    event: &str,
    room: Option<&str>,
    need: u8,
    target: Option<&Person>,
    doing: &str,
) -> Result<(), ChatError> {
    let me = ctx.me();
    let mine = p.rank(&me.key, me.account, room);
    if mine < need {
        return Err(forbidden(event, rank_name(need), room, doing));
    }
    if let Some(t) = target {
        let theirs = p.rank(&t.key, t.account, room);
        if mine <= theirs {
            return Err(forbidden(event, need_above(theirs), room, doing));
        }
    }
    Ok(())
}

fn store_down(event: &str, e: crate::store::StoreError) -> ChatError {
    tracing::warn!("moderation: {e}");
    unavailable(event, "change settings")
}

impl ChatService {
    /// The policy, read from the store first if this node never did.
    pub(super) async fn policy(&self, event: &str) -> Result<Arc<Policy>, ChatError> {
        self.moderation.current().await.map_err(|e| {
            tracing::warn!("moderation: {e}");
            unavailable(event, "read its settings")
        })
    }

    /// The user `name` names: an account, or a guest held on some node.
    pub(super) async fn person(&self, event: &str, name: &str) -> Result<Person, ChatError> {
        let not_found = || {
            ChatError::new(ErrorCode::UserNotFound, format!("no user {name}"), event)
                .with("user", name)
        };
        if !is_valid_username(name) {
            return Err(not_found());
        }
        let key = username_key(name);
        match self.store.account(&key).await {
            Ok(Some(a)) => {
                return Ok(Person {
                    key,
                    username: a.username,
                    account: true,
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("accounts: {e}");
                return Err(unavailable(event, "look up accounts"));
            }
        }
        let held = match self.state.target(name) {
            Some(t) => Some(t),
            None => self.remote_target(name).await,
        };
        held.map(|t| Person {
            key: t.key,
            username: t.username,
            account: false,
        })
        .ok_or_else(not_found)
    }

    /// [`person`](Self::person), or, for a name nobody holds now (a guest
    /// gone since its ban), the name as given: lifting a ban or a mute
    /// needs no one to be there.
    async fn named(&self, event: &str, name: &str) -> Result<Person, ChatError> {
        match self.person(event, name).await {
            Err(e) if e.code == ErrorCode::UserNotFound && is_valid_username(name) => Ok(Person {
                key: username_key(name),
                username: name.to_owned(),
                account: false,
            }),
            other => other,
        }
    }

    /// Writes a setting, refused `unavailable` when the store cannot.
    async fn setting(
        &self,
        event: &str,
        scope: &str,
        field: &str,
        value: Option<String>,
    ) -> Result<(), ChatError> {
        self.moderation
            .set(scope, field, value)
            .await
            .map_err(|e| store_down(event, e))?;
        if let Some(cluster) = &self.cluster
            && let Err(e) = cluster.announce_settings().await
        {
            // The others still see it at their next poll.
            tracing::debug!("cluster: {e}");
        }
        Ok(())
    }

    /// Tells `/admin` of a moderation action.
    fn moderation_event(
        &self,
        ctx: &SocketCtx,
        action: &str,
        room: Option<&str>,
        user: Option<&str>,
        reason: Option<&str>,
        until: Option<u64>,
    ) {
        tracing::info!(by = %ctx.username(), action, room, user, "moderation");
        let mut ev = admin_event(AdminEventType::Moderation);
        ev.action = Some(action.to_owned());
        ev.room = room.map(str::to_owned);
        ev.user = user.map(str::to_owned);
        ev.by = Some(ctx.username().clone());
        ev.reason = reason.map(str::to_owned);
        ev.until = until;
        self.admin.send(ev);
    }

    /// Whether `p` is a member of `room`: online on any node, an account
    /// that has it among its rooms, or (several nodes) a session of `p`'s
    /// that keeps it.
    async fn is_room_member(&self, room: &str, p: &Person) -> bool {
        if self.state.is_member(&p.key, room) {
            return true;
        }
        if p.account
            && let Ok(Some(a)) = self.store.account(&p.key).await
            && a.rooms.iter().any(|r| r == room)
        {
            return true;
        }
        if self
            .room_members(room, Vec::new())
            .await
            .iter()
            .any(|u| username_key(u) == p.key)
        {
            return true;
        }
        // A guest in its recovery window on another node: its session
        // keeps its rooms.
        self.cluster.is_some()
            && self
                .store
                .user_sessions(&p.key)
                .await
                .is_ok_and(|sessions| sessions.iter().any(|s| s.rooms.contains_key(room)))
    }

    /// Every member of `room`, online or not, with whether they are
    /// online: live members on every node and accounts that have it.
    async fn all_members(&self, room: &str) -> Vec<(String, bool)> {
        let live = self.room_members(room, self.state.member_names(room)).await;
        let mut all: BTreeMap<String, (String, bool)> = live
            .into_iter()
            .map(|u| (username_key(&u), (u, true)))
            .collect();
        if let Ok(accounts) = self.store.accounts().await {
            for a in accounts {
                if a.rooms.iter().any(|r| r == room) {
                    all.entry(username_key(&a.username))
                        .or_insert((a.username, false));
                }
            }
        }
        all.into_values().collect()
    }

    /// Whether `room` is new: no settings, no member online or offline,
    /// no history. The account whose join creates it owns it.
    pub(super) async fn room_is_new(&self, p: &Policy, room: &str) -> bool {
        if p.room(room).is_some() || self.state.members(room) > 0 {
            return false;
        }
        if !self.room_page(room, None, 1, false).await.0.is_empty() {
            return false;
        }
        if !self.room_members(room, Vec::new()).await.is_empty() {
            return false;
        }
        match self.store.accounts().await {
            Ok(accounts) => !accounts.iter().any(|a| a.rooms.iter().any(|r| r == room)),
            Err(_) => false,
        }
    }

    /// Numbers and stores a room event, and waits for its commit (it is
    /// delivered then, in the log's order).
    async fn post(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        event: &'static str,
        room: &str,
        note: chat_shared::RoomEvent,
    ) -> Result<Arc<MessageRecord>, ChatError> {
        let action = note.kind.as_str();
        self.moderation_event(
            ctx,
            action,
            Some(room),
            note.user.as_deref(),
            note.reason.as_deref(),
            note.until,
        );
        self.post_note(ctx, event, room, &note).await
    }

    /// What a delivered room event changes on this node, under the
    /// delivery lock: a kick or ban takes the target's socket here out of
    /// the room (it has just been sent the event); an invite reaches the
    /// invitee's socket here.
    pub(super) fn after_note(&self, msg: &MessageRecord) {
        let (Some(note), Destination::Room(room)) = (msg.room_note(), &msg.dest) else {
            return;
        };
        let (kind, Some(user)) = (note.kind, note.user.as_deref()) else {
            return;
        };
        let key = username_key(user);
        let sids = self.state.sids_of(&key);
        if sids.is_empty() {
            // Away or elsewhere: a resume here reads the removal from the
            // room's settings (see `removals`).
            return;
        }
        let sockets: Vec<SocketRef> = self
            .ns()
            .map(|ns| sids.iter().filter_map(|&sid| ns.get_socket(sid)).collect())
            .unwrap_or_default();
        match kind {
            RoomEventKind::Invite => {
                let invited = RoomInvited {
                    room: room.clone(),
                    by: msg.from.clone(),
                };
                for s in &sockets {
                    let _ = s.emit(names::ROOM_INVITED, &invited);
                }
            }
            k if k.removes() => {
                let Ok(members) = self.state.leave(&key, room) else {
                    return;
                };
                let leave = Presence::change(
                    PresenceKind::Leave,
                    user,
                    Some((room, members)),
                    self.state.online(),
                )
                .with_reason(k.as_str());
                for s in &sockets {
                    // Out of the room before anything else is sent to it;
                    // each session hears its own leave here, the room
                    // below.
                    s.leave(room.clone());
                    let _ = s.emit(names::PRESENCE, &leave);
                }
                let (svc, room) = (self.clone(), room.clone());
                tokio::spawn(async move { svc.presence(&room, leave).await });
            }
            _ => {}
        }
    }

    /// The rooms of `key`'s session that it was removed from while away,
    /// with the id of the event that removed it.
    pub(super) fn removals(&self, key: &str) -> Vec<(String, u64)> {
        let p = self.moderation.cached();
        self.state
            .rooms_of(key)
            .into_iter()
            .filter_map(|room| {
                let id = *p.room(&room)?.removed.get(key)?;
                Some((room, id))
            })
            .collect()
    }

    /// Ends every session of `key` on every node: each socket gets `err`
    /// and is disconnected.
    pub(super) async fn end_sessions(&self, key: &str, err: &ChatError, ban: Option<&Sanction>) {
        match ban {
            Some(ban) => self.end_banned_here(key, ban, err).await,
            None => self.end_here(key, err),
        }
        if let Some(cluster) = &self.cluster
            && let Err(e) = cluster.announce_end(key, err).await
        {
            tracing::warn!("cluster: {e}");
        }
    }

    /// Ends the sessions of `key` on this node that a socket holds.
    pub(super) fn end_here(&self, key: &str, err: &ChatError) {
        let Some(ns) = self.ns() else { return };
        for s in self
            .state
            .sids_of(key)
            .into_iter()
            .filter_map(|sid| ns.get_socket(sid))
        {
            // Ended, not interrupted: no recovery window keeps the name.
            if let Some(ctx) = s.extensions.get::<Arc<SocketCtx>>() {
                ctx.ended.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let _ = s.emit(names::CHAT_ERROR, err);
            let _ = s.disconnect();
        }
    }

    /// After the policy changed elsewhere: the live users here that a
    /// server ban now covers are disconnected.
    pub(super) async fn enforce_bans(&self) {
        let p = self.moderation.cached();
        let now = crate::clock::now_ms();
        for key in self.state.live_keys() {
            if let Some(ban) = p.server_ban(&key, now) {
                let err = sanctioned(ErrorCode::Banned, names::SESSION, ban, None)
                    .with("by", ban.by.clone());
                self.end_banned_here(&key, ban, &err).await;
            }
        }
    }

    /// A message of `ctx`'s user is refused `muted` while a mute (the
    /// server's, or `room`'s) is in force. Reads what the node holds.
    pub(super) fn check_muted(
        &self,
        ctx: &dyn Acting,
        event: &str,
        room: Option<&str>,
    ) -> Result<(), ChatError> {
        let p = self.moderation.cached();
        match p.mute(room, &ctx.key(), crate::clock::now_ms()) {
            Some((s, in_room)) => Err(sanctioned(
                ErrorCode::Muted,
                event,
                s,
                if in_room { room } else { None },
            )),
            None => Ok(()),
        }
    }

    /// Whether either of the two users blocks the other.
    pub(super) fn blocked_between(&self, a: &str, b: &str) -> bool {
        self.moderation.cached().blocked_between(a, b)
    }

    /// The `room:join` checks: a room ban, a private room without an
    /// invite or a role. A member joining again passes.
    pub(super) fn may_join(
        &self,
        p: &Policy,
        ctx: &dyn Acting,
        room: &str,
    ) -> Result<(), ChatError> {
        let me = ctx.me();
        if ctx.is_member(&self.state, room) {
            return Ok(());
        }
        let event = names::ROOM_JOIN;
        if let Some(ban) = p.room_ban(room, &me.key, crate::clock::now_ms()) {
            return Err(sanctioned(ErrorCode::Banned, event, ban, Some(room)));
        }
        if !p.may_enter(room, &me.key, me.account) {
            return Err(ChatError::new(
                ErrorCode::InviteOnly,
                format!("{room} is invite-only: ask an op of {room} for an invite"),
                event,
            )
            .with("room", room));
        }
        Ok(())
    }

    /// After a join: the invite it used is spent, a removal mark is
    /// cleared, and the account that created the room owns it.
    pub(super) async fn joined(&self, p: &Policy, ctx: &dyn Acting, room: &str, created: bool) {
        let me = ctx.me();
        let scope = room_scope(room);
        let mut changes = Vec::new();
        if let Some(r) = p.room(room) {
            if r.invites.contains_key(&me.key) {
                changes.push((format!("invite:{}", me.key), None));
            }
            if r.removed.contains_key(&me.key) {
                changes.push((format!("removed:{}", me.key), None));
            }
        }
        if created && me.account {
            let held = Held {
                user: me.username.clone(),
                role: Some(RoomRole::Owner),
                by: None,
            };
            changes.push((
                format!("role:{}", me.key),
                serde_json::to_string(&held).ok(),
            ));
        }
        for (field, value) in changes {
            if let Err(e) = self.moderation.set(&scope, &field, value).await {
                tracing::warn!("moderation: {e}");
            }
        }
    }

    /// Rooms a user may see in `room:list` and `presence:get`: private
    /// ones only if it is a member, or a moderator or admin. With
    /// `settings`, each carries its topic and whether it is private.
    pub(super) fn visible_rooms(
        &self,
        ctx: &SocketCtx,
        rooms: Vec<chat_shared::RoomCount>,
        settings: bool,
    ) -> Vec<chat_shared::RoomCount> {
        let p = self.moderation.cached();
        let me = ctx.me();
        let staff = p.role(&me.key, me.account).is_staff();
        rooms
            .into_iter()
            .filter(|r| staff || !p.is_private(&r.room) || self.state.is_member(&me.key, &r.room))
            .map(|mut r| {
                if settings {
                    let rp = p.room(&r.room);
                    r.topic = Some(rp.map(|x| x.topic.clone()).unwrap_or_default());
                    r.private = Some(rp.is_some_and(|x| x.private));
                }
                r
            })
            .collect()
    }

    /// At a fresh guest session: what the name's previous holder left
    /// (blocks, invites) is not its.
    pub(super) async fn forget_guest(&self, key: &str) {
        let p = self.moderation.cached();
        let blocks = p.blocked_keys(key);
        for other in blocks {
            let _ = self.moderation.set(&blocks_scope(key), &other, None).await;
        }
        for room in p.invites_of(key) {
            let _ = self
                .moderation
                .set(&room_scope(&room), &format!("invite:{key}"), None)
                .await;
        }
    }
}

// ------------------------------------------------------------- handlers

impl ChatService {
    /// Every moderation request.
    pub(super) async fn moderate(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        ev: ClientEvent,
    ) -> Result<Reply, ChatError> {
        match ev {
            ClientEvent::RoomInfo(r) => self.room_info(ctx, &r.room).await,
            ClientEvent::RoomSettings(r) => self.room_settings(ctx, r).await,
            ClientEvent::RoomInvite(r) => self.room_invite(ctx, r).await,
            ClientEvent::RoomKick(r) => self.room_sanction(ctx, RoomEventKind::Kick, r).await,
            ClientEvent::RoomBan(r) => self.room_sanction(ctx, RoomEventKind::Ban, r).await,
            ClientEvent::RoomMute(r) => self.room_sanction(ctx, RoomEventKind::Mute, r).await,
            ClientEvent::RoomUnban(r) => self.room_lift(ctx, RoomEventKind::Unban, r).await,
            ClientEvent::RoomUnmute(r) => self.room_lift(ctx, RoomEventKind::Unmute, r).await,
            ClientEvent::RoomRole(r) => self.room_role(ctx, r).await,
            ClientEvent::UserKick(r) => self.server_sanction(ctx, names::USER_KICK, r).await,
            ClientEvent::UserBan(r) => self.server_sanction(ctx, names::USER_BAN, r).await,
            ClientEvent::UserMute(r) => self.server_sanction(ctx, names::USER_MUTE, r).await,
            ClientEvent::UserUnban(r) => self.server_lift(ctx, names::USER_UNBAN, r).await,
            ClientEvent::UserUnmute(r) => self.server_lift(ctx, names::USER_UNMUTE, r).await,
            ClientEvent::UserBans => self.bans(ctx).await,
            ClientEvent::UserRole(r) => self.user_role(ctx, r).await,
            ClientEvent::UserBlock(r) => self.block(ctx, names::USER_BLOCK, r, true).await,
            ClientEvent::UserUnblock(r) => self.block(ctx, names::USER_UNBLOCK, r, false).await,
            ClientEvent::UserRename(r) => self.rename(ctx, r).await,
            other => Err(ChatError::new(
                ErrorCode::UnknownEvent,
                format!("{} is not supported by this server yet", other.name()),
                other.name(),
            )),
        }
    }

    async fn room_info(&self, ctx: &SocketCtx, raw: &str) -> Result<Reply, ChatError> {
        let event = names::ROOM_INFO;
        let room = self.room(event, raw)?;
        let p = self.policy(event).await?;
        let me = ctx.me();
        let rp = p.room(&room).cloned().unwrap_or_default();
        let member = self.state.is_member(&me.key, &room);
        let staff = p.role(&me.key, me.account).is_staff();
        if rp.private && !member && !staff && !p.may_enter(&room, &me.key, me.account) {
            return Err(ChatError::new(
                ErrorCode::InviteOnly,
                format!("{room} is invite-only"),
                event,
            )
            .with("room", room));
        }
        let members = self
            .all_members(&room)
            .await
            .into_iter()
            .map(|(username, online)| RoomMemberInfo {
                role: rp.role_of(&username_key(&username)),
                username,
                online,
            })
            .collect();
        let op = p.rank(&me.key, me.account, Some(&room)) >= 1;
        let now = crate::clock::now_ms();
        let info = RoomInfoAck {
            topic: rp.topic.clone(),
            private: rp.private,
            owners: rp.holders(RoomRole::Owner),
            ops: rp.holders(RoomRole::Op),
            members,
            invited: op.then(|| rp.invites.values().map(|h| h.user.clone()).collect()),
            bans: op.then(|| policy::room_bans(&room, &rp, now)),
            room,
        };
        body(&info)
    }

    async fn room_settings(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        r: RoomSettingsRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::ROOM_SETTINGS;
        let room = self.room(event, &r.room)?;
        let p = self.policy(event).await?;
        let topic = match &r.topic {
            Some(t) if t.trim().is_empty() => Some(String::new()),
            Some(t) => Some(
                check_text(t, TOPIC_MAX)
                    .map_err(|e| {
                        ChatError::new(e.code(), format!("topic: {e}"), event)
                            .with("room", room.as_str())
                    })?
                    .to_owned(),
            ),
            None => None,
        };
        if topic.is_some() {
            authorize(&p, ctx, event, Some(&room), 1, None, "set the topic")?;
        }
        if r.private.is_some() {
            authorize(&p, ctx, event, Some(&room), 2, None, "make a room private")?;
        }
        let scope = room_scope(&room);
        let current = p.room(&room).cloned().unwrap_or_default();
        if let Some(t) = topic
            && t != current.topic
        {
            self.setting(event, &scope, "topic", (!t.is_empty()).then(|| t.clone()))
                .await?;
            let note = chat_shared::RoomEvent {
                topic: Some(t),
                ..chat_shared::RoomEvent::new(RoomEventKind::Topic)
            };
            self.post(ctx, event, &room, note).await?;
        }
        if let Some(private) = r.private
            && private != current.private
        {
            self.setting(event, &scope, "private", private.then(|| "1".to_owned()))
                .await?;
            let note = chat_shared::RoomEvent {
                private: Some(private),
                ..chat_shared::RoomEvent::new(RoomEventKind::Private)
            };
            self.post(ctx, event, &room, note).await?;
        }
        let now = self.moderation.cached();
        let rp = now.room(&room);
        body(&RoomSettingsAck {
            topic: rp.map(|x| x.topic.clone()).unwrap_or_default(),
            private: rp.is_some_and(|x| x.private),
            room,
        })
    }

    async fn room_invite(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        r: RoomUserRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::ROOM_INVITE;
        let room = self.room(event, &r.room)?;
        let p = self.policy(event).await?;
        let target = self.person(event, &r.user).await?;
        authorize(&p, ctx, event, Some(&room), 1, None, "invite")?;
        let held = Held {
            user: target.username.clone(),
            role: None,
            by: Some(ctx.username().clone()),
        };
        self.setting(
            event,
            &room_scope(&room),
            &format!("invite:{}", target.key),
            serde_json::to_string(&held).ok(),
        )
        .await?;
        let note = chat_shared::RoomEvent {
            user: Some(target.username.clone()),
            ..chat_shared::RoomEvent::new(RoomEventKind::Invite)
        };
        self.post(ctx, event, &room, note).await?;
        body(&RoomUserAck {
            room,
            user: target.username,
        })
    }

    /// `room:kick`, `room:ban`, `room:mute`.
    async fn room_sanction(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        kind: RoomEventKind,
        r: RoomSanctionRequest,
    ) -> Result<Reply, ChatError> {
        let event = match kind {
            RoomEventKind::Kick => names::ROOM_KICK,
            RoomEventKind::Ban => names::ROOM_BAN,
            _ => names::ROOM_MUTE,
        };
        let room = self.room(event, &r.room)?;
        let p = self.policy(event).await?;
        let target = self.person(event, &r.user).await?;
        if target.key == ctx.key() {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("you cannot {} yourself", kind.as_str()),
                event,
            ));
        }
        authorize(&p, ctx, event, Some(&room), 1, Some(&target), kind.as_str())?;
        let member = self.is_room_member(&room, &target).await;
        if kind == RoomEventKind::Kick && !member {
            return Err(ChatError::new(
                ErrorCode::NotMember,
                format!("{} is not in {room}", target.username),
                event,
            )
            .with("room", room)
            .with("user", target.username));
        }
        let reason = reason(r.reason);
        let until = if kind == RoomEventKind::Kick {
            None
        } else {
            until(r.for_secs)
        };
        let scope = room_scope(&room);
        if kind != RoomEventKind::Kick {
            let s = Sanction {
                user: target.username.clone(),
                by: ctx.username().clone(),
                reason: reason.clone(),
                until,
            };
            self.setting(
                event,
                &scope,
                &format!("{}:{}", kind.as_str(), target.key),
                serde_json::to_string(&s).ok(),
            )
            .await?;
        }
        let note = chat_shared::RoomEvent {
            user: Some(target.username.clone()),
            reason,
            until,
            ..chat_shared::RoomEvent::new(kind)
        };
        let msg = self.post(ctx, event, &room, note).await?;
        if kind.removes() && member {
            // A resume that comes later learns of it from here.
            self.setting(
                event,
                &scope,
                &format!("removed:{}", target.key),
                Some(msg.id.to_string()),
            )
            .await?;
            if target.account && self.state.sids_of(&target.key).is_empty() {
                self.drop_remembered_room(&target.key, &room).await;
            }
        }
        Ok(Reply::Empty)
    }

    /// An account's remembered rooms without `room` (it was removed from
    /// it while no socket of it was here).
    async fn drop_remembered_room(&self, key: &str, room: &str) {
        if let Ok(Some(a)) = self.store.account(key).await
            && a.rooms.iter().any(|r| r == room)
        {
            let rooms = a.rooms.into_iter().filter(|r| r != room).collect();
            match self
                .store
                .update_account(key, crate::store::AccountChange::Rooms(rooms))
                .await
            {
                Ok(c) => {
                    if let Err(e) = c.await {
                        tracing::warn!("accounts: {e}");
                    }
                }
                Err(e) => tracing::warn!("accounts: {e}"),
            }
        }
    }

    /// `room:unban`, `room:unmute`.
    async fn room_lift(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        kind: RoomEventKind,
        r: RoomUserRequest,
    ) -> Result<Reply, ChatError> {
        let (event, what) = match kind {
            RoomEventKind::Unban => (names::ROOM_UNBAN, "ban"),
            _ => (names::ROOM_UNMUTE, "mute"),
        };
        let room = self.room(event, &r.room)?;
        let p = self.policy(event).await?;
        let target = self.named(event, &r.user).await?;
        authorize(&p, ctx, event, Some(&room), 1, Some(&target), kind.as_str())?;
        let now = crate::clock::now_ms();
        let in_force = p.room(&room).is_some_and(|rp| {
            let map = if what == "ban" { &rp.bans } else { &rp.mutes };
            map.get(&target.key).is_some_and(|s| s.active(now))
        });
        if !in_force {
            return Ok(Reply::Empty);
        }
        self.setting(
            event,
            &room_scope(&room),
            &format!("{what}:{}", target.key),
            None,
        )
        .await?;
        let note = chat_shared::RoomEvent {
            user: Some(target.username),
            ..chat_shared::RoomEvent::new(kind)
        };
        self.post(ctx, event, &room, note).await?;
        Ok(Reply::Empty)
    }

    async fn room_role(
        self: &Arc<Self>,
        ctx: &SocketCtx,
        r: RoomRoleRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::ROOM_ROLE;
        let room = self.room(event, &r.room)?;
        let p = self.policy(event).await?;
        let target = self.person(event, &r.user).await?;
        if !target.account {
            return Err(ChatError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "{} is a guest: a room role needs an account",
                    target.username
                ),
                event,
            )
            .with("user", target.username));
        }
        let giving_up = target.key == ctx.key() && r.role == RoomRole::Member;
        if !giving_up {
            let owned = p.room(&room).is_some_and(|rp| rp.has_owner());
            let need = if owned { 2 } else { 3 };
            let target_ref = (target.key != ctx.key()).then_some(&target);
            authorize(
                &p,
                ctx,
                event,
                Some(&room),
                need,
                target_ref,
                "give room roles",
            )?;
        }
        let field = format!("role:{}", target.key);
        let value = (r.role != RoomRole::Member).then(|| {
            serde_json::to_string(&Held {
                user: target.username.clone(),
                role: Some(r.role),
                by: Some(ctx.username().clone()),
            })
            .unwrap_or_default()
        });
        if p.room_role(&room, &target.key) != r.role {
            self.setting(event, &room_scope(&room), &field, value)
                .await?;
            let note = chat_shared::RoomEvent {
                user: Some(target.username.clone()),
                role: Some(r.role),
                ..chat_shared::RoomEvent::new(RoomEventKind::Role)
            };
            self.post(ctx, event, &room, note).await?;
        }
        body(&RoomRoleAck {
            room,
            user: target.username,
            role: r.role,
        })
    }

    /// `user:kick`, `user:ban`, `user:mute`.
    async fn server_sanction(
        &self,
        ctx: &SocketCtx,
        event: &'static str,
        r: UserSanctionRequest,
    ) -> Result<Reply, ChatError> {
        let p = self.policy(event).await?;
        let target = self.person(event, &r.user).await?;
        let action = event.trim_start_matches("user:");
        if target.key == ctx.key() {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("you cannot {action} yourself"),
                event,
            ));
        }
        authorize(&p, ctx, event, None, 3, Some(&target), action)?;
        let reason = reason(r.reason);
        let until = if event == names::USER_KICK {
            None
        } else {
            until(r.for_secs)
        };
        let sanction = Sanction {
            user: target.username.clone(),
            by: ctx.username().clone(),
            reason: reason.clone(),
            until,
        };
        let value = serde_json::to_string(&sanction).ok();
        if event == names::USER_BAN {
            // A guest's address is banned too, by the node that holds its
            // socket, as it ends it (`end_banned_here`).
            self.setting(event, SERVER, &format!("ban:{}", target.key), value)
                .await?;
        } else if event == names::USER_MUTE {
            self.setting(event, SERVER, &format!("mute:{}", target.key), value)
                .await?;
        }
        self.moderation_event(
            ctx,
            action,
            None,
            Some(&target.username),
            reason.as_deref(),
            until,
        );
        if event != names::USER_MUTE {
            let err = if event == names::USER_KICK {
                let mut text = format!("you were kicked from the server by {}", sanction.by);
                if let Some(r) = &reason {
                    text.push_str(&format!(": {r}"));
                }
                ChatError::new(ErrorCode::Kicked, text, names::SESSION)
                    .with("by", sanction.by.clone())
                    .with("reason", reason.clone().map_or(Value::Null, Value::from))
            } else {
                sanctioned(ErrorCode::Banned, names::SESSION, &sanction, None)
                    .with("by", sanction.by.clone())
            };
            let ban = (event == names::USER_BAN).then_some(&sanction);
            self.end_sessions(&target.key, &err, ban).await;
        }
        Ok(Reply::Empty)
    }

    /// Another node ended the session of `key` (a server kick or ban):
    /// the policy behind it holds here from now, and the socket here, if
    /// any, is told and closed (a banned guest's address with it, as
    /// [`end_banned_here`](Self::end_banned_here) does).
    pub(super) async fn ended_elsewhere(&self, key: &str, err: &ChatError) {
        if let Err(e) = self.moderation.refresh().await {
            tracing::debug!("moderation: {e}");
        }
        let policy = self.moderation.cached();
        match policy.server_ban(key, crate::clock::now_ms()) {
            Some(ban) if err.code == ErrorCode::Banned => self.end_banned_here(key, ban, err).await,
            _ => self.end_here(key, err),
        }
    }

    /// Ends the session of `key` here for the server ban `ban`. A guest's
    /// address is banned for guests too, here where it is known: the
    /// contract bans connecting as a guest from the addresses of its
    /// sessions.
    async fn end_banned_here(&self, key: &str, ban: &Sanction, err: &ChatError) {
        let guest_here = !self.state.sids_of(key).is_empty() && !self.state.is_account(key);
        if guest_here {
            let value = serde_json::to_string(ban).ok();
            for addr in self.addresses_of(key) {
                let field = format!("addr:{addr}");
                if let Err(e) = self
                    .setting(names::USER_BAN, SERVER, &field, value.clone())
                    .await
                {
                    tracing::warn!("a banned guest's address: {}", e.message);
                }
            }
        }
        self.end_here(key, err);
    }

    /// The client addresses of `key`'s live sockets here.
    fn addresses_of(&self, key: &str) -> Vec<String> {
        let Some(ns) = self.ns() else {
            return Vec::new();
        };
        self.state
            .sids_of(key)
            .into_iter()
            .filter_map(|sid| ns.get_socket(sid))
            .filter_map(|s| {
                s.req_parts()
                    .extensions
                    .get::<crate::http::client_addr::ClientAddr>()
                    .map(|c| c.0.to_string())
            })
            .collect()
    }

    /// `user:unban`, `user:unmute`.
    async fn server_lift(
        &self,
        ctx: &SocketCtx,
        event: &'static str,
        r: UserRequest,
    ) -> Result<Reply, ChatError> {
        let p = self.policy(event).await?;
        let target = self.named(event, &r.user).await?;
        let action = event.trim_start_matches("user:");
        authorize(&p, ctx, event, None, 3, Some(&target), action)?;
        let what = if event == names::USER_UNBAN {
            "ban"
        } else {
            "mute"
        };
        let map = if what == "ban" { &p.bans } else { &p.mutes };
        if map.contains_key(&target.key) {
            self.setting(event, SERVER, &format!("{what}:{}", target.key), None)
                .await?;
        }
        if what == "ban" {
            let addrs: Vec<String> = p
                .address_bans
                .iter()
                .filter(|(_, s)| username_key(&s.user) == target.key)
                .map(|(a, _)| a.clone())
                .collect();
            for a in addrs {
                self.setting(event, SERVER, &format!("addr:{a}"), None)
                    .await?;
            }
        }
        self.moderation_event(ctx, action, None, Some(&target.username), None, None);
        Ok(Reply::Empty)
    }

    pub(super) async fn bans(&self, ctx: &dyn Acting) -> Result<Reply, ChatError> {
        let event = names::USER_BANS;
        let p = self.policy(event).await?;
        authorize(&p, ctx, event, None, 3, None, "list bans")?;
        body(&BansAck {
            bans: p.bans_in_force(crate::clock::now_ms()),
        })
    }

    async fn user_role(&self, ctx: &SocketCtx, r: UserRoleRequest) -> Result<Reply, ChatError> {
        let event = names::USER_ROLE;
        let p = self.policy(event).await?;
        authorize(&p, ctx, event, None, 4, None, "give server roles")?;
        let target = self.person(event, &r.user).await?;
        if !target.account || r.role == Role::Guest {
            return Err(ChatError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "{} is a guest: a server role needs an account",
                    target.username
                ),
                event,
            )
            .with("user", target.username));
        }
        if target.key != ctx.key() && p.account_role(&target.key) == Role::Admin {
            return Err(forbidden(event, "admin", None, "change an admin's role"));
        }
        let value = (r.role != Role::User).then(|| r.role.as_str().to_owned());
        self.setting(event, ROLES, &target.key, value).await?;
        self.moderation_event(ctx, "role", None, Some(&target.username), None, None);
        body(&UserRoleAck {
            user: target.username,
            role: r.role,
        })
    }

    /// `user:block` and `user:unblock`.
    async fn block(
        &self,
        ctx: &SocketCtx,
        event: &'static str,
        r: UserRequest,
        on: bool,
    ) -> Result<Reply, ChatError> {
        let me = ctx.me();
        let target = if on {
            self.person(event, &r.user).await?
        } else {
            // Anyone can be unblocked, even a name nobody holds now.
            Person {
                key: username_key(&r.user),
                username: r.user.clone(),
                account: false,
            }
        };
        if target.key == me.key {
            return Err(
                ChatError::new(ErrorCode::InvalidTarget, "that is you", event).with("user", r.user),
            );
        }
        self.setting(
            event,
            &blocks_scope(&me.key),
            &target.key,
            on.then(|| target.username.clone()),
        )
        .await?;
        body(&BlockAck {
            blocked: self.moderation.cached().blocked_by(&me.key),
        })
    }
}

/// An ack body from any serialisable struct.
pub(super) fn body<T: Serialize>(b: &T) -> Result<Reply, ChatError> {
    serde_json::to_value(b)
        .map(Reply::Body)
        .map_err(|e| ChatError::new(ErrorCode::Internal, e.to_string(), "ack"))
}
