//! (v3) The HTTP API under `/api/v1` (`docs/PROTOCOL.md`, "HTTP API"):
//! plain axum routes on the listener Socket.IO uses, behind the same TLS,
//! CORS and client-address middleware. This file is the HTTP side only:
//! routes, the body rules (JSON only, at most `--max-payload` bytes), the
//! Bearer credential, and the one place that turns a refusal into a
//! status and the contract's error body. What each request does is
//! `crate::chat::api`'s, through the handlers a socket's requests take.
//!
//! Every request is answered: a body that does not read is 400
//! `invalid_payload`, another content type 415, a body too big 413, one
//! that has not arrived within `--header-timeout` 408, an
//! unknown route 404 `not_found`, a known route with another method 405
//! (code `not_found`), all with the error body. `/metrics` counts the
//! requests by route template and status.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use chat_shared::{API_PREFIX, ApiError, ChatError, ErrorCode, http_status};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::chat::ChatService;
use crate::chat::api::{ApiCaller, events};
use crate::http::client_addr::ClientAddr;
use crate::ops::metrics::Metrics;

/// What the routes share.
#[derive(Clone)]
pub struct Api {
    pub svc: Arc<ChatService>,
    pub metrics: Arc<Metrics>,
    /// `--max-payload`: the largest body read.
    pub max_body: usize,
    /// `--header-timeout`: how long a body may take to arrive (408 after).
    pub body_timeout: std::time::Duration,
}

/// A refusal on its way to the client.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    error: ChatError,
}

impl From<ChatError> for Failure {
    fn from(error: ChatError) -> Self {
        let status = StatusCode::from_u16(http_status(error.code))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Failure { status, error }
    }
}

impl Failure {
    fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            error: ChatError::new(code, message, "api"),
        }
    }
}

/// The one place a refusal becomes an answer: the status, the error
/// body, `Retry-After` (whole seconds, rounded up) on a 429 or a 503 that
/// says when to retry, `WWW-Authenticate` on a 401.
impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let retry = self
            .error
            .context
            .get("retryAfterMs")
            .and_then(serde_json::Value::as_u64)
            .map(|ms| ms.div_ceil(1000).max(1));
        let status = self.status;
        let mut res = (status, axum::Json(ApiError { error: self.error })).into_response();
        if let Some(secs) = retry {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

type Answer = Result<Response, Failure>;

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Answer {
    Ok((status, axum::Json(body)).into_response())
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The routes, to merge into the server's router.
pub fn routes(api: Api) -> Router {
    let metrics = Arc::clone(&api.metrics);
    let v1 = Router::new()
        .route("/accounts", only(post(create_account)))
        .route("/tokens", only(post(create_token).get(list_tokens)))
        .route("/tokens/{id}", only(delete(revoke_token)))
        .route("/password", only(put(change_password)))
        .route(
            "/rooms/{room}/membership",
            only(put(join_room).delete(leave_room)),
        )
        .route(
            "/rooms/{room}/messages",
            only(get(room_messages).post(post_room_message)),
        )
        .route("/dms/{user}", only(post(post_dm)))
        .route("/bans", only(get(bans)))
        .fallback(unknown_route)
        .layer(axum::middleware::from_fn_with_state(metrics, count))
        .with_state(api);
    Router::new().nest(API_PREFIX, v1)
}

/// A known route with another method: 405 with the error body.
fn only(route: MethodRouter<Api>) -> MethodRouter<Api> {
    route.fallback(|| async {
        Failure::with_status(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::NotFound,
            "this route does not take that method",
        )
    })
}

async fn unknown_route() -> Failure {
    Failure::with_status(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no such route: the API's routes are under {API_PREFIX} (see the README)"),
    )
}

/// Counts each request by route template and status.
async fn count(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unknown".to_owned(), |m| m.as_str().to_owned());
    let res = next.run(req).await;
    metrics.api_request(&route, res.status().as_u16());
    res
}

// ------------------------------------------------------------- the rules

/// The body as `T`: JSON only (415 otherwise), at most `--max-payload`
/// bytes (413), one object of the right shape (400).
async fn body<T: DeserializeOwned>(
    api: &Api,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Failure> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Failure::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidPayload,
            "the body must be JSON, sent as Content-Type: application/json",
        ));
    }
    let read = tokio::time::timeout(api.body_timeout, axum::body::to_bytes(body, api.max_body));
    let bytes: Bytes = read
        .await
        .map_err(|_| {
            Failure::with_status(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::InvalidPayload,
                "the body did not arrive in time",
            )
        })?
        .map_err(|_| {
            Failure::with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InvalidPayload,
                format!("the body is larger than {} bytes", api.max_body),
            )
        })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Failure::with_status(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidPayload,
            format!("the body does not read: {e}"),
        )
    })
}

