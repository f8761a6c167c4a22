//! Raspberry Pi `tryboot`: `autoboot.txt` on the small `bootconfig` FAT partition names the
//! committed slot's boot partition under `[all]` and the trial's under `[tryboot]`. The firmware
//! uses `[tryboot]` only on the one boot after `reboot '0 tryboot'` (a one-shot flag), so a trial
//! gets exactly one boot and nothing ever counts on a committed system.
//!
//! - unbootable: `[tryboot]` points at the committed partition (a tryboot cannot reach the slot).
//! - trial: `[tryboot]` points at the slot; the caller reboots with the returned command.
//! - commit: `[all]` and `[tryboot]` both point at the slot.
//!
//! `autoboot.txt` is replaced with write-temp + fsync + rename on FAT.
use super::{BootControl, BootError, BootFs, BootState, RebootRequest, Slot, io_err};

pub const AUTOBOOT: &str = "autoboot.txt";

/// Partition numbers of each slot's boot partition (from the board config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiPartitions {
    pub a: u32,
    pub b: u32,
}

impl PiPartitions {
    fn of(&self, slot: Slot) -> u32 {
        match slot {
            Slot::A => self.a,
            Slot::B => self.b,
        }
    }

    fn slot(&self, partition: u32) -> Option<Slot> {
        Slot::ALL.into_iter().find(|s| self.of(*s) == partition)
    }
}

pub struct PiTryboot<F: BootFs> {
    fs: F,
    parts: PiPartitions,
}

/// `autoboot.txt` for a committed partition and a tryboot partition.
pub fn autoboot_txt(all: u32, tryboot: u32) -> String {
    format!(
        "# Hearth A/B boot (written by hearth-ota)\n[all]\ntryboot_a_b=1\nboot_partition={all}\n[tryboot]\nboot_partition={tryboot}\n"
    )
}

impl<F: BootFs> PiTryboot<F> {
    /// `fs` is the `bootconfig` partition's root.
    pub fn new(fs: F, parts: PiPartitions) -> Self {
        PiTryboot { fs, parts }
    }

    pub fn fs(&mut self) -> &mut F {
        &mut self.fs
    }

    /// (`[all]` partition, `[tryboot]` partition).
    fn read(&self) -> Result<(u32, u32), BootError> {
        let bytes = self
            .fs
            .read(AUTOBOOT)
            .map_err(io_err(&self.fs, AUTOBOOT))?
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let malformed = |reason: &str| BootError::Malformed {
            path: self.fs.describe(AUTOBOOT),
            reason: reason.into(),
        };
        let (mut section, mut all, mut tryboot) = (String::new(), None, None);
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
            } else if let Some(v) = line.strip_prefix("boot_partition=") {
                let n: u32 = v
                    .trim()
                    .parse()
                    .map_err(|_| malformed("boot_partition is not a number"))?;
                match section.as_str() {
                    "[tryboot]" => tryboot = Some(n),
                    _ => all = Some(n),
                }
            }
        }
        let all = all.ok_or_else(|| malformed("no boot_partition under [all]"))?;
        Ok((all, tryboot.unwrap_or(all)))
    }

    fn write(&mut self, all: u32, tryboot: u32) -> Result<(), BootError> {
        self.fs
            .write_atomic(AUTOBOOT, autoboot_txt(all, tryboot).as_bytes())
            .map_err(io_err(&self.fs, AUTOBOOT))
    }

    /// What the firmware does at power-on; `tryboot` is the one-shot flag of the last reboot.
    pub fn simulate_boot(&mut self, tryboot: bool) -> Result<Option<Slot>, BootError> {
        let (all, trial) = self.read()?;
        Ok(self.parts.slot(if tryboot { trial } else { all }))
    }
}

impl<F: BootFs> BootControl for PiTryboot<F> {
    fn state(&mut self) -> Result<BootState, BootError> {
        let (all, tryboot) = self.read()?;
        let primary = self.parts.slot(all);
        let trial = self.parts.slot(tryboot).filter(|s| Some(*s) != primary);
        let bootable = primary.into_iter().chain(trial).collect();
        Ok(BootState {
            primary,
            trial: trial.map(|s| (s, 1)),
            bootable,
        })
    }

    fn mark_unbootable(&mut self, slot: Slot) -> Result<(), BootError> {
        let (all, _) = self.read()?;
        let all = if self.parts.slot(all) == Some(slot) {
            self.parts.of(slot.other())
        } else {
            all
        };
        self.write(all, all)
    }

    fn set_trial(&mut self, slot: Slot, _version: &str) -> Result<RebootRequest, BootError> {
        let (all, _) = self.read()?;
        self.write(all, self.parts.of(slot))?;
        Ok(self.reboot_request())
    }

    fn reboot_request(&self) -> RebootRequest {
        RebootRequest::tryboot()
    }

    fn commit(&mut self, slot: Slot) -> Result<(), BootError> {
        let p = self.parts.of(slot);
        self.write(p, p)
    }
}
