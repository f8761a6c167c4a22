//! The one mapping from service errors to HTTP: status, machine-readable code and message, in
//! the shape `{"error":{"code":"...","message":"..."}}`. 5xx bodies never carry internals: they
//! carry a request id, and the details go to the log under the same id.
//!
//! Errors raised outside the handlers (axum's extractor rejections, unknown methods, body
//! limits) are rewritten into the same shape by `json_errors`, so no API answer is plain text.

use crate::error::ServiceError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// For server errors: the id under which the details are in the device's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Builds an error response from parts; for the few errors raised outside the service layer.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
            request_id: None,
        },
    };
    (status, Json(body)).into_response()
}

/// A server error's answer: a fixed message for its status and a fresh request id; `details`
/// (which may name libraries, paths, D-Bus errors) goes only to the log, under that id.
pub fn server_error(status: StatusCode, code: &str, details: &dyn std::fmt::Display) -> Response {
    let request_id = crate::auth::tokens::new_id();
    let message = match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            "This part of the device is not available right now; try again in a moment."
        }
        StatusCode::BAD_GATEWAY => "The device could not get what it needed from another server.",
        _ => "Something went wrong on the device. The details are in its log.",
    };
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::BAD_GATEWAY {
        tracing::warn!(%request_id, %code, error = %details, "request failed");
    } else {
        tracing::error!(%request_id, %code, error = %details, "request failed");
    }
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
            request_id: Some(request_id),
        },
    };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// The stable code for a status, for errors that did not come with one.
fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid_input",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::CONFLICT => "conflict",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PRECONDITION_FAILED => "edit_conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
        StatusCode::TOO_MANY_REQUESTS => "throttled",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::BAD_GATEWAY => "bad_gateway",
        s if s.is_server_error() => "internal",
        _ => "http_error",
    }
}

/// Middleware: any API error answer that is not already JSON (axum's rejections of a bad query,
/// path, body or method; a body over its limit) is given the error shape, keeping its status
/// and headers. Client-error texts are kept as the message (they say what was wrong with the
/// request); server-error texts are logged and replaced.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let api = path.starts_with("/api/") || path == "/metrics";
    let response = next.run(request).await;
    let status = response.status();
    if !api || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = code_for_status(status);
    let mut rebuilt = if status.is_server_error() {
        server_error(status, code, &text)
    } else {
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("Request refused.")
                .to_string()
        } else {
            text
        };
        error_response(status, code, &message)
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in rebuilt.headers() {
        parts.headers.insert(name.clone(), value.clone());
    }
    *rebuilt.headers_mut() = parts.headers;
    rebuilt
}

