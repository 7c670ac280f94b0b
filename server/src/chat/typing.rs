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
                if let (Some(sid), Some(ns)) = (target.sid, self.ns()) {
                    let _ = ns.to(sid).volatile().emit(event, &notice).await;
                } else if let (true, Some(cluster)) = (target.live, &self.cluster)
                    && !self.state.name_held(&target.key)
                {
                    // On another node, which delivers it.
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
            (None, Some(to)) => match self.state.target(to).and_then(|u| u.sid) {
                Some(sid) => ns.to(sid),
                None => return,
            },
            (None, None) => return,
        };
        let _ = op.volatile().emit(names::TYPING, t).await;
    }
}
