//! Slots the initramfs refused at boot (dm-verity: the root did not match the root hash its
//! signed initrd carries; docs/image.md, "Verified boot"). The initramfs cannot reach the
//! agent's store, so it leaves `hearth/refused-SLOT` on the ESP (`slot=`, `at=` seconds since
//! the epoch by the RTC, `version=` the release the slot holds, `reason=`) before it falls back
//! to the other slot. At start the agent turns each record into an update-history entry of kind
//! `refused` (code `slot_refused`) and removes the file. A verity error at run time restarts the
//! machine and the next boot's full read refuses the slot, so it is reported the same way.
//! Independent of the update repository: a device without updates configured reports it too.

use super::Service;
use super::records::{HistoryEntry, HistoryKind};
use crate::clock::rfc3339;
use std::path::{Path, PathBuf};

/// The machine-readable code of a refused slot's history entry.
pub const CODE: &str = "slot_refused";

/// One record the initramfs wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub slot: String,
    /// Seconds since the epoch (the RTC's, which may be wrong); `None` when unreadable.
    pub at: Option<i64>,
    pub version: Option<String>,
    pub reason: String,
}

/// Parses a record; `None` for one that names no slot `a`/`b` (a stray or truncated file).
pub fn parse(text: &str) -> Option<Refusal> {
    let mut slot = None;
    let (mut at, mut version, mut reason) = (None, None, None);
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "slot" if v == "a" || v == "b" => slot = Some(v.to_string()),
            "at" => at = v.parse::<i64>().ok().filter(|s| *s > 0),
            "version" if !v.is_empty() => version = Some(v.chars().take(64).collect()),
            "reason" if !v.is_empty() => reason = Some(v.chars().take(500).collect()),
            _ => {}
        }
    }
    Some(Refusal {
        slot: slot?,
        at,
        version,
        reason: reason.unwrap_or_else(|| "no reason recorded".into()),
    })
}

/// The record files on the ESP `esp`, slot a first.
fn records(esp: &Path) -> Vec<PathBuf> {
    ["a", "b"]
        .iter()
        .map(|s| esp.join("hearth").join(format!("refused-{s}")))
        .filter(|p| p.is_file())
        .collect()
}

