//! The initramfs' dm-verity slot refusal
//! (`overlays/initrd-layer/scripts/local-premount/hearth-verity`), run with `sh`: its
//! `autoboot_all`, `on_trial`, `write_autoboot`, `refuse_tryboot` and `refuse_systemd_boot`
//! functions, cut out of the script, over a temporary folder standing in for the mounted
//! boot-control partition (`bootconfig` on a Raspberry Pi, the ESP on EFI boards), with the
//! partition lookups stubbed (boot-a is partition 2, boot-b 3, as in the Pi board files). What
//! the Pi half writes is read back with the updater's own tryboot boot control
//! (`hearth_ota::boot::rpi`), so the two cannot drift apart. The EFI half was reshaped around
//! the boot method; its boots run only in `ci/e2e-verity`, so it is pinned here too.
use std::path::Path;
use std::process::Command;

use hearth_ota::boot::rpi::{PiPartitions, PiTryboot, autoboot_txt};
use hearth_ota::boot::{BootControl, DirFs, Slot};

const SCRIPT: &str =
    include_str!("../../overlays/initrd-layer/scripts/local-premount/hearth-verity");

/// The text of shell function `name` in the script, its console messages sent to stderr.
fn function(name: &str) -> String {
    let start = SCRIPT
        .find(&format!("\n{name}() {{\n"))
        .unwrap_or_else(|| panic!("{name} is in the script"));
    let body = &SCRIPT[start..];
    let end = body.find("\n}\n").expect("function end") + 3;
    body[..end].replace(">/dev/console", ">&2")
}

struct Run {
    ok: bool,
    other: String,
    stderr: String,
}

/// Runs `call` (e.g. `refuse_tryboot`) for booted slot `slot` with `ctl` as bootconfig;
/// `other_filled`: the other slot's boot partition holds a release.
fn run(ctl: &Path, slot: &str, other_filled: bool, call: &str) -> Run {
    run_as("rpi-tryboot", ctl, slot, other_filled, call)
}

