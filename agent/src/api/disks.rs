//! Disks: list them, format them (admins). The system disk is never offered for changes.

use super::auth::AdminSession;
use super::error::{ApiResult, Body};
use crate::disks::{Disk, FormatRequest};
use crate::error::ServiceError;
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

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct MountRequest {
    /// Partition to mount (e.g. `sdb1`); the first with a file system by default.
    pub partition: Option<String>,
}

async fn get_disk(state: &AppState, id: String) -> Result<Disk, ServiceError> {
    let disks = state.disks.clone();
    tokio::task::spawn_blocking(move || disks.get(&id))
        .await
        .map_err(|e| ServiceError::Internal(format!("disk listing failed: {e}")))?
        .map_err(ServiceError::from)
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
    let disk = get_disk(&state, id.clone()).await?;
    let plan =
        crate::disks::mount::plan_mount(&disk, req.partition.as_deref(), &state.config.media_dir)?;
    crate::fsutil::ensure_dir(&plan.mount_point, 0o755).map_err(|e| {
        ServiceError::Internal(format!("cannot create {}: {e}", plan.mount_point.display()))
    })?;
    state.system.start_mount(&plan).await?;
    if let Some(uuid) = &plan.uuid {
        let mut mounts = state.store.mounts()?;
        mounts.retain(|m| m.mount_point != plan.mount_point && &m.uuid != uuid);
        mounts.push(crate::disks::mount::PersistedMount {
            uuid: uuid.clone(),
            fs_type: plan.fs_type.clone(),
            mount_point: plan.mount_point.clone(),
        });
        state.store.put_mounts(&mounts)?;
    }
    Ok(Json(get_disk(&state, id).await?))
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
    unmount_all(&state, &id).await?;
    Ok(Json(get_disk(&state, id).await?))
}

async fn unmount_all(state: &AppState, id: &str) -> ApiResult<()> {
    let disk = get_disk(state, id.to_string()).await?;
    if disk.system {
        return Err(ServiceError::from(crate::disks::DiskError::SystemDisk(disk.name)).into());
    }
    let points: Vec<String> = disk
        .mount_points
        .iter()
        .chain(disk.partitions.iter().flat_map(|p| p.mount_points.iter()))
        .cloned()
        .collect();
    for point in &points {
        let path = std::path::Path::new(point);
        if !path.starts_with(&state.config.media_dir) {
            return Err(ServiceError::from(crate::disks::DiskError::Invalid(format!(
                "{point} was not mounted by Hearth."
            )))
            .into());
        }
        state
            .system
            .stop_mount(&crate::disks::mount::unit_name_for(path))
            .await?;
        let _ = std::fs::remove_dir(path);
    }
    let mut mounts = state.store.mounts()?;
    mounts.retain(|m| {
        !points
            .iter()
            .any(|p| std::path::Path::new(p) == m.mount_point)
    });
    state.store.put_mounts(&mounts)?;
    Ok(())
}

/// Unmounts the disk and tells the kernel to let it go, so it can be unplugged.
#[utoipa::path(post, path = "/api/v1/disks/{id}/eject", tag = "disks", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 403, body = super::error::ErrorBody)))]
pub async fn eject(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    unmount_all(&state, &id).await?;
    let disk = get_disk(&state, id).await?;
    rustix::fs::sync();
    // USB and SATA disks can be detached by deleting the SCSI device; others just stay unmounted.
    let delete = std::path::Path::new("/sys/block")
        .join(&disk.name)
        .join("device/delete");
    if disk.bus == "usb" && delete.exists() {
        std::fs::write(&delete, b"1")
            .map_err(|e| ServiceError::Internal(format!("cannot detach {}: {e}", disk.name)))?;
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Mounts the disks recorded in the store again (at agent start).
pub async fn remount_persisted(state: &AppState) {
    let Ok(persisted) = state.store.mounts() else {
        return;
    };
    if persisted.is_empty() {
        return;
    }
    let disks = state.disks.clone();
    let Ok(list) = tokio::task::spawn_blocking(move || disks.list()).await else {
        return;
    };
    for m in persisted {
        let found = list.iter().find_map(|d| {
            d.partitions
                .iter()
                .find(|p| p.uuid.as_deref() == Some(&m.uuid))
                .map(|p| (d, p))
        });
        let Some((disk, part)) = found else {
            tracing::info!(uuid = %m.uuid, "remembered disk is not attached");
            continue;
        };
        if !part.mount_points.is_empty() {
            continue;
        }
        match crate::disks::mount::plan_mount(disk, Some(&part.name), &state.config.media_dir) {
            Ok(plan) => {
                let _ = crate::fsutil::ensure_dir(&plan.mount_point, 0o755);
                if let Err(e) = state.system.start_mount(&plan).await {
                    tracing::warn!(disk = %part.name, error = %e, "cannot mount remembered disk");
                }
            }
            Err(e) => tracing::warn!(disk = %part.name, error = %e, "cannot mount remembered disk"),
        }
    }
}

/// Disk settings: the auto-mount policy for disks that are plugged in.
#[utoipa::path(get, path = "/api/v1/disks/settings", tag = "disks", security(("session" = [])),
    responses((status = 200, body = crate::disks::hotplug::DiskSettings), (status = 403, body = super::error::ErrorBody)))]
