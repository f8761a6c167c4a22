//! Boot files of a U-Boot board (`boot = "u-boot"`): the board's own U-Boot build runs
//! Hearth's boot script, `boot.scr` on the FAT `esp` partition (U-Boot's distro boot finds it
//! there), which picks the slot and boots its kernel and initrd from `hearth/X/` on the same
//! partition, as on systemd-boot boards (so the update payloads `kernel` and `initrd` and the
//! initramfs' verity refusal work the same).
//!
//! The A/B choice and the boot counter live in a **redundant environment in the `fw_setenv`
//! layout** (CRC32 of the data, a flags byte, `name=value\0…\0\0`): two copies of
//! [`ENV_SIZE`] bytes at the start of the raw `uboot-env` partition. The boot script reads and
//! writes them itself (`env import -c`, `env export -c` and block writes), and the agent
//! through `/etc/fw_env.config` (hearth-ota's `uboot` backend, the same bytes `fw_printenv`
//! reads). The board's own U-Boot environment is not used: Debian's builds keep it where the
//! board's defconfig says (in NOR flash on QEMU's `virt`, not redundant; in SPI flash or at an
//! eMMC offset on SBCs), and a power cut during a non-redundant `saveenv` loses it. Two
//! copies on the boot medium, each written whole with a higher flags counter, leave either the
//! old or the new state after a power cut, whatever the board's build.
use std::path::Path;
use std::process::Command;

use hearth_ota::boot::uboot::{Env, encode};

use crate::board::{Board, BootMethod, Slot};
use crate::cmd::Runner;
use crate::efi::{self, BootFilesError, SlotBoot};

/// Size of one environment copy (bytes); the copies sit at offsets 0 and `ENV_SIZE` of the
/// `uboot-env` partition.
pub const ENV_SIZE: usize = 0x4000;

/// The boot script's source (kept on the partition for people reading it) and the compiled
/// script U-Boot's distro boot runs.
pub const SCRIPT_SOURCE: &str = "boot.cmd";
pub const SCRIPT: &str = "boot.scr";

/// What the agent's `uboot` backend reads: `/etc/fw_env.config` in the root (the copy in
/// `overlays/uboot` must say the same; a test checks it).
pub fn fw_env_config() -> String {
    let dev = format!("/dev/disk/by-partlabel/{}", crate::board::names::UBOOT_ENV);
    format!(
        "# Hearth's A/B boot environment (image/src/uboot.rs): two redundant copies on the\n\
         # uboot-env partition, read by boot.scr and by fw_printenv/fw_setenv.\n\
         # device offset size\n\
         {dev} 0x0 {ENV_SIZE:#x}\n{dev} {ENV_SIZE:#x} {ENV_SIZE:#x}\n"
    )
}

/// The partition file for `uboot-env`: copy 0 holds the fresh image's state (flags 1), copy 1
/// is never written (zeros: no valid CRC), as `fw_setenv` leaves a device it wrote once. Slot a
/// boots; an empty slot b is unbootable (out of `BOOT_ORDER`, `BOOT_B_LEFT=0`), which is what
/// the updater writes for a slot it cannot boot.
pub fn initial_env(filled: &[Slot]) -> Vec<u8> {
    let mut env = Env::new();
    let order: Vec<&str> = Slot::ALL
        .iter()
        .filter(|s| filled.contains(s))
        .map(|s| s.upper())
        .collect();
    env.insert("BOOT_ORDER".into(), order.join(" "));
    for slot in Slot::ALL.iter().filter(|s| !filled.contains(s)) {
        env.insert(format!("BOOT_{}_LEFT", slot.upper()), "0".into());
    }
    let mut bytes = encode(&env, ENV_SIZE, 1).expect("three short variables fit 16 KiB");
    bytes.resize(2 * ENV_SIZE, 0);
    bytes
}

/// Where the environment copies live on the disk: the first block of `uboot-env` (the plan's
/// offsets depend only on the board's partition sizes, and updates never move partitions).
pub fn env_first_block(board: &Board) -> Option<u64> {
    crate::partition::Plan::for_board(board, "")
        .get(crate::board::names::UBOOT_ENV)
        .map(|p| p.offset / crate::partition::SECTOR)
}

