//! Over-the-air updates on the device: check the repository (on demand and on schedule),
//! accept its signed index, install a bundle into the inactive slot as a detached job, reboot
//! per policy, and after the reboot find out what became of it (committed by the health gate,
//! rolled back by the boot loader, interrupted by a power cut). The update engine itself is
//! the `hearth-ota` library; this module is the device's policy and bookkeeping around it.
//! See docs/updates.md and the "update state machine" in ARCHITECTURE.md.
//!
//! - [`machine`]: what the agent is doing now ([`machine::AgentState`], asserted transitions).
//! - [`reconcile`]: what became of the last install ([`reconcile::decide`], pure).
//! - [`status`]: the API's view ([`status::derive`], pure).
//! - [`check`], [`install`]: the repository check and the install job.
//! - [`schedule`]: the periodic check, the maintenance window and rebooting per policy.
//! - [`device`], [`error`], [`records`], [`gate`] (the health gate, a separate process).
//! - [`refused`]: slots the initramfs refused at boot (dm-verity), into the history.

pub mod check;
pub mod device;
pub mod error;
pub mod gate;
pub mod install;
pub mod machine;
pub mod reconcile;
pub mod records;
pub mod refused;
pub mod schedule;
pub mod status;

pub use device::DeviceInfo;
pub use error::UpdateError;
pub use install::auto_install_allowed;
pub use status::{UpdateState, UpdateStatus};

use crate::clock::SharedClock;
use crate::config::UpdateConfig;
use crate::events::Events;
use crate::jobs::Jobs;
use crate::store::Store;
use crate::system::SystemControl;
use records::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where the gate leaves its verdict for the agent (in the data directory).
pub const GATE_FILE: &str = "update-gate.json";
/// What the agent tells the gate about the install waiting for its trial boot.
pub const PENDING_FILE: &str = "update-pending.json";

/// Channel names: like board names in the repository (`[a-z0-9][a-z0-9_-]*`, at most 64).
pub fn channel_ok(s: &str) -> bool {
    hearth_ota::manifest::board_name_ok(s)
        && s.bytes().all(|b| !b.is_ascii_uppercase())
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

pub use crate::clock::rfc3339;

/// `HH:MM` → minutes since midnight.
pub fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// What the gate writes for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub at: String,
    pub slot: String,
    /// `committed` or `failed`.
    pub outcome: String,
    pub reason: Option<String>,
}

/// The install the gate is asked to judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInstall {
    pub version: String,
    pub from_version: String,
    pub slot: String,
}

/// What runs now, in memory (the store holds what survives a restart).
#[derive(Debug)]
struct Live {
    state: machine::AgentState,
    progress: Option<status::UpdateProgress>,
    /// Bundle bytes received by the running install (live, between progress callbacks).
    downloaded: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            state: machine::AgentState::Idle,
            progress: None,
            downloaded: None,
        }
    }
}

/// The update service (one per agent): owns the checks, installs, reconciliation, the
/// schedule and rebooting per policy. HTTP handlers only call it.
#[derive(Debug, Clone)]
pub struct Service {
    pub config: UpdateConfig,
    data_dir: PathBuf,
    store: Store,
    events: Events,
    jobs: Arc<Jobs>,
    system: Arc<dyn SystemControl>,
    clock: SharedClock,
    live: Arc<Mutex<Live>>,
}

/// What the service needs from the rest of the agent.
pub struct Parts {
    pub store: Store,
    pub events: Events,
    pub jobs: Arc<Jobs>,
    /// Reboots into an installed update.
    pub system: Arc<dyn SystemControl>,
    pub clock: SharedClock,
}

