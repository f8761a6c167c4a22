//! What became of the last install, from the boot state after a reboot: committed by the
//! health gate, rolled back by the boot loader or the gate, interrupted by a power cut, or
//! still waiting (for the reboot, or for the gate on a trial boot). [`decide`] is pure (boot
//! state and records in, decision out); [`super::Service::reconcile`] carries it out. The
//! table of cases is in docs/updates.md.

use super::device::DeviceInfo;
use super::records::{HistoryKind, InstallPhase, InstallRecord};
use super::{GATE_FILE, GateVerdict, Service, UpdateError};
use hearth_ota::boot::{BootState, Slot};

/// Where a kept install stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Installed into the other slot, set up as its next trial: a reboot is due.
    AwaitingReboot,
    /// Running the installed slot on trial: the health gate has not committed it yet.
    OnTrial,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No install record.
    Nothing,
    /// A record naming no slot: drop it.
    Discard,
    /// The install stopped while writing: history `interrupted`, drop the record.
    Interrupted,
    /// Keep the record. `promote`: a `writing` record whose trial is set up (or running):
    /// the power went after `activate`, the install is complete; store it as `installed`.
    Keep { promote: bool, stage: Stage },
    /// The installed slot runs as the committed one: history `committed`, drop the record
    /// and the gate's verdict.
    Committed,
    /// The committed slot booted and the trial is gone or spent: history `rolled_back` (the
    /// gate's reason when it failed the trial), drop the record and the verdict.
    RolledBack { reason: String },
}

/// Decides what the boot state says about the install `record` (`booted`: the running slot,
/// from the kernel command line; `gate`: the health gate's last verdict).
pub fn decide(
    record: Option<&InstallRecord>,
    booted: Option<Slot>,
    boot: &BootState,
    gate: Option<&GateVerdict>,
) -> Decision {
    let Some(r) = record else {
        return Decision::Nothing;
    };
    let Some(slot) = Slot::parse(&r.slot) else {
        return Decision::Discard;
    };
    let trial_set_up =
        matches!(boot.trial, Some((s, n)) if s == slot && n > 0) && boot.is_bootable(slot);
    let mut promote = false;
    if r.phase == InstallPhase::Writing {
        // The system may run from that slot already (the power went after `activate`, the
        // trial booted and the gate committed it before this reconcile).
        let running_it = booted == Some(slot) && boot.is_bootable(slot);
        if !(trial_set_up || running_it) {
            return Decision::Interrupted;
        }
        promote = true;
    }
    if booted == Some(slot) {
        if boot.trial.is_none() && boot.primary == Some(slot) {
            return Decision::Committed;
        }
        return Decision::Keep {
            promote,
            stage: Stage::OnTrial,
        };
    }
    if booted.is_none() || trial_set_up {
        return Decision::Keep {
            promote,
            stage: Stage::AwaitingReboot,
        };
    }
    let gate = gate.filter(|g| g.slot == r.slot && g.outcome == "failed" && g.at >= r.started);
    let reason = match gate.and_then(|g| g.reason.clone()) {
        Some(reason) => reason,
        None => format!(
            "slot {} did not come up: the boot loader returned to slot {}",
            r.slot,
            slot.other().letter()
        ),
    };
    Decision::RolledBack { reason }
}

/// Where a stored install stands, without the boot state (for the status between reconciles):
/// an installed record for another slot awaits the reboot; for the booted slot it is on trial.
pub fn stage(record: Option<&InstallRecord>, booted: Option<Slot>) -> Option<Stage> {
    let r = record.filter(|r| r.phase == InstallPhase::Installed)?;
    Some(if Slot::parse(&r.slot) == booted {
        Stage::OnTrial
    } else {
        Stage::AwaitingReboot
    })
}