/// The boot script (hush, U-Boot's shell) for `board`. It uses only what Debian's U-Boot
/// builds have in common: `itest`, `test`, `cp`/`mw`, `env import/export -c`, `load`, `booti`
/// and block reads/writes of the boot device's type (`virtio`, `mmc`, `scsi`, `usb`, `nvme`:
/// distro boot and bootstd set `devtype`/`devnum`/`distro_bootpart`). No `setexpr` (Debian's
/// Rockchip builds have none), so every address and block number is written in by the builder
/// and the two small sums the script needs (the next flags value, a counter minus one) are
/// tables.
pub fn boot_script(board: &Board) -> Result<String, BootFilesError> {
    let spec = board
        .uboot
        .as_ref()
        .ok_or_else(|| BootFilesError::Missing("[uboot] table in the board file".into()))?;
    let lba0 = env_first_block(board)
        .ok_or_else(|| BootFilesError::Missing("uboot-env partition in the board file".into()))?;
    let size = ENV_SIZE as u64;
    let blocks = size / crate::partition::SECTOR;
    let s = spec.scratch_addr;
    // Both copies are read at once to c0 (copy 1 follows at c0 + size); w is the copy to write
    // (CRC, flags, data); t holds a copy as CRC + data for `env import/export -c`, last:
    // `env export -c` clears the board's whole environment size (CONFIG_ENV_SIZE, 256 KiB on
    // qemu_arm64) after it, whatever `-s` says (seen in U-Boot 2023.01).
    let (c0, c1, w, t) = (s, s + size, s + 0x10000, s + 0x20000);
    let hex = |v: u64| format!("{v:#x}");
    let import = |c: u64| {
        format!(
            "cp.b {} {} 4; cp.b {} {} {}; env import -c {} {} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT",
            hex(c),
            hex(t),
            hex(c + 5),
            hex(t + 4),
            hex(size - 5),
            hex(t),
            hex(size - 1)
        )
    };
    // The next flags value after the newer copy's (at hearth_fsrc), into the copy to write.
    let mut flags = String::new();
    for v in 0..=255u32 {
        flags.push_str(&format!(
            "if itest.b *${{hearth_fsrc}} == {v:#04x}; then mw.b {} {:#04x} 1; fi\n",
            hex(w + 4),
            (v + 1) % 256
        ));
    }
    let mut walk = String::new();
    for slot in Slot::ALL {
        let (u, l) = (slot.upper(), slot.letter());
        let mut minus_one = String::new();
        for n in 1..=9 {
            minus_one.push_str(&format!(
                "\t\t\tif test \"${{BOOT_{u}_LEFT}}\" = {n}; then setenv BOOT_{u}_LEFT {}; fi\n",
                n - 1
            ));
        }
        walk.push_str(&format!(
            "\telif test \"${{s}}\" = {u}; then\n\
             \t\tif test -e ${{devtype}} ${{devnum}}:${{distro_bootpart}} hearth/refused-{l}; then\n\
             \t\t\techo \"hearth: skipping slot {l}: its initramfs refused its root (hearth/refused-{l})\"\n\
             \t\telif test -z \"${{BOOT_{u}_LEFT}}\"; then\n\
             \t\t\tsetenv hearth_slot {l}\n\
             \t\telif test ${{BOOT_{u}_LEFT}} -gt 0; then\n\
             {minus_one}\
             \t\t\tsetenv hearth_slot {l}\n\
             \t\t\tsetenv hearth_trial 1\n\
             \t\t\tif run hearth_save; then true; else echo \"hearth: cannot save the boot counter\"; fi\n\
             \t\tfi\n"
        ));
    }
    let (fdt_load, fdt) = match &spec.fdt {
        Some(_) => (
            format!(
                "load ${{devtype}} ${{devnum}}:${{distro_bootpart}} ${{fdt_addr_r}} hearth/${{hearth_slot}}/{FDT_FILE}\n"
            ),
            "${fdt_addr_r}",
        ),
        None => (String::new(), "${fdtcontroladdr}"),
    };
    let args = |slot: Slot| efi::cmdline(board, slot).replace('"', "");
    Ok(SCRIPT_TEMPLATE
        .replace("@SIZE@", &hex(size))
        .replace("@LBA0@", &hex(lba0))
        .replace("@LBA1@", &hex(lba0 + blocks))
        .replace("@BLOCKS@", &hex(blocks))
        .replace("@BLOCKS2@", &hex(2 * blocks))
        .replace("@C0@", &hex(c0))
        .replace("@F0@", &hex(c0 + 4))
        .replace("@F1@", &hex(c1 + 4))
        .replace("@W@", &hex(w))
        .replace("@WF@", &hex(w + 4))
        .replace("@T@", &hex(t))
        .replace("@T4@", &hex(t + 4))
        .replace("@W5@", &hex(w + 5))
        .replace("@DSIZE@", &hex(size - 5))
        .replace("@ISIZE@", &hex(size - 1))
        .replace("@IMPORT0@", &import(c0))
        .replace("@IMPORT1@", &import(c1))
        .replace("@FLAGS@", &flags)
        .replace("@WALK@", &walk)
        .replace("@ARGS_A@", &args(Slot::A))
        .replace("@ARGS_B@", &args(Slot::B))
        .replace("@FDT_LOAD@", &fdt_load)
        .replace("@FDT@", fdt))
}

