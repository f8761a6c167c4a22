//! App stores, the catalog and installed apps. Thin: parse, call `apps::catalog` /
//! `apps::lifecycle`, shape the answer. Reading needs a session; changing needs an admin.
//! Install progress and state changes arrive on `GET /api/v1/events` (`app_progress`,
//! `app_state`).

use super::auth::{AdminSession, Session};
use super::error::{ApiResult, Body};
use crate::apps::catalog::{CatalogEntry, Category, ImageKind, LoadedStore};
use crate::apps::lifecycle::{AppError, InstallRequest, UpdateRequest};
use crate::apps::plan::AppSettings;
use crate::apps::record::{AppRecord, AppSource};
use crate::apps::runtime::LogOptions;
use crate::error::ServiceError;
use crate::state::AppState;
use axum::Json;
use axum::body::Body as HttpBody;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreInfo {
    pub id: String,
    /// The store folder, or the zip URL.
    pub source: String,
    /// The zip URL of a downloaded store (null for a folder on the device).
    pub url: Option<String>,
    /// From the configuration (cannot be removed here).
    pub configured: bool,
    /// When the copy being served was loaded.
    pub loaded_at: Option<String>,
    /// When the last refresh was tried.
    pub refreshed_at: Option<String>,
    /// Why the last refresh failed (the last good copy is still served).
    pub error: Option<String>,
    pub apps: usize,
}

