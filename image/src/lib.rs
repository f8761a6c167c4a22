//! hearth-image: builds signed, read-only A/B disk images per board from Debian packages,
//! `board-configs/` and `overlays/`, and boots them under QEMU.
//!
//! Invariants: every external program runs from an argv (never a shell string); a failed
//! build leaves nothing under an artifact's final name; board files and overlays are data,
//! read from the workspace, never edited by the builder.
pub mod board;
pub mod board_check;
pub mod bootstrap;
pub mod cmd;
pub mod fsutil;
pub mod partition;
pub mod progress;
pub mod workspace;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
pub mod artifacts;
pub mod build;
pub mod debpkg;
pub mod disk;
pub mod efi;
pub mod flash;
pub mod initrd;
pub mod lint;
pub mod ota;
pub mod overlay;
pub mod pipeline;
pub mod rootfs;
pub mod rpi;
pub mod run;
pub mod seal;
pub mod secureboot;
pub mod uboot;
pub mod uki;
pub mod verify;
pub mod verity;
