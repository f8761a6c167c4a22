//! systemd-boot with boot counting (the Boot Loader Specification's `+LEFT-DONE` file-name
//! suffix) on the ESP. The image builder writes `loader/entries/hearth-a.conf` (committed) and
//! `hearth-b+0-0.conf` (empty slot, "bad"), and `loader/loader.conf` with `default hearth-a.conf`.
//!
//! - unbootable: the slot's entry is renamed to `hearth-X+0-0.conf`; bad entries sort last and
//!   are never chosen while a good one exists.
//! - trial: the entry gets `sort-key hearth-0` (sorts before every committed entry: those have
//!   `hearth-1`, or `hearth-a`/`hearth-b` from the image builder), is renamed to
//!   `hearth-X+3-0.conf`, and `loader.conf` says `default hearth-*` (the first good entry in
//!   sort order). systemd-boot counts the trial down; at `+0-3` it sorts last and the committed
//!   entry boots again. Committed entries carry no counter, so they are never counted.
//! - commit: what `systemd-bless-boot` does (rename to `hearth-X.conf`), plus `sort-key
//!   hearth-1` and `default hearth-X.conf`.
//!
//! Boards with unified kernel images (image/src/uki.rs) have type 2 entries instead: the
//! slot's UKI itself, `EFI/Linux/hearth-X[+LEFT-DONE].efi`, renamed the same way (an empty
//! slot's is an empty placeholder file systemd-boot skips). Their title, version and sort key
//! come from the signed UKI's `.osrel` (sort key `hearth`, version the release), so nothing is
//! edited: a trial sorts first because its release is newer than the committed one (Hearth
//! installs only newer releases), and `default hearth-*` picks it. Which kind a device has is
//! seen from the ESP: any `EFI/Linux/hearth-[ab]*.efi` means type 2.
use std::cmp::Ordering;

use super::{BootControl, BootError, BootFs, BootState, RebootRequest, Slot, TRIAL_TRIES, io_err};

pub const ENTRIES: &str = "loader/entries";
/// Where type 2 entries (UKIs) live.
pub const UKI_ENTRIES: &str = "EFI/Linux";
pub const LOADER_CONF: &str = "loader/loader.conf";
const TRIAL_SORT_KEY: &str = "hearth-0";
const COMMITTED_SORT_KEY: &str = "hearth-1";

/// One of our loader entries, parsed from its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub file: String,
    pub slot: Slot,
    pub tries_left: Option<u32>,
    pub tries_done: u32,
    /// `conf` (type 1) or `efi` (type 2, a UKI).
    pub ext: &'static str,
}

impl Entry {
    /// Parses `hearth-b.conf`, `hearth-b+3.conf`, `hearth-b+2-1.conf` (and the same `.efi`).
    pub fn parse(file: &str) -> Option<Entry> {
        let rest = file.strip_prefix("hearth-")?;
        let (stem, ext) = match rest.strip_suffix(".conf") {
            Some(stem) => (stem, "conf"),
            None => (rest.strip_suffix(".efi")?, "efi"),
        };
        let (letter, counter) = match stem.split_once('+') {
            Some((l, c)) => (l, Some(c)),
            None => (stem, None),
        };
        let slot = Slot::parse(letter).filter(|_| letter.len() == 1)?;
        let (tries_left, tries_done) = match counter {
            None => (None, 0),
            Some(c) => match c.split_once('-') {
                Some((l, d)) => (Some(l.parse().ok()?), d.parse().ok()?),
                None => (Some(c.parse().ok()?), 0),
            },
        };
        Some(Entry {
            file: file.to_string(),
            slot,
            tries_left,
            tries_done,
            ext,
        })
    }

    pub fn id(&self) -> String {
        format!("hearth-{}.{}", self.slot.letter(), self.ext)
    }

    pub fn is_bad(&self) -> bool {
        self.tries_left == Some(0)
    }

    fn name(slot: Slot, counter: Option<(u32, u32)>, ext: &str) -> String {
        match counter {
            Some((left, done)) => format!("hearth-{}+{left}-{done}.{ext}", slot.letter()),
            None => format!("hearth-{}.{ext}", slot.letter()),
        }
    }
}

