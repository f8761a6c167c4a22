//! The typed Compose model: the parts of the Compose specification that real-world files use.
//! Fields keep the file's spelling choices only where they matter later (a string `command` is
//! split shell-style); everything else is normalised by the helpers in `de`.
//!
//! `x-casaos` blocks are kept as raw YAML here and read leniently by `apps::casaos`, because
//! broken store metadata must not stop an app from being planned.

use super::de::{self, ListOrMap, Scalar, StringOrList};
use serde::Deserialize;
use std::collections::BTreeMap;

pub type Yaml = serde_yaml_ng::Value;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ComposeFile {
    pub name: Option<String>,
    /// Obsolete in the specification; accepted and ignored.
    pub version: Option<Scalar>,
    pub services: BTreeMap<String, Service>,
    #[serde(deserialize_with = "de::map_of_optional")]
    pub networks: BTreeMap<String, NetworkDef>,
    #[serde(deserialize_with = "de::map_of_optional")]
    pub volumes: BTreeMap<String, VolumeDef>,
    #[serde(deserialize_with = "de::map_of_optional")]
    pub configs: BTreeMap<String, ConfigDef>,
    #[serde(deserialize_with = "de::map_of_optional")]
    pub secrets: BTreeMap<String, ConfigDef>,
    #[serde(rename = "x-casaos")]
    pub x_casaos: Option<Yaml>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    pub image: Option<String>,
    pub build: Option<Yaml>,
    pub container_name: Option<String>,
    pub command: Option<StringOrList>,
    pub entrypoint: Option<StringOrList>,
    #[serde(deserialize_with = "opt_list_or_map")]
    pub environment: Option<ListOrMap>,
    pub env_file: Option<EnvFiles>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub ports: Vec<PortEntry>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub expose: Vec<Scalar>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub volumes: Vec<VolumeEntry>,
    pub tmpfs: Option<StringOrList>,
    #[serde(deserialize_with = "opt_names_or_map")]
    pub networks: Option<BTreeMap<String, Option<ServiceNetwork>>>,
    pub network_mode: Option<String>,
    pub restart: Option<String>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub devices: Vec<DeviceEntry>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub cap_add: Vec<String>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub cap_drop: Vec<String>,
    pub privileged: Option<bool>,
    #[serde(deserialize_with = "opt_list_or_map")]
    pub labels: Option<ListOrMap>,
    pub healthcheck: Option<Healthcheck>,
    #[serde(deserialize_with = "opt_names_or_map")]
    pub depends_on: Option<BTreeMap<String, Option<DependsOn>>>,
    pub deploy: Option<Deploy>,
    pub user: Option<Scalar>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    #[serde(deserialize_with = "opt_extra_hosts")]
    pub extra_hosts: Option<ListOrMap>,
    #[serde(deserialize_with = "opt_list_or_map")]
    pub sysctls: Option<ListOrMap>,
    pub ulimits: Option<BTreeMap<String, Ulimit>>,
    pub shm_size: Option<Scalar>,
    pub logging: Option<Logging>,
    pub pid: Option<String>,
    pub ipc: Option<String>,
    pub uts: Option<String>,
    pub userns_mode: Option<String>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub security_opt: Vec<String>,
    pub stop_grace_period: Option<String>,
    pub stop_signal: Option<String>,
    pub stdin_open: Option<bool>,
    pub tty: Option<bool>,
    pub init: Option<bool>,
    pub read_only: Option<bool>,
    pub cpu_shares: Option<i64>,
    pub cpus: Option<Scalar>,
    pub mem_limit: Option<Scalar>,
    pub mem_reservation: Option<Scalar>,
    pub runtime: Option<String>,
    pub platform: Option<String>,
    pub pull_policy: Option<String>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub profiles: Vec<String>,
    pub dns: Option<StringOrList>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub group_add: Vec<Scalar>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub configs: Vec<FileRef>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub secrets: Vec<FileRef>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub volumes_from: Vec<String>,
    pub mac_address: Option<String>,
    /// `gpus: all` or a list of device requests (Compose's short form of
    /// `deploy.resources.reservations.devices`).
    pub gpus: Option<Gpus>,
    /// `host` shares the host's cgroup namespace.
    pub cgroup: Option<String>,
    pub cgroup_parent: Option<String>,
    /// Device access rules for the container's cgroup (`c 1:3 rwm`): reach devices by number.
    #[serde(deserialize_with = "de::null_as_default")]
    pub device_cgroup_rules: Vec<String>,
    /// Legacy service links (same-app names only; they give no access the app network does not).
    #[serde(deserialize_with = "de::null_as_default")]
    pub links: Vec<String>,
    /// Links to containers outside the app: refused by the planner.
    #[serde(deserialize_with = "de::null_as_default")]
    pub external_links: Vec<String>,
    #[serde(rename = "x-casaos")]
    pub x_casaos: Option<Yaml>,
}

