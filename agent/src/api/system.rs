//! System status, the live event stream, the CA certificate and metrics.

use super::auth::Session;
use super::error::{ApiResult, ErrorCode, error_response};
use crate::auth::tokens::secrets_equal;
use crate::error::ServiceError;
use crate::events::Event;
use crate::state::AppState;
use crate::status::SystemStatus;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use std::convert::Infallible;
use tokio_stream::wrappers::BroadcastStream;

/// CPU, memory, load, disks, temperatures, uptime and network throughput.
#[utoipa::path(get, path = "/api/v1/system/status", tag = "system", security(("session" = [])),
    responses((status = 200, body = SystemStatus), (status = 401, body = super::error::ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    _session: Session,
) -> ApiResult<Json<SystemStatus>> {
    let mut status = state.events.latest_status().ok_or_else(|| {
        ServiceError::Unavailable("The first status sample is not ready yet.".into())
    })?;
    // Names change between samples (settings); report the current ones.
    status.hostname = state.hostname();
    status.timezone = state.timezone();
    Ok(Json(status))
}

fn to_sse(event: &Event) -> sse::Event {
    sse::Event::default()
        .event(event.name())
        .json_data(event.data())
        .unwrap_or_else(|_| sse::Event::default().comment("unencodable event"))
}

/// Server-Sent Events: `status` about every two seconds (the first at once), and the other
/// event kinds as they happen. A user holds at most `MAX_STREAMS_PER_USER` streams; a stream
/// ends when its session ends or its user's role changes.
#[utoipa::path(get, path = "/api/v1/events", tag = "system", security(("session" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "event stream"), (status = 401, body = super::error::ErrorBody),
        (status = 429, body = super::error::ErrorBody, description = "throttled: the user has too many streams open")))]
pub async fn events(
    State(state): State<AppState>,
    Session(auth): Session,
) -> ApiResult<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>> {
    let slot = state
        .events
        .open_stream(&auth.user.username)
        .ok_or(ServiceError::Throttled {
            retry_after: std::time::Duration::from_secs(10),
        })?;
    let first: Vec<sse::Event> = state
        .events
        .latest_status()
        .map(|s| to_sse(&Event::Status(Box::new(s))))
        .into_iter()
        .collect();
    // A listener that falls behind skips what it missed rather than stalling the others.
    // Each listener hears only its own jobs (admins hear all).
    let (me, admin) = (
        auth.user.username.clone(),
        auth.user.role == crate::store::Role::Admin,
    );
    let live = BroadcastStream::new(state.events.subscribe()).filter_map(move |item| {
        let visible = item.ok().filter(|e| match e {
            Event::Job(job) => admin || job.owner == me,
            // App changes are device-wide; every signed-in user sees the app list.
            Event::Status(_) | Event::AppProgress(_) | Event::AppState(_) => true,
            // Disks are managed by admins only.
            Event::Disk(_) => admin,
        });
        async move { visible.map(|e| to_sse(&e)) }
    });
    // The stream ends as soon as its session is revoked or expires, or its user's role changes
    // (what it may hear was decided by the role at the start); checked at every event, and a
    // status event comes every few seconds.
    let token_hash = auth.token_hash;
    let role = auth.user.role;
    let live = live.take_while(move |_| {
        let _held = &slot;
        std::future::ready(state.accounts.session_still_grants(&token_hash, role))
    });
    let all = stream::iter(first).chain(live).map(Ok);
    Ok(Sse::new(all).keep_alive(KeepAlive::default()))
}

/// The device's CA certificate: install it once to trust the device's HTTPS.
#[utoipa::path(get, path = "/api/v1/tls/ca.crt", tag = "system",
    responses((status = 200, content_type = "application/x-x509-ca-cert", description = "PEM certificate")))]
pub async fn ca_certificate(State(state): State<AppState>) -> Response {
    let filename = format!(
        "attachment; filename=\"hearth-{}-ca.crt\"",
        state.hostname()
    );
    (
        [
            (
                header::CONTENT_TYPE,
                "application/x-x509-ca-cert".to_string(),
            ),
            (header::CONTENT_DISPOSITION, filename),
        ],
        state.tls.current_cert_pem(),
    )
        .into_response()
}

/// Admin session or `Authorization: Bearer <metrics_token>`.
pub struct MetricsAccess;

impl FromRequestParts<AppState> for MetricsAccess {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let (Some(sent), Some(expected)) = (bearer, state.config.metrics_token.as_deref())
            && secrets_equal(sent, expected)
        {
            return Ok(MetricsAccess);
        }
        match super::auth::AdminSession::from_request_parts(parts, state).await {
            Ok(_) => Ok(MetricsAccess),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "system", security(("session" = []), ("metrics_token" = [])),
    responses((status = 200, content_type = "text/plain", description = "Prometheus text format"), (status = 401, body = super::error::ErrorBody)))]
pub async fn metrics(State(state): State<AppState>, _access: MetricsAccess) -> Response {
    let sessions = state.accounts.session_count().unwrap_or(0);
    let claimed = state.accounts.is_claimed().unwrap_or(false);
    let text = state
        .metrics
        .render(state.started.elapsed().as_secs(), sessions, claimed);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Unknown API paths.
pub async fn api_not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "No such API endpoint.",
    )
}
