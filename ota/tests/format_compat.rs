//! Moving the fleet from bundle format 1 to format 2 (`docs/ota-bundle.md`, "Versioning"):
//! devices on 0.1 read only `index.hidx` and format-1 bundles, so the first release of format 2
//! is also published in format 1. These tests pin that the format-1 bundle this build writes
//! is byte for byte what 0.1 wrote, that a device following the format-1 index installs it,
//! and that once updated it follows the format-2 index without tripping the replay check.
#![allow(clippy::unwrap_used)]
mod common;

use common::http_server;
use common::*;
use hearth_ota::boot::file::FileBoot;
use hearth_ota::boot::{DirFs, Slot};
use hearth_ota::decide::{self, Decision, Device};
use hearth_ota::http::{HttpSource, bundle_url, fetch_index, index_url, index_url_for};
use hearth_ota::index::{AcceptedIndex, INDEX_FILE, INDEX_FILE_V3, SeenIndex};
use hearth_ota::install::{InstallRequest, Target, install};
use hearth_ota::manifest::Chunking;
use hearth_ota::storage::FileSlot;

/// Length and BLAKE3 of the bundle below as written by hearth-ota 0.1 (commit 89ec53b, before
/// format 2 existed): deterministic keys, time and content, and ed25519 signatures are
/// deterministic too.
const GOLDEN_V1: (usize, &str) = (
    54096,
    "f3c5b2f4f30020c9c2b7de6b393b7e0f50633d405005a66b7a8e52f1d2a07907",
);

/// Length and BLAKE3 of the format-2 bundle below, recorded when format 3 was added (the
/// format-2 writer was left as main ad4b78a had it: only the format-3 path is new): devices on
/// format 2 must keep reading what the bridge release publishes for them, so any change to
/// these bytes is a format change.
const GOLDEN_V2: (usize, &str) = (
    204096,
    "8f98e754f3f4e3ccb22dd43c6f3204898847c1c7e05e8e1ceeb5e67e9a37fb5e",
);

#[test]
fn a_format_2_bundle_is_byte_for_byte_what_format_2_releases_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let spec = spec_v2(dir.path(), 3, &image_bytes(200_000, 7));
    let bytes = std::fs::read(bundle_with(dir.path(), &keys, &spec)).unwrap();
    assert_eq!(
        (
            bytes.len(),
            blake3::hash(&bytes).to_hex().to_string().as_str()
        ),
        GOLDEN_V2
    );
}

#[test]
fn a_format_1_bundle_is_byte_for_byte_what_0_1_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let mut spec = spec(dir.path(), 3, &image_bytes(50_000, 7));
    spec.chunking = Chunking::Fixed { size: 4096 };
    let bytes = std::fs::read(bundle_with(dir.path(), &keys, &spec)).unwrap();
    assert_eq!(
        (
            bytes.len(),
            blake3::hash(&bytes).to_hex().to_string().as_str()
        ),
        GOLDEN_V1
    );
}

fn device(version_number: u64) -> Device {
    Device {
        board: "qemu-x86_64".into(),
        arch: "x86_64".into(),
        version_number,
    }
}

struct Rig {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    keys: Keys,
    rt: tokio::runtime::Runtime,
    server: http_server::Server,
}

impl Rig {
    fn publish(&self, bundle: &std::path::Path) {
        hearth_ota::repo::publish(&hearth_ota::repo::PublishRequest {
            repo: &self.dir.join("repo"),
            channel: "stable",
            bundle,
            release_notes: String::new(),
            valid_for: time::Duration::days(30),
            now: CREATED,
            key: &self.keys.release,
            keylist: &self.keys.keylist,
            trust: &self.keys.trust,
        })
        .unwrap();
    }

    fn accept(&self, url: &str, last: Option<&SeenIndex>) -> AcceptedIndex {
        let bytes = self
            .rt
            .block_on(fetch_index(&reqwest::Client::new(), url))
            .unwrap();
        hearth_ota::index::accept(&bytes, &self.keys.trust, "stable", "qemu-x86_64", NOW, last)
            .unwrap()
    }

