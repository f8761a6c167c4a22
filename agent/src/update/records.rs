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
    /// Until then (RFC 3339) the device installs and reboots nothing by itself (checks go
    /// on); set with `pause_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<String>,
}

impl UpdatePolicy {
    /// A device claimed before the claim carried an update choice: nothing automatic.
    pub fn default_for(channel: &str) -> Self {
        UpdatePolicy {
            channel: channel.to_string(),
            auto_install: false,
            reboot: RebootPolicy::Manual,
            maintenance_window: MaintenanceWindow {
                start: "03:00".into(),
                end: "05:00".into(),
            },
            paused_until: None,
        }
    }

    /// What a claim stores (docs/updates.md, "Automatic by default"): `automatic` installs
    /// and reboots in the window, else the device only checks and asks.
    pub fn for_claim(channel: &str, automatic: bool, window: MaintenanceWindow) -> Self {
        UpdatePolicy {
            auto_install: automatic,
            reboot: if automatic {
                RebootPolicy::MaintenanceWindow
            } else {
                RebootPolicy::Manual
            },
            maintenance_window: window,
            ..Self::default_for(channel)
        }
    }

    /// Whether automatic installs and reboots are paused at `now`.
    pub fn paused_at(&self, now: time::OffsetDateTime) -> bool {
        self.paused_until
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .is_some_and(|until| now < until)
    }
}

/// The update choice of the claim (`POST /api/v1/setup/claim`, field `updates`): the wizard's
/// "Keep Hearth up to date automatically" or "Ask me first".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimUpdates {
    /// Install updates and reboot in the maintenance window by itself (false: "Ask me first",
    /// the device checks daily and waits for the admin).
    pub automatic: bool,
    /// Default 03:00–05:00 device time.
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Default the image's `update.channel`; one of the channels the device knows.
    pub channel: Option<String>,
}

/// A maintenance window's problem, if any: both ends `HH:MM`, not empty (start = end).
/// Two clock times are never more than a day apart, so a longer window cannot be written.
pub fn window_problem(w: &MaintenanceWindow) -> Option<&'static str> {
    let (Some(s), Some(e)) = (super::minutes(&w.start), super::minutes(&w.end)) else {
        return Some("Give start and end as HH:MM (00:00–23:59).");
    };
    (s == e).then_some("The window's start and end must differ (an empty window never comes).")
}

/// `PATCH /api/v1/update/policy`: any subset of the policy.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    pub channel: Option<String>,
    pub auto_install: Option<bool>,
    pub reboot: Option<RebootPolicy>,
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Pause automatic installs and reboots for this many days (1–90) from now; 0 resumes.
    #[schema(maximum = 90)]
    pub pause_days: Option<u32>,
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
    // The initramfs refused a slot at boot (dm-verity) and the device started the other
    // one (`update::refused`).
    Refused,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: &str, end: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            start: start.into(),
            end: end.into(),
        }
    }

    #[test]
    fn a_claim_chooses_automatic_or_ask_first() {
        let auto = UpdatePolicy::for_claim("stable", true, window("03:00", "05:00"));
        assert!(auto.auto_install);
        assert_eq!(auto.reboot, RebootPolicy::MaintenanceWindow);
        let ask = UpdatePolicy::for_claim("beta", false, window("01:00", "02:00"));
        assert!(!ask.auto_install);
        assert_eq!(ask.reboot, RebootPolicy::Manual);
        assert_eq!(
            (ask.channel.as_str(), ask.maintenance_window.start.as_str()),
            ("beta", "01:00")
        );
        // Devices claimed before: nothing automatic.
        assert!(!UpdatePolicy::default_for("stable").auto_install);
    }

    #[test]
    fn windows_must_be_clock_times_and_not_empty() {
        assert_eq!(window_problem(&window("03:00", "05:00")), None);
        assert_eq!(
            window_problem(&window("23:00", "01:00")),
            None,
            "wraps midnight"
        );
        for (s, e) in [
            ("03:00", "03:00"),
            ("3:00", "05:00"),
            ("03:00", "24:00"),
            ("", ""),
        ] {
            assert!(window_problem(&window(s, e)).is_some(), "{s}–{e}");
        }
    }

    #[test]
    fn a_pause_ends_by_itself() {
        let t = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .expect("time")
        };
        let mut p = UpdatePolicy::default_for("stable");
        assert!(!p.paused_at(t("2026-01-01T00:00:00Z")));
        p.paused_until = Some("2026-01-08T00:00:00Z".into());
        assert!(p.paused_at(t("2026-01-07T23:59:59Z")));
        assert!(!p.paused_at(t("2026-01-08T00:00:00Z")));
        // Stored policies from before the pause existed still read.
        let old: UpdatePolicy = serde_json::from_str(
            r#"{"channel":"stable","auto_install":true,"reboot":"manual","maintenance_window":{"start":"03:00","end":"05:00"}}"#,
        )
        .expect("old policy");
        assert_eq!(old.paused_until, None);
    }
}
