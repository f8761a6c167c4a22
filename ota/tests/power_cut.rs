//! Power cuts at every step of an update, including the trial boot and the commit.
//!
//! The target slot is a simulated disk with a volatile write cache: writes become durable only
//! at `sync`, and a power cut keeps an arbitrary subset of the unsynced writes (a disk may have
//! written some of them). Boot-control files go through a `BootFs` that refuses every operation
//! once the power budget is spent (an operation is atomic: temp + fsync + rename). For each
//! budget N the whole update runs — install, boot, health gate commit, boot — until the cut;
//! then the device is powered on again with the boot loader's own logic, and must boot a slot
//! whose content is complete: the old image, or the new one only if it was fully written.
#![allow(clippy::unwrap_used)]
mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::*;
use hearth_ota::boot::file::FileBoot;
use hearth_ota::boot::rpi::{PiPartitions, PiTryboot, autoboot_txt};
use hearth_ota::boot::systemd_boot::SystemdBoot;
use hearth_ota::boot::uboot::{Env, EnvStore, FileEnvStore, UBootEnv};
use hearth_ota::boot::{BootControl, BootFs, DirFs, Slot};
use hearth_ota::bundle::VerifiedBundle;
use hearth_ota::install::{InstallRequest, Target, install};
use hearth_ota::source::FileSource;
use hearth_ota::storage::{FileSlot, SlotStorage};

#[derive(Clone)]
struct Power(Rc<Cell<u64>>);

impl Power {
    fn tick(&self) -> std::io::Result<()> {
        match self.0.get() {
            0 => Err(std::io::Error::other("power cut")),
            n => {
                self.0.set(n - 1);
                Ok(())
            }
        }
    }
}

/// A disk with a volatile write cache.
#[derive(Default)]
struct Disk {
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
}

impl Disk {
    /// Power cut: keep every other unsynced write (from a seed), drop the rest.
    fn cut(&mut self, seed: u64) {
        for (i, (off, bytes)) in std::mem::take(&mut self.pending).into_iter().enumerate() {
            if (seed >> (i % 64)) & 1 == 1 {
                apply(&mut self.durable, off, &bytes);
            }
        }
    }
}

fn apply(to: &mut Vec<u8>, off: u64, bytes: &[u8]) {
    let end = off as usize + bytes.len();
    if to.len() < end {
        to.resize(end, 0);
    }
    to[off as usize..end].copy_from_slice(bytes);
}

struct SimSlot {
    disk: Rc<RefCell<Disk>>,
    power: Power,
    capacity: u64,
}

impl SlotStorage for SimSlot {
    fn capacity(&mut self) -> std::io::Result<u64> {
        Ok(self.capacity)
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let disk = self.disk.borrow();
        let (start, end) = (offset as usize, offset as usize + buf.len());
        buf.fill(0);
        let have = disk.durable.len().min(end);
        if have > start {
            buf[..have - start].copy_from_slice(&disk.durable[start..have]);
        }
        for (off, bytes) in &disk.pending {
            let (ws, we) = (*off as usize, *off as usize + bytes.len());
            let (from, to) = (ws.max(start), we.min(end));
            if from < to {
                buf[from - start..to - start].copy_from_slice(&bytes[from - ws..to - ws]);
            }
        }
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.power.tick()?;
        self.disk.borrow_mut().pending.push((offset, buf.to_vec()));
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.power.tick()?;
        let mut disk = self.disk.borrow_mut();
        for (off, bytes) in std::mem::take(&mut disk.pending) {
            apply(&mut disk.durable, off, &bytes);
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "simulated slot b".into()
    }
}

/// Boot files that stop changing when the power is cut.
struct CutFs {
    inner: DirFs,
    power: Power,
}

impl BootFs for CutFs {
    fn read(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.inner.read(name)
    }
    fn write_atomic(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.power.tick()?;
        self.inner.write_atomic(name, bytes)
    }
    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.power.tick()?;
        self.inner.rename(from, to)
    }
    fn list(&self, dir: &str) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn describe(&self, name: &str) -> String {
        self.inner.describe(name)
    }
}

struct CutEnv {
    inner: FileEnvStore,
    power: Power,
}

