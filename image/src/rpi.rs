//! Boot files of a Raspberry Pi board (Pi 4/400/CM4 and Pi 5/500/CM5, 64-bit).
//!
//! The EEPROM bootloader reads `autoboot.txt` from the first FAT partition (`bootconfig`);
//! with `tryboot_a_b=1` it boots `boot_partition` (the committed slot) normally and the
//! `[tryboot]` section's partition once when asked to (`reboot '0 tryboot'`). A fresh image
//! names the committed slot a in both sections: `[tryboot]` is the trial record of the
//! updater's boot control, and a trial is only ever set by an update. Each slot's boot
//! partition holds the firmware (Pi 4; the Pi 5's lives in its EEPROM), the kernel, the
//! initramfs, the device trees, `config.txt` and one `cmdline-<slot>.txt` per slot; the
//! `[boot_partition=N]` filters of `config.txt` pick the one naming the booted slot's root. So
//! both slots' boot partitions have the same content, and one FAT image (the OTA bundle's
//! `boot` payload) fits either slot. The initramfs is the slot initrd of `verity::boot_initrd`:
//! it carries the root hash of the release's root (the same root goes into either slot, so one
//! hash serves both), and the firmware checks none of these files (docs/image.md, "Chain of
//! trust").
//!
//! The firmware comes from Debian's `raspi-firmware` package, downloaded with apt into the
//! builder's cache and extracted (never installed into the root: its kernel hooks assume a
//! writable `/boot/firmware`).
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::board::{Board, Role, Slot};
use crate::cmd::Runner;
use crate::efi::{boot_file, cmdline, copy, write};

/// Where a Pi image's agent writes the setup code: the `bootconfig` partition, the first FAT
/// partition, which every computer shows when the card is plugged in.
pub const SETUP_CODE_FILE: &str = "hearth-setup.txt";

/// Files that mark an empty slot's boot partition.
pub const EMPTY_SLOT_FILE: &str = "HEARTH-EMPTY-SLOT.txt";

/// A board's firmware from a Debian package and its version: the Pi's extracted
/// `usr/lib/raspi-firmware` folder, or a U-Boot SBC's boot loader file (written before the
/// first partition).
#[derive(Debug, Clone)]
pub struct Firmware {
    pub path: PathBuf,
    pub package: String,
    pub version: String,
}

/// 1-based partition number of a board's partition with this role and slot.
fn partition_number(board: &Board, role: Role, slot: Option<Slot>) -> Option<usize> {
    board
        .partitions
        .iter()
        .position(|p| p.role == role && p.slot == slot)
        .map(|i| i + 1)
}

/// `autoboot.txt` of the `bootconfig` partition.
pub fn autoboot_txt(board: &Board) -> Result<String> {
    let a = partition_number(board, Role::Boot, Some(Slot::A)).context("boot-a partition")?;
    let b = partition_number(board, Role::Boot, Some(Slot::B)).context("boot-b partition")?;
    Ok(format!(
        "# Hearth A/B boot (Raspberry Pi tryboot): slot a is partition {a}, slot b partition {b}.\n\
         # [all] names the committed slot; [tryboot] the slot on trial, or the committed one\n\
         # when no update is on trial. The updater rewrites this file.\n\
         [all]\ntryboot_a_b=1\nboot_partition={a}\n[tryboot]\nboot_partition={a}\n"
    ))
}

