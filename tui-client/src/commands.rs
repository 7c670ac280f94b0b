//! What the user typed on the input line: slash commands, plain text, and
//! Tab completion of commands, room names and usernames. No state, no I/O.
//!
//! (v3) The moderation commands read a DURATION the way people type it
//! (`60`, `10m`, `2h`, `1d`, see [`parse_duration_secs`]): in `/ban bob 10m
//! spam` the second word is a duration only when it reads as one, otherwise
//! it starts the reason; without one the ban lasts until lifted.

use chat_shared::{RoomRole, parse_duration_secs};

use crate::substitution::{self, Substitution};

/// A parsed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Plain text for the active conversation.
    Say(String),
    /// `/join #room` (the argument as typed; the state canonicalises it).
    Join(String),
    /// `/leave [#room]`.
    Leave(Option<String>),
    /// `/msg user text`; `text` may be empty (just opens the conversation).
    Msg {
        to: String,
        text: String,
    },
    /// `/all text`: the global feed, me included.
    All(String),
    /// `/bcast text`: everyone but me.
    Bcast(String),
    /// `/me text`: an action line (`* alice text`).
    Me(String),
    /// `/close`: close the active direct conversation.
    Close,
    /// `/clear`: empty the active conversation's screen.
    Clear,
    /// `/search [text]`: find text in the loaded history (no text: stop).
    Search(String),
    /// `/nick name`: rename myself (a guest, v3), or try another username
    /// after mine was taken.
    Nick(String),
    /// `/register`: make the name I use an account (asks for a password).
    Register,
    /// `/passwd`: change my account's password.
    Passwd,
    /// (v3) `/sessions`: list my account's clients.
    Sessions,
    /// (v3) `/sessions end ID`: end one of them (the start of its id as
    /// typed; the state finds the one it names).
    EndSession(String),
    Rooms,
    Who,
    Help,
    Quit,
    /// (v3) `/logout`: revoke the saved login's token, forget it, quit.
    Logout,
    /// `/topic [text|-]` in the open room: `None` shows it, `Some("")`
    /// (typed `-`) clears it.
    Topic(Option<String>),
    /// `/private on|off` in the open room.
    Private(bool),
    /// `/invite user` to the open room.
    Invite(String),
    /// `/kick user [reason]` from the open room (a kick has no duration).
    Kick(Sanction),
    /// `/ban user [duration] [reason]` in the open room.
    Ban(Sanction),
    Unban(String),
    /// `/mute user [duration] [reason]` in the open room.
    Mute(Sanction),
    Unmute(String),
    /// `/op`, `/deop` (member) and `/owner` in the open room.
    SetRole {
        user: String,
        role: RoomRole,
    },
    /// `/info [#room]`: the open room by default.
    Info(Option<String>),
    /// `/serverkick user [reason]`.
    ServerKick(Sanction),
    /// `/serverban user [duration] [reason]`.
    ServerBan(Sanction),
    /// `/servermute user [duration] [reason]`.
    ServerMute(Sanction),
    ServerUnban(String),
    ServerUnmute(String),
    /// `/bans`: every ban and mute in force.
    Bans,
    /// `/role user user|moderator|admin`: a server role (admins).
    ServerRole {
        user: String,
        role: chat_shared::Role,
    },
    /// `/block [user]` (no name: list whom I block).
    Block(Option<String>),
    Unblock(String),
    /// `/showblocked`: show (or hide again) the lines of blocked users in
    /// the active conversation.
    ShowBlocked,
    /// `/reconnect`: connect again after a kick, a ban or a refusal.
    Reconnect,
    /// (v3) `/reply text`: answer the selected message, or the newest of
    /// someone else.
    Reply(String),
    /// (v3) `/edit text`: the new text of my selected or newest message.
    Edit(String),
    /// (v3) `s/old/new/[g]` typed as a whole line (see [`crate::substitution`]).
    Substitute(Substitution),
    /// (v3) `/delete`: my newest message or the selected one (asks first).
    Delete,
    /// (v3) `/react emoji`: add (or, held already, take back) a reaction to
    /// the selected message or the newest; a short name (`:+1:`) is its
    /// emoji.
    React(String),
    /// A command with missing arguments: the usage line to show.
    Usage(&'static str),
    /// A `/word` this client does not know.
    Unknown(String),
}

