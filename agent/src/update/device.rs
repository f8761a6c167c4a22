//! This device as the update engine sees it: its release (`release.json`, the type shared with
//! the image builder), the root key, the booted slot, the boot-control backend and where each
//! payload of a slot is written.

use super::UpdateError;
use super::error::boot_err;
use crate::config::UpdateConfig;
use hearth_ota::boot::{BootControl, BootState, RebootRequest, Slot};
use hearth_ota::format::VerifyError;
pub use hearth_ota::release::{BootBackend, Release};
use std::path::{Path, PathBuf};

/// Everything about this device an update decision needs.
pub struct DeviceInfo {
    pub release: Release,
    pub root: ed25519_dalek::VerifyingKey,
    pub booted: Option<Slot>,
    /// `update_boot` if set, else release.json's `boot`.
    pub backend: BootBackend,
}

/// Reads the device; `NotConfigured` says what is missing or wrong (no repository, no or a
/// malformed release.json, an unknown boot backend, no root key).
pub fn read(config: &UpdateConfig) -> Result<DeviceInfo, UpdateError> {
    if config.repo_url.is_none() {
        return Err(UpdateError::NotConfigured(
            "no update repository (update.repo_url) is set".into(),
        ));
    }
    let release = read_release(&config.release_file)?;
    let backend = backend(config, &release)?;
    let root = hearth_ota::keys::load_verifying(&config.root_key)
        .map_err(|e| UpdateError::NotConfigured(format!("{}: {e}", config.root_key.display())))?;
    Ok(DeviceInfo {
        release,
        root,
        booted: read_booted(config),
        backend,
    })
}

pub fn read_release(path: &Path) -> Result<Release, UpdateError> {
    Release::read(path).map_err(|e| UpdateError::NotConfigured(e.to_string()))
}

/// The backend to drive: `update_boot` overrides release.json.
pub fn backend(config: &UpdateConfig, release: &Release) -> Result<BootBackend, UpdateError> {
    Ok(config.boot.unwrap_or(release.boot))
}

/// The booted slot: `hearth.slot=a|b`, else `root=PARTLABEL=root-X`.
pub fn booted_slot(cmdline: &str) -> Option<Slot> {
    cmdline
        .split_whitespace()
        .find_map(|a| a.strip_prefix("hearth.slot=").and_then(Slot::parse))
        .or_else(|| Slot::from_cmdline(cmdline))
}

pub fn read_booted(config: &UpdateConfig) -> Option<Slot> {
    std::fs::read_to_string(&config.cmdline_file)
        .ok()
        .and_then(|c| booted_slot(&c))
}

/// The boot-control backend for this device.
pub fn boot_control(
    config: &UpdateConfig,
    backend: BootBackend,
) -> Result<Box<dyn BootControl + Send>, UpdateError> {
    backend
        .open(&config.esp, config.boot_dir.as_deref())
        .map_err(|e| UpdateError::NotConfigured(format!("boot backend {backend}: {e}")))
}

/// The boot state now.
pub fn boot_state(config: &UpdateConfig, backend: BootBackend) -> Result<BootState, UpdateError> {
    boot_control(config, backend)?.state().map_err(boot_err)
}

/// How to reboot into the installed trial: the backend decides.
pub fn reboot_request(
    config: &UpdateConfig,
    backend: BootBackend,
) -> Result<RebootRequest, UpdateError> {
    Ok(boot_control(config, backend)?.reboot_request())
}

/// Where a payload of `slot` is written.
pub fn target_path(
    config: &UpdateConfig,
    payload: &str,
    slot: Slot,
) -> Result<PathBuf, UpdateError> {
    let l = slot.letter();
    match payload {
        "root" | "boot" => Ok(config.slot_dir.join(format!("{payload}-{l}"))),
        "kernel" => Ok(config.esp.join("hearth").join(l).join("vmlinuz")),
        "initrd" => Ok(config.esp.join("hearth").join(l).join("initrd.img")),
        // U-Boot boards that boot the kernel's own device tree (image/src/uboot.rs).
        "dtb" => Ok(config.esp.join("hearth").join(l).join("board.dtb")),
        // A unified kernel image (image/src/uki.rs): kernel, initrd and command line in one,
        // and the slot's type 2 loader entry, whose name carries the boot counter.
        "uki" => Ok(uki_entry(&config.esp, slot)),
        other => Err(UpdateError::BundleInvalid(VerifyError::BodyMalformed(
            format!("payload {other:?} has no target on this device"),
        ))),
    }
}

/// The slot's UKI on the ESP: `EFI/Linux/hearth-X.efi` or `hearth-X+LEFT-DONE.efi`, whatever
/// its boot counter is now; `hearth-X+0-0.efi` (unbootable) when there is none.
pub fn uki_entry(esp: &Path, slot: Slot) -> PathBuf {
    let dir = esp.join(hearth_ota::boot::systemd_boot::UKI_ENTRIES);
    let (plain, counted) = (
        format!("hearth-{}.efi", slot.letter()),
        format!("hearth-{}+", slot.letter()),
    );
    let found = std::fs::read_dir(&dir).ok().and_then(|d| {
        d.filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| *n == plain || (n.starts_with(&counted) && n.ends_with(".efi")))
    });
    dir.join(found.unwrap_or_else(|| format!("hearth-{}+0-0.efi", slot.letter())))
}

