//! What the update service keeps in the store and shows in the API (`GET /api/v1/update`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// When a finished install reboots into the new system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RebootPolicy {
    /// Wait for `POST /api/v1/update/reboot` (the dashboard's prompt).
    Manual,
    /// Reboot as soon as the install is done.
    Immediately,
    /// Reboot in the next maintenance window.
    MaintenanceWindow,
}

/// Daily window, `HH:MM` in the device's local time; may wrap midnight (`23:00`–`01:00`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdatePolicy {
    pub channel: String,
    /// Install available updates by itself in the maintenance window.
    pub auto_install: bool,
    pub reboot: RebootPolicy,
    pub maintenance_window: MaintenanceWindow,
}

impl UpdatePolicy {
    pub fn default_for(channel: &str) -> Self {
        UpdatePolicy {
            channel: channel.to_string(),
            auto_install: false,
            reboot: RebootPolicy::Manual,
            maintenance_window: MaintenanceWindow {
                start: "03:00".into(),
                end: "05:00".into(),
            },
        }
    }
}

/// `PATCH /api/v1/update/policy`: any subset of the policy.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    pub channel: Option<String>,
    pub auto_install: Option<bool>,
    pub reboot: Option<RebootPolicy>,
    pub maintenance_window: Option<MaintenanceWindow>,
}

/// What the device remembers of the indexes it accepted (anti-replay, key-list floor), per
/// channel (a channel switch starts a new serial sequence).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrustRecord {
    pub keylist_floor: u64,
    pub seen: std::collections::BTreeMap<String, hearth_ota::index::SeenIndex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    UpToDate,
    Available,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UpdateErrorInfo {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LastCheck {
    /// RFC 3339.
    pub at: String,
    pub result: CheckResult,
    pub error: Option<UpdateErrorInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AvailableUpdate {
    pub version: String,
    pub version_number: u64,
    /// Size of the full bundle in bytes (a delta downloads less).
    pub size: u64,
    pub notes: String,
    /// When the index offering it was published (RFC 3339).
    pub published: String,
}

/// The last check, with what install needs of the accepted index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub last: LastCheck,
    pub channel: String,
    pub available: Option<AvailableUpdate>,
    pub latest: Option<hearth_ota::index::Latest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallPhase {
    /// Writing the inactive slot (a record left in this phase at start: interrupted).
    Writing,
    /// Written, verified and set up as the next trial boot.
    Installed,
}

/// Written before the install touches a slot; removed once the outcome is in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    pub version: String,
    pub version_number: u64,
    pub from_version: String,
    pub slot: String,
    pub started: String,
    pub phase: InstallPhase,
    pub downloaded_bytes: u64,
    pub reused_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    Installed,
    Committed,
    RolledBack,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub id: u64,
    /// RFC 3339.
    pub at: String,
    pub kind: HistoryKind,
    pub from_version: String,
    pub to_version: String,
    pub reason: Option<String>,
    /// Machine-readable code of a failure (`update_bundle_invalid`, …).
    pub code: Option<String>,
    pub downloaded_bytes: u64,
    pub reused_bytes: u64,
}
