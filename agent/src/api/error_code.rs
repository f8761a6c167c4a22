//! Every machine-readable error code the API answers with, as one enum. The OpenAPI document
//! lists them as the `ErrorCode` enum, so the dashboard's error handling is checked against the
//! same list by its compiler. A code's string never changes once published (the dashboard and
//! scripts match on it); adding a code is one line in the list below.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal,)+) => {
        /// The stable machine-readable code of an error answer (`error.code`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as it travels in `error.code` (serde's snake_case of the variant; a
            /// test checks the two agree).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }
        }
    };
}

error_codes! {
    // Sessions, accounts and the claim.
    Unauthenticated = "unauthenticated",
    InvalidCredentials = "invalid_credentials",
    TotpRequired = "totp_required",
    TotpInvalid = "totp_invalid",
    Forbidden = "forbidden",
    CsrfInvalid = "csrf_invalid",
    Throttled = "throttled",
    SetupCodeInvalid = "setup_code_invalid",
    AlreadyClaimed = "already_claimed",
    UserExists = "user_exists",
    LastAdmin = "last_admin",
    // Requests the API refuses whatever they are about.
    InvalidInput = "invalid_input",
    UnknownName = "unknown_name",
    InvalidAddress = "invalid_address",
    NotFound = "not_found",
    Conflict = "conflict",
    TooLarge = "too_large",
    EditConflict = "edit_conflict",
    MethodNotAllowed = "method_not_allowed",
    NotAcceptable = "not_acceptable",
    LengthRequired = "length_required",
    UriTooLong = "uri_too_long",
    UnsupportedMediaType = "unsupported_media_type",
    RangeNotSatisfiable = "range_not_satisfiable",
    /// A status the agent has no code of its own for.
    HttpError = "http_error",
    // Files.
    InvalidPath = "invalid_path",
    Exists = "exists",
    WrongKind = "wrong_kind",
    NotEmpty = "not_empty",
    CrossDevice = "cross_device",
    OutsideRoot = "outside_root",
    UploadOffset = "upload_offset",
    // System services and network.
    SystemRefused = "system_refused",
    NetworkUnavailable = "network_unavailable",
    NetworkRefused = "network_refused",
    NoConnection = "no_connection",
    NoWifi = "no_wifi",
    PasswordRequired = "password_required",
    WifiAuthFailed = "wifi_auth_failed",
    WifiUnsupported = "wifi_unsupported",
    ActivationFailed = "activation_failed",
    ChangePending = "change_pending",
    // Disks.
    SystemDisk = "system_disk",
    InUse = "in_use",
    // Apps, stores and the catalog.
    InvalidCompose = "invalid_compose",
    /// `details` lists the findings (`kind: findings`).
    ConsentRequired = "consent_required",
    AppExists = "app_exists",
    NameClash = "name_clash",
    UnsupportedArchitecture = "unsupported_architecture",
    AppUnhealthy = "app_unhealthy",
    UpdateRolledBack = "update_rolled_back",
    HostPathRefused = "host_path_refused",
    /// An app held stopped; when it waits for consent, `details` lists the findings.
    AppHeld = "app_held",
    RuntimeUnavailable = "runtime_unavailable",
    ImagePullFailed = "image_pull_failed",
    RuntimeRefused = "runtime_refused",
    InvalidCommand = "invalid_command",
    NotAStore = "not_a_store",
    InvalidUrl = "invalid_url",
    ImageUnavailable = "image_unavailable",
    // System updates.
    UpdateNotConfigured = "update_not_configured",
    UpdateRepoUnreachable = "update_repo_unreachable",
    UpdateIndexInvalid = "update_index_invalid",
    UpdateBusy = "update_busy",
    UpdateNotAvailable = "update_not_available",
    UpdateTrialPending = "update_trial_pending",
    UpdateNoPendingReboot = "update_no_pending_reboot",
    UpdateBundleInvalid = "update_bundle_invalid",
    UpdateDownloadFailed = "update_download_failed",
    UpdateStorageFailed = "update_storage_failed",
    UpdateBootFailed = "update_boot_failed",
    // Server errors (the body carries a request id).
    Internal = "internal",
    Unavailable = "unavailable",
    BadGateway = "bad_gateway",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;
    use std::collections::BTreeSet;

    #[test]
    fn every_code_round_trips_through_json() {
        let mut seen = BTreeSet::new();
        for &code in ErrorCode::ALL {
            let json = serde_json::to_value(code).expect("serialize");
            assert_eq!(json, code.as_str(), "{code:?}");
            let back: ErrorCode = serde_json::from_value(json).expect("deserialize");
            assert_eq!(back, code);
            assert!(seen.insert(code.as_str()), "{code:?} repeats a string");
            let snake = code
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_');
            assert!(snake, "{code:?}: codes are snake_case");
        }
    }

    #[test]
    fn the_document_lists_exactly_the_codes() {
        let doc = crate::api::openapi();
        let listed: BTreeSet<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .expect("ErrorCode is an enum in the document")
            .iter()
            .map(|v| v.as_str().expect("a string"))
            .collect();
        let ours: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours);
        assert_eq!(
            doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
    }
}
