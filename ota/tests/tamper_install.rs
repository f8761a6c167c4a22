//! Every refusal through the whole device path (open → decide → install): each corruption or
//! policy violation is refused with its own error, slot b is never marked bootable, slot a stays
//! the primary and its content is untouched.
#![allow(clippy::unwrap_used)]
mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use hearth_ota::VerifyError;
use hearth_ota::boot::file::FileBoot;
use hearth_ota::boot::{BootControl, DirFs, Slot};
use hearth_ota::decide::{Device, check_manifest};
use hearth_ota::format::Trust;
use hearth_ota::install::{InstallError, InstallRequest, Target, install};
use hearth_ota::source::FileSource;
use hearth_ota::storage::FileSlot;

fn device() -> Device {
    Device {
        board: "qemu-x86_64".into(),
        arch: "x86_64".into(),
        version_number: 3,
    }
}

/// The device's update path from a local bundle file.
fn update(dir: &Path, bundle: &Path, trust: &Trust, device: &Device) -> Result<(), InstallError> {
    update_slot(dir, bundle, trust, device, Slot::B)
}

fn update_slot(
    dir: &Path,
    bundle: &Path,
    trust: &Trust,
    device: &Device,
    slot: Slot,
) -> Result<(), InstallError> {
    let mut src = FileSource::open(bundle).map_err(VerifyError::from)?;
    let b = hearth_ota::bundle::open(&mut src, trust)?;
    check_manifest(device, &b.manifest)?;
    let mut target = FileSlot::open(&dir.join("slot-b.img")).unwrap();
    let mut active = FileSlot::open_read_only(&dir.join("slot-a.img")).unwrap();
    let mut boot = FileBoot::new(DirFs::new(&dir.join("boot")));
    install(InstallRequest {
        bundle: &b,
        source: &mut src,
        targets: vec![Target {
            payload: "root".into(),
            target: &mut target,
            active: Some(&mut active),
        }],
        boot: &mut boot,
        slot,
        progress: &mut |_| {},
    })
    .map(|_| ())
}

