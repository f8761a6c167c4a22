//! Turns one Compose service into a [`ContainerSpec`], collecting the networks, volumes, host
//! folders, files and host ports the whole app needs along the way.

use super::paths::{self, PathZone};
use super::ports::{self, Allocator, Protocol};
use super::spec::*;
use super::units;
use super::{PlanError, PlanInput, PortStrategy};
use crate::apps::compose::{
    self, ComposeFile, DeviceEntry, FileRef, Service, StringOrList, VolumeEntry,
};
use crate::apps::{labels, names};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub(super) struct Context<'a> {
    pub app_id: &'a str,
    pub input: &'a PlanInput<'a>,
    pub app_dir: PathBuf,
    pub project_dir: PathBuf,
    /// Container names per service, decided up front (for `network_mode: service:X`).
    pub container_names: BTreeMap<String, String>,
    pub configs: BTreeMap<String, compose::ConfigDef>,
    pub secrets: BTreeMap<String, compose::ConfigDef>,
}

impl<'a> Context<'a> {
    pub fn new(app_id: &'a str, input: &'a PlanInput<'a>, file: &ComposeFile) -> Self {
        let container_names = file
            .services
            .iter()
            .map(|(k, s)| {
                let name = s
                    .container_name
                    .clone()
                    .unwrap_or_else(|| format!("{app_id}-{k}-1"));
                (k.clone(), name)
            })
            .collect();
        Self {
            app_id,
            input,
            app_dir: input.device.app_data_root.join(app_id),
            project_dir: input.device.projects_dir.join(app_id),
            container_names,
            configs: file.configs.clone(),
            secrets: file.secrets.clone(),
        }
    }
}

pub(super) struct Built {
    pub containers: Vec<ContainerSpec>,
    pub networks: Vec<NetworkSpec>,
    pub volumes: Vec<VolumeSpec>,
    pub host_folders: Vec<PathBuf>,
    pub files: Vec<FileSpec>,
    pub ports: Vec<PortAssignment>,
}

pub(super) struct Builder<'a, 'b> {
    ctx: Context<'a>,
    alloc: &'b mut Allocator<'a>,
    containers: Vec<ContainerSpec>,
    networks_used: BTreeSet<String>,
    volumes_used: BTreeSet<String>,
    host_folders: BTreeSet<PathBuf>,
    files: Vec<FileSpec>,
    ports: Vec<PortAssignment>,
}

fn shell_split(service: &str, what: &str, v: &StringOrList) -> Result<Vec<String>, PlanError> {
    match v {
        StringOrList::List(l) => Ok(l.clone()),
        StringOrList::String(s) => shlex::split(s).ok_or_else(|| {
            PlanError::service(service, format!("{what}: unbalanced quotes in {s:?}"))
        }),
    }
}

fn env_file_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

fn extra_hosts(s: &Service) -> Vec<String> {
    s.extra_hosts
        .iter()
        .flat_map(|m| m.0.iter())
        .map(|(h, ip)| format!("{h}:{}", ip.as_deref().unwrap_or_default()))
        .collect()
}

fn sysctls(s: &Service) -> BTreeMap<String, String> {
    s.sysctls
        .iter()
        .flat_map(|m| m.0.iter())
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect()
}

fn ulimits(s: &Service) -> Vec<Ulimit> {
    s.ulimits
        .iter()
        .flatten()
        .map(|(n, u)| match u {
            compose::Ulimit::Single(v) => Ulimit {
                name: n.clone(),
                soft: *v,
                hard: *v,
            },
            compose::Ulimit::Pair { soft, hard } => Ulimit {
                name: n.clone(),
                soft: *soft,
                hard: *hard,
            },
        })
        .collect()
}

fn logging(s: &Service) -> Option<LogConfig> {
    s.logging.as_ref().map(|l| LogConfig {
        driver: l.driver.clone(),
        options: l
            .options
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
    })
}

impl<'a, 'b> Builder<'a, 'b> {
    pub fn new(ctx: Context<'a>, alloc: &'b mut Allocator<'a>) -> Self {
        Self {
            ctx,
            alloc,
            containers: Vec::new(),
            networks_used: BTreeSet::new(),
            volumes_used: BTreeSet::new(),
            host_folders: BTreeSet::new(),
            files: Vec::new(),
            ports: Vec::new(),
        }
    }

