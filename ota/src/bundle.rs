//! Making bundles (streaming: hash pass, then copy) and opening them (verify the signed prefix,
//! the padding and the size; payload chunks are checked as they are read).
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use time::OffsetDateTime;

use crate::chunker::{cdc_chunks, hash_reader};
use crate::format::{self, Kind, Opened, Trust, VerifyError};
use crate::keylist::SignedKeyList;
use crate::manifest::{CdcParams, Chunk, Chunking, Manifest, Payload};
use crate::source::BundleSource;

/// zstd level for stored chunks: most of a root is squashfs blocks that are zstd already, so
/// higher levels buy little and cost the builder minutes (`docs/ota.md`).
pub const ZSTD_LEVEL: i32 = 12;
/// zstd level of a format-2 manifest (hex hashes compress to about half; it is small).
const MANIFEST_ZSTD_LEVEL: i32 = 19;
/// Largest decompressed format-2 manifest (the same cap as a format-1 body).
pub const MAX_MANIFEST_JSON: u64 = 16 * 1024 * 1024;

/// The manifest JSON of a verified body: format 2 carries it as one zstd frame (decompressed
/// only after the release signature over it verified, and never beyond the cap).
pub fn manifest_json(version: u16, body: &[u8]) -> Result<Vec<u8>, VerifyError> {
    if version != format::FORMAT_VERSION_CDC {
        return Ok(body.to_vec());
    }
    let bad = |e: String| VerifyError::BodyMalformed(format!("compressed manifest: {e}"));
    let decoder = zstd::stream::read::Decoder::with_buffer(body).map_err(|e| bad(e.to_string()))?;
    let mut json = Vec::new();
    decoder
        .take(MAX_MANIFEST_JSON + 1)
        .read_to_end(&mut json)
        .map_err(|e| bad(e.to_string()))?;
    if json.len() as u64 > MAX_MANIFEST_JSON {
        return Err(bad("larger than 16 MiB".into()));
    }
    Ok(json)
}

