//! Disks: block devices from sysfs with their file systems (`blkid`), mounts, usage and SMART
//! health (`smartctl --json`), and formatting. Every external program gets an argument vector,
//! and device names from requests must match a strict grammar and a device that exists.
//!
//! The disk holding the running system (the root, `/var`, the boot partition or the agent's
//! data) is marked `system` and never formatted, whatever a request says.

mod format;
pub mod hotplug;
pub mod mount;
mod tools;

pub use format::{Filesystem, FormatRequest, format_disk};

use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("no disk named {0}")]
    NotFound(String),
    #[error("{0} holds the running system and cannot be changed")]
    SystemDisk(String),
    #[error("{0} is in use (mounted at {1}); unmount it first")]
    InUse(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("{program} failed: {message}")]
    Tool { program: String, message: String },
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Default)]
pub struct Usage {
    pub total_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Partition {
    pub name: String,
    pub path: String,
    pub number: u32,
    pub size_bytes: u64,
    pub fs_type: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub mount_points: Vec<String>,
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SmartHealth {
    pub passed: bool,
    pub temperature_celsius: Option<i64>,
    pub power_on_hours: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Disk {
    /// Kernel name, also the id in URLs (`sda`, `nvme0n1`, `mmcblk0`, `loop3`).
    pub name: String,
    pub path: String,
    pub size_bytes: u64,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// `usb`, `sata`, `nvme`, `sd`, `virtio`, `loop` or `other`.
    pub bus: String,
    pub removable: bool,
    pub rotational: bool,
    /// Holds the running system: never formatted, partitioned or unmounted.
    pub system: bool,
    /// A file system directly on the disk, without a partition table.
    pub fs_type: Option<String>,
    pub label: Option<String>,
    pub mount_points: Vec<String>,
    pub partitions: Vec<Partition>,
    pub smart: Option<SmartHealth>,
}

/// Where to look: `/sys` and `/proc` on a real system.
#[derive(Debug, Clone)]
pub struct Disks {
    sys: PathBuf,
    mounts_file: PathBuf,
    /// Paths whose disks count as the system's (the root, /var, boot, the data directory).
    system_paths: Vec<PathBuf>,
    /// Loop devices are listed only when asked (tests use them as disks).
    include_loop: bool,
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn sectors(path: &Path) -> u64 {
    read_trim(path)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        * 512
}

/// Kernel block-device names: lower-case letters and digits only.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl Disks {
    pub fn new(system_paths: Vec<PathBuf>, include_loop: bool) -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            mounts_file: PathBuf::from("/proc/self/mounts"),
            system_paths,
            include_loop,
        }
    }

    /// mount source device name → mount points.
    fn mounts(&self) -> HashMap<String, Vec<String>> {
        let text = std::fs::read_to_string(&self.mounts_file).unwrap_or_default();
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let (Some(dev), Some(mnt)) = (f.next(), f.next()) else {
                continue;
            };
            if let Some(name) = dev.strip_prefix("/dev/") {
                let name = resolve_mapper(name);
                map.entry(name)
                    .or_default()
                    .push(crate::status::procfs::unescape_octal(mnt));
            }
        }
        map
    }

    /// The whole-disk name a partition (or disk) belongs to.
    fn disk_of(&self, name: &str) -> Option<String> {
        let link = std::fs::canonicalize(self.sys.join("class/block").join(name)).ok()?;
        if link.join("partition").exists() {
            link.parent()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        } else {
            Some(name.to_string())
        }
    }

    /// Disks holding the system: for each system path, the disk of the mount that contains it.
    fn system_disks(&self, mounts: &HashMap<String, Vec<String>>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for path in &self.system_paths {
            let containing = mounts
                .iter()
                .flat_map(|(dev, points)| points.iter().map(move |p| (dev, p)))
                .filter(|(_, p)| path.starts_with(p))
                .max_by_key(|(_, p)| p.len());
            if let Some((dev, _)) = containing
                && let Some(disk) = self.disk_of(dev)
            {
                out.insert(disk);
            }
        }
        out
    }