    pub fn add(
        &mut self,
        name: &str,
        s: &Service,
        warnings: &mut Vec<String>,
    ) -> Result<(), PlanError> {
        let err = |m: String| PlanError::service(name, m);
        let container_name = self.ctx.container_names[name].clone();
        names::check_docker_name(&container_name, "container name").map_err(err)?;
        if self.ctx.input.names_in_use.contains(&container_name) {
            return Err(PlanError::NameClash {
                service: name.to_string(),
                name: container_name,
            });
        }
        let network_mode = self.network_mode(name, s)?;
        for l in &s.links {
            let svc = l.split(':').next().unwrap_or_default();
            if !self.ctx.container_names.contains_key(svc) {
                return Err(err(format!(
                    "links {l:?}: {svc:?} is not a service of this app"
                )));
            }
        }
        let env = self.env(name, s)?;
        let (port_bindings, expose) = self.publish(name, s, &network_mode, warnings)?;
        let mounts = self.mounts(name, s)?;
        let networks = self.attachments(name, s, &network_mode);
        let mut spec = ContainerSpec {
            service: name.to_string(),
            name: container_name,
            image: s.image.clone().unwrap_or_default().trim().to_string(),
            command: s
                .command
                .as_ref()
                .map(|c| shell_split(name, "command", c))
                .transpose()?,
            entrypoint: s
                .entrypoint
                .as_ref()
                .map(|c| shell_split(name, "entrypoint", c))
                .transpose()?,
            env,
            labels: BTreeMap::new(),
            ports: port_bindings,
            expose,
            mounts,
            network_mode,
            networks,
            restart: restart(name, s.restart.as_deref())?,
            devices: devices(name, &s.devices)?,
            gpus: Vec::new(),
            cap_add: s.cap_add.clone(),
            cap_drop: s.cap_drop.clone(),
            privileged: s.privileged.unwrap_or(false),
            user: s.user.as_ref().map(|u| u.0.clone()),
            working_dir: s.working_dir.clone(),
            hostname: s.hostname.clone(),
            domainname: s.domainname.clone(),
            extra_hosts: extra_hosts(s),
            dns: s.dns.as_ref().map(|d| d.items()).unwrap_or_default(),
            sysctls: sysctls(s),
            ulimits: ulimits(s),
            shm_size: s
                .shm_size
                .as_ref()
                .map(|v| units::bytes(v.as_str()))
                .transpose()
                .map_err(err)?,
            memory_limit: None,
            memory_reservation: None,
            nano_cpus: None,
            cpu_shares: s.cpu_shares,
            pids_limit: None,
            logging: logging(s),
            healthcheck: healthcheck(name, s.healthcheck.as_ref())?,
            depends_on: depends_on(name, s)?,
            pid: s.pid.clone(),
            ipc: s.ipc.clone(),
            uts: s.uts.clone(),
            userns_mode: s.userns_mode.clone(),
            security_opt: s.security_opt.clone(),
            group_add: s.group_add.iter().map(|g| g.0.clone()).collect(),
            stop_grace_period_ns: s
                .stop_grace_period
                .as_deref()
                .map(units::duration_ns)
                .transpose()
                .map_err(err)?,
            stop_signal: s.stop_signal.clone(),
            tty: s.tty.unwrap_or(false),
            stdin_open: s.stdin_open.unwrap_or(false),
            init: s.init,
            read_only: s.read_only.unwrap_or(false),
            runtime: s.runtime.clone(),
            platform: s.platform.clone(),
            cgroupns: cgroup(name, s.cgroup.as_deref())?,
            device_cgroup_rules: s.device_cgroup_rules.clone(),
        };
        spec.pid = self.namespace(name, "pid", s.pid.as_deref())?;
        spec.ipc = self.namespace(name, "ipc", s.ipc.as_deref())?;
        resources(name, s, &mut spec)?;
        gpus(name, s, &mut spec)?;
        self.file_refs(name, s, &mut spec)?;
        self.volumes_from(name, s, &mut spec)?;
        unsupported(name, s)?;
        spec.labels = self.labels(name, s, &spec);
        self.containers.push(spec);
        Ok(())
    }

    /// `pid`/`ipc`: `service:X` becomes the container of X (Docker only knows `container:`).
    fn namespace(
        &self,
        name: &str,
        what: &str,
        v: Option<&str>,
    ) -> Result<Option<String>, PlanError> {
        let Some(v) = v else { return Ok(None) };
        match v.strip_prefix("service:") {
            Some(other) => {
                let cname = self.ctx.container_names.get(other).ok_or_else(|| {
                    PlanError::service(name, format!("{what} names unknown service {other:?}"))
                })?;
                Ok(Some(format!("container:{cname}")))
            }
            None => Ok(Some(v.to_string())),
        }
    }