pub struct SystemdBoot<F: BootFs> {
    fs: F,
}

impl<F: BootFs> SystemdBoot<F> {
    /// `fs` is the ESP (the directory holding `loader/`).
    pub fn new(fs: F) -> Self {
        SystemdBoot { fs }
    }

    pub fn fs(&mut self) -> &mut F {
        &mut self.fs
    }

    /// The entries of the kind this ESP has: type 2 (UKIs in `EFI/Linux`) when there are
    /// any, else type 1.
    fn entries(&self) -> Result<Vec<Entry>, BootError> {
        let ukis: Vec<Entry> = self
            .fs
            .list(UKI_ENTRIES)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| Entry::parse(n))
            .filter(|e| e.ext == "efi")
            .collect();
        if !ukis.is_empty() {
            return Ok(ukis);
        }
        let names = self.fs.list(ENTRIES).map_err(io_err(&self.fs, ENTRIES))?;
        Ok(names
            .iter()
            .filter_map(|n| Entry::parse(n))
            .filter(|e| e.ext == "conf")
            .collect())
    }

    /// The entry file names' extension on this ESP.
    fn ext(&self) -> Result<&'static str, BootError> {
        Ok(self.entries()?.first().map_or("conf", |e| e.ext))
    }

    fn entry(&self, slot: Slot) -> Result<Entry, BootError> {
        self.entries()?
            .into_iter()
            .find(|e| e.slot == slot)
            .ok_or_else(|| BootError::Malformed {
                path: self.fs.describe(ENTRIES),
                reason: format!("no loader entry for slot {}", slot.letter()),
            })
    }

    fn path(file: &str) -> String {
        if file.ends_with(".efi") {
            format!("{UKI_ENTRIES}/{file}")
        } else {
            format!("{ENTRIES}/{file}")
        }
    }

    fn read_text(&self, name: &str) -> Result<String, BootError> {
        let bytes = self.fs.read(name).map_err(io_err(&self.fs, name))?;
        Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
    }

    fn default_pattern(&self) -> Result<Option<String>, BootError> {
        Ok(key_value(&self.read_text(LOADER_CONF)?, "default"))
    }

    fn set_default(&mut self, pattern: &str) -> Result<(), BootError> {
        let text = set_key(&self.read_text(LOADER_CONF)?, "default", pattern);
        self.fs
            .write_atomic(LOADER_CONF, text.as_bytes())
            .map_err(io_err(&self.fs, LOADER_CONF))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), BootError> {
        if from == to {
            return Ok(());
        }
        self.fs
            .rename(&Self::path(from), &Self::path(to))
            .map_err(io_err(&self.fs, &Self::path(from)))
    }

    /// Rewrites lines of an entry in place (atomically), keeping everything else. A type 2
    /// entry (a signed UKI) is never edited.
    fn edit_entry(&mut self, file: &str, edits: &[(&str, &str)]) -> Result<(), BootError> {
        if file.ends_with(".efi") {
            return Ok(());
        }
        let mut text = self.read_text(&Self::path(file))?;
        for (key, value) in edits {
            text = set_key(&text, key, value);
        }
        self.fs
            .write_atomic(&Self::path(file), text.as_bytes())
            .map_err(io_err(&self.fs, &Self::path(file)))
    }

    /// The entries in systemd-boot's menu order (bad last, then sort-key, version, id).
    fn sorted(&self) -> Result<Vec<(Entry, String, String)>, BootError> {
        let mut list = Vec::new();
        for e in self.entries()? {
            let (key, version) = if e.ext == "efi" {
                // A UKI's sort key and version are in its `.osrel` (section of a 50 MB file,
                // not read here): the same sort key for both slots; version order is
                // approximated by the trial first (a trial is always the newer release).
                let v = if e.tries_left.is_some_and(|l| l > 0) {
                    "1"
                } else {
                    "0"
                };
                ("hearth".to_string(), v.to_string())
            } else {
                let text = self.read_text(&Self::path(&e.file))?;
                let key = key_value(&text, "sort-key").unwrap_or_default();
                let version = key_value(&text, "version").unwrap_or_default();
                (key, version)
            };
            list.push((e, key, version));
        }
        list.sort_by(|(a, ka, va), (b, kb, vb)| {
            a.is_bad()
                .cmp(&b.is_bad())
                .then_with(|| ka.is_empty().cmp(&kb.is_empty()))
                .then_with(|| ka.cmp(kb))
                .then_with(|| version_cmp(vb, va))
                .then_with(|| b.id().cmp(&a.id()))
        });
        Ok(list)
    }

    /// The entry systemd-boot picks: the first in menu order matching `default`, else the first.
    fn select(&self) -> Result<Option<Entry>, BootError> {
        let sorted = self.sorted()?;
        let pattern = self.default_pattern()?;
        let hit = pattern
            .as_deref()
            .and_then(|p| sorted.iter().find(|(e, _, _)| glob(p, &e.id())))
            .or(sorted.first());
        Ok(hit.map(|(e, _, _)| e.clone()))
    }

    /// What systemd-boot does at power-on: pick an entry and count a counted one down.
    pub fn simulate_boot(&mut self) -> Result<Option<Slot>, BootError> {
        let Some(e) = self.select()? else {
            return Ok(None);
        };
        if let Some(left) = e.tries_left.filter(|l| *l > 0) {
            self.rename(
                &e.file,
                &Entry::name(e.slot, Some((left - 1, e.tries_done + 1)), e.ext),
            )?;
        }
        Ok(Some(e.slot))
    }
}

