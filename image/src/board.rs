//! Board configurations: the typed form of `board-configs/*.toml` and its validation.
//!
//! A board file is data only: which Debian architecture, kernel and packages, which overlays,
//! how the board boots and how its disk is partitioned. This module parses and checks those
//! files; it never touches the system it runs on.
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Partition names that the boot entries and the updater look up; a board must use these.
pub mod names {
    pub const ESP: &str = "esp";
    pub const BOOTCONFIG: &str = "bootconfig";
    pub const DATA: &str = "data";
    pub const UBOOT_ENV: &str = "uboot-env";
}

/// A board, as read from `board-configs/<name>.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Must equal the file's stem.
    pub name: String,
    pub description: String,
    pub arch: Arch,
    /// Debian suite the root is built from.
    pub suite: String,
    /// Archive components, e.g. `["main", "non-free-firmware"]`.
    pub components: Vec<String>,
    /// Kernel package, installed after the initramfs hooks are in place.
    pub kernel: String,
    /// Packages on top of `board-configs/common/debian.toml`.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Overlays laid after `base`, in this order (folders under `overlays/`).
    #[serde(default)]
    pub overlays: Vec<String>,
    /// Kernel command line shared by both slots; the builder adds the slot's root.
    pub kernel_cmdline: Vec<String>,
    pub boot: BootMethod,
    /// systemd-boot boards: boot each slot from a unified kernel image (`crate::uki`) instead
    /// of a separate kernel and initrd; the update bundle then carries the UKI.
    #[serde(default)]
    pub uki: bool,
    pub rootfs: RootFs,
    #[serde(rename = "partition")]
    pub partitions: Vec<PartitionSpec>,
    pub qemu: Option<QemuSpec>,
    pub rpi: Option<RpiSpec>,
    /// U-Boot boards (`boot = "u-boot"`): what the boot script needs to know of the board's
    /// U-Boot build.
    pub uboot: Option<UBootSpec>,
    /// How far this board's image is proven (`hearth-image list-boards` shows it).
    pub verified: Verified,
}

/// `[verified]`: the strongest check the board's image passes, and the script or test that
/// makes it (a path in the workspace that names the board).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Verified {
    pub level: Verification,
    pub by: String,
}

/// How a board's image is verified, strongest first.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    /// The whole image boots in QEMU (firmware, boot loader, kernel, root, agent).
    QemuBoot,
    /// The image's own kernel, initrd and root boot in an emulated machine, without the
    /// board's firmware.
    EmulatedKernel,
    /// Built and checked structurally only (partition table, boot files); never booted.
    Structural,
}

impl Verification {
    pub fn describe(self) -> &'static str {
        match self {
            Verification::QemuBoot => "booted in QEMU",
            Verification::EmulatedKernel => "emulated kernel boot",
            Verification::Structural => "structural check only",
        }
    }
}

/// Debian architecture name.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub fn debian(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target triple of the agent binary for this architecture.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::Amd64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Suffix of systemd-boot's and the removable-media fallback's EFI file names.
    pub fn efi_suffix(self) -> &'static str {
        match self {
            Arch::Amd64 => "x64",
            Arch::Arm64 => "aa64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.debian())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BootMethod {
    /// UEFI firmware → systemd-boot on the ESP, one loader entry per slot.
    SystemdBoot,
    /// Raspberry Pi firmware: `autoboot.txt` with `tryboot_a_b=1`, one boot partition per slot.
    RpiTryboot,
    /// U-Boot (the board's own build) runs Hearth's `boot.scr` from the FAT boot partition
    /// (`esp`): the A/B choice and boot counter live in a redundant environment on the
    /// `uboot-env` partition (`crate::uboot`).
    #[serde(rename = "u-boot")]
    UBoot,
}

