//! Reconcile at start: rebuild the agent's view from the runtime's labels and the store. Crashed
//! installs are undone, interrupted removals finished, Hearth-labelled objects without a record
//! removed, and Compose projects Hearth did not create reported (never touched). An orphan
//! counts as this agent's only when its Compose working folder is under this agent's projects
//! folder: another Hearth agent on the same engine (tests, a second data folder) keeps its apps.

use super::{AppError, Apps};
use crate::apps::labels;
use crate::apps::record::RecordState;
use serde::Serialize;
use std::collections::BTreeSet;

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
}

impl Apps {
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
        Ok(report)
    }
}