impl From<&LoadedStore> for StoreInfo {
    fn from(s: &LoadedStore) -> Self {
        Self {
            id: s.id.clone(),
            source: s
                .url
                .clone()
                .unwrap_or_else(|| s.source.display().to_string()),
            url: s.url.clone(),
            configured: s.configured,
            loaded_at: s.loaded_at.clone(),
            refreshed_at: s.refreshed_at.clone(),
            error: s.error.clone(),
            apps: s.apps.len(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStoreRequest {
    /// Absolute path of a CasaOS-layout store folder on the device.
    #[schema(pattern = r"^/")]
    pub path: Option<String>,
    /// Or an https URL of a store zip (downloaded and checked before it is added).
    #[schema(pattern = r"^https://", max_length = 2048)]
    pub url: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CatalogQuery {
    /// Text to find in titles, taglines and descriptions.
    pub q: Option<String>,
    pub category: Option<String>,
    /// Language for localized text (`de_DE`, `de-DE` or `de`); default `en_US`.
    pub lang: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogResponse {
    pub apps: Vec<CatalogEntry>,
    pub categories: Vec<Category>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogApp {
    pub store: String,
    pub app: String,
    pub title: String,
    pub tagline: String,
    pub category: Option<String>,
    pub version: Option<String>,
    /// The agent's route serving the icon.
    pub icon: Option<String>,
    /// False when the app is not published for this device's architecture.
    pub available: bool,
    pub architectures: Vec<String>,
    pub description: String,
    pub tips: Option<String>,
    /// The agent's routes serving the screenshots, in order.
    pub screenshots: Vec<String>,
    /// The agent's route serving the thumbnail.
    pub thumbnail: Option<String>,
    /// Every `x-casaos` field, all languages.
    pub meta: crate::apps::casaos::AppMeta,
    /// What installing it now would do (ports, folders, policy findings), or why it cannot.
    pub plan: CatalogPlan,
}

/// A store app's dry-run plan, or why it cannot be planned on this device now.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CatalogPlan {
    Plan(Box<crate::apps::plan::Plan>),
    Refused {
        /// What stands in the way (a port clash, an architecture, a refused compose key).
        error: String,
    },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallBody {
    /// Install from a store: the store id and the app's folder name.
    pub store: Option<String>,
    pub app: Option<String>,
    /// Or a custom app: compose YAML (its ports are taken as chosen: a clash is an error).
    pub compose: Option<String>,
    /// App id (needed for compose YAML without `name`).
    pub app_id: Option<String>,
    #[serde(default)]
    pub settings: AppSettings,
    /// Policy finding ids the admin consents to.
    #[serde(default)]
    pub consent: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAppBody {
    /// New settings: the app is re-planned (same policy) and re-created.
    pub settings: Option<AppSettings>,
    #[serde(default)]
    pub consent: Vec<String>,
    /// Update the app automatically when the periodic check finds an update.
    pub auto_update: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateAppBody {
    #[serde(default)]
    pub consent: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub id: String,
    pub source: AppSource,
    pub version: Option<String>,
    pub state: String,
    /// The "open" link: scheme, device address, port and path from the store metadata.
    pub web_url: Option<String>,
    pub containers: Vec<crate::apps::runtime::ContainerStatus>,
    pub findings: Vec<crate::apps::policy::Finding>,
    pub consents: Vec<crate::apps::record::Consent>,
    pub installed_at: String,
    pub updated_at: String,
    pub last_error: Option<String>,
    /// Why the app is kept stopped (`reason`: `unconsented` with `findings`, or `refused` with
    /// `message`); consent with `PATCH` (settings and `consent`) or uninstall.
    pub held: Option<crate::apps::record::Hold>,
    /// The store has a different version, or a moving tag (`latest`) points at a new image.
    pub update_available: bool,
    /// `store_version` or `image_digest` (null when no update is available).
    pub update_reason: Option<String>,
    /// Services whose tag points at a new image (from the last digest check).
    pub updated_images: Vec<String>,
    /// When the registries were last asked (null before the first check).
    pub digest_checked_at: Option<String>,
    pub store_version: Option<String>,
    /// Updated automatically when the periodic check finds an update.
    pub auto_update: bool,
}

/// One service's current environment, ports and bind mounts (what the settings form edits).
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceSettings {
    pub service: String,
    pub image: String,
    /// The environment the container runs with (after interpolation and overrides).
    pub env: std::collections::BTreeMap<String, String>,
    /// Published ports: `"8080/tcp"` → host port.
    pub ports: std::collections::BTreeMap<String, u16>,
    /// Bind mounts: container path → host path.
    pub volumes: std::collections::BTreeMap<String, String>,
}

/// An installed app's settings: the user's overrides and what each service runs with now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppSettingsView {
    pub settings: AppSettings,
    pub services: Vec<ServiceSettings>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// Also delete the app's volumes and its app-data folder.
    #[serde(default)]
    pub delete_data: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LogsQuery {
    #[serde(default)]
    pub follow: bool,
    /// Lines from the end of each container's log.
    pub tail: Option<u32>,
}

fn lang(q: Option<&str>) -> String {
    q.unwrap_or("en_US").to_string()
}

fn device_host(state: &AppState) -> String {
    format!("{}.local", state.hostname())
}

async fn view(state: &AppState, r: &AppRecord) -> AppView {
    let containers = state.apps.status(&r.id).await.unwrap_or_default();
    let store_version = match &r.source {
        AppSource::Store { store, app } => state
            .catalog
            .app(store, app)
            .ok()
            .and_then(|a| a.meta.version),
        AppSource::Custom => None,
    };
    let check = state.apps.digest_check(&r.id);
    let store_update = store_version.is_some() && store_version != r.plan.version;
    let updated_images = check
        .as_ref()
        .map(|c| c.services.clone())
        .unwrap_or_default();
    let update_reason = if store_update {
        Some("store_version".to_string())
    } else if !updated_images.is_empty() {
        Some("image_digest".to_string())
    } else {
        None
    };
    AppView {
        id: r.id.clone(),
        source: r.source.clone(),
        version: r.plan.version.clone(),
        state: format!("{:?}", r.state).to_lowercase(),
        web_url: r.plan.web_ui.as_ref().map(|w| w.url(&device_host(state))),
        containers,
        findings: r.plan.findings.clone(),
        consents: r.consents.clone(),
        installed_at: r.installed_at.clone(),
        updated_at: r.updated_at.clone(),
        last_error: r.last_error.clone(),
        held: r.held.clone(),
        update_available: update_reason.is_some(),
        update_reason,
        updated_images,
        digest_checked_at: check.map(|c| c.checked_at),
        store_version,
        auto_update: r.auto_update,
    }
}

/// Runs an app operation on its own task, so a client that goes away (a dropped connection, a
/// closed tab; browsers drop open connections when Docker adds a network interface) does not
/// cancel it halfway: it always runs to its end or undoes itself, as it would uninterrupted.
async fn detached<T: Send + 'static>(
    op: impl std::future::Future<Output = Result<T, AppError>> + Send + 'static,
) -> ApiResult<T> {
    match tokio::spawn(op).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ServiceError::Internal(format!("app operation task: {e}")).into()),
    }
}

/// Turns an install body into a lifecycle request (reading the store app when named).
fn install_request(state: &AppState, body: InstallBody, by: &str) -> ApiResult<InstallRequest> {
    let (compose, side_files, source, exact_ports) = match (body.store, body.app, body.compose) {
        (Some(store), Some(app), None) => {
            let a = state.catalog.app(&store, &app)?;
            let src = crate::apps::source::load(&a.compose_path)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            (
                src.text,
                src.side_files,
                AppSource::Store { store, app: a.name },
                false,
            )
        }
        (None, None, Some(compose)) => (compose, Default::default(), AppSource::Custom, true),
        _ => {
            return Err(ServiceError::invalid(
                "body",
                "give either `store` and `app`, or `compose`",
            )
            .into());
        }
    };
    Ok(InstallRequest {
        app_id: body.app_id,
        compose,
        side_files,
        source,
        settings: body.settings,
        consent: body.consent.into_iter().collect(),
        by: by.to_string(),
        exact_ports,
    })
}

/// The app stores and how their last refresh went.
#[utoipa::path(get, path = "/api/v1/stores", tag = "apps", security(("session" = [])),
    responses((status = 200, body = [StoreInfo]), (status = 401, body = super::error::ErrorBody)))]
pub async fn list_stores(State(state): State<AppState>, _s: Session) -> Json<Vec<StoreInfo>> {
    Json(state.catalog.stores().iter().map(StoreInfo::from).collect())
}

/// Adds a store folder, or a store zip URL (downloaded, checked and unpacked now; a failure
/// is a 422 `not_a_store` with the reason and nothing is added).
#[utoipa::path(post, path = "/api/v1/stores", tag = "apps", security(("session" = [])), request_body = AddStoreRequest,
    responses((status = 201, body = StoreInfo), (status = 400, body = super::error::ErrorBody), (status = 403, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "conflict: the store is added already"),
        (status = 422, body = super::error::ErrorBody, description = "not_a_store: the folder or download holds no usable store; invalid_url: not a URL the agent fetches")))]
pub async fn add_store(
    State(state): State<AppState>,
    _a: AdminSession,
    Body(req): Body<AddStoreRequest>,
) -> ApiResult<(StatusCode, Json<StoreInfo>)> {
    let s = match (req.path, req.url) {
        (Some(path), None) => {
            let catalog = state.catalog.clone();
            tokio::task::spawn_blocking(move || catalog.add(std::path::Path::new(&path)))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))??
        }
        (None, Some(url)) => state.catalog.add_url(&url).await?,
        _ => return Err(ServiceError::invalid("body", "give either `path` or `url`").into()),
    };
    Ok((StatusCode::CREATED, Json(StoreInfo::from(&s))))
}

