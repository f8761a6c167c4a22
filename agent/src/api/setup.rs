//! Health and the first-boot claim.

use super::auth::ClientAddr;
use super::error::{ApiResult, Body};
use super::models::{ClaimRequest, Health, LoginResponse, SetupInfo, SetupUpdates};
use super::session::login_response;
use crate::accounts::ClaimInput;
use crate::error::ServiceError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;

/// Liveness and whether the device still waits for its owner.
#[utoipa::path(get, path = "/api/health", tag = "system",
    responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    Ok(Json(Health {
        status: "ok".into(),
        version: crate::VERSION.into(),
        claimed: state.accounts.is_claimed()?,
    }))
}

/// What the setup wizard needs before the claim.
#[utoipa::path(get, path = "/api/v1/setup", tag = "setup",
    responses((status = 200, body = SetupInfo)))]
pub async fn setup_info(State(state): State<AppState>) -> ApiResult<Json<SetupInfo>> {
    Ok(Json(SetupInfo {
        claimed: state.accounts.is_claimed()?,
        hostname: state.hostname(),
        timezone: state.timezone(),
        updates: SetupUpdates {
            configured: state.updates.device().is_ok(),
            channels: state.accounts.known_channels(),
            maintenance_window: crate::update::records::MaintenanceWindow {
                start: "03:00".into(),
                end: "05:00".into(),
            },
        },
    }))
}

/// Claims the device with the one-time setup code, creating the first admin. Succeeds once.
#[utoipa::path(post, path = "/api/v1/setup/claim", tag = "setup", request_body = ClaimRequest,
    responses(
        (status = 201, body = LoginResponse, description = "Claimed; the session cookie is set"),
        (status = 400, body = super::error::ErrorBody, description = "invalid_input (also a bad update choice: an empty or malformed maintenance window, an unknown channel)"),
        (status = 422, body = super::error::ErrorBody, description = "unknown_name: the time zone is not in the device's zone database"),
        (status = 403, body = super::error::ErrorBody, description = "setup_code_invalid"),
        (status = 409, body = super::error::ErrorBody, description = "already_claimed"),
        (status = 429, body = super::error::ErrorBody, description = "throttled"),
    ))]
pub async fn claim(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Body(req): Body<ClaimRequest>,
) -> ApiResult<Response> {
    let input = ClaimInput {
        code: req.code,
        username: req.username,
        password: req.password,
        hostname: req.hostname,
        timezone: req.timezone,
        updates: req.updates,
    };
    let outcome = state.accounts.claim(input, client).await.inspect_err(|e| {
        if matches!(e, ServiceError::SetupCodeInvalid) {
            state.metrics.claim_failure.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    let mut response = login_response(&state, &outcome).into_response();
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}
