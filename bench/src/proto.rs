//! Engine.IO 4 / Socket.IO 5 text frames on the `/chat` namespace, written and
//! read by hand: the load generator never runs a full client per user.
//!
//! Frames used (one per WebSocket text message):
//! - `0{...}` Engine.IO open, `2` ping (answered with `3` pong), `1` close;
//! - `40/chat,{auth}` namespace connect, answered by `40/chat,{"sid":..}` or
//!   `44/chat,{"message":..}` (connect_error); `41/chat,` disconnect;
//! - `42/chat,["event",{..}]` event, `42/chat,<id>["event",{..}]` event asking
//!   for an ack, `43/chat,<id>[{..}]` the ack.

use serde_json::Value;

/// The namespace every simulated user speaks on.
pub const NS: &str = "/chat";

/// The path and query of the WebSocket endpoint of a Socket.IO v4 server.
pub const WS_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// `40/chat,{auth}`.
pub fn connect_frame(auth: &Value) -> String {
    format!("40{NS},{auth}")
}

/// `41/chat,`: a planned disconnect.
pub fn disconnect_frame() -> String {
    format!("41{NS},")
}

/// `42/chat,<ack>["event",payload]`.
pub fn event_frame(event: &str, payload: &Value, ack: Option<u64>) -> String {
    let ev = Value::String(event.to_owned());
    match ack {
        Some(id) => format!("42{NS},{id}[{ev},{payload}]"),
        None => format!("42{NS},[{ev},{payload}]"),
    }
}

/// One frame read from the server, borrowed from the text of the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Engine.IO open, with its JSON body.
    Open(&'a str),
    /// Engine.IO ping: answer `3`.
    Ping,
    /// Engine.IO close.
    Close,
    /// Namespace connect accepted, with its JSON body.
    Connected(&'a str),
    /// Namespace disconnect from the server.
    Disconnected,
    /// Namespace refused: the JSON body of the connect_error.
    ConnectError(&'a str),
    /// An event: its name and the rest of the JSON array after the name
    /// (`,{...}]`), and the ack id if the server asked for one.
    Event {
        name: &'a str,
        rest: &'a str,
        ack: Option<u64>,
    },
    /// An ack: its id and the JSON array of its arguments.
    Ack { id: u64, args: &'a str },
    /// Anything else (other namespaces, noop, binary, unknown).
    Other,
}

fn split_ack_id(s: &str) -> (Option<u64>, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return (None, s);
    }
    (s[..digits].parse().ok(), &s[digits..])
}

/// Reads one text frame. Cheap: it only slices, the caller parses the JSON
/// it needs.
pub fn parse(text: &str) -> Frame<'_> {
    let b = text.as_bytes();
    match b.first() {
        Some(b'0') => return Frame::Open(&text[1..]),
        Some(b'1') => return Frame::Close,
        Some(b'2') => return Frame::Ping,
        Some(b'4') => {}
        _ => return Frame::Other,
    }
    let Some(kind) = b.get(1) else {
        return Frame::Other;
    };
    let Some(rest) = text[2..].strip_prefix(NS) else {
        return Frame::Other;
    };
    // After the namespace: a comma, then the body (the comma may be missing
    // when the body is empty).
    let body = rest.strip_prefix(',').unwrap_or(rest);
    match kind {
        b'0' => Frame::Connected(body),
        b'1' => Frame::Disconnected,
        b'4' => Frame::ConnectError(body),
        b'2' => {
            let (ack, arr) = split_ack_id(body);
            // ["name",...]
            let Some(arr) = arr.strip_prefix("[\"") else {
                return Frame::Other;
            };
            let Some(end) = arr.find('"') else {
                return Frame::Other;
            };
            Frame::Event {
                name: &arr[..end],
                rest: &arr[end + 1..],
                ack,
            }
        }
        b'3' => match split_ack_id(body) {
            (Some(id), args) => Frame::Ack { id, args },
            _ => Frame::Other,
        },
        _ => Frame::Other,
    }
}

/// The string value of `"key":"..."` in a flat JSON object, without
/// unescaping (the ids and texts the bench reads hold no escapes).
pub fn str_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    // Find `"key":"` without allocating: `key` quoted, then `:"`.
    while let Some(pos) = json[from..].find(key) {
        let start = from + pos;
        let end = start + key.len();
        from = end;
        if start == 0 || json.as_bytes()[start - 1] != b'"' {
            continue;
        }
        if let Some(value) = json[end..].strip_prefix("\":\"") {
            return value.find('"').map(|len| &value[..len]);
        }
    }
    None
}

/// Whether a flat JSON object holds `"replayed":true`.
pub fn replayed(json: &str) -> bool {
    json.contains("\"replayed\":true")
}

/// The text of a bench message: a marker, the message number and the send
/// time in microseconds since the run's clock base.
pub fn bench_text(msg_no: u64, sent_us: u64) -> String {
    format!("b {msg_no} {sent_us}")
}

/// Reads [`bench_text`] back from an event payload.
pub fn read_bench_text(json: &str) -> Option<(u64, u64)> {
    let text = str_field(json, "text")?;
    let mut it = text.strip_prefix("b ")?.split(' ');
    let no = it.next()?.parse().ok()?;
    let ts = it.next()?.parse().ok()?;
    Some((no, ts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_round_trip() {
        assert_eq!(
            connect_frame(&json!({"username": "a"})),
            r#"40/chat,{"username":"a"}"#
        );
        assert_eq!(
            event_frame("room:join", &json!({"room": "#a"}), Some(7)),
            r##"42/chat,7["room:join",{"room":"#a"}]"##
        );
        assert_eq!(parse("2"), Frame::Ping);
        assert_eq!(parse(r#"0{"sid":"x"}"#), Frame::Open(r#"{"sid":"x"}"#));
        assert_eq!(
            parse(r#"40/chat,{"sid":"x"}"#),
            Frame::Connected(r#"{"sid":"x"}"#)
        );
        assert_eq!(
            parse(r#"44/chat,{"message":"m"}"#),
            Frame::ConnectError(r#"{"message":"m"}"#)
        );
        assert_eq!(
            parse(r#"43/chat,12[{"ok":true}]"#),
            Frame::Ack {
                id: 12,
                args: r#"[{"ok":true}]"#
            }
        );
        assert_eq!(
            parse(r#"42/chat,["room:message",{"id":"5","text":"b 3 99"}]"#),
            Frame::Event {
                name: "room:message",
                rest: r#",{"id":"5","text":"b 3 99"}]"#,
                ack: None
            }
        );
        assert_eq!(parse("41/chat,"), Frame::Disconnected);
        assert_eq!(parse("42/admin,[\"x\"]"), Frame::Other);
    }

    #[test]
    fn bench_text_round_trip() {
        let payload = format!(
            r##"{{"id":"9","ts":1,"from":"u","room":"#r","text":"{}"}}"##,
            bench_text(42, 1234)
        );
        assert_eq!(read_bench_text(&payload), Some((42, 1234)));
        assert_eq!(str_field(&payload, "id"), Some("9"));
        assert_eq!(str_field(r#"{"idx":"1","id":"2"}"#, "id"), Some("2"));
        assert_eq!(str_field(r#"{"n":1}"#, "id"), None);
        assert!(replayed(r#"{"id":"1","replayed":true}"#));
        assert!(!replayed(r#"{"id":"1"}"#));
        assert_eq!(read_bench_text(r#"{"text":"hello"}"#), None);
    }
}
