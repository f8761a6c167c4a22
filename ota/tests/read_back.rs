//! The installer reads every chunk back from the target and checks it before the slot is made
//! bootable. With a target that can be read from a second thread (a file or block device), the
//! read-back runs beside the writes, window by window; otherwise after the sync. Either way a
//! chunk that does not read back as signed fails the install and leaves the slot unbootable.
#![allow(clippy::unwrap_used)]
mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use hearth_ota::boot::{BootControl, BootState, Slot};
use hearth_ota::install::{InstallError, WRITEBACK_BYTES};
use hearth_ota::source::FileSource;
use hearth_ota::storage::{FileSlot, SlotStorage};

/// What the test's reads have seen, shared by the target and its second handle.
#[derive(Default)]
struct Seen {
    reads_after_plan: Mutex<u64>,
    read: Condvar,
}

/// A file slot whose reads return one byte flipped at `bad` (a disk that does not keep what it
/// was given). `concurrent`: it offers handles for the writer and read-back threads; through
/// them, the last write waits (up to 10 s) for a read-back read, so the test knows the
/// read-back ran beside the writes rather than after them.
struct Flaky {
    inner: FileSlot,
    bad: Option<u64>,
    concurrent: bool,
    end: u64,
    /// A handle: its reads are the read-back's, its last write waits for one.
    planned: bool,
    seen: Arc<Seen>,
    overlapped: Arc<Mutex<Option<bool>>>,
}

impl SlotStorage for Flaky {
    fn capacity(&mut self) -> std::io::Result<u64> {
        self.inner.capacity()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)?;
        if let Some(bad) = self.bad
            && (offset..offset + buf.len() as u64).contains(&bad)
        {
            buf[(bad - offset) as usize] ^= 0x40;
        }
        if self.planned {
            *self.seen.reads_after_plan.lock().unwrap() += 1;
            self.seen.read.notify_all();
        }
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, buf)?;
        if offset + buf.len() as u64 == self.end && self.planned {
            let reads = self.seen.reads_after_plan.lock().unwrap();
            let (reads, _) = self
                .seen
                .read
                .wait_timeout_while(reads, Duration::from_secs(10), |n| *n == 0)
                .unwrap();
            *self.overlapped.lock().unwrap() = Some(*reads > 0);
        }
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.inner.sync()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn handle(&self) -> Option<Box<dyn SlotStorage + Send>> {
        if !self.concurrent {
            return None;
        }
        Some(Box::new(Flaky {
            inner: FileSlot::open(std::path::Path::new(&self.inner.describe())).unwrap(),
            bad: self.bad,
            concurrent: false,
            end: self.end,
            planned: true,
            seen: self.seen.clone(),
            overlapped: self.overlapped.clone(),
        }))
    }
}

/// Installs a 3.5-window image into an empty file slot in `dir` whose reads flip the byte at
/// `bad`; returns the result, whether the read-back ran beside the writes (concurrent only)
/// and the boot state after.
fn run(
    dir: &std::path::Path,
    concurrent: bool,
    bad: Option<u64>,
) -> (Result<(), InstallError>, Option<bool>, BootState) {
    let keys = keys();
    let size = 3 * WRITEBACK_BYTES as usize + WRITEBACK_BYTES as usize / 2;
    let image = image_bytes(size, 11);
    let path = bundle_with(dir, &keys, &spec_v2(dir, 2, &image));
    let mut src = FileSource::open(&path).unwrap();
    let bundle = hearth_ota::bundle::open(&mut src, &keys.trust).unwrap();
    std::fs::write(dir.join("slot-b.img"), b"").unwrap();
    let overlapped = Arc::new(Mutex::new(None));
    let mut target = Flaky {
        inner: FileSlot::open(&dir.join("slot-b.img")).unwrap(),
        bad,
        concurrent,
        end: size as u64,
        planned: false,
        seen: Arc::new(Seen::default()),
        overlapped: overlapped.clone(),
    };
    let (result, mut boot) = install_root(dir, &bundle, &mut src, &mut target);
    let result = result.map(|_| ());
    if result.is_ok() {
        assert_eq!(std::fs::read(dir.join("slot-b.img")).unwrap(), image);
    }
    let overlapped = *overlapped.lock().unwrap();
    (result, overlapped, boot.state().unwrap())
}

#[test]
fn a_file_target_is_read_back_beside_the_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (result, overlapped, state) = run(tmp.path(), true, None);
    result.unwrap();
    assert_eq!(
        overlapped,
        Some(true),
        "no chunk was read back before the last write"
    );
    assert_eq!(state.trial.map(|(slot, _)| slot), Some(Slot::B));
}

#[test]
fn a_chunk_that_does_not_read_back_as_signed_fails_the_install_either_way() {
    // In the second window: the read-back thread has it long before the writes end.
    let bad = WRITEBACK_BYTES + 12_345;
    for concurrent in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let (result, _, state) = run(tmp.path(), concurrent, Some(bad));
        match result {
            Err(InstallError::ReadBack { payload, .. }) => assert_eq!(payload, "root"),
            other => panic!("concurrent {concurrent}: {other:?}"),
        }
        assert!(
            state.primary == Some(Slot::A) && state.trial.is_none() && !state.is_bootable(Slot::B),
            "concurrent {concurrent}: {state:?}"
        );
    }
}
