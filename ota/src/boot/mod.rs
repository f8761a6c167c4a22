//! Boot control: which slot boots next, trial boots and commits, behind one trait with a
//! backend per boot loader. Backends edit files through [`BootFs`] (a directory handle: the
//! ESP, the Pi `bootconfig` partition, a state directory), so they are tested in temporary
//! directories and under simulated power cuts. Each backend also has a `simulate_boot` that
//! does what its firmware or boot loader does at power-on, for tests.
//!
//! Contract for every backend: every method is durable before it returns; a power cut during a
//! method leaves either the old or the new state; boot counters only count while a trial is
//! pending, so a committed slot never falls back because of power cuts.
pub mod file;
pub mod rpi;
pub mod systemd_boot;
pub mod uboot;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::A, Slot::B];

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn letter(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    pub fn upper(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }

    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "a" | "A" => Some(Slot::A),
            "b" | "B" => Some(Slot::B),
            _ => None,
        }
    }

    /// The booted slot from a kernel command line (`root=PARTLABEL=root-b`).
    pub fn from_cmdline(cmdline: &str) -> Option<Slot> {
        cmdline.split_whitespace().find_map(|arg| match arg {
            "root=PARTLABEL=root-a" => Some(Slot::A),
            "root=PARTLABEL=root-b" => Some(Slot::B),
            _ => None,
        })
    }
}

/// Number of boots a trial gets before the boot loader gives up on it.
pub const TRIAL_TRIES: u32 = 3;

/// What the boot configuration says now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootState {
    /// The committed slot: what boots when no trial is pending.
    pub primary: Option<Slot>,
    /// A slot on trial and the boots it has left (0: the trial failed).
    pub trial: Option<(Slot, u32)>,
    /// Slots the boot loader may start.
    pub bootable: Vec<Slot>,
}

impl BootState {
    pub fn is_bootable(&self, slot: Slot) -> bool {
        self.bootable.contains(&slot)
    }
}

/// What the health gate (and the agent after a boot) makes of the boot state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "slot")]
pub enum TrialOutcome {
    /// No trial pending: the booted slot is the committed one.
    Committed,
    /// Booted into the trial slot: run the checks, then `commit` it.
    OnTrial(Slot),
    /// A trial of this slot is recorded but the committed slot booted: the update failed and
    /// the boot loader fell back (report it; the next install clears the record).
    FellBack(Slot),
}

/// Classifies the current boot (`booted` from `Slot::from_cmdline`).
pub fn trial_outcome(state: &BootState, booted: Slot) -> TrialOutcome {
    match state.trial {
        Some((slot, _)) if slot == booted => TrialOutcome::OnTrial(slot),
        Some((slot, _)) => TrialOutcome::FellBack(slot),
        None => TrialOutcome::Committed,
    }
}

/// How to reboot into a trial, decided by the boot backend and carried out by the caller (the
/// agent's `SystemControl`, or a printed `argv` for the command line). Data, never run here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "parameter")]
pub enum RebootRequest {
    /// An ordinary reboot: the boot loader's own state picks the trial (systemd-boot's
    /// counted entry, the U-Boot environment, the file backend).
    Plain,
    /// A reboot with a parameter for the firmware (logind `SetRebootParameter`): the
    /// Raspberry Pi's one-shot `0 tryboot`.
    WithParameter(String),
}

impl RebootRequest {
    /// The Raspberry Pi firmware's one-shot trial flag.
    pub fn tryboot() -> Self {
        RebootRequest::WithParameter("0 tryboot".into())
    }

    /// The same request as a command line (`systemctl reboot ["0 tryboot"]`).
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["systemctl".to_string(), "reboot".to_string()];
        if let RebootRequest::WithParameter(p) = self {
            argv.push(p.clone());
        }
        argv
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("slot {0:?} cannot be committed: it is not bootable")]
    NotBootable(Slot),
}

pub trait BootControl {
    fn state(&mut self) -> Result<BootState, BootError>;
    /// Makes `slot` unbootable before anything is written to it. Never touches the other slot.
    fn mark_unbootable(&mut self, slot: Slot) -> Result<(), BootError>;
    /// Makes `slot` the next boot on trial: unless it is committed, the boot loader returns to
    /// the primary slot by itself. `version` labels boot menu entries.
    /// Returns how to reboot into the trial ([`BootControl::reboot_request`]).
    fn set_trial(&mut self, slot: Slot, version: &str) -> Result<RebootRequest, BootError>;
    /// How this backend reboots into a trial it has set up; the one place that knows.
    fn reboot_request(&self) -> RebootRequest {
        RebootRequest::Plain
    }
    /// Makes the booted `slot` the primary one and stops counting (the health gate calls this).
    fn commit(&mut self, slot: Slot) -> Result<(), BootError>;
}

/// Files of one boot directory, named relative to it.
pub trait BootFs {
    fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>>;
    /// Replaces a file so a power cut leaves the old or the new content.
    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()>;
    /// Renames (and syncs the directory); on FAT the firmware sees the old or the new name.
    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()>;
    /// File names in a subdirectory.
    fn list(&self, dir: &str) -> std::io::Result<Vec<String>>;
    fn describe(&self, name: &str) -> String;
}

/// The real file system under a directory.
pub struct DirFs {
    root: PathBuf,
}

impl DirFs {
    pub fn new(root: &Path) -> Self {
        DirFs {
            root: root.to_path_buf(),
        }
    }
}

impl BootFs for DirFs {
    fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.root.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.root.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::fsutil::write_atomic(&path, bytes)
    }

    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        let to = self.root.join(to);
        std::fs::rename(self.root.join(from), &to)?;
        crate::fsutil::sync_dir(to.parent().unwrap_or(&self.root))
    }

    fn list(&self, dir: &str) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.root.join(dir))? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn describe(&self, name: &str) -> String {
        self.root.join(name).display().to_string()
    }
}

pub(crate) fn io_err(fs: &dyn BootFs, name: &str) -> impl Fn(std::io::Error) -> BootError {
    let path = fs.describe(name);
    move |source| BootError::Io {
        path: path.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_booted_slot_tells_a_trial_from_a_fallback() {
        let state = |trial| BootState {
            primary: Some(Slot::A),
            trial,
            bootable: vec![Slot::A, Slot::B],
        };
        assert_eq!(
            trial_outcome(&state(None), Slot::A),
            TrialOutcome::Committed
        );
        assert_eq!(
            trial_outcome(&state(Some((Slot::B, 2))), Slot::B),
            TrialOutcome::OnTrial(Slot::B)
        );
        assert_eq!(
            trial_outcome(&state(Some((Slot::B, 0))), Slot::A),
            TrialOutcome::FellBack(Slot::B)
        );
        assert_eq!(
            Slot::from_cmdline("quiet root=PARTLABEL=root-b ro"),
            Some(Slot::B)
        );
    }
}
