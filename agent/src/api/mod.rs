//! The HTTP API and the embedded dashboard. Handlers are thin: they parse, call the service
//! layer (`accounts`, `status`, ...) and shape the answer; errors map to HTTP in `error`.
//!
//! Every route is described in the OpenAPI document (`/api/openapi.json`), which is generated
//! from the same attributes that register the routes, so the two cannot drift.

pub(crate) mod apps;
pub mod auth;
mod device;
pub mod disks;
mod doc_rules;
pub mod error;
mod error_code;
mod files;
pub mod models;
mod network;
mod request_id;
mod security_headers;
mod session;
mod setup;
mod shares;
mod system;
mod tls;
pub(crate) mod update;
mod users;
mod web;

/// The file API's header parsers, for the fuzz harnesses only (see `crate::fuzzing`).
#[doc(hidden)]
pub use files::{content_disposition, parse_content_range, parse_range};

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Hearth agent API", description = "The on-device API behind the Hearth dashboard."),
    modifiers(&SecuritySchemes),
    // Wildcard routes are registered by hand (see `app`); their documentation comes from here.
    paths(files::get_path, files::put_path, files::post_path, files::delete_path),
    // Payloads outside JSON answers: events on the live stream, lines of the NDJSON log stream.
    components(schemas(
        error::ErrorBody,
        files::TextFile,
        crate::events::DiskEvent,
        crate::events::AppProgress,
        crate::events::AppStateChange,
        crate::apps::runtime::LogLine
    ))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "Session cookie from POST /api/v1/session; unsafe methods also need X-CSRF-Token.",
            ))),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API routes and their OpenAPI description.
pub fn api_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(setup::health))
        .routes(routes!(setup::setup_info))
        .routes(routes!(setup::claim))
        .routes(routes!(session::login, session::current, session::logout))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::update, users::delete))
        .routes(routes!(users::change_password))
        .routes(routes!(users::totp_begin, users::totp_disable))
        .routes(routes!(users::totp_confirm))
        .routes(routes!(system::status))
        .routes(routes!(system::events))
        .routes(routes!(system::ca_certificate))
        .routes(routes!(tls::status))
        .routes(routes!(tls::begin, tls::cancel))
        .routes(routes!(tls::next_certificate))
        .routes(routes!(tls::activate))
        .routes(routes!(tls::forget_previous))
        .routes(routes!(system::metrics))
        .routes(routes!(device::services))
        .routes(routes!(device::service_action))
        .routes(routes!(device::service_journal))
        .routes(routes!(device::settings, device::update_settings))
        .routes(routes!(device::power))
        .routes(routes!(network::interfaces))
        .routes(routes!(network::update_interface))
        .routes(routes!(network::confirm))
        .routes(routes!(network::rollback))
        .routes(routes!(network::wifi))
        .routes(routes!(network::scan))
        .routes(routes!(network::connect))
        .routes(routes!(network::forget))
        .routes(routes!(disks::list))
        .routes(routes!(disks::settings, disks::update_settings))
        .routes(routes!(disks::format))
        .routes(routes!(disks::mount))
        .routes(routes!(disks::unmount))
        .routes(routes!(disks::eject))
        .routes(routes!(files::roots))
        .routes(routes!(shares::list, shares::create))
        .routes(routes!(shares::update, shares::delete))
        .routes(routes!(files::get_root))
        .routes(routes!(files::trash_list, files::trash_empty))
        .routes(routes!(files::trash_restore))
        .routes(routes!(files::jobs))
        .routes(routes!(files::cancel_job))
        .routes(routes!(apps::list_stores, apps::add_store))
        .routes(routes!(apps::remove_store))
        .routes(routes!(apps::refresh_stores))
        .routes(routes!(apps::catalog))
        .routes(routes!(apps::catalog_app))
        .routes(routes!(apps::catalog_icon))
        .routes(routes!(apps::catalog_thumbnail))
        .routes(routes!(apps::catalog_screenshot))
        .routes(routes!(apps::check_updates))
        .merge(
            // Compose files travel in these bodies; every other JSON body is small.
            OpenApiRouter::new()
                .routes(routes!(apps::plan))
                .routes(routes!(apps::convert))
                .routes(routes!(apps::list_apps, apps::install))
                .routes(routes!(apps::get_app, apps::patch_app, apps::delete_app))
                .layer(DefaultBodyLimit::max(COMPOSE_BODY_LIMIT)),
        )
        .routes(routes!(apps::start_app))
        .routes(routes!(apps::stop_app))
        .routes(routes!(apps::restart_app))
        .routes(routes!(apps::update_app))
        .routes(routes!(apps::logs))
        .routes(routes!(apps::stats))
        .routes(routes!(apps::app_settings))
        .routes(routes!(update::get_update))
        .routes(routes!(update::check))
        .routes(routes!(update::install))
        .routes(routes!(update::reboot))
        .routes(routes!(update::patch_policy))
        .routes(routes!(update::dismiss_notice))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .split_for_parts()
}

