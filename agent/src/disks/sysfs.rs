//! The real [`BlockDevices`] adapter: disks read from sysfs under a root it is given, file
//! systems from `blkid`, SMART health from `smartctl`, formatting with `wipefs`, `sfdisk` and
//! `mkfs.*`, eject through the SCSI device's `delete` file. Every program gets an argument vector.

use super::format::Filesystem;
use super::{BlockDevices, Disk, DiskError, Partition, Usage, tools};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The real block devices: sysfs, `/proc/self/mounts`, `blkid`, `smartctl` and the
/// partitioning tools. `/sys` and `/proc` on a real system; any root in tests.
#[derive(Debug, Clone)]
pub struct SysfsDevices {
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

impl SysfsDevices {
    pub fn new(system_paths: Vec<PathBuf>, include_loop: bool) -> Self {
        Self::under(
            PathBuf::from("/sys"),
            PathBuf::from("/proc/self/mounts"),
            system_paths,
            include_loop,
        )
    }

    /// Devices as seen under another sysfs root and mount table (tests build both).
    pub fn under(
        sys: PathBuf,
        mounts_file: PathBuf,
        system_paths: Vec<PathBuf>,
        include_loop: bool,
    ) -> Self {
        Self {
            sys,
            mounts_file,
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

    fn list_disks(&self) -> Vec<Disk> {
        let mounts = self.mounts();
        let system = self.system_disks(&mounts);
        let mut names: Vec<String> = std::fs::read_dir(self.sys.join("block"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| super::valid_name(n))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| self.describe(&name, &mounts, &system))
            .collect()
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

impl BlockDevices for SysfsDevices {
    fn list(&self) -> Vec<Disk> {
        self.list_disks()
    }

    fn format(
        &self,
        disk: &Disk,
        filesystem: Filesystem,
        label: &str,
    ) -> Result<String, DiskError> {
        super::format::make_filesystem(disk, filesystem, label)
    }

    fn eject(&self, disk: &Disk) -> Result<(), DiskError> {
        rustix::fs::sync();
        // USB and SATA disks can be detached by deleting the SCSI device; others just stay
        // unmounted.
        let delete = self
            .sys
            .join("block")
            .join(&disk.name)
            .join("device/delete");
        if disk.bus == "usb" && delete.exists() {
            std::fs::write(&delete, b"1").map_err(|e| DiskError::Tool {
                program: "sysfs".into(),
                message: format!("cannot detach {}: {e}", disk.name),
            })?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn put(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    /// A sysfs tree: `sdx` (SATA, holds `/` on `sdx1`), `sdy` (a USB stick mounted whole),
    /// `loop0` and `ram0`; device names no real machine here has, so blkid finds nothing.
    fn fake_sysfs(root: &Path) -> (PathBuf, PathBuf) {
        let sys = root.join("sys");
        let block = sys.join("block");
        put(&block.join("sdx/size"), "2097152\n");
        put(&block.join("sdx/removable"), "0\n");
        put(&block.join("sdx/queue/rotational"), "1\n");
        put(&block.join("sdx/sdx1/partition"), "1\n");
        put(&block.join("sdx/sdx1/size"), "1048576\n");
        let usb = sys.join("devices/pci0000:00/usb1/1-1/host6/target6:0:0/6:0:0:0");
        put(&usb.join("model"), "Stick  \n");
        put(&block.join("sdy/size"), "65536\n");
        put(&block.join("sdy/removable"), "1\n");
        symlink(&usb, block.join("sdy/device")).expect("link");
        put(&block.join("loop0/size"), "2048\n");
        put(&block.join("ram0/size"), "2048\n");
        put(&block.join("sdz/size"), "0\n");
        std::fs::create_dir_all(sys.join("class/block")).expect("mkdir");
        for (name, target) in [("sdx", "sdx"), ("sdx1", "sdx/sdx1"), ("sdy", "sdy")] {
            symlink(block.join(target), sys.join("class/block").join(name)).expect("link");
        }
        let mounts = root.join("mounts");
        put(
            &mounts,
            "/dev/sdx1 / ext4 rw 0 0\n/dev/sdy /srv/media\\040x vfat rw 0 0\nproc /proc proc rw 0 0\n",
        );
        (sys, mounts)
    }

    #[test]
    fn lists_disks_under_a_given_sysfs_root_and_marks_the_system_disk() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (sys, mounts) = fake_sysfs(tmp.path());
        let devices = SysfsDevices::under(
            sys.clone(),
            mounts.clone(),
            vec![PathBuf::from("/var/lib/hearth")],
            false,
        );
        let list = devices.list();
        let names: Vec<&str> = list.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sdx", "sdy"], "no loop, RAM or empty devices");
        let (sdx, sdy) = (&list[0], &list[1]);
        assert!(sdx.system, "holds the mount containing the data directory");
        assert_eq!(
            (sdx.size_bytes, sdx.bus.as_str(), sdx.rotational),
            (1 << 30, "other", true)
        );
        assert_eq!(sdx.partitions.len(), 1);
        assert_eq!(sdx.partitions[0].mount_points, ["/"]);
        assert_eq!(sdx.partitions[0].size_bytes, 512 << 20);
        assert!(!sdy.system);
        assert_eq!(
            (sdy.bus.as_str(), sdy.removable, sdy.model.as_deref()),
            ("usb", true, Some("Stick"))
        );
        assert_eq!(sdy.mount_points, ["/srv/media x"]);
        assert!(matches!(devices.get("sdq"), Err(DiskError::NotFound(_))));
        assert!(matches!(devices.get("../sdx"), Err(DiskError::NotFound(_))));

        let with_loop = SysfsDevices::under(sys, mounts, Vec::new(), true);
        let list = with_loop.list();
        let lo = list
            .iter()
            .find(|d| d.name == "loop0")
            .expect("loop0 listed");
        assert_eq!((lo.bus.as_str(), lo.smart.is_none()), ("loop", true));
        assert!(list.iter().all(|d| !d.system), "no system paths given");
    }

    #[test]
    fn eject_detaches_usb_disks_through_their_scsi_device_only() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (sys, mounts) = fake_sysfs(tmp.path());
        let usb = sys.join("devices/pci0000:00/usb1/1-1/host6/target6:0:0/6:0:0:0");
        put(&usb.join("delete"), "");
        let devices = SysfsDevices::under(sys.clone(), mounts, Vec::new(), false);
        let list = devices.list();
        devices.eject(&list[0]).expect("sdx: nothing to detach");
        devices.eject(&list[1]).expect("sdy");
        assert_eq!(
            std::fs::read_to_string(usb.join("delete")).expect("read"),
            "1"
        );
    }
}