/// A kick, ban or mute as typed: whom, for how long (seconds; `None`:
/// until lifted, and always for a kick), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanction {
    pub user: String,
    pub for_secs: Option<u64>,
    pub reason: Option<String>,
}

/// Every command with its usage and what it does, for `/help` and Tab.
/// [`SECTIONS`] says where each group starts.
pub const COMMANDS: [(&str, &str, &str); 45] = [
    ("/join", "/join #room", "join a room and switch to it"),
    (
        "/leave",
        "/leave [#room]",
        "leave a room (the active one by default)",
    ),
    (
        "/msg",
        "/msg user [text]",
        "open a direct conversation, optionally sending text",
    ),
    (
        "/all",
        "/all text",
        "send to the global feed (everyone, me included)",
    ),
    ("/bcast", "/bcast text", "broadcast to everyone but me"),
    ("/me", "/me text", "an action line: * me text"),
    (
        "/close",
        "/close",
        "close the direct conversation (/leave does too)",
    ),
    ("/clear", "/clear", "clear the conversation's screen"),
    (
        "/search",
        "/search [text]",
        "find text in the loaded history (Ctrl-R)",
    ),
    (
        "/nick",
        "/nick name",
        "change my name (guests), or try another when mine is taken",
    ),
    (
        "/register",
        "/register",
        "make my name an account (asks for a password; keeps the session)",
    ),
    ("/passwd", "/passwd", "change my account's password"),
    (
        "/sessions",
        "/sessions [end ID]",
        "list my clients (accounts); end ID ends one (its id's start is enough)",
    ),
    ("/rooms", "/rooms", "list the server's rooms"),
    ("/who", "/who", "list who is online"),
    ("/help", "/help", "show keys and commands"),
    ("/quit", "/quit", "quit (Ctrl-C does too)"),
    (
        "/logout",
        "/logout",
        "forget the login saved by --login (revokes its token) and quit",
    ),
    (
        "/reconnect",
        "/reconnect",
        "connect again after a kick, a ban or a refusal",
    ),
    (
        "/reply",
        "/reply text",
        "answer a message; the reply shows what it answers",
    ),
    (
        "/edit",
        "/edit text",
        "replace the text of my message (shown \"(edited)\")",
    ),
    (
        "/delete",
        "/delete",
        "delete my message (asks first; ops may delete any in their room)",
    ),
    (
        "/react",
        "/react emoji",
        "react: 👍 or :+1: (Tab completes :names:); again takes it back",
    ),
    (
        "/block",
        "/block [user]",
        "hide their lines, refuse DMs both ways (no name: list)",
    ),
    ("/unblock", "/unblock user", "stop blocking someone"),
    (
        "/showblocked",
        "/showblocked",
        "show (again: hide) blocked users' lines here",
    ),
    (
        "/info",
        "/info [#room]",
        "the room's topic, owners, ops, members (and bans, for ops)",
    ),
    (
        "/topic",
        "/topic [text|-]",
        "show the topic; set it (ops), - clears it",
    ),
    (
        "/private",
        "/private on|off",
        "make the room invite-only, or open (owners)",
    ),
    (
        "/invite",
        "/invite user",
        "invite someone to the room (ops)",
    ),
    (
        "/kick",
        "/kick user [reason]",
        "put someone out of the room (ops)",
    ),
    (
        "/ban",
        "/ban user [duration] [reason]",
        "put out and keep out: 60, 10m, 2h, 1d, or until /unban (ops)",
    ),
    ("/unban", "/unban user", "lift a ban in the room (ops)"),
    (
        "/mute",
        "/mute user [duration] [reason]",
        "silence someone in the room (ops)",
    ),
    ("/unmute", "/unmute user", "lift a mute in the room (ops)"),
    ("/op", "/op user", "make someone an op of the room (owners)"),
    (
        "/deop",
        "/deop user",
        "take a room role away (owners; anyone from themselves)",
    ),
    (
        "/owner",
        "/owner user",
        "make someone an owner of the room (owners)",
    ),
    (
        "/serverkick",
        "/serverkick user [reason]",
        "disconnect someone from the server (moderators)",
    ),
    (
        "/serverban",
        "/serverban user [duration] [reason]",
        "keep someone off the server (moderators)",
    ),
    (
        "/servermute",
        "/servermute user [duration] [reason]",
        "silence someone everywhere (moderators)",
    ),
    (
        "/serverunban",
        "/serverunban user",
        "lift a server ban (moderators)",
    ),
    (
        "/serverunmute",
        "/serverunmute user",
        "lift a server mute (moderators)",
    ),
    (
        "/bans",
        "/bans",
        "list the bans and mutes in force (moderators)",
    ),
    (
        "/role",
        "/role user user|moderator|admin",
        "give an account a server role (admins)",
    ),
];

