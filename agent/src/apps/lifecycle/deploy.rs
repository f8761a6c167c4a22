//! Carrying a plan out against the runtime, and undoing it. Every object created is recorded in
//! an [`Undo`] log first, so a failure at any step removes exactly what this attempt created —
//! containers, networks, volumes, folders, files — and nothing that was there before.

use super::host;
use super::{AppError, Apps};
use crate::apps::plan::{ContainerSpec, DependencyCondition, Plan};
use crate::apps::runtime::{ContainerState, Health, LogOptions};
use futures_util::StreamExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often a container's state is looked at while waiting for it (an inspect call is about a
/// millisecond of the engine's time; a long interval is added to every dependency wait).
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub(super) enum Created {
    Container(String),
    Network(String),
    Volume(String),
    Folder(PathBuf),
    File(PathBuf),
}

/// What one attempt created, in creation order.
#[derive(Debug, Default)]
pub(super) struct Undo(pub Vec<Created>);

/// The compose text as written for `docker compose -p <app>` to read: without the top-level
/// `name` (the older `docker-compose` 1.x refuses it; the project name comes from `-p`).
fn project_file(compose: &str) -> String {
    let Ok(mut v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(compose) else {
        return compose.to_string();
    };
    if let Some(m) = v.as_mapping_mut() {
        m.remove("name");
    }
    serde_yaml_ng::to_string(&v).unwrap_or_else(|_| compose.to_string())
}

impl Apps {
    /// Removes everything in `undo`, newest first. Errors are logged, not returned: undo must
    /// go as far as it can.
    pub(super) async fn undo(&self, undo: Undo) {
        for c in undo.0.into_iter().rev() {
            let r = match &c {
                Created::Container(n) => self
                    .runtime
                    .remove_container(n)
                    .await
                    .map_err(|e| e.to_string()),
                Created::Network(n) => self
                    .runtime
                    .remove_network(n)
                    .await
                    .map_err(|e| e.to_string()),
                Created::Volume(n) => self
                    .runtime
                    .remove_volume(n)
                    .await
                    .map_err(|e| e.to_string()),
                Created::Folder(p) => std::fs::remove_dir_all(p).map_err(|e| e.to_string()),
                Created::File(p) => std::fs::remove_file(p).map_err(|e| e.to_string()),
            };
            if let Err(e) = r {
                tracing::warn!(?c, "undo step failed: {e}");
            }
        }
    }

    /// Pulls every image of the plan, publishing per-layer byte progress.
    pub(super) async fn pull_all(&self, plan: &Plan, op: &str) -> Result<(), AppError> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &plan.containers {
            if !seen.insert(c.image.clone()) {
                continue;
            }
            self.progress(&plan.app_id, op, "pull", &format!("pulling {}", c.image));
            let app = plan.app_id.clone();
            let events = self.events.clone();
            let op_name = op.to_string();
            let report = move |p: crate::apps::runtime::PullProgress| {
                events.publish(crate::events::Event::AppProgress(Box::new(
                    crate::events::AppProgress {
                        app: app.clone(),
                        operation: op_name.clone(),
                        phase: "pull".into(),
                        message: p.status.clone(),
                        image: Some(p.image),
                        layer: Some(p.layer),
                        current: Some(p.current),
                        total: Some(p.total),
                    },
                )));
            };
            self.runtime.pull_image(&c.image, &report).await?;
        }
        Ok(())
    }

    /// Host folders, side files, project file, networks and volumes: everything but containers.
    pub(super) async fn prepare(
        &self,
        plan: &Plan,
        compose: &str,
        undo: &mut Undo,
    ) -> Result<(), AppError> {
        for f in &plan.host_folders {
            for p in host::create_folder(f, &self.device)? {
                undo.0.push(Created::Folder(p));
            }
        }
        for f in &plan.files {
            let existed = f.path.exists();
            crate::fsutil::write_atomic(&f.path, f.content.as_bytes(), 0o644).map_err(|e| {
                AppError::Host(host::HostError::Io {
                    path: f.path.clone(),
                    source: e,
                })
            })?;
            if !existed {
                undo.0.push(Created::File(f.path.clone()));
            }
        }
        let project = self.device.projects_dir.join(&plan.app_id);
        if !project.exists() {
            std::fs::create_dir_all(&project).map_err(|e| {
                AppError::Host(host::HostError::Io {
                    path: project.clone(),
                    source: e,
                })
            })?;
            undo.0.push(Created::Folder(project.clone()));
        }
        let compose_path = project.join("docker-compose.yml");
        crate::fsutil::write_atomic(&compose_path, project_file(compose).as_bytes(), 0o600)
            .map_err(|e| {
                AppError::Host(host::HostError::Io {
                    path: compose_path,
                    source: e,
                })
            })?;
        for n in plan.networks.iter().filter(|n| !n.external) {
            if !self.runtime.network_exists(&n.name).await? {
                self.runtime.create_network(n).await?;
                undo.0.push(Created::Network(n.name.clone()));
            }
        }
        let existing = self
            .runtime
            .project_objects(Some(&plan.app_id))
            .await?
            .volumes;
        for v in plan.volumes.iter().filter(|v| !v.external) {
            // A volume kept from an earlier install (uninstalled without deleting data) is reused;
            // one that exists under another owner (a consented shared volume) is never created
            // here, so a failed attempt never removes it either.
            if !existing.contains(&v.name) && !self.runtime.volume_exists(&v.name).await? {
                self.runtime.create_volume(v).await?;
                undo.0.push(Created::Volume(v.name.clone()));
            }
        }
        Ok(())
    }

    /// Creates every container (at once: creation needs nothing from the others), then starts
    /// them in plan order, each after its dependencies are in the state they ask for, then waits
    /// until every container is running (and healthy if it has a healthcheck) — what
    /// `docker compose up -d --wait` does.
    pub(super) async fn run_containers(
        &self,
        plan: &Plan,
        image_override: &std::collections::BTreeMap<String, String>,
        op: &str,
        undo: &mut Undo,
    ) -> Result<(), AppError> {
        self.verify_sources(plan)?;
        let specs: Vec<std::borrow::Cow<'_, ContainerSpec>> = plan
            .containers
            .iter()
            .map(|c| match image_override.get(&c.service) {
                Some(id) => {
                    let mut s = c.clone();
                    s.image = id.clone();
                    std::borrow::Cow::Owned(s)
                }
                None => std::borrow::Cow::Borrowed(c),
            })
            .collect();
        for c in &plan.containers {
            self.progress(&plan.app_id, op, "create", &format!("creating {}", c.name));
        }
        let created = futures_util::future::join_all(
            specs.iter().map(|spec| self.runtime.create_container(spec)),
        )
        .await;
        // Every container that was created goes into the undo log before any error is returned.
        let mut first_error = None;
        for (c, r) in plan.containers.iter().zip(created) {
            match r {
                Ok(_) => undo.0.push(Created::Container(c.name.clone())),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        for c in &plan.containers {
            for d in &c.depends_on {
                if let Some(dep) = plan.container(&d.service) {
                    self.wait_for(dep, d.condition).await?;
                }
            }
            self.runtime.start_container(&c.name).await?;
        }
        self.progress(
            &plan.app_id,
            op,
            "health",
            "waiting for the app to become ready",
        );
        for c in &plan.containers {
            self.wait_for(c, DependencyCondition::ServiceHealthy)
                .await?;
        }
        // One last look at all of them: a container that was ready when it was checked but has
        // stopped while the others were waited for is a failed install, not a running app.
        for c in &plan.containers {
            self.wait_for(c, DependencyCondition::ServiceStarted)
                .await?;
        }
        Ok(())
    }

    /// Waits until `c` satisfies `cond`: started (running), healthy (running and healthy, or
    /// running without a healthcheck), or exited 0. Like `docker compose --wait`, a container
    /// without a healthcheck counts as ready as soon as it runs; one that stops is a failure.
    async fn wait_for(&self, c: &ContainerSpec, cond: DependencyCondition) -> Result<(), AppError> {
        let deadline = Instant::now() + self.health_timeout;
        loop {
            let st = self
                .runtime
                .inspect_container(&c.name)
                .await?
                .ok_or_else(|| self.unhealthy(c, "the container disappeared".into()))?;
            let done = match (cond, st.state) {
                (DependencyCondition::ServiceCompletedSuccessfully, ContainerState::Exited) => {
                    if st.exit_code == Some(0) {
                        return Ok(());
                    }
                    return Err(self
                        .failure(
                            c,
                            format!("exited with code {}", st.exit_code.unwrap_or(-1)),
                        )
                        .await);
                }
                (DependencyCondition::ServiceCompletedSuccessfully, _) => false,
                (_, ContainerState::Running) => match (cond, st.health) {
                    (_, Health::Unhealthy) => {
                        return Err(self.failure(c, "is unhealthy".into()).await);
                    }
                    (DependencyCondition::ServiceHealthy, Health::Starting) => false,
                    (_, _) => true,
                },
                (_, ContainerState::Exited | ContainerState::Dead | ContainerState::Restarting) => {
                    let code = st
                        .exit_code
                        .map(|c| format!(" (exit code {c})"))
                        .unwrap_or_default();
                    return Err(self.failure(c, format!("stopped running{code}")).await);
                }
                _ => false,
            };
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failure(c, "did not become ready in time".into()).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn unhealthy(&self, c: &ContainerSpec, detail: String) -> AppError {
        AppError::Unhealthy {
            service: c.service.clone(),
            detail,
        }
    }

    /// An unhealthy error carrying the last lines of the container's log.
    async fn failure(&self, c: &ContainerSpec, what: String) -> AppError {
        let mut tail = Vec::new();
        let mut logs = self.runtime.logs(
            &c.name,
            LogOptions {
                follow: false,
                tail: Some(5),
            },
        );
        while let Some(Ok(line)) = logs.next().await {
            tail.push(line.text);
        }
        let detail = if tail.is_empty() {
            what
        } else {
            format!("{what}; last log lines: {}", tail.join(" | "))
        };
        self.unhealthy(c, detail)
    }

    /// Stops and removes the plan's containers, dependents first.
    pub(super) async fn remove_containers(&self, plan: &Plan) -> Result<(), AppError> {
        for c in plan.containers.iter().rev() {
            match self.runtime.remove_container(&c.name).await {
                Ok(()) | Err(crate::apps::runtime::RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