    pub fn list(&self) -> Vec<Disk> {
        let mounts = self.mounts();
        let system = self.system_disks(&mounts);
        let mut names: Vec<String> = std::fs::read_dir(self.sys.join("block"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| self.describe(&name, &mounts, &system))
            .collect()
    }

    pub fn get(&self, name: &str) -> Result<Disk, DiskError> {
        if !valid_name(name) {
            return Err(DiskError::NotFound(name.chars().take(32).collect()));
        }
        self.list()
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| DiskError::NotFound(name.to_string()))
    }

    fn describe(
        &self,
        name: &str,
        mounts: &HashMap<String, Vec<String>>,
        system: &BTreeSet<String>,
    ) -> Option<Disk> {
        let dir = self.sys.join("block").join(name);
        let skip = ["ram", "zram", "sr", "fd", "dm-", "md"]
            .iter()
            .any(|p| name.starts_with(p));
        let is_loop = name.starts_with("loop");
        let size_bytes = sectors(&dir.join("size"));
        if skip || size_bytes == 0 || (is_loop && !self.include_loop) {
            return None;
        }
        let device_link = std::fs::canonicalize(dir.join("device"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bus = match () {
            _ if is_loop => "loop",
            _ if name.starts_with("nvme") => "nvme",
            _ if name.starts_with("mmcblk") => "sd",
            _ if device_link.contains("/usb") => "usb",
            _ if device_link.contains("virtio") || name.starts_with("vd") => "virtio",
            _ if device_link.contains("/ata") => "sata",
            _ => "other",
        };
        let mut partitions: Vec<Partition> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("partition").exists())
            .filter_map(|e| {
                let pname = e.file_name().to_string_lossy().into_owned();
                let pdir = e.path();
                let info = tools::blkid(&format!("/dev/{pname}"));
                let mount_points = mounts.get(&pname).cloned().unwrap_or_default();
                Some(Partition {
                    number: read_trim(&pdir.join("partition"))?.parse().ok()?,
                    path: format!("/dev/{pname}"),
                    size_bytes: sectors(&pdir.join("size")),
                    usage: mount_points.first().and_then(|m| usage(Path::new(m))),
                    fs_type: info.get("TYPE").cloned(),
                    label: info.get("LABEL").cloned(),
                    uuid: info.get("UUID").cloned(),
                    mount_points,
                    name: pname,
                })
            })
            .collect();
        partitions.sort_by_key(|p| p.number);
        let info = if partitions.is_empty() {
            tools::blkid(&format!("/dev/{name}"))
        } else {
            HashMap::new()
        };
        Some(Disk {
            path: format!("/dev/{name}"),
            size_bytes,
            model: read_trim(&dir.join("device/model")),
            serial: read_trim(&dir.join("device/serial"))
                .or_else(|| read_trim(&dir.join("serial"))),
            bus: bus.to_string(),
            removable: read_trim(&dir.join("removable")).as_deref() == Some("1"),
            rotational: read_trim(&dir.join("queue/rotational")).as_deref() == Some("1"),
            system: system.contains(name),
            fs_type: info.get("TYPE").cloned(),
            label: info.get("LABEL").cloned(),
            mount_points: mounts.get(name).cloned().unwrap_or_default(),
            partitions,
            smart: if is_loop {
                None
            } else {
                tools::smart(&format!("/dev/{name}"))
            },
            name: name.to_string(),
        })
    }
}

/// `mapper/x` and `dm-N` stay as they are; the disk behind them is not resolved (LVM and
/// encryption are not managed by Hearth).
fn resolve_mapper(name: &str) -> String {
    name.to_string()
}

fn usage(path: &Path) -> Option<Usage> {
    let st = rustix::fs::statvfs(path).ok()?;
    let total = st.f_blocks * st.f_frsize;
    Some(Usage {
        total_bytes: total,
        used_bytes: total.saturating_sub(st.f_bfree * st.f_frsize),
    })
}
