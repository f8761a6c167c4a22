//! The one container policy. It judges every plan that reaches the runtime — store install,
//! custom install, update, settings edit, and every installed app again at start-up — by the
//! *effective access* each container gets, whatever compose key granted it: host paths (bind
//! mounts in any syntax, `local` volumes with `o: bind`, block devices and network shares behind
//! volume `driver_opts`), other apps' folders, volumes, networks and containers, devices (paths
//! and cgroup rules), the host's namespaces (network, PID, IPC, UTS, user, cgroup), capabilities,
//! relaxed security options, runtimes, GPUs and log drivers that ship data off the container.
//! Each finding needs the admin's explicit consent for that app; [`unconsented`] is what the
//! lifecycle checks before it touches Docker.
//!
//! Pure: it reads the plan, the device's roots and (for [`judge_across`]) what other apps own,
//! never the disk. Symlinks are the lifecycle's job: it creates and re-checks bind sources with
//! `openat2` before every start (see `lifecycle::host`); [`swap`] states the invariant that
//! makes Docker's own restarts safe too.

mod access;
pub mod swap;

use super::plan::{ContainerSpec, DeviceSettings, NetworkMode, Plan};
pub use access::{Others, SourceZone, zone_of_source};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Privileged,
    HostNetwork,
    HostPid,
    HostIpc,
    HostUts,
    HostUserns,
    HostCgroup,
    SharedNamespace,
    HostSocket,
    HostPath,
    /// Another app's data folder, or the folder holding every app's data.
    AppData,
    /// A volume that is not the app's own (external, or another app's).
    SharedVolume,
    /// A network that is not the app's own (external, or another app's).
    SharedNetwork,
    /// A volume driver or `driver_opts` that mount something other than Docker's own storage.
    VolumeDriver,
    /// A network driver that puts the container on the host's links (macvlan, ipvlan, host).
    NetworkDriver,
    Device,
    DeviceRule,
    Gpu,
    Runtime,
    CapAdd,
    SecurityOpt,
    LogDriver,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Privileged => "privileged",
            FindingKind::HostNetwork => "host_network",
            FindingKind::HostPid => "host_pid",
            FindingKind::HostIpc => "host_ipc",
            FindingKind::HostUts => "host_uts",
            FindingKind::HostUserns => "host_userns",
            FindingKind::HostCgroup => "host_cgroup",
            FindingKind::SharedNamespace => "shared_namespace",
            FindingKind::HostSocket => "host_socket",
            FindingKind::HostPath => "host_path",
            FindingKind::AppData => "app_data",
            FindingKind::SharedVolume => "shared_volume",
            FindingKind::SharedNetwork => "shared_network",
            FindingKind::VolumeDriver => "volume_driver",
            FindingKind::NetworkDriver => "network_driver",
            FindingKind::Device => "device",
            FindingKind::DeviceRule => "device_rule",
            FindingKind::Gpu => "gpu",
            FindingKind::Runtime => "runtime",
            FindingKind::CapAdd => "cap_add",
            FindingKind::SecurityOpt => "security_opt",
            FindingKind::LogDriver => "log_driver",
        }
    }

    /// Every kind, for statistics and documentation.
    pub const ALL: [FindingKind; 22] = [
        FindingKind::Privileged,
        FindingKind::HostNetwork,
        FindingKind::HostPid,
        FindingKind::HostIpc,
        FindingKind::HostUts,
        FindingKind::HostUserns,
        FindingKind::HostCgroup,
        FindingKind::SharedNamespace,
        FindingKind::HostSocket,
        FindingKind::HostPath,
        FindingKind::AppData,
        FindingKind::SharedVolume,
        FindingKind::SharedNetwork,
        FindingKind::VolumeDriver,
        FindingKind::NetworkDriver,
        FindingKind::Device,
        FindingKind::DeviceRule,
        FindingKind::Gpu,
        FindingKind::Runtime,
        FindingKind::CapAdd,
        FindingKind::SecurityOpt,
        FindingKind::LogDriver,
    ];
}

/// One thing that needs consent. `id` is stable across plans of the same app, so a consent
/// recorded for `host_path:glances:/var/run/docker.sock` still applies after an update.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Finding {
    pub id: String,
    pub kind: FindingKind,
    pub service: String,
    /// The path, device, capability or option concerned (empty when the kind says it all).
    pub subject: String,
    pub message: String,
    /// The other installed app this finding reaches into ("shares data with nextcloud").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