/// Removes a store added through the API.
#[utoipa::path(delete, path = "/api/v1/stores/{store}", tag = "apps", security(("session" = [])),
    params(("store" = String, Path, description = "Store id")),
    responses((status = 204), (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody, description = "conflict: the store comes from the configuration")))]
pub async fn remove_store(
    State(state): State<AppState>,
    _a: AdminSession,
    Path(store): Path<String>,
) -> ApiResult<StatusCode> {
    state.catalog.remove(&store)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reloads every store now, downloading zip stores anew (a store that fails keeps its last
/// good copy and reports why in `error`).
#[utoipa::path(post, path = "/api/v1/stores/refresh", tag = "apps", security(("session" = [])),
    responses((status = 200, body = [StoreInfo])))]
pub async fn refresh_stores(
    State(state): State<AppState>,
    _a: AdminSession,
) -> Json<Vec<StoreInfo>> {
    state.catalog.refresh().await;
    Json(state.catalog.stores().iter().map(StoreInfo::from).collect())
}

/// Searches the catalog of every store.
#[utoipa::path(get, path = "/api/v1/catalog", tag = "apps", security(("session" = [])), params(CatalogQuery),
    responses((status = 200, body = CatalogResponse)))]
pub async fn catalog(
    State(state): State<AppState>,
    _s: Session,
    Query(q): Query<CatalogQuery>,
) -> Json<CatalogResponse> {
    let lang = lang(q.lang.as_deref());
    Json(CatalogResponse {
        apps: state
            .catalog
            .search(q.q.as_deref().unwrap_or(""), q.category.as_deref(), &lang),
        categories: state.catalog.categories(),
    })
}