/// `config.txt` of a slot: the board's lines, then the kernel and initramfs the slot holds,
/// and per boot partition the command line naming its slot's root.
pub fn config_txt(board: &Board) -> Result<String> {
    let spec = board.rpi.as_ref().context("an [rpi] table")?;
    let a = partition_number(board, Role::Boot, Some(Slot::A)).context("boot-a partition")?;
    let b = partition_number(board, Role::Boot, Some(Slot::B)).context("boot-b partition")?;
    let mut s = String::from(
        "# Hearth boot partition (one per slot). See config.txt(5) of Raspberry Pi.\n",
    );
    for line in &spec.config {
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("[all]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n");
    s.push_str(&format!(
        "[boot_partition={a}]\ncmdline={}\n[boot_partition={b}]\ncmdline={}\n[all]\n",
        cmdline_file(Slot::A),
        cmdline_file(Slot::B)
    ));
    Ok(s)
}

/// Name of a slot's command-line file on every boot partition.
pub fn cmdline_file(slot: Slot) -> String {
    format!("cmdline-{}.txt", slot.letter())
}

/// `cmdline-<slot>.txt`: one line naming the slot's own root.
pub fn cmdline_txt(board: &Board, slot: Slot) -> String {
    format!("{}\n", cmdline(board, slot))
}

/// Downloads (once, into `cache`) and extracts the board's firmware package for `suite`.
pub fn fetch_firmware(
    board: &Board,
    mirror: &str,
    cache: &Path,
    runner: &Runner,
) -> Result<Firmware> {
    let spec = board.rpi.as_ref().context("an [rpi] table")?;
    let fetched = crate::debpkg::fetch(board, &spec.firmware_package, mirror, cache, runner)?;
    let dir = fetched.dir.join("usr/lib/raspi-firmware");
    if !dir.is_dir() {
        bail!("{} has no usr/lib/raspi-firmware", spec.firmware_package);
    }
    Ok(Firmware {
        path: dir,
        package: fetched.package,
        version: fetched.version,
    })
}

/// The kernel's device-tree folder in the root (`/usr/lib/linux-image-<version>/broadcom`).
fn dtb_dir(root: &Path) -> Result<PathBuf> {
    crate::uboot::kernel_path(root, "broadcom", Path::is_dir)
        .context("the root has no /usr/lib/linux-image-*/broadcom device trees")
}

/// Stages `bootconfig` and the slots' boot partitions into `parts`; returns
/// `(partition, folder)` pairs. A filled slot's `initrd.img` is `slot_initrd` (the root's
/// initramfs with the verity root hash appended), not the root's own. A slot the image leaves
/// empty gets only a marker file: the firmware finds no `config.txt` there, and a tryboot of it
/// falls back to the other slot.
pub fn stage(
    board: &Board,
    root: &Path,
    parts: &Path,
    filled: &[Slot],
    firmware: &Firmware,
    slot_initrd: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    let spec = board.rpi.as_ref().context("an [rpi] table")?;
    let mut out = Vec::new();
    let bootconfig = parts.join("stage-bootconfig");
    crate::fsutil::remove_all(&bootconfig)?;
    write(&bootconfig.join("autoboot.txt"), &autoboot_txt(board)?)?;
    out.push(("bootconfig".to_string(), bootconfig));

    let kernel = boot_file(root, "vmlinuz-")?;
    let dtbs = dtb_dir(root)?;
    for slot in Slot::ALL {
        let dir = parts.join(format!("stage-boot-{}", slot.letter()));
        crate::fsutil::remove_all(&dir)?;
        std::fs::create_dir_all(&dir)?;
        if !filled.contains(&slot) {
            write(
                &dir.join(EMPTY_SLOT_FILE),
                "This Hearth slot is empty; the updater fills it.\n",
            )?;
            out.push((format!("boot-{}", slot.letter()), dir));
            continue;
        }
        for name in &spec.firmware {
            let from = firmware.path.join(name);
            if !from.is_file() {
                bail!("{} {} has no {name}", firmware.package, firmware.version);
            }
            copy(&from, &dir.join(name))?;
        }
        for name in &spec.dtbs {
            let from = dtbs.join(name);
            if !from.is_file() {
                bail!("the kernel has no device tree {name}");
            }
            copy(&from, &dir.join(name))?;
        }
        copy(&kernel, &dir.join("vmlinuz"))?;
        copy(slot_initrd, &dir.join("initrd.img"))?;
        write(&dir.join("config.txt"), &config_txt(board)?)?;
        for s in Slot::ALL {
            write(&dir.join(cmdline_file(s)), &cmdline_txt(board, s))?;
        }
        out.push((format!("boot-{}", slot.letter()), dir));
    }
    Ok(out)
}

/// Raspberry Pi Imager device tags of a board.
pub fn imager_devices(board: &str) -> Vec<&'static str> {
    match board {
        "rpi4" => vec!["pi4-64bit"],
        "rpi5" => vec!["pi5-64bit"],
        _ => vec![],
    }
}