/// The device tree `rel` (e.g. `rockchip/rk3399-rockpro64.dtb`) of the root's newest kernel
/// (`/usr/lib/linux-image-<version>/`).
pub fn kernel_dtb(root: &Path, rel: &str) -> anyhow::Result<std::path::PathBuf> {
    kernel_path(root, rel, Path::is_file)
        .ok_or_else(|| anyhow::anyhow!("the root's kernel has no device tree {rel}"))
}

/// `rel` under the newest `/usr/lib/linux-image-<version>/` of the root that has it (`want`:
/// a file, a folder), where Debian's kernel packages put their device trees.
pub fn kernel_path(root: &Path, rel: &str, want: fn(&Path) -> bool) -> Option<std::path::PathBuf> {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("usr/lib"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("linux-image-"))
        .map(|e| e.path().join(rel))
        .filter(|p| want(p))
        .collect();
    found.sort();
    found.pop()
}

/// A slot's device tree on the boot partition (`[uboot] fdt` boards), beside its kernel.
pub const FDT_FILE: &str = "board.dtb";

const SCRIPT_TEMPLATE: &str = r#"# Hearth: A/B boot for U-Boot, written by hearth-image (image/src/uboot.rs; docs/image.md).
# The A/B state is a redundant environment in the fw_setenv layout (CRC32, a flags byte,
# name=value pairs): two copies of @SIZE@ bytes at blocks @LBA0@ and @LBA1@ (the uboot-env
# partition), the bytes the agent reads and writes through /etc/fw_env.config. U-Boot's own
# environment is not used.
#  1. Both copies are read; the valid one with the newer flags counter is imported
#     (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT). With none valid, slot a boots.
#  2. BOOT_ORDER is walked: a slot whose initramfs refused its root (hearth/refused-X here)
#     is skipped; a slot without BOOT_X_LEFT is committed and boots; a slot with BOOT_X_LEFT
#     above 0 is on trial: the counter is decremented and saved over the older copy, then the
#     slot boots (its root read whole through dm-verity); a slot at 0 is skipped.
#  3. No bootable slot: a message, and U-Boot waits here.
# Addresses and block numbers are the builder's (many U-Boot builds cannot compute them).
${devtype} dev ${devnum}
${devtype} read @C0@ @LBA0@ @BLOCKS2@
setenv hearth_import0 '@IMPORT0@'
setenv hearth_import1 '@IMPORT1@'
setenv hearth_save 'env export -c -s @ISIZE@ @T@ BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT; cp.b @T@ @W@ 4; cp.b @T4@ @W5@ @DSIZE@; ${devtype} write @W@ ${hearth_lbaw} @BLOCKS@'
setenv hearth_ok0
setenv hearth_ok1
if run hearth_import0; then setenv hearth_ok0 1; fi
if run hearth_import1; then setenv hearth_ok1 1; fi
# The newer copy: the higher flags counter, which wraps (0 is newer than ff), as fw_setenv.
setenv hearth_cur
if test -n "${hearth_ok0}" && test -n "${hearth_ok1}"; then
	setenv hearth_cur 0
	if itest.b *@F1@ == 0 && itest.b *@F0@ == 0xff; then
		setenv hearth_cur 1
	elif itest.b *@F1@ == 0xff && itest.b *@F0@ == 0; then
		setenv hearth_cur 0
	elif itest.b *@F1@ > *@F0@; then
		setenv hearth_cur 1
	fi
