//! (v3) Messages that change after they were sent: replies (`replyTo` on
//! the four message requests), `message:edit`, `message:delete`,
//! `message:react`, and the `message:update` that tells a message's
//! audience about each change.

use serde::{Deserialize, Serialize};

/// The most Unicode scalar values of a reaction's `emoji`.
pub const EMOJI_MAX: usize = 16;

/// The most names a message's reaction lists in `users` (its `count`
/// always holds).
pub const REACTION_USERS_MAX: usize = 20;

/// The default `--edit-window`, in seconds: how long after sending its
/// author may edit a message.
pub const DEFAULT_EDIT_WINDOW_SECS: u64 = 15 * 60;

/// Whether `emoji` may be a reaction: 1 to [`EMOJI_MAX`] Unicode scalar
/// values, none of them whitespace or a control character. Not checked
/// against a list of emoji: `:+1:`-style names are the client's business,
/// and what reaches the server is the character itself.
pub fn is_valid_emoji(emoji: &str) -> bool {
    let n = emoji.chars().count();
    (1..=EMOJI_MAX).contains(&n) && !emoji.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `message:edit` from a client: the new text of one of its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEditRequest {
    pub id: String,
    pub text: String,
}

/// `message:delete` from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleteRequest {
    pub id: String,
}

/// `message:react` from a client: `on` adds the sender's reaction,
/// `false` takes it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReactRequest {
    pub id: String,
    pub emoji: String,
    pub on: bool,
}

/// What a `message:update` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Edit,
    Delete,
    React,
}

/// `message:update`: one change to one message, numbered in the message
/// sequence (`id`), sent to the message's audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageUpdate {
    /// The change's own id.
    pub id: String,
    pub ts: u64,
    /// The id of the message changed.
    pub target: String,
    pub kind: ChangeKind,
    /// Who changed it.
    pub by: String,
    /// The message's room, for a room message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The two usernames of a DM, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm: Option<Vec<String>>,
    /// An edit's new text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A reaction's emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// A reaction: added (`true`) or taken back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    /// Sent in a replay after a reconnect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
}

/// One emoji's reactions to a message, as `history` and replays show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    /// How many users hold it (at least 1).
    pub count: u64,
    /// Who, in the order they reacted: at most [`REACTION_USERS_MAX`].
    pub users: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emoji_rules() {
        for ok in ["👍", "🎉", "+1", "👨‍👩‍👧", "ok", &"x".repeat(EMOJI_MAX)] {
            assert!(is_valid_emoji(ok), "{ok:?}");
        }
        for bad in [
            "",
            " ",
            "👍 ",
            "a b",
            "\u{1b}[31m",
            "\n",
            &"x".repeat(EMOJI_MAX + 1),
        ] {
            assert!(!is_valid_emoji(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_update_reads_and_writes_the_contract_shape() {
        let wire = json!({"id": "12", "ts": 5, "target": "9", "kind": "react", "by": "bob",
                          "room": "#ops", "emoji": "👍", "on": true});
        let u: MessageUpdate = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(u.kind, ChangeKind::React);
        assert_eq!(u.on, Some(true));
        assert_eq!(serde_json::to_value(&u).unwrap(), wire);
        let dm = json!({"id": "13", "ts": 6, "target": "10", "kind": "delete", "by": "alice",
                        "dm": ["alice", "bob"]});
        let u: MessageUpdate = serde_json::from_value(dm.clone()).unwrap();
        assert_eq!(
            u.dm.as_deref(),
            Some(&["alice".to_owned(), "bob".to_owned()][..])
        );
        assert_eq!(serde_json::to_value(&u).unwrap(), dm);
    }
}
