//! Loads every file in `board-configs/` and checks its partition plan: the names and order the
//! boot entries and the updater look up, sizes, and 1 MiB alignment.
use std::path::PathBuf;

use hearth_image::board::{
    Board, BoardDir, BoardError, BootMethod, Role, Verification, load_board_file,
};
use hearth_image::partition::{ALIGN, Plan, gpt_type};

fn boards() -> BoardDir {
    BoardDir::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../board-configs"))
}

fn all_boards() -> Vec<Board> {
    let dir = boards();
    let names = dir.names().expect("board-configs readable");
    assert_eq!(
        names,
        [
            "arm64-efi",
            "qemu-arm64-uboot",
            "qemu-x86_64",
            "rockpro64",
            "rpi4",
            "rpi5",
            "x86_64-efi"
        ],
        "the boards the image issue asks for"
    );
    names
        .iter()
        .map(|n| dir.load(n).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect()
}

#[test]
fn every_board_has_the_partition_names_the_updater_looks_up() {
    for board in all_boards() {
        let names: Vec<&str> = board.partitions.iter().map(|p| p.name.as_str()).collect();
        let want: &[&str] = match board.boot {
            BootMethod::SystemdBoot => &["esp", "root-a", "root-b", "data"],
            BootMethod::UBoot => &["esp", "uboot-env", "root-a", "root-b", "data"],
            BootMethod::RpiTryboot => {
                &["bootconfig", "boot-a", "boot-b", "root-a", "root-b", "data"]
            }
        };
        assert_eq!(names, want, "{}", board.name);
    }
}

#[test]
fn every_plan_is_aligned_contiguous_and_fits_the_disk() {
    for board in all_boards() {
        let plan = Plan::for_board(&board, "test 0.0.0");
        // An SBC's boot loader sits before the first partition.
        let mut end = board
            .uboot
            .as_ref()
            .and_then(|u| u.firmware.as_ref())
            .map_or(ALIGN, |f| f.first_partition_mib * ALIGN);
        assert!(end >= ALIGN);
        for p in &plan.partitions {
            assert_eq!(p.offset % ALIGN, 0, "{} {} start", board.name, p.name);
            assert_eq!(p.size % ALIGN, 0, "{} {} size", board.name, p.name);
            assert_eq!(
                p.offset, end,
                "{} {} follows the previous one",
                board.name, p.name
            );
            end = p.offset + p.size;
        }
        // Room for the 33-sector backup GPT after the data partition.
        assert!(plan.disk_size >= end + 33 * 512, "{}", board.name);
        let data = plan.partitions.last().expect("has partitions");
        assert_eq!(
            data.name, "data",
            "{}: data is last so it can grow",
            board.name
        );
        assert_eq!(data.type_guid, gpt_type::LINUX_DATA);
    }
}

#[test]
fn slot_pairs_are_equal_and_roomy() {
    for board in all_boards() {
        for role in [Role::Root, Role::Boot] {
            let sizes: Vec<u64> = board
                .partitions
                .iter()
                .filter(|p| p.role == role)
                .map(|p| p.size_mib)
                .collect();
            assert!(sizes.windows(2).all(|w| w[0] == w[1]), "{}", board.name);
        }
        let root = board.partitions.iter().find(|p| p.role == Role::Root);
        assert!(
            root.is_some_and(|r| r.size_mib >= 2048),
            "{}: root slots leave headroom",
            board.name
        );
    }
}

#[test]
fn root_partitions_carry_their_architecture_type() {
    for board in all_boards() {
        let plan = Plan::for_board(&board, "t");
        let want = match board.arch {
            hearth_image::board::Arch::Amd64 => gpt_type::ROOT_X86_64,
            hearth_image::board::Arch::Arm64 => gpt_type::ROOT_ARM64,
        };
        for name in ["root-a", "root-b"] {
            assert_eq!(
                plan.get(name).map(|p| p.type_guid),
                Some(want),
                "{}",
                board.name
            );
        }
    }
}

#[test]
fn sfdisk_script_names_every_partition() {
    for board in all_boards() {
        let script = Plan::for_board(&board, "t").sfdisk_script();
        assert!(script.starts_with("label: gpt\n"));
        for p in &board.partitions {
            assert!(
                script.contains(&format!("name=\"{}\"", p.name)),
                "{}",
                board.name
            );
        }
    }
}

#[test]
fn common_config_loads() {
    let common = boards().common().expect("common/debian.toml");
    for needed in [
        "systemd",
        "docker.io",
        "network-manager",
        "avahi-daemon",
        "systemd-repart",
    ] {
        assert!(common.packages.iter().any(|p| p == needed), "{needed}");
    }
}

fn write_board(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write");
    path
}

fn qemu_board_text() -> String {
    std::fs::read_to_string(boards().path().join("qemu-x86_64.toml")).expect("read")
}

#[test]
fn unknown_keys_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("colour = \"red\"\n{}", qemu_board_text());
    let err = load_board_file(&write_board(dir.path(), "qemu-x86_64", &text))
        .expect_err("must be refused");
    assert!(matches!(err, BoardError::Parse { .. }), "{err}");
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn partitions_out_of_order_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = qemu_board_text().replacen(
        "name = \"root-a\"\nrole = \"root\"\nslot = \"a\"",
        "name = \"root-b\"\nrole = \"root\"\nslot = \"b\"",
        1,
    );
    let err = load_board_file(&write_board(dir.path(), "qemu-x86_64", &text))
        .expect_err("must be refused");
    assert!(err.to_string().contains("in this order"), "{err}");
}