/// One store app: localized text, screenshots, and what installing it would do.
#[utoipa::path(get, path = "/api/v1/catalog/{store}/{app}", tag = "apps", security(("session" = [])),
    params(("store" = String, Path), ("app" = String, Path), CatalogQuery),
    responses((status = 200, body = CatalogApp), (status = 404, body = super::error::ErrorBody)))]
pub async fn catalog_app(
    State(state): State<AppState>,
    auth: Session,
    Path((store, app)): Path<(String, String)>,
    Query(q): Query<CatalogQuery>,
) -> ApiResult<Json<CatalogApp>> {
    let lang = lang(q.lang.as_deref());
    let a = state.catalog.app(&store, &app)?;
    let entry = state.catalog.entry(&store, &a, &lang);
    let body = InstallBody {
        store: Some(store),
        app: Some(app),
        compose: None,
        app_id: None,
        settings: AppSettings::default(),
        consent: Vec::new(),
    };
    let plan = match install_request(&state, body, &auth.0.user.username)
        .and_then(|r| Ok(state.apps.plan(&r)?))
    {
        Ok(p) => CatalogPlan::Plan(Box::new(p)),
        Err(e) => CatalogPlan::Refused {
            error: e.0.to_string(),
        },
    };
    let meta = crate::apps::catalog::full_meta(&a);
    Ok(Json(CatalogApp {
        description: meta.description.pick(&lang).unwrap_or_default().to_string(),
        tips: meta.tips.before_install.pick(&lang).map(str::to_string),
        screenshots: (0..meta.screenshot_link.len())
            .map(|n| format!("/api/v1/catalog/{}/{}/screenshots/{n}", entry.store, a.name))
            .collect(),
        thumbnail: meta
            .thumbnail
            .as_ref()
            .map(|_| format!("/api/v1/catalog/{}/{}/thumbnail", entry.store, a.name)),
        meta,
        store: entry.store,
        app: entry.app,
        title: entry.title,
        tagline: entry.tagline,
        category: entry.category,
        version: entry.version,
        icon: entry.icon,
        available: entry.available,
        architectures: entry.architectures,
        plan,
    }))
}

/// An app image as an inert image response: the sniffed type, `nosniff`, and a CSP that
/// turns off scripts and foreign loads (an SVG opened directly is not a live document).
fn image_response(t: crate::apps::media::ImageType, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, t.mime()),
            (
                header::CONTENT_SECURITY_POLICY,
                crate::apps::media::MEDIA_CSP,
            ),
            (header::CACHE_CONTROL, "private, max-age=86400"),
            (header::CONTENT_DISPOSITION, "inline"),
        ],
        bytes,
    )
        .into_response()
}

/// The app's icon: a file in the store folder, else the store's `icon` URL fetched and cached
/// by the agent (the browser never loads third-party hosts).
#[utoipa::path(get, path = "/api/v1/catalog/{store}/{app}/icon", tag = "apps", security(("session" = [])),
    params(("store" = String, Path), ("app" = String, Path)),
    responses((status = 200, content_type = "image/png", description = "PNG, JPEG, WebP or SVG"), (status = 404, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody, description = "image_unavailable")))]
pub async fn catalog_icon(
    State(state): State<AppState>,
    _s: Session,
    Path((store, app)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (t, bytes) = state.catalog.image(&store, &app, ImageKind::Icon).await?;
    Ok(image_response(t, bytes))
}

/// The app's thumbnail (`thumbnail` URL), fetched and cached by the agent.
#[utoipa::path(get, path = "/api/v1/catalog/{store}/{app}/thumbnail", tag = "apps", security(("session" = [])),
    params(("store" = String, Path), ("app" = String, Path)),
    responses((status = 200, content_type = "image/png", description = "PNG, JPEG, WebP or SVG"), (status = 404, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody, description = "image_unavailable")))]
