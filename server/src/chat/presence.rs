//! Presence changes to their scope, folded into summaries in a storm
//! (the gate itself is [`super::presence_gate`]).

use super::*;

impl ChatService {
    /// Sends a presence change to its scope (`""`: every `/chat` socket;
    /// else that room), or folds it into the scope's summary in a storm.
    /// With several nodes its counts are the cluster's, and the other
    /// nodes send it to their sockets too.
    pub(super) async fn presence(&self, scope: &str, mut p: Presence) {
        if let Some(cluster) = &self.cluster {
            cluster.count_others(&mut p).await;
            cluster.forward_presence(&p);
        }
        self.presence_here(scope, p).await;
    }

    /// [`presence`](Self::presence) to this node's sockets only.
    pub(super) async fn presence_here(&self, scope: &str, p: Presence) {
        if p.event == PresenceKind::Rename {
            // (v3) Not an arrival or a departure: a summary cannot fold
            // it, and renames are rare (one per request, rate limited).
            self.emit_presence(scope, &p).await;
            return;
        }
        let user = p.user.as_deref().unwrap_or_default();
        match self.presence_gate.admit(scope, user, p.arrives()) {
            Decision::Send => self.emit_presence(scope, &p).await,
            Decision::Folded { flush_at: None } => {}
            Decision::Folded { flush_at: Some(at) } => {
                let svc = self.clone();
                let scope = scope.to_owned();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    svc.flush_presence(&scope).await;
                });
            }
        }
    }

    pub(super) async fn flush_presence(&self, scope: &str) {
        let folded = self.presence_gate.take(scope);
        if folded.joined_count == 0 && folded.left_count == 0 {
            return;
        }
        let room = (!scope.is_empty()).then(|| scope.to_owned());
        let mut p = Presence {
            event: PresenceKind::Summary,
            user: None,
            members: room.as_ref().map(|r| self.state.members(r)),
            room,
            online: self.state.online(),
            reason: None,
            recovered: None,
            from: None,
            summary: Some(PresenceSummary {
                joined: folded.joined,
                left: folded.left,
                joined_count: folded.joined_count,
                left_count: folded.left_count,
            }),
        };
        if let Some(cluster) = &self.cluster {
            cluster.count_others(&mut p).await;
        }
        self.emit_presence(scope, &p).await;
    }

    pub(super) async fn emit_presence(&self, scope: &str, p: &Presence) {
        let Some(ns) = self.ns() else { return };
        let op = if scope.is_empty() {
            ns
        } else {
            ns.to(scope.to_owned())
        };
        if let Err(e) = op.emit(names::PRESENCE, p).await {
            tracing::debug!("presence emit: {e}");
        }
    }
}

impl ChatService {
    /// (v3) Whether another node holds a live session of the account `key`
    /// (other than `token`): its arrival or departure here is not the
    /// person's. Always false on one node.
    pub(super) async fn live_elsewhere(&self, key: &str, token: &str) -> bool {
        if self.cluster.is_none() {
            return false;
        }
        match self.store.user_sessions(key).await {
            Ok(sessions) => sessions.iter().any(|s| {
                s.token != token
                    && s.window_ends_at.is_none()
                    && self.state.session_owner(&s.token).is_none()
            }),
            Err(e) => {
                tracing::debug!("sessions: {e}");
                false
            }
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
    pub(super) async fn cluster_presence(&self) -> Option<PresenceSnapshot> {
        let cluster = self.cluster.as_ref()?;
        match cluster.snapshot(self.state.node_presence()).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("cluster presence: {e}");
                None
            }
        }
    }
}
