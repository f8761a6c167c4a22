//! The app lifecycle: install, start/stop/restart, logs, stats, update with rollback, uninstall
//! and reconcile. The only part of `apps` that talks to a container runtime, always through
//! [`ContainerRuntime`]. One operation at a time (a single lock): installs on a home device
//! are rare and serialising them makes port and name assignment race-free.
//!
//! Never: start anything the policy has findings for without recorded consent; leave objects
//! behind after a failed install; delete volumes or app data unless asked.

mod auto_update;
mod deploy;
pub mod host;
mod reconcile;
mod update;

pub use auto_update::{auto_update, update_from_source};
pub use reconcile::ReconcileReport;
pub use update::{DigestCheck, UpdateRequest};

use crate::apps::plan::Mount;
use crate::apps::plan::{
    self, AppSettings, DeviceSettings, HostPort, Plan, PlanError, PlanInput, PortStrategy,
};
use crate::apps::policy::{self, Finding};
use crate::apps::policy::{Others, swap};
use crate::apps::record::{AppRecord, AppSource, Consent, Hold, RecordState};
use crate::apps::runtime::{
    ContainerRuntime, ContainerStatus, LogLine, LogOptions, RuntimeError, Stats,
};
use crate::clock::SharedClock;
use crate::events::{AppProgress, AppStateChange, Event, Events};
use crate::store::{Store, StoreError};
use deploy::Undo;
use futures_util::stream::BoxStream;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the app needs an administrator's consent for: {}", list(.0))]
    ConsentRequired(Vec<Finding>),
    #[error("app {0} is not installed")]
    NotFound(String),
    #[error("an app with id {0} is already installed")]
    AlreadyInstalled(String),
    #[error("a container named {0} already exists")]
    NameClash(String),
    #[error("the app is not published for this device's architecture ({0})")]
    Architecture(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("service {service} {detail}")]
    Unhealthy { service: String, detail: String },
    #[error("the update failed ({reason}); the app was rolled back to its previous images")]
    RolledBack { reason: String },
    #[error(transparent)]
    Host(#[from] host::HostError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("app {id} is held stopped: {}", hold_text(.hold))]
    Held { id: String, hold: Box<Hold> },
}

fn hold_text(h: &Hold) -> String {
    match h {
        Hold::Unconsented { findings, .. } => format!(
            "it needs an administrator's consent for: {}",
            list(findings)
        ),
        Hold::Refused { message, .. } => format!("its configuration is refused: {message}"),
    }
}

fn list(f: &[Finding]) -> String {
    f.iter()
        .map(|f| format!("{} ({})", f.message, f.id))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An install request, already authorised by the caller.
#[derive(Debug, Clone)]
pub struct InstallRequest {
    pub app_id: Option<String>,
    pub compose: String,
    pub side_files: BTreeMap<String, String>,
    pub source: AppSource,
    pub settings: AppSettings,
    /// Finding ids the admin consents to.
    pub consent: BTreeSet<String>,
    /// Who asks (recorded with each consent).
    pub by: String,
    /// Whether the user picked the ports (custom compose): then a clash is an error.
    pub exact_ports: bool,
}

/// The apps service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Apps {
    runtime: Arc<dyn ContainerRuntime>,
    store: Store,
    device: DeviceSettings,
    events: Events,
    lock: Arc<tokio::sync::Mutex<()>>,
    health_timeout: Duration,
    proc_net: PathBuf,
    /// The last moving-tag check per app (see `update::DigestCheck`).
    checks: Arc<std::sync::Mutex<BTreeMap<String, update::DigestCheck>>>,
    /// Time stamps of records, holds and checks.
    clock: SharedClock,
    /// Set when the start-up reconcile was put off because no app is installed (Docker starts
    /// on demand: touching the engine would start it). The first install reconciles first, so
    /// leftovers of an install whose undo could not reach the engine are cleaned before it.
    deferred: Arc<std::sync::atomic::AtomicBool>,
    /// The engine's own container folder (Docker's `<data-root>/containers`): when it holds
    /// any container, even one Hearth does not manage (a user's `docker run --restart`), the
    /// start-up reconcile runs with no app installed, so the engine starts and restarts them.
    /// `None`: no app installed always defers.
    engine_containers: Option<PathBuf>,
}

