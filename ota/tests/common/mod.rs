//! Shared fixtures: deterministic keys, key lists, payload images and real bundles.
#![allow(dead_code, clippy::unwrap_used)]
pub mod http_server;

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use hearth_ota::bundle::{BundleSpec, build};
use hearth_ota::format::Trust;
use hearth_ota::keylist::{KeyList, ReleaseKey, SignedKeyList};
use hearth_ota::manifest::{CdcParams, Chunking};
use time::OffsetDateTime;
use time::macros::datetime;

pub const CREATED: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);
pub const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

pub struct Keys {
    pub root: SigningKey,
    pub release: SigningKey,
    pub keylist: SignedKeyList,
    pub trust: Trust,
}

pub fn release_entry(key: &SigningKey) -> ReleaseKey {
    ReleaseKey::new(
        &key.verifying_key(),
        datetime!(2026-01-01 0:00 UTC),
        datetime!(2028-01-01 0:00 UTC),
    )
}

pub fn keylist(
    root: &SigningKey,
    serial: u64,
    keys: &[&SigningKey],
    revoked: &[&SigningKey],
) -> SignedKeyList {
    let list = KeyList {
        serial,
        issued: CREATED,
        keys: keys.iter().map(|k| release_entry(k)).collect(),
        revoked: revoked
            .iter()
            .map(|k| hearth_ota::hexutil::encode(k.verifying_key().as_bytes()))
            .collect(),
    };
    SignedKeyList::sign(&list, root)
}

pub fn keys() -> Keys {
    let root = SigningKey::from_bytes(&[1; 32]);
    let release = SigningKey::from_bytes(&[2; 32]);
    let keylist = keylist(&root, 1, &[&release], &[]);
    let trust = Trust::new(root.verifying_key());
    Keys {
        root,
        release,
        keylist,
        trust,
    }
}

/// Deterministic pseudo-random image bytes.
pub fn image_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn spec(dir: &Path, version_number: u64, root: &[u8]) -> BundleSpec {
    let path = dir.join(format!("root-{version_number}.img"));
    std::fs::write(&path, root).unwrap();
    BundleSpec {
        board: "qemu-x86_64".into(),
        arch: "x86_64".into(),
        version: format!("1.{version_number}.0"),
        version_number,
        min_version_number: 1,
        created: CREATED,
        chunking: Chunking::Fixed { size: 64 * 1024 },
        payloads: vec![("root".into(), path)],
    }
}

/// Small content-defined chunks for test images of a few hundred KiB to a few MiB.
pub const TEST_CDC: CdcParams = CdcParams {
    min: 2048,
    avg: 8192,
    max: 32768,
};

/// The same spec in format 2 (content-defined, compressed chunks).
pub fn spec_v2(dir: &Path, version_number: u64, root: &[u8]) -> BundleSpec {
    BundleSpec {
        chunking: Chunking::Cdc(TEST_CDC),
        ..spec(dir, version_number, root)
    }
}

/// The same spec in format 3 (format 2's chunks, their list in pages).
pub fn spec_v3(dir: &Path, version_number: u64, root: &[u8]) -> BundleSpec {
    BundleSpec {
        chunking: Chunking::Paged {
            cdc: TEST_CDC,
            paging: hearth_ota::pages::Paging::DEFAULT,
        },
        ..spec(dir, version_number, root)
    }
}

pub fn bundle_with(dir: &Path, keys: &Keys, spec: &BundleSpec) -> PathBuf {
    let out = dir.join(format!("hearth-{}.hota", spec.version_number));
    build(
        spec,
        &keys.keylist,
        &keys.release,
        Some(&keys.root.verifying_key()),
        &out,
    )
    .unwrap();
    out
}

pub fn bundle(dir: &Path, keys: &Keys, version_number: u64, root: &[u8]) -> PathBuf {
    bundle_with(dir, keys, &spec(dir, version_number, root))
}

/// Installs `bundle` (opened from `src`) as payload `root` into `target`, with a file boot
/// control in `dir/boot` whose committed slot is A; returns the result and that boot control.
pub fn install_root(
    dir: &Path,
    bundle: &hearth_ota::bundle::VerifiedBundle,
    src: &mut dyn hearth_ota::source::BundleSource,
    target: &mut dyn hearth_ota::storage::SlotStorage,
) -> (
    Result<hearth_ota::install::InstallReport, hearth_ota::install::InstallError>,
    hearth_ota::boot::file::FileBoot<hearth_ota::boot::DirFs>,
) {
    use hearth_ota::boot::{DirFs, Slot, file::FileBoot};
    use hearth_ota::install::{InstallRequest, Target, install};
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    let mut boot = FileBoot::new(DirFs::new(&dir.join("boot")));
    boot.initialize(Slot::A).unwrap();
    let result = install(InstallRequest {
        bundle,
        source: src,
        targets: vec![Target {
            payload: "root".into(),
            target,
            active: None,
        }],
        boot: &mut boot,
        slot: Slot::B,
        progress: &mut |_| {},
    });
    (result, boot)
}