pub async fn catalog_thumbnail(
    State(state): State<AppState>,
    _s: Session,
    Path((store, app)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (t, bytes) = state
        .catalog
        .image(&store, &app, ImageKind::Thumbnail)
        .await?;
    Ok(image_response(t, bytes))
}

/// Screenshot number `n` (from 0, in `screenshot_link` order), fetched and cached by the agent.
#[utoipa::path(get, path = "/api/v1/catalog/{store}/{app}/screenshots/{n}", tag = "apps", security(("session" = [])),
    params(("store" = String, Path), ("app" = String, Path), ("n" = u16, Path, minimum = 0, maximum = 65535)),
    responses((status = 200, content_type = "image/png", description = "PNG, JPEG, WebP or SVG"), (status = 404, body = super::error::ErrorBody), (status = 502, body = super::error::ErrorBody, description = "image_unavailable")))]
pub async fn catalog_screenshot(
    State(state): State<AppState>,
    _s: Session,
    Path((store, app, n)): Path<(String, String, u16)>,
) -> ApiResult<Response> {
    let (t, bytes) = state
        .catalog
        .image(&store, &app, ImageKind::Screenshot(n.into()))
        .await?;
    Ok(image_response(t, bytes))
}

/// What installing would do: containers, ports, folders and the policy's findings.
#[utoipa::path(post, path = "/api/v1/apps/plan", tag = "apps", security(("session" = [])), request_body = InstallBody,
    responses((status = 200, body = crate::apps::plan::Plan), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody, description = "unknown store or app"),
        (status = 422, body = super::error::ErrorBody, description = "invalid_compose, host_path_refused, unsupported_architecture")))]
pub async fn plan(
    State(state): State<AppState>,
    a: AdminSession,
    Body(body): Body<InstallBody>,
) -> ApiResult<Json<crate::apps::plan::Plan>> {
    let req = install_request(&state, body, &a.0.user.username)?;
    Ok(Json(state.apps.plan(&req)?))
}

/// Installs a store app or custom compose YAML; answers when the app is up (or has been
/// removed again after a failure). Findings need `consent`.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", security(("session" = [])), request_body = InstallBody,
    responses((status = 201, body = AppView), (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody, description = "unknown store or app"), (status = 409, body = super::error::ErrorBody, description = "consent_required, app_exists, name_clash"), (status = 422, body = super::error::ErrorBody, description = "invalid_compose, host_path_refused, unsupported_architecture, image_pull_failed, app_unhealthy")))]
pub async fn install(
    State(state): State<AppState>,
    a: AdminSession,
    Body(body): Body<InstallBody>,
) -> ApiResult<(StatusCode, Json<AppView>)> {
    let req = install_request(&state, body, &a.0.user.username)?;
    let apps = state.apps.clone();
    let r = detached(async move { apps.install(req).await }).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &r).await)))
}

/// Installed apps with their containers' state.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", security(("session" = [])),
    responses((status = 200, body = [AppView])))]
pub async fn list_apps(
    State(state): State<AppState>,
    _s: Session,
) -> ApiResult<Json<Vec<AppView>>> {
    let mut out = Vec::new();
    for r in state.apps.list()? {
        out.push(view(&state, &r).await);
    }
    Ok(Json(out))
}

/// One installed app.
#[utoipa::path(get, path = "/api/v1/apps/{id}", tag = "apps", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 200, body = AppView), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_app(
    State(state): State<AppState>,
    _s: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<AppView>> {
    let r = state.apps.get(&id)?;
    Ok(Json(view(&state, &r).await))
}

