//! Volatile typing indicators, to a room or one user.

use super::*;

impl ChatService {
    pub(super) async fn typing(
        &self,
        s: &SocketRef,
        ctx: &SocketCtx,
        t: TypingRequest,
    ) -> Result<Reply, ChatError> {
        let event = names::TYPING;
        let from = ctx.username().clone();
        match t.target {
            TypingTarget::Room(raw) => {
                let room = self.member_room(ctx, event, &raw)?;
                let notice = TypingNotice {
                    from,
                    room: Some(room.clone()),
                    to: None,
                    typing: t.typing,
                };
                if let Some(cluster) = &self.cluster {
                    cluster.forward_typing(&notice);
                }
                let _ = s.to(room).volatile().emit(event, &notice).await;
            }
            TypingTarget::User(to) => {
                let target = self.user_target(ctx, event, &to, false).await?;
                if self.blocked_between(&ctx.key(), &target.key) {
                    // (v3) Dropped: typing is volatile, and the sender is
                    // not told who blocks whom.
                    return Ok(Reply::Empty);
                }
                let notice = TypingNotice {
                    from,
                    room: None,
                    to: Some(target.username),
                    typing: t.typing,
                };
                // (v3) Every session of the target: here, and on the other
                // nodes, which deliver it to theirs.
                if let (false, Some(ns)) = (target.sids.is_empty(), self.ns()) {
                    let _ = ns
                        .to(sid_rooms(&target.sids))
                        .volatile()
                        .emit(event, &notice)
                        .await;
                }
                if let (true, Some(cluster)) = (target.live, &self.cluster) {
                    cluster.forward_typing(&notice);
                }
            }
        }
        Ok(Reply::Empty)
    }
}

impl ChatService {
    /// A typing indicator from another node, to this node's sockets: the
    /// room's members here, or the user if this node holds it.
    pub(super) async fn typing_here(&self, t: &TypingNotice) {
        let Some(ns) = self.ns() else { return };
        let op = match (&t.room, &t.to) {
            (Some(room), _) => ns.to(room.clone()),
            (None, Some(to)) => match self.state.target(to) {
                Some(u) if !u.sids.is_empty() => ns.to(sid_rooms(&u.sids)),
                _ => return,
            },
            (None, None) => return,
        };
        let _ = op.volatile().emit(names::TYPING, t).await;
    }
}

/// The rooms named after these sockets' ids (each `/chat` socket is in its
/// own).
fn sid_rooms(sids: &[Sid]) -> Vec<String> {
    sids.iter().map(Sid::to_string).collect()
}
