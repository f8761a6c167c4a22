//! The planner: a pure function from (compose text, store metadata, device settings, ports in
//! use) to an install [`Plan`] — containers in start order, networks, volumes, host folders
//! under the app-data root, host port assignments without clashes, and the policy's findings.
//! It never touches Docker or the disk; the lifecycle carries a plan out.

mod paths;
mod ports;
mod service;
mod spec;
mod units;

pub use paths::{PathZone, map_source, normalize, zone};
pub use ports::{HostPort, Protocol};
pub use spec::*;

use crate::apps::casaos::{self, AppMeta};
use crate::apps::compose::{self, ComposeError, ComposeFile, Vars};
use crate::apps::{labels, names, policy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What the planner needs to know about the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSettings {
    /// Root of every app's data (`/DATA/AppData` in CasaOS terms).
    pub app_data_root: PathBuf,
    /// Root of the user's files (`/DATA` in CasaOS terms).
    pub user_data_root: PathBuf,
    /// Where Hearth keeps each app's project files (the compose file Docker Compose can read).
    pub projects_dir: PathBuf,
    pub puid: u32,
    pub pgid: u32,
    pub tz: String,
    /// Docker/OCI architecture name: `amd64`, `arm64`, `arm`.
    pub architecture: String,
}

impl DeviceSettings {
    /// Settings for a device at `root` (tests and `app plan`).
    pub fn under(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            app_data_root: root.join("app-data"),
            user_data_root: root.join("data"),
            projects_dir: root.join("projects"),
            puid: 1000,
            pgid: 1000,
            tz: "Etc/UTC".into(),
            architecture: host_architecture().into(),
        }
    }
}

/// The running machine's architecture in Docker's spelling.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        other => other,
    }
}

/// What to do when a wanted host port is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PortStrategy {
    /// Move to the nearest free port (store apps: the user did not pick the number).
    #[default]
    Reassign,
    /// Refuse with [`PlanError::PortClash`] (the user picked the number).
    Exact,
}

/// User changes layered over the compose file (install dialog, settings edit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AppSettings {
    /// Extra interpolation variables (for `${VAR}` the compose file leaves to the user).
    pub vars: BTreeMap<String, String>,
    /// Environment overrides per service.
    pub env: BTreeMap<String, BTreeMap<String, String>>,
    /// Host port overrides per service: container port (`"80"` or `"53/udp"`) → host port.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, PortNumber>>)]
    pub ports: BTreeMap<String, BTreeMap<String, u16>>,
    /// Bind source overrides per service: container path → host path.
    pub volumes: BTreeMap<String, BTreeMap<String, String>>,
}

/// A port number as the API document states it: an integer from 0 to 65535 (the derive says
/// only "an integer of at least 0" for a `u16`). For `#[schema(value_type)]`.
pub struct PortNumber;

impl utoipa::PartialSchema for PortNumber {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(0))
            .maximum(Some(u16::MAX))
            .into()
    }
}

impl utoipa::ToSchema for PortNumber {}

#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub compose: &'a str,
    /// The app id to use; defaults to the compose file's `name`.
    pub app_id: Option<&'a str>,
    pub device: &'a DeviceSettings,
    pub settings: &'a AppSettings,
    /// Host ports taken by the system and by other apps.
    pub ports_in_use: &'a BTreeSet<HostPort>,
    /// Container names taken by other apps.
    pub names_in_use: &'a BTreeSet<String>,
    pub port_strategy: PortStrategy,
    /// Contents of `env_file`s, by the path written in the compose file.
    pub env_files: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("the app has no id: give the compose file a `name`")]
    MissingAppId,
    #[error("{0}")]
    InvalidAppId(String),
    #[error("services.{service}: {message}")]
    Service { service: String, message: String },
    #[error("host port {port}/{protocol} for service {service} is already in use")]
    PortClash {
        service: String,
        port: u16,
        protocol: &'static str,
    },
    #[error("container name {name:?} (service {service}) is already used by another app")]
    NameClash { service: String, name: String },
    #[error("services.{service}: {path:?} is not available")]
    MissingFile { service: String, path: String },
    #[error("services depend on each other in a cycle: {0}")]
    DependencyCycle(String),
    /// Boxed: it names both sides, and errors travel in every `Result` of the service.
    #[error(transparent)]
    SwappableSource(Box<policy::swap::Swappable>),
}

