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
    pub chunks: Vec<Chunk>,
}

impl Payload {
    /// Bytes this payload occupies in the bundle.
    pub fn stored_size(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.stored)).sum()
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
            .try_fold(0u64, |acc, p| acc.checked_add(p.stored_size()))
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

    #[test]
    fn a_v2_body_is_not_read_as_v1_nor_the_other_way() {
        let h = "00".repeat(32);
        let v2 = wire_v2(serde_json::json!([[h, 10, 10, null]]), 10);
        assert!(Manifest::decode(1, &v2).is_err());
        assert!(matches!(
            Manifest::decode(3, &v2),
            Err(VerifyError::UnsupportedVersion(3))
        ));
    }
}
