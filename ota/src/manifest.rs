//! The bundle manifest: what a bundle holds and for whom. Pure data and its invariants; decoded
//! only from bytes whose signature verified (`format::open`).
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::format::VerifyError;
use crate::hexutil;

pub const DEFAULT_CHUNK_SIZE: u64 = 64 * 1024;
pub const MIN_CHUNK_SIZE: u64 = 4 * 1024;
pub const MAX_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub board: String,
    pub arch: String,
    pub version: String,
    pub version_number: u64,
    pub min_version_number: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub chunk_size: u64,
    pub payloads: Vec<Payload>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub name: String,
    pub size: u64,
    /// 32-byte BLAKE3 hashes of each chunk, hex, concatenated.
    pub chunks: String,
}

impl Payload {
    pub fn chunk_count(&self, chunk_size: u64) -> u64 {
        self.size.div_ceil(chunk_size)
    }

    /// Hash of chunk `i` (the manifest was validated, so the hex is well formed).
    pub fn chunk_hash(&self, i: u64) -> [u8; 32] {
        let at = (i * 64) as usize;
        self.chunks
            .get(at..at + 64)
            .and_then(hexutil::decode_array)
            .unwrap_or([0; 32])
    }

    pub fn chunk_hashes(&self) -> Vec<[u8; 32]> {
        (0..(self.chunks.len() / 64) as u64)
            .map(|i| self.chunk_hash(i))
            .collect()
    }
}

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

impl Manifest {
    /// Checks the invariants a verified manifest must still satisfy before it is used.
    pub fn validate(&self) -> Result<(), VerifyError> {
        let bad = |m: String| Err(VerifyError::BodyMalformed(m));
        if !board_name_ok(&self.board) || !board_name_ok(&self.arch) {
            return bad("board or arch is not a valid name".into());
        }
        let v = self.version.as_bytes();
        if v.is_empty() || v.len() > 64 || !v.iter().all(|c| c.is_ascii_graphic()) {
            return bad("version is not 1-64 printable characters".into());
        }
        if !self.chunk_size.is_power_of_two()
            || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size)
        {
            return bad(format!(
                "chunk size {} is not a power of two in 4 KiB..16 MiB",
                self.chunk_size
            ));
        }
        if self.payloads.is_empty() {
            return bad("no payloads".into());
        }
        for (i, p) in self.payloads.iter().enumerate() {
            if !name_ok(&p.name, 32, b"-") || self.payloads[..i].iter().any(|q| q.name == p.name) {
                return bad(format!("payload name {:?} is invalid or repeated", p.name));
            }
            let want = p.chunk_count(self.chunk_size) * 64;
            if p.chunks.len() as u64 != want || hexutil::decode(&p.chunks).is_none() {
                return bad(format!("payload {} lists the wrong chunk hashes", p.name));
            }
        }
        self.total_payload_size().map(|_| ())
    }

    pub fn total_payload_size(&self) -> Result<u64, VerifyError> {
        self.payloads
            .iter()
            .try_fold(0u64, |acc, p| acc.checked_add(p.size))
            .ok_or_else(|| VerifyError::BodyMalformed("payload sizes overflow".into()))
    }

    pub fn payload(&self, name: &str) -> Option<&Payload> {
        self.payloads.iter().find(|p| p.name == name)
    }
}