impl From<Box<policy::swap::Swappable>> for PlanError {
    fn from(s: Box<policy::swap::Swappable>) -> Self {
        PlanError::SwappableSource(s)
    }
}

impl PlanError {
    fn service(service: &str, message: impl Into<String>) -> Self {
        PlanError::Service {
            service: service.to_string(),
            message: message.into(),
        }
    }
}

/// The variables CasaOS defines for store apps, then the user's own (which cannot replace them).
pub fn casaos_vars(
    app_id: &str,
    device: &DeviceSettings,
    webui_port: Option<&str>,
    user: &Vars,
) -> Vars {
    let mut vars = user.clone();
    vars.insert("AppID".into(), app_id.to_string());
    vars.insert("PUID".into(), device.puid.to_string());
    vars.insert("PGID".into(), device.pgid.to_string());
    vars.insert("TZ".into(), device.tz.clone());
    if let Some(p) = webui_port {
        vars.insert("WEBUI_PORT".into(), p.to_string());
    }
    vars
}

/// Reads just enough of the file to learn its name and `x-casaos` (before interpolation).
fn preview(text: &str) -> Result<(Option<String>, AppMeta, Vec<String>), ComposeError> {
    if text.len() > compose::MAX_COMPOSE_BYTES {
        return Err(ComposeError::TooLarge {
            size: text.len(),
            limit: compose::MAX_COMPOSE_BYTES,
        });
    }
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| ComposeError::Yaml(e.to_string()))?;
    let name = v.get("name").and_then(|n| n.as_str()).map(str::to_string);
    let mut warnings = Vec::new();
    let meta = casaos::app_meta(v.get("x-casaos"), &mut warnings);
    Ok((name, meta, warnings))
}

/// The app id a plan of `compose` would get (`app_id` if given, else from the file's `name`).
pub fn app_id_of(compose: &str, app_id: Option<&str>) -> Result<String, PlanError> {
    let id = match app_id {
        Some(id) => id.to_string(),
        None => names::app_id_from(&preview(compose)?.0.ok_or(PlanError::MissingAppId)?),
    };
    names::check_app_id(&id).map_err(PlanError::InvalidAppId)?;
    Ok(id)
}

/// Plans an install. See the module documentation.
pub fn plan(input: &PlanInput<'_>) -> Result<(Plan, AppMeta), PlanError> {
    let (name, meta, mut warnings) = preview(input.compose)?;
    let app_id = match input.app_id {
        Some(id) => id.to_string(),
        None => names::app_id_from(name.as_deref().ok_or(PlanError::MissingAppId)?),
    };
    names::check_app_id(&app_id).map_err(PlanError::InvalidAppId)?;
    let port_map = meta.port_map.clone().filter(|p| p.parse::<u16>().is_ok());
    let vars = casaos_vars(
        &app_id,
        input.device,
        port_map.as_deref(),
        &input.settings.vars,
    );
    let parsed = compose::parse(input.compose, &vars)?;
    warnings.extend(parsed.warnings);
    let mut file = parsed.file;
    drop_inactive_profiles(&mut file, &mut warnings);
    if file.services.is_empty() {
        return Err(ComposeError::NoServices.into());
    }
    for svc in input.settings.env.keys().chain(input.settings.ports.keys()) {
        if !file.services.contains_key(svc) {
            return Err(PlanError::service(
                svc,
                "settings name a service the app does not have",
            ));
        }
    }
    let ctx = service::Context::new(&app_id, input, &file);
    let order = start_order(&file)?;
    let mut alloc = ports::Allocator::new(input.ports_in_use);
    let mut builder = service::Builder::new(ctx, &mut alloc);
    for svc in &order {
        builder.add(svc, &file.services[svc], &mut warnings)?;
    }
    let built = builder.finish(&file, &mut warnings)?;
    let architecture_supported = meta.architectures.is_empty()
        || meta
            .architectures
            .iter()
            .any(|a| a == &input.device.architecture);
    if !architecture_supported {
        warnings.push(format!(
            "the app is not published for this device's architecture ({})",
            input.device.architecture
        ));
    }
    let web_ui = web_ui(&meta, &built.ports, &built.containers);
    let mut plan = Plan {
        app_id,
        version: meta.version.clone(),
        containers: built.containers,
        networks: built.networks,
        volumes: built.volumes,
        host_folders: built.host_folders,
        files: built.files,
        ports: built.ports,
        web_ui,
        architecture_supported,
        findings: Vec::new(),
        warnings,
    };
    policy::swap::pin_nested_sources(&mut plan);
    policy::swap::check(&policy::swap::bind_sources(&plan), &[])?;
    plan.findings = policy::judge(&plan, input.device);
    for c in &mut plan.containers {
        let hash = config_hash(c);
        c.labels.insert(labels::CONFIG_HASH.into(), hash);
    }
    Ok((plan, meta))
}