elif test -n "${hearth_ok0}"; then
	setenv hearth_cur 0
elif test -n "${hearth_ok1}"; then
	setenv hearth_cur 1
fi
# Importing merges: a variable the chosen copy lacks (a committed slot's BOOT_X_LEFT) must not
# survive from the other copy's import above.
setenv BOOT_ORDER
setenv BOOT_A_LEFT
setenv BOOT_B_LEFT
mw.b @WF@ 1 1
if test "${hearth_cur}" = 0; then
	run hearth_import0
	setenv hearth_fsrc @F0@
	setenv hearth_lbaw @LBA1@
elif test "${hearth_cur}" = 1; then
	run hearth_import1
	setenv hearth_fsrc @F1@
	setenv hearth_lbaw @LBA0@
else
	echo "hearth: no valid copy of the boot environment; booting slot a"
	setenv BOOT_ORDER A
	setenv hearth_fsrc
	setenv hearth_lbaw @LBA0@
fi
if test -n "${hearth_fsrc}"; then
@FLAGS@fi
echo "hearth: BOOT_ORDER=${BOOT_ORDER} BOOT_A_LEFT=${BOOT_A_LEFT} BOOT_B_LEFT=${BOOT_B_LEFT} (copy ${hearth_cur})"
setenv hearth_slot
setenv hearth_trial
for s in ${BOOT_ORDER}; do
	if test -n "${hearth_slot}"; then
		true
@WALK@	fi
done
if test -z "${hearth_slot}"; then
	echo "hearth: no bootable slot (BOOT_ORDER=${BOOT_ORDER} BOOT_A_LEFT=${BOOT_A_LEFT} BOOT_B_LEFT=${BOOT_B_LEFT}); stopping here. Reflash the device or write a good release into a slot."
	while true; do sleep 3600; done
fi
if test "${hearth_slot}" = a; then
	setenv bootargs "@ARGS_A@"
else
	setenv bootargs "@ARGS_B@"
fi
if test -n "${hearth_trial}"; then
	setenv bootargs "${bootargs} hearth.verity_check=full"
	echo "hearth: booting slot ${hearth_slot} on trial"
else
	echo "hearth: booting slot ${hearth_slot}"
fi
echo "hearth: kernel command line: ${bootargs}"
load ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} hearth/${hearth_slot}/vmlinuz
@FDT_LOAD@load ${devtype} ${devnum}:${distro_bootpart} ${ramdisk_addr_r} hearth/${hearth_slot}/initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} @FDT@
echo "hearth: slot ${hearth_slot} did not boot"
"#;

