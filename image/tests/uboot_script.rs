//! Hearth's U-Boot boot script (`image/src/uboot.rs`) run by real U-Boot: Debian's
//! `u-boot-qemu` build for `qemu-system-aarch64 -M virt` (installed by ci/image-deps), on a
//! disk with the qemu-arm64-uboot board's partition table, whose environment partition is
//! written and read back with hearth-ota's U-Boot backend (what the agent runs). The kernels
//! are placeholders: each boot ends where U-Boot would start Linux, after the script picked
//! the slot and saved the boot counter, which is what these tests look at.
//!
//! Checked: a fresh image boots slot a and writes nothing; a trial counts down by one per boot
//! in alternate copies (the updater's next read sees it) and falls back to the committed slot
//! when its tries are spent; a slot whose initramfs refused its root is skipped; a torn newer
//! copy is ignored; the flags counter wraps as fw_setenv's does; no bootable slot stops with a
//! message.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hearth_image::board::{BoardDir, Slot};
use hearth_image::cmd::Runner;
use hearth_image::partition::Plan;
use hearth_image::{disk, uboot};
use hearth_ota::boot::uboot::{Env, EnvStore, FileEnvStore, UBootEnv, encode};
use hearth_ota::boot::{BootControl, Slot as OtaSlot};

const UBOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

struct Disk {
    _dir: tempfile::TempDir,
    path: PathBuf,
    env_offset: u64,
}

impl Disk {
    /// The board's disk with `files` on its boot partition and `env` (both copies) on its
    /// environment partition.
    fn new(files: &[&str], env: &[u8]) -> Disk {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let board = BoardDir::new(ws.join("board-configs"))
            .load("qemu-arm64-uboot")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(None, false).unwrap();
        let stage = dir.path().join("esp");
        let script = dir.path().join("boot.cmd");
        std::fs::write(&script, uboot::boot_script(&board).unwrap()).unwrap();
        std::fs::create_dir_all(&stage).unwrap();
        let status = Command::new("mkimage")
            .args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none"])
            .args(["-n", "test", "-d"])
            .arg(&script)
            .arg(stage.join(uboot::SCRIPT))
            .stdout(Stdio::null())
            .status()
            .expect("mkimage (u-boot-tools; ci/image-deps installs it)");
        assert!(status.success());
        for f in files {
            let p = stage.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"not a kernel").unwrap();
        }
        let plan = Plan::for_board(&board, "test");
        let esp = plan.get("esp").unwrap();
        let fat = dir.path().join("esp.vfat");
        disk::make_fat(&fat, esp.size, "ESP", "1234ABCD", &stage, 0, &runner).unwrap();
        let env_file = dir.path().join("env.raw");
        std::fs::write(&env_file, env).unwrap();
        let path = dir.path().join("disk.img");
        disk::assemble(
            &plan,
            &[("esp", fat.as_path()), ("uboot-env", env_file.as_path())],
            &path,
            &runner,
        )
        .unwrap();
        let env_offset = plan.get("uboot-env").unwrap().offset;
        Disk {
            _dir: dir,
            path,
            env_offset,
        }
    }

    /// The environment as the agent opens it.
    fn env(&self) -> UBootEnv<FileEnvStore> {
        UBootEnv::new(FileEnvStore {
            copies: [
                (self.path.clone(), self.env_offset),
                (self.path.clone(), self.env_offset + uboot::ENV_SIZE as u64),
            ],
            size: uboot::ENV_SIZE,
        })
    }

    fn copy(&self, i: usize) -> Vec<u8> {
        self.env().store().read_copy(i).unwrap()
    }

    /// Powers the board on; returns U-Boot's console output up to the point where Linux would
    /// start (or the script stops).
    fn boot(&self) -> String {
        let mut child = Command::new("qemu-system-aarch64")
            .args([
                "-M",
                "virt",
                "-cpu",
                "cortex-a72",
                "-m",
                "512",
                "-accel",
                "tcg",
            ])
            .args(["-bios", UBOOT_BIN, "-display", "none", "-monitor", "none"])
            .args(["-serial", "stdio", "-no-reboot", "-nodefaults"])
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", self.path.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-aarch64 (ci/image-deps installs it)");
        let mut out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        let done = |t: &str| {
            t.contains("did not boot") || t.contains("stopping here") || t.contains("\n=> ")
        };
        while !done(&text) && Instant::now() < deadline {
            if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
        // Let a write the script started reach the disk image before the power goes.
        std::thread::sleep(Duration::from_millis(500));
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            done(&text),
            "U-Boot did not get through the script:\n{text}"
        );
        text
    }
}

