//! The application state and the pure `update(&mut State, Input) -> Vec<Effect>`.
//!
//! Pure: no terminal, no socket, no clock of its own. Time comes in with
//! [`Input::Tick`] (the caller's monotonic `Instant` and wall-clock
//! milliseconds), network happenings come in as [`NetEvent`]s, and every
//! request to the network goes out as an [`Effect`]. This is what the unit
//! tests drive, and what the headless client of the end-to-end tests reads.
//!
//! One file per concern; a file whose concern has fields of its own keeps
//! them in a struct that [`State`] holds:
//! - [`conversations`]: rooms, DMs and the feed; lines in id order without
//!   duplicates, unread counts, mentions, the "new messages" marker, the cap.
//! - [`outbox`]: own messages, sent in order, paced by the rate limit
//!   (`State::outbox`).
//! - [`session`]: the connection, the `session` event, acks, a taken name
//!   (`State::session`). `conn` and `last_failure` stay on `State`, where
//!   the end-to-end tests read them.
//! - [`account`]: passwords on the input line, `/register`, `/passwd`, DMs
//!   kept for an offline account.
//! - [`editor`]: the input line and the keys (`State::editor`).
//! - [`actions`]: what a line does on Enter (slash commands), and the y/n
//!   questions asked first (quit with unsent messages, a long paste).
//! - [`presence`], [`typing`]: who is online, in a room, typing.
//! - [`notify`]: the bell and desktop notifications for DMs and mentions.
//! - [`viewport`]: scrolling the message pane, the panels, the mouse
//!   (`State::viewport`).
//! - [`backlog`]: older history fetched by scrolling up.
//! - [`search`]: `/search` and Ctrl-R.
//! - (v3) [`moderation`]: each room's settings and roles, the room and
//!   server-wide moderation commands and their answers (`/info`, `/bans`);
//!   [`room_events`]: room events as lines and their effects, invites, my
//!   removal from a room, the server ending my socket; [`blocking`]: whom I
//!   block and their hidden lines; [`rename`]: `/nick` while connected and
//!   the `rename` presence event; [`refusals`]: every refusal in plain
//!   words; [`when`]: times to come ("until 14:05", "9 more minutes").
//! - (v3) One account on several clients: [`markers`]: read markers, the
//!   unread counts at connect, marking read what was seen, the divider at
//!   the marker (`State::markers`); [`clients`]: `/sessions`, and rooms
//!   joined or left on another client.
//! - (v3) Messages that change: [`changes`]: replies, edits, deletions and
//!   reactions as they arrive (`message:update`, history and replays),
//!   kept on each line, and a deleted text erased from everything the
//!   client keeps; [`change_commands`]: `/reply`, `/edit`, `s/old/new/`,
//!   `/delete`, `/react` and their answers; [`selection`]: the message
//!   they act on (Alt-Up/Alt-Down, Esc, Alt-G) (`State::selection`).
//!
//! The imports go one way: [`editor`] (keys) calls [`actions`] and
//! [`viewport`], which calls [`backlog`], which uses [`conversations`].

pub mod account;
pub mod actions;
pub mod backlog;
pub mod blocking;
pub mod change_commands;
pub mod changes;
pub mod clients;
pub mod conversations;
pub mod editor;
pub mod event_lines;
pub mod markers;
pub mod moderation;
pub mod notify;
pub mod outbox;
pub mod presence;
pub mod refusals;
pub mod rename;
pub mod room_events;
pub mod room_state;
pub mod search;
pub mod selection;
pub mod session;
pub mod typing;
pub mod viewport;
pub mod when;

use std::collections::BTreeSet;
use std::time::Duration;

use chat_shared::ClientEvent;
use tokio::time::Instant;

pub use self::actions::Confirm;
pub use self::changes::{LineChanges, ReactionSet};
pub use self::conversations::{
    Backlog, ConvId, Conversation, Delivery, Entry, EntryKind, mentions,
};
pub use self::notify::NotifySettings;
pub use self::room_state::{Removal, Removed, RoomState, role_mark};
pub use self::search::Search;
pub use self::selection::Selection;
pub use self::session::Conn;
pub use self::typing::{TYPING_RESEND, TYPING_TTL};
pub use crate::msg::{AckReply, ConnectFailure, Effect, Input, NetCommand, NetEvent, id_order};

use self::editor::Editor;
use self::outbox::{Outbox, Outgoing};
use self::session::Session;
use self::viewport::Viewport;

