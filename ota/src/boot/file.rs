//! File-backed boot control (tests, and boards without a supported boot loader): one JSON
//! state file replaced atomically. `simulate_boot` is the boot loader this file stands for.
use serde::{Deserialize, Serialize};

use super::{BootControl, BootError, BootFs, BootState, RebootRequest, Slot, TRIAL_TRIES, io_err};

pub const STATE_FILE: &str = "boot-state.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    primary: Option<Slot>,
    trial: Option<(Slot, u32)>,
    bootable: Vec<Slot>,
}

pub struct FileBoot<F: BootFs> {
    fs: F,
}

impl<F: BootFs> FileBoot<F> {
    pub fn new(fs: F) -> Self {
        FileBoot { fs }
    }

    /// A fresh device: `primary` holds the factory image, the other slot is empty.
    pub fn initialize(&mut self, primary: Slot) -> Result<(), BootError> {
        self.save(&StateFile {
            primary: Some(primary),
            trial: None,
            bootable: vec![primary],
        })
    }

    pub fn fs(&mut self) -> &mut F {
        &mut self.fs
    }

    fn load(&self) -> Result<StateFile, BootError> {
        let bytes = self
            .fs
            .read(STATE_FILE)
            .map_err(io_err(&self.fs, STATE_FILE))?;
        let bytes = bytes.ok_or_else(|| BootError::Malformed {
            path: self.fs.describe(STATE_FILE),
            reason: "missing".into(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| BootError::Malformed {
            path: self.fs.describe(STATE_FILE),
            reason: e.to_string(),
        })
    }

    fn save(&mut self, s: &StateFile) -> Result<(), BootError> {
        let bytes = serde_json::to_vec(s).unwrap_or_default();
        self.fs
            .write_atomic(STATE_FILE, &bytes)
            .map_err(io_err(&self.fs, STATE_FILE))
    }

    /// What the boot loader does at power-on: try a pending trial (counting it down), else the
    /// primary slot, else any bootable slot. `None`: nothing bootable.
    pub fn simulate_boot(&mut self) -> Result<Option<Slot>, BootError> {
        let mut s = self.load()?;
        if let Some((slot, left)) = s.trial
            && left > 0
            && s.bootable.contains(&slot)
        {
            s.trial = Some((slot, left - 1));
            self.save(&s)?;
            return Ok(Some(slot));
        }
        let pick = s
            .primary
            .filter(|p| s.bootable.contains(p))
            .or_else(|| s.bootable.first().copied());
        Ok(pick)
    }
}

impl<F: BootFs> BootControl for FileBoot<F> {
    fn state(&mut self) -> Result<BootState, BootError> {
        let s = self.load()?;
        Ok(BootState {
            primary: s.primary,
            trial: s.trial,
            bootable: s.bootable,
        })
    }

    fn mark_unbootable(&mut self, slot: Slot) -> Result<(), BootError> {
        let mut s = self.load()?;
        s.bootable.retain(|b| *b != slot);
        if s.trial.map(|t| t.0) == Some(slot) {
            s.trial = None;
        }
        if s.primary == Some(slot) {
            s.primary = s.bootable.first().copied();
        }
        self.save(&s)
    }

    fn set_trial(&mut self, slot: Slot, _version: &str) -> Result<RebootRequest, BootError> {
        let mut s = self.load()?;
        if !s.bootable.contains(&slot) {
            s.bootable.push(slot);
        }
        s.trial = Some((slot, TRIAL_TRIES));
        self.save(&s)?;
        Ok(self.reboot_request())
    }

    fn commit(&mut self, slot: Slot) -> Result<(), BootError> {
        let mut s = self.load()?;
        if !s.bootable.contains(&slot) {
            return Err(BootError::NotBootable(slot));
        }
        s.primary = Some(slot);
        s.trial = None;
        self.save(&s)
    }
}
