//! The container-runtime boundary, in domain verbs. The lifecycle only speaks this trait; the
//! real adapter is [`docker::DockerRuntime`] (the Docker Engine API through bollard; Podman's
//! Docker-compatible socket too) and [`fake::FakeRuntime`] records calls for tests.
//!
//! Methods return boxed futures so the trait is object-safe (`Arc<dyn ContainerRuntime>`).

pub mod docker;
pub mod fake;

use super::plan::{ContainerSpec, NetworkSpec, RestartPolicy, VolumeSpec};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("the container engine is not reachable: {0}")]
    Unavailable(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("pulling {image} failed: {message}")]
    Pull { image: String, message: String },
    #[error("the container engine refused: {0}")]
    Engine(String),
}

pub type RtResult<T> = Result<T, RuntimeError>;

/// One progress report of an image pull: bytes of one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullProgress {
    pub image: String,
    pub layer: String,
    pub status: String,
    pub current: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Removing,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ContainerHealth)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// The container has no healthcheck.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

/// What the runtime says about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContainerStatus {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub health: Health,
    pub exit_code: Option<i64>,
    /// The image id (`sha256:...`) the container runs.
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
}

/// Everything labelled with one Compose project (or every project when asked for all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectObjects {
    pub containers: Vec<ContainerStatus>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    pub container: String,
    pub stream: LogStream,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// Lines from the end; `None` for all.
    pub tail: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = AppStats)]
pub struct Stats {
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

pub type ProgressFn<'a> = &'a (dyn Fn(PullProgress) + Send + Sync);

/// The container runtime, in the verbs the lifecycle needs.
pub trait ContainerRuntime: Send + Sync + std::fmt::Debug {
    fn ping(&self) -> BoxFuture<'_, RtResult<()>>;
    /// Pulls `image`, reporting per-layer byte progress.
    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        progress: ProgressFn<'a>,
    ) -> BoxFuture<'a, RtResult<()>>;
    /// The local image id (`sha256:...`) of `image`, if present.
    fn image_id<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<Option<String>>>;
    /// The registry digest `image` has locally (`repo@sha256:...`), if known.
    fn image_digest<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<Option<String>>>;
    /// The manifest digest (`sha256:...`) the registry has for `image` now (Docker's
    /// `GET /distribution/{name}/json`); nothing is pulled.
    fn registry_digest<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<String>>;
    fn create_network<'a>(&'a self, spec: &'a NetworkSpec) -> BoxFuture<'a, RtResult<()>>;
    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>>;
    fn network_exists<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<bool>>;
    fn create_volume<'a>(&'a self, spec: &'a VolumeSpec) -> BoxFuture<'a, RtResult<()>>;
    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>>;
    fn volume_exists<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<bool>>;
    /// Changes the restart policy of an existing container (a held app gets `no`, so neither
    /// Docker's restart policy nor a dockerd restart starts it).
    fn set_restart_policy<'a>(
        &'a self,
        name: &'a str,
        policy: &'a RestartPolicy,
    ) -> BoxFuture<'a, RtResult<()>>;
    /// Creates the container of `spec` (not started); returns its id.
    fn create_container<'a>(&'a self, spec: &'a ContainerSpec) -> BoxFuture<'a, RtResult<String>>;
    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>>;
    fn stop_container<'a>(
        &'a self,
        name: &'a str,
        timeout_s: Option<i64>,
    ) -> BoxFuture<'a, RtResult<()>>;
    fn restart_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>>;
    /// Removes the container (forcefully) and its anonymous volumes.
    fn remove_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>>;
    fn inspect_container<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<ContainerStatus>>>;
    /// Containers, networks and volumes labelled with `project` (all projects when `None`).
    fn project_objects<'a>(
        &'a self,
        project: Option<&'a str>,
    ) -> BoxFuture<'a, RtResult<ProjectObjects>>;
    fn logs<'a>(&'a self, name: &'a str, opts: LogOptions) -> BoxStream<'a, RtResult<LogLine>>;
    fn stats<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<Stats>>;
}
