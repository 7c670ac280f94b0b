//! The application state and `update(&mut State, Input) -> Vec<Effect>`.
//!
//! Pure: no terminal, no socket, no clock of its own. Time comes in with
//! [`Input::Tick`] (the caller's monotonic `Instant` and wall-clock
//! milliseconds), network happenings come in as [`NetEvent`]s, and every
//! request to the network goes out as an [`Effect`]. This is what the unit
//! tests drive, and what the headless client of the end-to-end tests reads.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use chat_shared::{
    AckError, ChatError, ClientEvent, ConnectRefusal, DEFAULT_MAX_TEXT, DmMessage, DmRequest,
    FeedMessage, JoinAck, Presence, PresenceKind, PresenceSnapshot, RoomMessage,
    RoomMessageRequest, RoomRequest, ServerEvent, SessionInfo, TYPING_TTL_MS, TextRequest,
    TypingNotice, TypingRequest, TypingTarget, canonical_room, check_text, is_valid_username,
    sanitize_for_display, username_key,
};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::time::Instant;

use crate::commands::{self, Command};
use crate::net::{AckReply, NetCommand, NetEvent};

/// How long a typing signal from someone else is shown.
pub const TYPING_TTL: Duration = Duration::from_millis(TYPING_TTL_MS);
/// The least time between two `typing:true` of mine.
pub const TYPING_RESEND: Duration = Duration::from_secs(2);
/// How long an error toast stays up.
pub const TOAST_TTL: Duration = Duration::from_secs(6);
/// The most toasts stacked at once (older ones are dropped).
pub const TOASTS_MAX: usize = 4;
/// How long "recovered (n missed)" stays in the status bar.
pub const RECOVERED_SHOWN: Duration = Duration::from_secs(10);
/// Lines scrolled per mouse-wheel notch.
pub const WHEEL_LINES: usize = 3;

/// A conversation: a room, a direct conversation with one user, or the
/// global feed (global and broadcast messages).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConvId {
    Feed,
    Room(String),
    /// Keyed by the peer's username as first seen (compared case-insensitively).
    Dm(String),
}

impl ConvId {
    /// The name shown in the conversations pane.
    pub fn label(&self) -> String {
        match self {
            ConvId::Feed => "* feed".to_owned(),
            ConvId::Room(r) => r.clone(),
            ConvId::Dm(u) => format!("@{u}"),
        }
    }
}

/// Where an own message is on its way to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Waiting in the outbox for the session to come back.
    Queued,
    /// Sent, no ack yet.
    Pending,
    /// Acked (or echoed) by the server.
    Sent,
    /// Refused or timed out: the error code.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A message from someone else.
    Chat,
    /// A message of mine.
    Own(Delivery),
    /// A line from this client (help, /rooms, /who, notices).
    System,
}

/// One line of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The server's id; `None` for own messages before their ack and for
    /// system lines.
    pub id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    pub from: String,
    /// Already sanitised for display.
    pub text: String,
    pub kind: EntryKind,
    /// A broadcast (everyone but the sender) rather than a global message.
    pub broadcast: bool,
    /// This client's sequence number for own messages (0 otherwise).
    pub local: u64,
    /// The server session epoch the id belongs to (see [`State::epoch`]).
    pub epoch: u32,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: ConvId,
    pub entries: Vec<Entry>,
    pub unread: usize,
    pub mentioned: bool,
    /// Lines scrolled up from the bottom.
    pub scroll: usize,
    /// Room members by name (rooms only).
    pub members: BTreeSet<String>,
    /// The room's member count as the server last said.
    pub member_count: Option<u64>,
    /// Who is typing here, and until when it is shown.
    pub typing: BTreeMap<String, Instant>,
}

impl Conversation {
    fn new(id: ConvId) -> Self {
        Conversation {
            id,
            entries: Vec::new(),
            unread: 0,
            mentioned: false,
            scroll: 0,
            members: BTreeSet::new(),
            member_count: None,
            typing: BTreeMap::new(),
        }
    }

    /// Whether this conversation already holds the message `id`: the same id
    /// in the same epoch, or across epochs the same id, sender and text (a
    /// restarted server numbers from the start again, so an id alone from an
    /// older epoch may name another message).
    fn has_message(&self, id: &str, from: &str, text: &str, epoch: u32) -> bool {
        self.entries.iter().any(|e| {
            e.id.as_deref() == Some(id) && (e.epoch == epoch || (e.from == from && e.text == text))
        })
    }

    /// Inserts `entry` (which has an id) in id order within its epoch, after
    /// every entry of older epochs and above own messages that still wait
    /// for their ack. Returns false if that message is already here.
    fn insert_ordered(&mut self, entry: Entry) -> bool {
        let Some(id) = entry.id.clone() else {
            self.entries.push(entry);
            return true;
        };
        if self.has_message(&id, &entry.from, &entry.text, entry.epoch) {
            return false;
        }
        let mut pos = self.entries.len();
        while pos > 0 {
            let prev = &self.entries[pos - 1];
            if prev.id.is_some() && prev.epoch < entry.epoch {
                break;
            }
            let unacked_own = prev.id.is_none()
                && matches!(
                    prev.kind,
                    EntryKind::Own(Delivery::Pending | Delivery::Queued)
                );
            let after = prev
                .id
                .as_deref()
                .is_some_and(|p| id_order(p, &id) == Some(std::cmp::Ordering::Greater));
            if unacked_own || after {
                pos -= 1;
            } else {
                break;
            }
        }
        self.entries.insert(pos, entry);
        true
    }
}