/// What the `os_list` entry describes.
#[derive(Debug, Clone)]
pub struct OsListInput<'a> {
    pub board: &'a Board,
    pub version: &'a str,
    /// Download URL (or file name, for a local list) of the image.
    pub url: &'a str,
    pub release_date: &'a str,
    pub download_size: u64,
    pub download_sha256: &'a str,
    pub extract_size: u64,
    pub extract_sha256: &'a str,
}

/// The entry's icon: one Imager bundles (`icons/…` names its own resources; Hearth publishes
/// no icon of its own, and Imager's format requires one).
pub const IMAGER_ICON: &str = "icons/cat_home_automation.png";

/// The JSON Schema the `os_list` documents are checked against (tests; docs/image.md).
pub const OS_LIST_SCHEMA: &str = include_str!("../schemas/rpi-imager-os-list.schema.json");

/// The `os_list` of a built image, from its files: `image` is what Imager downloads (the
/// `.img.xz`, or the `.img` of a `--no-xz` build), `raw_size`/`raw_sha256` the disk Imager
/// writes (the uncompressed image).
pub fn os_list_of(
    board: &Board,
    version: &str,
    epoch: u64,
    image: &crate::artifacts::FileEntry,
    raw_size: u64,
    raw_sha256: &str,
) -> serde_json::Value {
    os_list(&OsListInput {
        board,
        version,
        url: &image.file,
        release_date: &date_of(epoch),
        download_size: image.size,
        download_sha256: &image.sha256,
        extract_size: raw_size,
        extract_sha256: raw_sha256,
    })
}

/// A Raspberry Pi Imager `os_list` document with one entry for this image.
pub fn os_list(i: &OsListInput) -> serde_json::Value {
    json!({
        "os_list": [{
            "name": format!("Hearth {} ({})", i.version, i.board.description),
            "icon": IMAGER_ICON,
            "description": "Hearth home cloud: apps, files and backups from a web dashboard. \
                            After the first boot open https://hearth.local/ and enter the setup \
                            code from hearth-setup.txt on the card's first partition.",
            "url": i.url,
            "release_date": i.release_date,
            "image_download_size": i.download_size,
            "image_download_sha256": i.download_sha256,
            "extract_size": i.extract_size,
            "extract_sha256": i.extract_sha256,
            "devices": imager_devices(&i.board.name),
            "init_format": "none",
        }]
    })
}