/// [`run`] for boot method `boot` (`rpi-tryboot` or `systemd-boot`, `ctl` then the ESP).
fn run_as(boot: &str, ctl: &Path, slot: &str, other_filled: bool, call: &str) -> Run {
    let oslot = if slot == "a" { "b" } else { "a" };
    let script = format!(
        "set -u\nctl='{ctl}' slot={slot} oslot={oslot} boot={boot} other='' mine=''\n\
         part_number() {{ case \"$1\" in boot-a) echo 2 ;; boot-b) echo 3 ;; esac; }}\n\
         slot_filled() {{ [ {filled} = 1 ]; }}\n\
         {autoboot}{on_trial}{write}{refuse}\n\
         if {call}; then r=0; else r=1; fi\n\
         echo \"other=$other\"\nexit $r\n",
        ctl = ctl.display(),
        filled = u8::from(other_filled),
        autoboot = function("autoboot_all"),
        on_trial = function("on_trial"),
        write = function("write_autoboot"),
        refuse = function("refuse_tryboot")
            + &function("refuse_systemd_boot")
            + &function("refuse_uboot"),
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Run {
        ok: out.status.success(),
        other: stdout
            .lines()
            .find_map(|l| l.strip_prefix("other="))
            .unwrap_or_default()
            .to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn bootconfig(all: u32, tryboot: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("autoboot.txt"), autoboot_txt(all, tryboot)).expect("write");
    dir
}

fn updater_view(ctl: &Path) -> hearth_ota::boot::BootState {
    PiTryboot::new(DirFs::new(ctl), PiPartitions { a: 2, b: 3 })
        .state()
        .expect("the updater reads autoboot.txt")
}

#[test]
fn a_refused_committed_slot_hands_the_boot_to_the_other_slot_as_the_updater_would() {
    let ctl = bootconfig(2, 2);
    let r = run(ctl.path(), "a", true, "refuse_tryboot");
    assert_eq!(r.other, "slot b", "{}", r.stderr);
    assert!(
        r.stderr.contains("slot a marked bad; booting slot b"),
        "{}",
        r.stderr
    );
    let state = updater_view(ctl.path());
    assert_eq!(state.primary, Some(Slot::B), "{state:?}");
    assert_eq!(
        state.trial, None,
        "a plain reboot and any tryboot both boot b"
    );
    assert!(!ctl.path().join("autoboot.tmp").exists());
}

/// A refused trial goes back to the committed slot and clears the trial: with `[tryboot]`
/// still naming b, the updater on slot a would read the trial as set up and wait for a reboot
/// into it (reconcile's `AwaitingReboot`) instead of reporting the update rolled back.
#[test]
fn a_refused_trial_returns_to_the_committed_slot_and_is_no_trial_any_more() {
    // Slot b on trial: [all] names a (partition 2), [tryboot] b; b was booted by tryboot.
    let ctl = bootconfig(2, 3);
    assert!(run(ctl.path(), "b", true, "on_trial").ok);
    assert!(!run(ctl.path(), "a", true, "on_trial").ok);
    assert_eq!(updater_view(ctl.path()).trial, Some((Slot::B, 1)));
    // Even with the committed slot's record from an earlier refusal: a is where it goes.
    let r = run(ctl.path(), "b", false, "refuse_tryboot");
    assert_eq!(r.other, "slot a", "{}", r.stderr);
    assert!(r.stderr.contains("slot b was on trial"), "{}", r.stderr);
    let state = updater_view(ctl.path());
    assert_eq!(state.primary, Some(Slot::A), "{state:?}");
    assert_eq!(state.trial, None, "{state:?}");
    assert!(!state.is_bootable(Slot::B), "{state:?}");
}

#[test]
fn a_committed_slot_is_not_handed_to_an_empty_or_refused_other_slot() {
    // The other slot is empty (a fresh image's slot b): halt, autoboot.txt untouched.
    let ctl = bootconfig(2, 2);
    let r = run(ctl.path(), "a", false, "refuse_tryboot");
    assert_eq!(r.other, "", "{}", r.stderr);
    assert!(r.stderr.contains("slot b is empty"), "{}", r.stderr);
    assert_eq!(updater_view(ctl.path()).primary, Some(Slot::A));

    // The other slot was refused too and no agent ran since: no ping-pong between bad slots.
    std::fs::create_dir_all(ctl.path().join("hearth")).expect("mkdir");
    std::fs::write(ctl.path().join("hearth/refused-b"), "slot=b\n").expect("write");
    let r = run(ctl.path(), "a", true, "refuse_tryboot");
    assert_eq!(r.other, "", "{}", r.stderr);
    assert!(r.stderr.contains("slot b was refused too"), "{}", r.stderr);
    assert_eq!(updater_view(ctl.path()).primary, Some(Slot::A));
}

#[test]
fn an_unreadable_autoboot_is_a_trial_for_the_full_read_and_switches_nothing() {
    let ctl = tempfile::tempdir().expect("tempdir");
    assert!(run(ctl.path(), "a", true, "on_trial").ok, "full read");
    let r = run(ctl.path(), "a", true, "refuse_tryboot");
    assert_eq!(r.other, "", "{}", r.stderr);
    assert!(!ctl.path().join("autoboot.txt").exists());
}

/// The EFI half after the script was reshaped around the boot method: a committed slot's
/// loader entry is renamed `+0-0` and loader.conf's default moved, a slot on trial is left to
/// systemd-boot's counter, the only slot stays (the machine halts).
#[test]
fn on_efi_a_refused_committed_entry_is_marked_bad_and_a_trial_left_to_the_counter() {
    let esp = tempfile::tempdir().expect("tempdir");
    let entries = esp.path().join("loader/entries");
    std::fs::create_dir_all(&entries).expect("mkdir");
    std::fs::write(
        esp.path().join("loader/loader.conf"),
        "default hearth-a.conf\ntimeout 0\n",
    )
    .expect("loader.conf");
    std::fs::write(entries.join("hearth-a.conf"), "title a\n").expect("a");
    std::fs::write(entries.join("hearth-b.conf"), "title b\n").expect("b");
    assert!(!run_as("systemd-boot", esp.path(), "a", true, "on_trial").ok);
    let r = run_as("systemd-boot", esp.path(), "a", true, "refuse_systemd_boot");
    assert_eq!(r.other, "hearth-b.conf", "{}", r.stderr);
    assert!(entries.join("hearth-a+0-0.conf").is_file());
    assert!(!entries.join("hearth-a.conf").exists());
    let conf = std::fs::read_to_string(esp.path().join("loader/loader.conf")).expect("read");
    assert!(conf.starts_with("default hearth-*\n"), "{conf}");

    // b now on trial (two boots left, one done): on_trial says so, the entry is not renamed.
    std::fs::rename(
        entries.join("hearth-b.conf"),
        entries.join("hearth-b+2-1.conf"),
    )
    .expect("rename");
    assert!(run_as("systemd-boot", esp.path(), "b", true, "on_trial").ok);
    let r = run_as("systemd-boot", esp.path(), "b", true, "refuse_systemd_boot");
    assert_eq!(
        r.other, "",
        "a is +0-0: no other bootable entry: {}",
        r.stderr
    );
    assert!(entries.join("hearth-b+2-1.conf").is_file());
}

/// U-Boot boards: the record alone makes the boot script skip the slot (image/src/uboot.rs),
/// so the refusal reboots into the other slot when it holds a kernel and was not refused too;
/// otherwise the machine halts. A trial is never guessed from the boot partition (the boot
/// script puts `hearth.verity_check=full` on a trial's command line).
#[test]
fn u_boot_reboots_into_the_other_slot_only_when_it_can_boot() {
    let esp = tempfile::tempdir().expect("tempdir");
    let empty = run_as("u-boot", esp.path(), "a", true, "refuse_uboot");
    assert_eq!(empty.other, "", "slot b has no kernel: {}", empty.stderr);
    std::fs::create_dir_all(esp.path().join("hearth/b")).expect("mkdir");
    std::fs::write(esp.path().join("hearth/b/vmlinuz"), "Image").expect("kernel");
    let r = run_as("u-boot", esp.path(), "a", true, "refuse_uboot");
    assert_eq!(r.other, "slot b", "{}", r.stderr);
    assert!(r.stderr.contains("boot script skips it"), "{}", r.stderr);
    std::fs::write(esp.path().join("hearth/refused-b"), "slot=b\n").expect("record");
    let both = run_as("u-boot", esp.path(), "a", true, "refuse_uboot");
    assert_eq!(both.other, "", "slot b was refused too: {}", both.stderr);
    let trial = run_as("u-boot", esp.path(), "a", true, "on_trial");
    assert!(!trial.ok, "on_trial is false on U-Boot");
}