/// Where each group of [`COMMANDS`] starts, and its heading in `/help`.
pub const SECTIONS: [(&str, &str); 5] = [
    ("/join", "commands:"),
    (
        "/reply",
        "messages (the selected one, Alt-Up/Alt-Down; else the newest that fits):",
    ),
    ("/block", "blocking (anyone):"),
    (
        "/info",
        "in the open room (the role each needs in brackets):",
    ),
    ("/serverkick", "server-wide (moderators and admins):"),
];

/// The usage column's width in `/help`; a longer usage puts its
/// description on the next line.
const USAGE_COLUMN: usize = 18;

/// `s/old/new/` in `/help`, under `/edit` (it is not a slash command).
pub const SUBSTITUTE_HELP: (&str, &str) = (
    "s/old/new/[g]",
    "fix my message: the first old becomes new (g: every one)",
);

/// The lines `/help` (and `chat-tui --help`) prints for the commands.
pub fn help_lines() -> Vec<String> {
    let mut out = Vec::new();
    for (name, usage, what) in COMMANDS {
        if let Some((_, heading)) = SECTIONS.iter().find(|(first, _)| *first == name) {
            out.push(heading.to_string());
        }
        if usage.chars().count() > USAGE_COLUMN {
            out.push(format!("  {usage}"));
            out.push(format!("  {:USAGE_COLUMN$} {what}", ""));
        } else {
            out.push(format!("  {usage:<USAGE_COLUMN$} {what}"));
        }
        if name == "/edit" {
            let (usage, what) = SUBSTITUTE_HELP;
            out.push(format!("  {usage:<USAGE_COLUMN$} {what}"));
        }
    }
    out
}

/// The keys, for `/help`.
pub const KEYS: [(&str, &str); 16] = [
    ("Enter", "send the line"),
    ("Up/Down", "input history"),
    (
        "Tab",
        "complete a command, #room, username or :emoji: (again: next match)",
    ),
    (
        "Alt-Up / Alt-Down",
        "select an older / newer message (for /reply /edit /delete /react)",
    ),
    (
        "Alt-G",
        "go to the message the selected (or newest) reply answers",
    ),
    ("Ctrl-N / Ctrl-P", "next / previous conversation"),
    ("Alt-1..9", "go to conversation n"),
    (
        "PgUp/PgDn, wheel",
        "scroll the messages (older lines load at the top)",
    ),
    ("Home/End", "oldest / newest line (when the input is empty)"),
    ("Ctrl-R / Ctrl-S", "search; then older / newer match"),
    (
        "Esc",
        "dismiss the toasts, end the search, clear the selection",
    ),
    ("Ctrl-U / Ctrl-W", "clear the input line / delete a word"),
    ("Ctrl-A / Ctrl-E", "start / end of the input line"),
    ("F2", "hide / show the side panels"),
    ("F3", "release / capture the mouse (to select text)"),
    ("Ctrl-C", "quit (asks if messages are not sent yet)"),
];

fn usage(cmd: &str) -> &'static str {
    COMMANDS
        .iter()
        .find(|(name, _, _)| *name == cmd)
        .map(|(_, usage, _)| *usage)
        .unwrap_or("/help")
}