impl Apps {
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        store: Store,
        device: DeviceSettings,
        events: Events,
    ) -> Self {
        Self {
            runtime,
            store,
            device,
            events,
            lock: Arc::new(tokio::sync::Mutex::new(())),
            health_timeout: Duration::from_secs(120),
            proc_net: PathBuf::from("/proc/net"),
            checks: Arc::default(),
            clock: Arc::new(crate::clock::SystemClock),
            deferred: Arc::default(),
            engine_containers: None,
        }
    }

    /// Where the engine keeps its containers (see the field).
    pub fn with_engine_containers_dir(mut self, dir: PathBuf) -> Self {
        self.engine_containers = Some(dir);
        self
    }

    /// The clock for time stamps (the system clock by default).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Now, as the RFC 3339 time stamp records carry.
    fn now(&self) -> String {
        self.clock.now_rfc3339()
    }

    /// How long a container may take to become running/healthy before the operation fails.
    pub fn with_health_timeout(mut self, t: Duration) -> Self {
        self.health_timeout = t;
        self
    }

    pub fn device(&self) -> &DeviceSettings {
        &self.device
    }

    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }

    fn progress(&self, app: &str, op: &str, phase: &str, message: &str) {
        self.events
            .publish(Event::AppProgress(Box::new(AppProgress {
                app: app.to_string(),
                operation: op.to_string(),
                phase: phase.to_string(),
                message: message.to_string(),
                image: None,
                layer: None,
                current: None,
                total: None,
            })));
    }

    fn state_event(&self, app: &str, state: &str, error: Option<String>) {
        self.events
            .publish(Event::AppState(Box::new(AppStateChange {
                app: app.to_string(),
                state: state.to_string(),
                error,
            })));
    }

    pub fn list(&self) -> Result<Vec<AppRecord>, AppError> {
        Ok(self.store.apps()?)
    }

    pub fn get(&self, id: &str) -> Result<AppRecord, AppError> {
        self.store
            .app(id)?
            .ok_or_else(|| AppError::NotFound(id.to_string()))
    }

    /// Host ports taken: listening sockets plus every other app's assignments.
    fn ports_in_use(&self, except: Option<&str>) -> Result<BTreeSet<HostPort>, AppError> {
        let mut ports = host::listening_ports(&self.proc_net);
        for r in self.store.apps()? {
            if Some(r.id.as_str()) == except {
                continue;
            }
            ports.extend(
                r.plan
                    .ports
                    .iter()
                    .filter_map(|p| p.host_port.map(|h| (h, p.protocol))),
            );
        }
        if let Some(own) = except.and_then(|id| self.store.app(id).ok().flatten()) {
            // The app's own listeners are its containers': not a clash with itself.
            for p in &own.plan.ports {
                if let Some(h) = p.host_port {
                    ports.remove(&(h, p.protocol));
                }
            }
        }
        Ok(ports)
    }

    fn names_in_use(&self, except: Option<&str>) -> Result<BTreeSet<String>, AppError> {
        Ok(self
            .store
            .apps()?
            .into_iter()
            .filter(|r| Some(r.id.as_str()) != except)
            .flat_map(|r| r.plan.containers.into_iter().map(|c| c.name))
            .collect())
    }

    /// Plans an install without doing it (the install dialog shows this).
    pub fn plan(&self, req: &InstallRequest) -> Result<Plan, AppError> {
        self.plan_for(req, None)
    }

    fn plan_for(&self, req: &InstallRequest, existing: Option<&str>) -> Result<Plan, AppError> {
        self.plan_checked(req, existing, true)
    }

    /// `plan_for`; with `as_writer` false the swap invariant is checked only where this app's
    /// sources could be swapped by another app (the start-up re-check).
    pub(super) fn plan_checked(
        &self,
        req: &InstallRequest,
        existing: Option<&str>,
        as_writer: bool,
    ) -> Result<Plan, AppError> {
        let ports = self.ports_in_use(existing)?;
        let names = self.names_in_use(existing)?;
        let input = PlanInput {
            compose: &req.compose,
            app_id: req.app_id.as_deref(),
            device: &self.device,
            settings: &req.settings,
            ports_in_use: &ports,
            names_in_use: &names,
            port_strategy: if req.exact_ports {
                PortStrategy::Exact
            } else {
                PortStrategy::Reassign
            },
            env_files: &req.side_files,
        };
        let mut plan = plan::plan(&input)?.0;
        // Other apps: the swap invariant holds across apps, and findings name whose data,
        // volumes, networks or containers this app reaches.
        let others: Vec<AppRecord> = self
            .store
            .apps()?
            .into_iter()
            .filter(|r| Some(r.id.as_str()) != existing && r.id != plan.app_id)
            .collect();
        let theirs: Vec<swap::BindSource> = others
            .iter()
            .flat_map(|r| swap::bind_sources(&r.plan))
            .collect();
        let ours = swap::bind_sources(&plan);
        if as_writer {
            swap::check(&ours, &theirs)
        } else {
            swap::check_inner(&ours, &theirs)
        }
        .map_err(PlanError::from)?;
        plan.findings = policy::judge_across(
            &plan,
            &self.device,
            &Others::from_plans(others.iter().map(|r| &r.plan)),
        );
        Ok(plan)
    }

    /// Re-checks every bind source under the roots: beneath its root, no symlink on the way.
    /// Run before every start Hearth makes.
    fn verify_sources(&self, plan: &Plan) -> Result<(), AppError> {
        for c in &plan.containers {
            for m in &c.mounts {
                if let Mount::Bind { source, .. } = m
                    && plan::zone(
                        source,
                        &self.device.app_data_root,
                        &self.device.user_data_root,
                    ) != plan::PathZone::Outside
                {
                    host::verify_source(source, &self.device)?;
                }
            }
        }
        Ok(())
    }

    fn refuse_if_held(r: &AppRecord) -> Result<(), AppError> {
        match &r.held {
            Some(h) => Err(AppError::Held {
                id: r.id.clone(),
                hold: Box::new(h.clone()),
            }),
            None => Ok(()),
        }
    }

    /// Installs an app. On any failure everything this call created is removed and no record
    /// is left.
    pub async fn install(&self, req: InstallRequest) -> Result<AppRecord, AppError> {
        self.reconcile_if_deferred().await?;
        let _guard = self.lock.lock().await;
        let id = plan::app_id_of(&req.compose, req.app_id.as_deref())?;
        if self.store.app(&id)?.is_some() {
            return Err(AppError::AlreadyInstalled(id));
        }
        let plan = self.plan_for(&req, None)?;
        let missing: Vec<Finding> = policy::unconsented(&plan.findings, &req.consent)
            .into_iter()
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(AppError::ConsentRequired(missing));
        }
        if !plan.architecture_supported {
            return Err(AppError::Architecture(self.device.architecture.clone()));
        }
        // One round trip for all of them, not one after the other.
        let existing = futures_util::future::join_all(
            plan.containers
                .iter()
                .map(|c| self.runtime.inspect_container(&c.name)),
        )
        .await;
        for (c, found) in plan.containers.iter().zip(existing) {
            if found?.is_some() {
                return Err(AppError::NameClash(c.name.clone()));
            }
        }
        let at = self.now();
        let record = AppRecord {
            id: id.clone(),
            source: req.source.clone(),
            compose: req.compose.clone(),
            settings: req.settings.clone(),
            consents: plan
                .findings
                .iter()
                .map(|f| Consent {
                    finding: f.id.clone(),
                    by: req.by.clone(),
                    at: at.clone(),
                })
                .collect(),
            plan,
            state: RecordState::Installing,
            installed_at: at.clone(),
            updated_at: at,
            previous_images: BTreeMap::new(),
            image_digests: BTreeMap::new(),
            auto_update: false,
            last_error: None,
            held: None,
        };
        // Recorded first: if the agent dies mid-install, reconcile finds and undoes it.
        self.store.put_app(&record)?;
        self.state_event(&id, "installing", None);
        let mut undo = Undo::default();
        match self.deploy_new(&record, &mut undo).await {
            Ok(digests) => {
                let mut record = record;
                record.state = RecordState::Installed;
                record.image_digests = digests;
                self.store.put_app(&record)?;
                self.state_event(&id, "running", None);
                Ok(record)
            }
            Err(e) => {
                self.progress(
                    &id,
                    "install",
                    "rollback",
                    &format!("install failed: {e}; removing what was created"),
                );
                self.undo(undo).await;
                self.store.delete_app(&id)?;
                self.state_event(&id, "failed", Some(e.to_string()));
                Err(e)
            }
        }
    }

    async fn deploy_new(
        &self,
        record: &AppRecord,
        undo: &mut Undo,
    ) -> Result<BTreeMap<String, String>, AppError> {
        self.pull_all(&record.plan, "install").await?;
        self.prepare(&record.plan, &record.compose, undo).await?;
        self.run_containers(&record.plan, &BTreeMap::new(), "install", undo)
            .await?;
        self.digests(&record.plan).await
    }

    async fn digests(&self, plan: &Plan) -> Result<BTreeMap<String, String>, AppError> {
        let digests = futures_util::future::join_all(
            plan.containers
                .iter()
                .map(|c| self.runtime.image_digest(&c.image)),
        )
        .await;
        let mut out = BTreeMap::new();
        for (c, d) in plan.containers.iter().zip(digests) {
            if let Some(d) = d? {
                out.insert(c.service.clone(), d);
            }
        }
        Ok(out)
    }

    /// Removes the app's containers and networks; with `delete_data` also its volumes, its
    /// app-data folder and its project folder. User-data folders are never deleted.
    pub async fn uninstall(&self, id: &str, delete_data: bool) -> Result<(), AppError> {
        let _guard = self.lock.lock().await;
        let mut record = self.get(id)?;
        record.state = RecordState::Removing;
        self.store.put_app(&record)?;
        self.remove_objects(id, Some(&record.plan), delete_data)
            .await?;
        self.store.delete_app(id)?;
        self.state_event(id, "removed", None);
        Ok(())
    }

    /// Removes what the runtime has labelled with project `id` (and the plan's containers).
    async fn remove_objects(
        &self,
        id: &str,
        plan: Option<&Plan>,
        delete_data: bool,
    ) -> Result<(), AppError> {
        if let Some(plan) = plan {
            self.remove_containers(plan).await?;
        }
        let objects = self.runtime.project_objects(Some(id)).await?;
        for c in &objects.containers {
            self.runtime
                .remove_container(&c.name)
                .await
                .or_else(ignore_missing)?;
        }
        for n in &objects.networks {
            self.runtime
                .remove_network(n)
                .await
                .or_else(ignore_missing)?;
        }
        if delete_data {
            for v in &objects.volumes {
                self.runtime
                    .remove_volume(v)
                    .await
                    .or_else(ignore_missing)?;
            }
            for dir in [
                self.device.app_data_root.join(id),
                self.device.projects_dir.join(id),
            ] {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| {
                        AppError::Host(host::HostError::Io {
                            path: dir.clone(),
                            source: e,
                        })
                    })?;
                }
            }
        }
        Ok(())
    }

    pub async fn start(&self, id: &str) -> Result<(), AppError> {
        let _guard = self.lock.lock().await;
        let r = self.get(id)?;
        Self::refuse_if_held(&r)?;
        self.verify_sources(&r.plan)?;
        for c in &r.plan.containers {
            self.runtime
                .start_container(&c.name)
                .await
                .or_else(ignore_not_modified)?;
        }
        self.state_event(id, "running", None);
        Ok(())
    }

    pub async fn stop(&self, id: &str) -> Result<(), AppError> {
        let _guard = self.lock.lock().await;
        let r = self.get(id)?;
        for c in r.plan.containers.iter().rev() {
            let t = c.stop_grace_period_ns.map(|ns| ns / 1_000_000_000);
            self.runtime.stop_container(&c.name, t).await?;
        }
        self.state_event(id, "stopped", None);
        Ok(())
    }

    pub async fn restart(&self, id: &str) -> Result<(), AppError> {
        let _guard = self.lock.lock().await;
        let r = self.get(id)?;
        Self::refuse_if_held(&r)?;
        self.verify_sources(&r.plan)?;
        for c in &r.plan.containers {
            self.runtime.restart_container(&c.name).await?;
        }
        self.state_event(id, "running", None);
        Ok(())
    }

    /// The runtime's view of each of the app's containers.
    pub async fn status(&self, id: &str) -> Result<Vec<ContainerStatus>, AppError> {
        let r = self.get(id)?;
        let mut out = Vec::new();
        for c in &r.plan.containers {
            if let Some(s) = self.runtime.inspect_container(&c.name).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Logs of every container of the app, interleaved as they come.
    pub fn logs(
        &self,
        id: &str,
        opts: LogOptions,
    ) -> Result<BoxStream<'static, Result<LogLine, RuntimeError>>, AppError> {
        let r = self.get(id)?;
        let runtime = self.runtime.clone();
        let names: Vec<String> = r.plan.containers.iter().map(|c| c.name.clone()).collect();
        let stream = async_stream_logs(runtime, names, opts);
        Ok(stream)
    }

    pub async fn stats(&self, id: &str) -> Result<BTreeMap<String, Stats>, AppError> {
        let r = self.get(id)?;
        let mut out = BTreeMap::new();
        for c in &r.plan.containers {
            out.insert(c.service.clone(), self.runtime.stats(&c.name).await?);
        }
        Ok(out)
    }
}

fn ignore_missing(e: RuntimeError) -> Result<(), RuntimeError> {
    match e {
        RuntimeError::NotFound(_) => Ok(()),
        other => Err(other),
    }
}

fn ignore_not_modified(e: RuntimeError) -> Result<(), RuntimeError> {
    match e {
        RuntimeError::Conflict(_) => Ok(()),
        other => Err(other),
    }
}

/// Merges the log streams of `names` into one `'static` stream (each container's stream is
/// driven by its own task so a follow on one does not block the others).
fn async_stream_logs(
    runtime: Arc<dyn ContainerRuntime>,
    names: Vec<String>,
    opts: LogOptions,
) -> BoxStream<'static, Result<LogLine, RuntimeError>> {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    for name in names {
        let runtime = runtime.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut s = runtime.logs(&name, opts);
            while let Some(item) = s.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
}

#[cfg(test)]
mod tests;
