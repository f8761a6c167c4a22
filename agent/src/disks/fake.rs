//! An in-memory [`BlockDevices`] for tests: disks are values the test puts in; formatting,
//! mounting (through [`FakeBlockDevices::set_mounted`]) and eject change them the way the
//! kernel would, and every call is recorded.

use super::{BlockDevices, Disk, DiskError, Filesystem, Partition, format::first_partition};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Inner {
    disks: Vec<Disk>,
    formatted: Vec<(String, Filesystem, String)>,
    ejected: Vec<String>,
}

/// Cloning shares the same disks.
#[derive(Debug, Clone, Default)]
pub struct FakeBlockDevices(Arc<Mutex<Inner>>);

impl FakeBlockDevices {
    pub fn new(disks: Vec<Disk>) -> Self {
        let fake = Self::default();
        for disk in disks {
            fake.plug(disk);
        }
        fake
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A disk appears (replacing one of the same name).
    pub fn plug(&self, disk: Disk) {
        let mut inner = self.inner();
        inner.disks.retain(|d| d.name != disk.name);
        inner.disks.push(disk);
        inner.disks.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// A disk goes away.
    pub fn unplug(&self, name: &str) {
        self.inner().disks.retain(|d| d.name != name);
    }

    /// Sets the mount points of a disk or partition named `device` (what a mount or unmount
    /// does to the kernel's mount table); false if there is no such device.
    pub fn set_mounted(&self, device: &str, points: Vec<String>) -> bool {
        let mut inner = self.inner();
        for disk in &mut inner.disks {
            if disk.name == device {
                disk.mount_points = points;
                return true;
            }
            if let Some(part) = disk.partitions.iter_mut().find(|p| p.name == device) {
                part.mount_points = points;
                return true;
            }
        }
        false
    }

    /// `(disk, file system, label)` of every format so far.
    pub fn formatted(&self) -> Vec<(String, Filesystem, String)> {
        self.inner().formatted.clone()
    }

    /// Names of the disks ejected so far.
    pub fn ejected(&self) -> Vec<String> {
        self.inner().ejected.clone()
    }
}

impl BlockDevices for FakeBlockDevices {
    fn list(&self) -> Vec<Disk> {
        self.inner().disks.clone()
    }

    fn format(
        &self,
        disk: &Disk,
        filesystem: Filesystem,
        label: &str,
    ) -> Result<String, DiskError> {
        let mut inner = self.inner();
        let entry = inner
            .disks
            .iter_mut()
            .find(|d| d.name == disk.name)
            .ok_or_else(|| DiskError::NotFound(disk.name.clone()))?;
        let name = first_partition(&entry.name);
        let fs = match filesystem {
            Filesystem::Ext4 => "ext4",
            Filesystem::Btrfs => "btrfs",
            Filesystem::Exfat => "exfat",
        };
        entry.fs_type = None;
        entry.label = None;
        entry.partitions = vec![Partition {
            path: format!("/dev/{name}"),
            number: 1,
            size_bytes: entry.size_bytes,
            fs_type: Some(fs.into()),
            label: Some(label.to_string()).filter(|l| !l.is_empty()),
            uuid: Some(format!("fake-uuid-{name}")),
            mount_points: Vec::new(),
            usage: None,
            name: name.clone(),
        }];
        inner
            .formatted
            .push((disk.name.clone(), filesystem, label.to_string()));
        Ok(format!("/dev/{name}"))
    }

    fn eject(&self, disk: &Disk) -> Result<(), DiskError> {
        let mut inner = self.inner();
        inner.ejected.push(disk.name.clone());
        if disk.bus == "usb" {
            inner.disks.retain(|d| d.name != disk.name);
        }
        Ok(())
    }
}
