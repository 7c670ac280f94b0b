//! `room:join` and `room:leave`: membership, presence, the join's history.

use super::history::history_message;
use super::*;
use std::collections::BTreeMap;

use chat_shared::{RoomCount, username_key};

impl ChatService {
    pub(super) async fn join(
        &self,
        s: Option<&SocketRef>,
        ctx: &dyn Acting,
        raw: &str,
    ) -> Result<Reply, ChatError> {
        let event = names::ROOM_JOIN;
        let room = self.room(event, raw)?;
        let adm = ctx.me();
        let policy = self.policy(event).await?;
        self.may_join(&policy, ctx, &room)?;
        let created = adm.account
            && !self.state.is_member(&adm.key, &room)
            && self.room_is_new(&policy, &room).await;
        let joined = self
            .state
            .join(&adm.key, &room)
            .map_err(|code| match code {
                ErrorCode::TooManyRooms => super::refusal::too_many_rooms(
                    event,
                    self.state.config.max_rooms_per_user,
                    &room,
                ),
                _ => ChatError::new(code, "could not join", event),
            })?;
        if let Some(s) = s {
            s.join(room.clone());
        }
        if joined.fresh {
            // Every node lists the member before the join is acked.
            self.sync_presence().await;
            // (v3) The account's other clients are in it too.
            self.membership_changed(&adm.key, &room, true, s.map(|s| s.id))
                .await;
            self.joined(&policy, ctx, &room, created).await;
            let online = self.state.online();
            let join = Presence::change(
                PresenceKind::Join,
                &adm.username,
                Some((&room, joined.count)),
                online,
            );
            self.presence(&room, join).await;
            let mut ev = admin_event(AdminEventType::Join);
            ev.user = Some(adm.username.clone());
            ev.room = Some(room.clone());
            self.admin.send(ev);
        }
        let history: Vec<chat_shared::RoomMessage> = {
            let limit = self.state.config.history;
            // Messages only: room events are not history.
            let mut page: Vec<_> = joined
                .history
                .into_iter()
                .filter(|m| m.is_message())
                .collect();
            if page.len() < limit {
                page = self.room_page(&room, None, limit, false).await.0;
            }
            page.iter()
                .filter_map(|m| match history_message(m, false) {
                    Some(HistoryMessage::Room(r)) => Some(r),
                    _ => None,
                })
                .collect()
        };
        let members = self.room_members(&room, joined.members).await;
        let now = self.moderation.cached();
        let settings = now.room(&room);
        Ok(Reply::Joined(JoinAck {
            topic: settings.map(|r| r.topic.clone()).unwrap_or_default(),
            private: settings.is_some_and(|r| r.private),
            role: Some(now.room_role(&room, &adm.key)),
            room,
            members,
            history,
        }))
    }

    pub(super) async fn leave(
        &self,
        s: Option<&SocketRef>,
        ctx: &dyn Acting,
        raw: &str,
    ) -> Result<Reply, ChatError> {
        let event = names::ROOM_LEAVE;
        let room = self.room(event, raw)?;
        let adm = ctx.me();
        let members = self.state.leave(&adm.key, &room).map_err(|code| {
            ChatError::new(code, format!("not in {room}"), event).with("room", room.clone())
        })?;
        self.sync_presence().await;
        // Announced before the socket leaves, so the leaver hears it too.
        let online = self.state.online();
        let leave = Presence::change(
            PresenceKind::Leave,
            &adm.username,
            Some((&room, members)),
            online,
        );
        self.presence(&room, leave).await;
        if let Some(s) = s {
            s.leave(room.clone());
        }
        // (v3) The account's other clients are out of it too.
        self.membership_changed(&adm.key, &room, false, s.map(|s| s.id))
            .await;
        let mut ev = admin_event(AdminEventType::Leave);
        ev.user = Some(adm.username.clone());
        ev.room = Some(room.clone());
        self.admin.send(ev);
        Ok(Reply::Left(LeaveAck { room }))
    }
}

impl ChatService {
    /// The live members of `room` on every node (`here`: this node's),
    /// for the `room:join` ack. This node's alone without a cluster or
    /// when Redis cannot say.
    pub(super) async fn room_members(&self, room: &str, here: Vec<String>) -> Vec<String> {
        let Some(cluster) = &self.cluster else {
            return here;
        };
        let nodes = match cluster.presence().await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("cluster presence: {e}");
                return here;
            }
        };
        let mut all: BTreeMap<String, String> =
            here.into_iter().map(|u| (username_key(&u), u)).collect();
        for (node, mut p) in nodes {
            if node == cluster.node() {
                continue;
            }
            for u in p.rooms.remove(room).unwrap_or_default() {
                all.entry(username_key(&u)).or_insert(u);
            }
        }
        all.into_values().collect()
    }

    /// `room:list`: every node's rooms.
    pub(super) async fn room_list(&self) -> Vec<RoomCount> {
        match self.cluster_presence().await {
            Some(p) => p.rooms,
            None => self.state.room_list(),
        }
    }
}