impl EnvStore for CutEnv {
    fn size(&self) -> usize {
        self.inner.size
    }
    fn read_copy(&mut self, copy: usize) -> std::io::Result<Vec<u8>> {
        self.inner.read_copy(copy)
    }
    fn write_copy(&mut self, copy: usize, bytes: &[u8]) -> std::io::Result<()> {
        self.power.tick()?;
        self.inner.write_copy(copy, bytes)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    File,
    SystemdBoot,
    UBoot,
    PiTryboot,
}

const PI: PiPartitions = PiPartitions { a: 2, b: 3 };

fn env_store(dir: &std::path::Path) -> FileEnvStore {
    FileEnvStore {
        copies: [(dir.join("env"), 0), (dir.join("env"), 4096)],
        size: 4096,
    }
}

fn control(backend: Backend, dir: &std::path::Path, power: &Power) -> Box<dyn BootControl> {
    let fs = CutFs {
        inner: DirFs::new(dir),
        power: power.clone(),
    };
    match backend {
        Backend::File => Box::new(FileBoot::new(fs)),
        Backend::SystemdBoot => Box::new(SystemdBoot::new(fs)),
        Backend::UBoot => Box::new(UBootEnv::new(CutEnv {
            inner: env_store(dir),
            power: power.clone(),
        })),
        Backend::PiTryboot => Box::new(PiTryboot::new(fs, PI)),
    }
}

/// Power-on with full power: the boot loader's choice. `tryboot` is the Pi's one-shot reboot
/// flag (only the reboot into a trial sets it; a power cut clears it).
fn power_on(backend: Backend, dir: &std::path::Path, tryboot: bool) -> Option<Slot> {
    match backend {
        Backend::File => FileBoot::new(DirFs::new(dir)).simulate_boot().unwrap(),
        Backend::SystemdBoot => SystemdBoot::new(DirFs::new(dir)).simulate_boot().unwrap(),
        Backend::UBoot => UBootEnv::new(env_store(dir)).simulate_boot().unwrap(),
        Backend::PiTryboot => PiTryboot::new(DirFs::new(dir), PI)
            .simulate_boot(tryboot)
            .unwrap(),
    }
}

fn factory(backend: Backend, dir: &std::path::Path) {
    match backend {
        Backend::File => FileBoot::new(DirFs::new(dir)).initialize(Slot::A).unwrap(),
        Backend::SystemdBoot => {
            std::fs::create_dir_all(dir.join("loader/entries")).unwrap();
            std::fs::write(dir.join("loader/loader.conf"), "default hearth-a.conf\n").unwrap();
            for (n, s) in [("hearth-a.conf", "a"), ("hearth-b+0-0.conf", "b")] {
                let text = format!(
                    "title Hearth\nversion 1\nsort-key hearth-{s}\nlinux /hearth/{s}/vmlinuz\n"
                );
                std::fs::write(dir.join("loader/entries").join(n), text).unwrap();
            }
        }
        Backend::UBoot => {
            std::fs::write(dir.join("env"), vec![0u8; 8192]).unwrap();
            let mut env = Env::new();
            env.insert("BOOT_ORDER".into(), "A".into());
            UBootEnv::new(env_store(dir)).write_env(&env).unwrap();
        }
        // As the image builder writes it: slot b's partition under [tryboot], b empty.
        Backend::PiTryboot => std::fs::write(dir.join("autoboot.txt"), autoboot_txt(2, 3)).unwrap(),
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    bundle_path: std::path::PathBuf,
    bundle: VerifiedBundle,
    v1: Vec<u8>,
    v2: Vec<u8>,
}

fn fixture(chunking: hearth_ota::manifest::Chunking) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let keys = keys();
    let v1 = image_bytes(1024 * 1024, 21);
    let mut v2 = v1.clone();
    // Changed (downloaded); low-entropy so that format 2 stores it compressed.
    let changed: Vec<u8> = image_bytes(200_000, 22).iter().map(|b| b & 7).collect();
    v2[40_000..240_000].copy_from_slice(&changed);
    v2[600 * 1024..700 * 1024].fill(0); // zero chunks: written, not downloaded
    let mut spec = spec(&dir, 2, &v2);
    spec.chunking = chunking;
    let bundle_path = bundle_with(&dir, &keys, &spec);
    std::fs::write(dir.join("slot-a.img"), &v1).unwrap();
    let bundle =
        hearth_ota::bundle::open(&mut FileSource::open(&bundle_path).unwrap(), &keys.trust)
            .unwrap();
    Fixture {
        _tmp: tmp,
        dir,
        bundle_path,
        bundle,
        v1,
        v2,
    }
}

/// Runs the update with `budget` operations of power; returns whether it ran to the end.
fn run(
    f: &Fixture,
    backend: Backend,
    boot_dir: &std::path::Path,
    disk: &Rc<RefCell<Disk>>,
    budget: u64,
) -> bool {
    let power = Power(Rc::new(Cell::new(budget)));
    let mut boot = control(backend, boot_dir, &power);
    let mut target = SimSlot {
        disk: disk.clone(),
        power: power.clone(),
        capacity: 1100 * 1024,
    };
    let mut active = FileSlot::open_read_only(&f.dir.join("slot-a.img")).unwrap();
    let mut src = FileSource::open(&f.bundle_path).unwrap();
    let installed = install(InstallRequest {
        bundle: &f.bundle,
        source: &mut src,
        targets: vec![Target {
            payload: "root".into(),
            target: &mut target,
            active: Some(&mut active),
        }],
        boot: &mut *boot,
        slot: Slot::B,
        progress: &mut |_| {},
    });
    if installed.is_err() {
        return false;
    }
    // Reboot into the trial; the health gate passes and commits the booted slot.
    if power.tick().is_err() {
        return false;
    }
    let tryboot = installed
        .as_ref()
        .is_ok_and(|r| r.reboot.argv().iter().any(|a| a.contains("tryboot")));
    let booted = power_on(backend, boot_dir, tryboot);
    assert_eq!(booted, Some(Slot::B), "{backend:?}: the trial did not boot");
    boot.commit(Slot::B).is_ok()
}

fn check(
    f: &Fixture,
    backend: Backend,
    budget: u64,
    boot_dir: &std::path::Path,
    disk: &Rc<RefCell<Disk>>,
) -> Vec<Option<Slot>> {
    let mut booted = Vec::new();
    for attempt in 0..4 {
        let slot = power_on(backend, boot_dir, false);
        let content = match slot {
            Some(Slot::A) => std::fs::read(f.dir.join("slot-a.img")).unwrap(),
            Some(Slot::B) => {
                disk.borrow().durable[..f.v2.len().min(disk.borrow().durable.len())].to_vec()
            }
            None => panic!("{backend:?}, cut after {budget} operations: nothing bootable"),
        };
        let ok = match slot {
            Some(Slot::A) => content == f.v1,
            _ => content == f.v2,
        };
        assert!(
            ok,
            "{backend:?}, cut after {budget} operations, boot {attempt}: slot {slot:?} is half-written"
        );
        booted.push(slot);
    }
    booted
}

/// Small chunks: many cut points.
const FIXED: hearth_ota::manifest::Chunking = hearth_ota::manifest::Chunking::Fixed { size: 4096 };
const CDC: hearth_ota::manifest::Chunking =
    hearth_ota::manifest::Chunking::Cdc(hearth_ota::manifest::CdcParams {
        min: 1024,
        avg: 4096,
        max: 16384,
    });

fn cut_everywhere(backend: Backend) -> u64 {
    cut_everywhere_with(backend, FIXED, 250)
}

/// `min_points`: the run must have cut at least this often (fewer would mean the update did
/// much less work than the fixture implies).
fn cut_everywhere_with(
    backend: Backend,
    chunking: hearth_ota::manifest::Chunking,
    min_points: u64,
) -> u64 {
    let f = fixture(chunking);
    let mut points = 0;
    for budget in 0.. {
        let boot_dir = f.dir.join(format!("boot-{budget}"));
        std::fs::create_dir_all(&boot_dir).unwrap();
        factory(backend, &boot_dir);
        // The inactive slot starts with an older, different image.
        let disk = Rc::new(RefCell::new(Disk {
            durable: image_bytes(1100 * 1024, 23),
            pending: Vec::new(),
        }));
        let finished = run(&f, backend, &boot_dir, &disk, budget);
        disk.borrow_mut()
            .cut(budget.wrapping_mul(0x9e3779b97f4a7c15));
        let booted = check(&f, backend, budget, &boot_dir, &disk);
        std::fs::remove_dir_all(&boot_dir).unwrap();
        points += 1;
        if finished {
            // With enough power the update completes and b stays committed, boot after boot.
            assert_eq!(booted, vec![Some(Slot::B); 4], "{backend:?}");
            break;
        }
    }
    println!("{backend:?} {chunking:?}: {points} cut points");
    assert!(points > min_points, "only {points} cut points");
    points
}

#[test]
fn power_cut_at_every_step_file_backend() {
    cut_everywhere(Backend::File);
}

#[test]
fn power_cut_at_every_step_systemd_boot() {
    cut_everywhere(Backend::SystemdBoot);
}

#[test]
fn power_cut_at_every_step_pi_tryboot() {
    cut_everywhere(Backend::PiTryboot);
}

#[test]
fn power_cut_at_every_step_uboot_env() {
    cut_everywhere(Backend::UBoot);
}

#[test]
fn power_cut_at_every_step_of_a_cdc_bundle_file_backend() {
    cut_everywhere_with(Backend::File, CDC, 150);
}

#[test]
fn power_cut_at_every_step_of_a_cdc_bundle_systemd_boot() {
    cut_everywhere_with(Backend::SystemdBoot, CDC, 150);
}
