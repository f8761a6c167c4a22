//! Reconcile at start: rebuild the agent's view from the runtime's labels and the store. Crashed
//! installs are undone, interrupted removals finished, Hearth-labelled objects without a record
//! removed, and Compose projects Hearth did not create reported (never touched). An orphan
//! counts as this agent's only when its Compose working folder is under this agent's projects
//! folder: another Hearth agent on the same engine (tests, a second data folder) keeps its apps.

use super::{AppError, Apps, InstallRequest};
use crate::apps::labels;
use crate::apps::plan::{PlanError, RestartPolicy};
use crate::apps::policy::{self, Others, swap};
use crate::apps::record::{AppRecord, Hold, RecordState};
use crate::apps::runtime::RuntimeError;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Installed apps whose containers are all present.
    pub healthy: Vec<String>,
    /// Installed apps with containers missing in the runtime.
    pub missing: Vec<String>,
    /// Installs interrupted by a crash, undone.
    pub undone_installs: Vec<String>,
    /// Updates interrupted by a crash (the app needs an update or restart).
    pub interrupted_updates: Vec<String>,
    /// Removals interrupted by a crash, finished.
    pub finished_removals: Vec<String>,
    /// Hearth-labelled projects with no record, removed.
    pub removed_orphans: Vec<String>,
    /// Compose projects Hearth did not create (left alone).
    pub unmanaged: Vec<String>,
    /// Hearth projects of another agent (another data folder) on the same engine (left alone).
    pub foreign: Vec<String>,
    /// Installed apps this agent's policy no longer lets run without a consent (or at all):
    /// stopped, their restart policy set to `no`, nothing deleted (see `AppRecord::held`).
    pub held: Vec<String>,
}

impl Apps {
    /// The reconcile at the agent's start: `None` (and the engine left alone) when no app is
    /// installed and the engine has no container of its own. Docker is socket-activated on the
    /// device, so a call here would start it on every boot of a device without apps (about
    /// 140 MB of dockerd and containerd, docs/apps.md); the first install reconciles instead.
    pub async fn reconcile_at_start(&self) -> Result<Option<ReconcileReport>, AppError> {
        let engine_has_containers = self.engine_containers.as_ref().is_some_and(|d| {
            std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some())
        });
        if !engine_has_containers && self.store.apps()?.is_empty() {
            self.deferred.store(true, Ordering::SeqCst);
            return Ok(None);
        }
        self.reconcile().await.map(Some)
    }

    /// Runs the reconcile the start put off; a failure leaves it pending.
    pub(super) async fn reconcile_if_deferred(&self) -> Result<(), AppError> {
        if self.deferred.load(Ordering::SeqCst) {
            self.reconcile().await?;
        }
        Ok(())
    }

    /// Rebuilds the view from the engine (module comment); a success also ends a put-off
    /// start reconcile.
    pub async fn reconcile(&self) -> Result<ReconcileReport, AppError> {
        let _guard = self.lock.lock().await;
        let mut report = ReconcileReport::default();
        let objects = self.runtime.project_objects(None).await?;
        let records = self.store.apps()?;
        let known: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        for mut r in records.clone() {
            match r.state {
                RecordState::Installing => {
                    self.remove_objects(&r.id, Some(&r.plan), false).await?;
                    self.store.delete_app(&r.id)?;
                    report.undone_installs.push(r.id);
                }
                RecordState::Removing => {
                    self.remove_objects(&r.id, Some(&r.plan), false).await?;
                    self.store.delete_app(&r.id)?;
                    report.finished_removals.push(r.id);
                }
                RecordState::Updating => {
                    r.state = RecordState::Installed;
                    r.last_error = Some("the agent stopped during an update; update again".into());
                    self.store.put_app(&r)?;
                    report.interrupted_updates.push(r.id);
                }
                RecordState::Installed => {
                    if let Some(hold) = self.recheck(&r)? {
                        self.hold(&mut r, hold).await?;
                        report.held.push(r.id);
                        continue;
                    }
                    let present = r
                        .plan
                        .containers
                        .iter()
                        .all(|c| objects.containers.iter().any(|o| o.name == c.name));
                    if present {
                        report.healthy.push(r.id);
                    } else {
                        report.missing.push(r.id);
                    }
                }
            }
        }
        let mut orphans = BTreeSet::new();
        let mut unmanaged = BTreeSet::new();
        let mut foreign = BTreeSet::new();
        for c in &objects.containers {
            let project = c.labels.get(labels::PROJECT).cloned().unwrap_or_default();
            if known.contains(project.as_str()) {
                continue;
            }
            let ours = c
                .labels
                .get(labels::WORKING_DIR)
                .is_some_and(|d| std::path::Path::new(d).starts_with(&self.device.projects_dir));
            if !c.labels.contains_key(labels::HEARTH_APP) {
                unmanaged.insert(project);
            } else if ours {
                orphans.insert(project);
            } else {
                foreign.insert(project);
            }
        }
        report.foreign = foreign.into_iter().collect();
        for id in orphans {
            self.remove_objects(&id, None, false).await?;
            report.removed_orphans.push(id);
        }
        report.unmanaged = unmanaged.into_iter().collect();
        self.deferred.store(false, Ordering::SeqCst);
        tracing::info!(?report, "apps reconciled with the container engine");
        Ok(report)
    }
}

