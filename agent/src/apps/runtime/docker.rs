//! The Docker Engine API adapter (bollard), over the engine's unix socket. Works against
//! Podman's Docker-compatible socket as well. Translates plan types to API bodies and engine
//! errors to [`RuntimeError`]; decides nothing.

use super::*;
use crate::apps::labels;
use crate::apps::plan::{self, Mount, NetworkMode, RestartPolicy as Restart};
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, DeviceMapping, DeviceRequest, EndpointSettings,
    HealthConfig, HealthStatusEnum, HostConfig, HostConfigCgroupnsModeEnum, HostConfigLogConfig,
    Mount as ApiMount, MountTmpfsOptions, MountType, NetworkConnectRequest, NetworkCreateRequest,
    NetworkingConfig, PortBinding as ApiPortBinding, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters as q;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct DockerRuntime {
    /// The client, made on first use: bollard refuses a socket path that does not exist yet,
    /// and the agent must come up (and stay up) while the engine and its socket are absent.
    docker: Arc<std::sync::OnceLock<Docker>>,
    path: String,
    version: bollard::ClientVersion,
}

fn map_err(what: &str, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NotFound(format!("{what}: {message}")),
        BollardError::DockerResponseServerError {
            status_code: 409,
            message,
        } => RuntimeError::Conflict(format!("{what}: {message}")),
        BollardError::DockerResponseServerError { message, .. } => {
            RuntimeError::Engine(format!("{what}: {message}"))
        }
        BollardError::DockerStreamError { error } => {
            RuntimeError::Engine(format!("{what}: {error}"))
        }
        other => RuntimeError::Unavailable(format!("{what}: {other}")),
    }
}

impl DockerRuntime {
    /// Connects to the engine socket at `path` (e.g. `/var/run/docker.sock` or Podman's
    /// `/run/podman/podman.sock`) and agrees on an API version with it.
    pub async fn connect(path: &str) -> RtResult<Self> {
        let docker = Docker::connect_with_socket(path, 120, bollard::API_DEFAULT_VERSION)
            .map_err(|e| map_err("connect", e))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| map_err("connect", e))?;
        let version = docker.client_version();
        Ok(Self {
            docker: Arc::new(std::sync::OnceLock::from(docker)),
            path: path.to_string(),
            version,
        })
    }

    /// The client; connects (checks the socket exists) on first use.
    fn client(&self) -> RtResult<&Docker> {
        if let Some(d) = self.docker.get() {
            return Ok(d);
        }
        let d = Docker::connect_with_socket(&self.path, 120, &self.version)
            .map_err(|e| map_err("connect", e))?;
        Ok(self.docker.get_or_init(|| d))
    }
}

impl DockerRuntime {
    /// A client for the socket at `path` that connects on first use, speaking API 1.41
    /// (Docker 20.10 and later, Podman 4 and later). Used at start-up so the agent comes up
    /// even while the engine is down.
    /// A missing socket is not an error here: every call then answers "unavailable" until
    /// the socket appears.
    pub fn lazy(path: &str) -> RtResult<Self> {
        let rt = Self {
            docker: Arc::new(std::sync::OnceLock::new()),
            path: path.to_string(),
            version: bollard::ClientVersion {
                major_version: 1,
                minor_version: 41,
            },
        };
        match rt.client() {
            Ok(_) | Err(RuntimeError::Unavailable(_)) => Ok(rt),
            Err(e) => Err(e),
        }
    }
}

/// `name` → `name:latest`; a reference with a tag or digest is kept (pulling a bare name would
/// pull every tag).
pub fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

fn label_filter(project: Option<&str>) -> HashMap<String, Vec<String>> {
    let f = match project {
        Some(p) => format!("{}={p}", labels::PROJECT),
        None => labels::PROJECT.to_string(),
    };
    [("label".to_string(), vec![f])].into()
}

fn state_of(s: Option<&str>) -> ContainerState {
    match s.unwrap_or_default() {
        "created" => ContainerState::Created,
        "running" => ContainerState::Running,
        "restarting" => ContainerState::Restarting,
        "paused" => ContainerState::Paused,
        "exited" => ContainerState::Exited,
        "dead" => ContainerState::Dead,
        "removing" => ContainerState::Removing,
        _ => ContainerState::Unknown,
    }
}

