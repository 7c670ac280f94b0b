//! Why a connection attempt failed, from the text rust_socketio passes up:
//! a refusal by the server (`connect_error`), or a failure before any
//! Socket.IO exchange (refused, unreachable, name not resolved, TLS).

use chat_shared::ConnectRefusal;
use serde_json::Value;

use crate::msg::ConnectFailure;

/// Tells why a connection attempt failed from the library's error text (its
/// message and debug form, which carry the OS and TLS errors underneath).
pub fn classify_failure(text: &str) -> ConnectFailure {
    let t = text.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    // A JSON object where the handshake's first packet should be (`{` is
    // 123): the server refused the handshake with an error body.
    if has(&[
        "status code: 429",
        "429 too many requests",
        "invalidpacketid(123)",
    ]) {
        ConnectFailure::TurnedAway
    } else if has(&[
        "connection refused",
        "os error 111",
        "os error 61",
        "os error 10061",
    ]) {
        ConnectFailure::Refused
    } else if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no address associated",
        "nodename nor servname",
        "temporary failure in name resolution",
    ]) {
        ConnectFailure::NameNotResolved
    } else if has(&["illegal handshake", "invalid handshake"]) {
        // Engine.IO's handshake, not TLS's: something else answered.
        ConnectFailure::Protocol
    } else if has(&["certificate", "tls", "ssl", "handshake"]) {
        ConnectFailure::Tls
    } else if has(&[
        "no route to host",
        "network is unreachable",
        "host is unreachable",
        "timed out",
        "os error 113",
        "os error 101",
    ]) {
        ConnectFailure::Unreachable
    } else if has(&[
        "invalid packet",
        "invalid handshake",
        "status",
        "404",
        "unexpected",
    ]) {
        ConnectFailure::Protocol
    } else {
        ConnectFailure::Other
    }
}

const CONNECT_ERROR_PREFIX: &str = "Received an ConnectError frame: ";

/// Reads the `Event::Error` text of a refused connect.
pub fn parse_connect_error(text: &str) -> Option<ConnectRefusal> {
    let json = text.strip_prefix(CONNECT_ERROR_PREFIX)?;
    let message = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(o)) => o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or(json)
            .to_owned(),
        Ok(Value::String(s)) => s,
        _ => json.to_owned(),
    };
    Some(ConnectRefusal::parse(&message))
}

#[cfg(test)]
mod tests {
    use chat_shared::ErrorCode;

    use super::*;

    #[test]
    fn refused_connects_are_read_from_the_error_text() {
        let r = parse_connect_error(
            r#"Received an ConnectError frame: {"message":"username_taken: alice is in use"}"#,
        );
        assert_eq!(
            r,
            Some(ConnectRefusal::new(
                ErrorCode::UsernameTaken,
                "alice is in use"
            ))
        );
        let r = parse_connect_error(
            r#"Received an ConnectError frame: {"message":"Invalid namespace"}"#,
        );
        assert_eq!(r.map(|r| r.code), Some(ErrorCode::Unknown));
        assert_eq!(
            parse_connect_error("Received an ConnectError frame: \"No error message provided\"")
                .map(|r| r.message),
            Some("No error message provided".to_owned())
        );
        assert_eq!(parse_connect_error("some transport error"), None);
    }

    #[test]
    fn connect_failures_are_classified_from_the_error_text() {
        use ConnectFailure::*;
        let cases = [
            (
                "error sending request: tcp connect error: Connection refused (os error 111)",
                Refused,
            ),
            (
                "dns error: failed to lookup address information: Name or service not known",
                NameNotResolved,
            ),
            (
                "error trying to connect: error:0A00010B:SSL routines:ssl3_get_record:wrong version number",
                Tls,
            ),
            ("the certificate was not trusted", Tls),
            (
                "tcp connect error: No route to host (os error 113)",
                Unreachable,
            ),
            ("operation timed out", Unreachable),
            ("Invalid packet id: 60", Protocol),
            ("Got illegal handshake response: {}", Protocol),
            (
                "Error with websocket connection: HTTP error: 429 Too Many Requests",
                TurnedAway,
            ),
            ("Network request returned with status code: 429", TurnedAway),
            (
                "EngineIO Error IncompleteResponseFromEngineIo(InvalidPacketId(123))",
                TurnedAway,
            ),
            ("something else entirely", Other),
        ];
        for (text, want) in cases {
            assert_eq!(classify_failure(text), want, "{text}");
        }
    }
}
