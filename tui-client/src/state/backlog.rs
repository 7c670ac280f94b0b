//! Older history: scrolling above the oldest loaded line asks the server for
//! the page before it (`history`), shows "loading…" meanwhile, and
//! "beginning of history" once the server says there is nothing older.

use chat_shared::{
    AckError, ClientEvent, HistoryMessage, HistoryRequest, HistoryTarget, sanitize_for_display,
};

use super::conversations::mentions;
use super::{Backlog, ConvId, Effect, Entry, EntryKind, LineChanges, Request, State};
use crate::msg::AckReply;

/// Messages asked for per page.
pub const PAGE: u64 = 100;

/// Asks for the page of history before the active conversation's oldest
/// line, unless one is on its way or there is nothing older.
pub(super) fn fetch_older(state: &mut State, fx: &mut Vec<Effect>) {
    let conv = state.active.clone();
    fetch_older_of(state, conv, fx);
}

/// [`fetch_older`] for any conversation.
pub(super) fn fetch_older_of(state: &mut State, conv: ConvId, fx: &mut Vec<Effect>) {
    if !state.session.live {
        return;
    }
    let target = match &conv {
        ConvId::Room(r) => HistoryTarget::Room(r.clone()),
        ConvId::Dm(u) => HistoryTarget::With(u.clone()),
        // The feed has no history on the server.
        ConvId::Feed => return,
    };
    let Some(c) = state.conv_mut(&conv) else {
        return;
    };
    if c.backlog != Backlog::Unknown {
        return;
    }
    c.backlog = Backlog::Loading;
    let before = c.oldest_id().map(str::to_owned);
    // A room's pages hold its events too (v3; an older server ignores
    // the flag), so scrolling back shows who was kicked and why.
    let events = matches!(target, HistoryTarget::Room(_));
    let ev = ClientEvent::History(HistoryRequest {
        target,
        before,
        limit: Some(PAGE),
        events,
    });
    fx.push(state.request(Request::History(conv), ev));
}

/// A page of history arrived (or did not).
pub(super) fn page(state: &mut State, conv: ConvId, result: Result<AckReply, AckError>) {
    let epoch = state.session.epoch;
    match result {
        Ok(AckReply::History(h)) => {
            let mut older = Vec::with_capacity(h.messages.len());
            for m in h.messages {
                let (id, ts, from, text, action, changes) = match m {
                    HistoryMessage::Room(m) => (
                        m.id,
                        m.ts,
                        m.from,
                        m.text,
                        m.action,
                        LineChanges::folded(m.reply_to, m.edited, m.deleted, m.reactions),
                    ),
                    HistoryMessage::Dm(m) => (
                        m.id,
                        m.ts,
                        m.from,
                        m.text,
                        m.action,
                        LineChanges::folded(m.reply_to, m.edited, m.deleted, m.reactions),
                    ),
                    HistoryMessage::Event(ev) => {
                        let text = super::event_lines::line(
                            state,
                            &ev.room,
                            &ev,
                            chat_shared::RoomRole::Member,
                        );
                        let seq = state.next_seq();
                        older.push(Entry {
                            id: Some(ev.id),
                            ts: ev.ts,
                            mention: false,
                            from: String::new(),
                            text,
                            kind: EntryKind::System,
                            broadcast: false,
                            action: false,
                            local: 0,
                            epoch,
                            seq,
                            wrapped: Default::default(),
                            changes: Default::default(),
                        });
                        continue;
                    }
                };
                let text = sanitize_for_display(changes.shown_text(&text));
                let from_shown = sanitize_for_display(&from);
                // (v3) Held already: it comes as it stands now.
                if let Some(pos) = state
                    .conv(&conv)
                    .and_then(|c| super::changes::held(c, &id, &from_shown, &text, epoch, &changes))
                {
                    super::changes::apply_snapshot(state, &conv, pos, text, changes);
                    continue;
                }
                let mine = state.is_me(&from);
                let seq = state.next_seq();
                older.push(Entry {
                    id: Some(id),
                    ts,
                    mention: !mine && mentions(&text, &state.me),
                    from: from_shown,
                    text,
                    kind: if mine {
                        EntryKind::Own(super::Delivery::Sent)
                    } else {
                        EntryKind::Chat
                    },
                    broadcast: false,
                    action: action == Some(true),
                    local: 0,
                    epoch,
                    seq,
                    wrapped: Default::default(),
                    changes,
                });
            }
            if let Some(c) = state.conv_mut(&conv) {
                c.prepend(older);
                c.backlog = if h.more {
                    Backlog::Unknown
                } else {
                    Backlog::Complete
                };
            }
            // (v3) The lines after the read marker may be here now.
            super::markers::refresh_divider(state, &conv);
        }
        Ok(_) | Err(_) => {
            if let Some(c) = state.conv_mut(&conv) {
                c.backlog = Backlog::Unknown;
            }
        }
    }
}