/// The app's settings overrides and each service's current environment, ports and bind mounts
/// (admins only: environments hold passwords).
#[utoipa::path(get, path = "/api/v1/apps/{id}/settings", tag = "apps", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 200, body = AppSettingsView), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn app_settings(
    State(state): State<AppState>,
    _a: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<Json<AppSettingsView>> {
    use crate::apps::plan::Mount;
    let r = state.apps.get(&id)?;
    let services = r
        .plan
        .containers
        .iter()
        .map(|c| ServiceSettings {
            service: c.service.clone(),
            image: c.image.clone(),
            env: c.env.clone(),
            ports: r
                .plan
                .ports
                .iter()
                .filter(|p| p.service == c.service)
                .filter_map(|p| {
                    let key = format!("{}/{}", p.container_port, p.protocol.as_str());
                    p.host_port.map(|h| (key, h))
                })
                .collect(),
            volumes: c
                .mounts
                .iter()
                .filter_map(|m| match m {
                    Mount::Bind { source, target, .. } => {
                        Some((target.clone(), source.display().to_string()))
                    }
                    Mount::Volume { .. } | Mount::Tmpfs { .. } => None,
                })
                .collect(),
        })
        .collect();
    Ok(Json(AppSettingsView {
        settings: r.settings,
        services,
    }))
}

/// Changes an app's settings (environment, ports, volumes) and re-creates it, through the
/// same policy; a failure goes back to the previous containers.
#[utoipa::path(patch, path = "/api/v1/apps/{id}", tag = "apps", security(("session" = [])), request_body = PatchAppBody,
    params(("id" = String, Path)), responses((status = 200, body = AppView), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "the new settings do not fit the app (invalid_compose, host_path_refused) or its containers failed")))]
pub async fn patch_app(
    State(state): State<AppState>,
    a: AdminSession,
    Path(id): Path<String>,
    Body(body): Body<PatchAppBody>,
) -> ApiResult<Json<AppView>> {
    if body.settings.is_none() && body.auto_update.is_none() {
        return Err(ServiceError::invalid("body", "give `settings` and/or `auto_update`").into());
    }
    let mut r = state.apps.get(&id)?;
    if let Some(settings) = body.settings {
        let req = UpdateRequest {
            compose: None,
            settings: Some(settings),
            consent: body.consent.into_iter().collect(),
            by: a.0.user.username.clone(),
        };
        let apps = state.apps.clone();
        let id = id.clone();
        r = detached(async move { apps.update(&id, req).await }).await?;
    }
    if let Some(on) = body.auto_update {
        let apps = state.apps.clone();
        let id = id.clone();
        r = detached(async move { apps.set_auto_update(&id, on).await }).await?;
    }
    Ok(Json(view(&state, &r).await))
}

