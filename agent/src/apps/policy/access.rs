//! Effective access through storage and networks: where each bind source lies (own data, another
//! app's, every app's, user data, the host), what a named volume really mounts (its driver and
//! `driver_opts`), and whose volumes and networks a container joins.

use super::{Finding, FindingKind, finding, finding_for};
use crate::apps::plan::{ContainerSpec, DeviceSettings, Mount, Plan};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// What the other installed apps own, by Docker name (for findings that name the app).
#[derive(Debug, Clone, Default)]
pub struct Others {
    ids: BTreeSet<String>,
    /// Every bind source of every other app, with the app.
    binds: Vec<(String, PathBuf)>,
    containers: BTreeMap<String, String>,
    volumes: BTreeMap<String, String>,
    networks: BTreeMap<String, String>,
}

impl Others {
    /// From the plans of the other installed apps.
    pub fn from_plans<'a>(plans: impl IntoIterator<Item = &'a Plan>) -> Self {
        let mut o = Others::default();
        for p in plans {
            o.ids.insert(p.app_id.clone());
            for c in &p.containers {
                o.containers.insert(c.name.clone(), p.app_id.clone());
                for m in &c.mounts {
                    if let Mount::Bind { source, .. } = m {
                        o.binds.push((p.app_id.clone(), source.clone()));
                    }
                }
            }
            for v in p.volumes.iter().filter(|v| !v.external) {
                o.volumes.insert(v.name.clone(), p.app_id.clone());
            }
            for n in p.networks.iter().filter(|n| !n.external) {
                o.networks.insert(n.name.clone(), p.app_id.clone());
            }
        }
        o
    }

    /// The other app whose data folder `folder` (a name under the app-data root) is: the app of
    /// that id, else an app that already mounts something in it.
    fn folder_owner(&self, folder: &str, app_data_root: &Path) -> Option<String> {
        if self.ids.contains(folder) {
            return Some(folder.to_string());
        }
        let dir = app_data_root.join(folder);
        self.binds
            .iter()
            .find(|(_, p)| p.starts_with(&dir))
            .map(|(a, _)| a.clone())
    }

    pub fn container_owner(&self, name: &str) -> Option<String> {
        self.containers.get(name).cloned()
    }

    fn volume_owner(&self, name: &str) -> Option<String> {
        self.volumes.get(name).cloned()
    }

    fn network_owner(&self, name: &str) -> Option<String> {
        self.networks.get(name).cloned()
    }
}

/// Where a bind source lies, from the point of view of app `app_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceZone {
    /// Under `<app-data>/<app_id>`.
    OwnAppData,
    /// Under `<app-data>/<other>`.
    OtherAppData(String),
    /// The app-data root, the projects folder, or a user-data folder that contains either.
    EveryApp,
    UserData,
    Outside,
}

pub fn zone_of_source(p: &Path, app_id: &str, d: &DeviceSettings) -> SourceZone {
    if let Ok(rel) = p.strip_prefix(&d.app_data_root) {
        return match rel.components().next() {
            Some(Component::Normal(n)) if n == app_id => SourceZone::OwnAppData,
            Some(Component::Normal(n)) => SourceZone::OtherAppData(n.to_string_lossy().into()),
            _ => SourceZone::EveryApp,
        };
    }
    let holds_every_app = d.app_data_root.starts_with(p) || d.projects_dir.starts_with(p);
    if p == d.projects_dir || (holds_every_app && p.starts_with(&d.user_data_root)) {
        return SourceZone::EveryApp;
    }
    // Parents of the roots outside the user-data zone (`/`, `/var/lib`) are host paths.
    if p.starts_with(&d.user_data_root) {
        SourceZone::UserData
    } else {
        SourceZone::Outside
    }
}

fn is_socket_path(p: &str) -> bool {
    p.ends_with(".sock")
        || p.ends_with("-sock")
        || p.starts_with("/run/")
        || p.starts_with("/var/run/")
        || p == "/run"
        || p == "/var/run"
}