fn env_of(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn copies(first: Option<(u8, &Env)>, second: Option<(u8, &Env)>) -> Vec<u8> {
    let one = |c: Option<(u8, &Env)>| match c {
        Some((flags, env)) => encode(env, uboot::ENV_SIZE, flags).unwrap(),
        None => vec![0; uboot::ENV_SIZE],
    };
    [one(first), one(second)].concat()
}

/// Whether the script booted `slot` (on trial or not) with that slot's own root, and read the
/// whole root first on a trial.
fn booted(log: &str, slot: &str, trial: bool) -> bool {
    let said = if trial {
        format!("hearth: booting slot {slot} on trial")
    } else {
        format!("hearth: booting slot {slot}\r")
    };
    let Some(line) = log
        .lines()
        .find(|l| l.starts_with("hearth: kernel command line:"))
    else {
        return false;
    };
    log.contains(&said)
        && line.contains(&format!("root=PARTLABEL=root-{slot} "))
        && line.contains(&format!("hearth.slot={slot} "))
        && line.contains("hearth.verity_check=full") == trial
}

const KERNELS: [&str; 4] = [
    "hearth/a/vmlinuz",
    "hearth/a/initrd.img",
    "hearth/b/vmlinuz",
    "hearth/b/initrd.img",
];

#[test]
fn a_fresh_image_boots_slot_a_and_writes_nothing() {
    let disk = Disk::new(&KERNELS[..2], &uboot::initial_env(&[Slot::A]));
    let before = (disk.copy(0), disk.copy(1));
    let log = disk.boot();
    assert!(booted(&log, "a", false), "{log}");
    assert_eq!(
        (disk.copy(0), disk.copy(1)),
        before,
        "a committed boot writes nothing"
    );
    // What the updater sees on this device.
    let state = disk.env().state().unwrap();
    assert_eq!(state.primary, Some(OtaSlot::A), "{state:?}");
}

#[test]
fn a_trial_counts_down_in_alternate_copies_then_falls_back() {
    let disk = Disk::new(&KERNELS, &uboot::initial_env(&Slot::ALL));
    // What the agent writes after installing slot b.
    disk.env().set_trial(OtaSlot::B, "2.0").unwrap();
    let mut flags = Vec::new();
    for left in [2, 1, 0] {
        let log = disk.boot();
        assert!(booted(&log, "b", true), "{log}");
        let env = disk.env().read_env().unwrap();
        assert_eq!(
            env.get("BOOT_B_LEFT").map(String::as_str),
            Some(left.to_string().as_str()),
            "{env:?}\n{log}"
        );
        assert_eq!(env.get("BOOT_ORDER").map(String::as_str), Some("B A"));
        // fw_setenv's layout: the newer copy has the higher flags counter.
        let (c0, c1) = (disk.copy(0)[4], disk.copy(1)[4]);
        flags.push(c0.max(c1));
    }
    assert!(flags.windows(2).all(|w| w[1] == w[0] + 1), "{flags:?}");
    // U-Boot's own host tool reads what the script wrote.
    let config = disk.path.with_file_name("fw_env.config");
    let dev = disk.path.display();
    let (o, s) = (disk.env_offset, uboot::ENV_SIZE);
    std::fs::write(
        &config,
        format!("{dev} {o:#x} {s:#x}\n{dev} {:#x} {s:#x}\n", o + s as u64),
    )
    .unwrap();
    let out = Command::new("fw_printenv")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("fw_printenv (libubootenv-tool; ci/image-deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("BOOT_B_LEFT=0\n") && text.contains("BOOT_ORDER=B A\n"),
        "{text}"
    );
    let log = disk.boot();
    assert!(booted(&log, "a", false), "{log}");
    // A trial the health gate never committed: the updater reads it as failed.
    let state = disk.env().state().unwrap();
    assert_eq!(state.primary, Some(OtaSlot::A), "{state:?}");
}

#[test]
fn a_committed_slot_boots_without_counting() {
    let disk = Disk::new(&KERNELS, &uboot::initial_env(&Slot::ALL));
    let mut env = disk.env();
    env.set_trial(OtaSlot::B, "2.0").unwrap();
    env.commit(OtaSlot::B).unwrap();
    let before = (disk.copy(0), disk.copy(1));
    let log = disk.boot();
    assert!(booted(&log, "b", false), "{log}");
    assert_eq!((disk.copy(0), disk.copy(1)), before);
}

#[test]
fn a_refused_slot_is_skipped() {
    let mut files = KERNELS.to_vec();
    files.push("hearth/refused-b");
    let committed_b = env_of(&[("BOOT_ORDER", "B A")]);
    let disk = Disk::new(&files, &copies(Some((7, &committed_b)), None));
    let log = disk.boot();
    assert!(
        log.contains("skipping slot b: its initramfs refused its root"),
        "{log}"
    );
    assert!(booted(&log, "a", false), "{log}");
}

#[test]
fn a_torn_newer_copy_is_ignored_and_flags_wrap() {
    let old = env_of(&[("BOOT_ORDER", "A B")]);
    let new = env_of(&[("BOOT_ORDER", "B A")]);
    // Copy 1 is newer (flags 8) but torn: its CRC no longer matches.
    let mut bytes = copies(Some((7, &old)), Some((8, &new)));
    bytes[uboot::ENV_SIZE + 10] ^= 0xff;
    let disk = Disk::new(&KERNELS, &bytes);
    let log = disk.boot();
    assert!(
        log.contains("(copy 0)") && booted(&log, "a", false),
        "{log}"
    );
    // 0 after 255 is newer, as fw_setenv counts.
    let disk = Disk::new(&KERNELS, &copies(Some((255, &old)), Some((0, &new))));
    let log = disk.boot();
    assert!(
        log.contains("(copy 1)") && booted(&log, "b", false),
        "{log}"
    );
}

#[test]
fn no_bootable_slot_stops_with_a_message() {
    let spent = env_of(&[
        ("BOOT_ORDER", "A"),
        ("BOOT_A_LEFT", "0"),
        ("BOOT_B_LEFT", "0"),
    ]);
    let disk = Disk::new(&KERNELS, &copies(Some((1, &spent)), None));
    let log = disk.boot();
    assert!(log.contains("hearth: no bootable slot"), "{log}");
    assert!(!log.contains("hearth: booting slot"), "{log}");
}