    /// Opens the bundle an index names over HTTP and installs it into slot b, with slot a as
    /// the delta source (as the agent does: format-3 pages derived from slot a); returns the
    /// bundle's container format and the bytes downloaded after the signed prefix (pages and
    /// chunks).
    fn install(&self, accepted: &AcceptedIndex, device: &Device) -> (u16, u64) {
        let url = bundle_url(&self.server.base, &accepted.index.latest.bundle).unwrap();
        let mut src = HttpSource::new(reqwest::Client::new(), url, self.rt.handle().clone());
        let pending = hearth_ota::bundle::open_signed(&mut src, &self.keys.trust).unwrap();
        accepted.index.latest.matches_pending(&pending).unwrap();
        decide::check_manifest(device, &pending.manifest).unwrap();
        let mut target = FileSlot::open(&self.dir.join("slot-b.img")).unwrap();
        let mut active = FileSlot::open_read_only(&self.dir.join("slot-a.img")).unwrap();
        let mut boot = FileBoot::new(DirFs::new(&self.dir.join("boot")));
        let mut targets = vec![Target {
            payload: "root".into(),
            target: &mut target,
            active: Some(&mut active),
        }];
        let bundle = hearth_ota::install::resolve(pending, &mut src, &mut targets).unwrap();
        accepted.index.latest.matches(&bundle).unwrap();
        let report = install(InstallRequest {
            bundle: &bundle,
            source: &mut src,
            targets,
            boot: &mut boot,
            slot: Slot::B,
            progress: &mut |_| {},
        })
        .unwrap();
        (
            bundle.opened.version,
            bundle.pages_fetched + report.plan.download_bytes,
        )
    }

    /// The trial of slot b boots and commits; b becomes a (the slots swap roles for the test).
    fn boot_into_b(&self) {
        std::fs::rename(self.dir.join("slot-b.img"), self.dir.join("slot-a.img")).unwrap();
        let _ = std::fs::remove_dir_all(self.dir.join("boot"));
        running_slot_a(&self.dir);
    }

    /// A device running `running` on slot a with an empty slot b, and a repository served
    /// over HTTP from `<dir>/repo`.
    fn start(tmp: tempfile::TempDir, keys: Keys, running: &[u8]) -> Self {
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join("slot-a.img"), running).unwrap();
        running_slot_a(&dir);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(http_server::start(dir.join("repo")));
        Rig {
            _tmp: tmp,
            dir,
            keys,
            rt,
            server,
        }
    }
}

/// Slot a runs and is committed; slot b is empty.
fn running_slot_a(dir: &std::path::Path) {
    std::fs::write(dir.join("slot-b.img"), b"").unwrap();
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    FileBoot::new(DirFs::new(&dir.join("boot")))
        .initialize(Slot::A)
        .unwrap();
}

#[test]
fn a_device_on_0_1_reaches_the_first_format_2_release_then_follows_format_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let keys = keys();
    let v1 = image_bytes(2 * 1024 * 1024, 51);
    let mut v2 = v1.clone();
    v2.splice(10_000..10_000, image_bytes(5_000, 52));
    let mut v3 = v2.clone();
    v3.splice(20_000..20_000, image_bytes(5_000, 53));
    // The first release of format 2 is published in both formats, format 2 first (the order
    // must not matter for the replay check).
    let (new_dir, old_dir) = (dir.join("format-2"), dir.join("format-1"));
    std::fs::create_dir_all(&new_dir).unwrap();
    std::fs::create_dir_all(&old_dir).unwrap();
    let b2_new = bundle_with(&new_dir, &keys, &spec_v2(&new_dir, 2, &v2));
    let b2_old = bundle(&old_dir, &keys, 2, &v2);
    let rig = Rig::start(tmp, keys, &v1);
    rig.publish(&b2_new);
    rig.publish(&b2_old);

    // A device on 0.1: its URL is `index.hidx`, and what it names is a format-1 bundle.
    let old_url = format!("{}/stable/qemu-x86_64/{INDEX_FILE}", rig.server.base);
    let seen_old = rig.accept(&old_url, None);
    assert_eq!(
        decide::decide(&device(1), &seen_old.index).unwrap(),
        Decision::Update
    );
    let (format, _) = rig.install(&seen_old, &device(1));
    assert_eq!(format, 1);
    assert_eq!(std::fs::read(dir.join("slot-b.img")).unwrap(), v2);
    let bundle_bytes = std::fs::read(dir.join("repo").join(&seen_old.index.latest.bundle)).unwrap();
    assert_eq!(&bundle_bytes[8..10], &[1, 0], "header says format 1");

    // Now on 0.2: it reads the format-2 index, which is not a replay of what it saw.
    rig.boot_into_b();
    let new_url = index_url_for(&rig.server.base, "stable", "qemu-x86_64", 2);
    let seen_new = rig.accept(&new_url, Some(&seen_old.seen));
    assert!(seen_new.index.serial > seen_old.index.serial);
    assert_eq!(
        decide::decide(&device(2), &seen_new.index).unwrap(),
        Decision::UpToDate
    );

    // The next release is format 2 only; the device takes it with a small delta.
    let b3 = bundle_with(&dir, &rig.keys, &spec_v2(&dir, 3, &v3));
    rig.publish(&b3);
    let seen3 = rig.accept(&new_url, Some(&seen_new.seen));
    assert_eq!(
        decide::decide(&device(2), &seen3.index).unwrap(),
        Decision::Update
    );
    let (format, downloaded) = rig.install(&seen3, &device(2));
    assert_eq!(format, 2);
    assert_eq!(std::fs::read(dir.join("slot-b.img")).unwrap(), v3);
    assert!(
        downloaded < 5_000 + 2 * u64::from(TEST_CDC.max),
        "{downloaded}"
    );
    // Devices still on 0.1 keep being offered the format-1 release they can read.
    let still_old = rig.accept(&old_url, Some(&seen_old.seen));
    assert_eq!(still_old.index.latest.version_number, 2);
}

