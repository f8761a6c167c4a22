//! Making bundles (streaming: hash pass, then copy) and opening them (verify the signed prefix,
//! the padding and the size; payload chunks are checked as they are read).
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use time::OffsetDateTime;

use crate::chunker::{Chunker, hash_reader};
use crate::format::{self, Kind, Opened, Trust, VerifyError};
use crate::keylist::SignedKeyList;
use crate::manifest::{Manifest, Payload};
use crate::source::BundleSource;

#[derive(Debug, Clone)]
pub struct BundleSpec {
    pub board: String,
    pub arch: String,
    pub version: String,
    pub version_number: u64,
    pub min_version_number: u64,
    pub created: OffsetDateTime,
    pub chunk_size: u64,
    /// Payload name and the image file it comes from, in bundle order.
    pub payloads: Vec<(String, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid bundle: {0}")]
    Invalid(#[from] VerifyError),
    #[error(
        "the release key is not in the key list, or is revoked, or the key list is not signed by the given root: {0}"
    )]
    Delegation(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Builds the manifest by hashing every payload once (no copy is kept).
pub fn make_manifest(spec: &BundleSpec) -> Result<Manifest, BuildError> {
    let mut payloads = Vec::new();
    for (name, path) in &spec.payloads {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let (size, hashes) =
            hash_reader(std::io::BufReader::new(file), spec.chunk_size).map_err(io(path))?;
        let chunks: String = hashes.iter().map(|h| crate::hexutil::encode(h)).collect();
        payloads.push(Payload {
            name: name.clone(),
            size,
            chunks,
        });
    }
    let manifest = Manifest {
        board: spec.board.clone(),
        arch: spec.arch.clone(),
        version: spec.version.clone(),
        version_number: spec.version_number,
        min_version_number: spec.min_version_number,
        created: spec.created,
        chunk_size: spec.chunk_size,
        payloads,
    };
    manifest.validate()?;
    Ok(manifest)
}

/// Writes a signed bundle to `out` (temp file → fsync → rename). The release key must be a
/// valid, unrevoked member of `keylist` at `spec.created`; `root` is checked when given.
pub fn build(
    spec: &BundleSpec,
    keylist: &SignedKeyList,
    key: &SigningKey,
    root: Option<&ed25519_dalek::VerifyingKey>,
    out: &Path,
) -> Result<Manifest, BuildError> {
    check_delegation(keylist, key, root, spec.created)?;
    let manifest = make_manifest(spec)?;
    let body = serde_json::to_vec(&manifest)
        .map_err(|e| BuildError::Invalid(VerifyError::BodyMalformed(e.to_string())))?;
    if body.len() as u64 > u64::from(Kind::Bundle.max_body()) {
        return Err(VerifyError::LengthOutOfRange {
            field: "body length",
            value: body.len() as u64,
        }
        .into());
    }
    let prefix = format::encode(Kind::Bundle, keylist, &body, key);
    let tmp = out.with_extension("hota.partial");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
    file.write_all(&prefix).map_err(io(&tmp))?;
    let pad = format::align_up(prefix.len() as u64, format::PAYLOAD_ALIGN) - prefix.len() as u64;
    file.write_all(&vec![0u8; pad as usize]).map_err(io(&tmp))?;
    for ((_, path), payload) in spec.payloads.iter().zip(&manifest.payloads) {
        let src = std::fs::File::open(path).map_err(io(path))?;
        // The manifest hashed exactly `size` bytes; copy exactly those.
        let copied = std::io::copy(&mut src.take(payload.size), &mut file).map_err(io(path))?;
        if copied != payload.size {
            return Err(BuildError::Io {
                path: path.clone(),
                source: std::io::Error::other("file changed while bundling"),
            });
        }
    }
    let file = file.into_inner().map_err(|e| BuildError::Io {
        path: tmp.clone(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(manifest)
}

fn check_delegation(
    keylist: &SignedKeyList,
    key: &SigningKey,
    root: Option<&ed25519_dalek::VerifyingKey>,
    at: OffsetDateTime,
) -> Result<(), BuildError> {
    let list = match root {
        Some(root) => keylist.verify(root, 0),
        None => serde_json::from_slice(&keylist.body)
            .map_err(|e| VerifyError::KeyListMalformed(e.to_string())),
    }
    .map_err(|e| BuildError::Delegation(e.to_string()))?;
    let (_, entry) = list
        .release_key(&crate::keys::key_id(&key.verifying_key()))
        .map_err(|e| BuildError::Delegation(e.to_string()))?;
    format::check_key_window(entry, at).map_err(|e| BuildError::Delegation(e.to_string()))
}

/// A bundle whose signed prefix, padding and size verified. Payload bytes are not yet checked:
/// readers check each chunk against `manifest` as they go.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    pub manifest: Manifest,
    pub opened: Opened,
    pub payload_start: u64,
    pub size: u64,
}

impl VerifiedBundle {
    /// Absolute offset of a payload in the bundle file.
    pub fn payload_offset(&self, name: &str) -> Option<u64> {
        let mut at = self.payload_start;
        for p in &self.manifest.payloads {
            if p.name == name {
                return Some(at);
            }
            at += p.size;
        }
        None
    }
}

/// Verifies a bundle's signed prefix, key delegation, padding and total size.
pub fn open(src: &mut dyn BundleSource, trust: &Trust) -> Result<VerifiedBundle, VerifyError> {
    let opened = format::open(src, Kind::Bundle, trust)?;
    let manifest: Manifest = serde_json::from_slice(&opened.body)
        .map_err(|e| VerifyError::BodyMalformed(e.to_string()))?;
    manifest.validate()?;
    format::check_key_window(&opened.release_key, manifest.created)?;
    let payload_start = format::align_up(opened.prefix_len, format::PAYLOAD_ALIGN);
    let expected = payload_start + manifest.total_payload_size()?;
    let actual = src.size()?;
    if actual != expected {
        return Err(if actual < expected {
            VerifyError::Truncated {
                needed: expected,
                have: actual,
            }
        } else {
            VerifyError::SizeMismatch { expected, actual }
        });
    }
    let padding =
        crate::source::read_vec(src, opened.prefix_len, payload_start - opened.prefix_len)?;
    if padding.iter().any(|&b| b != 0) {
        return Err(VerifyError::PaddingNotZero);
    }
    Ok(VerifiedBundle {
        manifest,
        opened,
        payload_start,
        size: actual,
    })
}

/// Streams every payload and checks every chunk (what `hearth-ota verify` does).
pub fn verify_payloads(
    src: &mut dyn BundleSource,
    bundle: &VerifiedBundle,
) -> Result<(), VerifyError> {
    for p in &bundle.manifest.payloads {
        let offset = bundle.payload_offset(&p.name).unwrap_or(0);
        let mut chunker = Chunker::new(bundle.manifest.chunk_size);
        let mut index = 0u64;
        let mut failed = None;
        let mut check = |chunk: &[u8]| -> Result<(), VerifyError> {
            if *blake3::hash(chunk).as_bytes() != p.chunk_hash(index) {
                return Err(VerifyError::ChunkHash {
                    payload: p.name.clone(),
                    chunk: index,
                });
            }
            index += 1;
            Ok(())
        };
        src.read_at(
            offset,
            p.size,
            &mut |piece| match chunker.feed(piece, &mut check) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            },
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
        chunker.finish(&mut check)?;
    }
    Ok(())
}
