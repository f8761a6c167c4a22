//! Boot files of an EFI board: systemd-boot (also as the removable-media fallback), and per
//! slot a kernel, an initramfs and a loader entry that names the slot's own root partition.
//! Staged into a folder; the disk module packs it into the FAT ESP.
use std::path::{Path, PathBuf};

use crate::board::{Board, BootMethod, Slot};

#[derive(Debug, thiserror::Error)]
pub enum BootFilesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the root has no {0}")]
    Missing(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootFilesError {
    let path = path.to_path_buf();
    move |source| BootFilesError::Io { path, source }
}

/// The newest `/boot/<prefix>*` of a root.
pub fn boot_file(root: &Path, prefix: &str) -> Result<PathBuf, BootFilesError> {
    let dir = root.join("boot");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| BootFilesError::Missing(format!("/boot/{prefix}*")))
}

/// Seconds before a panic (of the kernel, or of the initramfs refusing an unverified root)
/// reboots, so boot counting can fall back to the other slot instead of the device halting
/// (EFI boards; without it the initramfs would open a root shell on its console).
pub const PANIC_REBOOT_SECS: u32 = 10;

/// Kernel command line of a slot: its own root, then the board's arguments.
pub fn cmdline(board: &Board, slot: Slot) -> String {
    let mut args = vec![
        format!("root=PARTLABEL=root-{}", slot.letter()),
        format!("rootfstype={}", board.rootfs.name()),
        "ro".to_string(),
        format!("hearth.slot={}", slot.letter()),
    ];
    if board.boot == BootMethod::SystemdBoot {
        args.push(format!("panic={PANIC_REBOOT_SECS}"));
    }
    args.extend(board.kernel_cmdline.iter().cloned());
    args.join(" ")
}

/// The loader entry file name of a slot. A slot the image leaves empty is marked bad
/// (systemd-boot's boot counting: no tries left) so it is never picked by default.
pub fn entry_name(slot: Slot, filled: bool) -> String {
    if filled {
        format!("hearth-{}.conf", slot.letter())
    } else {
        format!("hearth-{}+0-0.conf", slot.letter())
    }
}

pub fn entry(board: &Board, slot: Slot, version: &str) -> String {
    let s = slot.letter();
    format!(
        "title Hearth {version} (slot {s})\nversion {version}\nsort-key hearth-{s}\n\
         linux /hearth/{s}/vmlinuz\ninitrd /hearth/{s}/initrd.img\noptions {}\n",
        cmdline(board, slot)
    )
}

/// A slot's kernel and initrd as the ESP and the update bundle carry them.
#[derive(Debug, Clone)]
pub struct SlotBoot {
    pub kernel: PathBuf,
    /// The root's initramfs with the slot's verity layer appended (`verity::boot_initrd`).
    pub initrd: PathBuf,
}

/// Writes the ESP's files into `staging`. `filled` lists the slots the image writes.
pub fn stage(
    board: &Board,
    root: &Path,
    staging: &Path,
    version: &str,
    filled: &[Slot],
    boot: &SlotBoot,
) -> Result<(), BootFilesError> {
    let suffix = board.arch.efi_suffix();
    let sdboot = root.join(format!("usr/lib/systemd/boot/efi/systemd-boot{suffix}.efi"));
    if !sdboot.is_file() {
        return Err(BootFilesError::Missing(sdboot.display().to_string()));
    }
    let (kernel, initrd) = (&boot.kernel, &boot.initrd);
    let fallback = format!("EFI/BOOT/BOOT{}.EFI", suffix.to_uppercase());
    let systemd = format!("EFI/systemd/systemd-boot{suffix}.efi");
    copy(&sdboot, &staging.join(fallback))?;
    copy(&sdboot, &staging.join(systemd))?;
    let loader = "timeout 2\ndefault hearth-a.conf\neditor no\nconsole-mode keep\n";
    write(&staging.join("loader/loader.conf"), loader)?;
    for slot in Slot::ALL {
        let filled = filled.contains(&slot);
        let entries = staging.join("loader/entries");
        write(
            &entries.join(entry_name(slot, filled)),
            &entry(board, slot, version),
        )?;
        if filled {
            let dir = staging.join("hearth").join(slot.letter());
            copy(kernel, &dir.join("vmlinuz"))?;
            copy(initrd, &dir.join("initrd.img"))?;
        }
    }
    Ok(())
}

pub(crate) fn copy(from: &Path, to: &Path) -> Result<(), BootFilesError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::copy(from, to).map_err(io(to)).map(|_| ())
}

pub(crate) fn write(to: &Path, text: &str) -> Result<(), BootFilesError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(to, text).map_err(io(to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::load_board_file;

    fn board() -> Board {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../board-configs/qemu-x86_64.toml");
        load_board_file(&path).expect("board")
    }

    #[test]
    fn each_slot_entry_names_its_own_root() {
        let b = board();
        for slot in Slot::ALL {
            let text = entry(&b, slot, "1.2.3");
            let root = format!("root=PARTLABEL=root-{} ", slot.letter());
            assert!(text.contains(&root), "{text}");
            assert!(text.contains(&format!("/hearth/{}/vmlinuz", slot.letter())));
            let other = format!("root-{}", if slot == Slot::A { "b" } else { "a" });
            assert!(!text.contains(&other), "{text}");
            assert!(text.contains(" panic=10"), "a refused root reboots: {text}");
        }
    }

    #[test]
    fn an_empty_slot_is_marked_bad_for_systemd_boot() {
        assert_eq!(entry_name(Slot::B, false), "hearth-b+0-0.conf");
        assert_eq!(entry_name(Slot::A, true), "hearth-a.conf");
    }

    #[test]
    fn staging_writes_loader_entries_and_kernels() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("boot")).expect("mkdir");
        std::fs::create_dir_all(root.join("usr/lib/systemd/boot/efi")).expect("mkdir");
        std::fs::write(root.join("boot/vmlinuz-6.12"), "k").expect("write");
        std::fs::write(root.join("boot/initrd.img-6.12"), "i").expect("write");
        std::fs::write(
            root.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
            "e",
        )
        .expect("write");
        std::fs::write(tmp.path().join("initrd-verity"), "iv").expect("write");
        let esp = tmp.path().join("esp");
        let boot = SlotBoot {
            kernel: root.join("boot/vmlinuz-6.12"),
            initrd: tmp.path().join("initrd-verity"),
        };
        stage(&board(), &root, &esp, "1.0", &[Slot::A], &boot).expect("stage");
        assert!(esp.join("EFI/BOOT/BOOTX64.EFI").is_file());
        assert!(esp.join("hearth/a/vmlinuz").is_file());
        assert_eq!(
            std::fs::read(esp.join("hearth/a/initrd.img")).expect("initrd"),
            b"iv",
            "the ESP carries the slot's verity initrd, not the root's"
        );
        assert!(!esp.join("hearth/b").exists());
        assert!(esp.join("loader/entries/hearth-b+0-0.conf").is_file());
    }
}