/// Whether a bundle's boot payloads fit how this device boots `slot`: a UKI (`uki`, which
/// needs the slot's command-line addon the image put on the ESP: it names the slot's root) or
/// a kernel and initrd (its loader entry names them). A device flashed with one cannot switch
/// to the other by an update: the entry would boot the wrong files (docs/image.md).
pub fn check_boot_payloads<'a>(
    config: &UpdateConfig,
    payloads: impl IntoIterator<Item = &'a str>,
    slot: Slot,
) -> Result<(), UpdateError> {
    let l = slot.letter();
    let uki_device = config
        .esp
        .join(hearth_ota::boot::systemd_boot::UKI_ENTRIES)
        .join(format!("hearth-{l}.efi.extra.d/slot.addon.efi"))
        .is_file();
    let names: Vec<&str> = payloads.into_iter().collect();
    let uki_bundle = names.contains(&"uki");
    let kernel_bundle = names.contains(&"kernel") || names.contains(&"initrd");
    let why = match (uki_device, uki_bundle, kernel_bundle) {
        (false, true, _) => {
            "the bundle boots a unified kernel image, but this device boots a kernel and initrd (no UKI addon for the slot on the ESP): flash a UKI image"
        }
        (true, _, true) => {
            "the bundle carries a kernel and initrd, but this device boots unified kernel images"
        }
        _ => return Ok(()),
    };
    Err(UpdateError::BundleInvalid(VerifyError::BodyMalformed(
        format!("slot {l}: {why}"),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_booted_slot_and_the_backend() {
        assert_eq!(booted_slot("quiet hearth.slot=b"), Some(Slot::B));
        assert_eq!(booted_slot("root=PARTLABEL=root-a"), Some(Slot::A));
        assert_eq!(booted_slot("quiet"), None);
        let tmp = tempfile::tempdir().expect("tmp");
        let mut config = crate::config::Config::dev(tmp.path()).update;
        config.repo_url = Some("http://127.0.0.1:9/".into());
        config.release_file = tmp.path().join("release.json");
        // An unknown backend in release.json: a clear "not configured", no panic.
        std::fs::write(
            &config.release_file,
            r#"{"board":"x","arch":"amd64","version":"1.0","version_number":1,"boot":"grub"}"#,
        )
        .expect("write");
        let Err(UpdateError::NotConfigured(why)) = read(&config) else {
            panic!("grub accepted")
        };
        assert!(why.contains("grub") && why.contains("uboot"), "{why}");
        let release = Release::parse(
            br#"{"board":"x","arch":"arm64","version":"1.0","version_number":1,"boot":"uboot"}"#,
        )
        .expect("uboot");
        assert_eq!(
            backend(&config, &release).expect("backend"),
            BootBackend::UBoot
        );
        config.boot = Some(BootBackend::File);
        assert_eq!(
            backend(&config, &release).expect("backend"),
            BootBackend::File
        );
    }

    #[test]
    fn uki_bundles_go_only_to_uki_devices_and_back() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut config = crate::config::Config::dev(tmp.path()).update;
        config.esp = tmp.path().join("esp");
        assert_eq!(
            target_path(&config, "uki", Slot::B).expect("uki"),
            config.esp.join("EFI/Linux/hearth-b+0-0.efi"),
            "no UKI yet: the unbootable name"
        );
        std::fs::create_dir_all(config.esp.join("EFI/Linux")).expect("mkdir");
        std::fs::write(config.esp.join("EFI/Linux/hearth-b+2-1.efi"), b"MZ").expect("uki");
        std::fs::write(config.esp.join("EFI/Linux/hearth-a.efi"), b"MZ").expect("uki");
        assert_eq!(
            target_path(&config, "uki", Slot::B).expect("uki"),
            config.esp.join("EFI/Linux/hearth-b+2-1.efi"),
            "the slot's entry under its counted name"
        );
        assert_eq!(
            target_path(&config, "uki", Slot::A).expect("uki"),
            config.esp.join("EFI/Linux/hearth-a.efi")
        );
        // A kernel+initrd device: kernel bundles install, UKI bundles are refused.
        check_boot_payloads(&config, ["root", "kernel", "initrd"], Slot::B).expect("kernel");
        let Err(UpdateError::BundleInvalid(e)) =
            check_boot_payloads(&config, ["root", "uki"], Slot::B)
        else {
            panic!("a UKI bundle accepted on a kernel+initrd device")
        };
        assert!(e.to_string().contains("flash a UKI image"), "{e}");
        // With the slot's addon on the ESP it is the other way round.
        let addon = config
            .esp
            .join("EFI/Linux/hearth-b.efi.extra.d/slot.addon.efi");
        std::fs::create_dir_all(addon.parent().expect("dir")).expect("mkdir");
        std::fs::write(&addon, b"MZ").expect("addon");
        check_boot_payloads(&config, ["root", "uki"], Slot::B).expect("uki");
        assert!(check_boot_payloads(&config, ["root", "kernel", "initrd"], Slot::B).is_err());
        // Pi bundles (root and boot) are not concerned.
        check_boot_payloads(&config, ["root", "boot"], Slot::B).expect("pi");
    }
}