#[derive(Debug, Clone)]
pub struct BundleSpec {
    pub board: String,
    pub arch: String,
    pub version: String,
    pub version_number: u64,
    pub min_version_number: u64,
    pub created: OffsetDateTime,
    /// Fixed chunks (format 1, for devices on 0.1) or content-defined chunks (format 2).
    pub chunking: Chunking,
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

/// Builds a format-1 manifest by hashing every payload once (no copy is kept).
fn make_manifest_v1(spec: &BundleSpec, chunk_size: u64) -> Result<Manifest, BuildError> {
    let mut payloads = Vec::new();
    let mut data = 0u64;
    for (name, path) in &spec.payloads {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let (size, hashes) =
            hash_reader(std::io::BufReader::new(file), chunk_size).map_err(io(path))?;
        let chunks = hashes
            .iter()
            .enumerate()
            .map(|(i, hash)| {
                let offset = i as u64 * chunk_size;
                let len = (size - offset).min(chunk_size) as u32;
                Chunk {
                    offset,
                    len,
                    hash: *hash,
                    data_offset: data + offset,
                    stored: len,
                    stored_hash: None,
                }
            })
            .collect();
        data += size;
        payloads.push(Payload {
            name: name.clone(),
            size,
            chunks,
        });
    }
    Ok(manifest_of(spec, payloads))
}

fn manifest_of(spec: &BundleSpec, payloads: Vec<Payload>) -> Manifest {
    Manifest {
        format: match spec.chunking {
            Chunking::Fixed { .. } => format::FORMAT_VERSION,
            Chunking::Cdc(_) => format::FORMAT_VERSION_CDC,
        },
        board: spec.board.clone(),
        arch: spec.arch.clone(),
        version: spec.version.clone(),
        version_number: spec.version_number,
        min_version_number: spec.min_version_number,
        created: spec.created,
        chunking: spec.chunking,
        payloads,
    }
}

/// Builds a format-2 manifest: cuts every payload into content-defined chunks, compresses each
/// (kept only when smaller) and appends the stored bytes to `data`.
fn make_manifest_v2(
    spec: &BundleSpec,
    params: CdcParams,
    data: &mut dyn Write,
    data_path: &Path,
) -> Result<Manifest, BuildError> {
    let mut payloads = Vec::new();
    let mut at = 0u64;
    let mut zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(io(data_path))?;
    for (name, path) in &spec.payloads {
        let file = std::fs::File::open(path).map_err(io(path))?;
        let mut chunks = Vec::new();
        let mut each = |offset: u64, bytes: &[u8]| -> std::io::Result<()> {
            let packed = zstd.compress(bytes)?;
            let len = bytes.len() as u32;
            let (stored, stored_hash) = if packed.len() < bytes.len() {
                data.write_all(&packed)?;
                (packed.len() as u32, Some(*blake3::hash(&packed).as_bytes()))
            } else {
                data.write_all(bytes)?;
                (len, None)
            };
            chunks.push(Chunk {
                offset,
                len,
                hash: *blake3::hash(bytes).as_bytes(),
                data_offset: at,
                stored,
                stored_hash,
            });
            at += u64::from(stored);
            Ok(())
        };
        let size =
            cdc_chunks(std::io::BufReader::new(file), params, &mut each).map_err(io(path))?;
        payloads.push(Payload {
            name: name.clone(),
            size,
            chunks,
        });
    }
    Ok(manifest_of(spec, payloads))
}

/// Builds the manifest of a format-1 bundle by hashing every payload once.
pub fn make_manifest(spec: &BundleSpec) -> Result<Manifest, BuildError> {
    match spec.chunking {
        Chunking::Fixed { size } => {
            let m = make_manifest_v1(spec, size)?;
            // Through the wire form: the builder refuses what a device would refuse.
            Ok(Manifest::decode(m.format, &m.encode()?)?)
        }
        Chunking::Cdc(_) => Err(VerifyError::BodyMalformed(
            "a format-2 manifest is made while writing its bundle".into(),
        )
        .into()),
    }
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
    let tmp = out.with_extension("hota.partial");
    let data_tmp = out.with_extension("hota.data.partial");
    let result = write_bundle(spec, keylist, key, &tmp, &data_tmp);
    let _ = std::fs::remove_file(&data_tmp);
    let manifest = result?;
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(manifest)
}

fn write_bundle(
    spec: &BundleSpec,
    keylist: &SignedKeyList,
    key: &SigningKey,
    tmp: &Path,
    data_tmp: &Path,
) -> Result<Manifest, BuildError> {
    // Format 2: the stored (compressed) sizes are only known after compressing, and the
    // manifest that lists them comes first in the file: stage the data in a side file.
    let (manifest, staged) = match spec.chunking {
        Chunking::Fixed { .. } => (make_manifest(spec)?, None),
        Chunking::Cdc(params) => {
            let f = std::fs::File::create(data_tmp).map_err(io(data_tmp))?;
            let mut w = std::io::BufWriter::new(f);
            let m = make_manifest_v2(spec, params, &mut w, data_tmp)?;
            w.flush().map_err(io(data_tmp))?;
            (Manifest::decode(m.format, &m.encode()?)?, Some(data_tmp))
        }
    };
    let body = match manifest.format {
        format::FORMAT_VERSION_CDC => {
            zstd::bulk::compress(&manifest.encode()?, MANIFEST_ZSTD_LEVEL).map_err(io(tmp))?
        }
        _ => manifest.encode()?,
    };
    if body.len() as u64 > u64::from(Kind::Bundle.max_body()) {
        return Err(VerifyError::LengthOutOfRange {
            field: "body length",
            value: body.len() as u64,
        }
        .into());
    }
    let prefix = format::encode_version(Kind::Bundle, manifest.format, keylist, &body, key);
    let mut file = std::io::BufWriter::new(std::fs::File::create(tmp).map_err(io(tmp))?);
    file.write_all(&prefix).map_err(io(tmp))?;
    let pad = format::align_up(prefix.len() as u64, format::PAYLOAD_ALIGN) - prefix.len() as u64;
    file.write_all(&vec![0u8; pad as usize]).map_err(io(tmp))?;
    let sources: Vec<(&Path, u64)> = match staged {
        Some(data) => vec![(data, manifest.total_payload_size()?)],
        None => spec
            .payloads
            .iter()
            .zip(&manifest.payloads)
            .map(|((_, path), p)| (path.as_path(), p.size))
            .collect(),
    };
    for (path, size) in sources {
        let src = std::fs::File::open(path).map_err(io(path))?;
        // The manifest hashed exactly `size` bytes; copy exactly those.
        let copied = std::io::copy(&mut src.take(size), &mut file).map_err(io(path))?;
        if copied != size {
            return Err(BuildError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("file changed while bundling"),
            });
        }
    }
    let file = file.into_inner().map_err(|e| BuildError::Io {
        path: tmp.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io(tmp))?;
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
    /// Absolute offset of a chunk's stored bytes in the bundle file.
    pub fn chunk_offset(&self, chunk: &Chunk) -> u64 {
        self.payload_start + chunk.data_offset
    }
}

/// Verifies a bundle's signed prefix, key delegation, padding and total size.
pub fn open(src: &mut dyn BundleSource, trust: &Trust) -> Result<VerifiedBundle, VerifyError> {
    let opened = format::open(src, Kind::Bundle, trust)?;
    let manifest = Manifest::decode(
        opened.version,
        &manifest_json(opened.version, &opened.body)?,
    )?;
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
    let mut unpack = Unpacker::new(bundle.manifest.max_chunk());
    for p in &bundle.manifest.payloads {
        for (i, c) in p.chunks.iter().enumerate() {
            let stored = crate::source::read_vec(src, bundle.chunk_offset(c), u64::from(c.stored))?;
            unpack.unpack(p, i, &stored)?;
        }
    }
    Ok(())
}

/// Turns a chunk's stored bytes into its content, checking both signed hashes: the stored
/// bytes' hash before they reach the decompressor (so only signed bytes are ever parsed by
/// zstd), the content's hash before anyone may write it. Memory: one chunk of output.
pub struct Unpacker {
    out: Vec<u8>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for Unpacker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpacker").finish_non_exhaustive()
    }
}

