//! Partition plans: where each partition of a board's disk image starts, its GPT type and
//! identifiers, and the `sfdisk` script that writes the table. Pure computation; the disk
//! module turns a plan into an image file.
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::board::{Arch, Board, Role};

pub const SECTOR: u64 = 512;
/// Every partition starts and ends on a 1 MiB boundary.
pub const ALIGN: u64 = 1024 * 1024;
/// Space kept after the last partition for the backup GPT (33 sectors, rounded to alignment).
const TAIL: u64 = ALIGN;

pub mod gpt_type {
    pub const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    /// Microsoft basic data: what the Raspberry Pi firmware reads FAT boot partitions from.
    pub const BASIC_DATA: &str = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7";
    pub const ROOT_X86_64: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
    pub const ROOT_ARM64: &str = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE";
    /// Linux generic data: the only partition of this type, so systemd-repart finds it.
    pub const LINUX_DATA: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    /// U-Boot's own type for an environment partition (`PARTITION_U_BOOT_ENVIRONMENT` in its
    /// `include/part_efi.h`).
    pub const UBOOT_ENV: &str = "3DE21764-95BD-54BD-A5C3-4ABE786F38A8";
}

/// One partition placed on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub name: String,
    pub role: Role,
    pub type_guid: &'static str,
    pub uuid: String,
    /// Byte offset from the start of the disk.
    pub offset: u64,
    pub size: u64,
}

/// A board's whole disk layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub label_id: String,
    pub partitions: Vec<Placed>,
    pub disk_size: u64,
}

impl Plan {
    /// Lays the board's partitions out back to back from 1 MiB. Identifiers are derived from
    /// `seed` (board and version), so the same inputs give the same table.
    pub fn for_board(board: &Board, seed: &str) -> Plan {
        // An SBC's U-Boot sits before the first partition (`[uboot.firmware]`).
        let mut offset = board
            .uboot
            .as_ref()
            .and_then(|u| u.firmware.as_ref())
            .map_or(ALIGN, |f| f.first_partition_mib * ALIGN);
        let mut partitions = Vec::with_capacity(board.partitions.len());
        for spec in &board.partitions {
            let size = spec.size_mib * 1024 * 1024;
            partitions.push(Placed {
                name: spec.name.clone(),
                role: spec.role,
                type_guid: type_guid(spec.role, board.arch),
                uuid: derived_uuid(seed, &spec.name),
                offset,
                size,
            });
            offset += size;
        }
        Plan {
            label_id: derived_uuid(seed, "disk"),
            partitions,
            disk_size: offset + TAIL,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Placed> {
        self.partitions.iter().find(|p| p.name == name)
    }

    /// Input for `sfdisk` (fed on its standard input).
    pub fn sfdisk_script(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "label: gpt");
        let _ = writeln!(s, "label-id: {}", self.label_id);
        let _ = writeln!(s, "unit: sectors");
        let _ = writeln!(s, "sector-size: {SECTOR}");
        let _ = writeln!(s, "first-lba: {}", ALIGN / SECTOR);
        for p in &self.partitions {
            let _ = writeln!(
                s,
                "start={}, size={}, type={}, uuid={}, name=\"{}\"",
                p.offset / SECTOR,
                p.size / SECTOR,
                p.type_guid,
                p.uuid,
                p.name
            );
        }
        s
    }
}

fn type_guid(role: Role, arch: Arch) -> &'static str {
    match (role, arch) {
        (Role::Esp, _) => gpt_type::ESP,
        (Role::Bootconfig | Role::Boot, _) => gpt_type::BASIC_DATA,
        (Role::Root, Arch::Amd64) => gpt_type::ROOT_X86_64,
        (Role::Root, Arch::Arm64) => gpt_type::ROOT_ARM64,
        (Role::Data, _) => gpt_type::LINUX_DATA,
        (Role::UBootEnv, _) => gpt_type::UBOOT_ENV,
    }
}

/// A version-4-shaped UUID derived from `seed` and `what` (deterministic, not random).
pub fn derived_uuid(seed: &str, what: &str) -> String {
    let digest = Sha256::digest(format!("hearth-uuid\0{seed}\0{what}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
    .to_uppercase()
}

/// A FAT volume id (8 hex digits) derived like [`derived_uuid`].
pub fn derived_volume_id(seed: &str, what: &str) -> String {
    derived_uuid(seed, what)[..8].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uuids_are_stable_and_distinct() {
        let a = derived_uuid("qemu-x86_64 1.0", "root-a");
        assert_eq!(a, derived_uuid("qemu-x86_64 1.0", "root-a"));
        assert_ne!(a, derived_uuid("qemu-x86_64 1.0", "root-b"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