impl<F: BootFs> BootControl for SystemdBoot<F> {
    fn state(&mut self) -> Result<BootState, BootError> {
        let entries = self.entries()?;
        let bootable = entries
            .iter()
            .filter(|e| !e.is_bad())
            .map(|e| e.slot)
            .collect();
        // `+0-0` is a slot marked unbootable before anything was tried (a fresh image's empty
        // slot, an install in progress, a trial the health gate failed): not a trial record.
        let trial = entries
            .iter()
            .filter(|e| !(e.tries_left == Some(0) && e.tries_done == 0))
            .find_map(|e| e.tries_left.map(|l| (e.slot, l)));
        let primary = match self.default_pattern()? {
            Some(p) if !p.contains('*') => {
                entries.iter().find(|e| glob(&p, &e.id())).map(|e| e.slot)
            }
            _ => self
                .sorted()?
                .into_iter()
                .find(|(e, _, _)| e.tries_left.is_none())
                .map(|(e, _, _)| e.slot),
        };
        Ok(BootState {
            primary,
            trial,
            bootable,
        })
    }

    fn mark_unbootable(&mut self, slot: Slot) -> Result<(), BootError> {
        let ext = self.ext()?;
        if self.state()?.primary == Some(slot) {
            self.set_default(&Entry::name(slot.other(), None, ext))?;
        }
        let e = self.entry(slot)?;
        self.rename(&e.file, &Entry::name(slot, Some((0, 0)), e.ext))
    }

    fn set_trial(&mut self, slot: Slot, version: &str) -> Result<RebootRequest, BootError> {
        let e = self.entry(slot)?;
        let title = format!("Hearth {version} (slot {})", slot.letter());
        self.edit_entry(
            &e.file,
            &[
                ("title", &title),
                ("version", version),
                ("sort-key", TRIAL_SORT_KEY),
            ],
        )?;
        self.rename(&e.file, &Entry::name(slot, Some((TRIAL_TRIES, 0)), e.ext))?;
        self.set_default("hearth-*")?;
        Ok(self.reboot_request())
    }

    fn commit(&mut self, slot: Slot) -> Result<(), BootError> {
        let e = self.entry(slot)?;
        // `+0-0` was marked unbootable and never tried; `+0-3` may be the boot running now.
        if e.tries_left == Some(0) && e.tries_done == 0 {
            return Err(BootError::NotBootable(slot));
        }
        self.edit_entry(&e.file, &[("sort-key", COMMITTED_SORT_KEY)])?;
        self.rename(&e.file, &Entry::name(slot, None, e.ext))?;
        self.set_default(&Entry::name(slot, None, e.ext))
    }
}

