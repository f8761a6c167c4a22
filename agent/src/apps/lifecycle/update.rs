//! Update and settings edit: re-plan (new compose text and/or settings), pull, re-create the
//! containers keeping volumes and data, and go back to the previous images if the new
//! containers do not become healthy.

use super::deploy::Undo;
use super::{AppError, Apps, InstallRequest};
use crate::apps::plan::AppSettings;
use crate::apps::policy;
use crate::apps::record::{AppRecord, Consent, RecordState};
use std::collections::{BTreeMap, BTreeSet};

/// What changes in an update.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    /// New compose text (a newer store version); `None` keeps the current one (pulls fresh
    /// images for moving tags).
    pub compose: Option<String>,
    /// New settings; `None` keeps the current ones.
    pub settings: Option<AppSettings>,
    pub consent: BTreeSet<String>,
    pub by: String,
}

impl Apps {
    pub async fn update(&self, id: &str, req: UpdateRequest) -> Result<AppRecord, AppError> {
        let _guard = self.lock.lock().await;
        let old = self.get(id)?;
        let settings = pinned_ports(&old, req.settings.clone());
        let compose = req.compose.clone().unwrap_or_else(|| old.compose.clone());
        let ireq = InstallRequest {
            app_id: Some(id.to_string()),
            compose: compose.clone(),
            side_files: BTreeMap::new(),
            source: old.source.clone(),
            settings,
            consent: BTreeSet::new(),
            by: req.by.clone(),
            exact_ports: false,
        };
        let plan = self.plan_for(&ireq, Some(id))?;
        let mut consented = old.consented();
        consented.extend(req.consent.iter().cloned());
        let missing: Vec<_> = policy::unconsented(&plan.findings, &consented)
            .into_iter()
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(AppError::ConsentRequired(missing));
        }
        self.pull_all(&plan, "update").await?;
        let mut previous = BTreeMap::new();
        for c in &old.plan.containers {
            if let Some(st) = self.runtime.inspect_container(&c.name).await? {
                previous.insert(c.service.clone(), st.image_id);
            }
        }
        let mut record = old.clone();
        record.state = RecordState::Updating;
        self.store.put_app(&record)?;
        self.state_event(id, "updating", None);
        self.remove_containers(&old.plan).await?;
        let mut undo = Undo::default();
        let outcome = async {
            self.prepare(&plan, &compose, &mut undo).await?;
            self.run_containers(&plan, &BTreeMap::new(), "update", &mut undo)
                .await
        }
        .await;
        match outcome {
            Ok(()) => {
                let at = self.now();
                for f in &plan.findings {
                    if !record.consents.iter().any(|c| c.finding == f.id) {
                        record.consents.push(Consent {
                            finding: f.id.clone(),
                            by: req.by.clone(),
                            at: at.clone(),
                        });
                    }
                }
                record.image_digests = self.digests(&plan).await?;
                record.plan = plan;
                record.compose = compose;
                record.settings = req.settings.unwrap_or(old.settings);
                record.previous_images = previous;
                record.state = RecordState::Installed;
                record.updated_at = at;
                record.last_error = None;
                record.held = None;
                self.store.put_app(&record)?;
                self.forget_check(id);
                self.state_event(id, "running", None);
                Ok(record)
            }
            Err(e) => {
                self.progress(
                    id,
                    "update",
                    "rollback",
                    &format!("update failed: {e}; going back"),
                );
                self.remove_containers(&plan).await?;
                self.undo(undo).await;
                let mut undo_old = Undo::default();
                // A held app is not brought back: its old configuration is what was refused.
                let back = match old.held {
                    Some(_) => Ok(()),
                    None => {
                        self.run_containers(&old.plan, &previous, "rollback", &mut undo_old)
                            .await
                    }
                };
                record.state = RecordState::Installed;
                record.last_error = Some(match &back {
                    Ok(()) => format!("update failed and was rolled back: {e}"),
                    Err(b) => format!("update failed ({e}) and so did the rollback ({b})"),
                });
                self.store.put_app(&record)?;
                self.state_event(id, "running", record.last_error.clone());
                back?;
                Err(AppError::RolledBack {
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// `settings` (or the app's own) with the host ports the app has pinned, unless the user
/// changes them: links keep working across updates and re-checks.
pub(super) fn pinned_ports(old: &AppRecord, settings: Option<AppSettings>) -> AppSettings {
    let mut settings = settings.unwrap_or_else(|| old.settings.clone());
    for p in &old.plan.ports {
        if let Some(h) = p.host_port {
            settings
                .ports
                .entry(p.service.clone())
                .or_default()
                .entry(format!("{}/{}", p.container_port, p.protocol.as_str()))
                .or_insert(h);
        }
    }
    settings
}

/// The result of comparing an app's images with its registries (moving tags such as `latest`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DigestCheck {
    pub checked_at: String,
    /// Services whose tag now points at a different image in the registry.
    pub services: Vec<String>,
    /// Why some image could not be checked (registry unreachable, ...).
    pub error: Option<String>,
}

impl Apps {
    fn checks(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DigestCheck>> {
        self.checks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_check(&self, id: &str) {
        self.checks().remove(id);
    }

    /// The last moving-tag check of `id`.
    pub fn digest_check(&self, id: &str) -> Option<DigestCheck> {
        self.checks().get(id).cloned()
    }

    /// Asks the registries for the current digest of every installed app's images and compares
    /// it with the digest each service was installed from. Images pinned by digest and images
    /// without a registry digest (built locally) are skipped. Nothing is pulled.
    pub async fn check_digests(&self) -> Result<BTreeMap<String, DigestCheck>, AppError> {
        let mut out = BTreeMap::new();
        for r in self.list()? {
            if r.state != RecordState::Installed {
                continue;
            }
            let mut check = DigestCheck {
                checked_at: self.now(),
                services: Vec::new(),
                error: None,
            };
            let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
            for c in &r.plan.containers {
                let Some(installed) = r.image_digests.get(&c.service) else {
                    continue;
                };
                if c.image.contains('@') {
                    continue;
                }
                let installed = installed.rsplit('@').next().unwrap_or(installed);
                let current = match seen.get(&c.image) {
                    Some(d) => d.clone(),
                    None => {
                        let d = match self.runtime.registry_digest(&c.image).await {
                            Ok(d) => Some(d),
                            Err(e) => {
                                check.error = Some(e.to_string());
                                None
                            }
                        };
                        seen.insert(c.image.clone(), d.clone());
                        d
                    }
                };
                if current.is_some_and(|d| d != installed) {
                    check.services.push(c.service.clone());
                }
            }
            out.insert(r.id.clone(), check);
        }
        *self.checks() = out.clone();
        Ok(out)
    }

    /// Turns automatic updates of `id` on or off.
    pub async fn set_auto_update(&self, id: &str, on: bool) -> Result<AppRecord, AppError> {
        let _guard = self.lock.lock().await;
        let mut r = self.get(id)?;
        r.auto_update = on;
        self.store.put_app(&r)?;
        Ok(r)
    }
}
