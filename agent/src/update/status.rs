//! The API's view of updates (`GET /api/v1/update`) and [`derive`], the pure function that
//! makes it from what the service knows: the device, the boot state, the store's records and
//! the agent's state. Nothing here reads files or the store.

use super::device::DeviceInfo;
use super::machine::AgentState;
use super::reconcile::Stage;
use super::records::*;
use hearth_ota::boot::BootState;
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /api/v1/update`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpdateStatus {
    pub configured: bool,
    /// Why updates are not configured (when `configured` is false).
    pub not_configured_reason: Option<String>,
    pub current: Option<CurrentRelease>,
    pub boot: Option<BootInfo>,
    pub policy: UpdatePolicy,
    pub state: UpdateState,
    pub last_check: Option<LastCheck>,
    pub available: Option<AvailableUpdate>,
    pub progress: Option<UpdateProgress>,
    pub pending_reboot: Option<PendingReboot>,
    /// Newest first.
    pub history: Vec<HistoryEntry>,
    /// What the dashboard announces in its banner until an admin dismisses it: the newest
    /// `committed` or `rolled_back` entry of the history not dismissed yet
    /// (`POST /api/v1/update/notice/dismiss`).
    pub notice: Option<HistoryEntry>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CurrentRelease {
    pub version: String,
    pub version_number: u64,
    pub board: String,
    pub arch: String,
    /// The booted slot (`a` or `b`), from the kernel command line.
    pub slot: Option<String>,
    pub build_id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BootInfo {
    pub primary: Option<String>,
    pub trial: Option<TrialInfo>,
    pub bootable: Vec<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrialInfo {
    pub slot: String,
    pub tries_left: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Idle,
    Checking,
    Downloading,
    Installing,
    RebootRequired,
    Trial,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UpdateProgress {
    /// `mark_unbootable`, `index`, `write`, `sync`, `verify`, `activate`.
    pub phase: String,
    pub done: u64,
    pub total: u64,
    pub downloaded_bytes: u64,
    pub reused_bytes: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PendingReboot {
    pub version: String,
    pub slot: String,
}

/// Everything [`derive`] looks at.
pub struct Inputs<'a> {
    pub policy: UpdatePolicy,
    pub device: &'a DeviceInfo,
    /// `None`: the boot loader's state cannot be read.
    pub boot: Option<&'a BootState>,
    /// What reconcile made of the install record (after reconciling).
    pub stage: Option<Stage>,
    pub record: Option<&'a InstallRecord>,
    pub check: Option<CheckRecord>,
    pub agent: AgentState,
    /// The running install's progress.
    pub progress: Option<UpdateProgress>,
    pub history: Vec<HistoryEntry>,
}

/// The API state: what runs now first, then what waits on a reboot or the gate.
pub fn state(agent: AgentState, stage: Option<Stage>) -> UpdateState {
    match (agent, stage) {
        (AgentState::Downloading(_), _) => UpdateState::Downloading,
        (AgentState::Installing(_), _) => UpdateState::Installing,
        (AgentState::Checking, _) => UpdateState::Checking,
        (AgentState::Idle, Some(Stage::OnTrial)) => UpdateState::Trial,
        (AgentState::Idle, Some(Stage::AwaitingReboot)) => UpdateState::RebootRequired,
        (AgentState::Idle, None) => UpdateState::Idle,
    }
}

/// The status of a configured device.
pub fn derive(i: Inputs<'_>) -> UpdateStatus {
    let device = i.device;
    let pending_reboot = match (i.stage, i.record) {
        (Some(Stage::AwaitingReboot), Some(r)) => Some(PendingReboot {
            version: r.version.clone(),
            slot: r.slot.clone(),
        }),
        _ => None,
    };
    let available = i
        .check
        .as_ref()
        .filter(|c| c.channel == i.policy.channel)
        .and_then(|c| c.available.clone())
        .filter(|a| a.version_number > device.release.version_number);
    UpdateStatus {
        configured: true,
        not_configured_reason: None,
        current: Some(CurrentRelease {
            version: device.release.version.clone(),
            version_number: device.release.version_number,
            board: device.release.board.clone(),
            arch: device.release.arch.clone(),
            slot: device.booted.map(|s| s.letter().to_string()),
            build_id: device.release.build_id.clone(),
        }),
        boot: i.boot.map(|s| BootInfo {
            primary: s.primary.map(|p| p.letter().to_string()),
            trial: s.trial.map(|(slot, tries_left)| TrialInfo {
                slot: slot.letter().into(),
                tries_left,
            }),
            bootable: s.bootable.iter().map(|b| b.letter().to_string()).collect(),
        }),
        state: state(i.agent, i.stage),
        policy: i.policy,
        last_check: i.check.map(|c| c.last),
        available,
        progress: if i.agent.is_installing() {
            i.progress
        } else {
            None
        },
        pending_reboot,
        history: i.history,
        notice: None,
    }
}

/// The status of a device where updates are not configured.
pub fn not_configured(
    reason: String,
    policy: UpdatePolicy,
    history: Vec<HistoryEntry>,
) -> UpdateStatus {
    UpdateStatus {
        configured: false,
        not_configured_reason: Some(reason),
        current: None,
        boot: None,
        policy,
        state: UpdateState::Idle,
        last_check: None,
        available: None,
        progress: None,
        pending_reboot: None,
        history,
        notice: None,
    }
}

/// The banner's event (pure): the newest `committed` or `rolled_back` entry whose id is above
/// `dismissed_through` (dismissing an event also dismisses older ones).
pub fn notice(history: &[HistoryEntry], dismissed_through: u64) -> Option<HistoryEntry> {
    history
        .iter()
        .filter(|h| matches!(h.kind, HistoryKind::Committed | HistoryKind::RolledBack))
        .max_by_key(|h| h.id)
        .filter(|h| h.id > dismissed_through)
        .cloned()
}

impl super::Service {
    /// The whole state for the API; reconciles with the boot state first.
    pub fn status(&self) -> Result<UpdateStatus, super::UpdateError> {
        use super::UpdateError;
        let policy = self.policy()?;
        let device = match self.device() {
            Ok(d) => d,
            Err(UpdateError::NotConfigured(reason)) => {
                let mut s = not_configured(reason, policy, self.store.update_history()?);
                // What the image is, from release.json, even without an update server.
                s.current = super::device::read_release(&self.config.release_file)
                    .ok()
                    .map(|r| CurrentRelease {
                        version: r.version,
                        version_number: r.version_number,
                        board: r.board,
                        arch: r.arch,
                        slot: super::device::read_booted(&self.config)
                            .map(|s| s.letter().to_string()),
                        build_id: r.build_id,
                    });
                s.notice = notice(&s.history, self.store.update_notice_dismissed()?);
                return Ok(s);
            }
            Err(e) => return Err(e),
        };
        let boot = super::device::boot_state(&self.config, device.backend).ok();
        if let Some(bs) = &boot {
            self.reconcile(&device, bs)?;
        }
        let record = self.store.update_install()?;
        let (agent, progress) = {
            let live = self.live();
            let mut progress = live.progress.clone();
            if let (Some(p), Some(d)) = (progress.as_mut(), &live.downloaded) {
                p.downloaded_bytes = d.load(std::sync::atomic::Ordering::Relaxed);
            }
            (live.state, progress)
        };
        let mut s = derive(Inputs {
            policy,
            device: &device,
            boot: boot.as_ref(),
            stage: super::reconcile::stage(record.as_ref(), device.booted),
            record: record.as_ref(),
            check: self.store.update_check()?,
            agent,
            progress,
            history: self.store.update_history()?,
        });
        s.notice = notice(&s.history, self.store.update_notice_dismissed()?);
        Ok(s)
    }

    /// Dismisses the banner's event `id` (and every older one); `not_found` when the history
    /// has no entry `id`. Dismissal is per device: any admin's click hides it for all.
    pub fn dismiss_notice(&self, id: u64) -> Result<(), crate::error::ServiceError> {
        if !self.store.update_history()?.iter().any(|h| h.id == id) {
            return Err(crate::error::ServiceError::NotFound(format!(
                "no update history entry {id}"
            )));
        }
        let through = self.store.update_notice_dismissed()?.max(id);
        self.store.put_update_notice_dismissed(through)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::tests::device;
    use hearth_ota::boot::Slot;
    use hearth_ota::install::Phase;

    fn record() -> InstallRecord {
        InstallRecord {
            version: "2.0".into(),
            version_number: 2,
            from_version: "1.0".into(),
            slot: "b".into(),
            started: "2026-01-01T00:00:00Z".into(),
            phase: InstallPhase::Installed,
            downloaded_bytes: 0,
            reused_bytes: 0,
        }
    }

    fn entry(id: u64, kind: HistoryKind) -> HistoryEntry {
        HistoryEntry {
            id,
            at: String::new(),
            kind,
            from_version: "1.0".into(),
            to_version: "2.0".into(),
            reason: None,
            code: None,
            downloaded_bytes: 0,
            reused_bytes: 0,
        }
    }

    #[test]
    fn the_banner_shows_the_newest_update_or_rollback_until_dismissed() {
        use HistoryKind::*;
        // Newest first, as the store lists them.
        let history = [
            entry(4, Installed),
            entry(3, RolledBack),
            entry(2, Failed),
            entry(1, Committed),
        ];
        assert_eq!(notice(&history, 0).map(|h| h.id), Some(3));
        assert_eq!(notice(&history, 2).map(|h| h.id), Some(3));
        assert_eq!(notice(&history, 3), None, "dismissed");
        assert_eq!(
            notice(&history[2..], 0).map(|h| h.id),
            Some(1),
            "a commit announces itself too"
        );
        assert_eq!(
            notice(&[entry(5, Failed), entry(4, Interrupted)], 0),
            None,
            "failures before a reboot are shown on the Updates page, not in the banner"
        );
    }

    #[test]
    fn a_dismissed_notice_stays_dismissed_and_unknown_ids_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let clock = crate::clock::ManualClock::new(time::OffsetDateTime::UNIX_EPOCH);
        let u = crate::update::tests::service(tmp.path(), clock);
        let pushed = u
            .store
            .push_update_history(entry(0, HistoryKind::RolledBack))
            .expect("push");
        assert_eq!(
            u.status().expect("status").notice.map(|n| n.id),
            Some(pushed.id)
        );
        let Err(crate::error::ServiceError::NotFound(_)) = u.dismiss_notice(pushed.id + 1) else {
            panic!("an unknown id was accepted")
        };
        assert!(
            u.status().expect("status").notice.is_some(),
            "nothing changed"
        );
        u.dismiss_notice(pushed.id).expect("dismiss");
        assert_eq!(u.status().expect("status").notice, None);
        assert_eq!(
            u.status().expect("status").history.len(),
            1,
            "still in the history"
        );
    }

    fn check(channel: &str, version_number: u64) -> CheckRecord {
        CheckRecord {
            last: LastCheck {
                at: "2026-01-01T00:00:00Z".into(),
                result: CheckResult::Available,
                error: None,
            },
            channel: channel.into(),
            available: Some(AvailableUpdate {
                version: "2.0".into(),
                version_number,
                size: 1,
                notes: String::new(),
                published: String::new(),
            }),
            latest: None,
        }
    }

    #[test]
    fn what_runs_comes_before_what_waits() {
        use AgentState as A;
        let installing = A::Installing(Phase::Verify);
        let rows = [
            (A::Idle, None, UpdateState::Idle),
            (
                A::Idle,
                Some(Stage::AwaitingReboot),
                UpdateState::RebootRequired,
            ),
            (A::Idle, Some(Stage::OnTrial), UpdateState::Trial),
            (A::Checking, Some(Stage::OnTrial), UpdateState::Checking),
            (A::Downloading(None), None, UpdateState::Downloading),
            (
                A::Downloading(Some(Phase::Write)),
                None,
                UpdateState::Downloading,
            ),
            (
                installing,
                Some(Stage::AwaitingReboot),
                UpdateState::Installing,
            ),
        ];
        for (agent, stage, want) in rows {
            assert_eq!(state(agent, stage), want, "{agent:?} {stage:?}");
        }
    }

    #[test]
    fn derive_shows_the_pending_reboot_the_offer_and_live_progress() {
        let d = device(Some(Slot::A));
        let r = record();
        let progress = UpdateProgress {
            phase: "write".into(),
            done: 5,
            total: 10,
            downloaded_bytes: 3,
            reused_bytes: 2,
        };
        let inputs = |agent, stage, check| Inputs {
            policy: UpdatePolicy::default_for("stable"),
            device: &d,
            boot: None,
            stage,
            record: Some(&r),
            check,
            agent,
            progress: Some(progress.clone()),
            history: vec![],
        };
        let s = derive(inputs(
            AgentState::Idle,
            Some(Stage::AwaitingReboot),
            Some(check("stable", 2)),
        ));
        assert_eq!(s.state, UpdateState::RebootRequired);
        let p = s.pending_reboot.expect("pending");
        assert_eq!((p.version.as_str(), p.slot.as_str()), ("2.0", "b"));
        assert_eq!(s.available.map(|a| a.version_number), Some(2));
        assert_eq!(s.progress, None, "no progress when nothing runs");
        assert_eq!(s.current.and_then(|c| c.slot).as_deref(), Some("a"));
        // An offer of another channel, or not newer than the running release, is no offer.
        let s = derive(inputs(AgentState::Idle, None, Some(check("beta", 2))));
        assert!(s.available.is_none() && s.pending_reboot.is_none());
        let s = derive(inputs(AgentState::Idle, None, Some(check("stable", 1))));
        assert!(s.available.is_none());
        let s = derive(inputs(
            AgentState::Downloading(Some(Phase::Write)),
            None,
            None,
        ));
        assert_eq!(
            (s.state, s.progress),
            (UpdateState::Downloading, Some(progress.clone()))
        );
    }
}
