//! The install plan's types: everything the runtime needs to create an app, as plain data.
//! A plan serialises to the JSON that `hearth-agent app plan` prints and the API returns.

use super::ports::Protocol;
use crate::apps::policy::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    /// The app id, also the Compose project name.
    pub app_id: String,
    /// Store version (`x-casaos.version`), if any.
    pub version: Option<String>,
    /// Containers in start order (dependencies first).
    pub containers: Vec<ContainerSpec>,
    pub networks: Vec<NetworkSpec>,
    pub volumes: Vec<VolumeSpec>,
    /// Folders to create (owned by PUID:PGID) before the containers start.
    #[schema(value_type = Vec<String>)]
    pub host_folders: Vec<PathBuf>,
    /// Files to write before the containers start (Compose `configs`/`secrets` with content).
    pub files: Vec<FileSpec>,
    pub ports: Vec<PortAssignment>,
    pub web_ui: Option<WebUi>,
    /// Whether the device's architecture is in the app's `architectures` (true when unlisted).
    pub architecture_supported: bool,
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn container(&self, service: &str) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.service == service)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContainerSpec {
    pub service: String,
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<PortBinding>,
    pub expose: Vec<String>,
    pub mounts: Vec<Mount>,
    pub network_mode: NetworkMode,
    pub networks: Vec<NetworkAttachment>,
    pub restart: RestartPolicy,
    pub devices: Vec<DeviceMapping>,
    pub gpus: Vec<GpuRequest>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub extra_hosts: Vec<String>,
    pub dns: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub ulimits: Vec<Ulimit>,
    pub shm_size: Option<u64>,
    pub memory_limit: Option<u64>,
    pub memory_reservation: Option<u64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub pids_limit: Option<i64>,
    pub logging: Option<LogConfig>,
    pub healthcheck: Option<Healthcheck>,
    pub depends_on: Vec<Dependency>,
    pub pid: Option<String>,
    pub ipc: Option<String>,
    pub uts: Option<String>,
    pub userns_mode: Option<String>,
    pub security_opt: Vec<String>,
    pub group_add: Vec<String>,
    pub stop_grace_period_ns: Option<i64>,
    pub stop_signal: Option<String>,
    pub tty: bool,
    pub stdin_open: bool,
    pub init: Option<bool>,
    pub read_only: bool,
    pub runtime: Option<String>,
    pub platform: Option<String>,
    /// `host` or `private` (Compose `cgroup`).
    #[serde(default)]
    pub cgroupns: Option<String>,
    /// Device cgroup rules (`c 1:3 rwm`).
    #[serde(default)]
    pub device_cgroup_rules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PortBinding {
    pub host_ip: Option<String>,
    /// `None`: Docker picks an ephemeral host port.
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PortAssignment {
    pub service: String,
    pub container_port: u16,
    pub protocol: Protocol,
    /// What the compose file asked for.
    pub requested: Option<u16>,
    /// What the plan gives (differs from `requested` when that port was taken).
    pub host_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = PlanMount)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mount {
    Bind {
        #[schema(value_type = String)]
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    Volume {
        /// Docker volume name; `None` for an anonymous volume.
        name: Option<String>,
        target: String,
        read_only: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
}

impl Mount {
    pub fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Volume { target, .. }
            | Mount::Tmpfs { target, .. } => target,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "target", rename_all = "snake_case")]
pub enum NetworkMode {
    /// Attached to the project's networks (`networks` field).
    Project,
    /// Docker's default `bridge` network (CasaOS's usual `network_mode: bridge`).
    Bridge,
    Host,
    None,
    /// Share another service's network namespace (`service:NAME`): the container of that service.
    Service(String),
    /// Share a named container's network namespace (`container:NAME`).
    Container(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkAttachment {
    /// Docker network name.
    pub network: String,
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    OnFailure(Option<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceMapping {
    pub host: String,
    pub container: String,
    pub permissions: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GpuRequest {
    pub driver: Option<String>,
    /// -1 for all.
    pub count: i64,
    pub device_ids: Vec<String>,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogConfig {
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval_ns: Option<i64>,
    pub timeout_ns: Option<i64>,
    pub start_period_ns: Option<i64>,
    pub start_interval_ns: Option<i64>,
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dependency {
    pub service: String,
    pub condition: DependencyCondition,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DependencyCondition {
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkSpec {
    /// The key in the compose file (`default` for the implicit one).
    pub key: String,
    /// Docker network name (`<project>_<key>` unless named or external).
    pub name: String,
    pub driver: Option<String>,
    pub internal: bool,
    pub external: bool,
    pub enable_ipv6: bool,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VolumeSpec {
    pub key: String,
    pub name: String,
    pub driver: Option<String>,
    pub external: bool,
    pub driver_opts: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileSpec {
    #[schema(value_type = String)]
    pub path: PathBuf,
    pub content: String,
}

/// Where the app's web interface is: built from `port_map`, `scheme` and `index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebUi {
    pub scheme: String,
    pub port: u16,
    pub path: String,
    /// A fixed host name from the store (`x-casaos.hostname`), used instead of the device's.
    pub host: Option<String>,
}

impl WebUi {
    /// The link the dashboard opens, for a device reachable at `device_host`.
    pub fn url(&self, device_host: &str) -> String {
        let host = self.host.as_deref().unwrap_or(device_host);
        let default_port = matches!(
            (self.scheme.as_str(), self.port),
            ("http", 80) | ("https", 443)
        );
        let path = if self.path.starts_with('/') || self.path.starts_with('?') {
            self.path.clone()
        } else {
            format!("/{}", self.path)
        };
        if default_port {
            format!("{}://{host}{path}", self.scheme)
        } else {
            format!("{}://{host}:{}{path}", self.scheme, self.port)
        }
    }
}
