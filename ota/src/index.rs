//! The signed per-channel, per-board index of an update repository, and the device-side rules
//! for accepting one: signature chain, channel and board, expiry, and anti-replay.
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::format::{self, Kind, Trust, VerifyError};
use crate::keylist::SignedKeyList;
use crate::source::BundleSource;

/// The index naming format-1 bundles: what devices on 0.1 read (their URL never changes).
pub const INDEX_FILE: &str = "index.hidx";
/// The index naming format-2 bundles: what devices from 0.2 on read.
pub const INDEX_FILE_V2: &str = "index-v2.hidx";
/// The index naming format-3 bundles (paged manifest).
pub const INDEX_FILE_V3: &str = "index-v3.hidx";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub channel: String,
    pub board: String,
    pub serial: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    pub latest: Latest,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Latest {
    pub version: String,
    pub version_number: u64,
    pub min_version_number: u64,
    pub arch: String,
    /// Path of the bundle relative to the repository root.
    pub bundle: String,
    pub size: u64,
    /// BLAKE3 of the bundle's signed prefix (pins exactly one bundle).
    pub prefix_blake3: String,
    pub release_notes: String,
}

/// What a device remembers between checks so an old index cannot be replayed to it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SeenIndex {
    pub serial: u64,
    pub body_blake3: String,
}

/// An index that passed every check, with what to remember about it.
#[derive(Debug, Clone)]
pub struct AcceptedIndex {
    pub index: Index,
    pub seen: SeenIndex,
    pub keylist_serial: u64,
}

pub fn sign(index: &Index, keylist: &SignedKeyList, key: &SigningKey) -> Vec<u8> {
    let body = serde_json::to_vec(index).unwrap_or_default();
    format::encode(Kind::Index, keylist, &body, key)
}

/// Verifies an index for `channel`/`board` at time `now` against what was seen last.
pub fn accept(
    bytes: &[u8],
    trust: &Trust,
    channel: &str,
    board: &str,
    now: OffsetDateTime,
    last: Option<&SeenIndex>,
) -> Result<AcceptedIndex, VerifyError> {
    let (index, seen, keylist_serial) = decode(bytes, trust)?;
    if index.channel != channel || index.board != board {
        return Err(VerifyError::IndexMismatch {
            expected: format!("{channel}/{board}"),
            found: format!("{}/{}", index.channel, index.board),
        });
    }
    if now >= index.expires {
        return Err(VerifyError::IndexExpired(crate::manifest::rfc3339(
            index.expires,
        )));
    }
    if let Some(last) = last {
        let replay = index.serial < last.serial || (index.serial == last.serial && seen != *last);
        if replay {
            return Err(VerifyError::IndexReplay {
                serial: index.serial,
                seen: last.serial,
            });
        }
    }
    Ok(AcceptedIndex {
        index,
        seen,
        keylist_serial,
    })
}

/// Verifies the signature chain and decodes, without the device-side freshness rules (for
/// the publisher, which reads its own previous index).
pub fn decode(bytes: &[u8], trust: &Trust) -> Result<(Index, SeenIndex, u64), VerifyError> {
    let mut src = MemorySource(bytes);
    let opened = format::open(&mut src, Kind::Index, trust)?;
    if opened.prefix_len != bytes.len() as u64 {
        return Err(VerifyError::SizeMismatch {
            expected: opened.prefix_len,
            actual: bytes.len() as u64,
        });
    }
    let index: Index = serde_json::from_slice(&opened.body)
        .map_err(|e| VerifyError::BodyMalformed(e.to_string()))?;
    format::check_key_window(&opened.release_key, index.created)?;
    let seen = SeenIndex {
        serial: index.serial,
        body_blake3: blake3::hash(&opened.body).to_hex().to_string(),
    };
    Ok((index, seen, opened.keylist.serial))
}

impl Latest {
    /// Checks that an opened bundle is the one this index names.
    pub fn matches(&self, bundle: &crate::bundle::VerifiedBundle) -> Result<(), VerifyError> {
        self.matches_parts(&bundle.manifest, &bundle.opened.prefix_blake3, bundle.size)
    }

    /// The same check on a bundle whose format-3 pages are not read yet (check it before
    /// reading the running slot to derive them).
    pub fn matches_pending(&self, bundle: &crate::bundle::Pending) -> Result<(), VerifyError> {
        self.matches_parts(&bundle.manifest, &bundle.opened.prefix_blake3, bundle.size)
    }

    fn matches_parts(
        &self,
        m: &crate::manifest::Manifest,
        prefix_blake3: &[u8; 32],
        size: u64,
    ) -> Result<(), VerifyError> {
        let prefix = crate::hexutil::encode(prefix_blake3);
        let same = m.version_number == self.version_number
            && m.version == self.version
            && m.min_version_number == self.min_version_number
            && m.arch == self.arch
            && size == self.size
            && prefix == self.prefix_blake3;
        if !same {
            return Err(VerifyError::BundleNotInIndex(format!(
                "index names {} ({}), the bundle is {} ({})",
                self.version, self.prefix_blake3, m.version, prefix
            )));
        }
        Ok(())
    }
}

/// An in-memory byte slice as a bundle source.
pub struct MemorySource<'a>(pub &'a [u8]);

impl BundleSource for MemorySource<'_> {
    fn size(&mut self) -> Result<u64, crate::source::SourceError> {
        Ok(self.0.len() as u64)
    }

    fn read_at(
        &mut self,
        offset: u64,
        len: u64,
        sink: &mut crate::source::Sink<'_>,
    ) -> Result<(), crate::source::SourceError> {
        let end = offset.saturating_add(len);
        if end > self.0.len() as u64 {
            return Err(crate::source::SourceError::Truncated {
                needed: end,
                have: self.0.len() as u64,
            });
        }
        let _ = sink(&self.0[offset as usize..end as usize]);
        Ok(())
    }
}