/// Reads one input line. A line starting with `//` sends the text with one
/// `/` removed, so a message can start with a slash.
pub fn parse(line: &str) -> Command {
    match substitution::parse(line) {
        substitution::Parsed::Yes(s) => return Command::Substitute(s),
        substitution::Parsed::EmptyOld => return Command::Usage(SUBSTITUTE_HELP.0),
        substitution::Parsed::No => {}
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::Say(line.to_owned());
    };
    if rest.starts_with('/') {
        return Command::Say(rest.to_owned());
    }
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim_start()),
        None => (rest, ""),
    };
    let cmd = format!("/{}", word.to_ascii_lowercase());
    let text_arg = |make: fn(String) -> Command| {
        if args.trim().is_empty() {
            Command::Usage(usage(&cmd))
        } else {
            make(args.to_owned())
        }
    };
    match cmd.as_str() {
        "/join" | "/j" => match args.split_whitespace().next() {
            Some(room) => Command::Join(room.to_owned()),
            None => Command::Usage(usage("/join")),
        },
        "/leave" | "/part" => Command::Leave(args.split_whitespace().next().map(str::to_owned)),
        "/msg" | "/m" => {
            let (to, text) = match args.split_once(char::is_whitespace) {
                Some((to, text)) => (to, text.trim_start()),
                None => (args.trim(), ""),
            };
            if to.is_empty() {
                Command::Usage(usage("/msg"))
            } else {
                Command::Msg {
                    to: to.to_owned(),
                    text: text.to_owned(),
                }
            }
        }
        "/all" => text_arg(Command::All),
        "/bcast" => text_arg(Command::Bcast),
        "/me" => text_arg(Command::Me),
        "/close" => Command::Close,
        "/clear" => Command::Clear,
        "/search" | "/s" => Command::Search(args.trim().to_owned()),
        "/nick" => match args.split_whitespace().next() {
            Some(name) => Command::Nick(name.to_owned()),
            None => Command::Usage(usage("/nick")),
        },
        "/register" => Command::Register,
        "/passwd" => Command::Passwd,
        "/sessions" => {
            let mut words = args.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (None, _, _) => Command::Sessions,
                (Some("end"), Some(id), None) => Command::EndSession(id.to_owned()),
                _ => Command::Usage(usage("/sessions")),
            }
        }
        "/rooms" => Command::Rooms,
        "/who" => Command::Who,
        "/help" | "/?" => Command::Help,
        "/quit" | "/exit" => Command::Quit,
        "/logout" => Command::Logout,
        "/reconnect" => Command::Reconnect,
        "/reply" | "/re" => text_arg(Command::Reply),
        "/edit" => text_arg(Command::Edit),
        "/delete" | "/del" => match args.trim() {
            "" => Command::Delete,
            _ => Command::Usage(usage("/delete")),
        },
        "/react" => match args.split_whitespace().collect::<Vec<_>>()[..] {
            [emoji] => Command::React(emoji.to_owned()),
            _ => Command::Usage(usage("/react")),
        },
        _ => moderation(&cmd, args).unwrap_or(Command::Unknown(cmd)),
    }
}

/// The first word of `args` as a username (a leading `@`, as Tab may
/// complete it, dropped).
fn name_arg(args: &str) -> Option<String> {
    args.split_whitespace()
        .next()
        .map(|w| w.trim_start_matches('@').to_owned())
        .filter(|w| !w.is_empty())
}

/// `user [duration] [reason]`, or `user [reason]` when `timed` is false.
pub fn parse_sanction(args: &str, timed: bool) -> Option<Sanction> {
    let user = name_arg(args)?;
    let rest = args.trim_start();
    let rest = rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..].trim_start();
    let (for_secs, reason) = match rest.split_once(char::is_whitespace) {
        _ if !timed => (None, rest),
        Some((first, tail)) => match parse_duration_secs(first) {
            Some(secs) => (Some(secs), tail.trim_start()),
            None => (None, rest),
        },
        None => match parse_duration_secs(rest) {
            Some(secs) => (Some(secs), ""),
            None => (None, rest),
        },
    };
    let reason = reason.trim();
    Some(Sanction {
        user,
        for_secs,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
    })
}

