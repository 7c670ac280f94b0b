//! The vocabulary between the app, the state and the network task: what the
//! state is fed ([`Input`]), what it asks for ([`Effect`]), what goes to the
//! network task ([`NetCommand`]) and what comes back ([`NetEvent`],
//! [`AckReply`]). Both `state` and `net` import from here and never from
//! each other.

use chat_shared::{
    AckError, BansAck, BlockAck, ChatError, ClientEvent, ConnectRefusal, ErrorCode, HistoryAck,
    JoinAck, LeaveAck, PresenceSnapshot, ReadMarker, RenameAck, RoomInfoAck, RoomListAck,
    RoomRoleAck, RoomSettingsAck, RoomUserAck, SentAck, ServerEvent, SessionListAck, UserRoleAck,
};
use crossterm::event::KeyEvent;
use tokio::time::Instant;

/// What the app asks of the network task.
#[derive(Debug, Clone, PartialEq)]
pub enum NetCommand {
    /// An acked request; the answer comes back as [`NetEvent::Ack`] with
    /// the same `req`.
    Request { req: u64, event: ClientEvent },
    /// Sent without an ack and not retried (typing signals).
    Volatile(ClientEvent),
    /// Connect as this username from the next attempt on (after the server
    /// said the name was taken); the next attempt starts at once.
    Rename(String),
    /// Log in with this password from the next attempt on (the server asked
    /// for it); the next attempt starts at once.
    Login(crate::password::Password),
    /// Create an account for my name with this password: connect again with
    /// `register: true` and my session, which the new connection takes over.
    Register(crate::password::Password),
    /// The password changed: fresh logins from now on use this one.
    SetPassword(crate::password::Password),
    /// (v3) The server renamed me (`user:rename`): reconnect as this name,
    /// with the same session, from now on.
    UseName(String),
    /// Connect again now: the user asks after the server ended the
    /// session (a kick, a ban) or refused it.
    Reconnect,
    /// Leave cleanly (a planned disconnect ends the session at once).
    Shutdown,
}

/// A typed ack body.
#[derive(Debug, Clone, PartialEq)]
pub enum AckReply {
    Joined(JoinAck),
    Left(LeaveAck),
    Sent(SentAck),
    Rooms(RoomListAck),
    Presence(PresenceSnapshot),
    History(HistoryAck),
    /// (v3) `room:info`.
    RoomInfo(RoomInfoAck),
    /// (v3) `room:settings`.
    RoomSettings(RoomSettingsAck),
    /// (v3) `room:invite`.
    Invited(RoomUserAck),
    /// (v3) `room:role`.
    RoomRole(RoomRoleAck),
    /// (v3) `user:role`.
    UserRole(UserRoleAck),
    /// (v3) `user:bans`.
    Bans(BansAck),
    /// (v3) `user:block` and `user:unblock`: the whole list now.
    Blocked(BlockAck),
    /// (v3) `user:rename`: my name now.
    Renamed(RenameAck),
    /// (v3) `session:list`: this account's sessions.
    Sessions(SessionListAck),
    /// (v3) `read:mark`: the marker as it stands now (the server keeps the
    /// newer one when mine was older).
    ReadMarked(ReadMarker),
    Done,
}

/// Why a connection attempt failed before the server could say anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// Nothing listens there (connection refused).
    Refused,
    /// No route to the host, or it does not answer in time.
    Unreachable,
    /// The host name does not resolve.
    NameNotResolved,
    /// The TLS handshake failed (certificate not trusted, wrong host name…).
    Tls,
    /// Something answered, but not a Socket.IO server of this contract.
    Protocol,
    /// The server answered the handshake with an error object instead of
    /// a session (HTTP 429: too many failed logins from this address).
    TurnedAway,
    /// Anything else, with the library's text.
    Other,
}

impl ConnectFailure {
    /// What the status bar says.
    pub fn describe(&self) -> &'static str {
        match self {
            ConnectFailure::Refused => "connection refused: is the server running on that port?",
            ConnectFailure::Unreachable => "host unreachable or not answering",
            ConnectFailure::NameNotResolved => "host name not found",
            ConnectFailure::Tls => "TLS failure (certificate not trusted? try --ca-file)",
            ConnectFailure::Protocol => "not a chat server at that address",
            ConnectFailure::TurnedAway => {
                "the server turned the connection away (too many failed logins from here?): retrying"
            }
            ConnectFailure::Other => "cannot connect",
        }
    }
}

/// What the network task tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// A connection attempt starts (1, 2, … since the last session or start).
    Connecting {
        attempt: u32,
        last_contact: Option<Instant>,
    },
    /// The last attempt failed before a Socket.IO exchange, and why.
    Failed {
        failure: ConnectFailure,
    },
    /// The server refused the connection; `retrying` says whether this task
    /// keeps trying (a taken name may free up, a full server may empty).
    Refused {
        refusal: ConnectRefusal,
        retrying: bool,
    },
    Server(ServerEvent),
    Ack {
        req: u64,
        result: Result<AckReply, AckError>,
    },
    /// A fresh snapshot of who is online (asked for by the network task).
    Presence(PresenceSnapshot),
}

/// What the state is fed.
#[derive(Debug, Clone)]
pub enum Input {
    Key(KeyEvent),
    /// Bracketed paste: inserted, never sent by itself.
    Paste(String),
    /// Mouse wheel: positive scrolls up (older), negative down.
    Wheel(i32),
    /// (v3 read markers) The terminal gained (true) or lost (false) the
    /// focus; a terminal that never says counts as focused.
    Focus(bool),
    /// The clock moved: monotonic time and wall-clock milliseconds.
    Tick {
        now: Instant,
        wall_ms: u64,
    },
    Net(NetEvent),
}

/// How the terminal is told about something that needs the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Ring the terminal bell.
    pub bell: bool,
    /// Raise a desktop notification (OSC 777 and OSC 9).
    pub desktop: bool,
    pub title: String,
    pub body: String,
}

/// What the state asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Net(NetCommand),
    Notify(Notification),
    /// Switch the terminal's mouse capture on or off.
    MouseCapture(bool),
    Quit,
    /// (v3) `/logout`: the app revokes the saved login as it quits.
    Logout,
}

/// Whether this `chat:error` is the server ending this socket (v3): a kick
/// or a ban from the server, or the session ended from another client.
/// The server disconnects right after it; reconnecting by itself would
/// only hide what happened, so the network task waits for the user.
/// A `banned` that answers a `room:join` is a refusal, not an end.
pub fn ends_session(e: &ChatError) -> bool {
    match e.code {
        ErrorCode::Kicked | ErrorCode::SessionEnded => true,
        ErrorCode::Banned => e.event() != Some("room:join"),
        _ => false,
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