impl BootMethod {
    /// The board files' name for it.
    pub fn name(self) -> &'static str {
        match self {
            BootMethod::SystemdBoot => "systemd-boot",
            BootMethod::RpiTryboot => "rpi-tryboot",
            BootMethod::UBoot => "u-boot",
        }
    }

    /// Whether the slots boot a kernel and an initrd from `hearth/X/` on the `esp` partition
    /// (systemd-boot and U-Boot boards; the Pi has a boot partition per slot).
    pub fn esp_slots(self) -> bool {
        matches!(self, BootMethod::SystemdBoot | BootMethod::UBoot)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RootFs {
    Squashfs,
    Erofs,
}

impl RootFs {
    pub fn name(self) -> &'static str {
        match self {
            RootFs::Squashfs => "squashfs",
            RootFs::Erofs => "erofs",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// The letter as the U-Boot environment writes it (`BOOT_ORDER=A B`).
    pub fn upper(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// EFI system partition (FAT32): systemd-boot, kernels and initrds of both slots.
    Esp,
    /// Raspberry Pi: the small FAT partition holding only `autoboot.txt`.
    Bootconfig,
    /// Raspberry Pi: a slot's FAT boot partition (firmware, kernel, initrd, DTBs).
    Boot,
    /// A slot's sealed read-only root.
    Root,
    /// Writable state (ext4); grows to fill the medium on first boot.
    Data,
    /// U-Boot boards: raw, the two copies of Hearth's boot environment (`crate::uboot`).
    #[serde(rename = "uboot-env")]
    UBootEnv,
}

/// One entry of a board's partition plan, in disk order.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    pub name: String,
    pub role: Role,
    pub slot: Option<Slot>,
    pub size_mib: u64,
}

impl PartitionSpec {
    /// The name a partition with this role and slot must carry.
    pub fn expected_name(&self) -> String {
        let base = match self.role {
            Role::Esp => names::ESP,
            Role::Bootconfig => names::BOOTCONFIG,
            Role::Boot => "boot",
            Role::Root => "root",
            Role::Data => names::DATA,
            Role::UBootEnv => names::UBOOT_ENV,
        };
        match self.slot {
            Some(slot) => format!("{base}-{}", slot.letter()),
            None => base.to_string(),
        }
    }
}

/// How `hearth-image run` boots the board under QEMU.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QemuSpec {
    /// `qemu-system-*` binary.
    pub binary: String,
    pub machine: String,
    pub cpu: String,
    pub memory_mib: u32,
    /// UEFI code image (read-only) and the variable store template copied per run.
    #[serde(default)]
    pub firmware_code: Option<PathBuf>,
    #[serde(default)]
    pub firmware_vars: Option<PathBuf>,
    /// Instead of UEFI: a firmware image QEMU runs from its boot ROM (`-bios`), e.g. Debian's
    /// `u-boot-qemu` build for the `virt` machine.
    #[serde(default)]
    pub bios: Option<PathBuf>,
    /// UEFI code image built with Secure Boot (OVMF's `*.secboot.fd`, which needs SMM), for
    /// `hearth-image run --secure-boot`; the variables come from `firmware_vars` with the
    /// release's keys enrolled.
    #[serde(default)]
    pub firmware_code_secure_boot: Option<PathBuf>,
    /// The variable store the release's keys are enrolled into, when `firmware_vars` is not
    /// one `virt-fw-vars` can read (Debian's blank `AAVMF_VARS.fd`): its own PK, KEK and db
    /// are replaced by the release's.
    #[serde(default)]
    pub firmware_vars_secure_boot: Option<PathBuf>,
}

/// `[uboot]`: a U-Boot board's build, as Hearth's boot script (`crate::uboot`) uses it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UBootSpec {
    /// RAM the boot script may use (128 KiB plus the board U-Boot's environment size) before it
    /// loads the kernel: the board's
    /// `kernel_addr_r` (the script hard-codes addresses: many builds, Debian's Rockchip ones
    /// among them, have no `setexpr` to compute them).
    pub scratch_addr: u64,
    /// The device tree the kernel boots with: a path under the kernel's `dtbs` folder
    /// (`/usr/lib/linux-image-<version>/`), copied per slot to `hearth/X/board.dtb` and loaded
    /// at `fdt_addr_r`; none: the firmware's own tree (`${fdtcontroladdr}`, as QEMU's `virt`
    /// provides).
    #[serde(default)]
    pub fdt: Option<String>,
    /// An SBC's U-Boot, written by the image where the SoC's boot ROM reads it (QEMU's is
    /// given to the emulator instead).
    #[serde(default)]
    pub firmware: Option<UBootFirmware>,
}