/// `YYYY-MM-DD` of a Unix time (UTC).
pub fn date_of(epoch: u64) -> String {
    // Civil from days (Howard Hinnant's algorithm).
    let days = (epoch / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::load_board_file;

    fn board(name: &str) -> Board {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../board-configs")
            .join(format!("{name}.toml"));
        load_board_file(&path).expect("board")
    }

    #[test]
    fn autoboot_names_the_slots_partitions() {
        let text = autoboot_txt(&board("rpi4")).expect("autoboot");
        assert!(text.contains("tryboot_a_b=1"));
        assert!(
            text.contains("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=2\n"),
            "a fresh image has no trial: [tryboot] names the committed slot: {text}"
        );
    }

    #[test]
    fn each_slot_cmdline_names_its_own_root() {
        for name in ["rpi4", "rpi5"] {
            let b = board(name);
            let a = cmdline_txt(&b, Slot::A);
            let bb = cmdline_txt(&b, Slot::B);
            assert!(
                a.contains("root=PARTLABEL=root-a ") && !a.contains("root-b"),
                "{a}"
            );
            assert!(
                bb.contains("root=PARTLABEL=root-b ") && !bb.contains("root-a"),
                "{bb}"
            );
            assert_eq!(a.lines().count(), 1);
            // A trial whose initramfs panics (no root hash) or whose kernel panics reboots,
            // and a plain reboot boots the committed slot.
            assert!(a.contains(" panic=10 ") && bb.contains(" panic=10 "), "{a}");
        }
    }

    #[test]
    fn config_loads_the_slots_kernel_and_initramfs() {
        let text = config_txt(&board("rpi5")).expect("config");
        assert!(text.contains("arm_64bit=1"));
        assert!(text.contains("kernel=vmlinuz\ninitramfs initrd.img followkernel\n"));
        assert!(
            text.contains(
                "[boot_partition=2]\ncmdline=cmdline-a.txt\n[boot_partition=3]\ncmdline=cmdline-b.txt\n[all]\n"
            ),
            "{text}"
        );
    }

    /// Issue 13 item 4: the Pi's boot partition carries the slot initrd with the root hash,
    /// not the root's own initramfs (which cannot hold it: the hash covers that file).
    #[test]
    fn staging_fills_slot_a_with_the_verity_initrd_and_marks_b_empty() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let dtb = root.join("usr/lib/linux-image-6.12-arm64/broadcom");
        std::fs::create_dir_all(&dtb).expect("mkdir");
        std::fs::create_dir_all(root.join("boot")).expect("mkdir");
        std::fs::write(root.join("boot/vmlinuz-6.12-arm64"), "k").expect("write");
        std::fs::write(root.join("boot/initrd.img-6.12-arm64"), "i").expect("write");
        let b = board("rpi4");
        for d in &b.rpi.as_ref().expect("rpi").dtbs {
            std::fs::write(dtb.join(d), "dtb").expect("write");
        }
        let fw = tmp.path().join("fw");
        std::fs::create_dir_all(&fw).expect("mkdir");
        for f in &b.rpi.as_ref().expect("rpi").firmware {
            std::fs::write(fw.join(f), "fw").expect("write");
        }
        let firmware = Firmware {
            path: fw,
            package: "raspi-firmware".into(),
            version: "1".into(),
        };
        let parts = tmp.path().join("parts");
        let info = crate::verity::VerityInfo {
            root_hash: "5a".repeat(32),
            hash_offset: 4096,
            data_blocks: 1,
            salt: "00".into(),
            uuid: "u".into(),
            total_size: 8192,
        };
        let slot_initrd = tmp.path().join("initrd.img");
        crate::verity::boot_initrd(
            &root.join("boot/initrd.img-6.12-arm64"),
            &info,
            "1.0",
            0,
            &slot_initrd,
        )
        .expect("slot initrd");
        let staged = stage(&b, &root, &parts, &[Slot::A], &firmware, &slot_initrd).expect("stage");
        let names: Vec<&str> = staged.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bootconfig", "boot-a", "boot-b"]);
        let a = &staged[1].1;
        for f in [
            "start4.elf",
            "fixup4.dat",
            "bcm2711-rpi-4-b.dtb",
            "vmlinuz",
            "initrd.img",
            "config.txt",
            "cmdline-a.txt",
            "cmdline-b.txt",
        ] {
            assert!(a.join(f).is_file(), "{f}");
        }
        assert_eq!(
            crate::verity::root_hash_in_initrd(&a.join("initrd.img")),
            Some("5a".repeat(32)),
            "the boot partition's initrd carries the root hash"
        );
        assert!(staged[2].1.join(EMPTY_SLOT_FILE).is_file());
        assert!(!staged[2].1.join("initrd.img").exists());
        assert!(!staged[2].1.join("config.txt").exists());
        assert!(staged[0].1.join("autoboot.txt").is_file());
    }

    #[test]
    fn os_list_entry_has_what_imager_needs() {
        let b = board("rpi5");
        let v = os_list(&OsListInput {
            board: &b,
            version: "1.0",
            url: "hearth-1.0-rpi5.img.xz",
            release_date: &date_of(1_735_689_600),
            download_size: 10,
            download_sha256: "aa",
            extract_size: 20,
            extract_sha256: "bb",
        });
        let e = &v["os_list"][0];
        assert_eq!(e["release_date"], "2025-01-01");
        assert_eq!(e["devices"][0], "pi5-64bit");
        assert_eq!(e["extract_size"], 20);
        assert_eq!(e["url"], "hearth-1.0-rpi5.img.xz");
    }

    fn os_list_schema() -> (boon::Schemas, boon::SchemaIndex) {
        let schema: serde_json::Value = serde_json::from_str(OS_LIST_SCHEMA).expect("schema JSON");
        let url = "https://hearth.invalid/schemas/rpi-imager-os-list.schema.json";
        let (mut schemas, mut compiler) = (boon::Schemas::new(), boon::Compiler::new());
        compiler.add_resource(url, schema).expect("add schema");
        let index = compiler
            .compile(url, &mut schemas)
            .expect("schema compiles");
        (schemas, index)
    }

    /// The builder's `os_list` for a small real image (random bytes, then zeros, xz as the
    /// pipeline compresses it): valid for the schema kept in the repo, with the Pi's device
    /// tag, and sizes and checksums that are those of the files (the download as written, the
    /// disk as `xz -d` gives it back).
    #[test]
    fn the_os_list_of_a_built_image_is_valid_and_matches_its_files() {
        use crate::artifacts::{FileEntry, compress_xz, sha256_file};
        use sha2::Digest;
        let (schemas, index) = os_list_schema();
        let tmp = tempfile::tempdir().expect("tmp");
        let raw = tmp.path().join("hearth-1.0-rpi4.img");
        let mut bytes: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        bytes.resize(3 << 20, 0);
        std::fs::write(&raw, &bytes).expect("write raw");
        let xz = tmp.path().join("hearth-1.0-rpi4.img.xz");
        compress_xz(&raw, &xz).expect("xz");
        let raw_sha = sha256_file(&raw).expect("sha");
        for (name, tag) in [("rpi4", "pi4-64bit"), ("rpi5", "pi5-64bit")] {
            let image = FileEntry::of(&xz).expect("entry");
            let list = os_list_of(
                &board(name),
                "1.0",
                1_735_689_600,
                &image,
                bytes.len() as u64,
                &raw_sha,
            );
            if let Err(e) = schemas.validate(&list, index) {
                panic!("{name}: {e:#}\n{list:#}");
            }
            let e = &list["os_list"][0];
            assert_eq!(e["devices"], json!([tag]), "{name}");
            assert_eq!(e["url"], "hearth-1.0-rpi4.img.xz");
            assert_eq!(e["icon"], IMAGER_ICON);
            assert_eq!(
                e["image_download_size"],
                std::fs::metadata(&xz).expect("xz").len()
            );
            assert_eq!(e["image_download_sha256"], sha256_file(&xz).expect("sha"));
            assert_ne!(e["image_download_sha256"], e["extract_sha256"]);
            let out = std::process::Command::new("xz")
                .args(["-dc", "--"])
                .arg(&xz)
                .output()
                .expect("xz -d");
            assert!(out.status.success());
            assert_eq!(e["extract_size"], out.stdout.len() as u64);
            let digest = sha2::Sha256::digest(&out.stdout);
            assert_eq!(e["extract_sha256"], hearth_ota::hexutil::encode(&digest));
        }
    }

    /// The schema is not a rubber stamp: what Imager would refuse or drop fails it.
    #[test]
    fn the_os_list_schema_refuses_what_imager_cannot_use() {
        let (schemas, index) = os_list_schema();
        let good = os_list(&OsListInput {
            board: &board("rpi5"),
            version: "1.0",
            url: "hearth-1.0-rpi5.img.xz",
            release_date: "2025-01-01",
            download_size: 10,
            download_sha256: &"a".repeat(64),
            extract_size: 20,
            extract_sha256: &"b".repeat(64),
        });
        assert!(schemas.validate(&good, index).is_ok(), "{good:#}");
        let broken: [(&str, serde_json::Value); 6] = [
            ("icon", serde_json::Value::Null),
            ("devices", json!([])),
            ("devices", json!(["raspberry-pi-5"])),
            ("init_format", json!("firstboot")),
            ("extract_sha256", json!("BB")),
            ("release_date", json!("2025-13-01")),
        ];
        for (key, value) in broken {
            let mut bad = good.clone();
            let entry = bad["os_list"][0].as_object_mut().expect("entry");
            if value.is_null() {
                entry.remove(key);
            } else {
                entry.insert(key.into(), value.clone());
            }
            assert!(schemas.validate(&bad, index).is_err(), "{key}: {value}");
        }
        // A non-Pi board has no Imager device tag, so its list would be refused.
        let mut x86 = good.clone();
        x86["os_list"][0]["devices"] = json!(imager_devices("x86_64-efi"));
        assert!(schemas.validate(&x86, index).is_err());
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(951_782_400), "2000-02-29");
        assert_eq!(date_of(1_735_689_599), "2024-12-31");
    }
}
