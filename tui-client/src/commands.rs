//! What the user typed on the input line: slash commands, plain text, and
//! Tab completion of commands, room names and usernames. No state, no I/O.

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
    /// `/nick name`: try another username after mine was taken.
    Nick(String),
    /// `/register`: make the name I use an account (asks for a password).
    Register,
    /// `/passwd`: change my account's password.
    Passwd,
    Rooms,
    Who,
    Help,
    Quit,
    /// A command with missing arguments: the usage line to show.
    Usage(&'static str),
    /// A `/word` this client does not know.
    Unknown(String),
}

/// Every command with its usage and what it does, for `/help` and Tab.
pub const COMMANDS: [(&str, &str, &str); 16] = [
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
        "try another name when yours is taken",
    ),
    (
        "/register",
        "/register",
        "make my name an account (asks for a password; keeps the session)",
    ),
    ("/passwd", "/passwd", "change my account's password"),
    ("/rooms", "/rooms", "list the server's rooms"),
    ("/who", "/who", "list who is online"),
    ("/help", "/help", "show keys and commands"),
    ("/quit", "/quit", "quit (Ctrl-C does too)"),
];

/// The keys, for `/help`.
pub const KEYS: [(&str, &str); 14] = [
    ("Enter", "send the line"),
    ("Up/Down", "input history"),
    (
        "Tab",
        "complete a command, #room or username (again: next match)",
    ),
    ("Ctrl-N / Ctrl-P", "next / previous conversation"),
    ("Alt-1..9", "go to conversation n"),
    (
        "PgUp/PgDn, wheel",
        "scroll the messages (older lines load at the top)",
    ),
    ("Home/End", "oldest / newest line (when the input is empty)"),
    ("Ctrl-R / Ctrl-S", "search; then older / newer match"),
    ("Esc", "dismiss the toasts, end the search"),
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
        "/rooms" => Command::Rooms,
        "/who" => Command::Who,
        "/help" | "/?" => Command::Help,
        "/quit" | "/exit" => Command::Quit,
        _ => Command::Unknown(cmd),
    }
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
/// when it starts with `#`, a username otherwise. Case-insensitive prefix
/// match, sorted, without duplicates.
pub fn candidates(word: &str, start: usize, rooms: &[String], users: &[String]) -> Vec<String> {
    let lower = word.to_lowercase();
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
    fn completion_of_commands_rooms_and_users() {
        let rooms = vec![
            "#general".to_string(),
            "#games".to_string(),
            "#rust".to_string(),
        ];
        let users = vec!["alice".to_string(), "Albert".to_string(), "bob".to_string()];
        assert_eq!(candidates("/j", 0, &rooms, &users), vec!["/join"]);
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
    fn word_before_cursor() {
        assert_eq!(word_before("/msg al", 7), (5, "al".to_string()));
        assert_eq!(word_before("/jo", 3), (0, "/jo".to_string()));
        assert_eq!(word_before("日本 #ge", 6), (3, "#ge".to_string()));
        assert_eq!(word_before("x ", 2), (2, String::new()));
    }
}
