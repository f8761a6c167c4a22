//! Mounting disks as systemd mount units under Hearth's control: transient units started over
//! D-Bus (so systemd tracks and unmounts them cleanly), recorded in the store and started again
//! when the agent starts, so mounts come back after a reboot. Mount points live in one folder
//! Hearth owns; their names come from kernel device names, never from request text.

use super::{Disk, DiskError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A mount the agent keeps across reboots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedMount {
    /// File-system UUID: device names can change between boots, UUIDs do not.
    pub uuid: String,
    pub fs_type: String,
    pub mount_point: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub unit: String,
    pub what: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub options: String,
    pub uuid: Option<String>,
}

const SUPPORTED: [&str; 5] = ["ext4", "btrfs", "exfat", "vfat", "xfs"];

/// systemd's path escaping (`systemd-escape --path`): `/`→`-`, and anything but ASCII
/// alphanumerics, `_` and a non-leading `.` as `\xNN`.
pub fn unit_name_for(path: &Path) -> String {
    let text = path.to_string_lossy();
    let trimmed = text.trim_matches('/');
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i > 0 => out.push('.'),
            b if b.is_ascii_alphanumeric() || b == b'_' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    format!("{out}.mount")
}

/// Which partition (or the whole disk) to mount, and how. Pure: decides from the listing.
pub fn plan_mount(
    disk: &Disk,
    partition: Option<&str>,
    media_dir: &Path,
) -> Result<MountPlan, DiskError> {
    if disk.system {
        return Err(DiskError::SystemDisk(disk.name.clone()));
    }
    let (name, path, fs, uuid, mounted) = match partition {
        Some(p) => {
            let part = disk
                .partitions
                .iter()
                .find(|x| x.name == p)
                .ok_or_else(|| DiskError::NotFound(format!("partition {p} on {}", disk.name)))?;
            (
                part.name.clone(),
                part.path.clone(),
                part.fs_type.clone(),
                part.uuid.clone(),
                part.mount_points.first().cloned(),
            )
        }
        None => match disk.partitions.iter().find(|p| p.fs_type.is_some()) {
            Some(part) => (
                part.name.clone(),
                part.path.clone(),
                part.fs_type.clone(),
                part.uuid.clone(),
                part.mount_points.first().cloned(),
            ),
            None => (
                disk.name.clone(),
                disk.path.clone(),
                disk.fs_type.clone(),
                None,
                disk.mount_points.first().cloned(),
            ),
        },
    };
    if let Some(point) = mounted {
        return Err(DiskError::InUse(name, point));
    }
    let fs = fs.ok_or_else(|| {
        DiskError::Invalid(format!("{name} has no file system; format it first."))
    })?;
    if !SUPPORTED.contains(&fs.as_str()) {
        return Err(DiskError::Invalid(format!(
            "{fs} file systems are not supported."
        )));
    }
    let mount_point = media_dir.join(&name);
    Ok(MountPlan {
        unit: unit_name_for(&mount_point),
        what: path,
        mount_point,
        options: "nosuid,nodev,noexec".to_string(),
        fs_type: fs,
        uuid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disks::Partition;

    fn disk(system: bool) -> Disk {
        Disk {
            name: "sdb".into(),
            path: "/dev/sdb".into(),
            size_bytes: 1 << 30,
            model: None,
            serial: None,
            bus: "usb".into(),
            removable: true,
            rotational: false,
            system,
            fs_type: None,
            label: None,
            mount_points: vec![],
            partitions: vec![Partition {
                name: "sdb1".into(),
                path: "/dev/sdb1".into(),
                number: 1,
                size_bytes: 1 << 30,
                fs_type: Some("exfat".into()),
                label: Some("USB".into()),
                uuid: Some("1234-ABCD".into()),
                mount_points: vec![],
                usage: None,
            }],
            smart: None,
        }
    }

    #[test]
    fn escapes_like_systemd() {
        assert_eq!(
            unit_name_for(Path::new("/var/lib/hearth/media/sdb1")),
            "var-lib-hearth-media-sdb1.mount"
        );
        assert_eq!(
            unit_name_for(Path::new("/srv/my-disk")),
            "srv-my\\x2ddisk.mount"
        );
    }

    #[test]
    fn plans_the_first_partition_with_a_file_system() {
        let plan =
            plan_mount(&disk(false), None, Path::new("/var/lib/hearth/media")).expect("plan");
        assert_eq!(plan.what, "/dev/sdb1");
        assert_eq!(
            plan.mount_point,
            PathBuf::from("/var/lib/hearth/media/sdb1")
        );
        assert_eq!(plan.fs_type, "exfat");
        assert!(plan.options.contains("nosuid") && plan.options.contains("nodev"));
        assert!(matches!(
            plan_mount(&disk(true), None, Path::new("/m")),
            Err(DiskError::SystemDisk(_))
        ));
        assert!(matches!(
            plan_mount(&disk(false), Some("sdb9"), Path::new("/m")),
            Err(DiskError::NotFound(_))
        ));
        let mut mounted = disk(false);
        mounted.partitions[0].mount_points.push("/mnt".into());
        assert!(matches!(
            plan_mount(&mounted, None, Path::new("/m")),
            Err(DiskError::InUse(..))
        ));
    }
}
