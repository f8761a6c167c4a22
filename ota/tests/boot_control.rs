//! Every boot-control backend through the same life: factory state, install into the other
//! slot, trial boot, commit; and a trial that never commits falls back by itself. Each
//! backend's `simulate_boot` plays the firmware or boot loader.
#![allow(clippy::unwrap_used)]
use hearth_ota::boot::file::FileBoot;
use hearth_ota::boot::rpi::{PiPartitions, PiTryboot};
use hearth_ota::boot::systemd_boot::SystemdBoot;
use hearth_ota::boot::uboot::{Env, FileEnvStore, UBootEnv};
use hearth_ota::boot::{BootControl, DirFs, Slot};

/// The ESP as `hearth-image` writes it (slot b empty).
fn esp(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("loader/entries")).unwrap();
    std::fs::write(
        dir.join("loader/loader.conf"),
        "timeout 2\ndefault hearth-a.conf\neditor no\n",
    )
    .unwrap();
    for (name, s) in [("hearth-a.conf", "a"), ("hearth-b+0-0.conf", "b")] {
        let text = format!(
            "title Hearth 1.0 (slot {s})\nversion 1.0\nsort-key hearth-{s}\nlinux /hearth/{s}/vmlinuz\noptions root=PARTLABEL=root-{s} ro\n"
        );
        std::fs::write(dir.join("loader/entries").join(name), text).unwrap();
    }
}

fn uboot(dir: &std::path::Path) -> UBootEnv<FileEnvStore> {
    std::fs::write(dir.join("env"), vec![0u8; 16384]).unwrap(); // blank: no valid copy yet
    let store = FileEnvStore {
        copies: [(dir.join("env"), 0), (dir.join("env"), 8192)],
        size: 8192,
    };
    let mut env = UBootEnv::new(store);
    let mut vars = Env::new();
    vars.insert("BOOT_ORDER".into(), "A".into());
    vars.insert("BOOT_B_LEFT".into(), "0".into());
    env.write_env(&vars).unwrap();
    env
}

/// Install into b, try it `fails` times without committing, then commit if it was still booted.
fn life(
    control: &mut dyn BootControl,
    boot: &mut dyn FnMut(&mut dyn BootControl, bool) -> Option<Slot>,
    fails: u32,
) -> Vec<Slot> {
    let mut seen = Vec::new();
    assert_eq!(control.state().unwrap().primary, Some(Slot::A));
    control.mark_unbootable(Slot::B).unwrap();
    assert!(!control.state().unwrap().is_bootable(Slot::B));
    seen.push(boot(control, false).unwrap());
    let cmd = control.set_trial(Slot::B, "2.0").unwrap();
    let tryboot = cmd.argv().iter().any(|a| a.contains("tryboot"));
    let mut booted = boot(control, tryboot).unwrap();
    seen.push(booted);
    for _ in 0..fails {
        booted = boot(control, false).unwrap();
        seen.push(booted);
    }
    if fails == 0 {
        control.commit(booted).unwrap();
        let s = control.state().unwrap();
        assert_eq!((s.primary, s.trial), (Some(Slot::B), None), "{s:?}");
    }
    for _ in 0..4 {
        seen.push(boot(control, false).unwrap());
    }
    seen
}

const A: Slot = Slot::A;
const B: Slot = Slot::B;

#[test]
fn file_backend_commits_and_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = FileBoot::new(DirFs::new(dir.path()));
    c.initialize(A).unwrap();
    let mut boot = |_: &mut dyn BootControl, _| {
        FileBoot::new(DirFs::new(dir.path()))
            .simulate_boot()
            .unwrap()
    };
    assert_eq!(life(&mut c, &mut boot, 0), vec![A, B, B, B, B, B]);
    let dir2 = tempfile::tempdir().unwrap();
    let mut c = FileBoot::new(DirFs::new(dir2.path()));
    c.initialize(A).unwrap();
    let mut boot = |_: &mut dyn BootControl, _| {
        FileBoot::new(DirFs::new(dir2.path()))
            .simulate_boot()
            .unwrap()
    };
    // Three tries of b, then a by itself, for good.
    assert_eq!(life(&mut c, &mut boot, 3), vec![A, B, B, B, A, A, A, A, A]);
}