impl Unpacker {
    pub fn new(max_chunk: usize) -> Self {
        Unpacker {
            out: vec![0; max_chunk],
            zstd: None,
        }
    }

    /// The verified content of chunk `i` of `p`, whose stored bytes are `stored`.
    pub fn unpack<'s>(
        &'s mut self,
        p: &Payload,
        i: usize,
        stored: &'s [u8],
    ) -> Result<&'s [u8], VerifyError> {
        let c = &p.chunks[i];
        let bad = || VerifyError::ChunkHash {
            payload: p.name.clone(),
            chunk: i as u64,
        };
        let content: &[u8] = match c.stored_hash {
            None => stored,
            Some(want) => {
                if *blake3::hash(stored).as_bytes() != want {
                    return Err(bad());
                }
                let z = match &mut self.zstd {
                    Some(z) => z,
                    None => self.zstd.insert(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| VerifyError::Source(e.to_string()))?,
                    ),
                };
                let len = c.len as usize;
                let n = z
                    .decompress_to_buffer(stored, &mut self.out[..len])
                    .map_err(|_| bad())?;
                if n != len {
                    return Err(bad());
                }
                &self.out[..len]
            }
        };
        if content.len() != c.len as usize || *blake3::hash(content).as_bytes() != c.hash {
            return Err(bad());
        }
        Ok(content)
    }
}