fn network_mode(spec: &plan::ContainerSpec) -> String {
    match &spec.network_mode {
        NetworkMode::Project => spec
            .networks
            .first()
            .map(|n| n.network.clone())
            .unwrap_or_else(|| "bridge".into()),
        NetworkMode::Bridge => "bridge".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::None => "none".into(),
        NetworkMode::Service(c) | NetworkMode::Container(c) => format!("container:{c}"),
    }
}

fn endpoint(a: &plan::NetworkAttachment) -> EndpointSettings {
    EndpointSettings {
        aliases: Some(a.aliases.clone()),
        ipam_config: (a.ipv4_address.is_some() || a.ipv6_address.is_some()).then(|| {
            bollard::models::EndpointIpamConfig {
                ipv4_address: a.ipv4_address.clone(),
                ipv6_address: a.ipv6_address.clone(),
                ..Default::default()
            }
        }),
        ..Default::default()
    }
}

fn mounts(spec: &plan::ContainerSpec) -> Vec<ApiMount> {
    spec.mounts
        .iter()
        .map(|m| match m {
            Mount::Bind {
                source,
                target,
                read_only,
            } => ApiMount {
                typ: Some(MountType::BIND),
                source: Some(source.display().to_string()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            },
            Mount::Volume {
                name,
                target,
                read_only,
            } => ApiMount {
                typ: Some(MountType::VOLUME),
                source: name.clone(),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            },
            Mount::Tmpfs { target, size } => ApiMount {
                typ: Some(MountType::TMPFS),
                target: Some(target.clone()),
                tmpfs_options: size.map(|s| MountTmpfsOptions {
                    size_bytes: Some(s as i64),
                    ..Default::default()
                }),
                ..Default::default()
            },
        })
        .collect()
}

fn port_key(port: u16, proto: plan::Protocol) -> String {
    format!("{port}/{}", proto.as_str())
}

fn restart_policy(r: &Restart) -> RestartPolicy {
    let (name, count) = match r {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, n.map(i64::from)),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    }
}

/// The exposed ports: the published ones and `expose`, `port/proto`, sorted, once each.
fn exposed_ports(spec: &plan::ContainerSpec) -> Vec<String> {
    let mut exposed: Vec<String> = spec
        .ports
        .iter()
        .map(|p| port_key(p.container_port, p.protocol))
        .collect();
    exposed.extend(spec.expose.iter().map(|e| {
        if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        }
    }));
    exposed.sort();
    exposed.dedup();
    exposed
}

fn port_bindings(spec: &plan::ContainerSpec) -> HashMap<String, Option<Vec<ApiPortBinding>>> {
    let mut bindings: HashMap<String, Option<Vec<ApiPortBinding>>> = HashMap::new();
    for p in &spec.ports {
        bindings
            .entry(port_key(p.container_port, p.protocol))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(ApiPortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
            });
    }
    bindings
}

fn host_config(spec: &plan::ContainerSpec) -> HostConfig {
    let cgroupns_mode = spec.cgroupns.as_deref().map(|m| match m {
        "host" => HostConfigCgroupnsModeEnum::HOST,
        _ => HostConfigCgroupnsModeEnum::PRIVATE,
    });
    HostConfig {
        mounts: Some(mounts(spec)),
        port_bindings: Some(port_bindings(spec)),
        network_mode: Some(network_mode(spec)),
        restart_policy: Some(restart_policy(&spec.restart)),
        cgroupns_mode,
        device_cgroup_rules: (!spec.device_cgroup_rules.is_empty())
            .then(|| spec.device_cgroup_rules.clone()),
        devices: Some(
            spec.devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.host.clone()),
                    path_in_container: Some(d.container.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect(),
        ),
        device_requests: (!spec.gpus.is_empty()).then(|| {
            spec.gpus
                .iter()
                .map(|g| DeviceRequest {
                    driver: g.driver.clone(),
                    count: Some(g.count),
                    device_ids: (!g.device_ids.is_empty()).then(|| g.device_ids.clone()),
                    capabilities: (!g.capabilities.is_empty())
                        .then(|| vec![g.capabilities.clone()]),
                    options: None,
                })
                .collect()
        }),
        cap_add: Some(spec.cap_add.clone()),
        cap_drop: Some(spec.cap_drop.clone()),
        privileged: Some(spec.privileged),
        extra_hosts: Some(spec.extra_hosts.clone()),
        dns: (!spec.dns.is_empty()).then(|| spec.dns.clone()),
        sysctls: (!spec.sysctls.is_empty()).then(|| spec.sysctls.clone().into_iter().collect()),
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        shm_size: spec.shm_size.map(|s| s as i64),
        memory: spec.memory_limit.map(|m| m as i64),
        memory_reservation: spec.memory_reservation.map(|m| m as i64),
        nano_cpus: spec.nano_cpus,
        cpu_shares: spec.cpu_shares,
        pids_limit: spec.pids_limit,
        log_config: spec.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: l.driver.clone(),
            config: Some(l.options.clone().into_iter().collect()),
        }),
        pid_mode: spec.pid.clone(),
        ipc_mode: spec.ipc.clone(),
        uts_mode: spec.uts.clone(),
        userns_mode: spec.userns_mode.clone(),
        security_opt: Some(spec.security_opt.clone()),
        group_add: (!spec.group_add.is_empty()).then(|| spec.group_add.clone()),
        init: spec.init,
        readonly_rootfs: Some(spec.read_only),
        runtime: spec.runtime.clone(),
        ..Default::default()
    }
}

