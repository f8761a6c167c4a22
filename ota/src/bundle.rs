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

/// The manifest JSON of a verified body: formats 2 and 3 carry it as one zstd frame (decompressed
/// only after the release signature over it verified, and never beyond the cap).
pub fn manifest_json(version: u16, body: &[u8]) -> Result<Vec<u8>, VerifyError> {
    if version == format::FORMAT_VERSION {
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
            pages: Vec::new(),
        });
    }
    Ok(manifest_of(spec, payloads))
}

fn manifest_of(spec: &BundleSpec, payloads: Vec<Payload>) -> Manifest {
    Manifest {
        format: spec.chunking.format(),
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
            pages: Vec::new(),
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
        Chunking::Cdc(_) | Chunking::Paged { .. } => Err(VerifyError::BodyMalformed(
            "a format-2 or 3 manifest is made while writing its bundle".into(),
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
    let (manifest, staged, page_bytes) = match spec.chunking {
        Chunking::Fixed { .. } => (make_manifest(spec)?, None, Vec::new()),
        Chunking::Cdc(params) => {
            let f = std::fs::File::create(data_tmp).map_err(io(data_tmp))?;
            let mut w = std::io::BufWriter::new(f);
            let m = make_manifest_v2(spec, params, &mut w, data_tmp)?;
            w.flush().map_err(io(data_tmp))?;
            (
                Manifest::decode(m.format, &m.encode()?)?,
                Some(data_tmp),
                Vec::new(),
            )
        }
        Chunking::Paged { cdc, paging } => {
            let f = std::fs::File::create(data_tmp).map_err(io(data_tmp))?;
            let mut w = std::io::BufWriter::new(f);
            let mut m = make_manifest_v2(spec, cdc, &mut w, data_tmp)?;
            w.flush().map_err(io(data_tmp))?;
            let page_bytes = paginate(&mut m, paging);
            // Through the wire form: the page list a device decodes must be the one made.
            let decoded = Manifest::decode(m.format, &m.encode()?)?;
            if decoded
                .payloads
                .iter()
                .map(|p| &p.pages)
                .ne(m.payloads.iter().map(|p| &p.pages))
            {
                return Err(
                    VerifyError::BodyMalformed("page list does not round-trip".into()).into(),
                );
            }
            (m, Some(data_tmp), page_bytes)
        }
    };
    let body = match manifest.format {
        format::FORMAT_VERSION => manifest.encode()?,
        _ => zstd::bulk::compress(&manifest.encode()?, MANIFEST_ZSTD_LEVEL).map_err(io(tmp))?,
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
    file.write_all(&page_bytes).map_err(io(tmp))?;
    let sources: Vec<(&Path, u64)> = match staged {
        Some(data) => vec![(
            data,
            manifest.total_payload_size()? - page_bytes.len() as u64,
        )],
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

/// Format 3: cuts every payload's chunk list into pages, fills in `pages` (and the chunks' data
/// offsets, which now follow the page bytes) and returns the page bytes, back to back.
fn paginate(m: &mut Manifest, paging: crate::pages::Paging) -> Vec<u8> {
    use crate::pages;
    let mut out = Vec::new();
    let mut refs: Vec<Vec<crate::manifest::PageRef>> = Vec::new();
    for p in &m.payloads {
        let mut at = 0usize;
        let mut list = Vec::new();
        for n in pages::cut(p.chunks.iter().map(|c| &c.hash), paging) {
            let cs = &p.chunks[at..at + n as usize];
            at += n as usize;
            let bytes = pages::encode(cs.iter().map(|c| pages::Entry {
                hash: c.hash,
                len: c.len,
                stored: c.stored,
                stored_hash: c.stored_hash,
            }));
            list.push(crate::manifest::PageRef {
                list_hash: pages::list_hash(cs.iter().map(|c| (&c.hash, c.len))),
                chunks: n,
                bytes: cs.iter().map(|c| u64::from(c.len)).sum(),
                page_hash: *blake3::hash(&bytes).as_bytes(),
                page_len: bytes.len() as u32,
                stored: cs.iter().map(|c| u64::from(c.stored)).sum(),
                offset: out.len() as u64,
                data_offset: cs[0].data_offset,
            });
            out.extend_from_slice(&bytes);
        }
        refs.push(list);
    }
    let shift = out.len() as u64;
    for (p, list) in m.payloads.iter_mut().zip(refs) {
        p.pages = list;
        for g in &mut p.pages {
            g.data_offset += shift;
        }
        for c in &mut p.chunks {
            c.data_offset += shift;
        }
    }
    out
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
    /// Format 3: bytes of pages downloaded (the rest were derived from `local`).
    pub pages_fetched: u64,
    /// Format 3: the running slot's chunk indexes the pages were derived from, per payload
    /// name; the installer plans with these (every chunk of a derived page is in them).
    pub local: Vec<(String, crate::delta::ChunkIndex)>,
}

impl VerifiedBundle {
    /// Absolute offset of a chunk's stored bytes in the bundle file.
    pub fn chunk_offset(&self, chunk: &Chunk) -> u64 {
        self.payload_start + chunk.data_offset
    }

    /// The index `local` holds for payload `name`.
    pub fn local_index(&self, name: &str) -> Option<&crate::delta::ChunkIndex> {
        self.local.iter().find(|(n, _)| n == name).map(|(_, i)| i)
    }
}

/// A bundle whose signed prefix, padding and size verified, with a format-3 manifest whose
/// pages are not read yet (formats 1 and 2: complete). `manifest.payloads` names the payloads
/// and `manifest.chunking` how to cut the running slots; [`Pending::resolve`] completes it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub manifest: Manifest,
    pub opened: Opened,
    pub payload_start: u64,
    pub size: u64,
}

/// Verifies a bundle's signed prefix, key delegation, padding and total size, and reads every
/// page of a format-3 bundle (`open_signed` + `resolve` without local chunks).
pub fn open(src: &mut dyn BundleSource, trust: &Trust) -> Result<VerifiedBundle, VerifyError> {
    open_signed(src, trust)?.resolve(src, Vec::new())
}

/// Verifies a bundle's signed prefix, key delegation, padding and total size.
pub fn open_signed(src: &mut dyn BundleSource, trust: &Trust) -> Result<Pending, VerifyError> {
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
    Ok(Pending {
        manifest,
        opened,
        payload_start,
        size: actual,
    })
}

/// Longest single page download request.
const MAX_PAGE_RUN: u64 = 1024 * 1024;

impl Pending {
    /// Completes a format-3 manifest: every page whose chunk list the device computes from
    /// `local` (the running slot's chunks, per payload name, cut with the bundle's sizes) and
    /// which hashes to the signed list hash is taken from there; every other page is downloaded,
    /// checked against its signed page hash, only then parsed, and checked against its list
    /// hash and sizes. Formats 1 and 2: nothing to do.
    pub fn resolve(
        self,
        src: &mut dyn BundleSource,
        local: Vec<(String, crate::delta::ChunkIndex)>,
    ) -> Result<VerifiedBundle, VerifyError> {
        let Pending {
            mut manifest,
            opened,
            payload_start,
            size,
        } = self;
        let mut pages_fetched = 0;
        if let Chunking::Paged { cdc, paging } = manifest.chunking {
            for p in &mut manifest.payloads {
                let index = local
                    .iter()
                    .find(|(n, i)| *n == p.name && i.chunking.cdc() == Some(cdc))
                    .map(|(_, i)| i);
                pages_fetched += resolve_payload(src, payload_start, p, index, paging, cdc.max)?;
            }
        }
        Ok(VerifiedBundle {
            manifest,
            opened,
            payload_start,
            size,
            pages_fetched,
            local,
        })
    }
}

/// Fills `p.chunks` from its pages; returns the page bytes downloaded.
fn resolve_payload(
    src: &mut dyn BundleSource,
    payload_start: u64,
    p: &mut Payload,
    index: Option<&crate::delta::ChunkIndex>,
    paging: crate::pages::Paging,
    max_chunk: u32,
) -> Result<u64, VerifyError> {
    use crate::pages;
    use std::collections::HashMap;
    // The running slot's pages: list hash → (first chunk in its sequence, count).
    let mut have: HashMap<[u8; 32], (usize, usize)> = HashMap::new();
    if let Some(index) = index {
        let mut at = 0usize;
        for n in pages::cut(index.seq.iter().map(|(h, _)| h), paging) {
            let run = &index.seq[at..at + n as usize];
            have.entry(pages::list_hash(run.iter().map(|(h, l)| (h, *l))))
                .or_insert((at, n as usize));
            at += n as usize;
        }
    }
    let mut entries: Vec<Option<Vec<pages::Entry>>> = p
        .pages
        .iter()
        .map(|g| {
            have.get(&g.list_hash).map(|&(at, n)| {
                index.map_or_else(Vec::new, |i| {
                    i.seq[at..at + n]
                        .iter()
                        .map(|(hash, len)| pages::Entry {
                            hash: *hash,
                            len: *len,
                            stored: 0,
                            stored_hash: None,
                        })
                        .collect()
                })
            })
        })
        .collect();
    // Download the others, consecutive pages in one request.
    let mut fetched = 0;
    let mut i = 0;
    while i < p.pages.len() {
        if entries[i].is_some() {
            i += 1;
            continue;
        }
        let first = i;
        let mut len = u64::from(p.pages[i].page_len);
        i += 1;
        while i < p.pages.len()
            && entries[i].is_none()
            && len + u64::from(p.pages[i].page_len) <= MAX_PAGE_RUN
        {
            len += u64::from(p.pages[i].page_len);
            i += 1;
        }
        let bytes = crate::source::read_vec(src, payload_start + p.pages[first].offset, len)?;
        fetched += len;
        let mut rest = &bytes[..];
        for (k, g) in p.pages[first..i].iter().enumerate() {
            let (page, tail) = rest.split_at(g.page_len as usize);
            rest = tail;
            if *blake3::hash(page).as_bytes() != g.page_hash {
                return Err(VerifyError::PageHash {
                    payload: p.name.clone(),
                    page: (first + k) as u64,
                });
            }
            let parsed = pages::parse(page, g.chunks, max_chunk)?;
            let stored: u64 = parsed.iter().map(|e| u64::from(e.stored)).sum();
            if stored != g.stored {
                return Err(VerifyError::BodyMalformed(format!(
                    "payload {} page {}: stored sizes do not add up",
                    p.name,
                    first + k
                )));
            }
            entries[first + k] = Some(parsed);
        }
    }
    let mut chunks = Vec::new();
    let mut offset = 0u64;
    for (k, (g, e)) in p.pages.iter().zip(entries).enumerate() {
        let e = e.unwrap_or_default();
        let bytes: u64 = e.iter().map(|e| u64::from(e.len)).sum();
        if e.len() != g.chunks as usize
            || bytes != g.bytes
            || pages::list_hash(e.iter().map(|e| (&e.hash, e.len))) != g.list_hash
        {
            return Err(VerifyError::BodyMalformed(format!(
                "payload {} page {k} does not match its signed list",
                p.name
            )));
        }
        let mut data = g.data_offset;
        for e in e {
            chunks.push(Chunk {
                offset,
                len: e.len,
                hash: e.hash,
                data_offset: data,
                stored: e.stored,
                stored_hash: e.stored_hash,
            });
            offset += u64::from(e.len);
            data += u64::from(e.stored);
        }
    }
    p.chunks = chunks;
    Ok(fetched)
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
