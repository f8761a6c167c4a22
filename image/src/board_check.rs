//! Consistency rules for a parsed board file. Pure: takes the parsed value, returns the first
//! problem found as a human sentence.
use crate::board::{Board, BootMethod, PartitionSpec, Role, Slot};

/// Smallest sizes that still leave room to grow: slots can never be resized later.
const MIN_ESP_MIB: u64 = 256;
const MIN_BOOT_MIB: u64 = 128;
const MIN_ROOT_MIB: u64 = 1024;
const MIN_DATA_MIB: u64 = 256;

/// The partition layout each boot method requires, as (role, slot) in disk order.
fn required_layout(boot: BootMethod) -> &'static [(Role, Option<Slot>)] {
    match boot {
        BootMethod::SystemdBoot => &[
            (Role::Esp, None),
            (Role::Root, Some(Slot::A)),
            (Role::Root, Some(Slot::B)),
            (Role::Data, None),
        ],
        BootMethod::UBoot => &[
            (Role::Esp, None),
            (Role::UBootEnv, None),
            (Role::Root, Some(Slot::A)),
            (Role::Root, Some(Slot::B)),
            (Role::Data, None),
        ],
        BootMethod::RpiTryboot => &[
            (Role::Bootconfig, None),
            (Role::Boot, Some(Slot::A)),
            (Role::Boot, Some(Slot::B)),
            (Role::Root, Some(Slot::A)),
            (Role::Root, Some(Slot::B)),
            (Role::Data, None),
        ],
    }
}

pub fn validate(board: &Board, file_stem: &str) -> Result<(), String> {
    if board.name != file_stem {
        return Err(format!(
            "name {:?} does not match the file name {file_stem:?}",
            board.name
        ));
    }
    if board.kernel.trim().is_empty() {
        return Err("kernel package must not be empty".into());
    }
    if board.components.is_empty() {
        return Err("components must name at least one archive component".into());
    }
    if let Some(bad) = board.packages.iter().find(|p| !is_package_name(p)) {
        return Err(format!("{bad:?} is not a Debian package name"));
    }
    if let Some(bad) = board.overlays.iter().find(|o| !is_simple_name(o)) {
        return Err(format!("overlay {bad:?} must be a plain folder name"));
    }
    if board
        .kernel_cmdline
        .iter()
        .any(|arg| arg.starts_with("root=") || arg.chars().any(char::is_whitespace))
    {
        return Err("kernel_cmdline holds one argument per entry and no root= \
                    (the builder adds each slot's own root)"
            .into());
    }
    check_partitions(board.boot, &board.partitions)?;
    let by = &board.verified.by;
    if by.is_empty() || by.starts_with('/') || by.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(format!(
            "verified.by {by:?} must be a path inside the workspace (the script or test)"
        ));
    }
    if board.verified.level == crate::board::Verification::QemuBoot && board.qemu.is_none() {
        return Err("verified.level \"qemu-boot\" needs a [qemu] table".into());
    }
    if board.uki && board.boot != BootMethod::SystemdBoot {
        return Err(
            "uki = true needs boot = \"systemd-boot\" (unified kernel images are EFI)".into(),
        );
    }
    if let Some(q) = &board.qemu {
        match (&q.bios, &q.firmware_code, &q.firmware_vars) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            _ => {
                return Err(
                    "[qemu] needs either bios or both firmware_code and firmware_vars".into(),
                );
            }
        }
    }
    if let Some(fw) = board.uboot.as_ref().and_then(|u| u.firmware.as_ref()) {
        // The primary GPT takes the first 34 sectors.
        if fw.offset < 34 * 512 || fw.offset >= fw.first_partition_mib << 20 {
            return Err(format!(
                "[uboot.firmware] offset {} must lie between the partition table (17408) and the first partition ({} MiB)",
                fw.offset, fw.first_partition_mib
            ));
        }
    }
    match (board.boot, &board.uboot) {
        (BootMethod::UBoot, None) => return Err("a u-boot board needs an [uboot] table".into()),
        (BootMethod::SystemdBoot | BootMethod::RpiTryboot, Some(_)) => {
            return Err("[uboot] only applies to u-boot boards".into());
        }
        _ => {}
    }
    match (board.boot, &board.rpi) {
        (BootMethod::RpiTryboot, None) => Err("an rpi-tryboot board needs an [rpi] table".into()),
        (BootMethod::SystemdBoot | BootMethod::UBoot, Some(_)) => {
            Err("[rpi] only applies to rpi-tryboot".into())
        }
        _ => Ok(()),
    }
}

fn check_partitions(boot: BootMethod, parts: &[PartitionSpec]) -> Result<(), String> {
    let layout = required_layout(boot);
    let found: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
    let want: Vec<(Role, Option<Slot>)> = parts.iter().map(|p| (p.role, p.slot)).collect();
    if want != layout {
        let expected: Vec<String> = layout
            .iter()
            .map(|&(role, slot)| {
                PartitionSpec {
                    name: String::new(),
                    role,
                    slot,
                    size_mib: 0,
                }
                .expected_name()
            })
            .collect();
        return Err(format!(
            "partitions must be {} in this order, found {}",
            expected.join(" · "),
            found.join(" · ")
        ));
    }
    for part in parts {
        if part.name != part.expected_name() {
            return Err(format!(
                "partition {:?} must be named {:?}",
                part.name,
                part.expected_name()
            ));
        }
        let min = match part.role {
            Role::Esp => MIN_ESP_MIB,
            Role::Bootconfig => 16,
            Role::Boot => MIN_BOOT_MIB,
            Role::Root => MIN_ROOT_MIB,
            Role::Data => MIN_DATA_MIB,
            Role::UBootEnv => 1,
        };
        if part.size_mib < min {
            return Err(format!(
                "partition {:?} is {} MiB; it needs at least {min} MiB",
                part.name, part.size_mib
            ));
        }
    }
    for role in [Role::Boot, Role::Root] {
        let sizes: Vec<u64> = parts
            .iter()
            .filter(|p| p.role == role)
            .map(|p| p.size_mib)
            .collect();
        if sizes.windows(2).any(|w| w[0] != w[1]) {
            return Err("both slots of a partition pair must have the same size".into());
        }
    }
    Ok(())
}

fn is_package_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// A folder name with no path separators or dot-dot.
pub fn is_simple_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_debian_policy() {
        assert!(is_package_name("linux-image-amd64"));
        assert!(is_package_name("g++"));
        assert!(!is_package_name("Foo"));
        assert!(!is_package_name("a"));
        assert!(!is_package_name("docker.io; rm -rf /"));
    }

    #[test]
    fn overlay_names_cannot_escape_the_overlay_folder() {
        assert!(is_simple_name("qemu"));
        assert!(!is_simple_name("../etc"));
        assert!(!is_simple_name(".hidden"));
        assert!(!is_simple_name("a/b"));
    }

    #[test]
    fn unified_kernel_images_are_for_efi_boards_only() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../board-configs");
        let mut pi = crate::board::load_board_file(&dir.join("rpi4.toml")).expect("rpi4");
        let mut efi = crate::board::load_board_file(&dir.join("qemu-x86_64.toml")).expect("qemu");
        (pi.uki, efi.uki) = (true, true);
        assert!(validate(&pi, "rpi4").expect_err("pi").contains("uki"));
        validate(&efi, "qemu-x86_64").expect("an EFI board may");
    }
}