fn system_status(error: &crate::system::SystemError) -> (StatusCode, &'static str) {
    use crate::system::SystemError as S;
    match error {
        S::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        S::Refused { .. } => (StatusCode::CONFLICT, "system_refused"),
        S::UnitNotManaged(_) => (StatusCode::NOT_FOUND, "not_found"),
        S::ActionNotAllowed { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        S::Journal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn network_status(error: &crate::network::NetworkError) -> (StatusCode, &'static str) {
    use crate::network::NetworkError as N;
    match error {
        N::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "network_unavailable"),
        N::Refused(_) => (StatusCode::CONFLICT, "network_refused"),
        N::NoInterface(_) | N::NoNetwork(_) | N::NotSaved(_) | N::NoCheckpoint(_) => {
            (StatusCode::NOT_FOUND, "not_found")
        }
        N::NoConnection(_) => (StatusCode::CONFLICT, "no_connection"),
        N::NoWifi => (StatusCode::NOT_FOUND, "no_wifi"),
        // The request was well formed; this network needs what it did not give.
        N::PasswordRequired(_) => (StatusCode::UNPROCESSABLE_ENTITY, "password_required"),
        N::WrongPassword(_) => (StatusCode::UNPROCESSABLE_ENTITY, "wifi_auth_failed"),
        N::Unsupported(_) => (StatusCode::UNPROCESSABLE_ENTITY, "wifi_unsupported"),
        N::ActivationFailed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "activation_failed"),
        N::ChangePending => (StatusCode::CONFLICT, "change_pending"),
    }
}

fn files_status(error: &crate::files::FsError) -> (StatusCode, &'static str) {
    use crate::files::FsError as F;
    match error {
        F::Path(_) | F::IntoItself(_) => (StatusCode::BAD_REQUEST, "invalid_path"),
        F::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        F::Exists(_) => (StatusCode::CONFLICT, "exists"),
        F::NotADirectory(_) | F::IsADirectory(_) | F::NotRegular(_) | F::HardLinked(_) => {
            (StatusCode::CONFLICT, "wrong_kind")
        }
        F::NotEmpty(_) => (StatusCode::CONFLICT, "not_empty"),
        F::CrossDevice(_) => (StatusCode::CONFLICT, "cross_device"),
        F::Escapes(_) => (StatusCode::FORBIDDEN, "outside_root"),
        F::Reserved(_) | F::PermissionDenied(_) => (StatusCode::FORBIDDEN, "forbidden"),
        F::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use ServiceError as E;
        let (status, code) = match &self.0 {
            E::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            E::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            E::TotpRequired => (StatusCode::UNAUTHORIZED, "totp_required"),
            // A well-formed code that is not the right one: the request matches the document.
            E::TotpInvalid => (StatusCode::UNPROCESSABLE_ENTITY, "totp_invalid"),
            E::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            E::CsrfInvalid => (StatusCode::FORBIDDEN, "csrf_invalid"),
            E::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            E::SetupCodeInvalid => (StatusCode::FORBIDDEN, "setup_code_invalid"),
            E::AlreadyClaimed => (StatusCode::CONFLICT, "already_claimed"),
            E::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid_input"),
            E::UnknownName { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_name"),
            E::InvalidAddress { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_address"),
            E::UserExists(_) => (StatusCode::CONFLICT, "user_exists"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::LastAdmin => (StatusCode::CONFLICT, "last_admin"),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            E::Files(fs) => files_status(fs),
            E::System(sys) => system_status(sys),
            E::Network(net) => network_status(net),
            E::Disks(d) => match d {
                crate::disks::DiskError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                crate::disks::DiskError::SystemDisk(_) => (StatusCode::FORBIDDEN, "system_disk"),
                crate::disks::DiskError::InUse(..) => (StatusCode::CONFLICT, "in_use"),
                crate::disks::DiskError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
                crate::disks::DiskError::Tool { .. } => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
            },
            E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            E::UploadOffset { .. } => (StatusCode::CONFLICT, "upload_offset"),
            E::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, "edit_conflict"),
            E::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            E::App(e) => app_status(e),
            E::Catalog(e) => catalog_status(e),
            E::Convert(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_command"),
            E::Update(e) => update_status(e),
            E::Store(_) | E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        // Our own "not ready yet" texts are safe to show; every other 5xx wraps something
        // from a library (D-Bus, Docker, the store) and is shown only as a request id.
        if let E::Unavailable(own) = &self.0 {
            let mut response = error_response(status, code, own);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
        if status.is_server_error() && !own_words(&self.0) {
            return server_error(status, code, &self.0);
        }
        let mut text = self.0.to_string();
        if let Some(first) = text.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        let mut response = error_response(status, code, &text);
        if let E::Throttled { retry_after } = &self.0
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// 5xx errors whose text the agent wrote itself and that tell the user something useful (an
/// image the agent refused to fetch from a private address, an answer that was not an image).
/// Texts carrying a library's error (an HTTP client's) stay in the log.
fn own_words(e: &ServiceError) -> bool {
    use crate::apps::catalog::CatalogError as C;
    use crate::apps::fetch::FetchError as F;
    use crate::apps::media::MediaError as M;
    match e {
        ServiceError::Catalog(C::Media(m)) => {
            !matches!(m, M::Fetch(F::Http { .. } | F::CaFile { .. }))
        }
        _ => false,
    }
}

fn app_status(e: &crate::apps::lifecycle::AppError) -> (StatusCode, &'static str) {
    use crate::apps::lifecycle::AppError as A;
    use crate::apps::runtime::RuntimeError as R;
    match e {
        // A compose file, a host path or an architecture the device refuses: the request
        // matched the document (a compose file is any string there), its content did not fit.
        A::Plan(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_compose"),
        A::ConsentRequired(_) => (StatusCode::CONFLICT, "consent_required"),
        A::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        A::AlreadyInstalled(_) => (StatusCode::CONFLICT, "app_exists"),
        A::NameClash(_) => (StatusCode::CONFLICT, "name_clash"),
        A::Architecture(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_architecture"),
        A::Unhealthy { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "app_unhealthy"),
        A::RolledBack { .. } => (StatusCode::CONFLICT, "update_rolled_back"),
        A::Host(_) => (StatusCode::UNPROCESSABLE_ENTITY, "host_path_refused"),
        A::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        A::Held { .. } => (StatusCode::CONFLICT, "app_held"),
        A::Runtime(r) => match r {
            R::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "runtime_unavailable"),
            R::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            R::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            R::Pull { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "image_pull_failed"),
            R::Engine(_) => (StatusCode::UNPROCESSABLE_ENTITY, "runtime_refused"),
        },
    }
}

fn update_status(e: &crate::update::UpdateError) -> (StatusCode, &'static str) {
    use crate::update::UpdateError as U;
    let status = match e {
        U::NotConfigured(_) | U::Busy | U::NotAvailable | U::TrialPending | U::NoPendingReboot => {
            StatusCode::CONFLICT
        }
        U::RepoUnreachable(_) | U::Download(_) => StatusCode::BAD_GATEWAY,
        U::IndexInvalid(_) | U::BundleInvalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        U::Storage(_) | U::Boot(_) | U::Store(_) | U::Internal(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (status, e.code())
}

fn catalog_status(e: &crate::apps::catalog::CatalogError) -> (StatusCode, &'static str) {
    use crate::apps::catalog::CatalogError as C;
    match e {
        C::StoreNotFound(_) | C::AppNotFound { .. } | C::ImageNotFound(_) => {
            (StatusCode::NOT_FOUND, "not_found")
        }
        C::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
        C::NotAStore { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "not_a_store"),
        C::BadUrl(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_url"),
        C::Exists(_) | C::Configured(_) => (StatusCode::CONFLICT, "conflict"),
        C::Save(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        C::Media(_) => (StatusCode::BAD_GATEWAY, "image_unavailable"),
    }
}

impl From<axum::extract::rejection::JsonRejection> for ServiceError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ServiceError::TooLarge(
                "the request body is larger than this endpoint accepts".into(),
            );
        }
        ServiceError::invalid("body", rejection.body_text())
    }
}

/// A JSON request body whose rejections use the API's error shape (400 `invalid_input`).
///
/// Every request body of this API is a JSON object, and this extractor refuses anything else
/// (an array, a string, `null`) before serde sees it: serde reads a struct from a JSON array
/// too (`[null, null]` would be a valid `UpdateShareRequest`), which would let a body the
/// document forbids through. Every handler takes its body through this type.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ServiceError::invalid(
                "body",
                "Expected request with `Content-Type: application/json`",
            )
            .into());
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ServiceError::TooLarge(
                        "the request body is larger than this endpoint accepts".into(),
                    )
                } else {
                    ServiceError::invalid("body", rejection.body_text())
                }
            })?;
        json_object(&bytes).map(Body)
    }
}

/// Decodes a request body that must be a JSON object (see `Body`). A number written with a
/// zero fraction (`8080.0`) is the same number as `8080` in JSON and to the API document's
/// `integer`, so integer fields take it too; serde alone would refuse it.
pub fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ServiceError::invalid("body", "the body must be a JSON object").into());
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ServiceError::invalid("body", format!("the body is not valid JSON: {e}")))?;
    whole_numbers_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let what = if at == "." { "body".to_string() } else { at };
        ServiceError::invalid("body", format!("{what}: {}", e.into_inner())).into()
    })
}