impl Service {
    /// Records every slot refusal the initramfs left on the ESP in the update history and
    /// removes its file. A record already in the history (the ESP was read-only last time) is
    /// not added twice.
    pub fn record_refused_slots(&self) {
        for path in records(&self.config.esp) {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match parse(&text) {
                Some(r) => {
                    if let Err(e) = self.push_refusal(&r) {
                        tracing::warn!(error = %e, "cannot record the refused slot {}", r.slot);
                        continue;
                    }
                    if let Err(e) = self.mark_refused(&r) {
                        // The record stays: the boot script keeps skipping the slot meanwhile.
                        tracing::warn!(error = %e, "cannot mark the refused slot {} unbootable", r.slot);
                        continue;
                    }
                    tracing::warn!(slot = %r.slot, reason = %r.reason, "the initramfs refused a slot at boot");
                }
                None => {
                    tracing::warn!(path = %path.display(), "ignoring a malformed refused-slot record")
                }
            }
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove the refused-slot record");
            }
        }
    }

    /// On U-Boot boards the initramfs cannot write the boot environment (it has no U-Boot
    /// tools, and the script skips a slot only while its record exists), so the agent marks
    /// the refused slot unbootable there before the record goes. systemd-boot's initramfs
    /// renames the slot's entry itself (`+0-0`), and the Pi's tryboot lasts one boot.
    fn mark_refused(&self, r: &Refusal) -> Result<(), super::UpdateError> {
        let Ok(release) = super::device::read_release(&self.config.release_file) else {
            return Ok(());
        };
        let backend = super::device::backend(&self.config, &release)?;
        let Some(slot) = hearth_ota::boot::Slot::parse(&r.slot) else {
            return Ok(());
        };
        if backend != super::device::BootBackend::UBoot {
            return Ok(());
        }
        super::device::boot_control(&self.config, backend)?
            .mark_unbootable(slot)
            .map_err(super::error::boot_err)
    }

    fn push_refusal(&self, r: &Refusal) -> Result<(), super::UpdateError> {
        let at =
            r.at.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .map(rfc3339)
                .unwrap_or_else(|| self.now());
        let running = super::device::read_release(&self.config.release_file)
            .map(|rel| rel.version)
            .unwrap_or_default();
        let other = if r.slot == "a" { "b" } else { "a" };
        let reason = format!(
            "slot {} was refused at boot and the device started slot {other} instead: {}",
            r.slot, r.reason
        );
        let history = self.store.update_history()?;
        if history.iter().any(|h| {
            h.kind == HistoryKind::Refused && h.at == at && h.reason.as_ref() == Some(&reason)
        }) {
            return Ok(());
        }
        self.store.push_update_history(HistoryEntry {
            id: 0,
            at,
            kind: HistoryKind::Refused,
            from_version: r.version.clone().unwrap_or_default(),
            to_version: running,
            reason: Some(reason),
            code: Some(CODE.into()),
            downloaded_bytes: 0,
            reused_bytes: 0,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const RECORD: &str = "slot=a\nat=1764729000\nversion=1.1.0\nreason=PARTLABEL=root-a does not match its root hash 00ff (dm-verity): the root is corrupt or was changed\n";

    #[test]
    fn records_parse_and_strays_do_not() {
        let r = parse(RECORD).expect("record");
        assert_eq!(r.slot, "a");
        assert_eq!(r.at, Some(1_764_729_000));
        assert_eq!(r.version.as_deref(), Some("1.1.0"));
        assert!(
            r.reason.starts_with("PARTLABEL=root-a does not match"),
            "{r:?}"
        );
        let bare = parse("slot=b\nat=garbage\nversion=\n").expect("bare");
        assert_eq!(
            (bare.at, bare.version, bare.reason.as_str()),
            (None, None, "no reason recorded")
        );
        assert_eq!(parse("slot=c\nreason=x\n"), None);
        assert_eq!(parse(""), None);
    }

    /// A service whose ESP is `<tmp>/esp` (with `hearth/`) and whose release.json names the
    /// boot backend `boot`.
    fn service_on(tmp: &Path, boot: &str) -> (Service, PathBuf) {
        let now = time::macros::datetime!(2026-03-04 05:06:07 UTC);
        let mut u = crate::update::tests::service(tmp, ManualClock::new(now));
        let esp = tmp.join("esp");
        std::fs::create_dir_all(esp.join("hearth")).expect("esp");
        u.config.esp = esp.clone();
        u.config.release_file = tmp.join("release.json");
        std::fs::write(
            &u.config.release_file,
            format!(
                r#"{{"board":"x","arch":"arm64","version":"1.0.0","version_number":1000000,"boot":"{boot}"}}"#
            ),
        )
        .expect("release");
        (u, esp)
    }

    #[test]
    fn a_refusal_becomes_one_history_entry_and_its_record_goes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (u, esp) = service_on(tmp.path(), "systemd-boot");
        std::fs::write(esp.join("hearth/refused-a"), RECORD).expect("record");
        std::fs::write(esp.join("hearth/refused-b"), "slot=x\n").expect("stray");

        u.record_refused_slots();
        let history = u.store.update_history().expect("history");
        assert_eq!(history.len(), 1, "{history:?}");
        let h = &history[0];
        assert_eq!(h.kind, HistoryKind::Refused);
        assert_eq!(h.code.as_deref(), Some(CODE));
        assert_eq!(h.at, "2025-12-03T02:30:00Z", "the initramfs' time");
        assert_eq!(
            (h.from_version.as_str(), h.to_version.as_str()),
            ("1.1.0", "1.0.0")
        );
        let reason = h.reason.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with("slot a was refused at boot and the device started slot b instead: PARTLABEL=root-a does not match"),
            "{reason}"
        );
        assert!(!esp.join("hearth/refused-a").exists(), "recorded, removed");
        assert!(!esp.join("hearth/refused-b").exists(), "malformed, removed");

        // Nothing left: a second start adds nothing; the same record again (an ESP that could
        // not be written last time) is not added twice.
        u.record_refused_slots();
        std::fs::write(esp.join("hearth/refused-a"), RECORD).expect("record");
        u.record_refused_slots();
        assert_eq!(u.store.update_history().expect("history").len(), 1);

        // Without a time the agent's clock stands in.
        std::fs::write(esp.join("hearth/refused-b"), "slot=b\nreason=cannot map\n").expect("b");
        u.record_refused_slots();
        let history = u.store.update_history().expect("history");
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].at, "2026-03-04T05:06:07Z");
        assert_eq!(history[0].from_version, "");
    }

    /// On a U-Boot board the refused slot leaves the boot environment's `BOOT_ORDER` (with
    /// `BOOT_X_LEFT=0`) before its record goes; when that write fails the record stays, so the
    /// boot script keeps skipping the slot.
    #[test]
    fn on_u_boot_a_refused_slot_is_marked_unbootable_first() {
        use hearth_ota::boot::uboot::{Env, encode};
        let tmp = tempfile::tempdir().expect("tmp");
        let (mut u, esp) = service_on(tmp.path(), "uboot");
        let boot = tmp.path().join("boot");
        std::fs::create_dir_all(&boot).expect("dir");
        u.config.boot_dir = Some(boot.clone());
        std::fs::write(esp.join("hearth/refused-a"), RECORD).expect("record");

        // No fw_env.config yet: the slot cannot be marked, the record stays.
        u.record_refused_slots();
        assert!(esp.join("hearth/refused-a").exists());

        std::fs::write(
            boot.join("fw_env.config"),
            "env 0 0x1000\nenv 0x1000 0x1000\n",
        )
        .expect("config");
        let env = Env::from([("BOOT_ORDER".to_string(), "A B".to_string())]);
        let mut bytes = encode(&env, 0x1000, 1).expect("encode");
        bytes.resize(0x2000, 0);
        std::fs::write(boot.join("env"), bytes).expect("env");
        u.record_refused_slots();
        assert!(!esp.join("hearth/refused-a").exists());
        let state =
            super::super::device::boot_state(&u.config, super::super::device::BootBackend::UBoot)
                .expect("state");
        assert!(!state.is_bootable(hearth_ota::boot::Slot::A), "{state:?}");
        assert!(state.is_bootable(hearth_ota::boot::Slot::B), "{state:?}");
        assert_eq!(u.store.update_history().expect("history").len(), 1);
    }
}
