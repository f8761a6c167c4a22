//! The device CA and its rotation (see `crate::tls::rotation` for the steps and docs/security.md
//! for why). Reading the status and downloading a pending CA need a session (every user must
//! trust the new CA on their own devices); changing anything is for admins.

use super::auth::{AdminSession, Session};
use super::error::{ApiResult, ErrorBody};
use crate::error::ServiceError;
use crate::state::AppState;
use crate::tls::{CaStatus, RotationError};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

impl From<RotationError> for ServiceError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::AlreadyPending => ServiceError::Conflict(e.to_string()),
            RotationError::NotPending | RotationError::NoPrevious => {
                ServiceError::NotFound(e.to_string())
            }
            RotationError::Tls(tls) => ServiceError::Internal(tls.to_string()),
        }
    }
}

/// The current CA, any rotation under way, and the retired CA still to remove.
#[utoipa::path(get, path = "/api/v1/tls/ca", tag = "system", security(("session" = [])),
    responses((status = 200, body = CaStatus), (status = 401, body = ErrorBody)))]
pub async fn status(State(state): State<AppState>, _s: Session) -> Json<CaStatus> {
    Json(state.tls.status())
}

/// Begins a rotation: makes a new CA and keeps serving the old one until it is activated.
#[utoipa::path(post, path = "/api/v1/tls/ca/rotation", tag = "system", security(("session" = [])),
    responses((status = 201, body = CaStatus), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a rotation is already under way")))]
pub async fn begin(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
) -> ApiResult<(StatusCode, Json<CaStatus>)> {
    let tls = state.tls.clone();
    let now = state.clock.now();
    let status = tokio::task::spawn_blocking(move || tls.begin(now))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(ServiceError::from)?;
    tracing::info!(admin = %auth.user.username, "CA rotation begun");
    Ok((StatusCode::CREATED, Json(status)))
}

/// Cancels the rotation under way; the pending CA is deleted.
#[utoipa::path(delete, path = "/api/v1/tls/ca/rotation", tag = "system", security(("session" = [])),
    responses((status = 200, body = CaStatus), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no rotation under way")))]
pub async fn cancel(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<CaStatus>> {
    Ok(Json(state.tls.cancel().map_err(ServiceError::from)?))
}

/// The pending CA's certificate, to install and trust before the rotation is activated.
#[utoipa::path(get, path = "/api/v1/tls/ca/next.crt", tag = "system", security(("session" = [])),
    responses((status = 200, content_type = "application/x-x509-ca-cert", description = "PEM certificate"),
        (status = 404, body = ErrorBody, description = "no rotation under way")))]
pub async fn next_certificate(State(state): State<AppState>, _s: Session) -> ApiResult<Response> {
    let pem = state
        .tls
        .pending_cert_pem()
        .ok_or_else(|| ServiceError::from(RotationError::NotPending))?;
    let filename = format!(
        "attachment; filename=\"hearth-{}-ca-new.crt\"",
        state.hostname()
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/x-x509-ca-cert".to_string(),
            ),
            (header::CONTENT_DISPOSITION, filename),
        ],
        pem,
    )
        .into_response())
}

/// Activates the pending CA: the device serves a certificate it signed from now on. Browsers
/// that do not trust the new CA yet will warn on their next connection.
#[utoipa::path(post, path = "/api/v1/tls/ca/rotation/activate", tag = "system", security(("session" = [])),
    responses((status = 200, body = CaStatus), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no rotation under way")))]
pub async fn activate(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
) -> ApiResult<Json<CaStatus>> {
    let wanted = crate::tls::wanted_names(&state.hostname());
    let tls = state.tls.clone();
    let now = state.clock.now();
    let status = tokio::task::spawn_blocking(move || tls.activate(&wanted, now))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(ServiceError::from)?;
    tracing::info!(admin = %auth.user.username, ca = %status.current.common_name, "CA rotation activated");
    Ok(Json(status))
}

/// Forgets the retired CA, once the user removed it from their trust stores.
#[utoipa::path(delete, path = "/api/v1/tls/ca/previous", tag = "system", security(("session" = [])),
    responses((status = 200, body = CaStatus), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no previous CA")))]
pub async fn forget_previous(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<CaStatus>> {
    Ok(Json(
        state.tls.forget_previous().map_err(ServiceError::from)?,
    ))
}