pub async fn settings(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<crate::disks::hotplug::DiskSettings>> {
    Ok(Json(state.store.disk_settings()?))
}

/// Changes the auto-mount policy: `off`, or `removable` (file systems on USB disks and SD cards
/// are mounted under the media folder when they appear; not kept across reboots).
#[utoipa::path(patch, path = "/api/v1/disks/settings", tag = "disks", security(("session" = [])),
    request_body = crate::disks::hotplug::DiskSettings,
    responses((status = 200, body = crate::disks::hotplug::DiskSettings), (status = 400, body = super::error::ErrorBody)))]
pub async fn update_settings(
    State(state): State<AppState>,
    _admin: AdminSession,
    Body(settings): Body<crate::disks::hotplug::DiskSettings>,
) -> ApiResult<Json<crate::disks::hotplug::DiskSettings>> {
    state.store.put_disk_settings(&settings)?;
    Ok(Json(settings))
}

/// Follows kernel uevents for block devices for as long as the agent runs: publishes
/// `disk_added` / `disk_removed` / `disk_changed` with the fresh listing, and auto-mounts per
/// the policy. Without a uevent socket (no permission, a container), hot-plug is just off.
pub async fn follow_hotplug(state: AppState) {
    use crate::disks::hotplug::{DiskChange, automount_plans};
    let mut rx = match crate::disks::hotplug::listen() {
        Ok(rx) => rx,
        Err(e) => {
            tracing::warn!("disk hot-plug is off: cannot listen to kernel uevents: {e}");
            return;
        }
    };
    while let Some(uevent) = rx.recv().await {
        let is_loop = uevent.disk.starts_with("loop");
        if is_loop && !state.config.disks_include_loop {
            continue;
        }
        let disks = state.disks.clone();
        let name = uevent.disk.clone();
        let info = tokio::task::spawn_blocking(move || disks.get(&name).ok())
            .await
            .ok()
            .flatten();
        // A disk that changed into one Hearth does not list (a card reader without its card, a
        // detached loop device: size 0) has gone, as far as the dashboard is concerned.
        let change = match (&info, uevent.change) {
            (None, _) => DiskChange::DiskRemoved,
            (Some(_), change) => change,
        };
        let mut automounted = Vec::new();
        if let (Some(disk), DiskChange::DiskAdded | DiskChange::DiskChanged) = (&info, change) {
            let policy = state.store.disk_settings().unwrap_or_default().automount;
            for plan in automount_plans(disk, policy, &state.config.media_dir) {
                let made = crate::fsutil::ensure_dir(&plan.mount_point, 0o755);
                match made {
                    Ok(()) => match state.system.start_mount(&plan).await {
                        Ok(()) => automounted.push(plan.mount_point.display().to_string()),
                        Err(e) => tracing::warn!("auto-mount of {} failed: {e}", plan.what),
                    },
                    Err(e) => tracing::warn!("cannot create {}: {e}", plan.mount_point.display()),
                }
            }
        }
        state.events.publish(crate::events::Event::Disk(Box::new(
            crate::events::DiskEvent {
                change,
                disk: uevent.disk,
                device: uevent.device,
                info,
                automounted,
            },
        )));
    }
}