pub(super) fn mount_findings(
    plan: &Plan,
    c: &ContainerSpec,
    device: &DeviceSettings,
    others: &Others,
    out: &mut BTreeSet<Finding>,
) {
    for m in &c.mounts {
        let Mount::Bind {
            source, read_only, ..
        } = m
        else {
            continue;
        };
        let p = source.display().to_string();
        let ro = if *read_only {
            "read-only"
        } else {
            "read-write"
        };
        let zone = zone_of_source(source, &plan.app_id, device);
        // A folder under the app-data root is another app's when that app exists or already
        // mounts it; otherwise this app claims it (several store apps name their folder
        // differently from their id). The own folder is shared when another app mounts it.
        let other = match &zone {
            SourceZone::OtherAppData(folder) => others.folder_owner(folder, &device.app_data_root),
            SourceZone::OwnAppData => others.folder_owner(&plan.app_id, &device.app_data_root),
            _ => None,
        };
        match zone {
            SourceZone::OwnAppData | SourceZone::OtherAppData(_) => {
                if let Some(app) = other {
                    let mut f = finding(
                        FindingKind::AppData,
                        c,
                        &p,
                        format!("shares data with {app}: mounts its folder {p} ({ro})"),
                    );
                    f.app = Some(app);
                    out.insert(f);
                }
            }
            SourceZone::UserData => {}
            SourceZone::EveryApp => {
                out.insert(finding(
                    FindingKind::AppData,
                    c,
                    &p,
                    format!("mounts {p} ({ro}), which holds every app's data"),
                ));
            }
            SourceZone::Outside => {
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
    }
}

/// Containers of `plan` that mount the volume with Docker name `name`.
fn users_of_volume<'a>(plan: &'a Plan, name: &'a str) -> impl Iterator<Item = &'a ContainerSpec> {
    plan.containers.iter().filter(move |c| {
        c.mounts
            .iter()
            .any(|m| matches!(m, Mount::Volume { name: Some(n), .. } if n == name))
    })
}

/// Filesystem types a `local` volume may mount that reach across the network.
const NETWORK_FS: [&str; 6] = ["nfs", "nfs4", "cifs", "smb3", "smbfs", "9p"];

pub(super) fn volume_findings(plan: &Plan, others: &Others, out: &mut BTreeSet<Finding>) {
    for v in &plan.volumes {
        let mut found: Vec<(FindingKind, String, String, Option<String>)> = Vec::new();
        let owner = others.volume_owner(&v.name);
        if v.external || owner.is_some() {
            let what = match &owner {
                Some(a) => format!("shares data with {a}: uses its volume {}", v.name),
                None => format!(
                    "uses the external volume {}, which this app does not own",
                    v.name
                ),
            };
            found.push((FindingKind::SharedVolume, v.name.clone(), what, owner));
        }
        if let Some(d) = v.driver.as_deref().filter(|d| *d != "local") {
            found.push((
                FindingKind::VolumeDriver,
                format!("{}:{d}", v.name),
                format!("stores the volume {} with the {d:?} volume driver", v.name),
                None,
            ));
        }
        if let Some(f) = driver_opts_finding(&v.name, &v.driver_opts) {
            found.push(f);
        }
        for c in users_of_volume(plan, &v.name) {
            for (kind, subject, message, app) in &found {
                let mut f = finding(*kind, c, subject, message.clone());
                f.app = app.clone();
                out.insert(f);
            }
        }
    }
}

/// What a `local` volume's `driver_opts` (`type`, `o`, `device`) mount: a host folder
/// (`o: bind`), a block device, a network share, or only memory (`type: tmpfs`).
fn driver_opts_finding(
    volume: &str,
    opts: &BTreeMap<String, String>,
) -> Option<(FindingKind, String, String, Option<String>)> {
    if opts.is_empty() {
        return None;
    }
    let fstype = opts.get("type").map(String::as_str).unwrap_or("");
    let device = opts.get("device").map(String::as_str).unwrap_or("");
    let o = opts.get("o").map(String::as_str).unwrap_or("");
    let bind = o
        .split(',')
        .any(|x| x.trim() == "bind" || x.trim() == "rbind");
    let known = opts
        .keys()
        .all(|k| matches!(k.as_str(), "type" | "o" | "device"));
    if bind {
        return Some((
            FindingKind::HostPath,
            device.to_string(),
            format!("mounts the host path {device:?} through the volume {volume}"),
            None,
        ));
    }
    if fstype == "tmpfs" && known && (device.is_empty() || device == "tmpfs") {
        return None;
    }
    if NETWORK_FS.contains(&fstype) {
        return Some((
            FindingKind::VolumeDriver,
            format!("{volume}:{fstype}"),
            format!("mounts the network share {device:?} ({fstype}) through the volume {volume}"),
            None,
        ));
    }
    if device.starts_with("/dev/") || !device.is_empty() {
        return Some((
            FindingKind::Device,
            device.to_string(),
            format!("mounts {device:?} ({fstype}) through the volume {volume}"),
            None,
        ));
    }
    Some((
        FindingKind::VolumeDriver,
        format!("{volume}:{fstype}"),
        format!("mounts the volume {volume} with driver options {opts:?}"),
        None,
    ))
}

pub(super) fn network_findings(plan: &Plan, others: &Others, out: &mut BTreeSet<Finding>) {
    for n in &plan.networks {
        let owner = others.network_owner(&n.name);
        let mut found: Vec<(FindingKind, String, String, Option<String>)> = Vec::new();
        if n.external || owner.is_some() {
            let what = match &owner {
                Some(a) => format!("joins the network {} of the app {a}", n.name),
                None => format!(
                    "joins the external network {}, which this app does not own",
                    n.name
                ),
            };
            found.push((FindingKind::SharedNetwork, n.name.clone(), what, owner));
        }
        if let Some(d) = n.driver.as_deref().filter(|d| *d != "bridge") {
            found.push((
                FindingKind::NetworkDriver,
                format!("{}:{d}", n.name),
                format!(
                    "attaches to the network {} with the {d:?} driver (beyond an isolated bridge)",
                    n.name
                ),
                None,
            ));
        }
        for c in plan
            .containers
            .iter()
            .filter(|c| c.networks.iter().any(|a| a.network == n.name))
        {
            for (kind, subject, message, app) in &found {
                let mut f = finding_for(*kind, &c.service, subject, message.clone());
                f.app = app.clone();
                out.insert(f);
            }
        }
    }
}