/// `[uboot.firmware]`: the board's U-Boot build from a Debian package, written raw onto the
/// disk before the first partition.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UBootFirmware {
    /// The package (unpacked, not installed), e.g. `u-boot-rockchip`.
    pub package: String,
    /// The file in it, e.g. `usr/lib/u-boot/rockpro64-rk3399/u-boot-rockchip.bin`.
    pub file: String,
    /// Where on the disk the boot ROM reads it, in bytes (Rockchip: sector 64, 32768).
    pub offset: u64,
    /// Where the first partition starts (MiB): after the firmware's end.
    pub first_partition_mib: u64,
}

/// Raspberry Pi boot files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RpiSpec {
    /// Debian package whose files are extracted onto the boot partitions (not installed).
    pub firmware_package: String,
    /// Firmware files copied from the root's `/usr/lib/raspi-firmware` (may be empty on a
    /// board whose firmware lives in EEPROM, like the Pi 5).
    pub firmware: Vec<String>,
    /// Device trees copied from the kernel's `broadcom/` directory.
    pub dtbs: Vec<String>,
    /// Lines of `config.txt` (the builder adds kernel and initramfs lines).
    pub config: Vec<String>,
}

/// What every board is built from: `board-configs/common/debian.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CommonConfig {
    pub mirror: String,
    pub security_mirror: String,
    pub packages: Vec<String>,
}

/// What went wrong reading a board configuration.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("unknown board {name:?}; known boards: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid board file: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

/// The folder holding the board files.
#[derive(Debug, Clone)]
pub struct BoardDir {
    dir: PathBuf,
}

impl BoardDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        BoardDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Names of all boards (file stems of `*.toml`), sorted.
    pub fn names(&self) -> Result<Vec<String>, BoardError> {
        let read_err = |source| BoardError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut names = BTreeSet::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.extension().is_some_and(|e| e == "toml")
                && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            {
                names.insert(stem.to_string());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Loads and validates one board by name.
    pub fn load(&self, name: &str) -> Result<Board, BoardError> {
        let known = self.names()?;
        if !known.iter().any(|k| k == name) {
            return Err(BoardError::Unknown {
                name: name.to_string(),
                known,
            });
        }
        load_board_file(&self.dir.join(format!("{name}.toml")))
    }

    /// The archive and package set shared by every board.
    pub fn common(&self) -> Result<CommonConfig, BoardError> {
        let path = self.dir.join("common").join("debian.toml");
        let text = read(&path)?;
        toml::from_str(&text).map_err(|e| BoardError::Parse {
            path,
            source: Box::new(e),
        })
    }
}

fn read(path: &Path) -> Result<String, BoardError> {
    std::fs::read_to_string(path).map_err(|source| BoardError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses and validates a board file.
pub fn load_board_file(path: &Path) -> Result<Board, BoardError> {
    let text = read(path)?;
    let board: Board = toml::from_str(&text).map_err(|e| BoardError::Parse {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    crate::board_check::validate(&board, stem).map_err(|problem| BoardError::Invalid {
        path: path.to_path_buf(),
        problem,
    })?;
    Ok(board)
}

/// The `hearth-image list-boards` table: one line per board (name, architecture, boot method,
/// verification level and what verifies it, description) under a header, columns aligned.
pub fn list(boards: &[Board]) -> String {
    let rows: Vec<[String; 5]> = boards
        .iter()
        .map(|b| {
            [
                b.name.clone(),
                b.arch.to_string(),
                b.boot.name().to_string(),
                format!("{} ({})", b.verified.level.describe(), b.verified.by),
                b.description.clone(),
            ]
        })
        .collect();
    let header = ["BOARD", "ARCH", "BOOT", "VERIFIED", "DESCRIPTION"].map(String::from);
    let mut width = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter().zip(row) {
            out.push_str(&format!("{cell:<w$}  "));
        }
        out.push_str(&row[4]);
        out.push('\n');
    }
    out
}
