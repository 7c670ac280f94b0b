//! Ending a `/chat` socket's transport from the server, as an unplanned
//! disconnect: the socket's session and recovery window stay, so its
//! client reconnects, resumes with its offset and gets what it missed.
//!
//! Used when a message cannot be queued for a socket (a reader that fell
//! behind) and when an answer to one of its requests cannot be queued:
//! rather than drop either silently, the client is made to find out and
//! recover. Socket.IO can only close a transport by queueing a packet, which
//! a full queue refuses, so this works one level down, on the TCP
//! connection ([`ConnHandle`]):
//!
//! - A WebSocket is killed through the handle of the connection it runs on
//!   (the handshake's own for a direct WebSocket, the upgrade request's for
//!   one upgraded from polling).
//! - A polling socket is killed through the connection of its latest
//!   request, and every later request for its sid is refused, so its
//!   client sees a transport error and reconnects.
//!
//! Only sids of admitted `/chat` sockets are tracked, from admission until
//! they are let go, so nothing here grows with handshakes that never
//! connect.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;

use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

use crate::http::listener::ConnHandle;

#[derive(Debug, Default)]
struct Entry {
    /// The connection of the socket's latest request (polling) or of its
    /// WebSocket upgrade.
    latest: Option<ConnHandle>,
    /// Ended: further requests for this sid are refused.
    ended: bool,
}

/// The live `/chat` sockets' connections. See the module doc.
#[derive(Debug, Default)]
pub struct Transports {
    by_sid: Mutex<HashMap<Sid, Entry>>,
}

/// The `sid` query parameter of an Engine.IO request, if any.
pub fn sid_of(query: Option<&str>) -> Option<Sid> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("sid="))
        .and_then(|v| Sid::from_str(v).ok())
}

impl Transports {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, Entry>> {
        self.by_sid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts tracking an admitted socket.
    pub fn admit(&self, sid: Sid) {
        self.lock().entry(sid).or_default();
    }

    /// Stops tracking a socket that has gone.
    pub fn forget(&self, sid: Sid) {
        self.lock().remove(&sid);
    }

    /// Notes a request for `sid` on connection `conn`. Returns false when
    /// the socket's transport was ended: the request is to be refused.
    pub fn seen(&self, sid: Sid, conn: &ConnHandle) -> bool {
        let mut map = self.lock();
        match map.get_mut(&sid) {
            Some(e) if e.ended => false,
            Some(e) => {
                e.latest = Some(conn.clone());
                true
            }
            None => true,
        }
    }

    /// Ends `s`'s transport at once. Returns false if it was already ended.
    pub fn end(&self, s: &SocketRef) -> bool {
        let latest = {
            let mut map = self.lock();
            let e = map.entry(s.id).or_default();
            if e.ended {
                return false;
            }
            e.ended = true;
            e.latest.take()
        };
        if let Some(conn) = latest {
            conn.kill();
        }
        if let Some(conn) = s.req_parts().extensions.get::<ConnHandle>() {
            conn.kill();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_is_read_from_the_query() {
        let sid = Sid::new();
        let q = format!("EIO=4&transport=polling&sid={sid}");
        assert_eq!(sid_of(Some(&q)), Some(sid));
        assert_eq!(sid_of(Some("EIO=4&transport=polling")), None);
        assert_eq!(sid_of(Some("sid=not-a-sid")), None);
        assert_eq!(sid_of(None), None);
    }

    #[test]
    fn an_ended_socket_refuses_further_requests() {
        let t = Transports::default();
        let sid = Sid::new();
        let conn = ConnHandle::default();
        t.admit(sid);
        assert!(t.seen(sid, &conn));
        t.lock().get_mut(&sid).unwrap().ended = true;
        assert!(!t.seen(sid, &conn));
        t.forget(sid);
        assert!(
            t.seen(sid, &conn),
            "an unknown sid is the engine's business"
        );
    }
}