/// How long an error toast stays up.
pub const TOAST_TTL: Duration = Duration::from_secs(6);
/// The most toasts stacked at once (older ones are dropped).
pub const TOASTS_MAX: usize = 4;
/// How long "recovered (n missed)" stays in the status bar.
pub const RECOVERED_SHOWN: Duration = Duration::from_secs(10);
/// Lines scrolled per mouse-wheel notch.
pub const WHEEL_LINES: usize = 3;
/// Below this many columns the side panels are hidden unless F2 asks.
pub const NARROW: u16 = 80;
/// The most lines a conversation keeps in memory by default; older ones are
/// dropped and fetched again with `history` when scrolled to.
pub const DEFAULT_MAX_LINES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub text: String,
    pub until: Instant,
    /// News (an invite, a confirmation) rather than an error.
    pub info: bool,
}

/// What an outstanding request was for.
#[derive(Debug, Clone)]
enum Request {
    Join {
        room: String,
        switch: bool,
        rejoin: bool,
    },
    Leave(String),
    Message(Outgoing),
    History(ConvId),
    Rooms,
    Who,
    Refresh,
    /// `account:password`, with the new password for the network task.
    Passwd(crate::password::Password),
    /// (v3) Roles, moderation, blocks, renames: the event as sent, to
    /// word its answer or its refusal. `quiet`: the client asked by itself
    /// (`room:info` after a join), so nothing is said unless it worked.
    Moderation {
        event: ClientEvent,
        quiet: bool,
    },
    /// (v3) `session:list`; `end`: the start of an id `/sessions end`
    /// named, to end once the list says which session it is.
    Sessions {
        end: Option<String>,
    },
    /// (v3) `session:end`, with the session as the user reads it.
    SessionEnd {
        shown: String,
    },
    /// (v3) `read:mark` of this conversation up to `id`.
    ReadMark {
        at: chat_shared::sessions::Conversation,
        id: String,
    },
    /// (v3) `message:edit`, `message:delete` or `message:react` of a
    /// message of `conv`, as sent.
    Change {
        conv: ConvId,
        event: ClientEvent,
    },
}

/// The whole client state.
#[derive(Debug)]
pub struct State {
    /// My username (the server's display form once the session says so).
    pub me: String,
    pub server: String,
    pub conn: Conn,
    /// The session with the server (see [`session`]).
    pub session: Session,
    /// Why the last connection attempt failed, if it did before the server
    /// could say anything.
    pub last_failure: Option<ConnectFailure>,
    pub convs: Vec<Conversation>,
    pub active: ConvId,
    pub online: u64,
    pub users: BTreeSet<String>,
    /// (v3) Whom I block, as the server spells them (see [`blocking`]).
    pub blocked: Vec<String>,
    /// (v3) The account's read markers (see [`markers`]).
    pub markers: markers::Markers,
    /// Rooms known from `/rooms` and snapshots, for completion.
    pub known_rooms: BTreeSet<String>,
    /// Rooms to join once the first session is up (from the configuration).
    pub autojoin: Vec<String>,
    pub toasts: Vec<Toast>,
    /// The input line (see [`editor`]).
    pub editor: Editor,
    /// A question waiting for y/n.
    pub confirm: Option<Confirm>,
    /// The input line asks for a password (masked; see [`account`]).
    pub secret: Option<account::Secret>,
    pub search: Option<Search>,
    /// (v3) The selected message (see [`selection`]).
    pub selection: Selection,
    /// The conversation I last told I am typing in, and when.
    typing_sent: Option<(ConvId, Instant)>,
    outbox: Outbox,
    next_seq: u64,
    pub notify: NotifySettings,
    last_notified: Option<Instant>,
    /// The most lines a conversation keeps in memory.
    pub max_lines: usize,
    /// The screen as the last draw left it (see [`viewport`]).
    pub viewport: Viewport,
    /// How times are shown (chrono `strftime`).
    pub time_format: String,
    pub theme: crate::theme::Theme,
    pub now: Instant,
    pub wall_ms: u64,
    /// Seconds east of UTC for showing times (local time in the app, 0 in tests).
    pub utc_offset_secs: i32,
    /// Lines per PgUp/PgDn, and the largest useful scroll: set from the last
    /// draw. Not in [`Viewport`]: `view::tests` sets them as they are.
    pub page: usize,
    pub max_scroll: usize,
    /// Something visible changed since the last draw.
    pub dirty: bool,
    pub quit: bool,
}

