//! Shared folders (admins): create, rename, change member grants, delete. Members see the shares
//! granted to them as roots in `GET /api/v1/files`; this API is for managing them.

use super::auth::AdminSession;
use super::error::{ApiResult, Body};
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

/// All shared folders with their grants.
#[utoipa::path(get, path = "/api/v1/shares", tag = "files", security(("session" = [])),
    responses((status = 200, body = [Share]), (status = 403, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<Vec<Share>>> {
    Ok(Json(
        state.shares().all()?.into_iter().map(Share::from).collect(),
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
    let record = state.shares().create(req.name, req.grants)?;
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
    let record = state.shares().update(&name, req.name, req.grants)?;
    Ok(Json(record.into()))
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
    state.shares().delete(&name, query.purge == Some(true))?;
    Ok(StatusCode::NO_CONTENT)
}
