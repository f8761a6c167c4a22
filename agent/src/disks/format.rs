//! Formatting a whole disk: one GPT partition with one file system. [`check`] is the policy
//! (refused for the system disk, for a disk in use, and without the disk's name typed as
//! confirmation); [`make_filesystem`] runs the tools for the real adapter.

use super::{Disk, DiskError, tools::run};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    Ext4,
    Btrfs,
    Exfat,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatRequest {
    pub filesystem: Filesystem,
    /// Up to 16 letters, digits, spaces, `-` and `_`.
    pub label: Option<String>,
    /// The disk's name (e.g. `sdb`), typed by the person to confirm.
    pub confirm: String,
}

fn check_label(label: &str) -> Result<(), DiskError> {
    if label.len() <= 16
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" -_".contains(&b))
    {
        Ok(())
    } else {
        Err(DiskError::Invalid(
            "Labels are up to 16 letters, digits, spaces, '-' and '_'.".into(),
        ))
    }
}

/// The partition device of partition 1 (`sdb1`, but `nvme0n1p1`, `mmcblk0p1`, `loop3p1`).
pub fn first_partition(disk: &str) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p1")
    } else {
        format!("{disk}1")
    }
}

/// Whether `req` may format `disk`; the label to use. Pure: decides from the listing.
pub fn check(disk: &Disk, req: &FormatRequest) -> Result<String, DiskError> {
    if disk.system {
        return Err(DiskError::SystemDisk(disk.name.clone()));
    }
    if req.confirm != disk.name {
        return Err(DiskError::Invalid(format!(
            "Type the disk's name, {}, to confirm.",
            disk.name
        )));
    }
    let label = req.label.clone().unwrap_or_default();
    check_label(&label)?;
    let mounted = disk
        .mount_points
        .iter()
        .chain(disk.partitions.iter().flat_map(|p| p.mount_points.iter()))
        .next();
    if let Some(point) = mounted {
        return Err(DiskError::InUse(disk.name.clone(), point.clone()));
    }
    Ok(label)
}

/// Wipes `disk`, partitions it and makes the file system; the partition's device path.
/// Only after [`check`] passed.
pub fn make_filesystem(
    disk: &Disk,
    filesystem: Filesystem,
    label: &str,
) -> Result<String, DiskError> {
    let dev = disk.path.as_str();
    run("wipefs", &["--all", "--force", "--", dev], None)?;
    let part_type = match filesystem {
        Filesystem::Exfat => "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        Filesystem::Ext4 | Filesystem::Btrfs => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
    };
    let script = format!("label: gpt\n,,{part_type}\n");
    run(
        "sfdisk",
        &[
            "--quiet",
            "--wipe",
            "always",
            "--wipe-partitions",
            "always",
            "--",
            dev,
        ],
        Some(&script),
    )?;
    let part = format!("/dev/{}", first_partition(&disk.name));
    wait_for(&part)?;
    let result = match filesystem {
        Filesystem::Ext4 => run("mkfs.ext4", &["-F", "-q", "-L", label, "--", &part], None),
        Filesystem::Btrfs => run("mkfs.btrfs", &["-f", "-q", "-L", label, "--", &part], None),
        Filesystem::Exfat => {
            let mut args = vec!["-n", label, "--", part.as_str()];
            if label.is_empty() {
                args.drain(..2);
            }
            run("mkfs.exfat", &args, None)
        }
    };
    if let Err(e) = result {
        // Leave no half-made file system that looks usable.
        let _ = run("wipefs", &["--all", "--force", "--", &part], None);
        return Err(e);
    }
    tracing::info!(disk = %disk.name, fs = ?filesystem, "disk formatted");
    Ok(part)
}

/// Waits for udev/the kernel to create the partition's device node.
fn wait_for(part: &str) -> Result<(), DiskError> {
    for _ in 0..100 {
        if std::path::Path::new(part).exists() {
            return Ok(());
        }
        let _ = run(
            "partx",
            &[
                "--update",
                "--",
                part.trim_end_matches(|c: char| c.is_ascii_digit())
                    .trim_end_matches('p'),
            ],
            None,
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(DiskError::Tool {
        program: "sfdisk".into(),
        message: format!("{part} did not appear"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        assert_eq!(first_partition("sdb"), "sdb1");
        assert_eq!(first_partition("nvme0n1"), "nvme0n1p1");
        assert_eq!(first_partition("mmcblk0"), "mmcblk0p1");
        assert_eq!(first_partition("loop7"), "loop7p1");
    }

    #[test]
    fn labels() {
        assert!(check_label("Backup 2024").is_ok());
        assert!(check_label("a;rm -rf /").is_err());
        assert!(check_label(&"x".repeat(17)).is_err());
    }
}