/// Uninstalls; `delete_data=true` also deletes volumes and the app-data folder.
#[utoipa::path(delete, path = "/api/v1/apps/{id}", tag = "apps", security(("session" = [])),
    params(("id" = String, Path), DeleteQuery), responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete_app(
    State(state): State<AppState>,
    _a: AdminSession,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let apps = state.apps.clone();
    detached(async move { apps.uninstall(&id, q.delete_data).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts the app's containers.
#[utoipa::path(post, path = "/api/v1/apps/{id}/start", tag = "apps", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn start_app(
    State(state): State<AppState>,
    _a: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let apps = state.apps.clone();
    detached(async move { apps.start(&id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops the app's containers (dependents first).
#[utoipa::path(post, path = "/api/v1/apps/{id}/stop", tag = "apps", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn stop_app(
    State(state): State<AppState>,
    _a: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let apps = state.apps.clone();
    detached(async move { apps.stop(&id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restarts the app's containers.
#[utoipa::path(post, path = "/api/v1/apps/{id}/restart", tag = "apps", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn restart_app(
    State(state): State<AppState>,
    _a: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let apps = state.apps.clone();
    detached(async move { apps.restart(&id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Updates: the store's current compose file for store apps (fresh images for moving tags
/// either way); rolls back when the new containers do not become healthy.
#[utoipa::path(post, path = "/api/v1/apps/{id}/update", tag = "apps", security(("session" = [])),
    params(("id" = String, Path)), request_body = UpdateAppBody,
    responses((status = 200, body = AppView), (status = 409, body = super::error::ErrorBody, description = "update_rolled_back, consent_required")))]
pub async fn update_app(
    State(state): State<AppState>,
    a: AdminSession,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<AppView>> {
    // The body is optional: no body means no new consents.
    let body: UpdateAppBody = if body.iter().all(u8::is_ascii_whitespace) {
        UpdateAppBody::default()
    } else {
        super::error::json_object(&body)?
    };
    let consent: BTreeSet<String> = body.consent.into_iter().collect();
    let r = crate::apps::lifecycle::update_from_source(
        &state.apps,
        &state.catalog,
        &id,
        consent,
        &a.0.user.username,
    )
    .await?;
    Ok(Json(view(&state, &r).await))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertRequest {
    /// A `docker run ...` command line (split with shell quoting rules; nothing is run), at
    /// most 16,384 characters. `sudo`, `podman` and `docker container run` are understood too;
    /// words are separated by spaces, tabs or newlines (shell rules).
    #[schema(
        min_length = 1,
        max_length = 16384,
        pattern = r"^[ \t\n]*(sudo[ \t\n]+)?(docker|podman)[ \t\n]+(container[ \t\n]+)?run([ \t\n]|$)"
    )]
    pub command: String,
}

/// Converts a `docker run` command to compose YAML (install it with `POST /api/v1/apps`,
/// where the planner and the policy judge it like any other compose file).
#[utoipa::path(post, path = "/api/v1/apps/convert", tag = "apps", security(("session" = [])), request_body = ConvertRequest,
    responses((status = 200, body = crate::apps::convert::Converted), (status = 400, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "invalid_command: a `docker run` line the converter cannot turn into compose YAML")))]
pub async fn convert(
    _a: AdminSession,
    Body(req): Body<ConvertRequest>,
) -> ApiResult<Json<crate::apps::convert::Converted>> {
    Ok(Json(crate::apps::convert::docker_run_to_compose(
        &req.command,
    )?))
}

/// Asks the registries now whether moving tags (`latest`, ...) of installed apps point at new
/// images; answers with every app (see `update_available` and `update_reason`).
#[utoipa::path(post, path = "/api/v1/apps/check-updates", tag = "apps", security(("session" = [])),
    responses((status = 200, body = [AppView]), (status = 403, body = super::error::ErrorBody)))]
pub async fn check_updates(
    State(state): State<AppState>,
    _a: AdminSession,
) -> ApiResult<Json<Vec<AppView>>> {
    state.apps.check_digests().await?;
    let mut out = Vec::new();
    for r in state.apps.list()? {
        out.push(view(&state, &r).await);
    }
    Ok(Json(out))
}

/// The app's logs, both streams of every container, as JSON lines; `follow=true` keeps the
/// response open and streams new lines.
#[utoipa::path(get, path = "/api/v1/apps/{id}/logs", tag = "apps", security(("session" = [])),
    params(("id" = String, Path), LogsQuery),
    responses((status = 200, content_type = "application/x-ndjson", description = "one {container, stream, text} per line")))]
pub async fn logs(
    State(state): State<AppState>,
    Session(auth): Session,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    // Logs of store apps print their generated admin passwords and tokens: members read
    // them only when an admin granted it.
    if auth.user.role != crate::store::Role::Admin && !auth.user.app_logs {
        return Err(ServiceError::Forbidden.into());
    }
    let stream = state.apps.logs(
        &id,
        LogOptions {
            follow: q.follow,
            tail: q.tail,
        },
    )?;
    let body = stream.map(|item| {
        let line = match item {
            Ok(l) => serde_json::to_string(&l).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e.to_string() }).to_string(),
        };
        Ok::<_, std::convert::Infallible>(format!("{line}\n"))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        HttpBody::from_stream(body),
    )
        .into_response())
}

/// CPU, memory and network use per service.
#[utoipa::path(get, path = "/api/v1/apps/{id}/stats", tag = "apps", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 200, body = std::collections::BTreeMap<String, crate::apps::runtime::Stats>, description = "per service")))]
pub async fn stats(
    State(state): State<AppState>,
    _s: Session,
    Path(id): Path<String>,
) -> ApiResult<Json<std::collections::BTreeMap<String, crate::apps::runtime::Stats>>> {
    Ok(Json(state.apps.stats(&id).await?))
}
