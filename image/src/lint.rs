//! Lints of a prepared root, run before it is sealed: each one names what it checks and what
//! it found. A root with findings is not sealed.
use std::path::Path;

/// One lint: a name and a check that returns the problems it found.
pub struct Lint {
    pub name: &'static str,
    pub check: fn(&LintContext) -> Vec<String>,
}

impl std::fmt::Debug for Lint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[derive(Debug)]
pub struct LintContext<'a> {
    pub root: &'a Path,
    /// ELF machine the agent binary must be built for (62 x86-64, 183 AArch64).
    pub elf_machine: u16,
    /// The build enables SSH with a key.
    pub ssh_enabled: bool,
}

/// Units that must be present and enabled.
const REQUIRED_UNITS: [&str; 7] = [
    "hearth-agent.service",
    "hearth-firewall.service",
    "docker.socket",
    "NetworkManager.service",
    "avahi-daemon.service",
    "systemd-timesyncd.service",
    "systemd-repart.service",
];

/// Units that write to the root or to the network on a schedule, or (nftables.service) flush
/// the whole firewall ruleset, Docker's included; never enabled.
const FORBIDDEN_UNITS: [&str; 6] = [
    "nftables.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "sshd-keygen.service",
    "e2scrub_all.timer",
];

/// The container engine starts on demand through docker.socket (a required unit): enabled at
/// boot, these would cost a device without apps about 140 MB (docs/apps.md).
const ON_DEMAND_UNITS: [&str; 2] = ["docker.service", "containerd.service"];

pub const LINTS: &[Lint] = &[
    Lint {
        name: "required units present and enabled",
        check: required_units,
    },
    Lint {
        name: "no unit that writes the root is enabled",
        check: forbidden_units,
    },
    Lint {
        name: "the container engine starts on demand, not at boot",
        check: on_demand_units,
    },
    Lint {
        name: "agent binary present for this architecture",
        check: agent_binary,
    },
    Lint {
        name: "no default passwords",
        check: no_passwords,
    },
    Lint {
        name: "SSH off unless enabled with a key",
        check: ssh_off,
    },
    Lint {
        name: "nothing expects a writable root",
        check: read_only_ready,
    },
    Lint {
        name: "journal has a size cap",
        check: journal_cap,
    },
    Lint {
        name: "kernel and initramfs (with Hearth's layer) present",
        check: kernel_present,
    },
    Lint {
        name: "dm-verity: veritysetup in the root, the initramfs opens the root through it",
        check: verity_ready,
    },
    Lint {
        name: "update health gate present, enabled before boot-complete.target; systemd-bless-boot masked",
        check: health_gate,
    },
    Lint {
        name: "release.json and the OTA root key present",
        check: update_identity,
    },
    Lint {
        name: "every Hearth service is sandboxed",
        check: units_sandboxed,
    },
];

/// Settings every `hearth-*.service` must carry (docs/security.md, "Least privilege on the
/// device"): each names what it keeps, so a new unit cannot ship with systemd's defaults. The
/// agent too runs in its own mount namespace: disks systemd mounts later reach it by mount
/// propagation (the QEMU end to end uploads onto one).
const SANDBOX_LINES: [&str; 4] = [
    "NoNewPrivileges=yes",
    "SystemCallFilter=@system-service",
    "ProtectSystem=strict",
    "PrivateTmp=yes",
];
/// Settings that must be present with some value.
const SANDBOX_KEYS: [&str; 2] = ["CapabilityBoundingSet=", "RestrictAddressFamilies="];
/// The agent confines every file path with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.
/// systemd's `RestrictSUIDSGID=yes` cannot inspect the mode inside `openat2`'s argument struct
/// and makes the call fail with `ENOSYS` instead (so that callers fall back to `openat`, which
/// the agent must not): every upload and app folder failed with "Function not implemented".
const AGENT_EXEC: &str = "ExecStart=/usr/bin/hearth-agent";
const BREAKS_OPENAT2: &str = "RestrictSUIDSGID=yes";

