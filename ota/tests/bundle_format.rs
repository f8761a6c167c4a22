//! Bundles round-trip, and the format refuses each kind of damage with its own error.
#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use hearth_ota::bundle::{open, verify_payloads};
use hearth_ota::format::VerifyError;
use hearth_ota::source::FileSource;

fn verify(path: &std::path::Path, trust: &hearth_ota::format::Trust) -> Result<(), VerifyError> {
    let mut src = FileSource::open(path).unwrap();
    let b = open(&mut src, trust)?;
    verify_payloads(&mut src, &b)
}

#[test]
fn a_signed_bundle_opens_and_every_chunk_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let data = image_bytes(300_000, 1);
    let path = bundle(dir.path(), &keys, 5, &data);
    let mut src = FileSource::open(&path).unwrap();
    let b = open(&mut src, &keys.trust).unwrap();
    assert_eq!(b.manifest.version_number, 5);
    assert_eq!(b.manifest.payloads[0].size, 300_000);
    assert_eq!(b.manifest.payloads[0].chunks.len(), 5);
    assert_eq!(b.payload_start % 4096, 0);
    verify_payloads(&mut src, &b).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[b.payload_start as usize..], &data[..]);
}

/// Flips one byte at `at` and returns the refusal.
fn flipped(at: usize) -> VerifyError {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let path = bundle(dir.path(), &keys, 5, &image_bytes(200_000, 2));
    let mut bytes = std::fs::read(&path).unwrap();
    let at = if at >= bytes.len() {
        bytes.len() - 1
    } else {
        at
    };
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    verify(&path, &keys.trust).unwrap_err()
}

fn layout() -> (usize, usize, usize) {
    // (key list length, body length, payload start) of the standard fixture.
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let path = bundle(dir.path(), &keys, 5, &image_bytes(200_000, 2));
    let mut src = FileSource::open(&path).unwrap();
    let b = open(&mut src, &keys.trust).unwrap();
    (
        keys.keylist.body.len(),
        b.opened.body.len(),
        b.payload_start as usize,
    )
}

#[test]
fn tampered_magic_is_refused() {
    assert_eq!(flipped(0), VerifyError::BadMagic("bundle"));
}

#[test]
fn tampered_format_version_is_refused() {
    assert!(matches!(flipped(8), VerifyError::UnsupportedVersion(_)));
}

#[test]
fn tampered_flags_and_reserved_are_refused() {
    assert_eq!(flipped(10), VerifyError::ReservedNotZero("flags"));
    assert_eq!(flipped(21), VerifyError::ReservedNotZero("reserved"));
}

#[test]
fn tampered_lengths_are_refused_before_reading_that_much() {
    assert!(matches!(
        flipped(15),
        VerifyError::LengthOutOfRange {
            field: "key list length",
            ..
        }
    ));
    assert!(matches!(
        flipped(19),
        VerifyError::LengthOutOfRange {
            field: "body length",
            ..
        }
    ));
}

#[test]
fn tampered_key_id_names_an_unknown_key() {
    assert!(matches!(flipped(24), VerifyError::UnknownKey(_)));
}

#[test]
fn tampered_key_list_fails_the_root_signature() {
    assert_eq!(flipped(40), VerifyError::KeyListSignature);
    let (kl, _, _) = layout();
    assert_eq!(flipped(32 + kl + 10), VerifyError::KeyListSignature);
}

#[test]
fn tampered_manifest_and_release_signature_fail_the_signature() {
    let (kl, body, _) = layout();
    assert_eq!(flipped(96 + kl + 5), VerifyError::BodySignature);
    assert_eq!(flipped(96 + kl + body / 2), VerifyError::BodySignature);
    assert_eq!(flipped(96 + kl + body + 3), VerifyError::BodySignature);
}

#[test]
fn tampered_padding_is_refused() {
    let (kl, body, start) = layout();
    let pad = 160 + kl + body;
    assert!(pad < start);
    assert_eq!(flipped(start - 1), VerifyError::PaddingNotZero);
}

#[test]
fn tampered_payload_names_the_chunk() {
    let (_, _, start) = layout();
    assert_eq!(
        flipped(start),
        VerifyError::ChunkHash {
            payload: "root".into(),
            chunk: 0
        }
    );
    assert_eq!(
        flipped(start + 3 * 65536 + 17),
        VerifyError::ChunkHash {
            payload: "root".into(),
            chunk: 3
        }
    );
    assert_eq!(
        flipped(usize::MAX),
        VerifyError::ChunkHash {
            payload: "root".into(),
            chunk: 3
        }
    );
}

#[test]
fn truncated_and_extended_bundles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let path = bundle(dir.path(), &keys, 5, &image_bytes(200_000, 3));
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 20, 31, 100, 400, bytes.len() - 1] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(
            matches!(
                verify(&path, &keys.trust),
                Err(VerifyError::Truncated { .. })
            ),
            "cut at {cut}"
        );
    }
    std::fs::write(&path, [&bytes[..], b"x"].concat()).unwrap();
    assert!(matches!(
        verify(&path, &keys.trust),
        Err(VerifyError::SizeMismatch { .. })
    ));
}

