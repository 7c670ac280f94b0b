//! Usernames across nodes: `chat:name:<key>` holds the node whose user
//! has the name, taken with `SET NX` and kept by the node's heartbeat;
//! and the announcements that move a session or a name between nodes.

use std::time::Duration;

use chat_shared::username_key;
use redis::AsyncCommands;

use super::{CONTROL_CHANNEL, Cluster, unavailable};
use crate::store::StoreError;
use crate::store::redis::HEARTBEAT_INTERVAL;

/// How long a name stays taken after its node's last heartbeat: as long
/// as its session's recovery window, so that a dead node's users find
/// their names when they resume elsewhere.
pub fn name_ttl(recovery_window: Duration) -> Duration {
    recovery_window + HEARTBEAT_INTERVAL * 3
}

impl Cluster {
    /// Takes the username `key` for this node: false when another node's
    /// user has it. `ttl` is how long it stays taken without a heartbeat.
    pub async fn claim_name(&self, display: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut con = self.redis.connection();
        let name = format!("chat:name:{}", username_key(display));
        let node = self.node();
        let set: Option<String> = redis::cmd("SET")
            .arg(&name)
            .arg(format!("{node} {display}"))
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        Ok(set.is_none_or(|holder| holder.split(' ').next() == Some(node)))
    }

    /// The display name of `key` if some node's user holds it.
    pub async fn holder(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut con = self.redis.connection();
        let v: Option<String> = con
            .get(format!("chat:name:{key}"))
            .await
            .map_err(unavailable)?;
        Ok(v.and_then(|v| v.split_once(' ').map(|(_, d)| d.to_owned())))
    }

    /// Takes the username `key` whatever node had it (a session resumed
    /// here from another node).
    pub async fn take_name(&self, display: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let value = format!("{} {display}", self.node());
        let _: () = con
            .pset_ex(
                format!("chat:name:{}", username_key(display)),
                value,
                ttl.as_millis() as u64,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Lets `key` go if this node holds it (a refused admission).
    pub async fn release_name(&self, key: &str) {
        let mut con = self.redis.connection();
        let _: redis::RedisResult<i64> = redis::Script::new(
            "local v = redis.call('GET', KEYS[1]) if v and string.match(v, '^%S+') == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        )
        .key(format!("chat:name:{key}"))
        .arg(self.node())
        .invoke_async(&mut con)
        .await;
    }

    /// Tells the other nodes that this node holds the session `token` now.
    pub async fn announce_claim(&self, token: &str) -> Result<(), StoreError> {
        self.announce("claimed", token).await
    }

    /// (v3) Tells the other nodes to end the session of `key` (a server
    /// kick or ban): its socket there gets `err` and is disconnected.
    pub async fn announce_end(
        &self,
        key: &str,
        err: &chat_shared::ChatError,
    ) -> Result<(), StoreError> {
        let body = serde_json::json!({ "key": key, "error": err });
        self.announce("ended", &body.to_string()).await
    }

    /// (v3) Tells the other nodes that a moderation setting changed: they
    /// read the settings again now rather than at their next poll.
    pub async fn announce_settings(&self) -> Result<(), StoreError> {
        self.announce("settings", "-").await
    }

    /// (v3) Tells the other nodes what an account's session did here (see
    /// [`AccountNote`](super::feed::AccountNote)).
    pub async fn announce_account(
        &self,
        note: &super::feed::AccountNote,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(note).unwrap_or_default();
        self.announce("account", &body).await
    }

    /// One control line to the other nodes: `WHAT NODE SUBJECT`.
    async fn announce(&self, what: &str, subject: &str) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let _: i64 = con
            .publish(CONTROL_CHANNEL, format!("{what} {} {subject}", self.node()))
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
