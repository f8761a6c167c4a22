//! The one mapping from service errors to HTTP: status, machine-readable code and message, in
//! the shape `{"error":{"code":"...","message":"..."}}`. 5xx bodies never carry internals: they
//! carry a request id, and the details go to the log under the same id.
//!
//! Errors raised outside the handlers (axum's extractor rejections, unknown methods, body
//! limits) are rewritten into the same shape by `json_errors`, so no API answer is plain text.

pub use super::error_code::ErrorCode;
use crate::apps::policy::Finding;
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
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// For server errors: the id under which the details are in the device's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
    /// Data about the error for the client to act on, by kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub details: Option<ErrorDetails>,
}

/// Typed data an error answer can carry, one variant per `kind`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ErrorDetails {
    /// The policy findings that need an administrator's consent (`consent_required`, and
    /// `app_held` for an app held until someone consents): resend with their ids in `consent`.
    Findings { findings: Vec<Finding> },
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
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    detailed_response(status, code, message, None)
}

fn detailed_response(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    details: Option<ErrorDetails>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: message.into(),
            request_id: None,
            details,
        },
    };
    (status, Json(body)).into_response()
}

/// A server error's answer: a fixed message for its status and the request's id (the one its
/// span carries, see `request_id`); `details` (which may name libraries, paths, D-Bus errors)
/// goes only to the log, under that id.
pub fn server_error(
    status: StatusCode,
    code: ErrorCode,
    details: &dyn std::fmt::Display,
) -> Response {
    let request_id = super::request_id::current();
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
            code,
            message: message.into(),
            request_id: Some(request_id),
            details: None,
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
fn code_for_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidInput,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::NOT_ACCEPTABLE => ErrorCode::NotAcceptable,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::LENGTH_REQUIRED => ErrorCode::LengthRequired,
        StatusCode::PRECONDITION_FAILED => ErrorCode::EditConflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::URI_TOO_LONG => ErrorCode::UriTooLong,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::RANGE_NOT_SATISFIABLE => ErrorCode::RangeNotSatisfiable,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::Throttled,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        StatusCode::BAD_GATEWAY => ErrorCode::BadGateway,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::HttpError,
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

fn system_status(error: &crate::system::SystemError) -> (StatusCode, ErrorCode) {
    use crate::system::SystemError as S;
    match error {
        S::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
        S::Refused { .. } => (StatusCode::CONFLICT, ErrorCode::SystemRefused),
        S::UnitNotManaged(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
        S::ActionNotAllowed { .. } => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
        S::Journal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
    }
}

fn network_status(error: &crate::network::NetworkError) -> (StatusCode, ErrorCode) {
    use crate::network::NetworkError as N;
    match error {
        N::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NetworkUnavailable,
        ),
        N::Refused(_) => (StatusCode::CONFLICT, ErrorCode::NetworkRefused),
        N::NoInterface(_) | N::NoNetwork(_) | N::NotSaved(_) | N::NoCheckpoint(_) => {
            (StatusCode::NOT_FOUND, ErrorCode::NotFound)
        }
        N::NoConnection(_) => (StatusCode::CONFLICT, ErrorCode::NoConnection),
        N::NoWifi => (StatusCode::NOT_FOUND, ErrorCode::NoWifi),
        // The request was well formed; this network needs what it did not give.
        N::PasswordRequired(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PasswordRequired,
        ),
        N::WrongPassword(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WifiAuthFailed),
        N::Unsupported(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WifiUnsupported),
        N::ActivationFailed(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ActivationFailed,
        ),
        N::ChangePending => (StatusCode::CONFLICT, ErrorCode::ChangePending),
    }
}

fn files_status(error: &crate::files::FsError) -> (StatusCode, ErrorCode) {
    use crate::files::FsError as F;
    match error {
        F::Path(_) | F::IntoItself(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidPath),
        F::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
        F::Exists(_) => (StatusCode::CONFLICT, ErrorCode::Exists),
        F::NotADirectory(_) | F::IsADirectory(_) | F::NotRegular(_) | F::HardLinked(_) => {
            (StatusCode::CONFLICT, ErrorCode::WrongKind)
        }
        F::NotEmpty(_) => (StatusCode::CONFLICT, ErrorCode::NotEmpty),
        F::CrossDevice(_) => (StatusCode::CONFLICT, ErrorCode::CrossDevice),
        F::Escapes(_) => (StatusCode::FORBIDDEN, ErrorCode::OutsideRoot),
        F::Reserved(_) | F::PermissionDenied(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
        F::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use ServiceError as E;
        let (status, code) = match &self.0 {
            E::Unauthenticated => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
            E::InvalidCredentials => (StatusCode::UNAUTHORIZED, ErrorCode::InvalidCredentials),
            E::TotpRequired => (StatusCode::UNAUTHORIZED, ErrorCode::TotpRequired),
            // A well-formed code that is not the right one: the request matches the document.
            E::TotpInvalid => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::TotpInvalid),
            E::Forbidden => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            E::CsrfInvalid => (StatusCode::FORBIDDEN, ErrorCode::CsrfInvalid),
            E::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::Throttled),
            E::SetupCodeInvalid => (StatusCode::FORBIDDEN, ErrorCode::SetupCodeInvalid),
            E::AlreadyClaimed => (StatusCode::CONFLICT, ErrorCode::AlreadyClaimed),
            E::InvalidInput { .. } => (StatusCode::BAD_REQUEST, ErrorCode::InvalidInput),
            E::UnknownName { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::UnknownName),
            E::InvalidAddress { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidAddress)
            }
            E::UserExists(_) => (StatusCode::CONFLICT, ErrorCode::UserExists),
            E::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            E::LastAdmin => (StatusCode::CONFLICT, ErrorCode::LastAdmin),
            E::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            E::Files(fs) => files_status(fs),
            E::System(sys) => system_status(sys),
            E::Network(net) => network_status(net),
            E::Disks(d) => match d {
                crate::disks::DiskError::NotFound(_) => {
                    (StatusCode::NOT_FOUND, ErrorCode::NotFound)
                }
                crate::disks::DiskError::SystemDisk(_) => {
                    (StatusCode::FORBIDDEN, ErrorCode::SystemDisk)
                }
                crate::disks::DiskError::InUse(..) => (StatusCode::CONFLICT, ErrorCode::InUse),
                crate::disks::DiskError::Invalid(_) => {
                    (StatusCode::BAD_REQUEST, ErrorCode::InvalidInput)
                }
                crate::disks::DiskError::Tool { .. } => {
                    (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
                }
            },
            E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            E::UploadOffset { .. } => (StatusCode::CONFLICT, ErrorCode::UploadOffset),
            E::PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, ErrorCode::EditConflict),
            E::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
            E::App(e) => app_status(e),
            E::Catalog(e) => catalog_status(e),
            E::Convert(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidCommand),
            E::Update(e) => update_status(e),
            E::Store(_) | E::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
            }
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
        let mut response = detailed_response(status, code, &text, details(&self.0));
        if let E::Throttled { retry_after } = &self.0
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The typed `details` of an error, for the kinds that have them.
fn details(e: &ServiceError) -> Option<ErrorDetails> {
    use crate::apps::lifecycle::AppError as A;
    use crate::apps::record::Hold;
    let findings = match e {
        ServiceError::App(A::ConsentRequired(findings)) => findings,
        ServiceError::App(A::Held { hold, .. }) => match hold.as_ref() {
            Hold::Unconsented { findings, .. } => findings,
            Hold::Refused { .. } => return None,
        },
        _ => return None,
    };
    Some(ErrorDetails::Findings {
        findings: findings.clone(),
    })
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

fn app_status(e: &crate::apps::lifecycle::AppError) -> (StatusCode, ErrorCode) {
    use crate::apps::lifecycle::AppError as A;
    use crate::apps::runtime::RuntimeError as R;
    match e {
        // A compose file, a host path or an architecture the device refuses: the request
        // matched the document (a compose file is any string there), its content did not fit.
        A::Plan(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidCompose),
        A::ConsentRequired(_) => (StatusCode::CONFLICT, ErrorCode::ConsentRequired),
        A::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
        A::AlreadyInstalled(_) => (StatusCode::CONFLICT, ErrorCode::AppExists),
        A::NameClash(_) => (StatusCode::CONFLICT, ErrorCode::NameClash),
        A::Architecture(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::UnsupportedArchitecture,
        ),
        A::Unhealthy { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::AppUnhealthy),
        A::RolledBack { .. } => (StatusCode::CONFLICT, ErrorCode::UpdateRolledBack),
        A::Host(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::HostPathRefused),
        A::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        A::Held { .. } => (StatusCode::CONFLICT, ErrorCode::AppHeld),
        A::Runtime(r) => match r {
            R::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::RuntimeUnavailable,
            ),
            R::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            R::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            R::Pull { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::ImagePullFailed),
            R::Engine(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::RuntimeRefused),
        },
    }
}

fn update_status(e: &crate::update::UpdateError) -> (StatusCode, ErrorCode) {
    use crate::update::UpdateError as U;
    use ErrorCode as C;
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
    // The same codes as `UpdateError::code` (jobs and history keep them as strings); a test
    // checks the two agree.
    let code = match e {
        U::NotConfigured(_) => C::UpdateNotConfigured,
        U::RepoUnreachable(_) => C::UpdateRepoUnreachable,
        U::IndexInvalid(_) => C::UpdateIndexInvalid,
        U::Busy => C::UpdateBusy,
        U::NotAvailable => C::UpdateNotAvailable,
        U::TrialPending => C::UpdateTrialPending,
        U::NoPendingReboot => C::UpdateNoPendingReboot,
        U::BundleInvalid(_) => C::UpdateBundleInvalid,
        U::Download(_) => C::UpdateDownloadFailed,
        U::Storage(_) => C::UpdateStorageFailed,
        U::Boot(_) => C::UpdateBootFailed,
        U::Store(_) | U::Internal(_) => C::Internal,
    };
    (status, code)
}

fn catalog_status(e: &crate::apps::catalog::CatalogError) -> (StatusCode, ErrorCode) {
    use crate::apps::catalog::CatalogError as C;
    match e {
        C::StoreNotFound(_) | C::AppNotFound { .. } | C::ImageNotFound(_) => {
            (StatusCode::NOT_FOUND, ErrorCode::NotFound)
        }
        C::Invalid(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidInput),
        C::NotAStore { .. } => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::NotAStore),
        C::BadUrl(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidUrl),
        C::Exists(_) | C::Configured(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
        C::Save(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        C::Media(_) => (StatusCode::BAD_GATEWAY, ErrorCode::ImageUnavailable),
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
    fn update_errors_answer_their_own_codes() {
        use crate::update::UpdateError as U;
        use hearth_ota::VerifyError;
        let errors = [
            U::NotConfigured(String::new()),
            U::RepoUnreachable(String::new()),
            U::IndexInvalid(VerifyError::Truncated { needed: 2, have: 1 }),
            U::Busy,
            U::NotAvailable,
            U::TrialPending,
            U::NoPendingReboot,
            U::BundleInvalid(VerifyError::Truncated { needed: 2, have: 1 }),
            U::Download(String::new()),
            U::Storage(String::new()),
            U::Boot(String::new()),
            U::Store(crate::store::StoreError::Corrupt {
                table: "t",
                key: String::new(),
                message: String::new(),
            }),
            U::Internal(String::new()),
        ];
        for e in errors {
            assert_eq!(update_status(&e).1.as_str(), e.code(), "{e:?}");
        }
    }

    #[test]
    fn consent_findings_travel_as_details() {
        use crate::apps::lifecycle::AppError;
        use crate::apps::policy::{Finding, FindingKind};
        let finding = Finding {
            id: "privileged:web".into(),
            kind: FindingKind::Privileged,
            service: "web".into(),
            subject: String::new(),
            message: "runs privileged".into(),
            app: None,
        };
        let error = ServiceError::App(AppError::ConsentRequired(vec![finding.clone()]));
        let Some(ErrorDetails::Findings { findings }) = details(&error) else {
            panic!("no findings in the details");
        };
        assert_eq!(findings, vec![finding]);
        assert!(details(&ServiceError::LastAdmin).is_none());
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