impl Service {
    pub fn new(config: UpdateConfig, data_dir: &Path, parts: Parts) -> Self {
        Service {
            config,
            data_dir: data_dir.to_path_buf(),
            store: parts.store,
            events: parts.events,
            jobs: parts.jobs,
            system: parts.system,
            clock: parts.clock,
            live: Arc::default(),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> String {
        rfc3339(self.clock.now())
    }

    /// The device as the update engine sees it; `NotConfigured` says what is missing.
    pub fn device(&self) -> Result<DeviceInfo, UpdateError> {
        device::read(&self.config)
    }

    pub fn policy(&self) -> Result<UpdatePolicy, UpdateError> {
        Ok(self
            .store
            .update_policy()?
            .unwrap_or_else(|| UpdatePolicy::default_for(&self.config.channel)))
    }

    /// Applies a partial policy after checking every field; nothing changes on an error.
    pub fn patch_policy(
        &self,
        patch: PolicyPatch,
    ) -> Result<UpdatePolicy, crate::error::ServiceError> {
        use crate::error::ServiceError;
        self.device()?;
        let mut p = self.policy()?;
        if let Some(c) = patch.channel {
            if !channel_ok(&c) {
                return Err(ServiceError::invalid(
                    "channel",
                    "A channel name is 1–64 lower-case letters, digits, '-' or '_'.",
                ));
            }
            p.channel = c;
        }
        if let Some(w) = patch.maintenance_window {
            if let Some(problem) = window_problem(&w) {
                return Err(ServiceError::invalid("maintenance_window", problem));
            }
            p.maintenance_window = w;
        }
        match patch.pause_days {
            None => {}
            Some(0) => p.paused_until = None,
            Some(days @ 1..=90) => {
                let until = self.clock.now() + time::Duration::days(i64::from(days));
                p.paused_until = Some(rfc3339(until));
            }
            Some(_) => {
                return Err(ServiceError::invalid(
                    "pause_days",
                    "Pause for 1–90 days, or 0 to resume.",
                ));
            }
        }
        if let Some(a) = patch.auto_install {
            p.auto_install = a;
        }
        if let Some(r) = patch.reboot {
            p.reboot = r;
        }
        self.store.put_update_policy(&p)?;
        Ok(p)
    }

    fn history(
        &self,
        kind: HistoryKind,
        r: &InstallRecord,
        reason: Option<String>,
        code: Option<String>,
    ) -> Result<(), UpdateError> {
        self.store.push_update_history(HistoryEntry {
            id: 0,
            at: self.now(),
            kind,
            from_version: r.from_version.clone(),
            to_version: r.version.clone(),
            reason,
            code,
            downloaded_bytes: r.downloaded_bytes,
            reused_bytes: r.reused_bytes,
        })?;
        Ok(())
    }

    fn finish_install_record(&self) -> Result<(), UpdateError> {
        self.store.clear_update_install()?;
        let _ = std::fs::remove_file(self.data_dir.join(PENDING_FILE));
        Ok(())
    }

    fn write_pending(&self, r: &InstallRecord) {
        let p = PendingInstall {
            version: r.version.clone(),
            from_version: r.from_version.clone(),
            slot: r.slot.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&p)
            && let Err(e) =
                hearth_ota::fsutil::write_atomic(&self.data_dir.join(PENDING_FILE), &bytes)
        {
            tracing::warn!(error = %e, "cannot write {PENDING_FILE}");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A service over a fresh store in `dir`, with a fake system that records reboots.
    pub(crate) fn service(dir: &Path, clock: crate::clock::ManualClock) -> Service {
        service_with(
            dir,
            clock,
            Arc::new(crate::system::fake::FakeSystem::default()),
        )
    }

    pub(crate) fn service_with(
        dir: &Path,
        clock: crate::clock::ManualClock,
        system: Arc<crate::system::fake::FakeSystem>,
    ) -> Service {
        let store = Store::open(&dir.join("store")).expect("store");
        let config = crate::config::Config::dev(dir).update;
        Service::new(
            config,
            dir,
            Parts {
                store,
                events: Events::new(),
                jobs: Arc::default(),
                system,
                clock: Arc::new(clock),
            },
        )
    }

    /// A device running release 1.0 from `booted`.
    pub(crate) fn device(booted: Option<hearth_ota::boot::Slot>) -> DeviceInfo {
        DeviceInfo {
            release: hearth_ota::release::Release {
                board: "x".into(),
                arch: "amd64".into(),
                version: "1.0".into(),
                version_number: 1,
                boot: hearth_ota::release::BootBackend::File,
                build_id: String::new(),
            },
            root: ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
            booted,
            backend: hearth_ota::release::BootBackend::File,
        }
    }

    #[test]
    fn a_version_rolled_back_here_is_not_installed_automatically_again() {
        let available = AvailableUpdate {
            version: "3.0.0".into(),
            version_number: 3_000_000,
            size: 1,
            notes: String::new(),
            published: String::new(),
        };
        let entry = |kind, to: &str| HistoryEntry {
            id: 1,
            at: String::new(),
            kind,
            from_version: "2.0.0".into(),
            to_version: to.into(),
            reason: None,
            code: None,
            downloaded_bytes: 0,
            reused_bytes: 0,
        };
        assert!(auto_install_allowed(&available, &[]));
        assert!(auto_install_allowed(
            &available,
            &[
                entry(HistoryKind::Interrupted, "3.0.0"),
                entry(HistoryKind::RolledBack, "2.1.0")
            ]
        ));
        assert!(!auto_install_allowed(
            &available,
            &[entry(HistoryKind::RolledBack, "3.0.0")]
        ));
    }

    #[test]
    fn names_and_times() {
        for bad in ["24:00", "3:00", "03:60", "0300", ""] {
            assert_eq!(minutes(bad), None, "{bad}");
        }
        assert_eq!(minutes("23:59"), Some(23 * 60 + 59));
        assert!(channel_ok("stable") && channel_ok("beta-2"));
        for bad in ["", "Stable", "-x", "a/b", "a b"] {
            assert!(!channel_ok(bad), "{bad}");
        }
    }
}