#[test]
fn a_board_named_differently_from_its_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load_board_file(&write_board(dir.path(), "other", &qemu_board_text()))
        .expect_err("must be refused");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn unknown_board_lists_the_known_ones() {
    let err = boards().load("pdp11").expect_err("must be refused");
    assert!(matches!(err, BoardError::Unknown { .. }));
    assert!(err.to_string().contains("qemu-x86_64"), "{err}");
}

#[test]
fn root_on_the_board_cmdline_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text =
        qemu_board_text().replace("\"console=tty0\",", "\"console=tty0\", \"root=/dev/sda2\",");
    let err = load_board_file(&write_board(dir.path(), "qemu-x86_64", &text))
        .expect_err("must be refused");
    assert!(err.to_string().contains("root="), "{err}");
}

/// What each board claims about its verification is backed: the script or test it names
/// exists and names the board, and a "booted in QEMU" board has a [qemu] table to boot with.
#[test]
fn every_board_names_what_verifies_it() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for board in all_boards() {
        let by = root.join(&board.verified.by);
        let text = std::fs::read_to_string(&by)
            .unwrap_or_else(|e| panic!("{}: verified.by {}: {e}", board.name, by.display()));
        assert!(
            text.contains(&board.name),
            "{}: {} does not name the board",
            board.name,
            board.verified.by
        );
        if board.verified.level == Verification::QemuBoot {
            assert!(board.qemu.is_some(), "{}", board.name);
        }
    }
    let level = |n: &str| boards().load(n).expect(n).verified.level;
    assert_eq!(level("qemu-x86_64"), Verification::QemuBoot);
    assert_eq!(level("arm64-efi"), Verification::QemuBoot);
    assert_eq!(
        level("rpi4"),
        Verification::EmulatedKernel,
        "raspi4b, no Pi firmware"
    );
    assert_eq!(level("rpi5"), Verification::Structural, "QEMU has no Pi 5");
}

#[test]
fn a_qemu_boot_claim_without_qemu_and_a_path_outside_the_workspace_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rpi = std::fs::read_to_string(boards().path().join("rpi4.toml")).expect("read");
    let text = rpi.replace("level = \"emulated-kernel\"", "level = \"qemu-boot\"");
    let err = load_board_file(&write_board(dir.path(), "rpi4", &text)).expect_err("refused");
    assert!(err.to_string().contains("[qemu]"), "{err}");
    let text = qemu_board_text().replace("by = \"ci/e2e\"", "by = \"../elsewhere\"");
    let err = load_board_file(&write_board(dir.path(), "qemu-x86_64", &text)).expect_err("refused");
    assert!(err.to_string().contains("verified.by"), "{err}");
    let text = qemu_board_text().replace("level = \"qemu-boot\"", "level = \"prayed-over\"");
    let err = load_board_file(&write_board(dir.path(), "qemu-x86_64", &text)).expect_err("refused");
    assert!(err.to_string().contains("prayed-over"), "{err}");
}

/// `hearth-image list-boards` (the binary, on this workspace): a header and one aligned line
/// per board with its boot method and verification, read from the board files.
#[test]
fn list_boards_shows_boot_method_and_verification() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth-image"))
        .arg("--workspace")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .arg("list-boards")
        .output()
        .expect("run hearth-image");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + all_boards().len(), "{text}");
    assert!(lines[0].starts_with("BOARD "), "{text}");
    let boot_column = lines[0].find("BOOT ").expect("BOOT column");
    let verified_column = lines[0].find("VERIFIED").expect("VERIFIED column");
    let line = |name: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {text}"))
    };
    for (name, boot, verified) in [
        ("qemu-x86_64", "systemd-boot", "booted in QEMU (ci/e2e)"),
        ("arm64-efi", "systemd-boot", "booted in QEMU (ci/e2e-arm64)"),
        (
            "qemu-arm64-uboot",
            "u-boot",
            "booted in QEMU (ci/e2e-uboot)",
        ),
        ("rpi4", "rpi-tryboot", "emulated kernel boot (ci/e2e-rpi)"),
        (
            "rpi5",
            "rpi-tryboot",
            "structural check only (ci/image-check-rpi)",
        ),
        (
            "x86_64-efi",
            "systemd-boot",
            "structural check only (image/tests/board_files.rs)",
        ),
    ] {
        let l = line(name);
        assert!(l[boot_column..].starts_with(boot), "{l}");
        assert!(l[verified_column..].starts_with(verified), "{l}");
    }
}
