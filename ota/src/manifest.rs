//! The bundle manifest: what a bundle holds and for whom. Pure data and its invariants; decoded
//! only from bytes whose signature verified (`format::open`).
//!
//! Two wire formats (`docs/ota-bundle.md`): version 1 (fixed-size chunks stored raw, for devices
//! on releases before 0.2) and version 2 (content-defined chunks, each stored zstd-compressed or
//! raw). Both decode into one in-memory [`Manifest`] whose chunk list gives, for every chunk, its
//! place in the payload, its place in the bundle and the hashes that check it, so planning,
//! installing and verifying have one code path for both.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::format::VerifyError;
use crate::hexutil;
use crate::pages::{self, Paging};

pub const DEFAULT_CHUNK_SIZE: u64 = 64 * 1024;
pub const MIN_CHUNK_SIZE: u64 = 4 * 1024;
pub const MAX_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// Largest content-defined chunk a v2 manifest may declare: bounds the installer's two chunk
/// buffers (stored and decompressed) well inside its 16 MiB memory budget.
pub const MAX_CDC_CHUNK: u32 = 4 * 1024 * 1024;

/// How payloads are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chunking {
    /// Format 1: chunk *i* covers `[i·size, (i+1)·size)`.
    Fixed { size: u64 },
    /// Format 2: FastCDC (2020, normalization level 1) with these sizes in bytes.
    Cdc(CdcParams),
    /// Format 3: the chunks of format 2, their list cut into pages (`pages.rs`).
    Paged { cdc: CdcParams, paging: Paging },
}

impl Chunking {
    /// The FastCDC sizes of a content-defined chunking (formats 2 and 3).
    pub fn cdc(&self) -> Option<CdcParams> {
        match self {
            Chunking::Fixed { .. } => None,
            Chunking::Cdc(p) | Chunking::Paged { cdc: p, .. } => Some(*p),
        }
    }

    /// The container format version of bundles chunked this way.
    pub fn format(&self) -> u16 {
        match self {
            Chunking::Fixed { .. } => crate::format::FORMAT_VERSION,
            Chunking::Cdc(_) => crate::format::FORMAT_VERSION_CDC,
            Chunking::Paged { .. } => crate::format::FORMAT_VERSION_PAGED,
        }
    }
}

/// FastCDC sizes. Hearth's choice and the measurement behind it: `docs/ota.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdcParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl CdcParams {
    /// Hearth's sizes (measured on squashfs root pairs, see `docs/ota.md`).
    pub const DEFAULT: CdcParams = CdcParams {
        min: 16 * 1024,
        avg: 32 * 1024,
        max: 128 * 1024,
    };

    /// The ranges the `fastcdc` crate accepts, `min ≤ avg ≤ max` and our memory cap.
    pub fn valid(&self) -> bool {
        (64..=1 << 20).contains(&self.min)
            && (256..=4 << 20).contains(&self.avg)
            && (1024..=MAX_CDC_CHUNK).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
    }
}

/// One chunk of a payload, as every format is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Offset of the chunk in the payload (and in its target).
    pub offset: u64,
    pub len: u32,
    /// BLAKE3 of the chunk's bytes (what is written to the slot).
    pub hash: [u8; 32],
    /// Offset of its stored bytes from the start of the bundle's payload data.
    pub data_offset: u64,
    /// Bytes stored in the bundle: `len` when raw, less when zstd-compressed.
    pub stored: u32,
    /// BLAKE3 of the stored (compressed) bytes; `None` when stored raw.
    pub stored_hash: Option<[u8; 32]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub name: String,
    pub size: u64,
    /// Format 3: empty until its pages are resolved (`bundle::Pending::resolve`); a chunk of
    /// a page derived from the running slot has `stored` 0 (its stored bytes are unknown and
    /// never needed: the device has every chunk of such a page).
    pub chunks: Vec<Chunk>,
    /// Format 3 only: the signed page list.
    pub pages: Vec<PageRef>,
}

/// A page of a format-3 payload, as the signed body lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRef {
    /// BLAKE3 of the page's chunk list (`pages::list_hash`): what a device can derive.
    pub list_hash: [u8; 32],
    pub chunks: u32,
    /// Payload bytes its chunks cover.
    pub bytes: u64,
    /// BLAKE3 of the page bytes stored in the bundle.
    pub page_hash: [u8; 32],
    pub page_len: u32,
    /// Stored bytes of its chunks.
    pub stored: u64,
    /// Offset of the page bytes from the start of the payload data.
    pub offset: u64,
    /// Offset of its first chunk's stored bytes from the start of the payload data.
    pub data_offset: u64,
}