fn opt_list_or_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ListOrMap>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de::list_or_map")] ListOrMap);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

fn opt_extra_hosts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ListOrMap>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "de::extra_hosts")] ListOrMap);
    Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
}

#[allow(clippy::type_complexity)]
fn opt_names_or_map<'de, D, T>(d: D) -> Result<Option<BTreeMap<String, Option<T>>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(bound = "T: Deserialize<'de>")]
    struct W<T>(#[serde(deserialize_with = "de::names_or_map")] BTreeMap<String, Option<T>>);
    Ok(Option::<W<T>>::deserialize(d)?.map(|w| w.0))
}

/// `gpus: all`, or a list of `{driver, count, device_ids, capabilities}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Gpus {
    All(String),
    List(Vec<DeviceRequest>),
}

/// `env_file: a.env`, `env_file: [a.env, b.env]` or `[{path: a.env, required: false}]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EnvFiles {
    One(String),
    Many(Vec<EnvFileEntry>),
}

#[derive(Debug, Clone)]
pub enum EnvFileEntry {
    Path(String),
    Long { path: String, required: bool },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFileLong {
    path: String,
    #[serde(default = "yes")]
    required: bool,
    /// `raw` or absent: how the file is read (no access change).
    #[allow(dead_code)]
    format: Option<String>,
}

impl<'de> Deserialize<'de> for EnvFileEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        short_or_long(d, EnvFileEntry::Path, |l: EnvFileLong| EnvFileEntry::Long {
            path: l.path,
            required: l.required,
        })
    }
}

fn yes() -> bool {
    true
}

impl EnvFiles {
    /// (path, required) pairs.
    pub fn entries(&self) -> Vec<(String, bool)> {
        match self {
            EnvFiles::One(p) => vec![(p.clone(), true)],
            EnvFiles::Many(v) => v
                .iter()
                .map(|e| match e {
                    EnvFileEntry::Path(p) => (p.clone(), true),
                    EnvFileEntry::Long { path, required } => (path.clone(), *required),
                })
                .collect(),
        }
    }
}

/// `"8080:80/tcp"`, `8080` or the long form.
#[derive(Debug, Clone)]
pub enum PortEntry {
    Short(Scalar),
    Long(PortLong),
}

impl<'de> Deserialize<'de> for PortEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        short_or_long(d, PortEntry::Short, PortEntry::Long)
    }
}