impl Apps {
    /// Judges an installed app's stored configuration with this agent's planner and policy:
    /// `None` when it may run, else why it must be held.
    pub(super) fn recheck(&self, r: &AppRecord) -> Result<Option<Hold>, AppError> {
        let req = InstallRequest {
            app_id: Some(r.id.clone()),
            compose: r.compose.clone(),
            side_files: Default::default(),
            source: r.source.clone(),
            settings: super::update::pinned_ports(r, None),
            consent: Default::default(),
            by: String::new(),
            exact_ports: false,
        };
        let findings = match self.plan_checked(&req, Some(&r.id), false) {
            Ok(plan) => plan.findings,
            // Side files are not kept; judge the plan the app runs with instead.
            Err(AppError::Plan(PlanError::MissingFile { .. })) => self.judge_stored(r)?,
            Err(AppError::Plan(e)) => {
                return Ok(Some(Hold::Refused {
                    message: e.to_string(),
                    at: self.now(),
                }));
            }
            // A port now taken by the system is not a reason to hold the app.
            Err(_) => self.judge_stored(r)?,
        };
        let consented = r.consented();
        let missing: Vec<_> = policy::unconsented(&findings, &consented)
            .into_iter()
            .cloned()
            .collect();
        Ok((!missing.is_empty()).then(|| Hold::Unconsented {
            findings: missing,
            at: self.now(),
        }))
    }

    fn judge_stored(&self, r: &AppRecord) -> Result<Vec<policy::Finding>, AppError> {
        let others: Vec<AppRecord> = self
            .store
            .apps()?
            .into_iter()
            .filter(|o| o.id != r.id)
            .collect();
        let theirs: Vec<swap::BindSource> = others
            .iter()
            .flat_map(|o| swap::bind_sources(&o.plan))
            .collect();
        swap::check_inner(&swap::bind_sources(&r.plan), &theirs).map_err(PlanError::from)?;
        Ok(policy::judge_across(
            &r.plan,
            &self.device,
            &Others::from_plans(others.iter().map(|o| &o.plan)),
        ))
    }

    /// Keeps `r` stopped: restart policy `no` first (so neither Docker's restart policy nor a
    /// dockerd restart starts it again), then stop. Nothing is removed.
    pub(super) async fn hold(&self, r: &mut AppRecord, hold: Hold) -> Result<(), AppError> {
        for c in r.plan.containers.iter().rev() {
            match self
                .runtime
                .set_restart_policy(&c.name, &RestartPolicy::No)
                .await
            {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let t = c.stop_grace_period_ns.map(|ns| ns / 1_000_000_000);
            match self.runtime.stop_container(&c.name, t).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        tracing::warn!(app = %r.id, ?hold, "app held stopped by the policy");
        r.held = Some(hold);
        self.store.put_app(r)?;
        self.state_event(&r.id, "held", None);
        Ok(())
    }
}
