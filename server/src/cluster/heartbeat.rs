//! The node's heartbeat: it keeps this node's names taken and its live
//! sessions' records, publishes its presence, and tells whether another
//! node has stopped beating.

use std::sync::Arc;
use std::time::Duration;

use chat_shared::username_key;

use super::names::name_ttl;
use super::{Cluster, unavailable};
use crate::live::ChatState;
use crate::store::redis::{HEARTBEAT_INTERVAL, LIVE_SESSION_TTL};
use crate::store::{SessionRecord, StoreError};

/// Beats every [`HEARTBEAT_INTERVAL`] for `state`'s node until the store
/// is closed; then the node's presence is removed at once.
pub async fn run(cluster: Arc<Cluster>, state: Arc<ChatState>) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    // Live sessions' records are kept a few times per their TTL.
    let keep_every = (LIVE_SESSION_TTL.as_secs() / 4 / HEARTBEAT_INTERVAL.as_secs().max(1)).max(1);
    let mut beats = 0u64;
    loop {
        tick.tick().await;
        beats += 1;
        if beats.is_multiple_of(keep_every)
            && let Err(e) = cluster.keep_sessions(&state.live_tokens()).await
        {
            tracing::warn!("cluster: keeping live sessions: {e}");
        }
        if cluster.redis.is_closed() {
            cluster.leave().await;
            return;
        }
        // Messages Redis lost (it restarted empty) count as pruned.
        state.set_pruned_upto(cluster.redis.lost_upto());
        let names = state.held_names();
        let ttl = name_ttl(state.config.recovery_window);
        match cluster.beat(&names, ttl).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("cluster heartbeat: {e}");
            }
            Err(_) => {}
        }
    }
}

impl Cluster {
    /// A session that was live on a node that has stopped beating lost
    /// its socket when the node died: its window runs from the node's last
    /// heartbeat. False when that window is over (the session has ended).
    pub async fn dead_node_window(
        &self,
        rec: &mut SessionRecord,
        owner: &str,
        recovery_window: Duration,
    ) -> bool {
        if rec.window_ends_at.is_some() || owner == self.node() || owner.is_empty() {
            return true;
        }
        let now = crate::clock::now_ms();
        let dead_after = (HEARTBEAT_INTERVAL * 3).as_millis() as u64;
        match self.redis.last_alive(owner).await {
            Ok(Some(alive)) if now.saturating_sub(alive) > dead_after => {
                let window = recovery_window.as_millis() as u64;
                let ends = alive.saturating_add(window);
                rec.window_ends_at = Some(ends);
                ends > now
            }
            // Alive (a half-open socket there), or unknown: a window from now.
            _ => true,
        }
    }

    /// The heartbeat's share of the cluster: keeps this node's names
    /// (`names`: the display names of the users it holds, live or in their
    /// window) taken, and has its presence written again.
    pub async fn beat(&self, names: &[String], name_ttl: Duration) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let script = redis::Script::new(KEEP_NAMES);
        let mut keep = script.prepare_invoke();
        keep.arg(self.node()).arg(name_ttl.as_millis() as u64);
        for n in names {
            keep.key(format!("chat:name:{}", username_key(n))).arg(n);
        }
        let _: i64 = keep.invoke_async(&mut con).await.map_err(unavailable)?;
        // The presence itself goes through the presence writer, so that
        // a beat never puts back an older snapshot over a newer one.
        self.refresh_presence();
        Ok(())
    }

    /// Pushes back the expiry of live sessions' records (see
    /// [`LIVE_SESSION_TTL`]).
    pub async fn keep_sessions(&self, tokens: &[String]) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut con = self.redis.connection();
        let mut pipe = redis::pipe();
        for t in tokens {
            pipe.pexpire(
                format!("chat:session:{t}"),
                LIVE_SESSION_TTL.as_millis() as i64,
            )
            .ignore();
        }
        pipe.query_async::<()>(&mut con).await.map_err(unavailable)
    }
}

const KEEP_NAMES: &str = r#"
-- KEYS: the names this node holds. ARGV: node, ttl (ms), then each
-- name's display form. A name that expired is taken again; one another
-- node took meanwhile stays theirs.
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v or string.match(v, '^%S+') == ARGV[1] then
    redis.call('SET', k, ARGV[1] .. ' ' .. ARGV[i + 2], 'PX', ARGV[2])
  end
end
return #KEYS
"#;