    /// `volumes_from: [service[:ro|:rw]]` inside the app: the other service's mounts are copied,
    /// so the policy sees them as this container's own. Other containers are refused: their
    /// mounts are not known when planning.
    fn volumes_from(
        &self,
        name: &str,
        s: &Service,
        spec: &mut ContainerSpec,
    ) -> Result<(), PlanError> {
        for vf in &s.volumes_from {
            let (source, mode) = match vf.split_once(':') {
                Some(("container", rest)) => {
                    return Err(PlanError::service(
                        name,
                        format!(
                            "volumes_from container:{rest}: mounting another container's                              volumes is not supported (it may belong to another app)"
                        ),
                    ));
                }
                Some((svc, m)) => (svc, m),
                None => (vf.as_str(), "rw"),
            };
            let ro = match mode {
                "ro" => true,
                "rw" => false,
                other => {
                    return Err(PlanError::service(
                        name,
                        format!("volumes_from {vf:?}: unknown mode {other:?}"),
                    ));
                }
            };
            let from = self
                .containers
                .iter()
                .find(|c| c.service == source)
                .ok_or_else(|| {
                    PlanError::service(
                        name,
                        format!("volumes_from {source:?} is not a service of this app"),
                    )
                })?;
            for m in &from.mounts {
                let mut m = m.clone();
                if let Mount::Bind { read_only, .. } | Mount::Volume { read_only, .. } = &mut m {
                    *read_only |= ro;
                }
                if !matches!(m, Mount::Tmpfs { .. })
                    && !spec.mounts.iter().any(|x| x.target() == m.target())
                {
                    spec.mounts.push(m);
                }
            }
        }
        Ok(())
    }

