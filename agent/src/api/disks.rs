//! Disks (admins): parse, authorize, call `disks::Service`, map. The service decides.

use super::auth::AdminSession;
use super::error::{ApiResult, Body};
use crate::disks::hotplug::DiskSettings;
use crate::disks::{Disk, FormatRequest};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;

/// Block devices with partitions, file systems, mounts, usage and SMART health.
#[utoipa::path(get, path = "/api/v1/disks", tag = "disks", security(("session" = [])),
    responses((status = 200, body = [Disk]), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<Vec<Disk>>> {
    Ok(Json(state.disks.list().await?))
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
    Ok(Json(
        state.disks.format(&id, req, &auth.user.username).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct MountRequest {
    /// Partition to mount (e.g. `sdb1`); the first with a file system by default.
    pub partition: Option<String>,
}

/// Mounts a disk persistently (it comes back after a reboot) under the media folder; it then
/// appears as a file root `disk-<partition>` for admins.
#[utoipa::path(post, path = "/api/v1/disks/{id}/mount", tag = "disks", security(("session" = [])),
    params(("id" = String, Path)), request_body = MountRequest,
    responses((status = 200, body = Disk), (status = 403, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn mount(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(id): Path<String>,
    Body(req): Body<MountRequest>,
) -> ApiResult<Json<Disk>> {
    Ok(Json(
        state.disks.mount(&id, req.partition.as_deref()).await?,
    ))
}

/// Unmounts every Hearth mount of the disk and forgets them.
#[utoipa::path(post, path = "/api/v1/disks/{id}/unmount", tag = "disks", security(("session" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Disk), (status = 403, body = super::error::ErrorBody)))]
pub async fn unmount(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<Json<Disk>> {
    Ok(Json(state.disks.unmount(&id).await?))
}

/// Unmounts the disk and tells the kernel to let it go, so it can be unplugged.
#[utoipa::path(post, path = "/api/v1/disks/{id}/eject", tag = "disks", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 403, body = super::error::ErrorBody)))]
pub async fn eject(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    state.disks.eject(&id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Disk settings: the auto-mount policy for disks that are plugged in.
#[utoipa::path(get, path = "/api/v1/disks/settings", tag = "disks", security(("session" = [])),
    responses((status = 200, body = DiskSettings), (status = 403, body = super::error::ErrorBody)))]
pub async fn settings(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<DiskSettings>> {
    Ok(Json(state.disks.settings()?))
}

/// Changes the auto-mount policy: `off`, or `removable` (file systems on USB disks and SD cards
/// are mounted under the media folder when they appear; not kept across reboots).
#[utoipa::path(patch, path = "/api/v1/disks/settings", tag = "disks", security(("session" = [])),
    request_body = DiskSettings,
    responses((status = 200, body = DiskSettings), (status = 400, body = super::error::ErrorBody)))]
pub async fn update_settings(
    State(state): State<AppState>,
    _admin: AdminSession,
    Body(settings): Body<DiskSettings>,
) -> ApiResult<Json<DiskSettings>> {
    state.disks.set_settings(&settings)?;
    Ok(Json(settings))
}
