//! The one container policy. It judges every plan that reaches the runtime — store install,
//! custom install, update, settings edit — and lists what gives an app power over the device:
//! privileged mode, the host's network/PID/IPC/UTS/user namespaces, host sockets such as
//! `docker.sock`, bind mounts outside the app-data and user-data roots, devices and GPUs, added
//! capabilities, and relaxed security options. Each finding needs the admin's explicit consent
//! for that app; [`unconsented`] is what the lifecycle checks before it touches Docker.
//!
//! Pure: it reads the plan and the device's roots, never the disk (symlinks are the lifecycle's
//! job, at folder creation).

use super::plan::{ContainerSpec, DeviceSettings, Mount, NetworkMode, PathZone, Plan, zone};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Privileged,
    HostNetwork,
    HostPid,
    HostIpc,
    HostUts,
    HostUserns,
    SharedNamespace,
    HostSocket,
    HostPath,
    Device,
    Gpu,
    Runtime,
    CapAdd,
    SecurityOpt,
}

impl FindingKind {
    fn as_str(self) -> &'static str {
        match self {
            FindingKind::Privileged => "privileged",
            FindingKind::HostNetwork => "host_network",
            FindingKind::HostPid => "host_pid",
            FindingKind::HostIpc => "host_ipc",
            FindingKind::HostUts => "host_uts",
            FindingKind::HostUserns => "host_userns",
            FindingKind::SharedNamespace => "shared_namespace",
            FindingKind::HostSocket => "host_socket",
            FindingKind::HostPath => "host_path",
            FindingKind::Device => "device",
            FindingKind::Gpu => "gpu",
            FindingKind::Runtime => "runtime",
            FindingKind::CapAdd => "cap_add",
            FindingKind::SecurityOpt => "security_opt",
        }
    }
}

/// One thing that needs consent. `id` is stable across plans of the same app, so a consent
/// recorded for `host_path:glances:/var/run/docker.sock` still applies after an update.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    pub kind: FindingKind,
    pub service: String,
    /// The path, device, capability or option concerned (empty when the kind says it all).
    pub subject: String,
    pub message: String,
}

fn finding(kind: FindingKind, c: &ContainerSpec, subject: &str, message: String) -> Finding {
    let id = if subject.is_empty() {
        format!("{}:{}", kind.as_str(), c.service)
    } else {
        format!("{}:{}:{subject}", kind.as_str(), c.service)
    };
    Finding {
        id,
        kind,
        service: c.service.clone(),
        subject: subject.to_string(),
        message,
    }
}

/// Security options that only tighten confinement; anything else is a relaxation.
fn tightening(opt: &str) -> bool {
    let o = opt.replace('=', ":");
    o == "no-new-privileges" || o == "no-new-privileges:true"
}

fn is_socket_path(p: &str) -> bool {
    p.ends_with(".sock")
        || p.ends_with("-sock")
        || p.starts_with("/run/")
        || p.starts_with("/var/run/")
        || p == "/run"
        || p == "/var/run"
}

/// Every finding of `plan`, sorted, without duplicates.
pub fn judge(plan: &Plan, device: &DeviceSettings) -> Vec<Finding> {
    let mut out = BTreeSet::new();
    let own: BTreeSet<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    for c in &plan.containers {
        namespace_findings(c, &own, &mut out);
        for m in &c.mounts {
            if let Mount::Bind {
                source, read_only, ..
            } = m
                && zone(source, &device.app_data_root, &device.user_data_root) == PathZone::Outside
            {
                let p = source.display().to_string();
                let ro = if *read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                let f = if p.ends_with("docker.sock") || p.ends_with("podman.sock") {
                    finding(
                        FindingKind::HostSocket,
                        c,
                        &p,
                        format!(
                            "mounts the container engine's socket {p}: full control of the device"
                        ),
                    )
                } else if is_socket_path(&p) {
                    finding(
                        FindingKind::HostSocket,
                        c,
                        &p,
                        format!("mounts the host socket or run-time folder {p} ({ro})"),
                    )
                } else {
                    finding(
                        FindingKind::HostPath,
                        c,
                        &p,
                        format!("mounts {p} ({ro}), outside the app-data and user-data folders"),
                    )
                };
                out.insert(f);
            }
        }
        for d in &c.devices {
            out.insert(finding(
                FindingKind::Device,
                c,
                &d.host,
                format!("uses the device {}", d.host),
            ));
        }
        if !c.gpus.is_empty() {
            out.insert(finding(
                FindingKind::Gpu,
                c,
                "",
                "uses the device's GPUs".into(),
            ));
        }
        if let Some(r) = &c.runtime {
            out.insert(finding(
                FindingKind::Runtime,
                c,
                r,
                format!("runs under the {r:?} container runtime"),
            ));
        }
        for cap in &c.cap_add {
            let cap = cap.trim_start_matches("CAP_").to_ascii_uppercase();
            out.insert(finding(
                FindingKind::CapAdd,
                c,
                &cap,
                format!("adds the capability {cap}"),
            ));
        }
        for opt in c.security_opt.iter().filter(|o| !tightening(o)) {
            out.insert(finding(
                FindingKind::SecurityOpt,
                c,
                opt,
                format!("relaxes confinement: {opt}"),
            ));
        }
    }
    out.into_iter().collect()
}

fn namespace_findings(c: &ContainerSpec, own: &BTreeSet<&str>, out: &mut BTreeSet<Finding>) {
    if c.privileged {
        out.insert(finding(
            FindingKind::Privileged,
            c,
            "",
            "runs privileged: all devices and capabilities, no confinement".into(),
        ));
    }
    match &c.network_mode {
        NetworkMode::Host => {
            out.insert(finding(
                FindingKind::HostNetwork,
                c,
                "",
                "uses the host's network".into(),
            ));
        }
        NetworkMode::Container(other) if !own.contains(other.as_str()) => {
            out.insert(finding(
                FindingKind::SharedNamespace,
                c,
                other,
                format!("joins the network of container {other}, which is not part of this app"),
            ));
        }
        _ => {}
    }
    let host_ns = [
        (
            &c.pid,
            FindingKind::HostPid,
            "sees and signals every process on the host",
        ),
        (
            &c.ipc,
            FindingKind::HostIpc,
            "shares the host's IPC namespace",
        ),
        (
            &c.uts,
            FindingKind::HostUts,
            "shares the host's UTS namespace (can set its name)",
        ),
        (
            &c.userns_mode,
            FindingKind::HostUserns,
            "uses the host's user namespace",
        ),
    ];
    for (value, kind, what) in host_ns {
        match value.as_deref() {
            Some("host") => {
                out.insert(finding(kind, c, "", what.to_string()));
            }
            Some(v) if v.starts_with("container:") && !own.contains(&v["container:".len()..]) => {
                out.insert(finding(
                    FindingKind::SharedNamespace,
                    c,
                    v,
                    format!("shares a namespace with {v}, which is not part of this app"),
                ));
            }
            _ => {}
        }
    }
}

/// Findings not covered by `consented` ids.
pub fn unconsented<'a>(findings: &'a [Finding], consented: &BTreeSet<String>) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| !consented.contains(&f.id))
        .collect()
}

#[cfg(test)]
mod tests;