    fn network_mode(&self, name: &str, s: &Service) -> Result<NetworkMode, PlanError> {
        let mode = match s.network_mode.as_deref() {
            None => NetworkMode::Project,
            // Docker's default bridge is shared by every container on the device; an app gets
            // its own network instead (the same reachability for its own services).
            Some("bridge") | Some("default") => NetworkMode::Bridge,
            Some("host") => NetworkMode::Host,
            Some("none") => NetworkMode::None,
            Some(m) if m.starts_with("service:") => {
                let other = &m["service:".len()..];
                let cname = self.ctx.container_names.get(other).ok_or_else(|| {
                    PlanError::service(
                        name,
                        format!("network_mode names unknown service {other:?}"),
                    )
                })?;
                NetworkMode::Service(cname.clone())
            }
            Some(m) if m.starts_with("container:") => {
                NetworkMode::Container(m["container:".len()..].to_string())
            }
            Some(m) => {
                return Err(PlanError::service(
                    name,
                    format!("unknown network_mode {m:?}"),
                ));
            }
        };
        if mode != NetworkMode::Project && s.networks.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(PlanError::service(
                name,
                "network_mode and networks cannot be used together",
            ));
        }
        if mode == NetworkMode::Bridge {
            return Ok(NetworkMode::Project);
        }
        Ok(mode)
    }

    fn env(&self, name: &str, s: &Service) -> Result<BTreeMap<String, String>, PlanError> {
        let mut env = BTreeMap::new();
        for (path, required) in s.env_file.iter().flat_map(|e| e.entries()) {
            match self.ctx.input.env_files.get(&path) {
                Some(text) => env.extend(env_file_pairs(text)),
                None if required => {
                    return Err(PlanError::MissingFile {
                        service: name.to_string(),
                        path,
                    });
                }
                None => {}
            }
        }
        for (k, v) in s.environment.iter().flat_map(|e| e.0.iter()) {
            match v {
                Some(v) => {
                    env.insert(k.clone(), v.clone());
                }
                // `- KEY` without a value takes it from the user's variables, else is left out.
                None => {
                    if let Some(v) = self.ctx.input.settings.vars.get(k) {
                        env.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        if let Some(over) = self.ctx.input.settings.env.get(name) {
            env.extend(over.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(env)
    }

    fn publish(
        &mut self,
        name: &str,
        s: &Service,
        mode: &NetworkMode,
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<PortBinding>, Vec<String>), PlanError> {
        let mut bindings = Vec::new();
        let may_move = self.ctx.input.port_strategy == PortStrategy::Reassign;
        let overrides = self.ctx.input.settings.ports.get(name);
        let shares_ns = matches!(mode, NetworkMode::Service(_) | NetworkMode::Container(_));
        for entry in &s.ports {
            let req = ports::parse(entry).map_err(|m| PlanError::service(name, m))?;
            if shares_ns || *mode == NetworkMode::None {
                warnings.push(format!(
                    "services.{name}: ports are ignored with this network_mode"
                ));
                continue;
            }
            let key = format!("{}/{}", req.container, req.protocol.as_str());
            let over = overrides.and_then(|o| {
                o.get(&key).or_else(|| {
                    (req.protocol == Protocol::Tcp)
                        .then(|| o.get(&req.container.to_string()))
                        .flatten()
                })
            });
            let (wanted, may_move) = match over {
                Some(p) => (Some(*p), false),
                None => (req.published, may_move),
            };
            let host = match wanted {
                None => None,
                Some(w) => Some(
                    self.alloc
                        .take(w, req.count, req.protocol, may_move)
                        .map_err(|port| PlanError::PortClash {
                            service: name.to_string(),
                            port,
                            protocol: req.protocol.as_str(),
                        })?,
                ),
            };
            for i in 0..req.count {
                let hp = host.map(|h| h + i);
                self.ports.push(PortAssignment {
                    service: name.to_string(),
                    container_port: req.container + i,
                    protocol: req.protocol,
                    requested: req.published.map(|p| p + i),
                    host_port: hp,
                });
                if *mode != NetworkMode::Host {
                    bindings.push(PortBinding {
                        host_ip: req.host_ip.clone(),
                        host_port: hp,
                        container_port: req.container + i,
                        protocol: req.protocol,
                    });
                }
            }
        }
        if *mode == NetworkMode::Host && !s.ports.is_empty() {
            warnings.push(format!(
                "services.{name}: uses the host network, so its ports are the host's own and \
                 are not published"
            ));
        }
        let expose = s.expose.iter().map(|e| e.0.clone()).collect();
        Ok((bindings, expose))
    }

    fn bind_source(&mut self, name: &str, target: &str, src: &str) -> PathBuf {
        let over = self
            .ctx
            .input
            .settings
            .volumes
            .get(name)
            .and_then(|m| m.get(target));
        let src = over.map_or(src, |s| s.as_str());
        let d = self.ctx.input.device;
        let path = paths::map_source(src, &self.ctx.app_dir, &d.app_data_root, &d.user_data_root);
        if paths::zone(&path, &d.app_data_root, &d.user_data_root) != PathZone::Outside {
            self.host_folders.insert(path.clone());
        }
        path
    }

    fn mounts(&mut self, name: &str, s: &Service) -> Result<Vec<Mount>, PlanError> {
        let mut out = Vec::new();
        for v in &s.volumes {
            out.push(match v {
                VolumeEntry::Short(text) => self.short_volume(name, text)?,
                VolumeEntry::Long(l) => {
                    let target = l
                        .target
                        .clone()
                        .ok_or_else(|| PlanError::service(name, "a volume needs a `target`"))?;
                    let ro = l.read_only.unwrap_or(false);
                    long_volume_options(name, l)?;
                    match l.kind.as_deref().unwrap_or("volume") {
                        "bind" => {
                            let src = l.source.as_deref().ok_or_else(|| {
                                PlanError::service(name, "a bind mount needs a `source`")
                            })?;
                            let source = self.bind_source(name, &target, src);
                            Mount::Bind {
                                source,
                                target,
                                read_only: ro,
                            }
                        }
                        "volume" => Mount::Volume {
                            name: l
                                .source
                                .as_deref()
                                .map(|k| self.volume_name(name, k))
                                .transpose()?,
                            target,
                            read_only: ro,
                        },
                        "tmpfs" => Mount::Tmpfs {
                            target,
                            size: l
                                .tmpfs
                                .as_ref()
                                .and_then(|t| t.size.as_ref())
                                .map(|s| units::bytes(s.as_str()))
                                .transpose()
                                .map_err(|m| PlanError::service(name, m))?,
                        },
                        other => {
                            return Err(PlanError::service(
                                name,
                                format!("volume type {other:?} is not supported"),
                            ));
                        }
                    }
                }
            });
        }
        for t in s.tmpfs.iter().flat_map(|t| t.items()) {
            let target = t.split(':').next().unwrap_or_default().to_string();
            out.push(Mount::Tmpfs { target, size: None });
        }
        for m in &out {
            if !m.target().starts_with('/') {
                return Err(PlanError::service(
                    name,
                    format!("mount target {:?} must be an absolute path", m.target()),
                ));
            }
        }
        Ok(out)
    }

    fn short_volume(&mut self, name: &str, text: &str) -> Result<Mount, PlanError> {
        let parts: Vec<&str> = text.split(':').collect();
        let (src, target, mode) = match parts.as_slice() {
            [t] => (None, *t, ""),
            [s, t] => (Some(*s), *t, ""),
            [s, t, m] => (Some(*s), *t, *m),
            _ => {
                return Err(PlanError::service(
                    name,
                    format!("volume {text:?} is malformed"),
                ));
            }
        };
        let mut ro = false;
        for m in mode.split(',').filter(|m| !m.is_empty()) {
            match m {
                "ro" => ro = true,
                // Hints for Docker Desktop's file sharing and copy-on-create: no access change.
                "rw" | "cached" | "delegated" | "consistent" | "nocopy" | "private"
                | "rprivate" => {}
                other => {
                    return Err(PlanError::service(
                        name,
                        format!(
                            "volume {text:?}: mode {other:?} is not supported (mount                              propagation and SELinux relabelling are refused)"
                        ),
                    ));
                }
            }
        }
        let target = target.to_string();
        Ok(match src {
            None => Mount::Volume {
                name: None,
                target,
                read_only: ro,
            },
            Some(s) if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') => {
                if s.starts_with('~') {
                    return Err(PlanError::service(
                        name,
                        format!("volume source {s:?}: home-relative paths are not supported"),
                    ));
                }
                let source = self.bind_source(name, &target, s);
                Mount::Bind {
                    source,
                    target,
                    read_only: ro,
                }
            }
            Some(key) => Mount::Volume {
                name: Some(self.volume_name(name, key)?),
                target,
                read_only: ro,
            },
        })
    }

    /// The Docker name of the named volume `key`, which must be declared at the top level.
    fn volume_name(&mut self, service: &str, key: &str) -> Result<String, PlanError> {
        names::check_docker_name(key, "volume name").map_err(|m| PlanError::service(service, m))?;
        self.volumes_used.insert(key.to_string());
        Ok(key.to_string())
    }

    fn attachments(
        &mut self,
        _name: &str,
        s: &Service,
        mode: &NetworkMode,
    ) -> Vec<NetworkAttachment> {
        if *mode != NetworkMode::Project {
            return Vec::new();
        }
        let nets: Vec<(String, compose::ServiceNetwork)> = match &s.networks {
            Some(m) if !m.is_empty() => m
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect(),
            _ => vec![("default".to_string(), compose::ServiceNetwork::default())],
        };
        nets.into_iter()
            .map(|(key, n)| {
                self.networks_used.insert(key.clone());
                let mut aliases = vec![_name.to_string()];
                aliases.extend(n.aliases.iter().filter(|a| a.as_str() != _name).cloned());
                NetworkAttachment {
                    network: key,
                    aliases,
                    ipv4_address: n.ipv4_address.clone(),
                    ipv6_address: n.ipv6_address.clone(),
                }
            })
            .collect()
    }

    /// Compose `configs`/`secrets` become files in the app's folder, bound read-only.
    fn file_refs(
        &mut self,
        name: &str,
        s: &Service,
        spec: &mut ContainerSpec,
    ) -> Result<(), PlanError> {
        let refs = s
            .configs
            .iter()
            .map(|r| (r, "configs", "/"))
            .chain(s.secrets.iter().map(|r| (r, "secrets", "/run/secrets/")));
        for (r, kind, default_dir) in refs {
            let (source, target) = match r {
                FileRef::Name(n) => (n.clone(), None),
                FileRef::Long { source, target, .. } => (source.clone(), target.clone()),
            };
            let defs = if kind == "configs" {
                &self.ctx.configs
            } else {
                &self.ctx.secrets
            };
            let def = defs.get(&source).ok_or_else(|| {
                PlanError::service(
                    name,
                    format!("{kind}: {source:?} is not declared at the top level"),
                )
            })?;
            if def.external == Some(true) {
                return Err(PlanError::service(
                    name,
                    format!("{kind}: {source:?} is external, which is not supported"),
                ));
            }
            let content =
                if let Some(c) = &def.content {
                    c.clone()
                } else if let Some(f) = &def.file {
                    self.ctx.input.env_files.get(f).cloned().ok_or_else(|| {
                        PlanError::MissingFile {
                            service: name.to_string(),
                            path: f.clone(),
                        }
                    })?
                } else if let Some(var) = &def.environment {
                    self.ctx
                        .input
                        .settings
                        .vars
                        .get(var)
                        .cloned()
                        .unwrap_or_default()
                } else {
                    return Err(PlanError::service(
                        name,
                        format!("{kind}: {source:?} has no content, file or environment"),
                    ));
                };
            names::check_docker_name(&source, "config name")
                .map_err(|m| PlanError::service(name, m))?;
            let path = self.ctx.app_dir.join(".hearth").join(kind).join(&source);
            if !self.files.iter().any(|f| f.path == path) {
                self.files.push(FileSpec {
                    path: path.clone(),
                    content,
                });
            }
            let target = target.unwrap_or_else(|| format!("{default_dir}{source}"));
            let target = if target.starts_with('/') {
                target
            } else {
                format!("/{target}")
            };
            spec.mounts.push(Mount::Bind {
                source: path,
                target,
                read_only: true,
            });
        }
        Ok(())
    }

    fn labels(&self, name: &str, s: &Service, spec: &ContainerSpec) -> BTreeMap<String, String> {
        let mut l: BTreeMap<String, String> = s
            .labels
            .iter()
            .flat_map(|m| m.0.iter())
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect();
        let project_dir = self.ctx.project_dir.display().to_string();
        let deps: Vec<String> = spec
            .depends_on
            .iter()
            .map(|d| {
                let cond = match d.condition {
                    DependencyCondition::ServiceStarted => "service_started",
                    DependencyCondition::ServiceHealthy => "service_healthy",
                    DependencyCondition::ServiceCompletedSuccessfully => {
                        "service_completed_successfully"
                    }
                };
                format!("{}:{cond}:false", d.service)
            })
            .collect();
        for (k, v) in [
            (labels::PROJECT, self.ctx.app_id.to_string()),
            (labels::SERVICE, name.to_string()),
            (labels::CONTAINER_NUMBER, "1".to_string()),
            (labels::ONEOFF, "False".to_string()),
            (labels::VERSION, labels::COMPOSE_VERSION.to_string()),
            (labels::WORKING_DIR, project_dir.clone()),
            (
                labels::CONFIG_FILES,
                format!("{project_dir}/docker-compose.yml"),
            ),
            (labels::DEPENDS_ON, deps.join(",")),
            (labels::IMAGE, spec.image.clone()),
            (labels::HEARTH_APP, self.ctx.app_id.to_string()),
        ] {
            l.insert(k.to_string(), v);
        }
        l
    }

    pub fn finish(
        mut self,
        file: &ComposeFile,
        warnings: &mut Vec<String>,
    ) -> Result<Built, PlanError> {
        let app = self.ctx.app_id;
        let base_labels = |kind: &str, key: &str, extra: Option<&compose::ListOrMap>| {
            let mut l: BTreeMap<String, String> = extra
                .iter()
                .flat_map(|m| m.0.iter())
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect();
            l.insert(labels::PROJECT.into(), app.to_string());
            l.insert(kind.into(), key.to_string());
            l.insert(labels::VERSION.into(), labels::COMPOSE_VERSION.into());
            l.insert(labels::HEARTH_APP.into(), app.to_string());
            l
        };
        let mut networks = Vec::new();
        for key in &self.networks_used {
            let def = file.networks.get(key).cloned().unwrap_or_default();
            if def.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(PlanError::service(
                    "-",
                    format!("networks.{key}: driver_opts are not supported"),
                ));
            }
            if def.ipam.is_some() {
                warnings.push(format!(
                    "networks.{key}: ipam is not used; Docker picks the subnet"
                ));
            }
            let external = def.external.unwrap_or(false);
            let name = match (&def.name, external) {
                (Some(n), _) => n.clone(),
                (None, true) => key.clone(),
                (None, false) => format!("{app}_{key}"),
            };
            names::check_docker_name(&name, "network name")
                .map_err(|m| PlanError::service("-", format!("networks.{key}: {m}")))?;
            networks.push(NetworkSpec {
                key: key.clone(),
                name,
                driver: def.driver.clone(),
                internal: def.internal.unwrap_or(false),
                external,
                enable_ipv6: def.enable_ipv6.unwrap_or(false),
                labels: base_labels(labels::NETWORK, key, def.labels.as_ref()),
            });
        }
        let mut volumes = Vec::new();
        for key in &self.volumes_used {
            let def = file.volumes.get(key).ok_or_else(|| {
                PlanError::service(
                    "-",
                    format!(
                        "volume {key:?} is used but not declared under the top-level `volumes`"
                    ),
                )
            })?;
            let external = def.external.unwrap_or(false);
            let name = match (&def.name, external) {
                (Some(n), _) => n.clone(),
                (None, true) => key.clone(),
                (None, false) => format!("{app}_{key}"),
            };
            volumes.push(VolumeSpec {
                key: key.clone(),
                name,
                driver: def.driver.clone(),
                external,
                driver_opts: def
                    .driver_opts
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
                labels: base_labels(labels::VOLUME, key, def.labels.as_ref()),
            });
        }
        let net_name: BTreeMap<&str, &str> = networks
            .iter()
            .map(|n| (n.key.as_str(), n.name.as_str()))
            .collect();
        let vol_name: BTreeMap<&str, &str> = volumes
            .iter()
            .map(|v| (v.key.as_str(), v.name.as_str()))
            .collect();
        for c in &mut self.containers {
            for a in &mut c.networks {
                if let Some(n) = net_name.get(a.network.as_str()) {
                    a.network = n.to_string();
                }
            }
            for m in &mut c.mounts {
                if let Mount::Volume { name: Some(n), .. } = m
                    && let Some(docker) = vol_name.get(n.as_str())
                {
                    *n = docker.to_string();
                }
            }
        }
        // Folders that are parents of files to write are created too.
        for f in &self.files {
            if let Some(parent) = f.path.parent() {
                self.host_folders.insert(parent.to_path_buf());
            }
        }
        Ok(Built {
            containers: self.containers,
            networks,
            volumes,
            host_folders: self.host_folders.into_iter().collect(),
            files: self.files,
            ports: self.ports,
        })
    }
}

/// Options of a long-form volume that Hearth does not carry out are refused, not dropped.
fn long_volume_options(name: &str, l: &compose::VolumeLong) -> Result<(), PlanError> {
    let refuse = |what: &str| {
        Err(PlanError::service(
            name,
            format!(
                "volume {:?}: {what} is not supported",
                l.target.as_deref().unwrap_or_default()
            ),
        ))
    };
    if let Some(b) = &l.bind {
        if b.propagation
            .as_deref()
            .is_some_and(|p| !matches!(p, "private" | "rprivate"))
        {
            return refuse("bind.propagation other than private");
        }
        if b.selinux.is_some() {
            return refuse("bind.selinux (relabelling host files)");
        }
    }
    if l.volume.as_ref().is_some_and(|v| v.subpath.is_some()) {
        return refuse("volume.subpath");
    }
    Ok(())
}

fn cgroup(name: &str, v: Option<&str>) -> Result<Option<String>, PlanError> {
    match v {
        None => Ok(None),
        Some(m @ ("host" | "private")) => Ok(Some(m.to_string())),
        Some(other) => Err(PlanError::service(
            name,
            format!("cgroup {other:?}: must be host or private"),
        )),
    }
}

/// Keys the model reads so that they are refused with a clear reason instead of ignored.
fn unsupported(name: &str, s: &Service) -> Result<(), PlanError> {
    let refuse = |m: &str| Err(PlanError::service(name, m.to_string()));
    if s.cgroup_parent.is_some() {
        return refuse("cgroup_parent is not supported");
    }
    if !s.external_links.is_empty() {
        return refuse("external_links is not supported: it reaches containers of other apps");
    }
    Ok(())
}

/// `gpus: all` or `gpus: [{driver, count, ...}]`, as Docker device requests.
fn gpus(name: &str, s: &Service, spec: &mut ContainerSpec) -> Result<(), PlanError> {
    match &s.gpus {
        None => {}
        Some(compose::Gpus::All(a)) if a == "all" => spec.gpus.push(GpuRequest {
            driver: None,
            count: -1,
            device_ids: Vec::new(),
            capabilities: vec!["gpu".into()],
        }),
        Some(compose::Gpus::All(other)) => {
            return Err(PlanError::service(
                name,
                format!("gpus {other:?}: must be \"all\" or a list of device requests"),
            ));
        }
        Some(compose::Gpus::List(l)) => {
            for d in l {
                spec.gpus.push(gpu_request(name, d)?);
            }
        }
    }
    Ok(())
}

fn gpu_request(name: &str, d: &compose::DeviceRequest) -> Result<GpuRequest, PlanError> {
    if d.options.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(PlanError::service(
            name,
            "device request options are not supported",
        ));
    }
    let count = match d.count.as_ref().map(|c| c.as_str()) {
        None if d.device_ids.is_empty() => -1,
        None => 0,
        Some("all") => -1,
        Some(n) => n.parse().map_err(|_| {
            PlanError::service(
                name,
                format!("device count {n:?} is not a number or \"all\""),
            )
        })?,
    };
    Ok(GpuRequest {
        driver: d.driver.clone(),
        count,
        device_ids: d.device_ids.clone(),
        capabilities: d.capabilities.clone(),
    })
}

fn restart(name: &str, r: Option<&str>) -> Result<RestartPolicy, PlanError> {
    Ok(match r.unwrap_or("no") {
        "no" | "" => RestartPolicy::No,
        "always" => RestartPolicy::Always,
        "unless-stopped" => RestartPolicy::UnlessStopped,
        "on-failure" => RestartPolicy::OnFailure(None),
        other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(n)) => RestartPolicy::OnFailure(Some(n)),
            _ => {
                return Err(PlanError::service(
                    name,
                    format!("unknown restart policy {other:?}"),
                ));
            }
        },
    })
}

