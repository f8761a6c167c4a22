//! The installer starts the target's write-back behind its writes (so the disk works while the
//! next chunks are unpacked), in order, never over bytes it has not written yet, and still
//! syncs once at the end.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use hearth_ota::boot::file::FileBoot;
use hearth_ota::boot::{DirFs, Slot};
use hearth_ota::install::{InstallRequest, Target, WRITEBACK_BYTES, install};
use hearth_ota::source::FileSource;
use hearth_ota::storage::{FileSlot, SlotStorage};

/// A file slot that records what the installer asked of it.
struct Recording {
    inner: FileSlot,
    written_to: u64,
    writebacks: Vec<(u64, u64)>,
    syncs: usize,
}

impl SlotStorage for Recording {
    fn capacity(&mut self) -> std::io::Result<u64> {
        self.inner.capacity()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.written_to = self.written_to.max(offset + buf.len() as u64);
        self.inner.write_at(offset, buf)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.syncs += 1;
        self.inner.sync()
    }
    fn start_writeback(&mut self, offset: u64, len: u64) {
        assert!(
            offset + len <= self.written_to,
            "write-back of {offset}+{len} started before those bytes were written ({})",
            self.written_to
        );
        self.writebacks.push((offset, len));
        self.inner.start_writeback(offset, len);
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[test]
fn write_back_is_started_in_order_behind_the_writes_and_the_slot_is_still_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keys = keys();
    let size = 3 * WRITEBACK_BYTES as usize + WRITEBACK_BYTES as usize / 2;
    let image = image_bytes(size, 7);
    let path = bundle_with(dir, &keys, &spec_v2(dir, 2, &image));
    let mut src = FileSource::open(&path).unwrap();
    let bundle = hearth_ota::bundle::open(&mut src, &keys.trust).unwrap();
    std::fs::write(dir.join("slot-b.img"), b"").unwrap();
    let mut target = Recording {
        inner: FileSlot::open(&dir.join("slot-b.img")).unwrap(),
        written_to: 0,
        writebacks: Vec::new(),
        syncs: 0,
    };
    install_root(dir, &bundle, &mut src, &mut target).0.unwrap();
    assert_eq!(std::fs::read(dir.join("slot-b.img")).unwrap(), image);
    assert_eq!(target.syncs, 1);
    assert_eq!(target.writebacks.len(), 3, "{:?}", target.writebacks);
    let mut from = 0;
    for &(offset, len) in &target.writebacks {
        assert_eq!(offset, from, "{:?}", target.writebacks);
        assert!(len >= WRITEBACK_BYTES);
        from = offset + len;
    }
}

/// A root squashfs holds the kernel and initrd in /boot, stored raw: a new initrd used to be
/// downloaded twice, once inside the root and once as its own payload.
#[test]
fn a_payload_whose_content_an_earlier_payload_holds_is_copied_not_downloaded_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keys = keys();
    let initrd = image_bytes(1_500_000, 21);
    let mut root = image_bytes(600_000, 22);
    root.extend_from_slice(&initrd);
    root.extend_from_slice(&image_bytes(400_000, 23));
    std::fs::write(dir.join("initrd.img"), &initrd).unwrap();
    let mut spec = spec_v2(dir, 2, &root);
    spec.payloads
        .push(("initrd".into(), dir.join("initrd.img")));
    let path = bundle_with(dir, &keys, &spec);
    let mut src = FileSource::open(&path).unwrap();
    let bundle = hearth_ota::bundle::open(&mut src, &keys.trust).unwrap();
    for name in ["root-b", "initrd-b"] {
        std::fs::write(dir.join(name), b"").unwrap();
    }
    let mut root_b = FileSlot::open(&dir.join("root-b")).unwrap();
    let mut initrd_b = FileSlot::open(&dir.join("initrd-b")).unwrap();
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    let mut boot = FileBoot::new(DirFs::new(&dir.join("boot")));
    boot.initialize(Slot::A).unwrap();
    let report = install(InstallRequest {
        bundle: &bundle,
        source: &mut src,
        targets: vec![
            Target {
                payload: "root".into(),
                target: &mut root_b,
                active: None,
            },
            Target {
                payload: "initrd".into(),
                target: &mut initrd_b,
                active: None,
            },
        ],
        boot: &mut boot,
        slot: Slot::B,
        progress: &mut |_| {},
    })
    .unwrap();
    assert_eq!(std::fs::read(dir.join("root-b")).unwrap(), root);
    assert_eq!(std::fs::read(dir.join("initrd-b")).unwrap(), initrd);
    // Only the chunks around the initrd's two edges in the root cut differently.
    let root_stored: u64 = bundle.manifest.payloads[0]
        .chunks
        .iter()
        .map(|c| u64::from(c.stored))
        .sum();
    assert!(
        report.plan.download_bytes < root_stored + 100_000,
        "downloaded {} of which root {root_stored}",
        report.plan.download_bytes
    );
}