/// The (v3) moderation and blocking commands; `None`: not one of them.
fn moderation(cmd: &str, args: &str) -> Option<Command> {
    let named = |make: fn(String) -> Command| match name_arg(args) {
        Some(user) => make(user),
        None => Command::Usage(usage(cmd)),
    };
    let sanction = |timed: bool, make: fn(Sanction) -> Command| match parse_sanction(args, timed) {
        Some(s) => make(s),
        None => Command::Usage(usage(cmd)),
    };
    let role = |role: RoomRole| match name_arg(args) {
        Some(user) => Command::SetRole { user, role },
        None => Command::Usage(usage(cmd)),
    };
    Some(match cmd {
        "/topic" => match args.trim() {
            "" => Command::Topic(None),
            "-" => Command::Topic(Some(String::new())),
            text => Command::Topic(Some(text.to_owned())),
        },
        "/private" => match args.trim().to_ascii_lowercase().as_str() {
            "on" | "yes" | "true" => Command::Private(true),
            "off" | "no" | "false" => Command::Private(false),
            _ => Command::Usage(usage(cmd)),
        },
        "/invite" => named(Command::Invite),
        "/kick" => sanction(false, Command::Kick),
        "/ban" => sanction(true, Command::Ban),
        "/unban" => named(Command::Unban),
        "/mute" => sanction(true, Command::Mute),
        "/unmute" => named(Command::Unmute),
        "/op" => role(RoomRole::Op),
        "/deop" => role(RoomRole::Member),
        "/owner" => role(RoomRole::Owner),
        "/info" => Command::Info(args.split_whitespace().next().map(str::to_owned)),
        "/serverkick" => sanction(false, Command::ServerKick),
        "/serverban" => sanction(true, Command::ServerBan),
        "/servermute" => sanction(true, Command::ServerMute),
        "/serverunban" => named(Command::ServerUnban),
        "/serverunmute" => named(Command::ServerUnmute),
        "/bans" => Command::Bans,
        "/role" => {
            let mut words = args.split_whitespace();
            match (
                words.next(),
                words.next().and_then(chat_shared::Role::parse_account_role),
            ) {
                (Some(user), Some(role)) => Command::ServerRole {
                    user: user.trim_start_matches('@').to_owned(),
                    role,
                },
                _ => Command::Usage(usage(cmd)),
            }
        }
        "/block" => Command::Block(name_arg(args)),
        "/unblock" => named(Command::Unblock),
        "/showblocked" => Command::ShowBlocked,
        _ => return None,
    })
}

/// The word under completion: where it starts (a char index) and its text.
pub fn word_before(input: &str, cursor: usize) -> (usize, String) {
    let chars: Vec<char> = input.chars().collect();
    let cursor = cursor.min(chars.len());
    let mut start = cursor;
    while start > 0 && !chars[start - 1].is_whitespace() {
        start -= 1;
    }
    (start, chars[start..cursor].iter().collect())
}