fn finding(kind: FindingKind, c: &ContainerSpec, subject: &str, message: String) -> Finding {
    finding_for(kind, &c.service, subject, message)
}

fn finding_for(kind: FindingKind, service: &str, subject: &str, message: String) -> Finding {
    let id = if subject.is_empty() {
        format!("{}:{service}", kind.as_str())
    } else {
        format!("{}:{service}:{subject}", kind.as_str())
    };
    Finding {
        id,
        kind,
        service: service.to_string(),
        subject: subject.to_string(),
        message,
        app: None,
    }
}

/// Security options that only tighten confinement; anything else is a relaxation.
fn tightening(opt: &str) -> bool {
    let o = opt.replace('=', ":");
    o == "no-new-privileges" || o == "no-new-privileges:true"
}

/// Every finding of `plan` that can be known from the plan alone, sorted, without duplicates.
pub fn judge(plan: &Plan, device: &DeviceSettings) -> Vec<Finding> {
    judge_across(plan, device, &Others::default())
}

/// Every finding of `plan`, naming the other installed apps (`others`) it reaches into.
pub fn judge_across(plan: &Plan, device: &DeviceSettings, others: &Others) -> Vec<Finding> {
    let mut out = BTreeSet::new();
    let own: BTreeSet<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    for c in &plan.containers {
        namespace_findings(c, &own, others, &mut out);
        access::mount_findings(plan, c, device, others, &mut out);
        device_findings(c, &mut out);
    }
    access::volume_findings(plan, others, &mut out);
    access::network_findings(plan, others, &mut out);
    out.into_iter().collect()
}

fn device_findings(c: &ContainerSpec, out: &mut BTreeSet<Finding>) {
    for d in &c.devices {
        out.insert(finding(
            FindingKind::Device,
            c,
            &d.host,
            format!("uses the device {}", d.host),
        ));
    }
    for r in &c.device_cgroup_rules {
        out.insert(finding(
            FindingKind::DeviceRule,
            c,
            r,
            format!("may open devices by number ({r}): with mknod, any disk of the device"),
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
    if let Some(l) = &c.logging {
        let driver = l.driver.as_deref().unwrap_or("json-file");
        // Local drivers keep logs in Docker's own folder; every other driver sends them to a
        // host socket, a file or a server named in its options.
        if !matches!(driver, "json-file" | "local" | "none") {
            out.insert(finding(
                FindingKind::LogDriver,
                c,
                driver,
                format!(
                    "sends its logs through the {driver:?} log driver ({:?})",
                    l.options
                ),
            ));
        }
    }
}

fn namespace_findings(
    c: &ContainerSpec,
    own: &BTreeSet<&str>,
    others: &Others,
    out: &mut BTreeSet<Finding>,
) {
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
            out.insert(shared_ns(c, "network", other, others));
        }
        _ => {}
    }
    let host_ns = [
        (
            &c.pid,
            FindingKind::HostPid,
            "pid",
            "sees and signals every process on the host",
        ),
        (
            &c.ipc,
            FindingKind::HostIpc,
            "ipc",
            "shares the host's IPC namespace",
        ),
        (
            &c.uts,
            FindingKind::HostUts,
            "uts",
            "shares the host's UTS namespace (can set its name)",
        ),
        (
            &c.userns_mode,
            FindingKind::HostUserns,
            "user",
            "uses the host's user namespace",
        ),
        (
            &c.cgroupns,
            FindingKind::HostCgroup,
            "cgroup",
            "uses the host's cgroup namespace (sees and may change the host's cgroups)",
        ),
    ];
    for (value, kind, ns, what) in host_ns {
        match value.as_deref() {
            Some("host") => {
                out.insert(finding(kind, c, "", what.to_string()));
            }
            Some(v) if v.starts_with("container:") && !own.contains(&v["container:".len()..]) => {
                out.insert(shared_ns(c, ns, &v["container:".len()..], others));
            }
            _ => {}
        }
    }
}

fn shared_ns(c: &ContainerSpec, ns: &str, other: &str, others: &Others) -> Finding {
    let app = others.container_owner(other);
    let whose = match &app {
        Some(a) => format!("container {other} of the app {a}"),
        None => format!("container {other}, which is not part of this app"),
    };
    let subject = if ns == "network" {
        other.to_string()
    } else {
        format!("{ns}:{other}")
    };
    let mut f = finding(
        FindingKind::SharedNamespace,
        c,
        &subject,
        format!("joins the {ns} namespace of {whose}"),
    );
    f.app = app;
    f
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