pub const HEALTH_GATE_UNIT: &str = "hearth-health-gate.service";

/// Lines the gate unit must have: what the agent's `health-gate` and the boot loaders' trial
/// logic rely on.
const HEALTH_GATE_LINES: [&str; 5] = [
    "Type=oneshot",
    "ExecStart=/usr/bin/hearth-agent health-gate",
    "Before=boot-complete.target",
    "FailureAction=reboot",
    "RequiredBy=boot-complete.target",
];

/// Runs every lint; returns `(lint, problem)` pairs.
pub fn run(ctx: &LintContext) -> Vec<(&'static str, String)> {
    LINTS
        .iter()
        .flat_map(|lint| (lint.check)(ctx).into_iter().map(|p| (lint.name, p)))
        .collect()
}

fn unit_file_exists(root: &Path, unit: &str) -> bool {
    ["usr/lib/systemd/system", "etc/systemd/system"]
        .iter()
        .any(|d| root.join(d).join(unit).exists())
}

/// A unit is enabled when some `*.wants/` (or `*.requires/`) folder links to it.
pub fn is_enabled(root: &Path, unit: &str) -> bool {
    ["etc/systemd/system", "usr/lib/systemd/system"]
        .iter()
        .filter_map(|d| std::fs::read_dir(root.join(d)).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".wants") || name.ends_with(".requires")
        })
        .any(|e| e.path().join(unit).symlink_metadata().is_ok())
}

fn required_units(ctx: &LintContext) -> Vec<String> {
    REQUIRED_UNITS
        .iter()
        .filter_map(|u| {
            if !unit_file_exists(ctx.root, u) {
                Some(format!("{u} is missing"))
            } else if !is_enabled(ctx.root, u) {
                Some(format!("{u} is not enabled"))
            } else {
                None
            }
        })
        .collect()
}

/// `<unit> is enabled<why>` for each of `units` enabled in the root.
fn enabled_of(ctx: &LintContext, units: &[&str], why: &str) -> Vec<String> {
    units
        .iter()
        .filter(|u| is_enabled(ctx.root, u))
        .map(|u| format!("{u} is enabled{why}"))
        .collect()
}

fn forbidden_units(ctx: &LintContext) -> Vec<String> {
    enabled_of(ctx, &FORBIDDEN_UNITS, "")
}

fn on_demand_units(ctx: &LintContext) -> Vec<String> {
    enabled_of(
        ctx,
        &ON_DEMAND_UNITS,
        " at boot (it starts on demand through docker.socket)",
    )
}

fn agent_binary(ctx: &LintContext) -> Vec<String> {
    let path = ctx.root.join("usr/bin/hearth-agent");
    let Ok(bytes) = std::fs::read(&path) else {
        return vec!["/usr/bin/hearth-agent is missing".into()];
    };
    match elf_machine(&bytes) {
        Some(m) if m == ctx.elf_machine => vec![],
        Some(m) => vec![format!(
            "/usr/bin/hearth-agent is built for ELF machine {m}, the board needs {}",
            ctx.elf_machine
        )],
        None => vec!["/usr/bin/hearth-agent is not a 64-bit ELF executable".into()],
    }
}

/// The `e_machine` field of a 64-bit little-endian ELF file.
pub fn elf_machine(bytes: &[u8]) -> Option<u16> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    Some(u16::from_le_bytes([bytes[18], bytes[19]]))
}

fn no_passwords(ctx: &LintContext) -> Vec<String> {
    let Ok(shadow) = std::fs::read_to_string(ctx.root.join("etc/shadow")) else {
        return vec!["/etc/shadow is missing".into()];
    };
    shadow
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let (user, hash) = (fields.next()?, fields.next()?);
            let locked = hash.starts_with('!') || hash.starts_with('*');
            (!locked).then(|| format!("user {user} has a password that allows login"))
        })
        .collect()
}