/// A scalar (short form) or a mapping read strictly as `L` (long form). Not `untagged`: the long
/// form's own error (an unknown key named) reaches the user instead of "did not match any
/// variant", and unknown keys inside it are refused rather than dropped.
fn short_or_long<'de, D, S, L, T>(
    d: D,
    short: impl FnOnce(S) -> T,
    long: impl FnOnce(L) -> T,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    S: serde::de::DeserializeOwned,
    L: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    let v = Yaml::deserialize(d)?;
    if v.is_mapping() {
        serde_yaml_ng::from_value(v)
            .map(long)
            .map_err(|e| D::Error::custom(e.to_string()))
    } else {
        serde_yaml_ng::from_value(v)
            .map(short)
            .map_err(|e| D::Error::custom(e.to_string()))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortLong {
    pub target: Option<Scalar>,
    pub published: Option<Scalar>,
    pub host_ip: Option<String>,
    pub protocol: Option<String>,
    pub mode: Option<String>,
    pub name: Option<String>,
    pub app_protocol: Option<String>,
}

/// `"./data:/data:ro"`, `"named:/data"`, `"/data"` or the long form.
#[derive(Debug, Clone)]
pub enum VolumeEntry {
    Short(String),
    Long(Box<VolumeLong>),
}

impl<'de> Deserialize<'de> for VolumeEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        short_or_long(d, VolumeEntry::Short, |l: VolumeLong| {
            VolumeEntry::Long(Box::new(l))
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeLong {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: Option<bool>,
    pub bind: Option<BindOptions>,
    pub volume: Option<VolumeOptions>,
    pub tmpfs: Option<TmpfsOptions>,
    pub consistency: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BindOptions {
    pub propagation: Option<String>,
    pub create_host_path: Option<bool>,
    pub selinux: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeOptions {
    pub nocopy: Option<bool>,
    pub subpath: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TmpfsOptions {
    pub size: Option<Scalar>,
    pub mode: Option<Scalar>,
}

/// `"/dev/dri:/dev/dri:rwm"` or `{source, target, permissions}`.
#[derive(Debug, Clone)]
pub enum DeviceEntry {
    Short(String),
    Long {
        source: String,
        target: Option<String>,
        permissions: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceLong {
    source: String,
    target: Option<String>,
    permissions: Option<String>,
}

impl<'de> Deserialize<'de> for DeviceEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        short_or_long(d, DeviceEntry::Short, |l: DeviceLong| DeviceEntry::Long {
            source: l.source,
            target: l.target,
            permissions: l.permissions,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ServiceNetwork {
    #[serde(deserialize_with = "de::null_as_default")]
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
    pub priority: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Healthcheck {
    pub test: Option<StringOrList>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub disable: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DependsOn {
    pub condition: Option<String>,
    pub restart: Option<bool>,
    pub required: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Deploy {
    pub resources: Option<Resources>,
    pub replicas: Option<u32>,
    pub restart_policy: Option<Yaml>,
    #[serde(deserialize_with = "opt_list_or_map")]
    pub labels: Option<ListOrMap>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Resources {
    pub limits: Option<ResourceSpec>,
    pub reservations: Option<ResourceSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResourceSpec {
    pub cpus: Option<Scalar>,
    pub memory: Option<Scalar>,
    pub pids: Option<i64>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub devices: Vec<DeviceRequest>,
}

/// A `deploy.resources.reservations.devices` entry (GPUs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceRequest {
    pub driver: Option<String>,
    pub count: Option<Scalar>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub device_ids: Vec<String>,
    #[serde(deserialize_with = "de::null_as_default")]
    pub capabilities: Vec<String>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Ulimit {
    Single(i64),
    Pair { soft: i64, hard: i64 },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Logging {
    pub driver: Option<String>,
    pub options: Option<BTreeMap<String, Scalar>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NetworkDef {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub external: Option<bool>,
    pub internal: Option<bool>,
    pub attachable: Option<bool>,
    pub enable_ipv6: Option<bool>,
    #[serde(deserialize_with = "opt_list_or_map")]
    pub labels: Option<ListOrMap>,
    pub driver_opts: Option<BTreeMap<String, Scalar>>,
    pub ipam: Option<Yaml>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VolumeDef {
    pub name: Option<String>,
    pub driver: Option<String>,
    pub external: Option<bool>,
    #[serde(deserialize_with = "opt_list_or_map")]
    pub labels: Option<ListOrMap>,
    pub driver_opts: Option<BTreeMap<String, Scalar>>,
}

/// A top-level `configs:`/`secrets:` entry: inline `content`, a `file`, or `environment`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConfigDef {
    pub content: Option<String>,
    pub file: Option<String>,
    pub environment: Option<String>,
    pub external: Option<bool>,
    pub name: Option<String>,
}

/// A service's `configs:`/`secrets:` entry: a name, or `{source, target, mode}`.
#[derive(Debug, Clone)]
pub enum FileRef {
    Name(String),
    Long {
        source: String,
        target: Option<String>,
        mode: Option<Scalar>,
        uid: Option<Scalar>,
        gid: Option<Scalar>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRefLong {
    source: String,
    target: Option<String>,
    mode: Option<Scalar>,
    uid: Option<Scalar>,
    gid: Option<Scalar>,
}

impl<'de> Deserialize<'de> for FileRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        short_or_long(d, FileRef::Name, |l: FileRefLong| FileRef::Long {
            source: l.source,
            target: l.target,
            mode: l.mode,
            uid: l.uid,
            gid: l.gid,
        })
    }
}
