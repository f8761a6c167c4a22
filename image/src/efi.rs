//! Boot files of an EFI board: systemd-boot (also as the removable-media fallback), and per
//! slot a kernel, an initramfs and a loader entry that names the slot's own root partition;
//! on boards with `uki = true` a unified kernel image per slot instead (`crate::uki`: kernel,
//! initrd and the slot-independent command line with the root hash in one PE file) plus a
//! per-slot command-line addon naming the slot's root (see [`uki_cmdline`]). Staged into a
//! folder; the disk module packs it into the FAT ESP.
use std::path::{Path, PathBuf};

use crate::board::{Board, Slot};

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
/// reboots, so the boot loader can fall back to the other slot instead of the device halting:
/// systemd-boot's boot counting on EFI boards, on a Raspberry Pi the firmware's `[all]` slot
/// (a plain reboot never repeats a one-shot tryboot). Without it the initramfs would open a
/// root shell on its console and the kernel would hang.
pub const PANIC_REBOOT_SECS: u32 = 10;

/// Kernel command line of a slot: its own root, then the board's arguments.
pub fn cmdline(board: &Board, slot: Slot) -> String {
    let mut args = vec![
        format!("root=PARTLABEL=root-{}", slot.letter()),
        format!("rootfstype={}", board.rootfs.name()),
        "ro".to_string(),
        format!("hearth.slot={}", slot.letter()),
        format!("panic={PANIC_REBOOT_SECS}"),
    ];
    args.extend(board.kernel_cmdline.iter().cloned());
    args.join(" ")
}

/// The command line inside a board's UKI: everything of [`cmdline`] but the slot (the same
/// UKI boots from either slot: the update bundle carries one), plus the root hash. The slot's
/// own `root=`/`hearth.slot=` come from its addon ([`slot_addon_cmdline`]), which
/// systemd-stub appends. `hearth.roothash=` and not systemd's `roothash=`: after the switch to
/// the real root, systemd-veritysetup-generator would act on `roothash=` and set up a second
/// mapping of its own; the initramfs script (`hearth-verity`) refuses a root hash on the
/// command line that differs from the one in the initrd.
pub fn uki_cmdline(board: &Board, root_hash: &str) -> String {
    let mut args = vec![
        format!("rootfstype={}", board.rootfs.name()),
        "ro".to_string(),
        format!("panic={PANIC_REBOOT_SECS}"),
        format!("hearth.roothash={root_hash}"),
    ];
    args.extend(board.kernel_cmdline.iter().cloned());
    args.join(" ")
}

/// The command line of a slot's UKI addon: its own root partition and slot letter.
pub fn slot_addon_cmdline(slot: Slot) -> String {
    format!("root=PARTLABEL=root-{0} hearth.slot={0}", slot.letter())
}

/// Where the slots' UKIs live: systemd-boot's type 2 entries (Boot Loader Specification).
pub const UKI_DIR: &str = "EFI/Linux";

/// A slot's UKI on the ESP, a type 2 entry: `hearth-X.efi`, or `hearth-X+0-0.efi` (an empty
/// placeholder file: systemd-boot skips it, the updater writes the slot's UKI into it) for a
/// slot the image leaves empty. Boot counting renames it like a `.conf` entry.
pub fn uki_path(slot: Slot, filled: bool) -> String {
    let name = entry_name(slot, filled);
    format!("{UKI_DIR}/{}.efi", name.trim_end_matches(".conf"))
}

/// Where a slot's addon lives: systemd-stub loads `*.addon.efi` from `<UKI>.extra.d/`, the
/// UKI's file name without its boot counter (seen in QEMU: `hearth-a+3-0.efi` booted with
/// `hearth-a.efi.extra.d/slot.addon.efi`, and systemd-boot renamed it `hearth-a+2-1.efi`).
pub fn addon_path(slot: Slot) -> String {
    format!(
        "{UKI_DIR}/hearth-{}.efi.extra.d/slot.addon.efi",
        slot.letter()
    )
}