impl Payload {
    /// Bytes this payload's chunks occupy in the bundle.
    pub fn stored_size(&self) -> u64 {
        if !self.pages.is_empty() {
            return self.pages.iter().map(|p| p.stored).sum();
        }
        self.chunks.iter().map(|c| u64::from(c.stored)).sum()
    }

    /// Format 3: bytes of this payload's pages in the bundle.
    pub fn pages_size(&self) -> u64 {
        self.pages.iter().map(|p| u64::from(p.page_len)).sum()
    }
}

/// A decoded manifest of either format.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The container format version it came in (1 or 2).
    pub format: u16,
    pub board: String,
    pub arch: String,
    pub version: String,
    pub version_number: u64,
    pub min_version_number: u64,
    pub created: OffsetDateTime,
    pub chunking: Chunking,
    pub payloads: Vec<Payload>,
}

/// Version 1 on the wire (unchanged since 0.1: old devices decode exactly this).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct WireV1 {
    board: String,
    arch: String,
    version: String,
    version_number: u64,
    min_version_number: u64,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    chunk_size: u64,
    payloads: Vec<WirePayloadV1>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct WirePayloadV1 {
    name: String,
    size: u64,
    /// 32-byte BLAKE3 hashes of each chunk, hex, concatenated.
    chunks: String,
}

