//! Shared folders (admins): create, rename, change member grants, delete. Members see the shares
//! granted to them as roots in `GET /api/v1/files`; this API is for managing them.

use super::auth::AdminSession;
use super::error::{ApiResult, Body};
use crate::error::ServiceError;
use crate::files::FileRoots;
use crate::files::shares::validate_name;
use crate::state::AppState;
use crate::store::{Access, ShareRecord};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct Share {
    pub name: String,
    /// Member name → `read` or `write`. Admins always have full access and need no grant.
    pub grants: BTreeMap<String, Access>,
}

impl From<ShareRecord> for Share {
    fn from(r: ShareRecord) -> Self {
        Share {
            name: r.name,
            grants: r.grants,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShareRequest {
    /// The grammar of `files::shares::validate_name` (some names are also reserved).
    #[schema(pattern = r"^[A-Za-z0-9]([A-Za-z0-9 ._-]{0,62}[A-Za-z0-9_-])?$")]
    pub name: String,
    #[serde(default)]
    pub grants: BTreeMap<String, Access>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateShareRequest {
    /// A new name (the folder is renamed with it).
    #[schema(pattern = r"^[A-Za-z0-9]([A-Za-z0-9 ._-]{0,62}[A-Za-z0-9_-])?$")]
    pub name: Option<String>,
    /// Replaces all grants.
    pub grants: Option<BTreeMap<String, Access>>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteShareQuery {
    /// Also delete the files in the share; without it, a share with files is refused (409).
    pub purge: Option<bool>,
}

fn check_name(name: &str) -> ApiResult<()> {
    validate_name(name).map_err(|e| ServiceError::invalid("name", e.to_string()).into())
}

/// Grants may only name existing users.
fn check_grants(state: &AppState, grants: &BTreeMap<String, Access>) -> ApiResult<()> {
    let users = state.accounts.users()?;
    match grants
        .keys()
        .find(|g| !users.iter().any(|u| &u.username == *g))
    {
        Some(unknown) => Err(ServiceError::UnknownName {
            field: "grants",
            message: format!("there is no user named {unknown}"),
        }
        .into()),
        None => Ok(()),
    }
}

fn existing(state: &AppState, name: &str) -> ApiResult<ShareRecord> {
    state
        .store
        .share(name)?
        .ok_or_else(|| ServiceError::NotFound(format!("share {name}")).into())
}

fn io(e: std::io::Error, what: &str) -> ServiceError {
    ServiceError::Internal(format!("{what}: {e}"))
}

/// All shared folders with their grants.
#[utoipa::path(get, path = "/api/v1/shares", tag = "files", security(("session" = [])),
    responses((status = 200, body = [Share]), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<Vec<Share>>> {
    Ok(Json(
        state.store.shares()?.into_iter().map(Share::from).collect(),
    ))
}

/// Creates a shared folder (an existing folder of that name under `files/shares` is adopted).
#[utoipa::path(post, path = "/api/v1/shares", tag = "files", security(("session" = [])),
    request_body = CreateShareRequest,
    responses((status = 201, body = Share), (status = 400, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "unknown_name: a grant names no user"),
        (status = 409, body = super::error::ErrorBody, description = "conflict: the name is taken")))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AdminSession,
    Body(req): Body<CreateShareRequest>,
) -> ApiResult<(StatusCode, Json<Share>)> {
    check_name(&req.name)?;
    check_grants(&state, &req.grants)?;
    let record = ShareRecord {
        folder: FileRoots::new_share_folder(&req.name),
        name: req.name,
        grants: req.grants,
    };
    if state.store.share(&record.name)?.is_some() {
        return Err(ServiceError::Conflict(format!("a share named {} exists", record.name)).into());
    }
    let dir = state.files.share_dir(&record).map_err(|e| io(e, "share"))?;
    crate::fsutil::ensure_dir(&dir, 0o755).map_err(|e| io(e, "cannot create the folder"))?;
    if !state.store.insert_new_share(&record)? {
        return Err(ServiceError::Conflict(format!("a share named {} exists", record.name)).into());
    }
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Renames a shared folder and/or replaces its grants.
#[utoipa::path(patch, path = "/api/v1/shares/{name}", tag = "files", security(("session" = [])),
    params(("name" = String, Path)), request_body = UpdateShareRequest,
    responses((status = 200, body = Share), (status = 400, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "unknown_name: a grant names no user")))]
pub async fn update(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(name): Path<String>,
    Body(req): Body<UpdateShareRequest>,
) -> ApiResult<Json<Share>> {
    let old = existing(&state, &name)?;
    let mut record = old.clone();
    if let Some(grants) = req.grants {
        check_grants(&state, &grants)?;
        record.grants = grants;
    }
    let renamed = req.name.as_ref().is_some_and(|n| *n != old.name);
    if let Some(new_name) = req.name.filter(|_| renamed) {
        check_name(&new_name)?;
        if state.store.share(&new_name)?.is_some() {
            return Err(ServiceError::Conflict(format!("a share named {new_name} exists")).into());
        }
        record.folder = FileRoots::new_share_folder(&new_name);
        record.name = new_name;
        let from = state.files.share_dir(&old).map_err(|e| io(e, "share"))?;
        let to = state.files.share_dir(&record).map_err(|e| io(e, "share"))?;
        move_folder(&from, &to)?;
    }
    if !state.store.replace_share(&old.name, &record)? {
        if renamed {
            let _ = move_folder(
                &state.files.share_dir(&record).map_err(|e| io(e, "share"))?,
                &state.files.share_dir(&old).map_err(|e| io(e, "share"))?,
            );
        }
        return Err(ServiceError::Conflict(format!("a share named {} exists", record.name)).into());
    }
    Ok(Json(record.into()))
}

/// Renames a share's folder without replacing anything already at the new place.
fn move_folder(from: &std::path::Path, to: &std::path::Path) -> ApiResult<()> {
    if let Some(parent) = to.parent() {
        crate::fsutil::ensure_dir(parent, 0o755).map_err(|e| io(e, "shares folder"))?;
    }
    if !from.exists() {
        return Ok(());
    }
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        from,
        rustix::fs::CWD,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| match e {
        rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY => {
            ServiceError::Conflict(format!("a folder named {} is already there", to.display()))
        }
        other => io(other.into(), "cannot rename the folder"),
    })?;
    Ok(())
}

/// Deletes a shared folder. Its files go with it only with `?purge=true`.
#[utoipa::path(delete, path = "/api/v1/shares/{name}", tag = "files", security(("session" = [])),
    params(("name" = String, Path), DeleteShareQuery),
    responses((status = 204), (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "not_empty")))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(name): Path<String>,
    Query(query): Query<DeleteShareQuery>,
) -> ApiResult<StatusCode> {
    let record = existing(&state, &name)?;
    let dir = state.files.share_dir(&record).map_err(|e| io(e, "share"))?;
    if dir.exists() {
        let root = crate::files::Root::open(&dir, false).map_err(|e| io(e, "share"))?;
        let top = crate::files::RelPath::root();
        let has_files = std::fs::read_dir(&dir)
            .map_err(|e| io(e, "share"))?
            .next()
            .is_some();
        if has_files && query.purge != Some(true) {
            return Err(crate::files::FsError::NotEmpty(format!("share {name}")).into());
        }
        for entry in std::fs::read_dir(&dir)
            .map_err(|e| io(e, "share"))?
            .flatten()
        {
            let child = top
                .join(&entry.file_name().to_string_lossy())
                .map_err(crate::files::FsError::from)?;
            root.remove_all(&child)?;
        }
        std::fs::remove_dir(&dir).map_err(|e| io(e, "cannot remove the folder"))?;
    }
    state.store.delete_share(&name)?;
    Ok(StatusCode::NO_CONTENT)
}
