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

use crate::board::{Board, BootMethod, Role, Slot};
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

/// The 1-based number of the `uboot-env` partition (what `part start` takes).
pub fn env_partition_number(board: &Board) -> Option<usize> {
    board
        .partitions
        .iter()
        .position(|p| p.role == Role::UBootEnv)
        .map(|i| i + 1)
}

/// The boot script (hush, U-Boot's shell) for `board`. Needs `setexpr`, `itest`, `part`,
/// `env import/export -c`, `load`, `booti` and block reads/writes of the boot device's type
/// (`virtio`, `mmc`, `scsi`, `usb`, `nvme`: distro boot sets `devtype`/`devnum`); 512-byte
/// blocks. U-Boot's numbers are hexadecimal (`test -gt` alone is decimal: only the small
/// counters go through it).
pub fn boot_script(board: &Board) -> Result<String, BootFilesError> {
    let part = env_partition_number(board)
        .ok_or_else(|| BootFilesError::Missing("uboot-env partition in the board file".into()))?;
    let args = |slot: Slot| efi::cmdline(board, slot).replace('"', "");
    let mut walk = String::new();
    for slot in Slot::ALL {
        let (u, l) = (slot.upper(), slot.letter());
        walk.push_str(&format!(
            "\telif test \"${{s}}\" = {u}; then\n\
             \t\tif test -e ${{devtype}} ${{devnum}}:${{distro_bootpart}} hearth/refused-{l}; then\n\
             \t\t\techo \"hearth: skipping slot {l}: its initramfs refused its root (hearth/refused-{l})\"\n\
             \t\telif test -z \"${{BOOT_{u}_LEFT}}\"; then\n\
             \t\t\tsetenv hearth_slot {l}\n\
             \t\telif test ${{BOOT_{u}_LEFT}} -gt 0; then\n\
             \t\t\tsetexpr BOOT_{u}_LEFT ${{BOOT_{u}_LEFT}} - 1\n\
             \t\t\tsetenv hearth_slot {l}\n\
             \t\t\tsetenv hearth_trial 1\n\
             \t\t\tif run hearth_save; then true; else echo \"hearth: cannot save the boot counter\"; fi\n\
             \t\tfi\n"
        ));
    }
    Ok(SCRIPT_TEMPLATE
        .replace("@PART@", &part.to_string())
        .replace("@SIZE@", &format!("{ENV_SIZE:#x}"))
        .replace("@WALK@", &walk)
        .replace("@ARGS_A@", &args(Slot::A))
        .replace("@ARGS_B@", &args(Slot::B))
        .replace("@FDT@", "${fdtcontroladdr}"))
}

