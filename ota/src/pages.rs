//! Format 3's two-level manifest (`docs/ota-bundle.md`, "Bundle manifest, format 3"): a
//! payload's chunk list is cut into *pages*, content-defined groups of consecutive chunks. The
//! signed body lists each page by two hashes: the hash of its **chunk list** (every chunk's
//! hash and length: what a device can compute from its running slot, which it cuts with the same
//! FastCDC sizes) and the hash of its **page bytes** in the bundle (the chunk list plus where
//! and how each chunk is stored). A device downloads only the pages it cannot derive; a page it
//! derives is used only when its chunk list hashes to the signed value.
//!
//! Page bytes, per chunk, in payload order: BLAKE3 of the chunk (32 bytes), its length (u32 LE),
//! its stored size (u32 LE) and, only when stored < length (a zstd frame), the BLAKE3 of the
//! stored bytes (32 bytes). Parsed only after the whole page hashed to its signed hash.
use serde::{Deserialize, Serialize};

use crate::format::VerifyError;

/// Bytes of one chunk entry in a page without / with a stored hash.
pub const ENTRY_RAW: u32 = 40;
pub const ENTRY_PACKED: u32 = 72;

/// How chunk lists are cut into pages, in chunks: a page ends after a chunk whose hash's first
/// four bytes (u32 LE) are a multiple of `avg` once it holds `min` chunks, and at `max` chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Paging {
    /// Hearth's sizes: pages of 16 + ~64 chunks (about 2.5 MiB of payload, 3–6 KB of page
    /// bytes); measured in `docs/ota.md`.
    pub const DEFAULT: Paging = Paging {
        min: 16,
        avg: 64,
        max: 256,
    };

    /// `avg` a power of two, `1 ≤ min ≤ max ≤ 4096`.
    pub fn valid(&self) -> bool {
        self.avg.is_power_of_two()
            && self.avg <= 4096
            && self.min >= 1
            && self.min <= self.max
            && self.max <= 4096
    }

    /// Whether a page holding `count` chunks ends after the chunk hashed `hash`.
    fn ends_after(&self, count: u32, hash: &[u8; 32]) -> bool {
        let h = u32::from_le_bytes([hash[0], hash[1], hash[2], hash[3]]);
        count >= self.max || (count >= self.min && h & (self.avg - 1) == 0)
    }
}

/// Cuts a chunk list (hashes, in order) into pages: returns each page's chunk count.
pub fn cut<'a>(hashes: impl Iterator<Item = &'a [u8; 32]>, paging: Paging) -> Vec<u32> {
    let mut pages = Vec::new();
    let mut count = 0u32;
    for h in hashes {
        count += 1;
        if paging.ends_after(count, h) {
            pages.push(count);
            count = 0;
        }
    }
    if count > 0 {
        pages.push(count);
    }
    pages
}

/// BLAKE3 of a chunk list: every chunk's hash and length (u32 LE), in order.
pub fn list_hash<'a>(chunks: impl Iterator<Item = (&'a [u8; 32], u32)>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for (hash, len) in chunks {
        h.update(hash);
        h.update(&len.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

/// One chunk entry of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub hash: [u8; 32],
    pub len: u32,
    pub stored: u32,
    pub stored_hash: Option<[u8; 32]>,
}

/// The page bytes of `entries`.
pub fn encode(entries: impl Iterator<Item = Entry>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.hash);
        out.extend_from_slice(&e.len.to_le_bytes());
        out.extend_from_slice(&e.stored.to_le_bytes());
        if let Some(h) = e.stored_hash {
            out.extend_from_slice(&h);
        }
    }
    out
}

