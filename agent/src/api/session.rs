//! Login, the current session, and logout.

use super::auth::{
    ClientAddr, DEVICE_COOKIE, SESSION_COOKIE, Session, clear_cookie, cookie, set_cookie,
};
use super::error::{ApiResult, Body};
use super::models::{LoginRequest, LoginResponse, SessionInfo, User, rfc3339};
use crate::accounts::LoginOutcome;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use std::sync::atomic::Ordering;

const DEVICE_COOKIE_MAX_AGE: u64 = 365 * 24 * 3600;

/// The response to a successful login or claim: cookies plus the CSRF token and user.
pub fn login_response(state: &AppState, outcome: &LoginOutcome) -> Response {
    let max_age = state.config.session_max_age.as_secs();
    let mut cookies = vec![(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &outcome.session_token, max_age),
    )];
    if let Some(device) = &outcome.new_device_token {
        cookies.push((
            header::SET_COOKIE,
            set_cookie(DEVICE_COOKIE, device, DEVICE_COOKIE_MAX_AGE),
        ));
    }
    let body = LoginResponse {
        csrf_token: outcome.session.csrf_token.clone(),
        user: User::from(&outcome.user),
    };
    (AppendHeaders(cookies), Json(body)).into_response()
}

/// Logs in. Wrong user names and wrong passwords get the same answer in the same time.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse, description = "Logged in; the session cookie is set"),
        (status = 401, body = super::error::ErrorBody, description = "invalid_credentials or totp_required"),
        (status = 429, body = super::error::ErrorBody, description = "throttled"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    let device = cookie(&headers, DEVICE_COOKIE);
    let result = state
        .accounts
        .login(
            &req.username,
            &req.password,
            req.totp.as_deref(),
            client,
            device,
        )
        .await;
    let counter = if result.is_ok() {
        &state.metrics.login_success
    } else {
        &state.metrics.login_failure
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(login_response(&state, &result?))
}

/// The current session: who is logged in and the CSRF token for state-changing requests.
#[utoipa::path(get, path = "/api/v1/session", tag = "session", security(("session" = [])),
    responses((status = 200, body = SessionInfo), (status = 401, body = super::error::ErrorBody)))]
pub async fn current(Session(auth): Session) -> Json<SessionInfo> {
    Json(SessionInfo {
        csrf_token: auth.session.csrf_token.clone(),
        user: User::from(&auth.user),
        expires_at: rfc3339(auth.expires_at),
    })
}

/// Logs out: the session ends on the device, not just in the browser.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", security(("session" = [])),
    responses((status = 204), (status = 401, body = super::error::ErrorBody)))]
pub async fn logout(State(state): State<AppState>, Session(auth): Session) -> ApiResult<Response> {
    state.accounts.logout(&auth)?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_cookie(SESSION_COOKIE))],
    )
        .into_response())
}