impl State {
    pub fn new(me: &str, server: &str, now: Instant, wall_ms: u64) -> State {
        State {
            me: me.to_owned(),
            server: server.to_owned(),
            conn: Conn::Connecting { attempt: 1 },
            session: Session::new(),
            last_failure: None,
            convs: vec![Conversation::new(ConvId::Feed)],
            active: ConvId::Feed,
            online: 0,
            users: BTreeSet::new(),
            blocked: Vec::new(),
            markers: markers::Markers::default(),
            known_rooms: BTreeSet::new(),
            autojoin: Vec::new(),
            toasts: Vec::new(),
            editor: Editor::default(),
            confirm: None,
            secret: None,
            search: None,
            selection: Selection::default(),
            typing_sent: None,
            outbox: Outbox::new(),
            next_seq: 0,
            notify: NotifySettings::default(),
            last_notified: None,
            max_lines: DEFAULT_MAX_LINES,
            viewport: Viewport::new(),
            time_format: "%H:%M".to_owned(),
            theme: crate::theme::Theme::default(),
            now,
            wall_ms,
            utc_offset_secs: 0,
            page: 10,
            max_scroll: usize::MAX,
            dirty: true,
            quit: false,
        }
    }

    fn toast(&mut self, text: impl Into<String>) {
        self.push_toast(text.into(), false);
    }

    /// A toast that is news, not an error.
    fn notice(&mut self, text: impl Into<String>) {
        self.push_toast(text.into(), true);
    }

    fn push_toast(&mut self, text: String, info: bool) {
        self.toasts.push(Toast {
            text,
            until: self.now + TOAST_TTL,
            info,
        });
        if self.toasts.len() > TOASTS_MAX {
            let extra = self.toasts.len() - TOASTS_MAX;
            self.toasts.drain(..extra);
        }
    }

    fn system(&mut self, conv: &ConvId, text: impl Into<String>) {
        let entry = Entry {
            id: None,
            ts: self.wall_ms,
            from: String::new(),
            text: text.into(),
            kind: EntryKind::System,
            broadcast: false,
            action: false,
            mention: false,
            local: 0,
            epoch: self.session.epoch,
            seq: self.next_seq(),
            wrapped: Default::default(),
            changes: Default::default(),
        };
        self.ensure_conv(conv).push(entry);
    }

    fn request(&mut self, req: Request, event: ClientEvent) -> Effect {
        let id = self.session.next_req;
        self.session.next_req += 1;
        self.session.requests.insert(id, req);
        Effect::Net(NetCommand::Request { req: id, event })
    }
}

/// Applies one input to the state and returns what must be done outside.
pub fn update(state: &mut State, input: Input) -> Vec<Effect> {
    let mut fx = Vec::new();
    match input {
        Input::Tick { now, wall_ms } => tick(state, now, wall_ms, &mut fx),
        Input::Key(key) => {
            state.dirty = true;
            editor::key_input(state, key, &mut fx);
        }
        Input::Paste(text) => {
            state.dirty = true;
            state.editor.completion = None;
            // Carriage returns from terminals become newlines; the text is
            // inserted, never sent: only Enter sends.
            let text = text.replace("\r\n", "\n").replace('\r', "\n");
            editor::insert_str(state, &text);
            typing::after_edit(state, &mut fx);
        }
        Input::Wheel(delta) => {
            state.dirty = true;
            let lines = delta.unsigned_abs() as usize * WHEEL_LINES;
            viewport::scroll(state, delta > 0, lines, &mut fx);
        }
        Input::Net(ev) => {
            state.dirty = true;
            session::net_event(state, ev, &mut fx);
        }
        Input::Focus(focused) => state.viewport.focused = focused,
    }
    // (v3) What the person has now seen is marked read.
    markers::after_update(state, &mut fx);
    fx
}

fn tick(state: &mut State, now: Instant, wall_ms: u64, fx: &mut Vec<Effect>) {
    let before_secs = |s: &State| match &s.conn {
        Conn::Reconnecting {
            last_contact: Some(at),
            ..
        } => Some(s.now.saturating_duration_since(*at).as_secs()),
        _ => None,
    };
    let shown_before = before_secs(state);
    state.now = now;
    state.wall_ms = wall_ms;
    if before_secs(state) != shown_before {
        state.dirty = true;
    }
    if typing::expire(state) {
        state.dirty = true;
    }
    let n = state.toasts.len();
    state.toasts.retain(|t| t.until > now);
    if state.toasts.len() != n {
        state.dirty = true;
    }
    if let Some((_, _, until)) = state.session.recovered
        && until <= now
    {
        state.session.recovered = None;
        state.dirty = true;
    }
    if state.outbox.paused_until.is_some_and(|until| until <= now) {
        let before = fx.len();
        outbox::pump(state, fx);
        if fx.len() != before {
            state.dirty = true;
        }
    }
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_account;
#[cfg(test)]
mod tests_changes;
#[cfg(test)]
mod tests_clients;
#[cfg(test)]
mod tests_daily;
#[cfg(test)]
mod tests_moderation;
