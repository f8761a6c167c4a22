//! The agent's service-level error: every failure a request can meet, typed. The HTTP layer maps
//! each variant to a status and a machine-readable code in one exhaustive `match`
//! (`api::error`), so no handler invents its own.

use crate::apps::catalog::CatalogError;
use crate::apps::lifecycle::AppError;
use crate::store::StoreError;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error("a one-time code from the authenticator app is required")]
    TotpRequired,
    #[error("the one-time code is not valid")]
    TotpInvalid,
    #[error("this action is not allowed for your account")]
    Forbidden,
    #[error("missing or wrong CSRF token")]
    CsrfInvalid,
    #[error("too many attempts")]
    Throttled { retry_after: Duration },
    #[error("the setup code is not valid")]
    SetupCodeInvalid,
    #[error("the device has already been claimed")]
    AlreadyClaimed,
    #[error("{field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    /// A well-formed value naming something this device does not have (a time zone missing
    /// from its zone database, a user that does not exist, a folder that holds no store). The
    /// request matches the document; the device's state refuses it, so 422, not 400.
    #[error("{field}: {message}")]
    UnknownName {
        field: &'static str,
        message: String,
    },
    /// Text in an address field that is not a usable address of its family (the API document
    /// says "string"; the address rules are the agent's). 422.
    #[error("{field}: {message}")]
    InvalidAddress {
        field: &'static str,
        message: String,
    },
    #[error("a user named {0} already exists")]
    UserExists(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("at least one administrator must remain")]
    LastAdmin,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Files(#[from] crate::files::FsError),
    #[error(transparent)]
    System(#[from] crate::system::SystemError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error(transparent)]
    Disks(#[from] crate::disks::DiskError),
    #[error("{0}")]
    Unavailable(String),
    #[error("the upload continues at byte {received}")]
    UploadOffset { received: u64 },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A `docker run` line the converter refuses (the request itself was well formed).
    #[error("command: {0}")]
    Convert(#[from] crate::apps::convert::ConvertError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Update(#[from] crate::update::UpdateError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ServiceError::InvalidInput {
            field,
            message: message.into(),
        }
    }
}

impl From<crate::validate::TimezoneError> for ServiceError {
    fn from(e: crate::validate::TimezoneError) -> Self {
        use crate::validate::TimezoneError as T;
        match e {
            T::Grammar(_) => ServiceError::invalid("timezone", e.to_string()),
            T::Unknown(_) => ServiceError::UnknownName {
                field: "timezone",
                message: e.to_string(),
            },
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
