//! Several nodes on one Redis (`--redis-url`), as this node's sockets see
//! them: every message is delivered from the cluster's feed (in id order,
//! once), a session held by another node is taken over (its old socket
//! there is told `session_replaced`), usernames are claimed cluster-wide,
//! `presence:get`, `room:list` and `room:join` count every node, and
//! presence changes and typing reach the other nodes' sockets. Without a
//! cluster each of these is the single node's behaviour.

use std::collections::BTreeMap;

use super::*;
use crate::cluster::{Cluster, Feed, FeedEvent};
use crate::live::Target;
use crate::store::SessionRecord;
use crate::store::redis::{HEARTBEAT_INTERVAL, LIVE_SESSION_TTL};
use chat_shared::{RoomCount, username_key};

impl ChatService {
    /// Starts delivering the cluster's messages after the id `after`, and
    /// the node's heartbeat. Does nothing without a cluster. Both tasks
    /// end once the store is closed.
    pub fn follow_cluster(&self, after: u64) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let mut feed = Feed::start(cluster.redis.clone(), after);
        let svc = self.clone();
        tokio::spawn(async move {
            while let Some(ev) = feed.recv().await {
                match ev {
                    FeedEvent::Message(m) => svc.deliver_numbered(&cluster, &m),
                    FeedEvent::Claimed { token } => {
                        if let Some(sid) = svc.state.release(&token) {
                            tracing::info!("session taken over by another node");
                            svc.replace(sid);
                        }
                    }
                    FeedEvent::Presence(p) => {
                        let scope = p.room.clone().unwrap_or_default();
                        svc.presence_here(&scope, p).await;
                    }
                    FeedEvent::Typing(t) => svc.typing_here(&t).await,
                    FeedEvent::Evicted { key } => {
                        if let Some(sid) = svc.state.evict(&key) {
                            tracing::info!(user = %key, "name taken by a password login on another node");
                            svc.replace(sid);
                        }
                    }
                }
                if cluster.redis.is_closed() {
                    return;
                }
            }
        });
        let svc = self.clone();
        tokio::spawn(async move { svc.heartbeat().await });
    }

    /// Delivers one message of the feed to this node's sockets.
    fn deliver_numbered(&self, cluster: &Cluster, msg: &Arc<MessageRecord>) {
        self.deliver_committed(msg, None);
        cluster.delivered(msg.id);
    }

    /// How long a name stays taken after its node's last heartbeat: as
    /// long as its session's recovery window, so that a dead node's users
    /// find their names when they resume elsewhere.
    fn name_ttl(&self) -> Duration {
        self.state.config.recovery_window + HEARTBEAT_INTERVAL * 3
    }

    async fn heartbeat(&self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        // Live sessions' records are kept a few times per their TTL.
        let keep_every =
            (LIVE_SESSION_TTL.as_secs() / 4 / HEARTBEAT_INTERVAL.as_secs().max(1)).max(1);
        let mut beats = 0u64;
        loop {
            tick.tick().await;
            beats += 1;
            if beats.is_multiple_of(keep_every)
                && let Err(e) = cluster.keep_sessions(&self.state.live_tokens()).await
            {
                tracing::warn!("cluster: keeping live sessions: {e}");
            }
            if cluster.redis.is_closed() {
                cluster.leave().await;
                return;
            }
            // Messages Redis lost (it restarted empty) count as pruned.
            self.state.set_pruned_upto(cluster.redis.lost_upto());
            let names = self.state.held_names();
            let presence = self.state.node_presence();
            match cluster.beat(&names, &presence, self.name_ttl()).await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("cluster heartbeat: {e}");
                }
                Err(_) => {}
            }
        }
    }

    /// The cluster's side of a handshake, around
    /// [`login_here`](Self::login_here): a session this node does not know
    /// is looked up in Redis and taken over, and a new name is claimed
    /// across nodes.
    pub(super) async fn login(
        &self,
        auth: &Auth,
        sid: Sid,
        from: Option<std::net::IpAddr>,
    ) -> Result<crate::live::Admission, ConnectRefusal> {
        let Some(cluster) = self.cluster.clone() else {
            return self.login_here(auth, sid, from).await;
        };
        let key = username_key(&auth.username);
        // What Redis lost (it came back empty) counts as pruned: a replay
        // from before it says `truncated`.
        self.state.set_pruned_upto(cluster.redis.lost_upto());
        let down = |e: crate::store::StoreError| {
            tracing::warn!("cluster: {e}");
            ConnectRefusal::new(
                ErrorCode::Unavailable,
                "the server cannot reach its store: try again",
            )
        };
        if let Some(offset) = auth.offset.as_deref().and_then(|o| o.parse::<u64>().ok()) {
            // A client resuming from another node may have seen messages
            // this node's feed has not delivered yet: wait (a bounded time)
            // for them, so that its offset is one this node knows.
            cluster.wait_delivered(offset).await;
        }
        if let Some(token) = auth.session.as_deref()
            && self.state.session_owner(token).is_none()
            && let Some(rec) = cluster.redis.session(token).await.map_err(down)?
        {
            if username_key(&rec.username) != key {
                return Err(ConnectRefusal::new(
                    ErrorCode::InvalidSession,
                    "that session belongs to another username",
                ));
            }
            // Ours from now on: the node that held it lets it go, and
            // tells its socket there, if any.
            if let Some((mut rec, owner)) =
                cluster.redis.claim_session(token).await.map_err(down)?
                && self.window_from_a_dead_node(&mut rec, &owner).await
                && self.state.adopt(&rec)
            {
                cluster
                    .take_name(&rec.username, self.name_ttl())
                    .await
                    .map_err(down)?;
                cluster.announce_claim(token).await.map_err(down)?;
            }
        }
        let held_here = self.state.name_held(&key);
        let claimed = held_here
            || cluster
                .claim_name(&auth.username, self.name_ttl())
                .await
                .map_err(down)?;
        let admitted = self.login_here(auth, sid, from).await;
        if !claimed {
            // Another node's session holds the name. Only the account's
            // password takes it from there, as it does on one node; the
            // refusals (a password needed, a wrong one) are the same too.
            return match admitted {
                Ok(adm) if adm.account && !adm.recovered => {
                    cluster
                        .take_name(&adm.username, self.name_ttl())
                        .await
                        .map_err(down)?;
                    cluster.announce_eviction(&key).await.map_err(down)?;
                    Ok(adm)
                }
                Ok(adm) => {
                    // An admission the name's holder elsewhere forbids:
                    // undo it here.
                    self.state.abandon(&adm.key, sid, !adm.recovered);
                    Err(ConnectRefusal::new(
                        ErrorCode::UsernameTaken,
                        format!("{} is in use", auth.username),
                    ))
                }
                Err(e) => Err(e),
            };
        }
        if admitted.is_err() && !held_here && !self.state.name_held(&key) {
            cluster.release_name(&key).await;
        }
        admitted
    }

    /// A session that was live on a node that has stopped beating lost
    /// its socket when the node died: its window runs from the node's last
    /// heartbeat. False when that window is over (the session has ended).
    async fn window_from_a_dead_node(&self, rec: &mut SessionRecord, owner: &str) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        if rec.window_ends_at.is_some() || owner == cluster.node() || owner.is_empty() {
            return true;
        }
        let now = crate::clock::now_ms();
        let dead_after = (HEARTBEAT_INTERVAL * 3).as_millis() as u64;
        match cluster.redis.last_alive(owner).await {
            Ok(Some(alive)) if now.saturating_sub(alive) > dead_after => {
                let window = self.state.config.recovery_window.as_millis() as u64;
                let ends = alive.saturating_add(window);
                rec.window_ends_at = Some(ends);
                ends > now
            }
            // Alive (a half-open socket there), or unknown: a window from now.
            _ => true,
        }
    }

    /// A typing indicator from another node, to this node's sockets: the
    /// room's members here, or the user if this node holds it.
    async fn typing_here(&self, t: &TypingNotice) {
        let Some(ns) = self.ns() else { return };
        let op = match (&t.room, &t.to) {
            (Some(room), _) => ns.to(room.clone()),
            (None, Some(to)) => match self.state.target(to).and_then(|u| u.sid) {
                Some(sid) => ns.to(sid),
                None => return,
            },
            (None, None) => return,
        };
        let _ = op.volatile().emit(names::TYPING, t).await;
    }

    /// A DM target on another node: a user whose name some node holds.
    pub(super) async fn remote_target(&self, to: &str) -> Option<Target> {
        let cluster = self.cluster.as_ref()?;
        let key = username_key(to);
        match cluster.holder(&key).await {
            Ok(Some(username)) => Some(Target {
                key,
                username,
                sid: None,
                live: true,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("cluster: {e}");
                None
            }
        }
    }

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

    /// `presence:get`: every node's users and rooms.
    pub(super) async fn presence_snapshot(&self) -> PresenceSnapshot {
        self.cluster_presence()
            .await
            .unwrap_or_else(|| self.state.presence_snapshot())
    }

    /// The cluster's presence: this node's as it is now, the others' as
    /// of their last heartbeat. `None` without a cluster (or when Redis
    /// cannot say: then this node's own).
    async fn cluster_presence(&self) -> Option<PresenceSnapshot> {
        let cluster = self.cluster.as_ref()?;
        let nodes = match cluster.presence().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("cluster presence: {e}");
                return None;
            }
        };
        let here = self.state.node_presence();
        let mut users: BTreeMap<String, String> = BTreeMap::new();
        let mut rooms: BTreeMap<String, u64> = BTreeMap::new();
        let mine = cluster.node();
        let others = nodes
            .into_iter()
            .filter(|(node, _)| node != mine)
            .map(|(_, p)| p);
        for p in others.chain(std::iter::once(here)) {
            for u in p.users {
                users.insert(username_key(&u), u);
            }
            for (room, members) in p.rooms {
                *rooms.entry(room).or_default() += members.len() as u64;
            }
        }
        Some(PresenceSnapshot {
            online: users.len() as u64,
            users: users.into_values().collect(),
            rooms: rooms
                .into_iter()
                .map(|(room, members)| RoomCount { room, members })
                .collect(),
        })
    }
}