/// Rewrites every float with no fractional part that an `i64` or `u64` holds exactly as that
/// integer.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // Within ±2^53 every integer is exact as a float; past it, leave the float.
                const EXACT: f64 = 9_007_199_254_740_992.0;
                if f.abs() <= EXACT {
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    *n = i.into();
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// `application/json` or an `application/*+json` type, parameters allowed (as axum's `Json`).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Pair {
        a: Option<u8>,
        b: Option<u8>,
    }

    #[test]
    fn body_refuses_a_struct_written_as_an_array() {
        // serde alone reads `[null, null]` as `Pair { a: None, b: None }`.
        assert!(serde_json::from_slice::<Pair>(b"[null, null]").is_ok());
        for body in [&b"[null, null]"[..], b" []", b"null", b"\"x\"", b"3", b""] {
            let Err(ApiError(ServiceError::InvalidInput { field, .. })) = json_object::<Pair>(body)
            else {
                panic!("{:?} was accepted", String::from_utf8_lossy(body));
            };
            assert_eq!(field, "body");
        }
        assert!(json_object::<Pair>(b" \n{\"a\": 1}").is_ok());
    }

    #[test]
    fn integer_fields_take_whole_numbers_written_as_floats() {
        let p: Pair = json_object(b"{\"a\": 200.0, \"b\": 2e1}").expect("whole numbers");
        assert_eq!((p.a, p.b), (Some(200), Some(20)));
        for bad in [&b"{\"a\": 1.5}"[..], b"{\"a\": 256.0}", b"{\"a\": -1.0}"] {
            let Err(ApiError(ServiceError::InvalidInput { message, .. })) =
                json_object::<Pair>(bad)
            else {
                panic!("{:?} was accepted", String::from_utf8_lossy(bad));
            };
            assert!(message.starts_with("a: "), "{message}");
        }
    }

    #[test]
    fn json_content_types() {
        let with = |v: &'static str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!is_json(&axum::http::HeaderMap::new()));
    }
}