/// Compose starts services that have `profiles` only when a profile is chosen; Hearth chooses
/// none, so such services are left out unless an active service depends on them.
fn drop_inactive_profiles(file: &mut ComposeFile, warnings: &mut Vec<String>) {
    let mut active: BTreeSet<String> = file
        .services
        .iter()
        .filter(|(_, s)| s.profiles.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    loop {
        let needed: Vec<String> = active
            .iter()
            .flat_map(|k| {
                file.services[k]
                    .depends_on
                    .iter()
                    .flat_map(|d| d.keys().cloned())
            })
            .filter(|d| !active.contains(d) && file.services.contains_key(d))
            .collect();
        if needed.is_empty() {
            break;
        }
        active.extend(needed);
    }
    file.services.retain(|name, s| {
        let keep = active.contains(name);
        if !keep {
            warnings.push(format!(
                "services.{name}: only in profile(s) {}, which are not enabled; not installed",
                s.profiles.join(", ")
            ));
        }
        keep
    });
}

/// Dependencies first; ties in name order. `network_mode: service:X` and `volumes_from` count
/// as dependencies too.
fn start_order(file: &ComposeFile) -> Result<Vec<String>, PlanError> {
    let deps = |name: &str| -> Vec<String> {
        let s = &file.services[name];
        let mut d: Vec<String> = s
            .depends_on
            .iter()
            .flat_map(|m| m.keys().cloned())
            .collect();
        if let Some(other) = s
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
        {
            d.push(other.to_string());
        }
        for vf in &s.volumes_from {
            if let Some(other) = vf
                .split(':')
                .next()
                .filter(|o| file.services.contains_key(*o))
            {
                d.push(other.to_string());
            }
        }
        d
    };
    let mut order = Vec::new();
    let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1 visiting, 2 done
    fn visit<'a>(
        n: &'a str,
        file: &'a ComposeFile,
        deps: &dyn Fn(&str) -> Vec<String>,
        state: &mut BTreeMap<&'a str, u8>,
        order: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        match state.get(n) {
            Some(2) => return Ok(()),
            Some(_) => {
                stack.push(n.to_string());
                return Err(PlanError::DependencyCycle(stack.join(" → ")));
            }
            None => {}
        }
        state.insert(n, 1);
        stack.push(n.to_string());
        for d in deps(n) {
            let (key, _) = file.services.get_key_value(&d).ok_or_else(|| {
                PlanError::service(n, format!("depends on {d:?}, which is not defined"))
            })?;
            visit(key, file, deps, state, order, stack)?;
        }
        stack.pop();
        state.insert(n, 2);
        order.push(n.to_string());
        Ok(())
    }
    for name in file.services.keys() {
        visit(name, file, &deps, &mut state, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

fn web_ui(meta: &AppMeta, ports: &[PortAssignment], containers: &[ContainerSpec]) -> Option<WebUi> {
    let wanted: u16 = meta.port_map.as_deref()?.trim().parse().ok()?;
    let main = meta.main.as_deref();
    let assigned = ports
        .iter()
        .filter(|p| p.requested == Some(wanted))
        .min_by_key(|p| Some(p.service.as_str()) != main)
        .and_then(|p| p.host_port);
    let host_mode = containers
        .iter()
        .any(|c| c.network_mode == NetworkMode::Host);
    let port = match assigned {
        Some(p) => p,
        None if host_mode || ports.is_empty() => wanted,
        None => wanted,
    };
    Some(WebUi {
        scheme: meta.scheme.clone().unwrap_or_else(|| "http".into()),
        port,
        path: meta.index.clone().unwrap_or_else(|| "/".into()),
        host: meta.hostname.clone().filter(|h| !h.is_empty()),
    })
}

/// A stable hash of a container's whole specification: a changed hash means "re-create".
pub fn config_hash(c: &ContainerSpec) -> String {
    let mut c = c.clone();
    c.labels.remove(labels::CONFIG_HASH);
    let json = serde_json::to_vec(&c).unwrap_or_default();
    blake3::hash(&json).to_hex().to_string()
}

#[cfg(test)]
mod tests;