#[test]
fn a_different_root_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let path = bundle(dir.path(), &keys, 5, &image_bytes(10_000, 4));
    let other = hearth_ota::format::Trust::new(
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key(),
    );
    assert_eq!(verify(&path, &other), Err(VerifyError::KeyListSignature));
}

#[test]
fn a_release_key_outside_the_key_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = keys();
    let rogue = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let mut spec = spec(dir.path(), 5, &image_bytes(10_000, 5));
    spec.created = CREATED;
    // The builder refuses it up front …
    let out = dir.path().join("rogue.hota");
    assert!(hearth_ota::bundle::build(&spec, &keys.keylist, &rogue, None, &out).is_err());
    // … and a bundle forged past the builder is refused on read.
    keys.release = rogue;
    let list = keylist(&keys.root, 1, &[&keys.release], &[]);
    hearth_ota::bundle::build(&spec, &list, &keys.release, None, &out).unwrap();
    let mut bytes = std::fs::read(&out).unwrap();
    // Splice the genuine key list (same length, different key) in place of the forged one.
    let genuine = common::keys().keylist;
    assert_eq!(genuine.body.len(), list.body.len());
    bytes[32..32 + genuine.body.len()].copy_from_slice(&genuine.body);
    bytes[32 + genuine.body.len()..96 + genuine.body.len()].copy_from_slice(&genuine.signature);
    std::fs::write(&out, &bytes).unwrap();
    assert!(matches!(
        verify(&out, &keys.trust),
        Err(VerifyError::UnknownKey(_))
    ));
}

#[test]
fn a_revoked_release_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = keys();
    keys.keylist = keylist(&keys.root, 2, &[&keys.release], &[&keys.release]);
    let spec = spec(dir.path(), 5, &image_bytes(10_000, 6));
    let out = dir.path().join("revoked.hota");
    assert!(hearth_ota::bundle::build(&spec, &keys.keylist, &keys.release, None, &out).is_err());
    // Bypass the builder's check with the unrevoked list, then swap in the revoking one? The
    // signature covers the key list, so instead sign with a list that revokes the key.
    let prefix_list = keys.keylist.clone();
    let body = b"{}".to_vec();
    let blob = hearth_ota::format::encode(
        hearth_ota::format::Kind::Bundle,
        &prefix_list,
        &body,
        &keys.release,
    );
    std::fs::write(&out, &blob).unwrap();
    assert!(matches!(
        verify(&out, &keys.trust),
        Err(VerifyError::RevokedKey(_))
    ));
}

#[test]
fn a_replayed_older_key_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = keys();
    let path = bundle(dir.path(), &keys, 5, &image_bytes(10_000, 7));
    keys.trust.keylist_floor = 2;
    assert_eq!(
        verify(&path, &keys.trust),
        Err(VerifyError::KeyListRollback { serial: 1, seen: 2 })
    );
}

#[test]
fn a_signature_outside_the_release_key_window_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let mut spec = spec(dir.path(), 5, &image_bytes(10_000, 8));
    spec.created = time::macros::datetime!(2030-01-01 0:00 UTC);
    let out = dir.path().join("late.hota");
    assert!(hearth_ota::bundle::build(&spec, &keys.keylist, &keys.release, None, &out).is_err());
}

#[test]
fn a_bundle_signed_outside_the_release_key_window_is_refused_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let data = image_bytes(10_000, 9);
    let mut spec = spec(dir.path(), 5, &data);
    spec.created = time::macros::datetime!(2030-01-01 0:00 UTC);
    // Forge past the builder's check: same layout, signed by the (delegated) release key.
    let manifest = hearth_ota::bundle::make_manifest(&spec).unwrap();
    let body = manifest.encode().unwrap();
    let mut bytes = hearth_ota::format::encode(
        hearth_ota::format::Kind::Bundle,
        &keys.keylist,
        &body,
        &keys.release,
    );
    bytes.resize(
        hearth_ota::format::align_up(bytes.len() as u64, 4096) as usize,
        0,
    );
    bytes.extend_from_slice(&data);
    let out = dir.path().join("late.hota");
    std::fs::write(&out, &bytes).unwrap();
    assert!(matches!(
        verify(&out, &keys.trust),
        Err(VerifyError::KeyNotValid { .. })
    ));
    // The same forgery with an in-window date verifies: the window is what refuses it.
    spec.created = CREATED;
    let body = hearth_ota::bundle::make_manifest(&spec)
        .unwrap()
        .encode()
        .unwrap();
    let mut bytes = hearth_ota::format::encode(
        hearth_ota::format::Kind::Bundle,
        &keys.keylist,
        &body,
        &keys.release,
    );
    bytes.resize(
        hearth_ota::format::align_up(bytes.len() as u64, 4096) as usize,
        0,
    );
    bytes.extend_from_slice(&data);
    std::fs::write(&out, &bytes).unwrap();
    verify(&out, &keys.trust).unwrap();
}
