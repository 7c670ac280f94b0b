//! What `/admin` sees of the other nodes: each node writes its share (its
//! users as the admin snapshot lists them, and its message count) at
//! every heartbeat to `chat:node-admin:<id>`, expiring with its presence;
//! a node's `/admin` adds the live nodes' shares to its own.

use std::collections::BTreeMap;

use chat_shared::{AdminUser, PresenceSnapshot, RoomCount, username_key};
use redis::AsyncCommands;

use super::{Cluster, NODE_TTL_BEATS, unavailable};
use crate::live::NodePresence;
use crate::store::StoreError;
use crate::store::redis::HEARTBEAT_INTERVAL;

/// One node's share of `/admin`.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdminShare {
    pub users: Vec<AdminUser>,
    /// Messages this node has sent out since it started (its
    /// `messagesTotal`).
    pub messages_total: u64,
}

fn admin_key(node: &str) -> String {
    format!("chat:node-admin:{node}")
}

impl Cluster {
    /// Writes this node's share (the heartbeat, every beat).
    pub async fn put_admin_share(&self, share: &AdminShare) -> Result<(), StoreError> {
        let mut con = self.redis.connection();
        let ttl = (HEARTBEAT_INTERVAL * NODE_TTL_BEATS).as_millis() as u64;
        let body = serde_json::to_string(share).unwrap_or_default();
        con.pset_ex::<_, _, ()>(admin_key(self.node()), body, ttl)
            .await
            .map_err(unavailable)
    }

    /// The other live nodes' shares, by node.
    pub async fn admin_shares(&self) -> Result<Vec<(String, AdminShare)>, StoreError> {
        let nodes: Vec<String> = self
            .presence()
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n != self.node())
            .collect();
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.redis.connection();
        let keys: Vec<String> = nodes.iter().map(|n| admin_key(n)).collect();
        let bodies: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut con)
            .await
            .map_err(unavailable)?;
        Ok(nodes
            .into_iter()
            .zip(bodies)
            .filter_map(|(n, b)| Some((n, serde_json::from_str(&b?).ok()?)))
            .collect())
    }

    /// The cluster's presence: `here` (this node's, as it is now) and the
    /// other live nodes' as written: an account with sessions on two
    /// nodes counts once, in `online` and in each room.
    pub async fn snapshot(&self, here: NodePresence) -> Result<PresenceSnapshot, StoreError> {
        let nodes = self.presence().await?;
        let mut users: BTreeMap<String, String> = BTreeMap::new();
        let mut rooms: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        let mine = self.node();
        let others = nodes
            .into_iter()
            .filter(|(node, _)| node != mine)
            .map(|(_, p)| p);
        for p in others.chain(std::iter::once(here)) {
            for u in p.users {
                users.insert(username_key(&u), u);
            }
            for (room, members) in p.rooms {
                rooms
                    .entry(room)
                    .or_default()
                    .extend(members.iter().map(|m| username_key(m)));
            }
        }
        Ok(PresenceSnapshot {
            online: users.len() as u64,
            users: users.into_values().collect(),
            rooms: rooms
                .into_iter()
                .map(|(room, members)| RoomCount::new(room, members.len() as u64))
                .collect(),
        })
    }
}