#[test]
fn a_device_on_format_2_reaches_the_first_format_3_release_then_follows_format_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let keys = keys();
    let v1 = image_bytes(4 * 1024 * 1024, 61);
    let mut v2 = v1.clone();
    v2.splice(10_000..10_000, image_bytes(5_000, 62));
    let mut v3 = v2.clone();
    v3.splice(2_000_000..2_000_000, image_bytes(5_000, 63));
    // The first release of format 3 is published in both formats, format 3 first.
    let (new_dir, old_dir) = (dir.join("format-3"), dir.join("format-2"));
    std::fs::create_dir_all(&new_dir).unwrap();
    std::fs::create_dir_all(&old_dir).unwrap();
    let b2_new = bundle_with(&new_dir, &keys, &spec_v3(&new_dir, 2, &v2));
    let b2_old = bundle_with(&old_dir, &keys, &spec_v2(&old_dir, 2, &v2));
    let rig = Rig::start(tmp, keys, &v1);
    rig.publish(&b2_new);
    rig.publish(&b2_old);

    // A device on format 2: its URL is `index-v2.hidx`, and it names a format-2 bundle.
    let old_url = index_url_for(&rig.server.base, "stable", "qemu-x86_64", 2);
    let seen_old = rig.accept(&old_url, None);
    assert_eq!(
        decide::decide(&device(1), &seen_old.index).unwrap(),
        Decision::Update
    );
    let (format, _) = rig.install(&seen_old, &device(1));
    assert_eq!(format, 2);
    assert_eq!(std::fs::read(dir.join("slot-b.img")).unwrap(), v2);

    // Now on format 3: it reads `index-v3.hidx`, which is not a replay of what it saw.
    rig.boot_into_b();
    // (this build's agent: `index_url` names it)
    let new_url = index_url(&rig.server.base, "stable", "qemu-x86_64");
    assert!(new_url.ends_with(INDEX_FILE_V3), "{new_url}");
    let seen_new = rig.accept(&new_url, Some(&seen_old.seen));
    assert!(seen_new.index.serial > seen_old.index.serial);
    assert_eq!(
        decide::decide(&device(2), &seen_new.index).unwrap(),
        Decision::UpToDate
    );

    // The next release is format 3 only; the device takes it with a small delta: the pages
    // around the insertion and the chunks around it.
    let b3 = bundle_with(&dir, &rig.keys, &spec_v3(&dir, 3, &v3));
    rig.publish(&b3);
    let seen3 = rig.accept(&new_url, Some(&seen_new.seen));
    assert_eq!(
        decide::decide(&device(2), &seen3.index).unwrap(),
        Decision::Update
    );
    let before = rig.server.knobs.lock().unwrap().served_bytes;
    let (format, downloaded) = rig.install(&seen3, &device(2));
    assert_eq!(format, 3);
    assert_eq!(std::fs::read(dir.join("slot-b.img")).unwrap(), v3);
    let max_page =
        u64::from(hearth_ota::pages::Paging::DEFAULT.max * hearth_ota::pages::ENTRY_PACKED);
    assert!(
        downloaded < 5_000 + 2 * u64::from(TEST_CDC.max) + 3 * max_page,
        "{downloaded}"
    );
    let served = rig.server.knobs.lock().unwrap().served_bytes - before;
    assert!(served < downloaded + 16 * 1024, "served {served}");
    // Devices still on format 2 keep being offered the format-2 release they can read.
    let still_old = rig.accept(&old_url, Some(&seen_old.seen));
    assert_eq!(still_old.index.latest.version_number, 2);
}