/// The UKI's `.osrel`: the root's os-release plus `IMAGE_ID=hearth` and `IMAGE_VERSION`, which
/// systemd-boot uses as a type 2 entry's sort key and version (so a trial, always a newer
/// release, sorts before the committed slot), and a `PRETTY_NAME` naming the release.
pub fn uki_osrel(root_osrel: &str, version: &str) -> String {
    let mut out: Vec<String> = root_osrel
        .lines()
        .filter(|l| {
            !["IMAGE_ID=", "IMAGE_VERSION=", "PRETTY_NAME="]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(str::to_string)
        .collect();
    out.push(format!("PRETTY_NAME=\"Hearth {version}\""));
    out.push("IMAGE_ID=hearth".into());
    out.push(format!("IMAGE_VERSION={version}"));
    out.join("\n") + "\n"
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
    /// On `uki = true` boards: the UKI (kernel, that initrd, [`uki_cmdline`]) and each slot's
    /// addon; the ESP and the bundle carry these instead of the kernel and initrd.
    pub uki: Option<UkiBoot>,
    /// U-Boot boards with `[uboot] fdt`: the device tree the slot's kernel boots with (the
    /// boot partition's `hearth/X/board.dtb` and the bundle's `dtb` payload).
    pub fdt: Option<PathBuf>,
}

/// A board's UKI, the two slots' addons and the boot loader, all signed with the release's
/// Secure Boot db key (`crate::secureboot`), and the key set's enrolment files.
#[derive(Debug, Clone)]
pub struct UkiBoot {
    pub uki: PathBuf,
    /// The addons of slot a and slot b.
    pub addons: [PathBuf; 2],
    /// systemd-boot, signed.
    pub loader: PathBuf,
    /// `(PK.auth, path)`, … for `loader/keys/hearth/` (systemd-boot's `secure-boot-enroll`).
    pub enrol: Vec<(String, PathBuf)>,
}

impl UkiBoot {
    pub fn addon(&self, slot: Slot) -> &Path {
        match slot {
            Slot::A => &self.addons[0],
            Slot::B => &self.addons[1],
        }
    }
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
    let loader_bin = boot.uki.as_ref().map_or(sdboot.as_path(), |u| &u.loader);
    copy(loader_bin, &staging.join(fallback))?;
    copy(loader_bin, &staging.join(systemd))?;
    let loader = match &boot.uki {
        Some(uki) => {
            for (name, path) in &uki.enrol {
                copy(path, &staging.join(crate::secureboot::ENROL_DIR).join(name))?;
            }
            // Enrolment only when someone picks it in the menu of firmware in setup mode:
            // taking over a PC's keys is the owner's choice (docs/image.md, "Secure Boot").
            "timeout 2\ndefault hearth-a.efi\neditor no\nconsole-mode keep\nsecure-boot-enroll manual\n"
        }
        None => "timeout 2\ndefault hearth-a.conf\neditor no\nconsole-mode keep\n",
    };
    write(&staging.join("loader/loader.conf"), loader)?;
    for slot in Slot::ALL {
        let filled = filled.contains(&slot);
        let entries = staging.join("loader/entries");
        if let Some(uki) = &boot.uki {
            // Both slots' addons: an update writes only the slot's UKI.
            copy(uki.addon(slot), &staging.join(addon_path(slot)))?;
            if filled {
                copy(&uki.uki, &staging.join(uki_path(slot, true)))?;
            } else {
                write(&staging.join(uki_path(slot, false)), "")?;
            }
            continue;
        }
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
            uki: None,
            fdt: None,
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

    #[test]
    fn uki_boards_stage_one_uki_per_filled_slot_and_every_slots_addon() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib/systemd/boot/efi")).expect("mkdir");
        std::fs::write(
            root.join("usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
            "e",
        )
        .expect("write");
        for n in [
            "uki",
            "addon-a",
            "addon-b",
            "k",
            "i",
            "signed-boot",
            "PK.auth",
        ] {
            std::fs::write(tmp.path().join(n), n).expect("write");
        }
        let boot = SlotBoot {
            kernel: tmp.path().join("k"),
            initrd: tmp.path().join("i"),
            uki: Some(UkiBoot {
                uki: tmp.path().join("uki"),
                addons: [tmp.path().join("addon-a"), tmp.path().join("addon-b")],
                loader: tmp.path().join("signed-boot"),
                enrol: vec![("PK.auth".into(), tmp.path().join("PK.auth"))],
            }),
            fdt: None,
        };
        let esp = tmp.path().join("esp");
        stage(&board(), &root, &esp, "2.0", &[Slot::A], &boot).expect("stage");
        let read = |p: &str| std::fs::read_to_string(esp.join(p)).unwrap_or_default();
        assert_eq!(read("EFI/Linux/hearth-a.efi"), "uki");
        assert!(
            esp.join("EFI/Linux/hearth-b+0-0.efi").is_file(),
            "slot b's placeholder"
        );
        assert_eq!(
            read("EFI/Linux/hearth-b+0-0.efi"),
            "",
            "empty: systemd-boot skips it"
        );
        assert!(!esp.join("hearth/a/vmlinuz").exists(), "no separate kernel");
        assert_eq!(
            read("EFI/Linux/hearth-a.efi.extra.d/slot.addon.efi"),
            "addon-a"
        );
        assert_eq!(
            read("EFI/Linux/hearth-b.efi.extra.d/slot.addon.efi"),
            "addon-b"
        );
        assert!(
            !esp.join("loader/entries").exists(),
            "type 2 entries only: {:?}",
            std::fs::read_dir(esp.join("loader")).map(|d| d.count())
        );
        assert!(read("loader/loader.conf").contains("default hearth-a.efi\n"));
        assert!(read("loader/loader.conf").contains("secure-boot-enroll manual\n"));
        assert_eq!(
            read("EFI/BOOT/BOOTX64.EFI"),
            "signed-boot",
            "the signed loader"
        );
        assert_eq!(read("EFI/systemd/systemd-bootx64.efi"), "signed-boot");
        assert_eq!(read("loader/keys/hearth/PK.auth"), "PK.auth");
    }

    #[test]
    fn the_uki_command_line_carries_the_root_hash_and_no_slot() {
        let b = board();
        let hash = "ab".repeat(32);
        let line = uki_cmdline(&b, &hash);
        assert!(line.contains(&format!("hearth.roothash={hash}")), "{line}");
        assert!(
            !line.contains("root="),
            "the slot's addon names the root: {line}"
        );
        assert!(
            !line.contains(" roothash="),
            "not systemd's own key: {line}"
        );
        assert!(!line.contains("hearth.slot"), "{line}");
        assert!(line.contains("panic=10"), "{line}");
        assert_eq!(
            slot_addon_cmdline(Slot::B),
            "root=PARTLABEL=root-b hearth.slot=b"
        );
        assert_eq!(
            addon_path(Slot::A),
            "EFI/Linux/hearth-a.efi.extra.d/slot.addon.efi"
        );
        assert_eq!(uki_path(Slot::B, false), "EFI/Linux/hearth-b+0-0.efi");
        let osrel = uki_osrel(
            "ID=debian\nPRETTY_NAME=\"Debian\"\nIMAGE_VERSION=0\n",
            "1.2.0",
        );
        assert_eq!(
            osrel,
            "ID=debian\nPRETTY_NAME=\"Hearth 1.2.0\"\nIMAGE_ID=hearth\nIMAGE_VERSION=1.2.0\n"
        );
    }
}