/// Writes the boot partition's files into `staging`: the boot script (source and compiled with
/// `mkimage`, u-boot-tools) and the filled slots' kernel, initrd and (`[uboot] fdt` boards)
/// device tree.
pub fn stage(
    board: &Board,
    staging: &Path,
    filled: &[Slot],
    boot: &SlotBoot,
    fdt: Option<&Path>,
    epoch: u64,
    runner: &Runner,
) -> anyhow::Result<()> {
    debug_assert_eq!(board.boot, BootMethod::UBoot);
    let source = staging.join(SCRIPT_SOURCE);
    efi::write(&source, &boot_script(board)?)?;
    runner.run(
        Command::new("mkimage")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none"])
            .args(["-n", "Hearth A/B boot"])
            .arg("-d")
            .arg(&source)
            .arg(staging.join(SCRIPT)),
        false,
    )?;
    for slot in filled {
        let dir = staging.join("hearth").join(slot.letter());
        efi::copy(&boot.kernel, &dir.join("vmlinuz"))?;
        efi::copy(&boot.initrd, &dir.join("initrd.img"))?;
        if let Some(fdt) = fdt {
            efi::copy(fdt, &dir.join(FDT_FILE))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::load_board_file;
    use hearth_ota::boot::uboot::decode;

    fn board() -> Board {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../board-configs/qemu-arm64-uboot.toml");
        load_board_file(&path).expect("board")
    }

    #[test]
    fn a_fresh_image_boots_slot_a_and_never_the_empty_slot() {
        let bytes = initial_env(&[Slot::A]);
        assert_eq!(bytes.len(), 2 * ENV_SIZE);
        let (flags, env) = decode(&bytes[..ENV_SIZE]).expect("copy 0 valid");
        assert_eq!(flags, 1);
        assert_eq!(env.get("BOOT_ORDER").map(String::as_str), Some("A"));
        assert_eq!(env.get("BOOT_B_LEFT").map(String::as_str), Some("0"));
        assert!(!env.contains_key("BOOT_A_LEFT"), "slot a is committed");
        assert!(decode(&bytes[ENV_SIZE..]).is_none(), "copy 1 never written");
        let (_, both) = decode(&initial_env(&Slot::ALL)[..ENV_SIZE]).expect("valid");
        assert_eq!(both.get("BOOT_ORDER").map(String::as_str), Some("A B"));
        assert_eq!(both.len(), 1);
    }

    #[test]
    fn the_script_names_the_env_partition_and_each_slots_root() {
        let b = board();
        let script = boot_script(&b).expect("script");
        // uboot-env follows the 256 MiB esp, which starts at 1 MiB: block 526336 = 0x80800.
        assert!(
            script.contains("read 0x40400000 0x80800 0x40\n"),
            "{script}"
        );
        assert!(script.contains("setenv hearth_lbaw 0x80820\n"), "{script}");
        assert!(
            !script.contains("setexpr"),
            "Debian's Rockchip U-Boot has no setexpr"
        );
        assert!(
            script.contains("== 0xff; then mw.b 0x40410004 0x00 1; fi"),
            "flags wrap"
        );
        for slot in Slot::ALL {
            let (u, l) = (slot.upper(), slot.letter());
            assert!(script.contains(&format!("root=PARTLABEL=root-{l} ")));
            assert!(script.contains(&format!("hearth.slot={l}")));
            assert!(script.contains(&format!("hearth/refused-{l}; then")));
            assert!(script.contains(&format!(
                "if test \"${{BOOT_{u}_LEFT}}\" = 3; then setenv BOOT_{u}_LEFT 2; fi"
            )));
        }
        assert!(!script.contains('@'), "a placeholder left: {script}");
        // Every block the template opens is closed (hush refuses the whole script otherwise).
        let count = |w: &str| {
            script
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#'))
                .flat_map(|l| l.split(';').map(str::trim).collect::<Vec<_>>())
                .filter(|s| s.split_whitespace().next() == Some(w))
                .count()
        };
        assert_eq!(count("if"), count("fi"), "{script}");
        assert_eq!(count("for") + count("while"), count("done"));
    }

    /// An SBC: its U-Boot before the first partition moves the environment's blocks, its
    /// `kernel_addr_r` is the scratch area, and the slot's own device tree is loaded.
    #[test]
    fn the_rockpro64_script_uses_its_addresses_and_device_tree() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../board-configs/rockpro64.toml");
        let b = load_board_file(&path).expect("board");
        let script = boot_script(&b).expect("script");
        // esp at 16 MiB, 256 MiB long: uboot-env at 272 MiB = block 0x88000.
        assert!(script.contains("read 0x2080000 0x88000 0x40\n"), "{script}");
        assert!(script.contains("${fdt_addr_r} hearth/${hearth_slot}/board.dtb\n"));
        assert!(
            script.contains("booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr_r}\n")
        );
        assert!(script.contains("console=ttyS2,1500000"));
        assert!(!script.contains("fdtcontroladdr"));
    }

    #[test]
    fn the_overlay_names_the_same_copies_as_the_builder() {
        let overlay =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../overlays/uboot/etc/fw_env.config");
        assert_eq!(
            std::fs::read_to_string(&overlay).expect("overlay"),
            fw_env_config()
        );
        let b = board();
        assert!(b.overlays.iter().any(|o| o == "uboot"));
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("fw_env.config"), fw_env_config()).expect("write");
        let store =
            hearth_ota::release::fw_env_config(&dir.path().join("fw_env.config")).expect("parse");
        assert_eq!(store.size, ENV_SIZE);
        assert_eq!(store.copies[1].1, ENV_SIZE as u64);
    }
}