/// Candidates for the word `word` that starts at char index `start`: a
/// command when it is the line's first word and starts with `/`, a room
/// when it starts with `#`, (v3) an emoji when it starts with `:` (`:+1:`
/// → 👍, see [`crate::emoji`]), a username otherwise. Case-insensitive prefix
/// match, sorted, without duplicates.
pub fn candidates(word: &str, start: usize, rooms: &[String], users: &[String]) -> Vec<String> {
    let lower = word.to_lowercase();
    if word.starts_with(':') {
        // (v3) An emoji's short name: its emoji, in the table's order.
        return crate::emoji::completions(word);
    }
    let mut out: Vec<String> = if start == 0 && word.starts_with('/') {
        COMMANDS
            .iter()
            .map(|(name, _, _)| name.to_string())
            .filter(|c| c.starts_with(&lower))
            .collect()
    } else if word.starts_with('#') {
        rooms
            .iter()
            .filter(|r| r.to_lowercase().starts_with(&lower))
            .cloned()
            .collect()
    } else {
        let bare = lower.trim_start_matches('@');
        users
            .iter()
            .filter(|u| u.to_lowercase().starts_with(bare))
            .map(|u| {
                if word.starts_with('@') {
                    format!("@{u}")
                } else {
                    u.clone()
                }
            })
            .collect()
    };
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_escaped_slash() {
        assert_eq!(parse("hello"), Command::Say("hello".into()));
        assert_eq!(parse("//shrug"), Command::Say("/shrug".into()));
    }

    #[test]
    fn every_command() {
        assert_eq!(parse("/join #rust"), Command::Join("#rust".into()));
        assert_eq!(parse("/JOIN rust extra"), Command::Join("rust".into()));
        assert_eq!(parse("/leave"), Command::Leave(None));
        assert_eq!(parse("/leave #a"), Command::Leave(Some("#a".into())));
        assert_eq!(
            parse("/msg bob hi  there"),
            Command::Msg {
                to: "bob".into(),
                text: "hi  there".into()
            }
        );
        assert_eq!(
            parse("/msg bob"),
            Command::Msg {
                to: "bob".into(),
                text: "".into()
            }
        );
        assert_eq!(parse("/all hey all"), Command::All("hey all".into()));
        assert_eq!(parse("/bcast yo"), Command::Bcast("yo".into()));
        assert_eq!(parse("/rooms"), Command::Rooms);
        assert_eq!(parse("/who"), Command::Who);
        assert_eq!(parse("/help"), Command::Help);
        assert_eq!(parse("/quit"), Command::Quit);
        assert_eq!(parse("/logout"), Command::Logout);
        assert_eq!(parse("/sessions"), Command::Sessions);
        assert_eq!(
            parse("/sessions end 3f9a"),
            Command::EndSession("3f9a".into())
        );
        assert_eq!(parse("/sessions end"), Command::Usage("/sessions [end ID]"));
        assert_eq!(
            parse("/sessions kill 3f9a"),
            Command::Usage("/sessions [end ID]")
        );
    }

    #[test]
    fn missing_arguments_give_usage_and_unknown_is_a_value() {
        assert_eq!(parse("/join"), Command::Usage("/join #room"));
        assert_eq!(parse("/msg"), Command::Usage("/msg user [text]"));
        assert_eq!(parse("/all   "), Command::Usage("/all text"));
        assert_eq!(parse("/bcast"), Command::Usage("/bcast text"));
        assert_eq!(parse("/dance now"), Command::Unknown("/dance".into()));
    }

    #[test]
    fn moderation_commands_read_names_durations_and_reasons() {
        let sanction = |user: &str, for_secs: Option<u64>, reason: Option<&str>| Sanction {
            user: user.into(),
            for_secs,
            reason: reason.map(str::to_owned),
        };
        assert_eq!(
            parse("/ban bob 10m spam bot"),
            Command::Ban(sanction("bob", Some(600), Some("spam bot")))
        );
        assert_eq!(
            parse("/ban bob spam"),
            Command::Ban(sanction("bob", None, Some("spam")))
        );
        assert_eq!(
            parse("/mute @bob 2h"),
            Command::Mute(sanction("bob", Some(7200), None))
        );
        assert_eq!(
            parse("/kick bob 10m late"),
            Command::Kick(sanction("bob", None, Some("10m late")))
        );
        assert_eq!(
            parse("/serverban bob   1d   flood "),
            Command::ServerBan(sanction("bob", Some(86_400), Some("flood")))
        );
        assert_eq!(parse("/topic"), Command::Topic(None));
        assert_eq!(parse("/topic -"), Command::Topic(Some(String::new())));
        assert_eq!(
            parse("/topic deploys at 14:00"),
            Command::Topic(Some("deploys at 14:00".into()))
        );
        assert_eq!(parse("/private OFF"), Command::Private(false));
        assert_eq!(
            parse("/deop carol"),
            Command::SetRole {
                user: "carol".into(),
                role: RoomRole::Member
            }
        );
        assert_eq!(parse("/info #ops"), Command::Info(Some("#ops".into())));
        assert_eq!(parse("/block"), Command::Block(None));
        assert_eq!(parse("/unblock"), Command::Usage("/unblock user"));
        assert_eq!(
            parse("/servermute"),
            Command::Usage("/servermute user [duration] [reason]")
        );
    }

    #[test]
    fn help_lists_every_command_under_its_heading() {
        let lines = help_lines();
        assert_eq!(lines[0], "commands:");
        for (_, usage, _) in COMMANDS {
            assert!(
                lines.iter().any(|l| l.trim_start().starts_with(usage)),
                "{usage}"
            );
        }
        // A usage too long for the column puts its text on the next line.
        let i = lines
            .iter()
            .position(|l| l == "  /serverban user [duration] [reason]")
            .expect("long usage alone");
        assert!(lines[i + 1].trim_start().starts_with("keep someone off"));
    }

    #[test]
    fn completion_of_commands_rooms_and_users() {
        let rooms = vec![
            "#general".to_string(),
            "#games".to_string(),
            "#rust".to_string(),
        ];
        let users = vec!["alice".to_string(), "Albert".to_string(), "bob".to_string()];
        assert_eq!(candidates("/j", 0, &rooms, &users), vec!["/join"]);
        assert_eq!(candidates("/ses", 0, &rooms, &users), vec!["/sessions"]);
        assert_eq!(candidates("/", 0, &rooms, &users).len(), COMMANDS.len());
        assert_eq!(
            candidates("#g", 6, &rooms, &users),
            vec!["#games", "#general"]
        );
        assert_eq!(candidates("al", 0, &rooms, &users), vec!["Albert", "alice"]);
        assert_eq!(candidates("@b", 4, &rooms, &users), vec!["@bob"]);
        // A slash word that is not the first word is not a command.
        assert!(candidates("/j", 3, &rooms, &users).is_empty());
    }

    #[test]
    fn message_change_commands() {
        assert_eq!(parse("/reply sure"), Command::Reply("sure".into()));
        assert_eq!(
            parse("/re  sure thing"),
            Command::Reply("sure thing".into())
        );
        assert_eq!(parse("/reply"), Command::Usage("/reply text"));
        assert_eq!(parse("/edit fixed"), Command::Edit("fixed".into()));
        assert_eq!(parse("/edit "), Command::Usage("/edit text"));
        assert_eq!(parse("/delete"), Command::Delete);
        assert_eq!(parse("/delete 12"), Command::Usage("/delete"));
        assert_eq!(parse("/react :+1:"), Command::React(":+1:".into()));
        assert_eq!(parse("/react 👍 🎉"), Command::Usage("/react emoji"));
        assert_eq!(
            parse("s/helo/hello/"),
            Command::Substitute(Substitution {
                old: "helo".into(),
                new: "hello".into(),
                all: false
            })
        );
        assert_eq!(parse("s//x/"), Command::Usage("s/old/new/[g]"));
        assert_eq!(parse("s/he said so"), Command::Say("s/he said so".into()));
        // s/// sits under /edit in /help.
        let lines = help_lines();
        let edit = lines
            .iter()
            .position(|l| l.trim_start().starts_with("/edit text"))
            .expect("/edit listed");
        assert!(lines[edit + 1].trim_start().starts_with("s/old/new/[g]"));
        assert!(KEYS.iter().any(|(k, _)| k.contains("Alt-Up")));
        assert!(KEYS.iter().any(|(k, _)| *k == "Alt-G"));
    }

    #[test]
    fn completion_of_emoji_names() {
        assert_eq!(candidates(":+1:", 7, &[], &[]), vec!["👍"]);
        assert_eq!(candidates(":he", 0, &[], &[]), vec!["❤️"]);
        assert!(candidates(":zzz", 0, &[], &[]).is_empty());
    }

    #[test]
    fn word_before_cursor() {
        assert_eq!(word_before("/msg al", 7), (5, "al".to_string()));
        assert_eq!(word_before("/jo", 3), (0, "/jo".to_string()));
        assert_eq!(word_before("日本 #ge", 6), (3, "#ge".to_string()));
        assert_eq!(word_before("x ", 2), (2, String::new()));
    }
}