fn devices(name: &str, list: &[DeviceEntry]) -> Result<Vec<DeviceMapping>, PlanError> {
    list.iter()
        .map(|d| {
            let (host, container, perms) = match d {
                DeviceEntry::Short(s) => {
                    let p: Vec<&str> = s.split(':').collect();
                    match p.as_slice() {
                        [h] => (h.to_string(), h.to_string(), None),
                        [h, c] => (h.to_string(), c.to_string(), None),
                        [h, c, m] => (h.to_string(), c.to_string(), Some(m.to_string())),
                        _ => {
                            return Err(PlanError::service(
                                name,
                                format!("device {s:?} is malformed"),
                            ));
                        }
                    }
                }
                DeviceEntry::Long {
                    source,
                    target,
                    permissions,
                } => (
                    source.clone(),
                    target.clone().unwrap_or_else(|| source.clone()),
                    permissions.clone(),
                ),
            };
            if !host.starts_with('/') {
                return Err(PlanError::service(
                    name,
                    format!("device {host:?} must be a path"),
                ));
            }
            Ok(DeviceMapping {
                host,
                container,
                permissions: perms.unwrap_or_else(|| "rwm".into()),
            })
        })
        .collect()
}

fn healthcheck(
    name: &str,
    h: Option<&compose::Healthcheck>,
) -> Result<Option<Healthcheck>, PlanError> {
    let Some(h) = h else { return Ok(None) };
    let dur = |v: &Option<String>| {
        v.as_deref()
            .map(units::duration_ns)
            .transpose()
            .map_err(|m| PlanError::service(name, format!("healthcheck: {m}")))
    };
    let test = if h.disable == Some(true) {
        vec!["NONE".to_string()]
    } else {
        match &h.test {
            None => Vec::new(),
            Some(StringOrList::String(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
            Some(StringOrList::List(l)) => l.clone(),
        }
    };
    if let Some(first) = test.first()
        && !["CMD", "CMD-SHELL", "NONE"].contains(&first.as_str())
    {
        return Err(PlanError::service(
            name,
            "healthcheck.test must start with CMD, CMD-SHELL or NONE",
        ));
    }
    if test.is_empty() && h.interval.is_none() && h.timeout.is_none() && h.retries.is_none() {
        return Ok(None);
    }
    Ok(Some(Healthcheck {
        test,
        interval_ns: dur(&h.interval)?,
        timeout_ns: dur(&h.timeout)?,
        start_period_ns: dur(&h.start_period)?,
        start_interval_ns: dur(&h.start_interval)?,
        retries: h.retries,
    }))
}

fn depends_on(name: &str, s: &Service) -> Result<Vec<Dependency>, PlanError> {
    s.depends_on
        .iter()
        .flatten()
        .map(|(svc, d)| {
            let d = d.clone().unwrap_or_default();
            let condition = match d.condition.as_deref().unwrap_or("service_started") {
                "service_started" => DependencyCondition::ServiceStarted,
                "service_healthy" => DependencyCondition::ServiceHealthy,
                "service_completed_successfully" => {
                    DependencyCondition::ServiceCompletedSuccessfully
                }
                other => {
                    return Err(PlanError::service(
                        name,
                        format!("depends_on {svc}: unknown condition {other:?}"),
                    ));
                }
            };
            Ok(Dependency {
                service: svc.clone(),
                condition,
                required: d.required.unwrap_or(true),
            })
        })
        .collect()
}

fn resources(name: &str, s: &Service, spec: &mut ContainerSpec) -> Result<(), PlanError> {
    let err = |m: String| PlanError::service(name, m);
    let size = |v: Option<&compose::de::Scalar>| v.map(|v| units::bytes(v.as_str())).transpose();
    let res = s.deploy.as_ref().and_then(|d| d.resources.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let reservations = res.and_then(|r| r.reservations.as_ref());
    spec.memory_limit = size(
        limits
            .and_then(|l| l.memory.as_ref())
            .or(s.mem_limit.as_ref()),
    )
    .map_err(err)?;
    spec.memory_reservation = size(
        reservations
            .and_then(|l| l.memory.as_ref())
            .or(s.mem_reservation.as_ref()),
    )
    .map_err(err)?;
    if let (Some(l), Some(r)) = (spec.memory_limit, spec.memory_reservation)
        && r > l
    {
        // Docker refuses a reservation above the limit; the limit is what protects the device.
        spec.memory_reservation = Some(l);
    }
    let cpus = limits.and_then(|l| l.cpus.as_ref()).or(s.cpus.as_ref());
    spec.nano_cpus = cpus
        .map(|c| {
            c.as_str()
                .parse::<f64>()
                .map(|f| (f * 1e9) as i64)
                .map_err(|_| err(format!("cpus {:?} is not a number", c.as_str())))
        })
        .transpose()?;
    spec.pids_limit = limits.and_then(|l| l.pids);
    for d in reservations.iter().flat_map(|r| r.devices.iter()) {
        spec.gpus.push(gpu_request(name, d)?);
    }
    if limits.is_some_and(|l| !l.devices.is_empty()) {
        return Err(err(
            "deploy.resources.limits.devices is not supported".into()
        ));
    }
    Ok(())
}
