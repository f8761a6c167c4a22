//! Turns a copy of the bootstrapped base into the root that gets sealed: removes state that
//! must not be shared by every device, moves `/var` to `/usr/share/factory/var` (the data
//! partition is mounted on `/var` at boot and seeded from there), lays the overlays, installs
//! the agent and the image's identity, and enables units from the overlays' presets.
//!
//! Works on a root folder given by path; never on the running system.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{CmdError, Runner};
use crate::fsutil::remove_all;
use crate::overlay::{self, OverlayError};

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Overlay(#[from] OverlayError),
    #[error(
        "agent binary {0} does not exist (build it with `cargo build --release -p hearth-agent` or pass --agent-bin)"
    )]
    NoAgent(PathBuf),
    #[error("cannot enable or disable units: {0}")]
    Systemctl(CmdError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RootError {
    let path = path.to_path_buf();
    move |source| RootError::Io { path, source }
}

/// What goes into the root besides the base.
#[derive(Debug, Clone)]
pub struct RootContent {
    /// Overlay folders, in the order they are laid.
    pub overlays: Vec<PathBuf>,
    pub agent_bin: PathBuf,
    /// `IMAGE_ID` and `IMAGE_VERSION` for os-release.
    pub image_id: String,
    pub version: String,
    /// Unique per build input; the data partition re-seeds new `/var` content when it changes.
    pub build_id: String,
    pub signing_public_pem: String,
    /// When set, SSH is enabled with this key for root.
    pub ssh_authorized_key: Option<String>,
}

/// Files and folders from the package installation that would be wrong on every device.
const REMOVE: [&str; 8] = [
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/templates.dat-old",
    "var/cache/debconf/config.dat-old",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/log/apt",
    "etc/ssh/ssh_host_ed25519_key",
];

pub fn prepare(root: &Path, content: &RootContent, runner: &Runner) -> Result<(), RootError> {
    clean(root)?;
    move_var_to_factory(root)?;
    for ov in &content.overlays {
        overlay::apply(ov, root)?;
    }
    install_agent(root, &content.agent_bin)?;
    write_identity(root, content)?;
    if let Some(key) = &content.ssh_authorized_key {
        let dir = root.join("root/.ssh");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join("authorized_keys");
        std::fs::write(&path, format!("{}\n", key.trim())).map_err(io(&path))?;
    }
    apply_presets(root, content.ssh_authorized_key.is_some(), runner)
}

fn clean(root: &Path) -> Result<(), RootError> {
    for rel in REMOVE {
        let path = root.join(rel);
        remove_all(&path).map_err(io(&path))?;
    }
    let ssh = root.join("etc/ssh");
    if ssh.is_dir() {
        for entry in std::fs::read_dir(&ssh).map_err(io(&ssh))? {
            let path = entry.map_err(io(&ssh))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if name.is_some_and(|n| n.starts_with("ssh_host_")) {
                remove_all(&path).map_err(io(&path))?;
            }
        }
    }
    // Empty: the initramfs writes the device's own id into the /etc overlay (data partition).
    let machine_id = root.join("etc/machine-id");
    std::fs::write(&machine_id, "").map_err(io(&machine_id))?;
    for dir in ["var/log", "tmp", "var/tmp"] {
        empty_dir(&root.join(dir))?;
    }
    Ok(())
}

fn empty_dir(dir: &Path) -> Result<(), RootError> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        remove_all(&path).map_err(io(&path))?;
    }
    Ok(())
}

/// Where the prepared root keeps the factory `/var` (relative to the root).
pub const FACTORY_VAR: &str = "usr/share/factory/var";

fn move_var_to_factory(root: &Path) -> Result<(), RootError> {
    let var = root.join("var");
    let factory = root.join(FACTORY_VAR);
    std::fs::create_dir_all(&factory).map_err(io(&factory))?;
    for entry in std::fs::read_dir(&var).map_err(io(&var))? {
        let entry = entry.map_err(io(&var))?;
        let to = factory.join(entry.file_name());
        // /var/run and /var/lock are symlinks into /run; keep them on the data side too.
        remove_all(&to).map_err(io(&to))?;
        std::fs::rename(entry.path(), &to).map_err(io(&to))?;
    }
    Ok(())
}

fn install_agent(root: &Path, bin: &Path) -> Result<(), RootError> {
    if !bin.is_file() {
        return Err(RootError::NoAgent(bin.to_path_buf()));
    }
    let dst = root.join("usr/bin/hearth-agent");
    std::fs::copy(bin, &dst).map_err(io(&dst))?;
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).map_err(io(&dst))
}

fn write_identity(root: &Path, c: &RootContent) -> Result<(), RootError> {
    let os_release = root.join("usr/lib/os-release");
    let mut text = std::fs::read_to_string(&os_release).map_err(io(&os_release))?;
    text.retain(|ch| ch != '\r');
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("IMAGE_ID=") && !l.starts_with("IMAGE_VERSION="))
        .collect();
    let id = format!("IMAGE_ID={}", c.image_id);
    let version = format!("IMAGE_VERSION={}", c.version);
    lines.push(&id);
    lines.push(&version);
    std::fs::write(&os_release, lines.join("\n") + "\n").map_err(io(&os_release))?;
    let hearth = root.join("usr/lib/hearth");
    std::fs::create_dir_all(&hearth).map_err(io(&hearth))?;
    let build_id = hearth.join("build-id");
    std::fs::write(&build_id, format!("{}\n", c.build_id)).map_err(io(&build_id))?;
    let keys = root.join("usr/share/hearth/keys");
    std::fs::create_dir_all(&keys).map_err(io(&keys))?;
    let key = keys.join("image-signing.pub");
    std::fs::write(&key, &c.signing_public_pem).map_err(io(&key))
}

/// `enable`/`disable` lines of the overlays' preset files (`*hearth*.preset`), in file order.
pub fn read_presets(root: &Path) -> Result<Vec<(bool, String)>, RootError> {
    let dir = root.join("usr/lib/systemd/system-preset");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.contains("hearth") && n.ends_with(".preset"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(io(&file))?;
        for line in text.lines().map(str::trim) {
            match line.split_once(' ') {
                Some(("enable", unit)) => out.push((true, unit.trim().to_string())),
                Some(("disable", unit)) => out.push((false, unit.trim().to_string())),
                _ => {}
            }
        }
    }
    Ok(out)
}

fn unit_exists(root: &Path, unit: &str) -> bool {
    ["usr/lib/systemd/system", "etc/systemd/system"]
        .iter()
        .any(|d| root.join(d).join(unit).exists())
}

fn apply_presets(root: &Path, ssh: bool, runner: &Runner) -> Result<(), RootError> {
    let mut enable = Vec::new();
    let mut disable = Vec::new();
    for (on, unit) in read_presets(root)? {
        let on = on || (ssh && unit == "ssh.service");
        if !unit_exists(root, &unit) {
            continue;
        }
        if on { &mut enable } else { &mut disable }.push(unit);
    }
    let root_arg = format!("--root={}", root.display());
    for (verb, units) in [("disable", disable), ("enable", enable)] {
        if units.is_empty() {
            continue;
        }
        runner
            .run(
                Command::new("systemctl")
                    .arg(&root_arg)
                    .arg("--no-reload")
                    .arg(verb)
                    .args(&units),
                false,
            )
            .map_err(RootError::Systemctl)?;
    }
    Ok(())
}