const SCRIPT_TEMPLATE: &str = r#"# Hearth: A/B boot for U-Boot, written by hearth-image (image/src/uboot.rs; docs/ota.md).
# The A/B state is a redundant environment in the fw_setenv layout (CRC32, a flags byte,
# name=value pairs): two copies of @SIZE@ bytes on partition @PART@ (uboot-env), the bytes the
# agent reads and writes through /etc/fw_env.config. U-Boot's own environment is not used.
#  1. Both copies are read; the valid one with the newer flags counter is imported
#     (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT). With none valid, slot a boots.
#  2. BOOT_ORDER is walked: a slot whose initramfs refused its root (hearth/refused-X here)
#     is skipped; a slot without BOOT_X_LEFT is committed and boots; a slot with BOOT_X_LEFT
#     above 0 is on trial: the counter is decremented and saved over the older copy, then the
#     slot boots (its root read whole through dm-verity); a slot at 0 is skipped.
#  3. No bootable slot: a message, and U-Boot waits here.
setenv hearth_part @PART@
setenv hearth_size @SIZE@
setexpr hearth_blocks ${hearth_size} / 200
setexpr hearth_dsize ${hearth_size} - 5
setexpr hearth_isize ${hearth_size} - 1
setexpr hearth_c0 ${kernel_addr_r} + 0
setexpr hearth_c1 ${kernel_addr_r} + 100000
setexpr hearth_t ${kernel_addr_r} + 200000
setexpr hearth_w ${kernel_addr_r} + 300000
part start ${devtype} ${devnum} ${hearth_part} hearth_lba0
setexpr hearth_lba1 ${hearth_lba0} + ${hearth_blocks}
${devtype} dev ${devnum}
${devtype} read ${hearth_c0} ${hearth_lba0} ${hearth_blocks}
${devtype} read ${hearth_c1} ${hearth_lba1} ${hearth_blocks}
# A copy at hearth_c, made CRC + data at hearth_t, imported when its CRC matches.
setenv hearth_import 'cp.b ${hearth_c} ${hearth_t} 4; setexpr hearth_x ${hearth_c} + 5; setexpr hearth_y ${hearth_t} + 4; cp.b ${hearth_x} ${hearth_y} ${hearth_dsize}; env import -c ${hearth_t} ${hearth_isize} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT'
# The three variables as a copy (CRC, flags hearth_fnext, data) over the older copy.
setenv hearth_save 'env export -c -s ${hearth_isize} ${hearth_t} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT; cp.b ${hearth_t} ${hearth_w} 4; setexpr hearth_x ${hearth_w} + 4; mw.b ${hearth_x} ${hearth_fnext} 1; setexpr hearth_x ${hearth_w} + 5; setexpr hearth_y ${hearth_t} + 4; cp.b ${hearth_y} ${hearth_x} ${hearth_dsize}; ${devtype} write ${hearth_w} ${hearth_lbaw} ${hearth_blocks}'
setenv hearth_ok0
setenv hearth_ok1
setenv hearth_c ${hearth_c0}
if run hearth_import; then setenv hearth_ok0 1; fi
setenv hearth_c ${hearth_c1}
if run hearth_import; then setenv hearth_ok1 1; fi
setexpr hearth_x ${hearth_c0} + 4
setexpr.b hearth_f0 *${hearth_x}
setexpr hearth_x ${hearth_c1} + 4
setexpr.b hearth_f1 *${hearth_x}
# The newer copy: the higher flags counter, which wraps (0 is newer than ff), as fw_setenv.
setenv hearth_cur
if test -n "${hearth_ok0}" && test -n "${hearth_ok1}"; then
	setenv hearth_cur 0
	if itest ${hearth_f1} == 0 && itest ${hearth_f0} == ff; then
		setenv hearth_cur 1
	elif itest ${hearth_f1} == ff && itest ${hearth_f0} == 0; then
		setenv hearth_cur 0
	elif itest ${hearth_f1} > ${hearth_f0}; then
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
if test "${hearth_cur}" = 0; then
	setenv hearth_c ${hearth_c0}
	run hearth_import
	setexpr hearth_fnext ${hearth_f0} + 1
	setenv hearth_lbaw ${hearth_lba1}
elif test "${hearth_cur}" = 1; then
	setenv hearth_c ${hearth_c1}
	run hearth_import
	setexpr hearth_fnext ${hearth_f1} + 1
	setenv hearth_lbaw ${hearth_lba0}
else
	echo "hearth: no valid copy of the boot environment on partition ${hearth_part}; booting slot a"
	setenv BOOT_ORDER A
	setenv hearth_fnext 1
	setenv hearth_lbaw ${hearth_lba0}
fi
setexpr hearth_fnext ${hearth_fnext} % 100
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
load ${devtype} ${devnum}:${distro_bootpart} ${ramdisk_addr_r} hearth/${hearth_slot}/initrd.img
booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} @FDT@
echo "hearth: slot ${hearth_slot} did not boot"
"#;

/// Writes the boot partition's files into `staging`: the boot script (source and compiled with
/// `mkimage`, u-boot-tools) and the filled slots' kernel and initrd.
pub fn stage(
    board: &Board,
    staging: &Path,
    filled: &[Slot],
    boot: &SlotBoot,
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
        assert!(script.contains("setenv hearth_part 2\n"), "{script}");
        assert!(script.contains("setenv hearth_size 0x4000\n"));
        for slot in Slot::ALL {
            let (u, l) = (slot.upper(), slot.letter());
            assert!(script.contains(&format!("root=PARTLABEL=root-{l} ")));
            assert!(script.contains(&format!("hearth.slot={l}")));
            assert!(script.contains(&format!("hearth/refused-{l}; then")));
            assert!(script.contains(&format!("setexpr BOOT_{u}_LEFT ${{BOOT_{u}_LEFT}} - 1")));
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