impl Service {
    fn gate_verdict(&self) -> Option<GateVerdict> {
        let bytes = std::fs::read(self.data_dir.join(GATE_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Turns what the boot state says about the last install into history: committed, rolled
    /// back, or interrupted. Does nothing while an install runs.
    pub fn reconcile(&self, device: &DeviceInfo, boot: &BootState) -> Result<(), UpdateError> {
        if self.live().state.is_installing() {
            return Ok(());
        }
        let record = self.store.update_install()?;
        let gate = self.gate_verdict();
        let decision = decide(record.as_ref(), device.booted, boot, gate.as_ref());
        let Some(mut r) = record else {
            return Ok(());
        };
        match decision {
            Decision::Nothing => Ok(()),
            Decision::Discard => self.finish_install_record(),
            Decision::Interrupted => {
                self.history(
                    HistoryKind::Interrupted,
                    &r,
                    Some(format!(
                        "the install into slot {} stopped before it finished (agent stopped or power lost); slot {} was left unbootable, install again to resume",
                        r.slot, r.slot
                    )),
                    Some("update_interrupted".into()),
                )?;
                self.finish_install_record()
            }
            Decision::Keep { promote, .. } => {
                if promote {
                    r.phase = InstallPhase::Installed;
                    self.store.put_update_install(&r)?;
                    self.write_pending(&r);
                }
                Ok(())
            }
            Decision::Committed => {
                self.history(HistoryKind::Committed, &r, None, None)?;
                let _ = std::fs::remove_file(self.data_dir.join(GATE_FILE));
                self.finish_install_record()
            }
            Decision::RolledBack { reason } => {
                self.history(
                    HistoryKind::RolledBack,
                    &r,
                    Some(reason),
                    Some("update_rolled_back".into()),
                )?;
                // A boot counter that ran out leaves the failed slot as a trial with no tries
                // (U-Boot's BOOT_X_LEFT=0, systemd-boot's `+0-N` entry): it leaves the boot
                // order for good, as after the health gate's failure, so no trial shows.
                if let Some((slot, 0)) = boot.trial {
                    let marked = super::device::boot_control(&self.config, device.backend)
                        .and_then(|mut b| b.mark_unbootable(slot).map_err(super::error::boot_err));
                    if let Err(e) = marked {
                        tracing::warn!(error = %e, slot = slot.letter(), "cannot mark the failed trial slot unbootable");
                    }
                }
                let _ = std::fs::remove_file(self.data_dir.join(GATE_FILE));
                self.finish_install_record()
            }
        }
    }

    /// At agent start: record what happened to an install of an earlier boot. A device whose
    /// update setup is broken (a malformed release.json, an unknown boot backend) says so here.
    pub fn reconcile_at_start(&self) {
        self.record_refused_slots();
        let device = match self.device() {
            Ok(d) => d,
            Err(e) => {
                if self.config.repo_url.is_some() {
                    tracing::error!(error = %e, "updates are configured but cannot run");
                }
                return;
            }
        };
        let result = super::device::boot_state(&self.config, device.backend)
            .and_then(|state| self.reconcile(&device, &state));
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot reconcile the last update");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::update::records::HistoryKind as K;
    use InstallPhase::{Installed, Writing};
    use Slot::{A, B};

    fn record(phase: InstallPhase) -> InstallRecord {
        InstallRecord {
            version: "2.0".into(),
            version_number: 2,
            from_version: "1.0".into(),
            slot: "b".into(),
            started: "2026-01-01T00:00:00Z".into(),
            phase,
            downloaded_bytes: 10,
            reused_bytes: 20,
        }
    }

    fn boot(primary: Slot, trial: Option<(Slot, u32)>, bootable: &[Slot]) -> BootState {
        BootState {
            primary: Some(primary),
            trial,
            bootable: bootable.to_vec(),
        }
    }

    fn keep(promote: bool, stage: Stage) -> Decision {
        Decision::Keep { promote, stage }
    }

    const FELL_BACK: &str = "slot b did not come up: the boot loader returned to slot a";

    /// Each row of the table in docs/updates.md: (install record, booted slot, boot state) →
    /// decision.
    #[test]
    fn decide_turns_boot_states_into_decisions() {
        let rolled_back = || Decision::RolledBack {
            reason: FELL_BACK.into(),
        };
        let rows: Vec<(InstallPhase, Option<Slot>, BootState, Decision)> = vec![
            (Writing, Some(A), boot(A, None, &[A]), Decision::Interrupted),
            (
                Writing,
                Some(A),
                boot(A, Some((B, 3)), &[A, B]),
                keep(true, Stage::AwaitingReboot),
            ),
            (
                Writing,
                Some(B),
                boot(B, None, &[A, B]),
                Decision::Committed,
            ),
            (
                Writing,
                Some(B),
                boot(A, Some((B, 2)), &[A, B]),
                keep(true, Stage::OnTrial),
            ),
            (
                Installed,
                Some(A),
                boot(A, Some((B, 3)), &[A, B]),
                keep(false, Stage::AwaitingReboot),
            ),
            (
                Installed,
                Some(B),
                boot(A, Some((B, 2)), &[A, B]),
                keep(false, Stage::OnTrial),
            ),
            (
                Installed,
                Some(B),
                boot(B, None, &[A, B]),
                Decision::Committed,
            ),
            (Installed, Some(A), boot(A, None, &[A]), rolled_back()),
            (
                Installed,
                Some(A),
                boot(A, Some((B, 0)), &[A, B]),
                rolled_back(),
            ),
            (
                Installed,
                None,
                boot(A, None, &[A]),
                keep(false, Stage::AwaitingReboot),
            ),
        ];
        for (i, (phase, booted, state, want)) in rows.into_iter().enumerate() {
            let r = record(phase);
            assert_eq!(decide(Some(&r), booted, &state, None), want, "row {i}");
        }
        let any = boot(A, None, &[A]);
        assert_eq!(decide(None, Some(A), &any, None), Decision::Nothing);
        let mut bad = record(Installed);
        bad.slot = "c".into();
        assert_eq!(decide(Some(&bad), Some(A), &any, None), Decision::Discard);
    }

    #[test]
    fn a_rollback_gives_the_gates_reason_when_it_judged_this_install() {
        let r = record(Installed);
        let fell_back = boot(A, None, &[A]);
        let verdict = |slot: &str, outcome: &str, at: &str| GateVerdict {
            at: at.into(),
            slot: slot.into(),
            outcome: outcome.into(),
            reason: Some("health check failed after 3 s: docker.service is failed".into()),
        };
        let reason = |g: &GateVerdict| match decide(Some(&r), Some(A), &fell_back, Some(g)) {
            Decision::RolledBack { reason } => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason(&verdict("b", "failed", "2026-01-01T00:05:00Z")).contains("docker"));
        // Another slot's verdict, a commit, or one older than this install: the boot loader's.
        for g in [
            verdict("a", "failed", "2026-01-01T00:05:00Z"),
            verdict("b", "committed", "2026-01-01T00:05:00Z"),
            verdict("b", "failed", "2025-12-31T23:00:00Z"),
        ] {
            assert_eq!(reason(&g), FELL_BACK, "{g:?}");
        }
    }

    #[test]
    fn the_stage_between_reconciles() {
        assert_eq!(stage(None, Some(A)), None);
        assert_eq!(stage(Some(&record(Writing)), Some(A)), None);
        assert_eq!(
            stage(Some(&record(Installed)), Some(A)),
            Some(Stage::AwaitingReboot)
        );
        assert_eq!(
            stage(Some(&record(Installed)), Some(B)),
            Some(Stage::OnTrial)
        );
    }

    /// The service carries decisions out: history written (at the clock's time), record kept
    /// or dropped.
    #[test]
    fn reconcile_turns_decisions_into_history() {
        let rows: Vec<(InstallPhase, Slot, BootState, Option<K>, bool)> = vec![
            (Writing, A, boot(A, None, &[A]), Some(K::Interrupted), false),
            (Writing, A, boot(A, Some((B, 3)), &[A, B]), None, true),
            (
                Writing,
                B,
                boot(B, None, &[A, B]),
                Some(K::Committed),
                false,
            ),
            (Installed, A, boot(A, Some((B, 3)), &[A, B]), None, true),
            (Installed, B, boot(A, Some((B, 2)), &[A, B]), None, true),
            (
                Installed,
                B,
                boot(B, None, &[A, B]),
                Some(K::Committed),
                false,
            ),
            (
                Installed,
                A,
                boot(A, None, &[A]),
                Some(K::RolledBack),
                false,
            ),
            (
                Installed,
                A,
                boot(A, Some((B, 0)), &[A, B]),
                Some(K::RolledBack),
                false,
            ),
        ];
        let at = time::macros::datetime!(2026-03-04 05:06:07 UTC);
        for (i, (phase, booted, state, kind, kept)) in rows.into_iter().enumerate() {
            let tmp = tempfile::tempdir().expect("tmp");
            let u = crate::update::tests::service(tmp.path(), ManualClock::new(at));
            u.store.put_update_install(&record(phase)).expect("put");
            let device = crate::update::tests::device(Some(booted));
            u.reconcile(&device, &state).expect("reconcile");
            let history = u.store.update_history().expect("history");
            assert_eq!(history.first().map(|h| h.kind), kind, "row {i}");
            let left = u.store.update_install().expect("get");
            assert_eq!(left.is_some(), kept, "row {i}");
            if let Some(r) = left {
                assert_eq!(r.phase, Installed, "row {i}: a kept record is complete");
            }
            if let Some(h) = history.first() {
                assert_eq!(
                    (h.to_version.as_str(), h.reused_bytes, h.at.as_str()),
                    ("2.0", 20, "2026-03-04T05:06:07Z"),
                    "row {i}"
                );
            }
        }
    }
}