/// The variant name of a verification refusal (`ChunkHash`, `Downgrade`, …).
fn kind(e: &InstallError) -> String {
    match e {
        InstallError::Verify(v) => format!("{v:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("")
            .to_string(),
        other => format!("not a verification error: {other}"),
    }
}

const EXPECTED: &[(&str, &str)] = &[
    ("magic", "BadMagic"),
    ("format version", "UnsupportedVersion"),
    ("flags", "ReservedNotZero"),
    ("key list length", "LengthOutOfRange"),
    ("key id", "UnknownKey"),
    ("key list", "KeyListSignature"),
    ("manifest", "BodySignature"),
    ("signature", "BodySignature"),
    ("padding", "PaddingNotZero"),
    ("payload", "ChunkHash"),
    ("truncated", "Truncated"),
    ("appended", "SizeMismatch"),
    ("wrong root key", "KeyListSignature"),
    ("replayed key list", "KeyListRollback"),
    ("revoked release key", "RevokedKey"),
    ("unknown release key", "UnknownKey"),
    ("wrong board", "WrongBoard"),
    ("wrong arch", "WrongArch"),
    ("downgrade", "Downgrade"),
    ("reinstall", "Downgrade"),
    ("minimum version", "TooOld"),
];

struct Case {
    name: &'static str,
    bundle: std::path::PathBuf,
    trust: Trust,
    device: Device,
}

/// The untampered bundle offered to devices it does not fit.
fn device_cases(good: &Path, trust: &Trust) -> Vec<Case> {
    let with = |name, device: Device| Case {
        name,
        bundle: good.to_path_buf(),
        trust: trust.clone(),
        device,
    };
    vec![
        with(
            "wrong board",
            Device {
                board: "rpi4".into(),
                ..device()
            },
        ),
        with(
            "wrong arch",
            Device {
                arch: "aarch64".into(),
                ..device()
            },
        ),
        with(
            "downgrade",
            Device {
                version_number: 6,
                ..device()
            },
        ),
        with(
            "reinstall",
            Device {
                version_number: 5,
                ..device()
            },
        ),
    ]
}

/// Runs each case on a fresh device (a committed on `v1`, b holding an older image) and checks
/// the refusal is the expected kind and leaves b unbootable and a untouched; returns the kinds.
fn refuse_each_on_a_fresh_device(dir: &Path, cases: &[Case], v1: &[u8]) -> BTreeSet<String> {
    let mut kinds = BTreeSet::new();
    for c in cases {
        std::fs::write(dir.join("slot-a.img"), v1).unwrap();
        std::fs::write(dir.join("slot-b.img"), image_bytes(300_000, 33)).unwrap();
        let _ = std::fs::remove_dir_all(dir.join("boot"));
        std::fs::create_dir_all(dir.join("boot")).unwrap();
        FileBoot::new(DirFs::new(&dir.join("boot")))
            .initialize(Slot::A)
            .unwrap();
        let err = update(dir, &c.bundle, &c.trust, &c.device).expect_err(c.name);
        let state = FileBoot::new(DirFs::new(&dir.join("boot")))
            .state()
            .unwrap();
        assert!(!state.is_bootable(Slot::B), "{}: b became bootable", c.name);
        assert_eq!(
            (state.primary, state.trial),
            (Some(Slot::A), None),
            "{}",
            c.name
        );
        assert_eq!(
            std::fs::read(dir.join("slot-a.img")).unwrap(),
            v1,
            "{}: slot a changed",
            c.name
        );
        println!("{:>22}: {err}", c.name);
        let want = EXPECTED.iter().find(|(n, _)| *n == c.name).map(|(_, k)| *k);
        assert_eq!(Some(kind(&err).as_str()), want, "{}: {err}", c.name);
        kinds.insert(kind(&err));
    }
    kinds
}

#[test]
fn every_refusal_leaves_slot_b_unbootable_and_slot_a_untouched() {
    every_refusal(false);
}

/// Format 2: the payload case corrupts a zstd-compressed chunk's stored bytes.
#[test]
fn every_refusal_of_a_cdc_bundle_leaves_slot_b_unbootable_and_slot_a_untouched() {
    every_refusal(true);
}

fn every_refusal(cdc: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keys = keys();
    let make_spec = if cdc { spec_v2 } else { spec };
    let v1 = image_bytes(300_000, 31);
    // Format 2 stores compressible chunks compressed: give it compressible content.
    let v5: Vec<u8> = if cdc {
        image_bytes(300_000, 32).iter().map(|b| b & 7).collect()
    } else {
        image_bytes(300_000, 32)
    };
    let good = bundle_with(dir, &keys, &make_spec(dir, 5, &v5));
    let bytes = std::fs::read(&good).unwrap();
    let opened =
        hearth_ota::bundle::open(&mut FileSource::open(&good).unwrap(), &keys.trust).unwrap();
    let (kl, body, start) = (
        keys.keylist.body.len(),
        opened.opened.body.len(),
        opened.payload_start as usize,
    );
    if cdc {
        let compressed = opened.manifest.payloads[0]
            .chunks
            .iter()
            .filter(|c| c.stored_hash.is_some())
            .count();
        assert_eq!(compressed, opened.manifest.payloads[0].chunks.len());
    }
    let middle = start + (bytes.len() - start) / 2;
    let variant = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        let path = dir.join(format!("{name}.hota"));
        std::fs::write(&path, &b).unwrap();
        path
    };
    let flip = |at: usize| move |b: &mut Vec<u8>| b[at] ^= 0x20;
    let case = |name: &'static str, bundle: std::path::PathBuf| Case {
        name,
        bundle,
        trust: keys.trust.clone(),
        device: device(),
    };
    let mut cases = vec![
        case("magic", variant("magic", &flip(1))),
        case("format version", variant("version", &flip(9))),
        case("flags", variant("flags", &flip(11))),
        case("key list length", variant("kllen", &flip(14))),
        case("key id", variant("keyid", &flip(30))),
        case("key list", variant("keylist", &flip(32 + kl / 2))),
        case("manifest", variant("manifest", &flip(96 + kl + body / 2))),
        case(
            "signature",
            variant("signature", &flip(96 + kl + body + 10)),
        ),
        case("padding", variant("padding", &flip(start - 10))),
        case("payload", variant("payload", &flip(middle))),
        case(
            "truncated",
            variant("truncated", &|b| b.truncate(b.len() - 1000)),
        ),
        case(
            "appended",
            variant("appended", &|b| b.extend_from_slice(b"trailing")),
        ),
    ];
    let other_root = Trust::new(ed25519_dalek::SigningKey::from_bytes(&[77; 32]).verifying_key());
    cases.push(Case {
        name: "wrong root key",
        bundle: good.clone(),
        trust: other_root,
        device: device(),
    });
    let mut floor = keys.trust.clone();
    floor.keylist_floor = 9;
    cases.push(Case {
        name: "replayed key list",
        bundle: good.clone(),
        trust: floor,
        device: device(),
    });
    // A key list (newer serial) that revokes the release key that signed this bundle.
    let revoking = keylist(&keys.root, 2, &[&keys.release], &[&keys.release]);
    let revoked = variant("revoked", &|b| {
        let prefix = hearth_ota::format::encode_version(
            hearth_ota::format::Kind::Bundle,
            opened.opened.version,
            &revoking,
            &opened.opened.body,
            &keys.release,
        );
        b.splice(..opened.opened.prefix_len as usize, prefix);
    });
    cases.push(case("revoked release key", revoked));
    let rogue = ed25519_dalek::SigningKey::from_bytes(&[78; 32]);
    let unknown = variant("unknown", &|b| {
        let prefix = hearth_ota::format::encode_version(
            hearth_ota::format::Kind::Bundle,
            opened.opened.version,
            &keys.keylist,
            &opened.opened.body,
            &rogue,
        );
        b.splice(..opened.opened.prefix_len as usize, prefix);
    });
    cases.push(case("unknown release key", unknown));
    cases.extend(device_cases(&good, &keys.trust));
    let mut strict = make_spec(dir, 7, &v5);
    strict.min_version_number = 4;
    cases.push(Case {
        name: "minimum version",
        bundle: bundle_with(dir, &keys, &strict),
        trust: keys.trust.clone(),
        device: device(),
    });

    let kinds = refuse_each_on_a_fresh_device(dir, &cases, &v1);
    assert_eq!(cases.len(), EXPECTED.len());
    assert_eq!(kinds.len(), 17, "{kinds:?}");
    // The untampered bundle installs (the cases above can fail for the right reason only).
    std::fs::write(dir.join("slot-b.img"), b"").unwrap();
    update(dir, &good, &keys.trust, &device()).unwrap();
    assert_eq!(std::fs::read(dir.join("slot-b.img")).unwrap(), v5);
}

#[test]
fn the_committed_slot_is_never_a_target() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let keys = keys();
    let v1 = image_bytes(100_000, 41);
    let good = bundle(dir, &keys, 5, &image_bytes(100_000, 42));
    std::fs::write(dir.join("slot-a.img"), &v1).unwrap();
    std::fs::write(dir.join("slot-b.img"), &v1).unwrap();
    std::fs::create_dir_all(dir.join("boot")).unwrap();
    FileBoot::new(DirFs::new(&dir.join("boot")))
        .initialize(Slot::B)
        .unwrap();
    let before = FileBoot::new(DirFs::new(&dir.join("boot")))
        .state()
        .unwrap();
    // Slot b is committed here: writing it would destroy the fallback.
    let err = update_slot(dir, &good, &keys.trust, &device(), Slot::B).unwrap_err();
    assert!(
        matches!(err, InstallError::TargetIsPrimary(Slot::B)),
        "{err}"
    );
    assert_eq!(
        FileBoot::new(DirFs::new(&dir.join("boot")))
            .state()
            .unwrap(),
        before
    );
    assert_eq!(std::fs::read(dir.join("slot-b.img")).unwrap(), v1);
}
