//! The U-Boot backend against U-Boot's own host tools (`fw_printenv`/`fw_setenv` from
//! libubootenv-tool, installed by ci/image-deps): the environment Hearth writes is what the
//! tools read, and what they write (as U-Boot's `saveenv` does: the older copy, a higher
//! flags counter) is what Hearth reads. Both sides use the same `fw_env.config`, two
//! redundant copies in one file.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use hearth_ota::boot::uboot::{Env, UBootEnv, encode};
use hearth_ota::boot::{BootControl, Slot};
use hearth_ota::release::{BootBackend, fw_env_config};

const SIZE: usize = 0x4000;

/// A fresh environment as an image would ship it: copy 0 holds `BOOT_ORDER=A B`, copy 1 was
/// never written (zeros, no valid CRC).
fn device(dir: &Path) -> std::path::PathBuf {
    // An absolute device path: libubootenv takes a relative one from its working directory,
    // Hearth from the file's directory.
    let config = dir.join("fw_env.config");
    let dev = dir.join("uboot.env");
    let dev = dev.display();
    std::fs::write(
        &config,
        format!("# device offset size\n{dev} 0x0 {SIZE:#x}\n{dev} {SIZE:#x} {SIZE:#x}\n"),
    )
    .unwrap();
    let env = Env::from([("BOOT_ORDER".to_string(), "A B".to_string())]);
    let mut image = encode(&env, SIZE, 1).unwrap();
    image.resize(2 * SIZE, 0);
    std::fs::write(dir.join("uboot.env"), image).unwrap();
    config
}

fn tool(name: &str, config: &Path, args: &[&str]) -> String {
    let out = Command::new(name)
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} (libubootenv-tool; ci/image-deps installs it): {e}"));
    assert!(out.status.success(), "{name} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn printenv(config: &Path) -> BTreeMap<String, String> {
    tool("fw_printenv", config, &[])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn uboot(config: &Path) -> UBootEnv<hearth_ota::boot::uboot::FileEnvStore> {
    UBootEnv::new(fw_env_config(config).unwrap())
}

#[test]
fn fw_printenv_reads_what_hearth_writes_and_hearth_reads_what_fw_setenv_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = device(tmp.path());
    assert_eq!(printenv(&config)["BOOT_ORDER"], "A B");

    // Hearth marks b unbootable, then installs into it and sets it up for a trial.
    let mut hearth = BootBackend::UBoot
        .open(tmp.path(), Some(tmp.path()))
        .unwrap();
    hearth.mark_unbootable(Slot::B).unwrap();
    assert_eq!(
        printenv(&config),
        BTreeMap::from([
            ("BOOT_ORDER".into(), "A".into()),
            ("BOOT_B_LEFT".into(), "0".into())
        ])
    );
    hearth.set_trial(Slot::B, "1.2.0").unwrap();
    assert_eq!(printenv(&config)["BOOT_ORDER"], "B A");
    assert_eq!(printenv(&config)["BOOT_B_LEFT"], "3");

    // U-Boot's boot script counts the try down and saves (fw_setenv writes the way saveenv
    // does); Hearth sees the trial with two tries left, then the tool's next write too.
    tool("fw_setenv", &config, &["BOOT_B_LEFT", "2"]);
    assert_eq!(hearth.state().unwrap().trial, Some((Slot::B, 2)));
    tool("fw_setenv", &config, &["BOOT_B_LEFT", "1"]);
    assert_eq!(hearth.state().unwrap().trial, Some((Slot::B, 1)));

    // The health gate commits b: the tool sees b committed (its counter gone) and first.
    hearth.commit(Slot::B).unwrap();
    let env = printenv(&config);
    assert_eq!(env["BOOT_ORDER"], "B A");
    assert!(!env.contains_key("BOOT_B_LEFT"), "{env:?}");
    let state = hearth.state().unwrap();
    assert_eq!((state.primary, state.trial), (Some(Slot::B), None));
}

/// Each write goes to the older copy with the next flags value, so a torn write leaves the
/// other copy whole; the tool and Hearth pick the same copy after a write from either side
/// and after one copy is corrupted.
#[test]
fn both_sides_pick_the_same_copy_and_survive_a_torn_one() {
    let tmp = tempfile::tempdir().unwrap();
    let config = device(tmp.path());
    let mut hearth = uboot(&config);
    hearth.set_trial(Slot::B, "2").unwrap(); // copy 1, flags 2
    tool("fw_setenv", &config, &["BOOT_B_LEFT", "2"]); // copy 0, flags 3
    hearth.set_trial(Slot::A, "3").unwrap(); // copy 1, flags 4
    let bytes = std::fs::read(tmp.path().join("uboot.env")).unwrap();
    assert_eq!(
        (bytes[4], bytes[SIZE + 4]),
        (3, 4),
        "flags of the two copies"
    );
    assert_eq!(printenv(&config)["BOOT_ORDER"], "A B");
    assert_eq!(printenv(&config)["BOOT_A_LEFT"], "3");

    // The newer copy is torn (a power cut mid-write): both fall back to the older one.
    let mut torn = bytes.clone();
    torn[SIZE + 100] ^= 0xff;
    std::fs::write(tmp.path().join("uboot.env"), &torn).unwrap();
    let env = printenv(&config);
    assert_eq!(env["BOOT_ORDER"], "B A");
    assert_eq!(env["BOOT_B_LEFT"], "2");
    assert!(!env.contains_key("BOOT_A_LEFT"), "{env:?}");
    assert_eq!(hearth.state().unwrap().trial, Some((Slot::B, 2)));
}
