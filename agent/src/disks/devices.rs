//! The operating-system boundary for block devices, named in domain verbs. The caller picks the
//! implementation: [`super::SysfsDevices`] on a device, [`super::FakeBlockDevices`] in tests.
//! Implementations do what they are told; the policy (system disk, confirmation, in use) is
//! [`super::Service`]'s and is checked before these are called.

use super::{Disk, DiskError, Filesystem};

pub trait BlockDevices: Send + Sync + std::fmt::Debug + 'static {
    /// Every disk Hearth shows, sorted by name: partitions, file systems (blkid), mounts,
    /// usage, SMART health, and whether it holds the running system. Blocking.
    fn list(&self) -> Vec<Disk>;

    /// Erases `disk`, makes one GPT partition and one `filesystem` labelled `label` on it;
    /// the partition's device path. Blocking.
    fn format(&self, disk: &Disk, filesystem: Filesystem, label: &str)
    -> Result<String, DiskError>;

    /// Flushes writes and lets the kernel release `disk` so it can be unplugged (USB disks are
    /// detached; others just stay unmounted). Blocking.
    fn eject(&self, disk: &Disk) -> Result<(), DiskError>;

    /// One disk by kernel name; `NotFound` for a bad name or a disk that is not listed.
    fn get(&self, name: &str) -> Result<Disk, DiskError> {
        if !super::valid_name(name) {
            return Err(DiskError::NotFound(name.chars().take(32).collect()));
        }
        self.list()
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| DiskError::NotFound(name.to_string()))
    }
}