/// The body limit of JSON requests (logins, settings, users, file actions). File uploads
/// stream and are not buffered, so this does not apply to them.
pub const JSON_BODY_LIMIT: usize = 64 << 10;
/// The body limit of requests that carry a compose file.
pub const COMPOSE_BODY_LIMIT: usize = 1 << 20;

/// Adds the answers every operation of a kind can give, from the guards and extractors they
/// share, so that the document lists every status an operation can answer: 401 and 403 (no
/// session, a member on an admin route, a missing CSRF token) where a session is needed, 400
/// where there are parameters or a body, 413 where there is a body, 404 where a path names
/// something, 500 (with a request id) everywhere, 503 where a system service is behind it.
fn complete_statuses(value: &mut serde_json::Value) {
    let error = |text: &str| {
        serde_json::json!({
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    if let Some(paths) = value.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                if !["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    continue;
                }
                let session = op
                    .get("security")
                    .and_then(|s| s.as_array())
                    .is_some_and(|reqs| reqs.iter().any(|r| r.get("session").is_some()));
                let params = op
                    .get("parameters")
                    .and_then(|p| p.as_array())
                    .is_some_and(|p| !p.is_empty());
                let body = op.get("requestBody").is_some();
                let tag = op
                    .get("tags")
                    .and_then(|t| t.get(0))
                    .and_then(|t| t.as_str())
                    .unwrap_or("")
                    .to_string();
                let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut())
                else {
                    continue;
                };
                let mut add = |status: &str, text: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(text));
                };
                if session {
                    add("401", "unauthenticated: no valid session");
                    add(
                        "403",
                        "forbidden (the role does not allow it) or csrf_invalid (unsafe method without the session's X-CSRF-Token)",
                    );
                }
                if params || body {
                    add("400", "invalid_input: a parameter or the body is not valid");
                }
                if body {
                    add("413", "too_large: the body is over this endpoint's limit");
                }
                if path.contains('{') {
                    add("404", "not_found");
                }
                add(
                    "500",
                    "internal: the details are in the device's log under the request_id",
                );
                if [
                    "system", "device", "network", "disks", "apps", "update", "files",
                ]
                .contains(&tag.as_str())
                {
                    add(
                        "503",
                        "unavailable: a system service behind this is not reachable right now (Retry-After)",
                    );
                }
            }
        }
    }
}

/// The OpenAPI document as served: the generated one, completed with the statuses every
/// operation shares and the request rules the derived schemas cannot state (`doc_rules`).
pub fn openapi() -> serde_json::Value {
    document(api_routes().1)
}

fn document(generated: utoipa::openapi::OpenApi) -> serde_json::Value {
    // Serializing the generated document cannot fail: it is plain data with string keys.
    let mut value = serde_json::to_value(&generated).unwrap_or_default();
    complete_statuses(&mut value);
    let missing = doc_rules::apply(&mut value);
    debug_assert!(
        missing.is_empty(),
        "document rules without a target: {missing:?}"
    );
    value
}

/// The whole application: API, OpenAPI document, dashboard, headers.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api_routes();
    let doc_json = serde_json::to_string_pretty(&document(doc)).unwrap_or_default();
    api.route(
        "/api/openapi.json",
        get(move || async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                doc_json,
            )
        }),
    )
    .route(
        "/api/v1/files/{root}/{*path}",
        get(files::get_path)
            .put(files::put_path)
            .post(files::post_path)
            .delete(files::delete_path),
    )
    .route("/api/{*rest}", axum::routing::any(system::api_not_found))
    .fallback(web::serve)
    .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
    .layer(axum::middleware::from_fn(error::json_errors))
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        security_headers::apply,
    ))
    // Outermost: keeps an unread HTTP/2 request body alive until the refusal is on its way, and
    // marks an HTTP/1 refusal that leaves the body unread `Connection: close`.
    .layer(axum::middleware::from_fn(crate::server::keep_unread_body))
    // Around everything: each request's log lines carry its id (and 5xx bodies the same id).
    .layer(axum::middleware::from_fn(request_id::span))
    .with_state(state)
}
