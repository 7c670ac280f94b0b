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
        let from = ctx.admission.username.clone();
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
