//! The device itself: systemd units, power, host name, time zone and NTP — over D-Bus to
//! systemd1, login1, hostname1 and timedate1 — and the journal through `journalctl`.
//!
//! [`SystemControl`] is the boundary, named in domain verbs; [`dbus::DbusSystem`] is the real
//! adapter. Which units may be touched is decided here ([`UnitPolicy`]), never by the caller.

pub mod bus;
pub mod dbus;
pub mod fake;
pub mod journal;
pub mod settings;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("the system bus is not available: {0}")]
    Unavailable(String),
    #[error("{service} refused: {message}")]
    Refused {
        service: &'static str,
        message: String,
    },
    #[error("unit {0} is not one Hearth manages")]
    UnitNotManaged(String),
    #[error("{action} is not allowed for {unit}")]
    ActionNotAllowed { unit: String, action: &'static str },
    #[error("journal: {0}")]
    Journal(String),
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct UnitStatus {
    pub name: String,
    pub description: String,
    /// `loaded`, `not-found`, ...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, ...
    pub active_state: String,
    pub sub_state: String,
    /// Actions an admin may take on this unit.
    pub actions: Vec<UnitAction>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnitAction {
    Start,
    Stop,
    Restart,
}

impl UnitAction {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "start" => Some(UnitAction::Start),
            "stop" => Some(UnitAction::Stop),
            "restart" => Some(UnitAction::Restart),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UnitAction::Start => "start",
            UnitAction::Stop => "stop",
            UnitAction::Restart => "restart",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Reboot,
    PowerOff,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct TimeSettings {
    pub timezone: String,
    pub ntp: bool,
    pub ntp_synchronized: bool,
    /// Microseconds since the Unix epoch, as the device sees it.
    pub time_usec: u64,
}

/// The operating-system boundary for the device's own settings and services.
pub trait SystemControl: Send + Sync + std::fmt::Debug {
    fn units<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<UnitStatus>, SystemError>>;
    fn unit_action<'a>(
        &'a self,
        unit: &'a str,
        action: UnitAction,
    ) -> BoxFuture<'a, Result<(), SystemError>>;
    fn power(&self, action: PowerAction) -> BoxFuture<'_, Result<(), SystemError>>;
    /// Reboots as a boot backend asked (`hearth_ota::boot::BootControl::reboot_request`): a
    /// plain reboot, or one with a parameter for the firmware (logind `SetRebootParameter`,
    /// the Raspberry Pi's `0 tryboot`).
    fn reboot<'a>(
        &'a self,
        request: &'a hearth_ota::boot::RebootRequest,
    ) -> BoxFuture<'a, Result<(), SystemError>>;
    fn hostname(&self) -> BoxFuture<'_, Result<String, SystemError>>;
    fn set_hostname<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), SystemError>>;
    fn time(&self) -> BoxFuture<'_, Result<TimeSettings, SystemError>>;
    fn set_timezone<'a>(&'a self, zone: &'a str) -> BoxFuture<'a, Result<(), SystemError>>;
    fn set_ntp(&self, on: bool) -> BoxFuture<'_, Result<(), SystemError>>;
    /// Starts a transient mount unit (`What`, `Where`, `Type`, `Options`).
    fn start_mount<'a>(
        &'a self,
        plan: &'a crate::disks::mount::MountPlan,
    ) -> BoxFuture<'a, Result<(), SystemError>>;
    /// Stops a mount unit Hearth started.
    fn stop_mount<'a>(&'a self, unit: &'a str) -> BoxFuture<'a, Result<(), SystemError>>;
}

/// Which units an admin may see and act on.
#[derive(Debug, Clone)]
pub struct UnitPolicy {
    managed: Vec<String>,
    /// Units that may only be restarted (stopping them would cut the dashboard off).
    restart_only: Vec<String>,
}

pub const DEFAULT_MANAGED_UNITS: [&str; 8] = [
    "hearth-agent.service",
    "docker.service",
    "NetworkManager.service",
    "avahi-daemon.service",
    "systemd-timesyncd.service",
    "systemd-journald.service",
    "ssh.service",
    "smbd.service",
];

impl Default for UnitPolicy {
    fn default() -> Self {
        Self::new(
            DEFAULT_MANAGED_UNITS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    }
}

impl UnitPolicy {
    pub fn new(managed: Vec<String>) -> Self {
        Self {
            managed,
            restart_only: vec![
                "hearth-agent.service".into(),
                "systemd-journald.service".into(),
                "NetworkManager.service".into(),
            ],
        }
    }

    pub fn managed(&self) -> &[String] {
        &self.managed
    }

    /// Checks the unit name's grammar and that Hearth manages it.
    pub fn check_unit(&self, unit: &str) -> Result<(), SystemError> {
        let grammar = !unit.is_empty()
            && unit.len() <= 128
            && unit
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@._-".contains(&b))
            && !unit.starts_with('-');
        if grammar && self.managed.iter().any(|m| m == unit) {
            Ok(())
        } else {
            Err(SystemError::UnitNotManaged(
                unit.chars().take(128).collect(),
            ))
        }
    }

    pub fn allowed_actions(&self, unit: &str) -> Vec<UnitAction> {
        if self.restart_only.iter().any(|u| u == unit) {
            vec![UnitAction::Restart]
        } else {
            vec![UnitAction::Start, UnitAction::Stop, UnitAction::Restart]
        }
    }

    pub fn check_action(&self, unit: &str, action: UnitAction) -> Result<(), SystemError> {
        self.check_unit(unit)?;
        if self.allowed_actions(unit).contains(&action) {
            Ok(())
        } else {
            Err(SystemError::ActionNotAllowed {
                unit: unit.to_string(),
                action: action.as_str(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_managed_units_with_sane_names_pass() {
        let policy = UnitPolicy::default();
        assert!(policy.check_unit("docker.service").is_ok());
        for bad in [
            "sshd.service",
            "docker.service; reboot",
            "../docker.service",
            "",
            "-docker.service",
            "docker service",
        ] {
            assert!(policy.check_unit(bad).is_err(), "{bad}");
        }
        assert!(
            policy
                .check_action("docker.service", UnitAction::Stop)
                .is_ok()
        );
        assert!(matches!(
            policy.check_action("hearth-agent.service", UnitAction::Stop),
            Err(SystemError::ActionNotAllowed { .. })
        ));
        assert!(
            policy
                .check_action("hearth-agent.service", UnitAction::Restart)
                .is_ok()
        );
    }
}
