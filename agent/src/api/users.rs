//! User management (admins) and each user's own account (password, TOTP).

use super::auth::{AdminSession, ClientAddr, Session};
use super::error::{ApiResult, Body};
use super::models::{
    ChangePasswordRequest, CreateUserRequest, PasswordConfirmation, TotpCode, TotpEnrolment,
    UpdateUserRequest, User,
};
use crate::accounts::UserUpdate;
use crate::auth::totp;
use crate::error::ServiceError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// All users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("session" = [])),
    responses((status = 200, body = [User]), (status = 401, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(
        state.accounts.users()?.iter().map(User::from).collect(),
    ))
}

/// Creates a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("session" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = User), (status = 400, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody, description = "user_exists")))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AdminSession,
    Body(req): Body<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = state
        .accounts
        .create_user(req.username, req.password, req.role)
        .await?;
    Ok((StatusCode::CREATED, Json(User::from(&user))))
}

/// Changes a user's role or sets a new password (which ends all their sessions).
#[utoipa::path(patch, path = "/api/v1/users/{name}", operation_id = "update_user", tag = "users", security(("session" = [])), request_body = UpdateUserRequest,
    params(("name" = String, Path, description = "User name")),
    responses((status = 200, body = User), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody, description = "last_admin")))]
pub async fn update(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(name): Path<String>,
    Body(req): Body<UpdateUserRequest>,
) -> ApiResult<Json<User>> {
    let update = UserUpdate {
        role: req.role,
        password: req.password,
        app_logs: req.app_logs,
    };
    Ok(Json(User::from(
        &state.accounts.update_user(&name, update).await?,
    )))
}

/// Deletes a user and ends their sessions. The last admin cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users", security(("session" = [])),
    params(("name" = String, Path, description = "User name")),
    responses((status = 204), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody, description = "last_admin")))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.accounts.delete_user(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password; their other sessions end.
#[utoipa::path(put, path = "/api/v1/account/password", tag = "account", security(("session" = [])), request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400, body = super::error::ErrorBody), (status = 401, body = super::error::ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    Session(auth): Session,
    ClientAddr(client): ClientAddr,
    Body(req): Body<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    state
        .accounts
        .change_password(&auth, req.current_password, req.new_password, client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts two-factor enrolment: a new secret and its QR code.
#[utoipa::path(post, path = "/api/v1/account/totp", tag = "account", security(("session" = [])),
    responses((status = 200, body = TotpEnrolment), (status = 409, body = super::error::ErrorBody)))]
pub async fn totp_begin(
    State(state): State<AppState>,
    Session(auth): Session,
) -> ApiResult<Json<TotpEnrolment>> {
    let secret = state.accounts.totp_begin(&auth)?;
    let issuer = format!("Hearth {}", state.hostname());
    let uri = totp::otpauth_uri(&secret, &auth.user.username, &issuer);
    let qr_svg = totp::qr_svg(&uri)
        .ok_or_else(|| ServiceError::Internal("QR code rendering failed".into()))?;
    Ok(Json(TotpEnrolment {
        secret,
        otpauth_uri: uri,
        qr_svg,
    }))
}

/// Confirms enrolment with a first code; from now on logins need a code.
#[utoipa::path(post, path = "/api/v1/account/totp/confirm", tag = "account", security(("session" = [])), request_body = TotpCode,
    responses((status = 204), (status = 409, body = super::error::ErrorBody, description = "conflict: no enrolment in progress"), (status = 422, body = super::error::ErrorBody, description = "totp_invalid: not the right code")))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    Session(auth): Session,
    Body(req): Body<TotpCode>,
) -> ApiResult<StatusCode> {
    state.accounts.totp_confirm(&auth, &req.code)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns two-factor authentication off (needs the password).
#[utoipa::path(delete, path = "/api/v1/account/totp", tag = "account", security(("session" = [])), request_body = PasswordConfirmation,
    responses((status = 204), (status = 401, body = super::error::ErrorBody), (status = 429, body = super::error::ErrorBody, description = "throttled: too many wrong passwords")))]
pub async fn totp_disable(
    State(state): State<AppState>,
    Session(auth): Session,
    ClientAddr(client): ClientAddr,
    Body(req): Body<PasswordConfirmation>,
) -> ApiResult<StatusCode> {
    state
        .accounts
        .totp_disable(&auth, req.password, client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