fn ssh_off(ctx: &LintContext) -> Vec<String> {
    let on = ["ssh.service", "ssh.socket", "sshd.service"]
        .iter()
        .any(|u| is_enabled(ctx.root, u));
    let has_key = ctx.root.join("root/.ssh/authorized_keys").is_file();
    match (on, ctx.ssh_enabled) {
        (true, false) => vec!["SSH is enabled but the build did not ask for it".into()],
        (true, true) if !has_key => vec!["SSH is enabled without an authorized key".into()],
        _ => vec![],
    }
}

fn read_only_ready(ctx: &LintContext) -> Vec<String> {
    let root = ctx.root;
    let mut problems = Vec::new();
    // /etc is an overlay whose changes live on the data partition: the files services replace
    // by renaming (hostnamed, timedated) must be ordinary entries of the root, not symlinks
    // into /var (a rename would replace the link, and /var is empty until the initramfs runs).
    for rel in [
        "etc/hostname",
        "etc/localtime",
        "etc/NetworkManager/system-connections",
    ] {
        if let Ok(target) = std::fs::read_link(root.join(rel))
            && target.to_string_lossy().contains("var/")
        {
            problems.push(format!("/{rel} points into {}", target.display()));
        }
    }
    if !root.join("etc/hostname").is_file() {
        problems.push("/etc/hostname is missing".into());
    }
    match std::fs::read_link(root.join("etc/resolv.conf")) {
        Ok(t) if t.to_string_lossy().contains("run/") => {}
        _ => problems.push("/etc/resolv.conf must be a symlink into /run".into()),
    }
    match std::fs::metadata(root.join("etc/machine-id")) {
        Ok(m) if m.len() == 0 => {}
        Ok(_) => problems.push("/etc/machine-id holds an id every device would share".into()),
        Err(_) => {
            problems.push("/etc/machine-id must exist (empty; the initramfs fills it)".into())
        }
    }
    let var_empty = std::fs::read_dir(root.join("var")).is_ok_and(|mut e| e.next().is_none());
    if !var_empty {
        problems.push("/var must be an empty mount point for the data partition".into());
    }
    if let Ok(entries) = std::fs::read_dir(root.join("etc/ssh")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("ssh_host_") {
                problems.push(format!(
                    "/etc/ssh/{} is baked in",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    if let Ok(fstab) = std::fs::read_to_string(root.join("etc/fstab")) {
        let rw_root = fstab.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 4
                && !l.starts_with('#')
                && f[1] == "/"
                && !f[3].split(',').any(|o| o == "ro")
        });
        if rw_root {
            problems.push("/etc/fstab mounts / read-write".into());
        }
    }
    problems
}

fn journal_cap(ctx: &LintContext) -> Vec<String> {
    let dir = ctx.root.join("usr/lib/systemd/journald.conf.d");
    let capped = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .any(|t| {
            t.lines()
                .any(|l| l.trim_start().starts_with("SystemMaxUse="))
        });
    if capped {
        vec![]
    } else {
        vec!["no journald drop-in sets SystemMaxUse=".into()]
    }
}

fn health_gate(ctx: &LintContext) -> Vec<String> {
    let root = ctx.root;
    let mut problems = Vec::new();
    let unit = root.join("usr/lib/systemd/system").join(HEALTH_GATE_UNIT);
    match std::fs::read_to_string(&unit) {
        Err(_) => problems.push(format!("{HEALTH_GATE_UNIT} is missing")),
        Ok(text) => {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for want in HEALTH_GATE_LINES {
                if !lines.contains(&want) {
                    problems.push(format!("{HEALTH_GATE_UNIT} lacks {want}"));
                }
            }
        }
    }
    let required = ["etc/systemd/system", "usr/lib/systemd/system"]
        .iter()
        .any(|d| {
            root.join(d)
                .join("boot-complete.target.requires")
                .join(HEALTH_GATE_UNIT)
                .symlink_metadata()
                .is_ok()
        });
    if !required {
        problems.push(format!(
            "{HEALTH_GATE_UNIT} is not enabled (no boot-complete.target.requires link)"
        ));
    }
    let started = ["etc/systemd/system", "usr/lib/systemd/system"]
        .iter()
        .any(|d| {
            root.join(d)
                .join("multi-user.target.wants")
                .join(HEALTH_GATE_UNIT)
                .symlink_metadata()
                .is_ok()
        });
    if !started {
        problems.push(format!(
            "{HEALTH_GATE_UNIT} is not wanted by multi-user.target (nothing would start it)"
        ));
    }
    let masked = std::fs::read_link(root.join("etc/systemd/system/systemd-bless-boot.service"))
        .is_ok_and(|t| t == Path::new("/dev/null"));
    if !masked {
        problems.push(
            "systemd-bless-boot.service is not masked (it would commit a trial before the gate)"
                .into(),
        );
    }
    problems
}

fn units_sandboxed(ctx: &LintContext) -> Vec<String> {
    let dir = ctx.root.join("usr/lib/systemd/system");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return vec![format!("{} is missing", dir.display())];
    };
    let mut problems = Vec::new();
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hearth-") && n.ends_with(".service"))
        .collect();
    names.sort();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for want in SANDBOX_LINES {
            if !lines.contains(&want) {
                problems.push(format!("{name} lacks {want}"));
            }
        }
        for key in SANDBOX_KEYS {
            if !lines.iter().any(|l| l.starts_with(key)) {
                problems.push(format!("{name} lacks {key}"));
            }
        }
        if lines.contains(&AGENT_EXEC) && lines.contains(&BREAKS_OPENAT2) {
            problems.push(format!(
                "{name} sets {BREAKS_OPENAT2}, which makes the agent's openat2 fail with ENOSYS"
            ));
        }
    }
    problems
}