/// Parses page bytes that already matched their signed hash: exactly `count` entries, every
/// byte used, each entry valid (length 1 … `max_chunk`; stored = length without a stored hash,
/// 0 < stored < length with one).
pub fn parse(bytes: &[u8], count: u32, max_chunk: u32) -> Result<Vec<Entry>, VerifyError> {
    let bad = |m: String| VerifyError::BodyMalformed(format!("page: {m}"));
    let mut out = Vec::with_capacity(count as usize);
    let mut rest = bytes;
    fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
        let (a, b) = rest.split_first_chunk::<N>()?;
        *rest = b;
        Some(*a)
    }
    for i in 0..count {
        let short = || bad(format!("ends inside entry {i}"));
        let hash: [u8; 32] = take(&mut rest).ok_or_else(short)?;
        let len = u32::from_le_bytes(take(&mut rest).ok_or_else(short)?);
        let stored = u32::from_le_bytes(take(&mut rest).ok_or_else(short)?);
        if len == 0 || len > max_chunk || stored == 0 || stored > len {
            return Err(bad(format!(
                "entry {i}: length {len}, stored {stored} out of range"
            )));
        }
        let stored_hash = if stored < len {
            Some(take::<32>(&mut rest).ok_or_else(short)?)
        } else {
            None
        };
        out.push(Entry {
            hash,
            len,
            stored,
            stored_hash,
        });
    }
    if !rest.is_empty() {
        return Err(bad(format!("{} bytes after the last entry", rest.len())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u32) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
            .collect()
    }

    /// The builder and every device must cut pages identically, across releases (like chunk
    /// cut points in `chunker.rs`): pins the page sizes of a fixed chunk list.
    #[test]
    fn page_cut_points_are_pinned() {
        let h = hashes(2000);
        let pages = cut(h.iter(), Paging::DEFAULT);
        assert_eq!(pages.iter().sum::<u32>(), 2000);
        assert!(
            pages[..pages.len() - 1]
                .iter()
                .all(|&n| (16..=256).contains(&n))
        );
        let digest = blake3::hash(format!("{pages:?}").as_bytes()).to_hex();
        assert_eq!(
            (pages.len(), &digest.as_str()[..16]),
            (30, "794b641fb152731c"),
            "{pages:?}"
        );
    }

    #[test]
    fn an_inserted_chunk_changes_only_the_pages_around_it() {
        let a = hashes(3000);
        let mut b = a.clone();
        b.insert(40, [7; 32]);
        let pages_of = |h: &[[u8; 32]]| {
            let mut at = 0usize;
            cut(h.iter(), Paging::DEFAULT)
                .into_iter()
                .map(|n| {
                    let l = list_hash(h[at..at + n as usize].iter().map(|x| (x, 1)));
                    at += n as usize;
                    l
                })
                .collect::<Vec<_>>()
        };
        let (pa, pb) = (pages_of(&a), pages_of(&b));
        let new = pb.iter().filter(|p| !pa.contains(p)).count();
        assert!(pa.len() > 20);
        assert!(new <= 2, "{new} of {} pages changed", pb.len());
    }

    #[test]
    fn pages_round_trip_and_bad_pages_are_refused() {
        let e = [
            Entry {
                hash: [1; 32],
                len: 100,
                stored: 100,
                stored_hash: None,
            },
            Entry {
                hash: [2; 32],
                len: 100,
                stored: 40,
                stored_hash: Some([3; 32]),
            },
        ];
        let bytes = encode(e.iter().copied());
        assert_eq!(bytes.len() as u32, ENTRY_RAW + ENTRY_PACKED);
        assert_eq!(parse(&bytes, 2, 1000).ok(), Some(e.to_vec()));
        // Too few or too many entries, a trailing byte, a chunk above the maximum.
        assert!(parse(&bytes, 1, 1000).is_err());
        assert!(parse(&bytes, 3, 1000).is_err());
        assert!(parse(&[bytes.clone(), vec![0]].concat(), 2, 1000).is_err());
        assert!(parse(&bytes, 2, 99).is_err());
        // stored > len, stored = 0, len = 0.
        for (len, stored) in [(100u32, 101u32), (100, 0), (0, 0)] {
            let one = encode(std::iter::once(Entry {
                hash: [1; 32],
                len,
                stored,
                stored_hash: None,
            }));
            assert!(parse(&one, 1, 1000).is_err(), "{len} {stored}");
        }
    }
}