#[test]
fn systemd_boot_counts_only_the_trial_and_blesses_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    esp(dir.path());
    let mut c = SystemdBoot::new(DirFs::new(dir.path()));
    let mut boot = |_: &mut dyn BootControl, _| {
        SystemdBoot::new(DirFs::new(dir.path()))
            .simulate_boot()
            .unwrap()
    };
    assert_eq!(life(&mut c, &mut boot, 0), vec![A, B, B, B, B, B]);
    let mut names = std::fs::read_dir(dir.path().join("loader/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>();
    names.sort();
    // The committed entry carries no counter: power cuts never count it down.
    assert_eq!(names, vec!["hearth-a.conf", "hearth-b.conf"]);
    let conf = std::fs::read_to_string(dir.path().join("loader/loader.conf")).unwrap();
    assert!(
        conf.contains("default hearth-b.conf") && conf.contains("timeout 2"),
        "{conf}"
    );
    let entry = std::fs::read_to_string(dir.path().join("loader/entries/hearth-b.conf")).unwrap();
    assert!(
        entry.contains("version 2.0") && entry.contains("options root=PARTLABEL=root-b ro"),
        "{entry}"
    );
}

#[test]
fn systemd_boot_trial_that_never_commits_goes_bad_and_a_boots() {
    let dir = tempfile::tempdir().unwrap();
    esp(dir.path());
    let mut c = SystemdBoot::new(DirFs::new(dir.path()));
    let mut boot = |_: &mut dyn BootControl, _| {
        SystemdBoot::new(DirFs::new(dir.path()))
            .simulate_boot()
            .unwrap()
    };
    assert_eq!(life(&mut c, &mut boot, 3), vec![A, B, B, B, A, A, A, A, A]);
    assert!(dir.path().join("loader/entries/hearth-b+0-3.conf").exists());
    let s = c.state().unwrap();
    assert_eq!((s.primary, s.trial), (Some(A), Some((B, 0))));
}

#[test]
fn pi_tryboot_gives_the_trial_one_boot() {
    let dir = tempfile::tempdir().unwrap();
    let parts = PiPartitions { a: 2, b: 3 };
    std::fs::write(
        dir.path().join("autoboot.txt"),
        hearth_ota::boot::rpi::autoboot_txt(2, 3),
    )
    .unwrap();
    let mut c = PiTryboot::new(DirFs::new(dir.path()), parts);
    let mut boot = |_: &mut dyn BootControl, tryboot| {
        PiTryboot::new(DirFs::new(dir.path()), parts)
            .simulate_boot(tryboot)
            .unwrap()
    };
    assert_eq!(life(&mut c, &mut boot, 0), vec![A, B, B, B, B, B]);
    std::fs::write(
        dir.path().join("autoboot.txt"),
        hearth_ota::boot::rpi::autoboot_txt(2, 2),
    )
    .unwrap();
    let mut c = PiTryboot::new(DirFs::new(dir.path()), parts);
    assert_eq!(life(&mut c, &mut boot, 1), vec![A, B, A, A, A, A, A]);
    let cmd = c.set_trial(B, "3").unwrap();
    assert_eq!(cmd.argv(), vec!["systemctl", "reboot", "0 tryboot"]);
    assert_eq!(cmd, c.reboot_request());
}

#[test]
fn uboot_env_counts_only_the_trial_and_survives_a_torn_copy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = uboot(dir.path());
    let mut boot = |c: &mut dyn BootControl, _| {
        let _ = c;
        UBootEnv::new(FileEnvStore {
            copies: [(dir.path().join("env"), 0), (dir.path().join("env"), 8192)],
            size: 8192,
        })
        .simulate_boot()
        .unwrap()
    };
    assert_eq!(life(&mut c, &mut boot, 0), vec![A, B, B, B, B, B]);
    let env = c.read_env().unwrap();
    assert_eq!(env.get("BOOT_ORDER").map(String::as_str), Some("B A"));
    assert_eq!(env.get("BOOT_B_LEFT"), None);
    // Tear the newest copy: the older one is used.
    let mut bytes = std::fs::read(dir.path().join("env")).unwrap();
    let before = c.state().unwrap();
    c.mark_unbootable(A).unwrap();
    let newest = (0..2)
        .find(|i| {
            let copy = &bytes[i * 8192..(i + 1) * 8192];
            copy != &std::fs::read(dir.path().join("env")).unwrap()[i * 8192..(i + 1) * 8192]
        })
        .unwrap();
    bytes = std::fs::read(dir.path().join("env")).unwrap();
    bytes[newest * 8192 + 100] ^= 0xff;
    std::fs::write(dir.path().join("env"), &bytes).unwrap();
    assert_eq!(c.state().unwrap(), before);
    let dir2 = tempfile::tempdir().unwrap();
    let mut c = uboot(dir2.path());
    let mut boot = |_: &mut dyn BootControl, _| {
        UBootEnv::new(FileEnvStore {
            copies: [
                (dir2.path().join("env"), 0),
                (dir2.path().join("env"), 8192),
            ],
            size: 8192,
        })
        .simulate_boot()
        .unwrap()
    };
    assert_eq!(life(&mut c, &mut boot, 3), vec![A, B, B, B, A, A, A, A, A]);
}
