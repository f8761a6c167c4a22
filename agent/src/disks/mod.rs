//! Disks: block devices with their file systems, mounts, usage and SMART health; formatting,
//! persistent mounts, eject and hot-plug. [`Service`] owns the behaviour (what may be formatted,
//! mounted or ejected, what is remembered across reboots, what a hot-plug event does); the
//! operating system is reached only through the [`BlockDevices`] trait (real adapter:
//! [`SysfsDevices`]; in-memory fake: [`FakeBlockDevices`]) and `SystemControl` for mount units.
//! Device names from requests must match a strict grammar and a device that exists.
//!
//! The disk holding the running system (the root, `/var`, the boot partition or the agent's
//! data) is marked `system` and never formatted, mounted, unmounted or ejected, whatever a
//! request says.

mod devices;
mod fake;
mod format;
pub mod hotplug;
pub mod mount;
mod service;
mod sysfs;
mod tools;

pub use devices::BlockDevices;
pub use fake::FakeBlockDevices;
pub use format::{Filesystem, FormatRequest};
pub use service::Service;
pub use sysfs::SysfsDevices;

use serde::Serialize;
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

/// Kernel block-device names: lower-case letters and digits only.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}
