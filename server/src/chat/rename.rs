//! (v3) `user:rename`: a guest changes its name in place. Its session,
//! token, rooms and socket stay; every `/chat` socket hears a `rename`
//! presence event. An account's name is fixed.

use super::moderation::sanctioned;
use super::*;
use chat_shared::{RenameAck, RenameRequest, username_key};

impl ChatService {
    pub(super) async fn rename(
        &self,
        ctx: &SocketCtx,
        r: RenameRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::USER_RENAME;
        let me = ctx.me();
        if me.account {
            return Err(ChatError::new(
                ErrorCode::Forbidden,
                format!("{} is an account: its name is fixed", me.username),
                event,
            ));
        }
        let name = r.username.trim();
        if !is_valid_username(name) {
            return Err(ChatError::new(
                ErrorCode::InvalidUsername,
                "a username is 1-32 characters of A-Z a-z 0-9 _ . -",
                event,
            )
            .with("username", name));
        }
        if name == me.username {
            return super::moderation::body(&RenameAck {
                username: me.username,
            });
        }
        let key = username_key(name);
        let taken = || {
            ChatError::new(ErrorCode::UsernameTaken, format!("{name} is in use"), event)
                .with("username", name)
        };
        let policy = self.policy(event).await?;
        if let Some(ban) = policy.server_ban(&key, crate::clock::now_ms()) {
            return Err(sanctioned(ErrorCode::Banned, event, ban, None).with("username", name));
        }
        if key != me.key {
            match self.store.account(&key).await {
                Ok(Some(_)) => return Err(taken()),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("accounts: {e}");
                    return Err(unavailable(event, "look up accounts"));
                }
            }
            if self.state.name_held(&key) {
                return Err(taken());
            }
        }
        if let Some(cluster) = &self.cluster {
            let ttl = crate::cluster::names::name_ttl(self.state.config.recovery_window);
            let claimed = cluster.claim_name(name, ttl).await.map_err(|e| {
                tracing::warn!("cluster: {e}");
                unavailable(event, "reach its store")
            })?;
            if !claimed && key != me.key {
                return Err(taken());
            }
        }
        if self.state.rename(&me.key, &key, name).is_err() {
            if let Some(cluster) = &self.cluster
                && key != me.key
            {
                cluster.release_name(&key).await;
            }
            return Err(taken());
        }
        ctx.rename(key.clone(), name.to_owned());
        if let Some(cluster) = &self.cluster
            && key != me.key
        {
            cluster.release_name(&me.key).await;
        }
        tracing::info!(from = %me.username, to = name, "rename");
        self.sync_presence().await;
        let mut p = Presence::change(PresenceKind::Rename, name, None, self.state.online());
        p.from = Some(me.username.clone());
        self.presence("", p).await;
        super::moderation::body(&RenameAck {
            username: name.to_owned(),
        })
    }
}
