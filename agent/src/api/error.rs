//! The one mapping from service errors to HTTP: status, machine-readable code and message, in
//! the shape `{"error":{"code":"...","message":"..."}}`. 5xx bodies never carry internals; the
//! details go to the log.

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
        },
    };
    (status, Json(body)).into_response()
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
        N::PasswordRequired(_) => (StatusCode::BAD_REQUEST, "password_required"),
        N::WrongPassword(_) => (StatusCode::UNPROCESSABLE_ENTITY, "wifi_auth_failed"),
        N::Unsupported(_) => (StatusCode::BAD_REQUEST, "wifi_unsupported"),
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
            E::TotpInvalid => (StatusCode::BAD_REQUEST, "totp_invalid"),
            E::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            E::CsrfInvalid => (StatusCode::FORBIDDEN, "csrf_invalid"),
            E::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
            E::SetupCodeInvalid => (StatusCode::FORBIDDEN, "setup_code_invalid"),
            E::AlreadyClaimed => (StatusCode::CONFLICT, "already_claimed"),
            E::InvalidInput { .. } => (StatusCode::BAD_REQUEST, "invalid_input"),
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
            E::Update(e) => update_status(e),
            E::Store(_) | E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = if status.is_server_error()
            && status != StatusCode::SERVICE_UNAVAILABLE
            && status != StatusCode::BAD_GATEWAY
        {
            tracing::error!(error = %self.0, "request failed");
            "Something went wrong on the device. The details are in its log.".to_string()
        } else {
            let mut text = self.0.to_string();
            if let Some(first) = text.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            text
        };
        let mut response = error_response(status, code, &message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let E::Throttled { retry_after } = &self.0
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

fn app_status(e: &crate::apps::lifecycle::AppError) -> (StatusCode, &'static str) {
    use crate::apps::lifecycle::AppError as A;
    use crate::apps::runtime::RuntimeError as R;
    match e {
        A::Plan(_) => (StatusCode::BAD_REQUEST, "invalid_compose"),
        A::ConsentRequired(_) => (StatusCode::CONFLICT, "consent_required"),
        A::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        A::AlreadyInstalled(_) => (StatusCode::CONFLICT, "app_exists"),
        A::NameClash(_) => (StatusCode::CONFLICT, "name_clash"),
        A::Architecture(_) => (StatusCode::BAD_REQUEST, "unsupported_architecture"),
        A::Unhealthy { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "app_unhealthy"),
        A::RolledBack { .. } => (StatusCode::CONFLICT, "update_rolled_back"),
        A::Host(_) => (StatusCode::BAD_REQUEST, "host_path_refused"),
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
        C::Save(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        C::Media(_) => (StatusCode::BAD_GATEWAY, "image_unavailable"),
    }
}

impl From<axum::extract::rejection::JsonRejection> for ServiceError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        ServiceError::invalid("body", rejection.body_text())
    }
}

/// A JSON request body whose rejections use the API's error shape (400 `invalid_input`).
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);