fn update_identity(ctx: &LintContext) -> Vec<String> {
    let mut problems = Vec::new();
    let release = ctx.root.join(crate::ota::RELEASE_PATH);
    match std::fs::read(&release)
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::ota::Release>(&b).ok())
    {
        Some(r) if r.version_number > 0 || r.version == "0.0.0" => {}
        Some(_) => problems.push("/usr/lib/hearth/release.json has version_number 0".into()),
        None => problems.push("/usr/lib/hearth/release.json is missing or malformed".into()),
    }
    if hearth_ota::keys::load_verifying(&ctx.root.join(crate::ota::ROOT_PUB_PATH)).is_err() {
        problems.push("/usr/lib/hearth/ota-root.pub is missing or not an ed25519 key".into());
    }
    problems
}

fn kernel_present(ctx: &LintContext) -> Vec<String> {
    let names: Vec<String> = std::fs::read_dir(ctx.root.join("boot"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut problems = Vec::new();
    if !names.iter().any(|n| n.starts_with("vmlinuz-")) {
        problems.push("no /boot/vmlinuz-*".into());
    }
    let initrds: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("initrd.img-"))
        .collect();
    if initrds.is_empty() {
        problems.push("no /boot/initrd.img-*".into());
    }
    for name in initrds {
        if !crate::initrd::has_layer(&ctx.root.join("boot").join(name)) {
            problems.push(format!(
                "/boot/{name} lacks Hearth's initramfs layer (data partition, /etc overlay)"
            ));
        }
    }
    problems
}

/// The initramfs hook copies veritysetup from the root (cryptsetup-bin), and Hearth's layer
/// carries the script that opens the root with the slot's root hash.
fn verity_ready(ctx: &LintContext) -> Vec<String> {
    let mut problems = Vec::new();
    if !ctx.root.join("usr/sbin/veritysetup").is_file() {
        problems.push("no /usr/sbin/veritysetup (package cryptsetup-bin)".to_string());
    }
    let boot = ctx.root.join("boot");
    let initrds: Vec<String> = std::fs::read_dir(&boot)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("initrd.img-"))
        .collect();
    for name in initrds {
        if !crate::initrd::tail_contains(&boot.join(&name), crate::verity::SCRIPT) {
            problems.push(format!(
                "/boot/{name} lacks {} (the dm-verity step)",
                crate::verity::SCRIPT
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(root: &Path) -> LintContext<'_> {
        LintContext {
            root,
            elf_machine: 62,
            ssh_enabled: false,
        }
    }

    #[test]
    fn a_user_with_a_password_hash_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("etc")).expect("mkdir");
        std::fs::write(
            tmp.path().join("etc/shadow"),
            "root:*:1::::::\npi:$y$j9T$abc:1::::::\nnobody:!:1::::::\n",
        )
        .expect("write");
        let found = no_passwords(&ctx(tmp.path()));
        assert_eq!(
            found,
            vec!["user pi has a password that allows login".to_string()]
        );
    }

    #[test]
    fn enabled_ssh_without_the_build_asking_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wants = tmp
            .path()
            .join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants).expect("mkdir");
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/ssh.service",
            wants.join("ssh.service"),
        )
        .expect("symlink");
        assert_eq!(ssh_off(&ctx(tmp.path())).len(), 1);
    }

    /// Enabled the way Debian's packages enable them (a multi-user.target want), the engine's
    /// services are reported; the socket that starts them on demand is not.
    #[test]
    fn an_engine_enabled_at_boot_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let etc = tmp.path().join("etc/systemd/system");
        for (target, unit) in [
            ("sockets.target.wants", "docker.socket"),
            ("multi-user.target.wants", "containerd.service"),
        ] {
            std::fs::create_dir_all(etc.join(target)).expect("mkdir");
            std::os::unix::fs::symlink(
                format!("/usr/lib/systemd/system/{unit}"),
                etc.join(target).join(unit),
            )
            .expect("symlink");
        }
        let found = on_demand_units(&ctx(tmp.path()));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("containerd.service"), "{found:?}");
    }

    #[test]
    fn agent_for_the_wrong_architecture_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("usr/bin")).expect("mkdir");
        let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        elf.resize(18, 0);
        elf.extend_from_slice(&183u16.to_le_bytes());
        std::fs::write(tmp.path().join("usr/bin/hearth-agent"), &elf).expect("write");
        let found = agent_binary(&ctx(tmp.path()));
        assert!(found[0].contains("183"), "{found:?}");
    }

    #[test]
    fn the_health_gate_must_be_present_enabled_and_bless_boot_masked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let found = health_gate(&ctx(root));
        assert!(found.iter().any(|p| p.contains("is missing")), "{found:?}");
        assert!(found.iter().any(|p| p.contains("not masked")), "{found:?}");
        // The real unit from the overlay, enabled the way systemctl --root does it.
        let units = root.join("usr/lib/systemd/system");
        std::fs::create_dir_all(&units).expect("mkdir");
        let overlay = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../overlays/base/usr/lib/systemd/system")
            .join(HEALTH_GATE_UNIT);
        std::fs::copy(&overlay, units.join(HEALTH_GATE_UNIT)).expect("copy");
        let etc = root.join("etc/systemd/system");
        for dir in ["boot-complete.target.requires", "multi-user.target.wants"] {
            std::fs::create_dir_all(etc.join(dir)).expect("mkdir");
            std::os::unix::fs::symlink(
                format!("/usr/lib/systemd/system/{HEALTH_GATE_UNIT}"),
                etc.join(dir).join(HEALTH_GATE_UNIT),
            )
            .expect("symlink");
        }
        let found = health_gate(&ctx(root));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("systemd-bless-boot"), "{found:?}");
        std::os::unix::fs::symlink("/dev/null", etc.join("systemd-bless-boot.service"))
            .expect("mask");
        assert_eq!(health_gate(&ctx(root)), Vec::<String>::new());
        // A unit without FailureAction=reboot would leave a failed trial running.
        let text = std::fs::read_to_string(units.join(HEALTH_GATE_UNIT)).expect("read");
        std::fs::write(
            units.join(HEALTH_GATE_UNIT),
            text.replace("FailureAction=reboot\n", ""),
        )
        .expect("write");
        let found = health_gate(&ctx(root));
        assert!(found[0].contains("FailureAction=reboot"), "{found:?}");
    }

    #[test]
    fn every_hearth_unit_in_the_overlays_is_sandboxed_and_a_bare_one_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let units = tmp.path().join("usr/lib/systemd/system");
        std::fs::create_dir_all(&units).expect("mkdir");
        let overlay =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../overlays/base/usr/lib/systemd/system");
        let mut copied = 0;
        for entry in std::fs::read_dir(&overlay).expect("overlay") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "service") {
                std::fs::copy(&path, units.join(path.file_name().expect("name"))).expect("copy");
                copied += 1;
            }
        }
        assert!(copied >= 4, "the overlay's units were found");
        assert_eq!(units_sandboxed(&ctx(tmp.path())), Vec::<String>::new());
        std::fs::write(
            units.join("hearth-new.service"),
            "[Service]\nExecStart=/usr/bin/true\nProtectSystem=full\n",
        )
        .expect("write");
        let found = units_sandboxed(&ctx(tmp.path()));
        assert_eq!(found.len(), 6, "{found:?}");
        assert!(found.iter().all(|p| p.starts_with("hearth-new.service")));
        std::fs::remove_file(units.join("hearth-new.service")).expect("rm");
        let agent = units.join("hearth-agent.service");
        let text = std::fs::read_to_string(&agent).expect("agent unit");
        std::fs::write(
            &agent,
            text.replace("[Service]\n", "[Service]\nRestrictSUIDSGID=yes\n"),
        )
        .expect("write");
        let found = units_sandboxed(&ctx(tmp.path()));
        assert!(found.len() == 1 && found[0].contains("ENOSYS"), "{found:?}");
    }

    #[test]
    fn release_json_and_root_key_are_required() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(update_identity(&ctx(tmp.path())).len(), 2);
        let keys = crate::ota::load_keys(None, &tmp.path().join("cache")).expect("keys");
        let b = crate::board::load_board_file(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../board-configs/qemu-x86_64.toml"),
        )
        .expect("board");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).expect("mkdir");
        crate::ota::write_into_root(
            &root,
            &crate::ota::release(&b, "1.0.0", 1_000_000, "id"),
            &keys.root_pub_pem(),
            None,
        )
        .expect("write");
        assert_eq!(update_identity(&ctx(&root)), Vec::<String>::new());
    }

    #[test]
    fn a_baked_machine_id_and_a_populated_var_are_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("etc")).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("var/lib")).expect("mkdir");
        std::fs::write(tmp.path().join("etc/machine-id"), "0123\n").expect("write");
        let found = read_only_ready(&ctx(tmp.path()));
        assert!(
            found.iter().any(|p| p.contains("machine-id holds")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("/var must be empty") || p.contains("/var must be an empty")),
            "{found:?}"
        );
    }

    #[test]
    fn verity_needs_veritysetup_and_the_layers_script() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("boot")).expect("mkdir");
        let initrd = root.join("boot/initrd.img-6.12");
        std::fs::write(&initrd, b"base").expect("write");
        let found = verity_ready(&ctx(root));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("veritysetup"), "{found:?}");
        assert!(found[1].contains("hearth-verity"), "{found:?}");
        std::fs::create_dir_all(root.join("usr/sbin")).expect("mkdir");
        std::fs::write(root.join("usr/sbin/veritysetup"), b"elf").expect("write");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../overlays/initrd-layer");
        let layer = crate::initrd::layer(&dir, 0, "id").expect("layer");
        crate::initrd::append_to_root(root, &layer).expect("append");
        assert_eq!(verity_ready(&ctx(root)), Vec::<String>::new());
    }
}