/// Ids are opaque strings assigned in delivery order. This server makes them
/// decimal: compare them as numbers when both parse, and not at all otherwise.
pub fn id_order(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    match (a.parse::<u128>(), b.parse::<u128>()) {
        (Ok(x), Ok(y)) => Some(x.cmp(&y)),
        _ => None,
    }
}

/// The connection as the status bar tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conn {
    Connecting {
        attempt: u32,
    },
    Connected,
    Reconnecting {
        attempt: u32,
        last_contact: Option<Instant>,
    },
    Refused {
        reason: String,
        retrying: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toast {
    pub text: String,
    pub until: Instant,
}

/// What the state is fed.
#[derive(Debug, Clone)]
pub enum Input {
    Key(KeyEvent),
    /// Bracketed paste: inserted, never sent by itself.
    Paste(String),
    /// Mouse wheel: positive scrolls up (older), negative down.
    Wheel(i32),
    /// The clock moved: monotonic time and wall-clock milliseconds.
    Tick {
        now: Instant,
        wall_ms: u64,
    },
    Net(NetEvent),
}

/// What the state asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Net(NetCommand),
    Quit,
}

/// Where an own message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Room(String),
    Dm(String),
    Global,
    Broadcast,
}

#[derive(Debug, Clone)]
struct Outgoing {
    local: u64,
    conv: ConvId,
    target: Target,
    text: String,
}

/// What an outstanding request was for.
#[derive(Debug, Clone)]
enum Request {
    Join { switch: bool, rejoin: bool },
    Leave(String),
    Message(Outgoing),
    Rooms,
    Who,
    Refresh,
}

/// The whole client state.
#[derive(Debug)]
pub struct State {
    /// My username (the server's display form once the session says so).
    pub me: String,
    pub server: String,
    pub conn: Conn,
    /// True between a `session` event and the next connection loss: requests
    /// go out only then; otherwise own messages wait in the outbox.
    pub live: bool,
    /// Whether a session was ever established (connecting vs reconnecting).
    pub had_session: bool,
    /// `(missed, truncated, shown until)` after a recovered session.
    pub recovered: Option<(u64, bool, Instant)>,
    pub convs: Vec<Conversation>,
    pub active: ConvId,
    /// Bumped by every fresh (not recovered) session after the first: ids
    /// are only comparable within one epoch, since a fresh session may be a
    /// restarted server that numbers messages from the start again.
    pub epoch: u32,
    pub online: u64,
    pub users: BTreeSet<String>,
    /// Rooms known from `/rooms` and snapshots, for completion.
    pub known_rooms: BTreeSet<String>,
    pub toasts: Vec<Toast>,
    pub input: String,
    /// Cursor position in chars.
    pub cursor: usize,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    draft: String,
    completion: Option<Completion>,
    /// The conversation I last told I am typing in, and when.
    typing_sent: Option<(ConvId, Instant)>,
    /// Own messages not yet sent, oldest first. They go out one at a time,
    /// each after the previous one's ack: the server handles events
    /// concurrently, so two sent back to back may be numbered out of order.
    outbox: VecDeque<Outgoing>,
    /// The request of the own message on its way, if any.
    in_flight: Option<u64>,
    /// Room re-joins after a fresh session: the outbox waits for them, or
    /// its messages could reach a room before I am back in it.
    rejoins: usize,
    requests: HashMap<u64, Request>,
    next_req: u64,
    next_local: u64,
    pub now: Instant,
    pub wall_ms: u64,
    /// Seconds east of UTC for showing times (local time in the app, 0 in tests).
    pub utc_offset_secs: i32,
    /// Lines per PgUp/PgDn, and the largest useful scroll: set from the last draw.
    pub page: usize,
    pub max_scroll: usize,
    /// Something visible changed since the last draw.
    pub dirty: bool,
    pub quit: bool,
}

#[derive(Debug, Clone)]
struct Completion {
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

impl State {
    pub fn new(me: &str, server: &str, now: Instant, wall_ms: u64) -> State {
        State {
            me: me.to_owned(),
            server: server.to_owned(),
            conn: Conn::Connecting { attempt: 1 },
            live: false,
            had_session: false,
            recovered: None,
            convs: vec![Conversation::new(ConvId::Feed)],
            active: ConvId::Feed,
            epoch: 0,
            online: 0,
            users: BTreeSet::new(),
            known_rooms: BTreeSet::new(),
            toasts: Vec::new(),
            input: String::new(),
            cursor: 0,
            history: Vec::new(),
            history_pos: None,
            draft: String::new(),
            completion: None,
            typing_sent: None,
            outbox: VecDeque::new(),
            in_flight: None,
            rejoins: 0,
            requests: HashMap::new(),
            next_req: 1,
            next_local: 1,
            now,
            wall_ms,
            utc_offset_secs: 0,
            page: 10,
            max_scroll: usize::MAX,
            dirty: true,
            quit: false,
        }
    }

    pub fn conv(&self, id: &ConvId) -> Option<&Conversation> {
        self.convs.iter().find(|c| &c.id == id)
    }

    fn conv_mut(&mut self, id: &ConvId) -> Option<&mut Conversation> {
        self.convs.iter_mut().find(|c| &c.id == id)
    }

    pub fn active_conv(&self) -> &Conversation {
        // The active conversation always exists; the feed is never removed.
        self.conv(&self.active).unwrap_or(&self.convs[0])
    }

    fn active_index(&self) -> usize {
        self.convs
            .iter()
            .position(|c| c.id == self.active)
            .unwrap_or(0)
    }

    /// The DM conversation with `user`, matched case-insensitively, created
    /// if needed.
    fn dm_conv(&mut self, user: &str) -> ConvId {
        let key = username_key(user);
        if let Some(c) = self
            .convs
            .iter()
            .find(|c| matches!(&c.id, ConvId::Dm(u) if username_key(u) == key))
        {
            return c.id.clone();
        }
        let id = ConvId::Dm(user.to_owned());
        self.convs.push(Conversation::new(id.clone()));
        id
    }