/// The value of the first `key value` line.
fn key_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.trim().split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// Sets `key value`, replacing the first such line or appending one.
fn set_key(text: &str, key: &str, value: &str) -> String {
    let mut out = Vec::new();
    let mut done = false;
    for l in text.lines() {
        let k = l.split_whitespace().next().unwrap_or("");
        if k == key {
            if !done {
                out.push(format!("{key} {value}"));
                done = true;
            }
        } else {
            out.push(l.to_string());
        }
    }
    if !done {
        out.push(format!("{key} {value}"));
    }
    out.join("\n") + "\n"
}

/// `*` matches any run of characters; the only wildcard Hearth writes.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, post)) => {
            s.len() >= pre.len() + post.len() && s.starts_with(pre) && s.ends_with(post)
        }
    }
}

/// Version order: digit runs compare as numbers (like `strverscmp`).
fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() && !b.is_empty() {
        if a[0].is_ascii_digit() && b[0].is_ascii_digit() {
            let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
            let ord = da.len().cmp(&db.len()).then(da.cmp(db));
            if ord != Ordering::Equal {
                return ord;
            }
            a = &a[na..];
            b = &b[nb..];
        } else {
            if a[0] != b[0] {
                return a[0].cmp(&b[0]);
            }
            a = &a[1..];
            b = &b[1..];
        }
    }
    a.len().cmp(&b.len())
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|c| **c == b'0').count();
    &d[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_parse_like_the_boot_loader_spec() {
        let e = Entry::parse("hearth-b+2-1.conf").expect("entry");
        assert_eq!(
            (e.slot, e.tries_left, e.tries_done, e.id()),
            (Slot::B, Some(2), 1, "hearth-b.conf".into())
        );
        assert_eq!(
            Entry::parse("hearth-a.conf").map(|e| e.tries_left),
            Some(None)
        );
        assert_eq!(
            Entry::parse("hearth-a+3.conf").map(|e| e.tries_left),
            Some(Some(3))
        );
        assert!(Entry::parse("hearth-c.conf").is_none());
        assert!(Entry::parse("hearth-ab.conf").is_none());
        assert!(Entry::parse("other.conf").is_none());
    }

    #[test]
    fn an_untried_unbootable_entry_is_not_a_failed_trial() {
        let tmp = tempfile::tempdir().expect("tmp");
        let esp = tmp.path();
        std::fs::create_dir_all(esp.join(ENTRIES)).expect("dir");
        std::fs::write(esp.join(LOADER_CONF), "default hearth-a.conf\n").expect("loader");
        std::fs::write(esp.join(ENTRIES).join("hearth-a.conf"), "title a\n").expect("a");
        std::fs::write(esp.join(ENTRIES).join("hearth-b+0-0.conf"), "title b\n").expect("b");
        let mut boot = SystemdBoot::new(super::super::DirFs::new(esp));
        let state = boot.state().expect("state");
        assert_eq!(
            (state.primary, state.trial, state.bootable.clone()),
            (Some(Slot::A), None, vec![Slot::A])
        );
        assert_eq!(
            super::super::trial_outcome(&state, Slot::A),
            super::super::TrialOutcome::Committed
        );
        // A trial that used up its tries is a fallback, though.
        std::fs::rename(
            esp.join(ENTRIES).join("hearth-b+0-0.conf"),
            esp.join(ENTRIES).join("hearth-b+0-3.conf"),
        )
        .expect("rename");
        let state = boot.state().expect("state");
        assert_eq!(state.trial, Some((Slot::B, 0)));
        assert_eq!(
            super::super::trial_outcome(&state, Slot::A),
            super::super::TrialOutcome::FellBack(Slot::B)
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(version_cmp("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(version_cmp("1.2", "1.2"), Ordering::Equal);
        assert!(glob("hearth-*", "hearth-b.conf") && !glob("hearth-a.conf", "hearth-b.conf"));
    }

    #[test]
    fn uki_entries_are_counted_renamed_and_never_edited() {
        use super::super::BootControl;
        let tmp = tempfile::tempdir().expect("tmp");
        let esp = tmp.path();
        let ukis = esp.join(UKI_ENTRIES);
        std::fs::create_dir_all(&ukis).expect("dir");
        std::fs::create_dir_all(esp.join(ENTRIES)).expect("dir");
        std::fs::write(esp.join(LOADER_CONF), "timeout 2\ndefault hearth-a.efi\n").expect("loader");
        std::fs::write(ukis.join("hearth-a.efi"), "MZ a").expect("a");
        std::fs::write(ukis.join("hearth-b+0-0.efi"), "").expect("b");
        let mut boot = SystemdBoot::new(super::super::DirFs::new(esp));
        let state = boot.state().expect("state");
        assert_eq!(
            (state.primary, state.bootable.clone()),
            (Some(Slot::A), vec![Slot::A])
        );
        assert_eq!(
            Entry::parse("hearth-b+2-1.efi").map(|e| e.id()),
            Some("hearth-b.efi".to_string())
        );

        // The updater wrote slot b's UKI into its placeholder; a trial renames it, no edit.
        std::fs::write(ukis.join("hearth-b+0-0.efi"), "MZ b").expect("b");
        boot.set_trial(Slot::B, "2.0").expect("trial");
        assert_eq!(
            std::fs::read(ukis.join("hearth-b+3-0.efi")).expect("b"),
            b"MZ b"
        );
        let conf = std::fs::read_to_string(esp.join(LOADER_CONF)).expect("conf");
        assert!(conf.contains("default hearth-*"), "{conf}");
        // systemd-boot boots the trial (sorted first) and counts it down.
        assert_eq!(boot.simulate_boot().expect("boot"), Some(Slot::B));
        assert!(ukis.join("hearth-b+2-1.efi").is_file());
        assert_eq!(boot.state().expect("state").trial, Some((Slot::B, 2)));
        boot.commit(Slot::B).expect("commit");
        assert!(ukis.join("hearth-b.efi").is_file());
        let conf = std::fs::read_to_string(esp.join(LOADER_CONF)).expect("conf");
        assert!(conf.contains("default hearth-b.efi"), "{conf}");
        assert_eq!(boot.state().expect("state").primary, Some(Slot::B));
        assert_eq!(
            std::fs::read(ukis.join("hearth-b.efi")).expect("b"),
            b"MZ b"
        );
        // Marking a unbootable renames its UKI.
        boot.mark_unbootable(Slot::A).expect("bad");
        assert!(ukis.join("hearth-a+0-0.efi").is_file());
        assert!(
            std::fs::read_dir(esp.join(ENTRIES))
                .expect("dir")
                .next()
                .is_none(),
            "no type 1 entry written"
        );
    }

    #[test]
    fn a_failed_uki_trial_falls_back_to_the_committed_slot() {
        use super::super::BootControl;
        let tmp = tempfile::tempdir().expect("tmp");
        let esp = tmp.path();
        let ukis = esp.join(UKI_ENTRIES);
        std::fs::create_dir_all(&ukis).expect("dir");
        std::fs::create_dir_all(esp.join("loader")).expect("dir");
        std::fs::write(esp.join(LOADER_CONF), "default hearth-a.efi\n").expect("loader");
        std::fs::write(ukis.join("hearth-a.efi"), "MZ a").expect("a");
        std::fs::write(ukis.join("hearth-b+0-0.efi"), "MZ b").expect("b");
        let mut boot = SystemdBoot::new(super::super::DirFs::new(esp));
        boot.set_trial(Slot::B, "2.0").expect("trial");
        for _ in 0..TRIAL_TRIES {
            assert_eq!(boot.simulate_boot().expect("boot"), Some(Slot::B));
        }
        assert_eq!(
            boot.simulate_boot().expect("boot"),
            Some(Slot::A),
            "tries used up"
        );
        assert!(ukis.join(format!("hearth-b+0-{TRIAL_TRIES}.efi")).is_file());
    }
}
