//! (v3) The HTTP API end to end, with a real HTTP client (reqwest) against
//! a real server: every route's statuses and error bodies, the lockout it
//! shares with `/chat` logins, tokens that stop working when revoked
//! (and end the sessions they opened), posts over HTTP delivered live to
//! Socket.IO clients in order with theirs, a DM kept for an offline
//! account, the per-account rate, and all of it over TLS.

use std::time::Duration;

use chat_e2e::certs::TestCa;
use chat_e2e::{TestClient, TestServer, ok};
use chat_server::Config;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// An HTTP client of one server's API.
struct Api {
    http: reqwest::Client,
    base: String,
}

/// An answer: status, `Retry-After` if any, body (JSON, or `null`).
#[derive(Debug)]
struct Got {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Got {
    /// The error code of an error body.
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    fn new(base: &str) -> Api {
        Api::with(reqwest::Client::new(), base)
    }

    fn with(http: reqwest::Client, base: &str) -> Api {
        Api {
            http,
            base: format!("{base}/api/v1"),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Got {
        let res = req.send().await.expect("the request is answered");
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = res.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Got {
            status,
            retry_after,
            body,
        }
    }

    fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Got {
        self.send(self.req(reqwest::Method::GET, path, token)).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Got {
        self.send(self.req(reqwest::Method::POST, path, token).json(&body))
            .await
    }

    async fn put(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Got {
        let req = self.req(reqwest::Method::PUT, path, token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        self.send(req).await
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> Got {
        self.send(self.req(reqwest::Method::DELETE, path, token))
            .await
    }

    /// Creates the account `name` (201).
    async fn account(&self, name: &str) {
        let got = self
            .post(
                "/accounts",
                None,
                json!({"username": name, "password": PASSWORD}),
            )
            .await;
        assert_eq!(got.status, 201, "{got:?}");
        assert_eq!(got.body, json!({"username": name}));
    }

    /// A new token of `name` labelled `label`: (id, token).
    async fn token(&self, name: &str, label: &str) -> (String, String) {
        let got = self
            .post(
                "/tokens",
                None,
                json!({"username": name, "password": PASSWORD, "label": label}),
            )
            .await;
        assert_eq!(got.status, 201, "{got:?}");
        let id = got.body["id"].as_str().unwrap().to_owned();
        let token = got.body["token"].as_str().unwrap().to_owned();
        (id, token)
    }
}

/// Whether `event` matching `pred` arrives within a short while (for what
/// must not come).
async fn arrives(c: &mut TestClient, event: &str, pred: impl Fn(&Value) -> bool) -> bool {
    tokio::time::timeout(Duration::from_millis(400), c.next_where(event, pred))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_its_status_and_error_body() {
    let server = TestServer::start(Config {
        max_payload: 4096,
        ..TestServer::config()
    })
    .await;
    let api = Api::new(&server.url());

    // Sign-up, under the handshake's rules.
    api.account("Alice").await;
    let again = api
        .post(
            "/accounts",
            None,
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (409, "username_taken"),
        "{again:?}"
    );
    let weak = api
        .post(
            "/accounts",
            None,
            json!({"username": "bob", "password": "short"}),
        )
        .await;
    assert_eq!(
        (weak.status, weak.code()),
        (400, "weak_password"),
        "{weak:?}"
    );
    let bad_name = api
        .post(
            "/accounts",
            None,
            json!({"username": "no spaces", "password": PASSWORD}),
        )
        .await;
    assert_eq!(bad_name.status, 400, "{bad_name:?}");
    assert_eq!(bad_name.code(), "invalid_username");

    // The body rules.
    let url = format!("{}/accounts", api.base);
    let raw = |body: &'static str, ctype: &'static str| {
        api.http.post(&url).header("content-type", ctype).body(body)
    };
    let malformed = api.send(raw("{\"username\": ", "application/json")).await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (400, "invalid_payload")
    );
    let duplicate = api
        .send(raw(
            r#"{"username":"bob","username":"eve","password":"correct horse battery"}"#,
            "application/json",
        ))
        .await;
    assert_eq!(
        (duplicate.status, duplicate.code()),
        (400, "invalid_payload")
    );
    let wrong_type = api
        .post(
            "/accounts",
            None,
            json!({"username": 5, "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (wrong_type.status, wrong_type.code()),
        (400, "invalid_payload")
    );
    let form = api
        .send(raw(
            "username=bob&password=x",
            "application/x-www-form-urlencoded",
        ))
        .await;
    assert_eq!(
        (form.status, form.code()),
        (415, "invalid_payload"),
        "{form:?}"
    );
    let huge = api
        .post(
            "/accounts",
            None,
            json!({"username": "bob", "password": "x".repeat(5000)}),
        )
        .await;
    assert_eq!(
        (huge.status, huge.code()),
        (413, "invalid_payload"),
        "{huge:?}"
    );

    // Tokens.
    let wrong = api
        .post(
            "/tokens",
            None,
            json!({"username": "alice", "password": "not the password"}),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (401, "bad_credentials"),
        "{wrong:?}"
    );
    let made = api
        .post(
            "/tokens",
            None,
            json!({"username": "alice", "password": PASSWORD, "label": "ci"}),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["username"], "Alice");
    assert_eq!(made.body["label"], "ci");
    let token = made.body["token"].as_str().unwrap().to_owned();
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert!(token.len() >= 48, "at least 192 bits: {token}");

    let none = api.get("/tokens", None).await;
    assert_eq!(
        (none.status, none.code()),
        (401, "auth_required"),
        "{none:?}"
    );
    let basic = api
        .send(
            api.http
                .get(format!("{}/tokens", api.base))
                .header("authorization", format!("Basic {token}")),
        )
        .await;
    assert_eq!((basic.status, basic.code()), (401, "bad_credentials"));
    let forged = api.get("/tokens", Some("0123456789abcdef")).await;
    assert_eq!((forged.status, forged.code()), (401, "bad_credentials"));
    let in_query = api
        .get(&format!("/tokens?access_token={token}"), None)
        .await;
    assert_eq!(in_query.status, 401, "never from the query string");
    // The scheme in any case.
    let listed = api
        .send(
            api.http
                .get(format!("{}/tokens", api.base))
                .header("authorization", format!("bEaReR {token}")),
        )
        .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let tokens = listed.body["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{listed:?}");
    assert_eq!(tokens[0]["id"], id.as_str());
    assert_eq!(tokens[0]["label"], "ci");
    assert!(tokens[0]["createdAt"].as_u64().unwrap() > 0);
    assert!(
        !listed.body.to_string().contains(&token),
        "the secret is shown once only"
    );
    let t = Some(token.as_str());

    // Rooms: join, post, read, leave.
    let joined = api.put("/rooms/%23ops/membership", t, None).await;
    assert_eq!(joined.status, 204, "{joined:?}");
    assert_eq!(
        api.put("/rooms/ops/membership", t, None).await.status,
        204,
        "idempotent"
    );
    let bad_room = api.put("/rooms/NOT%20A%20ROOM/membership", t, None).await;
    assert_eq!((bad_room.status, bad_room.code()), (400, "invalid_room"));
    let empty = api.get("/rooms/ops/messages", t).await;
    assert_eq!(empty.status, 200, "{empty:?}");
    assert_eq!(empty.body, json!({"messages": [], "more": false}));
    let mut ids = Vec::new();
    for n in 0..3 {
        let sent = api
            .post(
                "/rooms/ops/messages",
                t,
                json!({"text": format!("build {n} ok")}),
            )
            .await;
        assert_eq!(sent.status, 201, "{sent:?}");
        assert!(sent.body["ts"].as_u64().unwrap() > 0);
        ids.push(sent.body["id"].as_str().unwrap().to_owned());
    }
    let blank = api
        .post("/rooms/ops/messages", t, json!({"text": "  "}))
        .await;
    assert_eq!((blank.status, blank.code()), (400, "empty_message"));
    let long = api
        .post("/rooms/ops/messages", t, json!({"text": "x".repeat(2001)}))
        .await;
    assert_eq!((long.status, long.code()), (400, "message_too_long"));
    let elsewhere = api
        .post("/rooms/elsewhere/messages", t, json!({"text": "hi"}))
        .await;
    assert_eq!((elsewhere.status, elsewhere.code()), (403, "not_member"));
    let page = api.get("/rooms/%23ops/messages?limit=2", t).await;
    assert_eq!(page.status, 200, "{page:?}");
    let texts: Vec<&str> = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["build 1 ok", "build 2 ok"],
        "the last two, oldest first"
    );
    assert_eq!(page.body["more"], true);
    let older = api
        .get(&format!("/rooms/ops/messages?before={}", ids[1]), t)
        .await;
    assert_eq!(
        older.body["messages"][0]["id"],
        ids[0].as_str(),
        "{older:?}"
    );
    assert_eq!(older.body["more"], false);
    let blank = api.get("/rooms/ops/messages?before=&limit=", t).await;
    assert_eq!(
        blank.body["messages"].as_array().map(Vec::len),
        Some(3),
        "{blank:?}"
    );
    let bad_limit = api.get("/rooms/ops/messages?limit=many", t).await;
    assert_eq!(
        (bad_limit.status, bad_limit.code()),
        (400, "invalid_payload")
    );
    let not_in = api.get("/rooms/elsewhere/messages", t).await;
    assert_eq!((not_in.status, not_in.code()), (403, "not_member"));
    assert_eq!(api.delete("/rooms/ops/membership", t).await.status, 204);
    let left = api.delete("/rooms/ops/membership", t).await;
    assert_eq!((left.status, left.code()), (403, "not_member"));

    // DMs.
    let nobody = api.post("/dms/nobody", t, json!({"text": "hi"})).await;
    assert_eq!((nobody.status, nobody.code()), (404, "user_not_found"));
    let me = api.post("/dms/alice", t, json!({"text": "hi"})).await;
    assert_eq!((me.status, me.code()), (400, "invalid_target"));

    // Bans: moderators and admins only.
    let bans = api.get("/bans", t).await;
    assert_eq!((bans.status, bans.code()), (403, "forbidden"), "{bans:?}");

    // The password.
    let wrong_old = api
        .put(
            "/password",
            t,
            Some(json!({"old": "not it at all", "new": "a new password"})),
        )
        .await;
    assert_eq!(
        (wrong_old.status, wrong_old.code()),
        (401, "bad_credentials")
    );
    let weak_new = api
        .put(
            "/password",
            t,
            Some(json!({"old": PASSWORD, "new": "short"})),
        )
        .await;
    assert_eq!((weak_new.status, weak_new.code()), (400, "weak_password"));
    let changed = api
        .put(
            "/password",
            t,
            Some(json!({"old": PASSWORD, "new": "a new password"})),
        )
        .await;
    assert_eq!(changed.status, 204, "{changed:?}");
    let old_pw = api
        .post(
            "/tokens",
            None,
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(old_pw.status, 401, "the old password no longer works");

    // Routes and methods.
    let unknown = api.get("/nothing/here", t).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "not_found"),
        "{unknown:?}"
    );
    let patch = api
        .send(api.req(reqwest::Method::PATCH, "/tokens", t))
        .await;
    assert_eq!(
        (patch.status, patch.code()),
        (405, "not_found"),
        "{patch:?}"
    );
    let not_mine = api.delete("/tokens/tok-unknown", t).await;
    assert_eq!((not_mine.status, not_mine.code()), (404, "not_found"));

    // Counted by route template and status.
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"chat_api_requests_total{route="/api/v1/accounts",status="201"} 1"#,
        r#"chat_api_requests_total{route="/api/v1/rooms/{room}/messages",status="201"} 3"#,
        r#"chat_api_requests_total{route="unknown",status="404"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_closed_is_refused_over_http_too() {
    let server = TestServer::start(Config {
        registration: Some(chat_server::config::Registration::Closed),
        ..TestServer::config()
    })
    .await;
    let api = Api::new(&server.url());
    let got = api
        .post(
            "/accounts",
            None,
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (got.status, got.code()),
        (403, "registration_closed"),
        "{got:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_on_tokens_lock_the_name_for_chat_logins_too() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let api = Api::new(&url);
    api.account("alice").await;
    for _ in 0..5 {
        let got = api
            .post(
                "/tokens",
                None,
                json!({"username": "alice", "password": "a wrong guess"}),
            )
            .await;
        assert_eq!(got.code(), "bad_credentials", "{got:?}");
    }
    // Locked, for the API and for /chat, even with the right password.
    let locked = api
        .post(
            "/tokens",
            None,
            json!({"username": "alice", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (locked.status, locked.code()),
        (429, "rate_limited"),
        "{locked:?}"
    );
    let wait: u64 = locked.retry_after.as_deref().unwrap().parse().unwrap();
    assert!(wait >= 1, "{locked:?}");
    let refused = TestClient::connect(&url, json!({"username": "alice", "password": PASSWORD}))
        .await
        .err()
        .expect("the name is locked for logins");
    assert!(refused.contains("rate_limited"), "{refused}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_on_tokens_lock_the_address_for_handshakes() {
    let server = TestServer::start(Config {
        login_address_limit: 3,
        ..TestServer::config()
    })
    .await;
    let url = server.url();
    let api = Api::new(&url);
    for name in ["ann", "ben", "cid"] {
        let got = api
            .post(
                "/tokens",
                None,
                json!({"username": name, "password": PASSWORD}),
            )
            .await;
        assert_eq!(got.code(), "bad_credentials", "{got:?}");
    }
    let locked = api
        .post(
            "/tokens",
            None,
            json!({"username": "dan", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (locked.status, locked.code()),
        (429, "rate_limited"),
        "{locked:?}"
    );
    assert!(locked.retry_after.is_some());
    // A new Engine.IO handshake from the address is turned away as well.
    let handshake = reqwest::get(format!("{url}/socket.io/?EIO=4&transport=polling"))
        .await
        .unwrap();
    assert_eq!(handshake.status().as_u16(), 429);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_opens_sessions_and_revoking_it_ends_them() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let api = Api::new(&url);
    api.account("alice").await;
    api.account("bob").await;
    let (id, token) = api.token("alice", "laptop").await;
    let (_, other) = api.token("alice", "ci").await;
    let (_, bobs) = api.token("bob", "bob's").await;

    let mut by_token = TestClient::connect(
        &url,
        json!({"username": "alice", "token": token, "client": "chat-tui on laptop"}),
    )
    .await
    .expect("a token opens a session");
    let session = by_token.session.clone().unwrap();
    assert_eq!(session["username"], "alice");
    assert_eq!(session["role"], "user", "an account's session: {session}");
    let mut by_password =
        TestClient::connect(&url, json!({"username": "alice", "password": PASSWORD}))
            .await
            .unwrap();
    let listed = ok(by_password.ack("session:list", json!({})).await);
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 2, "{listed}");

    let wrong_name = TestClient::connect(&url, json!({"username": "alice", "token": bobs}))
        .await
        .err()
        .expect("bob's token is not alice's");
    assert!(wrong_name.contains("bad_credentials"), "{wrong_name}");

    // Revoked: its socket ends, the other session stays, it works no more.
    let revoked = api.delete(&format!("/tokens/{id}"), Some(&other)).await;
    assert_eq!(revoked.status, 204, "{revoked:?}");
    let err = by_token
        .next_where("chat:error", |e| e["code"] == "session_ended")
        .await;
    assert_eq!(err["code"], "session_ended");
    assert!(
        !arrives(&mut by_password, "chat:error", |_| true).await,
        "the password's session is not the token's"
    );
    ok(by_password.ack("ping", json!({})).await);
    let gone = api.get("/tokens", Some(&token)).await;
    assert_eq!((gone.status, gone.code()), (401, "bad_credentials"));
    let left = api.get("/tokens", Some(&other)).await;
    let labels: Vec<&str> = left.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["ci"]);
    let again = TestClient::connect(&url, json!({"username": "alice", "token": token}))
        .await
        .err()
        .expect("a revoked token opens nothing");
    assert!(again.contains("bad_credentials"), "{again}");
    // Its session token does not resume it either.
    let resumed = TestClient::connect(
        &url,
        json!({"username": "alice", "token": other, "session": session["session"]}),
    )
    .await
    .unwrap();
    assert_eq!(resumed.session.as_ref().unwrap()["recovered"], false);
    // Bob cannot revoke alice's token.
    let ci_id = left.body["tokens"][0]["id"].as_str().unwrap().to_owned();
    let not_his = api.delete(&format!("/tokens/{ci_id}"), Some(&bobs)).await;
    assert_eq!((not_his.status, not_his.code()), (404, "not_found"));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_login_counts_in_the_session_limit() {
    let server = TestServer::start(Config {
        max_sessions_per_account: 1,
        ..TestServer::config()
    })
    .await;
    let url = server.url();
    let api = Api::new(&url);
    api.account("alice").await;
    let (_, token) = api.token("alice", "bot").await;
    let mut first = TestClient::connect(&url, json!({"username": "alice", "password": PASSWORD}))
        .await
        .unwrap();
    let _second = TestClient::connect(&url, json!({"username": "alice", "token": token}))
        .await
        .unwrap();
    let err = first.next("chat:error").await;
    assert_eq!(err["code"], "session_replaced", "{err}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_posts_reach_sockets_live_in_order_with_socket_posts() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let api = Api::new(&url);
    api.account("ci").await;
    let (_, token) = api.token("ci", "pipeline").await;
    let t = Some(token.as_str());
    let mut bob = TestClient::chat(&url, "bob").await;
    let mut carol = TestClient::chat(&url, "carol").await;
    for c in [&bob, &carol] {
        ok(c.ack("room:join", json!({"room": "#ops"})).await);
    }
    // The bot's own socket follows its account's membership.
    let mut bot = TestClient::connect(&url, json!({"username": "ci", "token": token}))
        .await
        .unwrap();
    assert_eq!(api.put("/rooms/ops/membership", t, None).await.status, 204);
    bot.next_where("room:joined", |j| j["room"] == "#ops").await;
    bob.next_where("presence", |p| p["event"] == "join" && p["user"] == "ci")
        .await;

    let mut sent = Vec::new();
    for n in 0..10 {
        if n % 2 == 0 {
            let got = api
                .post(
                    "/rooms/%23ops/messages",
                    t,
                    json!({"text": format!("m{n}")}),
                )
                .await;
            assert_eq!(got.status, 201, "{got:?}");
            sent.push((got.body["id"].as_str().unwrap().to_owned(), format!("m{n}")));
        } else {
            let ack = ok(bob
                .ack(
                    "room:message",
                    json!({"room": "#ops", "text": format!("m{n}")}),
                )
                .await);
            sent.push((ack["id"].as_str().unwrap().to_owned(), format!("m{n}")));
        }
    }
    let action = api
        .post(
            "/rooms/ops/messages",
            t,
            json!({"text": "deploys", "action": true}),
        )
        .await;
    assert_eq!(action.status, 201);
    for c in [&mut bob, &mut carol, &mut bot] {
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let m = c.next("room:message").await;
            got.push((
                m["id"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            ));
            if m["from"] == "ci" {
                assert_eq!(m["room"], "#ops");
            }
        }
        assert_eq!(got, sent, "every message once, in the order acknowledged");
        let a = c.next("room:message").await;
        assert_eq!(
            (a["text"].as_str(), a["action"].as_bool()),
            (Some("deploys"), Some(true))
        );
    }
    let ids: Vec<u64> = sent.iter().map(|(id, _)| id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Leaving over HTTP takes the account's sockets out too.
    assert_eq!(api.delete("/rooms/ops/membership", t).await.status, 204);
    bot.next_where("room:left", |j| j["room"] == "#ops").await;
    ok(bob
        .ack("room:message", json!({"room": "#ops", "text": "after"}))
        .await);
    assert!(!arrives(&mut bot, "room:message", |_| true).await);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_over_http_is_kept_for_an_offline_account_and_reaches_every_session() {
    let server = TestServer::start(TestServer::config()).await;
    let url = server.url();
    let api = Api::new(&url);
    api.account("ci").await;
    api.account("carol").await;
    let (_, token) = api.token("ci", "bot").await;
    let t = Some(token.as_str());

    // Carol has never connected: the DM waits for her.
    let queued = api
        .post("/dms/Carol", t, json!({"text": "your build failed"}))
        .await;
    assert_eq!(queued.status, 201, "{queued:?}");
    assert_eq!(queued.body["queued"], true, "{queued:?}");
    let mut carol = TestClient::connect(&url, json!({"username": "carol", "password": PASSWORD}))
        .await
        .unwrap();
    let dm = carol.next("dm:message").await;
    assert_eq!(dm["text"], "your build failed");
    assert_eq!(dm["from"], "ci");
    assert_eq!(dm["replayed"], true, "{dm}");
    assert_eq!(dm["id"], queued.body["id"]);

    // Online now: delivered at once, to her and to every session of the
    // sender (none of them sent it).
    let mut bot = TestClient::connect(&url, json!({"username": "ci", "token": token}))
        .await
        .unwrap();
    let live = api.post("/dms/carol", t, json!({"text": "fixed"})).await;
    assert_eq!(live.status, 201, "{live:?}");
    assert!(live.body.get("queued").is_none(), "{live:?}");
    assert_eq!(carol.next("dm:message").await["text"], "fixed");
    bot.next_where("dm:message", |m| m["text"] == "fixed" && m["to"] == "carol")
        .await;

    // A block applies to HTTP as to sockets.
    ok(carol.ack("user:block", json!({"user": "ci"})).await);
    let blocked = api.post("/dms/carol", t, json!({"text": "hello?"})).await;
    assert_eq!(
        (blocked.status, blocked.code()),
        (403, "blocked"),
        "{blocked:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_posts_count_against_the_accounts_rate() {
    let server = TestServer::start(Config {
        rate: 0.5,
        burst: 3,
        ..TestServer::config()
    })
    .await;
    let api = Api::new(&server.url());
    api.account("ci").await;
    let (_, one) = api.token("ci", "one").await;
    let (_, two) = api.token("ci", "two").await;
    assert_eq!(
        api.put("/rooms/ops/membership", Some(&one), None)
            .await
            .status,
        204
    );
    for token in [&one, &two, &one] {
        let got = api
            .post("/rooms/ops/messages", Some(token), json!({"text": "tick"}))
            .await;
        assert_eq!(got.status, 201, "{got:?}");
    }
    // The burst is the account's, whichever token posts.
    let limited = api
        .post("/rooms/ops/messages", Some(&two), json!({"text": "tick"}))
        .await;
    assert_eq!(
        (limited.status, limited.code()),
        (429, "rate_limited"),
        "{limited:?}"
    );
    assert_eq!(limited.retry_after.as_deref(), Some("2"), "{limited:?}");
    assert!(
        limited.body["error"]["context"]["retryAfterMs"]
            .as_u64()
            .unwrap()
            > 1000
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("chat api test CA");
    let (cert, key) = ca.write_server_cert(dir.path(), "chat-server");
    let server = TestServer::start(Config {
        tls_cert: Some(cert),
        tls_key: Some(key),
        ..TestServer::config()
    })
    .await;
    let url = format!("https://localhost:{}", server.addr.port());
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let api = Api::with(http, &url);
    api.account("ci").await;
    let (_, token) = api.token("ci", "tls").await;
    let t = Some(token.as_str());
    let root = native_tls::Certificate::from_pem(ca.pem.as_bytes()).unwrap();
    let tls = native_tls::TlsConnector::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let opts = chat_e2e::Opts {
        tls: Some(tls),
        ..Default::default()
    };
    let mut bob = TestClient::connect_with(&url, json!({"username": "bob"}), opts)
        .await
        .unwrap();
    ok(bob.ack("room:join", json!({"room": "#ops"})).await);
    assert_eq!(api.put("/rooms/ops/membership", t, None).await.status, 204);
    let sent = api
        .post("/rooms/ops/messages", t, json!({"text": "over TLS"}))
        .await;
    assert_eq!(sent.status, 201, "{sent:?}");
    let m = bob.next("room:message").await;
    assert_eq!(
        (m["text"].as_str(), m["from"].as_str()),
        (Some("over TLS"), Some("ci"))
    );
    let page = api.get("/rooms/ops/messages", t).await;
    assert_eq!(page.body["messages"][0]["text"], "over TLS");
    let plain = reqwest::Client::new()
        .get(format!(
            "http://localhost:{}/api/v1/tokens",
            server.addr.port()
        ))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.unwrap().status().as_u16() != 200,
        "no plain HTTP beside TLS"
    );
    server.stop().await.unwrap();
}

/// `chat-server account role` on the data directory.
fn role_command(dir: &std::path::Path, name: &str, role: &str) {
    let out = std::process::Command::new(chat_e2e::workspace_binary("chat-server", "chat-server"))
        .args(["account", "role", name, role, "--data-dir"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run chat-server account role");
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutes_bans_and_the_ban_list_apply_to_http_as_to_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let config = TestServer::on_disk(dir.path());
    let server = TestServer::start(config.clone()).await;
    let api = Api::new(&server.url());
    api.account("root").await;
    api.account("alice").await;
    server.stop().await.unwrap();
    role_command(dir.path(), "root", "admin");
    let server = TestServer::start(config).await;
    let url = server.url();
    let api = Api::new(&url);
    let (_, roots) = api.token("root", "admin script").await;
    let (_, alices) = api.token("alice", "bot").await;
    let (r, a) = (Some(roots.as_str()), Some(alices.as_str()));
    let none = api.get("/bans", r).await;
    assert_eq!(none.status, 200, "{none:?}");
    assert_eq!(none.body, json!({"bans": []}));
    assert_eq!(api.put("/rooms/ops/membership", a, None).await.status, 204);
    let root = TestClient::connect(&url, json!({"username": "root", "token": roots}))
        .await
        .unwrap();
    assert_eq!(root.session.as_ref().unwrap()["role"], "admin");

    // A server mute silences HTTP posts and DMs.
    ok(root
        .ack("user:mute", json!({"user": "alice", "for": 600}))
        .await);
    let muted = api
        .post("/rooms/ops/messages", a, json!({"text": "x"}))
        .await;
    assert_eq!((muted.status, muted.code()), (403, "muted"), "{muted:?}");
    let muted_dm = api.post("/dms/root", a, json!({"text": "x"})).await;
    assert_eq!((muted_dm.status, muted_dm.code()), (403, "muted"));
    ok(root.ack("user:unmute", json!({"user": "alice"})).await);
    assert_eq!(
        api.post("/rooms/ops/messages", a, json!({"text": "back"}))
            .await
            .status,
        201
    );

    // A server ban: the account's tokens stop working while it lasts.
    ok(root
        .ack("user:ban", json!({"user": "alice", "reason": "spam"}))
        .await);
    let banned = api.get("/tokens", a).await;
    assert_eq!(
        (banned.status, banned.code()),
        (403, "banned"),
        "{banned:?}"
    );
    let refused = TestClient::connect(&url, json!({"username": "alice", "token": alices}))
        .await
        .err()
        .expect("a banned account's token opens nothing");
    assert!(refused.contains("banned"), "{refused}");
    let bans = api.get("/bans", r).await;
    assert_eq!(bans.status, 200, "{bans:?}");
    assert_eq!(bans.body["bans"][0]["user"], "alice", "{bans:?}");
    ok(root.ack("user:unban", json!({"user": "alice"})).await);
    assert_eq!(api.get("/tokens", a).await.status, 200, "works again");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_http_reaches_every_node_and_a_revoke_ends_sessions_elsewhere() {
    if !chat_e2e::installed("redis-server", "--version", "the HTTP API on a cluster") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let redis = chat_server::store::redis::LocalRedis::for_test(dir.path(), false)
        .expect("a redis-server of the test's own");
    let config = |node: &str| Config {
        rate: 0.0,
        ..TestServer::clustered(&redis.url(), node)
    };
    let a = TestServer::start(config("node-a")).await;
    let b = TestServer::start(config("node-b")).await;
    let api = Api::new(&a.url());
    api.account("ci").await;
    let (id, token) = api.token("ci", "bot").await;
    let (_, other) = api.token("ci", "admin").await;
    let mut bob = TestClient::chat(&b.url(), "bob").await;
    ok(bob.ack("room:join", json!({"room": "#ops"})).await);
    let mut bot = TestClient::connect(&b.url(), json!({"username": "ci", "token": token}))
        .await
        .unwrap();

    // Joined over HTTP on node A: the account's socket on node B follows.
    let t = Some(other.as_str());
    assert_eq!(api.put("/rooms/ops/membership", t, None).await.status, 204);
    bot.next_where("room:joined", |j| j["room"] == "#ops").await;
    let sent = api
        .post("/rooms/ops/messages", t, json!({"text": "from node a"}))
        .await;
    assert_eq!(sent.status, 201, "{sent:?}");
    for c in [&mut bob, &mut bot] {
        let m = c.next("room:message").await;
        assert_eq!(
            (m["text"].as_str(), m["id"].as_str()),
            (Some("from node a"), sent.body["id"].as_str())
        );
    }
    // Its history reads the same on either node.
    let on_b = Api::new(&b.url()).get("/rooms/ops/messages", t).await;
    assert_eq!(on_b.body["messages"][0]["text"], "from node a", "{on_b:?}");

    // Revoked on node A: the session it opened on node B ends.
    assert_eq!(api.delete(&format!("/tokens/{id}"), t).await.status, 204);
    let err = bot.next("chat:error").await;
    assert_eq!(err["code"], "session_ended", "{err}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(Config {
        header_timeout: Duration::from_millis(500),
        ..TestServer::config()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"POST /api/v1/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"username\"",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(chat_e2e::WAIT, tcp.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "answered or closed, not left hanging: {text}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("invalid_payload"), "{text}");
    server.stop().await.unwrap();
}
