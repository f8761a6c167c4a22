//! Why an update operation failed, with the machine-readable code the API, failed jobs and the
//! history carry (the codes are part of the API: keep them).

use super::records::UpdateErrorInfo;
use crate::store::StoreError;
use hearth_ota::format::VerifyError;

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("updates are not configured on this device: {0}")]
    NotConfigured(String),
    #[error("the update repository cannot be reached: {0}")]
    RepoUnreachable(String),
    #[error("the update index was refused: {0}")]
    IndexInvalid(VerifyError),
    #[error("an update check or install is already running")]
    Busy,
    #[error("no update is available; check for updates first")]
    NotAvailable,
    #[error("the installed update is on trial and not committed yet; wait for the health gate")]
    TrialPending,
    #[error("no installed update is waiting for a reboot")]
    NoPendingReboot,
    #[error("the update bundle was refused: {0}")]
    BundleInvalid(VerifyError),
    #[error("downloading the update failed: {0}")]
    Download(String),
    #[error("writing the update failed: {0}")]
    Storage(String),
    #[error("boot control: {0}")]
    Boot(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl UpdateError {
    /// The machine-readable code (API errors, failed jobs, history).
    pub fn code(&self) -> &'static str {
        use UpdateError as U;
        match self {
            U::NotConfigured(_) => "update_not_configured",
            U::RepoUnreachable(_) => "update_repo_unreachable",
            U::IndexInvalid(_) => "update_index_invalid",
            U::Busy => "update_busy",
            U::NotAvailable => "update_not_available",
            U::TrialPending => "update_trial_pending",
            U::NoPendingReboot => "update_no_pending_reboot",
            U::BundleInvalid(_) => "update_bundle_invalid",
            U::Download(_) => "update_download_failed",
            U::Storage(_) => "update_storage_failed",
            U::Boot(_) => "update_boot_failed",
            U::Store(_) | U::Internal(_) => "internal",
        }
    }

    pub fn info(&self) -> UpdateErrorInfo {
        let mut message = self.to_string();
        if let Some(first) = message.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        UpdateErrorInfo {
            code: self.code().into(),
            message,
        }
    }
}

pub(super) fn from_install(e: hearth_ota::install::InstallError) -> UpdateError {
    use hearth_ota::install::InstallError as I;
    match e {
        I::Verify(v) => UpdateError::BundleInvalid(v),
        I::ReadBack { .. } | I::Storage { .. } | I::TooSmall { .. } | I::MissingTarget(_) => {
            UpdateError::Storage(e.to_string())
        }
        I::Source(s) => match s {
            hearth_ota::source::SourceError::Truncated { needed, have } => {
                UpdateError::BundleInvalid(VerifyError::Truncated { needed, have })
            }
            other => UpdateError::Download(other.to_string()),
        },
        I::Boot(b) => UpdateError::Boot(b.to_string()),
        I::TargetIsPrimary(_) => UpdateError::Boot(e.to_string()),
    }
}

pub(super) fn from_open(e: VerifyError) -> UpdateError {
    match e {
        VerifyError::Source(s) => UpdateError::Download(s),
        other => UpdateError::BundleInvalid(other),
    }
}

pub(super) fn boot_err(e: hearth_ota::boot::BootError) -> UpdateError {
    UpdateError::Boot(e.to_string())
}
