//! Over-the-air updates of the device itself (admin only): state, check, install, reboot into
//! the installed update, policy. The service is `crate::update`; docs/updates.md.

use super::auth::AdminSession;
use super::error::{ApiResult, Body};
use crate::state::AppState;
use crate::update::UpdateStatus;
use crate::update::records::PolicyPatch;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateJob {
    pub job_id: String,
}

/// Versions, slots, boot state, policy, progress, the last check and the history.
#[utoipa::path(get, path = "/api/v1/update", tag = "update", security(("session" = [])),
    responses((status = 200, body = UpdateStatus), (status = 403, body = super::error::ErrorBody)))]
pub async fn get_update(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<UpdateStatus>> {
    Ok(Json(state.updates.status()?))
}

/// Checks the update repository now.
#[utoipa::path(post, path = "/api/v1/update/check", tag = "update", security(("session" = [])),
    responses((status = 200, body = UpdateStatus),
        (status = 409, body = super::error::ErrorBody, description = "update_not_configured, update_busy"),
        (status = 422, body = super::error::ErrorBody, description = "update_index_invalid"),
        (status = 502, body = super::error::ErrorBody, description = "update_repo_unreachable")))]
pub async fn check(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<UpdateStatus>> {
    state.updates.check().await?;
    Ok(Json(state.updates.status()?))
}

/// Installs the available update into the inactive slot, as a job (progress on the event
/// stream as `job` events and in `progress`).
#[utoipa::path(post, path = "/api/v1/update/install", tag = "update", security(("session" = [])),
    responses((status = 202, body = UpdateJob),
        (status = 409, body = super::error::ErrorBody, description = "update_not_configured, update_busy, update_not_available, update_trial_pending")))]
pub async fn install(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
) -> ApiResult<(StatusCode, Json<UpdateJob>)> {
    let job = state.updates.start_install(&auth.user.username)?;
    tracing::info!(admin = %auth.user.username, "update install started");
    Ok((
        StatusCode::ACCEPTED,
        Json(UpdateJob {
            job_id: job.status().id,
        }),
    ))
}

/// Reboots into the installed update (the dashboard's prompt).
#[utoipa::path(post, path = "/api/v1/update/reboot", tag = "update", security(("session" = [])),
    responses((status = 202),
        (status = 409, body = super::error::ErrorBody, description = "update_not_configured, update_no_pending_reboot")))]
pub async fn reboot(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
) -> ApiResult<StatusCode> {
    tracing::warn!(admin = %auth.user.username, "reboot into the update requested");
    state.updates.reboot_into_update().await?;
    Ok(StatusCode::ACCEPTED)
}

/// Changes the update policy (any subset of its fields); answers with the whole state.
#[utoipa::path(patch, path = "/api/v1/update/policy", tag = "update", security(("session" = [])),
    request_body = PolicyPatch,
    responses((status = 200, body = UpdateStatus), (status = 400, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "update_not_configured")))]
pub async fn patch_policy(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
    Body(patch): Body<PolicyPatch>,
) -> ApiResult<Json<UpdateStatus>> {
    let policy = state.updates.patch_policy(patch)?;
    tracing::info!(admin = %auth.user.username, ?policy, "update policy changed");
    Ok(Json(state.updates.status()?))
}

/// `POST /api/v1/update/notice/dismiss`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissNotice {
    /// The history entry the banner showed (`notice.id`); older ones are dismissed with it.
    pub id: u64,
}

/// Dismisses the banner about an automatic update or a rollback (for every admin of this
/// device); the event stays in the history.
#[utoipa::path(post, path = "/api/v1/update/notice/dismiss", tag = "update", security(("session" = [])),
    request_body = DismissNotice,
    responses((status = 200, body = UpdateStatus), (status = 400, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody, description = "not_found: no history entry with that id")))]
pub async fn dismiss_notice(
    State(state): State<AppState>,
    _admin: AdminSession,
    Body(req): Body<DismissNotice>,
) -> ApiResult<Json<UpdateStatus>> {
    state.updates.dismiss_notice(req.id)?;
    Ok(Json(state.updates.status()?))
}