/// Version 2 on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct WireV2 {
    board: String,
    arch: String,
    version: String,
    version_number: u64,
    min_version_number: u64,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    chunking: CdcParams,
    payloads: Vec<WirePayloadV2>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct WirePayloadV2 {
    name: String,
    size: u64,
    /// One entry per chunk, in payload order: `[hash, len, stored, stored_hash or null]`.
    chunks: Vec<WireChunk>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct WireChunk(String, u32, u32, Option<String>);

/// Version 3 on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct WireV3 {
    board: String,
    arch: String,
    version: String,
    version_number: u64,
    min_version_number: u64,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
    chunking: CdcParams,
    paging: Paging,
    payloads: Vec<WirePayloadV3>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct WirePayloadV3 {
    name: String,
    size: u64,
    /// `[list_hash, chunks, bytes, page_hash, page_len, stored]` per page, in payload order.
    pages: Vec<WirePage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct WirePage(String, u32, u64, String, u32, u64);

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn name_ok(s: &str, max: usize, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

pub fn board_name_ok(s: &str) -> bool {
    name_ok(s, 64, b"_-")
}

fn bad<T>(m: String) -> Result<T, VerifyError> {
    Err(VerifyError::BodyMalformed(m))
}

fn hash_of(hex: &str, what: &str) -> Result<[u8; 32], VerifyError> {
    hexutil::decode_array(hex).ok_or_else(|| VerifyError::BodyMalformed(format!("bad {what}")))
}

impl Manifest {
    /// Decodes a verified body of container format `format`, then checks every invariant.
    pub fn decode(format: u16, body: &[u8]) -> Result<Manifest, VerifyError> {
        let m = match format {
            1 => {
                let w: WireV1 = serde_json::from_slice(body)
                    .map_err(|e| VerifyError::BodyMalformed(e.to_string()))?;
                Manifest::from_v1(w)?
            }
            2 => {
                let w: WireV2 = serde_json::from_slice(body)
                    .map_err(|e| VerifyError::BodyMalformed(e.to_string()))?;
                Manifest::from_v2(w)?
            }
            3 => {
                let w: WireV3 = serde_json::from_slice(body)
                    .map_err(|e| VerifyError::BodyMalformed(e.to_string()))?;
                Manifest::from_v3(w)?
            }
            v => return Err(VerifyError::UnsupportedVersion(v)),
        };
        m.validate()?;
        Ok(m)
    }

    fn from_v1(w: WireV1) -> Result<Manifest, VerifyError> {
        let c = w.chunk_size;
        if !c.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&c) {
            return bad(format!(
                "chunk size {c} is not a power of two in 4 KiB..16 MiB"
            ));
        }
        let mut payloads = Vec::new();
        let mut data = 0u64;
        for p in w.payloads {
            let count = p.size.div_ceil(c);
            if p.chunks.len() as u64 != count * 64 {
                return bad(format!("payload {} lists the wrong chunk hashes", p.name));
            }
            let mut chunks = Vec::with_capacity(count as usize);
            for i in 0..count {
                let at = (i * 64) as usize;
                let hash = hash_of(p.chunks.get(at..at + 64).unwrap_or(""), "chunk hash")?;
                let len = (p.size - i * c).min(c) as u32;
                chunks.push(Chunk {
                    offset: i * c,
                    len,
                    hash,
                    data_offset: data + i * c,
                    stored: len,
                    stored_hash: None,
                });
            }
            data = data
                .checked_add(p.size)
                .ok_or_else(|| VerifyError::BodyMalformed("payload sizes overflow".into()))?;
            payloads.push(Payload {
                name: p.name,
                size: p.size,
                chunks,
                pages: Vec::new(),
            });
        }
        Ok(Manifest {
            format: 1,
            board: w.board,
            arch: w.arch,
            version: w.version,
            version_number: w.version_number,
            min_version_number: w.min_version_number,
            created: w.created,
            chunking: Chunking::Fixed { size: c },
            payloads,
        })
    }

    fn from_v2(w: WireV2) -> Result<Manifest, VerifyError> {
        if !w.chunking.valid() {
            return bad(format!("chunk sizes {:?} are out of range", w.chunking));
        }
        let mut payloads = Vec::new();
        let mut data = 0u64;
        for p in w.payloads {
            let mut chunks = Vec::with_capacity(p.chunks.len());
            let mut offset = 0u64;
            for (i, WireChunk(hash, len, stored, stored_hash)) in p.chunks.iter().enumerate() {
                let whose = || format!("payload {} chunk {i}", p.name);
                if *len == 0 || *len > w.chunking.max {
                    return bad(format!("{} has length {len}", whose()));
                }
                let stored_hash = match stored_hash {
                    None if stored == len => None,
                    Some(h) if *stored > 0 && stored < len => Some(hash_of(h, "stored hash")?),
                    _ => return bad(format!("{} has an invalid stored size", whose())),
                };
                chunks.push(Chunk {
                    offset,
                    len: *len,
                    hash: hash_of(hash, "chunk hash")?,
                    data_offset: data,
                    stored: *stored,
                    stored_hash,
                });
                offset += u64::from(*len);
                data += u64::from(*stored);
            }
            if offset != p.size {
                return bad(format!(
                    "payload {}: chunks add up to {offset} bytes, not {}",
                    p.name, p.size
                ));
            }
            payloads.push(Payload {
                name: p.name,
                size: p.size,
                chunks,
                pages: Vec::new(),
            });
        }
        Ok(Manifest {
            format: 2,
            board: w.board,
            arch: w.arch,
            version: w.version,
            version_number: w.version_number,
            min_version_number: w.min_version_number,
            created: w.created,
            chunking: Chunking::Cdc(w.chunking),
            payloads,
        })
    }

    /// Format 3: the page list only; chunks come with the pages (`bundle::Pending::resolve`).
    fn from_v3(w: WireV3) -> Result<Manifest, VerifyError> {
        let (cdc, paging) = (w.chunking, w.paging);
        if !cdc.valid() || !paging.valid() {
            return bad(format!(
                "chunk sizes {cdc:?} or pages {paging:?} are out of range"
            ));
        }
        let mut pages_total = 0u64;
        for p in &w.payloads {
            for WirePage(_, _, _, _, len, _) in &p.pages {
                pages_total += u64::from(*len);
            }
        }
        let (mut at, mut data) = (0u64, pages_total);
        let mut payloads = Vec::new();
        for p in w.payloads {
            let mut pages = Vec::with_capacity(p.pages.len());
            let mut covered = 0u64;
            for (i, WirePage(list, chunks, bytes, hash, page_len, stored)) in
                p.pages.iter().enumerate()
            {
                let n = u64::from(*chunks);
                if *chunks == 0
                    || *chunks > paging.max
                    || !(n..=n * u64::from(cdc.max)).contains(bytes)
                    || !(n..=*bytes).contains(stored)
                    || !(chunks * pages::ENTRY_RAW..=chunks * pages::ENTRY_PACKED)
                        .contains(page_len)
                {
                    return bad(format!("payload {} page {i} is out of range", p.name));
                }
                pages.push(PageRef {
                    list_hash: hash_of(list, "page list hash")?,
                    chunks: *chunks,
                    bytes: *bytes,
                    page_hash: hash_of(hash, "page hash")?,
                    page_len: *page_len,
                    stored: *stored,
                    offset: at,
                    data_offset: data,
                });
                at += u64::from(*page_len);
                data = data
                    .checked_add(*stored)
                    .ok_or_else(|| VerifyError::BodyMalformed("sizes overflow".into()))?;
                covered += bytes;
            }
            if covered != p.size {
                return bad(format!(
                    "payload {}: pages add up to {covered} bytes, not {}",
                    p.name, p.size
                ));
            }
            payloads.push(Payload {
                name: p.name,
                size: p.size,
                chunks: Vec::new(),
                pages,
            });
        }
        Ok(Manifest {
            format: 3,
            board: w.board,
            arch: w.arch,
            version: w.version,
            version_number: w.version_number,
            min_version_number: w.min_version_number,
            created: w.created,
            chunking: Chunking::Paged { cdc, paging },
            payloads,
        })
    }

    /// The wire bytes of this manifest in its format.
    pub fn encode(&self) -> Result<Vec<u8>, VerifyError> {
        let enc = |e: serde_json::Error| VerifyError::BodyMalformed(e.to_string());
        match self.chunking {
            Chunking::Fixed { size } => serde_json::to_vec(&WireV1 {
                board: self.board.clone(),
                arch: self.arch.clone(),
                version: self.version.clone(),
                version_number: self.version_number,
                min_version_number: self.min_version_number,
                created: self.created,
                chunk_size: size,
                payloads: self
                    .payloads
                    .iter()
                    .map(|p| WirePayloadV1 {
                        name: p.name.clone(),
                        size: p.size,
                        chunks: p.chunks.iter().map(|c| hexutil::encode(&c.hash)).collect(),
                    })
                    .collect(),
            })
            .map_err(enc),
            Chunking::Cdc(params) => serde_json::to_vec(&WireV2 {
                board: self.board.clone(),
                arch: self.arch.clone(),
                version: self.version.clone(),
                version_number: self.version_number,
                min_version_number: self.min_version_number,
                created: self.created,
                chunking: params,
                payloads: self
                    .payloads
                    .iter()
                    .map(|p| WirePayloadV2 {
                        name: p.name.clone(),
                        size: p.size,
                        chunks: p
                            .chunks
                            .iter()
                            .map(|c| {
                                WireChunk(
                                    hexutil::encode(&c.hash),
                                    c.len,
                                    c.stored,
                                    c.stored_hash.map(|h| hexutil::encode(&h)),
                                )
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .map_err(enc),
            Chunking::Paged { cdc, paging } => serde_json::to_vec(&WireV3 {
                board: self.board.clone(),
                arch: self.arch.clone(),
                version: self.version.clone(),
                version_number: self.version_number,
                min_version_number: self.min_version_number,
                created: self.created,
                chunking: cdc,
                paging,
                payloads: self
                    .payloads
                    .iter()
                    .map(|p| WirePayloadV3 {
                        name: p.name.clone(),
                        size: p.size,
                        pages: p
                            .pages
                            .iter()
                            .map(|g| {
                                WirePage(
                                    hexutil::encode(&g.list_hash),
                                    g.chunks,
                                    g.bytes,
                                    hexutil::encode(&g.page_hash),
                                    g.page_len,
                                    g.stored,
                                )
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .map_err(enc),
        }
    }

    /// Checks the invariants a verified manifest must still satisfy before it is used (the
    /// per-format chunk invariants were checked while decoding).
    pub fn validate(&self) -> Result<(), VerifyError> {
        if !board_name_ok(&self.board) || !board_name_ok(&self.arch) {
            return bad("board or arch is not a valid name".into());
        }
        let v = self.version.as_bytes();
        if v.is_empty() || v.len() > 64 || !v.iter().all(|c| c.is_ascii_graphic()) {
            return bad("version is not 1-64 printable characters".into());
        }
        if self.payloads.is_empty() {
            return bad("no payloads".into());
        }
        for (i, p) in self.payloads.iter().enumerate() {
            if !name_ok(&p.name, 32, b"-") || self.payloads[..i].iter().any(|q| q.name == p.name) {
                return bad(format!("payload name {:?} is invalid or repeated", p.name));
            }
        }
        self.total_payload_size().map(|_| ())
    }

    /// Bytes of payload data in the bundle (stored sizes: compressed where compressed).
    pub fn total_payload_size(&self) -> Result<u64, VerifyError> {
        self.payloads
            .iter()
            .try_fold(0u64, |acc, p| {
                acc.checked_add(p.stored_size())?
                    .checked_add(p.pages_size())
            })
            .ok_or_else(|| VerifyError::BodyMalformed("payload sizes overflow".into()))
    }

    /// Size of the largest chunk (the installer's buffer size).
    pub fn max_chunk(&self) -> usize {
        self.payloads
            .iter()
            .flat_map(|p| p.chunks.iter())
            .map(|c| c.len as usize)
            .max()
            .unwrap_or(0)
    }

    pub fn payload(&self, name: &str) -> Option<&Payload> {
        self.payloads.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_v2(chunks: serde_json::Value, size: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "board": "b", "arch": "x86_64", "version": "1", "version_number": 2,
            "min_version_number": 0, "created": "2026-11-25T12:00:00Z",
            "chunking": {"min": 1024, "avg": 4096, "max": 16384},
            "payloads": [{"name": "root", "size": size, "chunks": chunks}]
        }))
        .unwrap_or_default()
    }

    #[test]
    fn v2_chunks_must_add_up_and_declare_consistent_stored_sizes() {
        let h = "00".repeat(32);
        let ok = wire_v2(
            serde_json::json!([[h, 4000, 4000, null], [h, 100, 50, h]]),
            4100,
        );
        let m = Manifest::decode(2, &ok).expect("valid");
        assert_eq!(m.payloads[0].chunks[1].offset, 4000);
        assert_eq!(m.payloads[0].chunks[1].data_offset, 4000);
        assert_eq!(m.total_payload_size().ok(), Some(4050));
        for (chunks, size) in [
            (serde_json::json!([[h, 4000, 4000, null]]), 4001),
            (serde_json::json!([[h, 4000, 3000, null]]), 4000),
            (serde_json::json!([[h, 4000, 4000, h]]), 4000),
            (serde_json::json!([[h, 4000, 5000, h]]), 4000),
            (serde_json::json!([[h, 20000, 20000, null]]), 20000),
            (serde_json::json!([[h, 0, 0, null]]), 0),
            (serde_json::json!([["zz", 10, 10, null]]), 10),
        ] {
            assert!(
                Manifest::decode(2, &wire_v2(chunks.clone(), size)).is_err(),
                "{chunks}"
            );
        }
    }

    fn wire_v3(pages: serde_json::Value, size: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "board": "b", "arch": "x86_64", "version": "1", "version_number": 2,
            "min_version_number": 0, "created": "2026-11-25T12:00:00Z",
            "chunking": {"min": 1024, "avg": 4096, "max": 16384},
            "paging": {"min": 2, "avg": 4, "max": 8},
            "payloads": [{"name": "root", "size": size, "pages": pages}]
        }))
        .unwrap_or_default()
    }

    #[test]
    fn v3_pages_must_add_up_and_stay_in_their_limits() {
        let h = "00".repeat(32);
        let ok = wire_v3(
            serde_json::json!([[h, 2, 5000, h, 80, 5000], [h, 1, 100, h, 72, 50]]),
            5100,
        );
        let m = Manifest::decode(3, &ok).expect("valid");
        let p = &m.payloads[0];
        assert!(p.chunks.is_empty());
        assert_eq!(
            (p.pages[1].offset, p.pages[1].data_offset),
            (80, 152 + 5000)
        );
        assert_eq!(p.pages[0].data_offset, 152);
        assert_eq!(m.total_payload_size().ok(), Some(152 + 5050));
        for (pages, size) in [
            (serde_json::json!([[h, 2, 5000, h, 80, 5000]]), 5001), // sizes do not add up
            (serde_json::json!([[h, 0, 0, h, 0, 0]]), 0),           // empty page
            (serde_json::json!([[h, 9, 9000, h, 360, 9000]]), 9000), // above paging.max
            (serde_json::json!([[h, 1, 20000, h, 40, 20000]]), 20000), // above chunking.max
            (serde_json::json!([[h, 2, 5000, h, 79, 5000]]), 5000), // page too short
            (serde_json::json!([[h, 2, 5000, h, 145, 5000]]), 5000), // page too long
            (serde_json::json!([[h, 2, 5000, h, 80, 5001]]), 5000), // stored > bytes
            (serde_json::json!([[h, 2, 5000, h, 80, 1]]), 5000),    // stored < chunks
            (serde_json::json!([["zz", 2, 5000, h, 80, 5000]]), 5000),
        ] {
            assert!(
                Manifest::decode(3, &wire_v3(pages.clone(), size)).is_err(),
                "{pages}"
            );
        }
        // A format-3 body is not a format-2 one.
        assert!(Manifest::decode(2, &ok).is_err());
    }

    #[test]
    fn a_v2_body_is_not_read_as_v1_nor_the_other_way() {
        let h = "00".repeat(32);
        let v2 = wire_v2(serde_json::json!([[h, 10, 10, null]]), 10);
        assert!(Manifest::decode(1, &v2).is_err());
        assert!(Manifest::decode(3, &v2).is_err());
        assert!(matches!(
            Manifest::decode(4, &v2),
            Err(VerifyError::UnsupportedVersion(4))
        ));
    }
}
