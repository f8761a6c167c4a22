//! Disks: list them, format them (admins). The system disk is never offered for changes.

use super::auth::AdminSession;
use super::error::{ApiResult, Body};
use crate::disks::{Disk, FormatRequest};
use crate::error::ServiceError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};

/// Block devices with partitions, file systems, mounts, usage and SMART health.
#[utoipa::path(get, path = "/api/v1/disks", tag = "disks", security(("session" = [])),
    responses((status = 200, body = [Disk]), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<Vec<Disk>>> {
    let disks = state.disks.clone();
    let list = tokio::task::spawn_blocking(move || disks.list())
        .await
        .map_err(|e| ServiceError::Internal(format!("disk listing failed: {e}")))?;
    Ok(Json(list))
}

/// Erases a disk and makes one partition with one file system. Needs the disk's name typed in
/// `confirm`; refused for the system disk and for disks in use.
#[utoipa::path(post, path = "/api/v1/disks/{id}/format", tag = "disks", security(("session" = [])),
    params(("id" = String, Path, description = "Kernel name, e.g. sdb")), request_body = FormatRequest,
    responses((status = 200, body = Disk), (status = 400, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody, description = "system_disk"),
        (status = 409, body = super::error::ErrorBody, description = "in_use")))]
pub async fn format(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
    Path(id): Path<String>,
    Body(req): Body<FormatRequest>,
) -> ApiResult<Json<Disk>> {
    let disks = state.disks.clone();
    let user = auth.user.username.clone();
    let disk = tokio::task::spawn_blocking(move || -> Result<Disk, ServiceError> {
        let disk = disks.get(&id)?;
        crate::disks::format_disk(&disk, &req)?;
        tracing::warn!(admin = %user, disk = %id, "disk formatted");
        Ok(disks.get(&id)?)
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("format task failed: {e}")))??;
    Ok(Json(disk))
}