fn create_body(spec: &plan::ContainerSpec) -> ContainerCreateBody {
    let host_config = host_config(spec);
    let first_net = match spec.network_mode {
        NetworkMode::Project => spec.networks.first(),
        _ => None,
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: Some(exposed_ports(spec)),
        hostname: spec.hostname.clone(),
        domainname: spec.domainname.clone(),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
            test: (!h.test.is_empty()).then(|| h.test.clone()),
            interval: h.interval_ns,
            timeout: h.timeout_ns,
            retries: h.retries.map(i64::from),
            start_period: h.start_period_ns,
            start_interval: h.start_interval_ns,
        }),
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec.stop_grace_period_ns.map(|ns| ns / 1_000_000_000),
        tty: Some(spec.tty),
        open_stdin: Some(spec.stdin_open),
        host_config: Some(host_config),
        networking_config: first_net.map(|n| NetworkingConfig {
            endpoints_config: Some([(n.network.clone(), endpoint(n))].into()),
        }),
        ..Default::default()
    }
}

impl ContainerRuntime for DockerRuntime {
    fn ping(&self) -> BoxFuture<'_, RtResult<()>> {
        async move {
            self.client()?
                .ping()
                .await
                .map_err(|e| map_err("ping", e))?;
            Ok(())
        }
        .boxed()
    }

    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        progress: ProgressFn<'a>,
    ) -> BoxFuture<'a, RtResult<()>> {
        async move {
            let reference = with_tag(image);
            let opts = q::CreateImageOptions {
                from_image: Some(reference.clone()),
                ..Default::default()
            };
            let mut stream = self.client()?.create_image(Some(opts), None, None);
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| RuntimeError::Pull {
                    image: image.to_string(),
                    message: match e {
                        BollardError::DockerResponseServerError { message, .. } => message,
                        BollardError::DockerStreamError { error } => error,
                        other => other.to_string(),
                    },
                })?;
                if let (Some(layer), Some(detail)) = (info.id, info.progress_detail) {
                    progress(PullProgress {
                        image: image.to_string(),
                        layer,
                        status: info.status.unwrap_or_default(),
                        current: detail.current.unwrap_or(0).max(0) as u64,
                        total: detail.total.unwrap_or(0).max(0) as u64,
                    });
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn image_id<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<Option<String>>> {
        async move {
            match self.client()?.inspect_image(&with_tag(image)).await {
                Ok(i) => Ok(i.id),
                Err(e) => match map_err("image", e) {
                    RuntimeError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn image_digest<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<Option<String>>> {
        async move {
            match self.client()?.inspect_image(&with_tag(image)).await {
                Ok(i) => {
                    // The digest of this image's repository (an image can be in several).
                    let tagged = with_tag(image);
                    let repo = tagged
                        .rsplit_once(':')
                        .filter(|(_, tag)| !tag.contains('/'))
                        .map_or(tagged.as_str(), |(r, _)| r);
                    let digests = i.repo_digests.unwrap_or_default();
                    Ok(digests
                        .iter()
                        .find(|d| d.split_once('@').is_some_and(|(r, _)| r == repo))
                        .or(digests.first())
                        .cloned())
                }
                Err(e) => match map_err("image", e) {
                    RuntimeError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn registry_digest<'a>(&'a self, image: &'a str) -> BoxFuture<'a, RtResult<String>> {
        async move {
            let d = self
                .client()?
                .inspect_registry_image(&with_tag(image), None)
                .await
                .map_err(|e| match map_err(&format!("image {image}"), e) {
                    RuntimeError::Unavailable(m) => RuntimeError::Unavailable(m),
                    other => RuntimeError::Pull {
                        image: image.to_string(),
                        message: other.to_string(),
                    },
                })?;
            d.descriptor.digest.ok_or_else(|| RuntimeError::Pull {
                image: image.to_string(),
                message: "the registry gave no digest".into(),
            })
        }
        .boxed()
    }

    fn create_network<'a>(&'a self, spec: &'a NetworkSpec) -> BoxFuture<'a, RtResult<()>> {
        async move {
            let req = NetworkCreateRequest {
                name: spec.name.clone(),
                driver: Some(spec.driver.clone().unwrap_or_else(|| "bridge".into())),
                internal: Some(spec.internal),
                enable_ipv6: Some(spec.enable_ipv6),
                attachable: Some(true),
                labels: Some(spec.labels.clone().into_iter().collect()),
                ..Default::default()
            };
            self.client()?
                .create_network(req)
                .await
                .map_err(|e| map_err(&format!("network {}", spec.name), e))?;
            Ok(())
        }
        .boxed()
    }

    fn remove_network<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        async move {
            self.client()?
                .remove_network(name)
                .await
                .map_err(|e| map_err(&format!("network {name}"), e))
        }
        .boxed()
    }

    fn network_exists<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<bool>> {
        async move {
            match self
                .client()?
                .inspect_network(name, None::<q::InspectNetworkOptions>)
                .await
            {
                Ok(_) => Ok(true),
                Err(e) => match map_err("network", e) {
                    RuntimeError::NotFound(_) => Ok(false),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn create_volume<'a>(&'a self, spec: &'a VolumeSpec) -> BoxFuture<'a, RtResult<()>> {
        async move {
            let req = VolumeCreateRequest {
                name: Some(spec.name.clone()),
                driver: spec.driver.clone(),
                driver_opts: Some(spec.driver_opts.clone().into_iter().collect()),
                labels: Some(spec.labels.clone().into_iter().collect()),
                ..Default::default()
            };
            self.client()?
                .create_volume(req)
                .await
                .map_err(|e| map_err(&format!("volume {}", spec.name), e))?;
            Ok(())
        }
        .boxed()
    }

    fn remove_volume<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        async move {
            self.client()?
                .remove_volume(name, Some(q::RemoveVolumeOptions { force: true }))
                .await
                .map_err(|e| map_err(&format!("volume {name}"), e))
        }
        .boxed()
    }

    fn volume_exists<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<bool>> {
        async move {
            match self.client()?.inspect_volume(name).await {
                Ok(_) => Ok(true),
                Err(e) => match map_err("volume", e) {
                    RuntimeError::NotFound(_) => Ok(false),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn set_restart_policy<'a>(
        &'a self,
        name: &'a str,
        policy: &'a Restart,
    ) -> BoxFuture<'a, RtResult<()>> {
        async move {
            let body = ContainerUpdateBody {
                restart_policy: Some(restart_policy(policy)),
                ..Default::default()
            };
            self.client()?
                .update_container(name, body)
                .await
                .map_err(|e| map_err(&format!("container {name}"), e))
        }
        .boxed()
    }

    fn create_container<'a>(
        &'a self,
        spec: &'a plan::ContainerSpec,
    ) -> BoxFuture<'a, RtResult<String>> {
        async move {
            let what = format!("container {}", spec.name);
            let opts = q::CreateContainerOptions {
                name: Some(spec.name.clone()),
                platform: String::new(),
            };
            let created = self
                .client()?
                .create_container(Some(opts), create_body(spec))
                .await
                .map_err(|e| map_err(&what, e))?;
            // The engine attaches one network at create time; the rest are connected here.
            if spec.network_mode == NetworkMode::Project {
                for n in spec.networks.iter().skip(1) {
                    let req = NetworkConnectRequest {
                        container: created.id.clone(),
                        endpoint_config: Some(endpoint(n)),
                    };
                    self.client()?
                        .connect_network(&n.network, req)
                        .await
                        .map_err(|e| map_err(&what, e))?;
                }
            }
            Ok(created.id)
        }
        .boxed()
    }

    fn start_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        async move {
            self.client()?
                .start_container(name, None::<q::StartContainerOptions>)
                .await
                .map_err(|e| map_err(&format!("container {name}"), e))
        }
        .boxed()
    }

    fn stop_container<'a>(
        &'a self,
        name: &'a str,
        timeout_s: Option<i64>,
    ) -> BoxFuture<'a, RtResult<()>> {
        async move {
            let opts = q::StopContainerOptions {
                t: timeout_s.map(|t| t as i32),
                signal: None,
            };
            match self.client()?.stop_container(name, Some(opts)).await {
                Ok(()) => Ok(()),
                // 304: already stopped.
                Err(BollardError::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(e) => Err(map_err(&format!("container {name}"), e)),
            }
        }
        .boxed()
    }

    fn restart_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        async move {
            self.client()?
                .restart_container(name, None::<q::RestartContainerOptions>)
                .await
                .map_err(|e| map_err(&format!("container {name}"), e))
        }
        .boxed()
    }

    fn remove_container<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<()>> {
        async move {
            let opts = q::RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            };
            self.client()?
                .remove_container(name, Some(opts))
                .await
                .map_err(|e| map_err(&format!("container {name}"), e))
        }
        .boxed()
    }

    fn inspect_container<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, RtResult<Option<ContainerStatus>>> {
        async move {
            let c = match self
                .client()?
                .inspect_container(name, None::<q::InspectContainerOptions>)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    return match map_err(&format!("container {name}"), e) {
                        RuntimeError::NotFound(_) => Ok(None),
                        other => Err(other),
                    };
                }
            };
            let state = c.state.unwrap_or_default();
            let health = match state.health.and_then(|h| h.status) {
                Some(HealthStatusEnum::STARTING) => Health::Starting,
                Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
                Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
                _ => Health::None,
            };
            let status = state.status.map(|s| s.to_string());
            Ok(Some(ContainerStatus {
                id: c.id.unwrap_or_default(),
                name: c
                    .name
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                state: state_of(status.as_deref()),
                health,
                exit_code: state.exit_code,
                image_id: c.image.unwrap_or_default(),
                labels: c
                    .config
                    .and_then(|cfg| cfg.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            }))
        }
        .boxed()
    }

    fn project_objects<'a>(
        &'a self,
        project: Option<&'a str>,
    ) -> BoxFuture<'a, RtResult<ProjectObjects>> {
        async move {
            let what = "list";
            let containers = self
                .client()?
                .list_containers(Some(q::ListContainersOptions {
                    all: true,
                    filters: Some(label_filter(project)),
                    ..Default::default()
                }))
                .await
                .map_err(|e| map_err(what, e))?;
            let networks = self
                .client()?
                .list_networks(Some(q::ListNetworksOptions {
                    filters: Some(label_filter(project)),
                }))
                .await
                .map_err(|e| map_err(what, e))?;
            let volumes = self
                .client()?
                .list_volumes(Some(q::ListVolumesOptions {
                    filters: Some(label_filter(project)),
                }))
                .await
                .map_err(|e| map_err(what, e))?;
            Ok(ProjectObjects {
                containers: containers
                    .into_iter()
                    .map(|c| {
                        let health = match c
                            .health
                            .and_then(|h| h.status)
                            .map(|s| s.to_string())
                            .as_deref()
                        {
                            Some("healthy") => Health::Healthy,
                            Some("unhealthy") => Health::Unhealthy,
                            Some("starting") => Health::Starting,
                            _ => Health::None,
                        };
                        ContainerStatus {
                            id: c.id.unwrap_or_default(),
                            name: c
                                .names
                                .and_then(|n| n.into_iter().next())
                                .unwrap_or_default()
                                .trim_start_matches('/')
                                .to_string(),
                            state: state_of(c.state.map(|s| s.to_string()).as_deref()),
                            health,
                            exit_code: None,
                            image_id: c.image_id.unwrap_or_default(),
                            labels: c.labels.unwrap_or_default().into_iter().collect(),
                        }
                    })
                    .collect(),
                networks: networks.into_iter().filter_map(|n| n.name).collect(),
                volumes: volumes
                    .volumes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| v.name)
                    .collect(),
            })
        }
        .boxed()
    }

    fn logs<'a>(&'a self, name: &'a str, opts: LogOptions) -> BoxStream<'a, RtResult<LogLine>> {
        let o = q::LogsOptions {
            follow: opts.follow,
            stdout: true,
            stderr: true,
            tail: opts.tail.map_or("all".to_string(), |t| t.to_string()),
            ..Default::default()
        };
        let docker = match self.client() {
            Ok(d) => d,
            Err(e) => return futures_util::stream::once(async move { Err(e) }).boxed(),
        };
        docker
            .logs(name, Some(o))
            .map_err(move |e| map_err(&format!("logs of {name}"), e))
            .try_filter_map(move |out| async move {
                use bollard::container::LogOutput;
                let (stream, msg) = match out {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        (LogStream::Stdout, message)
                    }
                    LogOutput::StdErr { message } => (LogStream::Stderr, message),
                    LogOutput::StdIn { .. } => return Ok(None),
                };
                let text = String::from_utf8_lossy(&msg)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                Ok(Some(LogLine {
                    container: name.to_string(),
                    stream,
                    text,
                }))
            })
            .boxed()
    }

    fn stats<'a>(&'a self, name: &'a str) -> BoxFuture<'a, RtResult<Stats>> {
        async move {
            let mut s = self.client()?.stats(
                name,
                Some(q::StatsOptions {
                    stream: false,
                    one_shot: false,
                }),
            );
            let st = s
                .next()
                .await
                .ok_or_else(|| RuntimeError::Engine(format!("no stats for {name}")))?
                .map_err(|e| map_err(&format!("stats of {name}"), e))?;
            let total = |c: &Option<bollard::models::ContainerCpuStats>| {
                c.as_ref()
                    .and_then(|c| c.cpu_usage.as_ref())
                    .and_then(|u| u.total_usage)
                    .unwrap_or(0)
            };
            let system = |c: &Option<bollard::models::ContainerCpuStats>| {
                c.as_ref().and_then(|c| c.system_cpu_usage).unwrap_or(0)
            };
            let cpus = st
                .cpu_stats
                .as_ref()
                .and_then(|c| c.online_cpus)
                .unwrap_or(1)
                .max(1);
            let d_cpu = total(&st.cpu_stats).saturating_sub(total(&st.precpu_stats)) as f64;
            let d_sys = system(&st.cpu_stats).saturating_sub(system(&st.precpu_stats)) as f64;
            let cpu_percent = if d_sys > 0.0 {
                d_cpu / d_sys * f64::from(cpus) * 100.0
            } else {
                0.0
            };
            let mem = st.memory_stats.unwrap_or_default();
            let cache = mem
                .stats
                .as_ref()
                .and_then(|s| s.get("inactive_file").or_else(|| s.get("cache")).copied())
                .unwrap_or(0);
            let (rx, tx) = st
                .networks
                .unwrap_or_default()
                .values()
                .fold((0, 0), |(r, t), n| {
                    (r + n.rx_bytes.unwrap_or(0), t + n.tx_bytes.unwrap_or(0))
                });
            Ok(Stats {
                cpu_percent,
                memory_bytes: mem.usage.unwrap_or(0).saturating_sub(cache),
                memory_limit_bytes: mem.limit.unwrap_or(0),
                net_rx_bytes: rx,
                net_tx_bytes: tx,
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The agent starts while Docker is down, its socket not even there (the unit does not
    /// wait for Docker): calls answer "unavailable", and work once the socket appears.
    #[tokio::test]
    async fn a_missing_socket_is_unavailable_until_it_appears() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let rt = DockerRuntime::lazy(path.to_str().expect("utf-8")).expect("a missing socket");
        let err = rt.ping().await.expect_err("nothing listens");
        assert!(matches!(err, RuntimeError::Unavailable(_)), "{err}");
        // Something that answers /_ping the way the engine does.
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).await.expect("read");
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK",
            )
            .await
            .expect("write");
            request
        });
        rt.ping().await.expect("answers once the socket is there");
        let request = server.await.expect("server");
        assert!(request.starts_with("GET /_ping "), "{request}");
    }

    #[test]
    fn bare_image_names_get_the_latest_tag() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b:latest");
        assert_eq!(with_tag("127.0.0.1:5000/a/b:2"), "127.0.0.1:5000/a/b:2");
        assert_eq!(with_tag("a@sha256:00"), "a@sha256:00");
    }
}