/// The caller of a request: its `Authorization: Bearer` token (the
/// scheme in any case). None: 401 `auth_required`; another scheme or a
/// token that is not live: 401 `bad_credentials`.
async fn caller(api: &Api, headers: &HeaderMap) -> Result<ApiCaller, Failure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ChatError::new(
            ErrorCode::AuthRequired,
            "this request needs Authorization: Bearer <API token>",
            events::AUTH,
        )
        .into());
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ChatError::new(
            ErrorCode::BadCredentials,
            "the Authorization header must be Bearer <API token>",
            events::AUTH,
        )
        .into());
    };
    Ok(api.svc.api_caller(token).await?)
}

fn path_value(
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, Failure> {
    p.map(|Path(v)| v).map_err(|_| {
        Failure::with_status(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidPayload,
            "the path does not read",
        )
    })
}

/// Counts a refusal as the server counts a socket's.
fn refused(api: &Api, f: Failure) -> Response {
    api.svc.api_refused(f.error.code);
    f.into_response()
}

/// Runs a route's work and answers, counting a refusal. The work runs as
/// a task of its own: a client that goes away mid-request cancels
/// nothing half done (a message numbered and not stored, a join half
/// made); it only misses the answer.
async fn answer(api: Api, work: impl Future<Output = Answer> + Send + 'static) -> Response {
    match tokio::spawn(work).await {
        Ok(Ok(res)) => res,
        Ok(Err(f)) => refused(&api, f),
        Err(e) => {
            tracing::error!("api request: {e}");
            refused(
                &api,
                Failure::with_status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "the server could not finish this request",
                ),
            )
        }
    }
}

// ---------------------------------------------------------------- routes

async fn create_account(State(api): State<Api>, headers: HeaderMap, b: Body) -> Response {
    answer(api.clone(), async move {
        let req = body(&api, &headers, b).await?;
        let created = api.svc.api_register(req).await?;
        json(StatusCode::CREATED, &created)
    })
    .await
}

async fn create_token(
    State(api): State<Api>,
    from: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    answer(api.clone(), async move {
        let req = body(&api, &headers, b).await?;
        let made = api
            .svc
            .api_new_token(req, from.map(|axum::Extension(a)| a.0))
            .await?;
        json(StatusCode::CREATED, &made)
    })
    .await
}

async fn list_tokens(State(api): State<Api>, headers: HeaderMap) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        json(StatusCode::OK, &api.svc.api_tokens(&who).await?)
    })
    .await
}

async fn revoke_token(
    State(api): State<Api>,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        api.svc.api_revoke(&who, &path_value(id)?).await?;
        no_content()
    })
    .await
}

async fn change_password(State(api): State<Api>, headers: HeaderMap, b: Body) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        let req = body(&api, &headers, b).await?;
        api.svc.api_password(&who, req).await?;
        no_content()
    })
    .await
}

async fn join_room(
    State(api): State<Api>,
    room: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        api.svc.api_join(&who, &path_value(room)?).await?;
        no_content()
    })
    .await
}

async fn leave_room(
    State(api): State<Api>,
    room: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        api.svc.api_leave(&who, &path_value(room)?).await?;
        no_content()
    })
    .await
}

/// `?before=&limit=` of a room's messages.
#[derive(Debug, serde::Deserialize)]
struct Page {
    before: Option<String>,
    /// A string here, so that an empty `limit=` means none.
    limit: Option<String>,
}

async fn room_messages(
    State(api): State<Api>,
    room: Result<Path<String>, axum::extract::rejection::PathRejection>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        let bad = || {
            Failure::with_status(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidPayload,
                "before is a message id and limit a number",
            )
        };
        let Query(page) = page.map_err(|_| bad())?;
        let limit = match page.limit.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(l) => Some(l.parse::<u64>().map_err(|_| bad())?),
        };
        let room = path_value(room)?;
        let messages = api
            .svc
            .api_history(&who, room, page.before.filter(|b| !b.is_empty()), limit)
            .await?;
        json(StatusCode::OK, &messages)
    })
    .await
}

async fn post_room_message(
    State(api): State<Api>,
    room: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        let req = body(&api, &headers, b).await?;
        let sent = api.svc.api_post(&who, path_value(room)?, req).await?;
        json(StatusCode::CREATED, &sent)
    })
    .await
}

async fn post_dm(
    State(api): State<Api>,
    user: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    b: Body,
) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        let req = body(&api, &headers, b).await?;
        let sent = api.svc.api_dm(&who, path_value(user)?, req).await?;
        json(StatusCode::CREATED, &sent)
    })
    .await
}

async fn bans(State(api): State<Api>, headers: HeaderMap) -> Response {
    answer(api.clone(), async move {
        let who = caller(&api, &headers).await?;
        json(StatusCode::OK, &api.svc.api_bans(&who).await?)
    })
    .await
}