    fn ensure_conv(&mut self, id: &ConvId) -> &mut Conversation {
        if let Some(pos) = self.convs.iter().position(|c| &c.id == id) {
            return &mut self.convs[pos];
        }
        self.convs.push(Conversation::new(id.clone()));
        let last = self.convs.len() - 1;
        &mut self.convs[last]
    }

    /// Joined rooms, in the order of the conversations pane.
    pub fn rooms(&self) -> Vec<String> {
        self.convs
            .iter()
            .filter_map(|c| match &c.id {
                ConvId::Room(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn is_me(&self, name: &str) -> bool {
        username_key(name) == username_key(&self.me)
    }

    /// Who is typing in the active conversation, oldest signal first.
    pub fn typing_names(&self) -> Vec<String> {
        let now = self.now;
        self.active_conv()
            .typing
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The status bar's text, as the user reads it.
    pub fn status_text(&self) -> String {
        match &self.conn {
            Conn::Connecting { attempt } if *attempt <= 1 => {
                format!("connecting to {}…", self.server)
            }
            Conn::Connecting { attempt } => {
                format!("connecting to {} (attempt {attempt})…", self.server)
            }
            Conn::Connected => match self.recovered {
                Some((missed, truncated, until)) if until > self.now => format!(
                    "connected as {} · recovered ({missed} missed{})",
                    self.me,
                    if truncated { ", some lost" } else { "" }
                ),
                _ => format!("connected as {}", self.me),
            },
            Conn::Reconnecting {
                attempt,
                last_contact,
            } => match last_contact {
                Some(at) => format!(
                    "reconnecting (attempt {attempt}, last contact {} s ago)",
                    self.now.saturating_duration_since(*at).as_secs()
                ),
                None => format!("reconnecting (attempt {attempt})"),
            },
            Conn::Refused { reason, retrying } => {
                format!(
                    "refused ({reason}){}",
                    if *retrying { ", retrying" } else { "" }
                )
            }
        }
    }

    /// Own messages not sent yet, in the order they will go.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Own messages waiting for the session to come back (shown as queued).
    pub fn queued_len(&self) -> usize {
        if self.live { 0 } else { self.outbox.len() }
    }

    fn toast(&mut self, text: impl Into<String>) {
        self.toasts.push(Toast {
            text: text.into(),
            until: self.now + TOAST_TTL,
        });
        if self.toasts.len() > TOASTS_MAX {
            let extra = self.toasts.len() - TOASTS_MAX;
            self.toasts.drain(..extra);
        }
    }

    fn system(&mut self, conv: &ConvId, text: impl Into<String>) {
        let ts = self.wall_ms;
        let entry = Entry {
            id: None,
            ts,
            from: String::new(),
            text: text.into(),
            kind: EntryKind::System,
            broadcast: false,
            local: 0,
            epoch: self.epoch,
        };
        self.ensure_conv(conv).entries.push(entry);
    }

    fn request(&mut self, req: Request, event: ClientEvent) -> Effect {
        let id = self.next_req;
        self.next_req += 1;
        self.requests.insert(id, req);
        Effect::Net(NetCommand::Request { req: id, event })
    }

    fn switch_to(&mut self, id: ConvId, fx: &mut Vec<Effect>) {
        if self.active != id {
            self.stop_typing(fx);
        }
        if let Some(c) = self.conv_mut(&id) {
            c.unread = 0;
            c.mentioned = false;
            self.active = id;
        }
    }
}

/// Applies one input to the state and returns what must be done outside.
pub fn update(state: &mut State, input: Input) -> Vec<Effect> {
    let mut fx = Vec::new();
    match input {
        Input::Tick { now, wall_ms } => tick(state, now, wall_ms),
        Input::Key(key) => {
            state.dirty = true;
            key_input(state, key, &mut fx);
        }
        Input::Paste(text) => {
            state.dirty = true;
            state.completion = None;
            // Carriage returns from terminals become newlines; the text is
            // inserted, never sent: only Enter sends.
            let text = text.replace("\r\n", "\n").replace('\r', "\n");
            insert_str(state, &text);
            after_edit(state, &mut fx);
        }
        Input::Wheel(delta) => {
            state.dirty = true;
            let lines = delta.unsigned_abs() as usize * WHEEL_LINES;
            scroll(state, delta > 0, lines);
        }
        Input::Net(ev) => {
            state.dirty = true;
            net_event(state, ev, &mut fx);
        }
    }
    fx
}

fn tick(state: &mut State, now: Instant, wall_ms: u64) {
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
    for c in &mut state.convs {
        let n = c.typing.len();
        c.typing.retain(|_, until| *until > now);
        if c.typing.len() != n {
            state.dirty = true;
        }
    }
    let n = state.toasts.len();
    state.toasts.retain(|t| t.until > now);
    if state.toasts.len() != n {
        state.dirty = true;
    }
    if let Some((_, _, until)) = state.recovered
        && until <= now
    {
        state.recovered = None;
        state.dirty = true;
    }
}

fn scroll(state: &mut State, up: bool, lines: usize) {
    let max = state.max_scroll;
    let id = state.active.clone();
    if let Some(c) = state.conv_mut(&id) {
        c.scroll = if up {
            c.scroll.saturating_add(lines).min(max)
        } else {
            c.scroll.saturating_sub(lines)
        };
    }
}

// ------------------------------------------------------------------ keys

fn key_input(state: &mut State, key: KeyEvent, fx: &mut Vec<Effect>) {
    if key.kind == KeyEventKind::Release {
        return;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    if key.code != KeyCode::Tab {
        state.completion = None;
    }
    match key.code {
        KeyCode::Char('c') if ctrl => {
            state.stop_typing(fx);
            state.quit = true;
            fx.push(Effect::Quit);
        }
        KeyCode::Char('n') if ctrl => cycle(state, 1, fx),
        KeyCode::Char('p') if ctrl => cycle(state, -1, fx),
        KeyCode::Char('u') if ctrl => {
            state.input.clear();
            state.cursor = 0;
            after_edit(state, fx);
        }
        KeyCode::Char('a') if ctrl => state.cursor = 0,
        KeyCode::Char('e') if ctrl => state.cursor = state.input.chars().count(),
        KeyCode::Char(d @ '1'..='9') if alt => {
            let i = (d as usize) - ('1' as usize);
            if let Some(c) = state.convs.get(i) {
                let id = c.id.clone();
                state.switch_to(id, fx);
            }
        }
        KeyCode::Char(c) if !ctrl && !alt => {
            insert_str(state, &c.to_string());
            after_edit(state, fx);
        }
        KeyCode::Esc => state.toasts.clear(),
        KeyCode::Enter => submit(state, fx),
        KeyCode::Tab => complete(state),
        KeyCode::Backspace if state.cursor > 0 => {
            state.cursor -= 1;
            remove_char(state, state.cursor);
            after_edit(state, fx);
        }
        KeyCode::Delete if state.cursor < state.input.chars().count() => {
            remove_char(state, state.cursor);
            after_edit(state, fx);
        }
        KeyCode::Left => state.cursor = state.cursor.saturating_sub(1),
        KeyCode::Right => state.cursor = (state.cursor + 1).min(state.input.chars().count()),
        KeyCode::Home => state.cursor = 0,
        KeyCode::End => state.cursor = state.input.chars().count(),
        KeyCode::Up => history_move(state, true),
        KeyCode::Down => history_move(state, false),
        KeyCode::PageUp => scroll(state, true, state.page),
        KeyCode::PageDown => scroll(state, false, state.page),
        _ => {}
    }
}

fn byte_at(s: &str, chars: usize) -> usize {
    s.char_indices()
        .nth(chars)
        .map(|(b, _)| b)
        .unwrap_or(s.len())
}

fn insert_str(state: &mut State, text: &str) {
    let at = byte_at(&state.input, state.cursor);
    state.input.insert_str(at, text);
    state.cursor += text.chars().count();
}

fn remove_char(state: &mut State, pos: usize) {
    let at = byte_at(&state.input, pos);
    if at < state.input.len() {
        state.input.remove(at);
    }
}

fn cycle(state: &mut State, step: isize, fx: &mut Vec<Effect>) {
    let n = state.convs.len() as isize;
    let i = (state.active_index() as isize + step).rem_euclid(n) as usize;
    let id = state.convs[i].id.clone();
    state.switch_to(id, fx);
}

fn history_move(state: &mut State, up: bool) {
    if state.history.is_empty() {
        return;
    }
    let next = match (state.history_pos, up) {
        (None, true) => {
            state.draft = state.input.clone();
            Some(state.history.len() - 1)
        }
        (None, false) => None,
        (Some(p), true) => Some(p.saturating_sub(1)),
        (Some(p), false) if p + 1 < state.history.len() => Some(p + 1),
        (Some(_), false) => None,
    };
    state.input = match next {
        Some(p) => state.history[p].clone(),
        None => std::mem::take(&mut state.draft),
    };
    state.history_pos = next;
    state.cursor = state.input.chars().count();
}

fn complete(state: &mut State) {
    if let Some(comp) = &mut state.completion {
        // Tab again: replace the previous candidate with the next one.
        let prev = comp.candidates[comp.index].clone();
        comp.index = (comp.index + 1) % comp.candidates.len();
        let next = comp.candidates[comp.index].clone();
        let start = comp.start;
        replace_word(state, start, prev.chars().count(), &next);
        return;
    }
    let (start, word) = commands::word_before(&state.input, state.cursor);
    let mut rooms: Vec<String> = state.rooms();
    rooms.extend(state.known_rooms.iter().cloned());
    let mut users: Vec<String> = state.users.iter().cloned().collect();
    for c in &state.convs {
        users.extend(c.members.iter().cloned());
        if let ConvId::Dm(u) = &c.id {
            users.push(u.clone());
        }
    }
    let candidates = commands::candidates(&word, start, &rooms, &users);
    if candidates.is_empty() {
        return;
    }
    let first = candidates[0].clone();
    replace_word(state, start, word.chars().count(), &first);
    if candidates.len() > 1 {
        state.completion = Some(Completion {
            start,
            candidates,
            index: 0,
        });
    } else {
        insert_str(state, " ");
    }
}

/// Replaces `len` chars at char index `start` by `with`, cursor after it.
fn replace_word(state: &mut State, start: usize, len: usize, with: &str) {
    let a = byte_at(&state.input, start);
    let b = byte_at(&state.input, start + len);
    state.input.replace_range(a..b, with);
    state.cursor = start + with.chars().count();
}

/// After the input changed: tell the conversation I am typing (at most every
/// [`TYPING_RESEND`]), or that I stopped when the line is empty again.
fn after_edit(state: &mut State, fx: &mut Vec<Effect>) {
    state.history_pos = None;
    if state.input.trim().is_empty() || state.input.starts_with('/') {
        state.stop_typing(fx);
        return;
    }
    let target = match &state.active {
        ConvId::Room(r) => TypingTarget::Room(r.clone()),
        ConvId::Dm(u) => TypingTarget::User(u.clone()),
        ConvId::Feed => return,
    };
    if !state.live {
        return;
    }
    let due = match &state.typing_sent {
        Some((conv, at)) => {
            *conv != state.active || state.now.saturating_duration_since(*at) >= TYPING_RESEND
        }
        None => true,
    };
    if due {
        state.typing_sent = Some((state.active.clone(), state.now));
        fx.push(Effect::Net(NetCommand::Volatile(ClientEvent::Typing(
            TypingRequest {
                target,
                typing: true,
            },
        ))));
    }
}

impl State {
    fn stop_typing(&mut self, fx: &mut Vec<Effect>) {
        let Some((conv, _)) = self.typing_sent.take() else {
            return;
        };
        let target = match conv {
            ConvId::Room(r) => TypingTarget::Room(r),
            ConvId::Dm(u) => TypingTarget::User(u),
            ConvId::Feed => return,
        };
        if self.live {
            fx.push(Effect::Net(NetCommand::Volatile(ClientEvent::Typing(
                TypingRequest {
                    target,
                    typing: false,
                },
            ))));
        }
    }
}

fn submit(state: &mut State, fx: &mut Vec<Effect>) {
    let line = std::mem::take(&mut state.input);
    state.cursor = 0;
    state.history_pos = None;
    state.draft.clear();
    if line.trim().is_empty() {
        return;
    }
    if state.history.last() != Some(&line) {
        state.history.push(line.clone());
    }
    state.stop_typing(fx);
    match commands::parse(&line) {
        Command::Say(text) => {
            let target = match &state.active {
                ConvId::Room(r) => Target::Room(r.clone()),
                ConvId::Dm(u) => Target::Dm(u.clone()),
                ConvId::Feed => Target::Global,
            };
            let conv = state.active.clone();
            send_text(state, conv, target, &text, fx);
        }
        Command::Join(room) => match canonical_room(&room) {
            Some(room) => {
                let ev = ClientEvent::RoomJoin(RoomRequest { room: room.clone() });
                if state.live {
                    fx.push(state.request(
                        Request::Join {
                            switch: true,
                            rejoin: false,
                        },
                        ev,
                    ));
                } else {
                    state.toast(format!("not connected: /join {room} later"));
                }
            }
            None => state.toast(format!(
                "invalid_room: {room:?} is not a room name (# then 1-32 of a-z 0-9 _ -)"
            )),
        },
        Command::Leave(room) => {
            let room = match room {
                Some(r) => canonical_room(&r),
                None => match &state.active {
                    ConvId::Room(r) => Some(r.clone()),
                    _ => None,
                },
            };
            match room {
                Some(room) if state.live => {
                    let ev = ClientEvent::RoomLeave(RoomRequest { room: room.clone() });
                    fx.push(state.request(Request::Leave(room), ev));
                }
                Some(_) => state.toast("not connected: /leave later"),
                None => {
                    state.toast("usage: /leave [#room] (the active conversation is not a room)")
                }
            }
        }
        Command::Msg { to, text } => {
            if !is_valid_username(&to) {
                state.toast(format!("invalid_username: {to:?} is not a username"));
                return;
            }
            if state.is_me(&to) {
                state.toast("invalid_target: that is you");
                return;
            }
            let conv = state.dm_conv(&to);
            state.switch_to(conv.clone(), fx);
            if !text.trim().is_empty() {
                let peer = match &conv {
                    ConvId::Dm(u) => u.clone(),
                    _ => to,
                };
                send_text(state, conv, Target::Dm(peer), &text, fx);
            }
        }
        Command::All(text) => send_text(state, ConvId::Feed, Target::Global, &text, fx),
        Command::Bcast(text) => send_text(state, ConvId::Feed, Target::Broadcast, &text, fx),
        Command::Rooms => {
            if state.live {
                fx.push(state.request(Request::Rooms, ClientEvent::RoomList));
            } else {
                state.toast("not connected");
            }
        }
        Command::Who => {
            if state.live {
                fx.push(state.request(Request::Who, ClientEvent::PresenceGet));
            } else {
                state.toast("not connected");
            }
        }
        Command::Help => {
            let conv = state.active.clone();
            state.system(&conv, "commands:");
            for (_, usage, what) in commands::COMMANDS {
                state.system(&conv, format!("  {usage:<18} {what}"));
            }
            state.system(&conv, "keys:");
            for (key, what) in commands::KEYS {
                state.system(&conv, format!("  {key:<18} {what}"));
            }
        }
        Command::Quit => {
            state.quit = true;
            fx.push(Effect::Quit);
        }
        Command::Usage(u) => state.toast(format!("usage: {u}")),
        Command::Unknown(c) => state.toast(format!("unknown command {c} (try /help)")),
    }
}

/// Shows an own message at once and sends it, or queues it while there is no
/// session.
fn send_text(state: &mut State, conv: ConvId, target: Target, text: &str, fx: &mut Vec<Effect>) {
    let text = match check_text(text, DEFAULT_MAX_TEXT) {
        Ok(t) => t.to_owned(),
        Err(e) => {
            state.toast(format!("{}: {e}", e.code()));
            return;
        }
    };
    let local = state.next_local;
    state.next_local += 1;
    let out = Outgoing {
        local,
        conv: conv.clone(),
        target: target.clone(),
        text: text.clone(),
    };
    let entry = Entry {
        id: None,
        ts: state.wall_ms,
        from: state.me.clone(),
        text: sanitize_for_display(&text),
        kind: EntryKind::Own(if state.live {
            Delivery::Pending
        } else {
            Delivery::Queued
        }),
        broadcast: target == Target::Broadcast,
        local,
        epoch: state.epoch,
    };
    let c = state.ensure_conv(&conv);
    c.entries.push(entry);
    c.scroll = 0;
    state.outbox.push_back(out);
    pump(state, fx);
}

/// Sends the next own message if the session is up and nothing is on its way.
fn pump(state: &mut State, fx: &mut Vec<Effect>) {
    if !state.live || state.in_flight.is_some() || state.rejoins > 0 {
        return;
    }
    if let Some(out) = state.outbox.pop_front() {
        set_delivery(state, &out.conv.clone(), out.local, Delivery::Pending);
        let effect = send_outgoing(state, out);
        if let Effect::Net(NetCommand::Request { req, .. }) = &effect {
            state.in_flight = Some(*req);
        }
        fx.push(effect);
    }
}

fn send_outgoing(state: &mut State, out: Outgoing) -> Effect {
    let text = out.text.clone();
    let ev = match &out.target {
        Target::Room(room) => ClientEvent::RoomMessage(RoomMessageRequest {
            room: room.clone(),
            text,
            action: false,
        }),
        Target::Dm(to) => ClientEvent::DmMessage(DmRequest {
            to: to.clone(),
            text,
            action: false,
        }),
        Target::Global => ClientEvent::GlobalMessage(TextRequest {
            text,
            action: false,
        }),
        Target::Broadcast => ClientEvent::BroadcastMessage(TextRequest {
            text,
            action: false,
        }),
    };
    state.request(Request::Message(out), ev)
}

fn set_delivery(state: &mut State, conv: &ConvId, local: u64, d: Delivery) {
    if let Some(c) = state.conv_mut(conv)
        && let Some(e) = c
            .entries
            .iter_mut()
            .find(|e| e.local == local && local != 0)
    {
        e.kind = EntryKind::Own(d);
    }
}

// --------------------------------------------------------------- network

fn net_event(state: &mut State, ev: NetEvent, fx: &mut Vec<Effect>) {
    match ev {
        NetEvent::Connecting {
            attempt,
            last_contact,
        } => {
            state.live = false;
            let waiting: Vec<(ConvId, u64)> = state
                .outbox
                .iter()
                .map(|o| (o.conv.clone(), o.local))
                .collect();
            for (conv, local) in waiting {
                set_delivery(state, &conv, local, Delivery::Queued);
            }
            state.conn = if state.had_session {
                Conn::Reconnecting {
                    attempt,
                    last_contact,
                }
            } else {
                Conn::Connecting { attempt }
            };
        }
        NetEvent::Refused { refusal, retrying } => {
            state.live = false;
            refused(state, &refusal, retrying);
        }
        NetEvent::Server(ev) => server_event(state, ev, fx),
        NetEvent::Ack { req, result } => ack(state, req, result, fx),
        NetEvent::Presence(snapshot) => apply_snapshot(state, &snapshot),
    }
}

fn refused(state: &mut State, refusal: &ConnectRefusal, retrying: bool) {
    state.conn = Conn::Refused {
        reason: refusal.to_string(),
        retrying,
    };
    state.toast(format!("connection refused: {refusal}"));
}

fn server_event(state: &mut State, ev: ServerEvent, fx: &mut Vec<Effect>) {
    match ev {
        ServerEvent::Session(s) => session(state, s, fx),
        ServerEvent::RoomMessage(m) => room_message(state, m),
        ServerEvent::DmMessage(m) => dm_message(state, m),
        ServerEvent::GlobalMessage(m) => feed_message(state, m, false),
        ServerEvent::BroadcastMessage(m) => feed_message(state, m, true),
        ServerEvent::Typing(t) => typing(state, t),
        ServerEvent::Presence(p) => presence(state, p, fx),
        ServerEvent::Error(e) => chat_error(state, &e),
        // Admin events never come on /chat; nothing to show.
        ServerEvent::AdminSnapshot(_) | ServerEvent::AdminEvent(_) | ServerEvent::AdminStats(_) => {
        }
    }
}

fn session(state: &mut State, s: SessionInfo, fx: &mut Vec<Effect>) {
    state.me = s.username.clone();
    state.live = true;
    state.conn = Conn::Connected;
    let rooms_before = state.rooms();
    if s.recovered {
        state.recovered = Some((s.missed, s.truncated, state.now + RECOVERED_SHOWN));
    } else {
        state.recovered = None;
    }
    for room in &s.rooms {
        if let Some(room) = canonical_room(room) {
            state.ensure_conv(&ConvId::Room(room));
        }
    }
    if !s.recovered && state.had_session {
        state.epoch += 1;
        // A fresh session after a loss: the server forgot my rooms; join
        // them again (the history in the acks fills what it can).
        for room in rooms_before {
            if !s.rooms.contains(&room) {
                let ev = ClientEvent::RoomJoin(RoomRequest { room });
                state.rejoins += 1;
                fx.push(state.request(
                    Request::Join {
                        switch: false,
                        rejoin: true,
                    },
                    ev,
                ));
            }
        }
        state.toast("session not recovered: messages sent meanwhile may be missing");
    }
    state.had_session = true;
    // Whatever was on its way went with the old connection; its ack (or
    // timeout) still settles that line. The outbox goes out in order, after
    // any re-joins.
    state.in_flight = None;
    fx.push(state.request(Request::Refresh, ClientEvent::PresenceGet));
    pump(state, fx);
}

/// Adds a message from the server to `conv`: an echo of one of mine takes
/// the place of the pending line; a duplicate (replay or history) is dropped.
fn receive(
    state: &mut State,
    conv: ConvId,
    id: String,
    ts: u64,
    from: &str,
    text: &str,
    broadcast: bool,
) {
    let mine = state.is_me(from);
    let active = state.active == conv;
    let mention = !mine && mentions(text, &state.me);
    let epoch = state.epoch;
    let c = state.ensure_conv(&conv);
    c.typing.remove(from);
    if c.has_message(
        &id,
        &sanitize_for_display(from),
        &sanitize_for_display(text),
        epoch,
    ) {
        return;
    }
    if mine {
        // My own message coming back (room or global): attach the id to the
        // oldest pending line with that text, then put it in id order.
        if let Some(pos) = c.entries.iter().position(|e| {
            e.id.is_none()
                && match &e.kind {
                    EntryKind::Own(Delivery::Pending | Delivery::Queued) => true,
                    // Its ack was lost with the connection, but it got through.
                    EntryKind::Own(Delivery::Failed(code)) => code == "timeout",
                    _ => false,
                }
                && e.text == sanitize_for_display(text)
        }) {
            let mut e = c.entries.remove(pos);
            e.id = Some(id);
            e.ts = ts;
            e.epoch = epoch;
            e.kind = EntryKind::Own(Delivery::Sent);
            c.insert_ordered(e);
            return;
        }
    }
    let entry = Entry {
        id: Some(id),
        ts,
        from: sanitize_for_display(from),
        text: sanitize_for_display(text),
        kind: if mine {
            EntryKind::Own(Delivery::Sent)
        } else {
            EntryKind::Chat
        },
        broadcast,
        local: 0,
        epoch,
    };
    if c.insert_ordered(entry) && !mine && !active {
        c.unread += 1;
        c.mentioned |= mention;
    }
}

/// Whether `text` names `me` as a word (case-insensitive, `@` optional).
pub fn mentions(text: &str, me: &str) -> bool {
    let me = me.to_lowercase();
    text.to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .any(|w| w.trim_end_matches('.') == me)
}

fn room_message(state: &mut State, m: RoomMessage) {
    let Some(room) = canonical_room(&m.room) else {
        return;
    };
    receive(
        state,
        ConvId::Room(room),
        m.id,
        m.ts,
        &m.from,
        &m.text,
        false,
    );
}

fn dm_message(state: &mut State, m: DmMessage) {
    let peer = if state.is_me(&m.from) {
        m.to.clone()
    } else {
        m.from.clone()
    };
    if !is_valid_username(&peer) {
        return;
    }
    let conv = state.dm_conv(&peer);
    receive(state, conv, m.id, m.ts, &m.from, &m.text, false);
}

fn feed_message(state: &mut State, m: FeedMessage, broadcast: bool) {
    receive(state, ConvId::Feed, m.id, m.ts, &m.from, &m.text, broadcast);
}

fn typing(state: &mut State, t: TypingNotice) {
    if state.is_me(&t.from) || !is_valid_username(&t.from) {
        return;
    }
    let conv = match &t.room {
        Some(r) => match canonical_room(r) {
            Some(r) => ConvId::Room(r),
            None => return,
        },
        None => state.dm_conv(&t.from),
    };
    let until = state.now + TYPING_TTL;
    let Some(c) = state.conv_mut(&conv) else {
        return;
    };
    if t.typing {
        c.typing.insert(t.from, until);
    } else {
        c.typing.remove(&t.from);
    }
}

fn presence(state: &mut State, p: Presence, fx: &mut Vec<Effect>) {
    state.online = p.online;
    let room = p.room.as_deref().and_then(canonical_room).map(ConvId::Room);
    let user = p
        .user
        .as_deref()
        .filter(|u| is_valid_username(u))
        .map(str::to_owned);
    match (p.event, user) {
        (PresenceKind::Connect, Some(u)) => {
            state.users.insert(u);
        }
        (PresenceKind::Disconnect, Some(u)) => {
            state.users.remove(&u);
        }
        (PresenceKind::Join, Some(u)) => {
            state.users.insert(u.clone());
            if let Some(c) = room.as_ref().and_then(|r| state.conv_mut(r)) {
                c.members.insert(u);
                c.member_count = p.members;
            }
        }
        (PresenceKind::Leave, Some(u)) => {
            if let Some(c) = room.as_ref().and_then(|r| state.conv_mut(r)) {
                c.members.remove(&u);
                c.member_count = p.members;
            }
        }
        (PresenceKind::Summary, _) => {
            let Some(s) = p.summary else { return };
            let complete = s.joined.is_some() && s.left.is_some();
            let joined = s.joined.unwrap_or_default();
            let left = s.left.unwrap_or_default();
            match room.as_ref() {
                Some(r) => {
                    if let Some(c) = state.conv_mut(r) {
                        c.members
                            .extend(joined.iter().filter(|u| is_valid_username(u)).cloned());
                        for u in &left {
                            c.members.remove(u);
                        }
                        c.member_count = p.members;
                    }
                    state
                        .users
                        .extend(joined.into_iter().filter(|u| is_valid_username(u)));
                }
                None => {
                    state
                        .users
                        .extend(joined.into_iter().filter(|u| is_valid_username(u)));
                    for u in &left {
                        state.users.remove(u);
                    }
                }
            }
            if !complete && state.live {
                fx.push(state.request(Request::Refresh, ClientEvent::PresenceGet));
            }
        }
        _ => {}
    }
}

fn apply_snapshot(state: &mut State, snap: &PresenceSnapshot) {
    state.online = snap.online;
    state.users = snap
        .users
        .iter()
        .filter(|u| is_valid_username(u))
        .cloned()
        .collect();
    for rc in &snap.rooms {
        if let Some(room) = canonical_room(&rc.room) {
            if let Some(c) = state.conv_mut(&ConvId::Room(room.clone())) {
                c.member_count = Some(rc.members);
            }
            state.known_rooms.insert(room);
        }
    }
}

fn chat_error(state: &mut State, e: &ChatError) {
    let mut text = format!("{}: {}", e.code, sanitize_for_display(&e.message));
    if let Some(ev) = e.event() {
        text.push_str(&format!(" ({})", sanitize_for_display(ev)));
    }
    state.toast(text);
}

fn ack(state: &mut State, req: u64, result: Result<AckReply, AckError>, fx: &mut Vec<Effect>) {
    let Some(request) = state.requests.remove(&req) else {
        return;
    };
    if state.in_flight == Some(req) {
        state.in_flight = None;
    }
    if let Request::Join { rejoin: true, .. } = request {
        state.rejoins = state.rejoins.saturating_sub(1);
    }
    ack_result(state, request, result, fx);
    pump(state, fx);
}

fn ack_result(
    state: &mut State,
    request: Request,
    result: Result<AckReply, AckError>,
    fx: &mut Vec<Effect>,
) {
    match (request, result) {
        (Request::Message(out), Ok(AckReply::Sent(sent))) => {
            let conv = out.conv.clone();
            let epoch = state.epoch;
            let Some(c) = state.conv_mut(&conv) else {
                return;
            };
            // The echo may have arrived first as a line of its own: keep one.
            if let Some(dup) = c
                .entries
                .iter()
                .position(|e| e.id.as_deref() == Some(&sent.id) && e.epoch == epoch && e.local == 0)
            {
                c.entries.remove(dup);
            }
            let taken = c
                .entries
                .iter()
                .any(|e| e.id.as_deref() == Some(&sent.id) && e.epoch == epoch);
            if let Some(pos) = c.entries.iter().position(|e| e.local == out.local) {
                let mut e = c.entries.remove(pos);
                if e.id.is_none() && !taken {
                    e.id = Some(sent.id);
                    e.ts = sent.ts;
                    e.epoch = epoch;
                }
                e.kind = EntryKind::Own(Delivery::Sent);
                c.insert_ordered(e);
            }
        }
        (Request::Message(out), Err(AckError::NotSent(_))) => {
            // The connection went away under it: back in the outbox, in order.
            let conv = out.conv.clone();
            let local = out.local;
            set_delivery(state, &conv, local, Delivery::Queued);
            let pos = state
                .outbox
                .iter()
                .position(|o| o.local > local)
                .unwrap_or(state.outbox.len());
            state.outbox.insert(pos, out);
        }
        (Request::Message(out), Err(e)) => {
            let code = match e {
                AckError::Refused(err) => err.code.to_string(),
                AckError::Timeout => "timeout".to_owned(),
                AckError::Malformed(_) => "bad_ack".to_owned(),
                AckError::NotSent(_) => "not_sent".to_owned(),
            };
            set_delivery(state, &out.conv, out.local, Delivery::Failed(code));
        }
        (Request::Message(out), Ok(_)) => {
            set_delivery(
                state,
                &out.conv,
                out.local,
                Delivery::Failed("bad_ack".into()),
            );
        }
        (Request::Join { switch, .. }, Ok(AckReply::Joined(j))) => joined(state, j, switch, fx),
        (Request::Leave(room), Ok(_)) => {
            let id = ConvId::Room(room);
            if state.active == id {
                cycle(state, -1, fx);
            }
            state.convs.retain(|c| c.id != id);
            if state.conv(&state.active).is_none() {
                state.active = ConvId::Feed;
            }
        }
        (Request::Rooms, Ok(AckReply::Rooms(list))) => {
            let conv = state.active.clone();
            if list.rooms.is_empty() {
                state.system(&conv, "no rooms yet: /join #name makes one");
            } else {
                let names: Vec<String> = list
                    .rooms
                    .iter()
                    .map(|r| format!("{} ({})", sanitize_for_display(&r.room), r.members))
                    .collect();
                state.system(&conv, format!("rooms: {}", names.join(", ")));
            }
            for r in &list.rooms {
                if let Some(room) = canonical_room(&r.room) {
                    state.known_rooms.insert(room);
                }
            }
        }
        (Request::Who, Ok(AckReply::Presence(snap))) => {
            apply_snapshot(state, &snap);
            let conv = state.active.clone();
            let names: Vec<String> = state.users.iter().cloned().collect();
            state.system(
                &conv,
                format!("online ({}): {}", snap.online, names.join(", ")),
            );
        }
        (Request::Refresh, Ok(AckReply::Presence(snap))) => apply_snapshot(state, &snap),
        // Refusals also arrive as chat:error, which makes the toast.
        (_, Err(AckError::Refused(_))) => {}
        (Request::Refresh, Err(_)) => {}
        (_, Err(e)) => state.toast(format!("request failed: {e}")),
        (_, Ok(_)) => {}
    }
}

fn joined(state: &mut State, j: JoinAck, switch: bool, fx: &mut Vec<Effect>) {
    let Some(room) = canonical_room(&j.room) else {
        return;
    };
    let id = ConvId::Room(room.clone());
    state.known_rooms.insert(room);
    let me = state.me.clone();
    let c = state.ensure_conv(&id);
    c.members = j
        .members
        .iter()
        .filter(|u| is_valid_username(u))
        .cloned()
        .collect();
    c.members.insert(me);
    c.member_count = Some(c.members.len() as u64);
    let active = state.active.clone();
    for m in j.history {
        // History is context, not news: it never counts as unread.
        receive(state, id.clone(), m.id, m.ts, &m.from, &m.text, false);
    }
    if id != active
        && let Some(c) = state.conv_mut(&id)
    {
        c.unread = 0;
        c.mentioned = false;
    }
    if switch {
        state.switch_to(id, fx);
    }
}

#[cfg(test)]
mod tests;
