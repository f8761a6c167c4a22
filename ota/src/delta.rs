//! Delta planning: which chunks of a bundle a device already has (in its active slot, already in
//! place in the target slot from an interrupted attempt, all zero, or put in place earlier in
//! the same install) and which byte ranges of the bundle it must download. Pure planning over chunk lists; reading slots is separate.
//!
//! The active slot is cut the way the bundle was (fixed chunks for format 1, FastCDC with the
//! manifest's sizes for format 2), so a file that moved inside the image is still found.
use std::collections::HashMap;

use crate::bundle::VerifiedBundle;
use crate::chunker::{SlotReader, cdc_chunks};
use crate::manifest::{Chunk, Chunking};
use crate::storage::SlotStorage;

/// Where chunk hashes were found in a slot: hash → offset.
#[derive(Debug, Clone)]
pub struct ChunkIndex {
    pub chunking: Chunking,
    pub offsets: HashMap<[u8; 32], u64>,
    /// Format 3: every chunk of the slot in order (hash, length), to derive pages from.
    pub seq: Vec<([u8; 32], u32)>,
}

impl ChunkIndex {
    /// Bytes of the slot this index covers (format 3: its chunk sequence; 0 otherwise).
    pub fn bytes(&self) -> u64 {
        self.seq.iter().map(|(_, len)| u64::from(*len)).sum()
    }
}

/// Hashes a slot chunk by chunk, up to `limit` bytes (memory: one chunk + 40 bytes per chunk,
/// and for format 3 another 36 bytes per chunk for the sequence pages are derived from).
pub fn index_slot(
    slot: &mut dyn SlotStorage,
    chunking: Chunking,
    limit: u64,
) -> std::io::Result<ChunkIndex> {
    let len = slot.capacity()?.min(limit);
    let mut index = ChunkIndex {
        chunking,
        offsets: HashMap::new(),
        seq: Vec::new(),
    };
    match chunking {
        Chunking::Fixed { size } => {
            let mut buf = vec![0u8; size as usize];
            let mut offset = 0;
            while offset < len {
                let n = (len - offset).min(size) as usize;
                if slot.read_at(offset, &mut buf[..n]).is_err() {
                    break; // a file shorter than expected: index what is there
                }
                let hash = *blake3::hash(&buf[..n]).as_bytes();
                index.offsets.entry(hash).or_insert(offset);
                offset += n as u64;
            }
        }
        Chunking::Cdc(params) | Chunking::Paged { cdc: params, .. } => {
            let keep_seq = matches!(chunking, Chunking::Paged { .. });
            let (offsets, seq) = (&mut index.offsets, &mut index.seq);
            cdc_chunks(SlotReader::new(slot, len), params, &mut |offset, bytes| {
                let hash = *blake3::hash(bytes).as_bytes();
                offsets.entry(hash).or_insert(offset);
                if keep_seq {
                    seq.push((hash, bytes.len() as u32));
                }
                Ok(())
            })?;
        }
    }
    Ok(index)
}

/// Which chunks of a payload the target already holds at their place (an interrupted earlier
/// attempt): one read of the target's first `size` bytes.
pub fn in_place(target: &mut dyn SlotStorage, chunks: &[Chunk]) -> Vec<bool> {
    let max = chunks.iter().map(|c| c.len as usize).max().unwrap_or(0);
    let mut buf = vec![0u8; max];
    let mut ended = false;
    chunks
        .iter()
        .map(|c| {
            if ended {
                return false;
            }
            let b = &mut buf[..c.len as usize];
            match target.read_at(c.offset, b) {
                Ok(()) => *blake3::hash(b).as_bytes() == c.hash,
                Err(e) => {
                    // A target that ends here (a new or shorter file) has none of the chunks
                    // after it (they come in offset order): no read for each.
                    ended = e.kind() == std::io::ErrorKind::UnexpectedEof;
                    false
                }
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFrom {
    /// The target already holds it at the right place (an interrupted earlier attempt).
    InPlace,
    /// All zero bytes.
    Zero,
    /// Copy from the active slot at this offset.
    Active(u64),
    /// The same content as a chunk this install puts in place before it (in payload number
    /// `payload`'s target, at `offset`): downloaded once, copied from there. A root squashfs
    /// holds the kernel and initrd in `/boot` (stored raw: they are compressed already), so
    /// without this a new initrd was downloaded twice.
    Written { payload: usize, offset: u64 },
    /// Download from the bundle.
    Download,
}

#[derive(Debug, Clone)]
pub struct PayloadPlan {
    pub name: String,
    pub chunks: Vec<ChunkFrom>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub payloads: Vec<PayloadPlan>,
    /// Bundle bytes to download (stored sizes: compressed where the chunk is).
    pub download_bytes: u64,
    /// Payload bytes those downloads make once unpacked.
    pub download_content_bytes: u64,
    pub local_bytes: u64,
    pub total_bytes: u64,
}

/// What a payload may use: the active slot's content and which chunks are in place already.
#[derive(Debug, Default)]
pub struct LocalChunks<'a> {
    pub active: Option<&'a ChunkIndex>,
    pub in_place: Option<&'a [bool]>,
}

/// Plans every payload. `local` gives, per payload name, what the device already has.
pub fn plan<'i>(bundle: &VerifiedBundle, local: &dyn Fn(&str) -> LocalChunks<'i>) -> Plan {
    let m = &bundle.manifest;
    let mut out = Plan::default();
    let mut zeros = HashMap::new();
    // Every chunk content this install has put in place so far: where it is.
    let mut placed: HashMap<[u8; 32], (usize, u64)> = HashMap::new();
    for (pi, p) in m.payloads.iter().enumerate() {
        let have = local(&p.name);
        let active = have.active.filter(|a| a.chunking == m.chunking);
        let mut chunks = Vec::with_capacity(p.chunks.len());
        for (i, c) in p.chunks.iter().enumerate() {
            let len = u64::from(c.len);
            // Whether the chunk is all zeros, known only by hashing `len` zero bytes: once per
            // length with fixed chunks; content-defined chunks have thousands of lengths, so
            // only a chunk stored at least 16:1 compressed (as zeros are) is asked.
            let fixed = matches!(m.chunking, Chunking::Fixed { .. });
            let may_be_zero = fixed || (c.stored > 0 && u64::from(c.stored) * 16 <= len);
            let is_zero =
                may_be_zero && c.hash == *zeros.entry(c.len).or_insert_with(|| zero_hash(len));
            let from = if have.in_place.and_then(|v| v.get(i)) == Some(&true) {
                ChunkFrom::InPlace
            } else if is_zero {
                ChunkFrom::Zero
            } else if let Some(&offset) = active.and_then(|a| a.offsets.get(&c.hash)) {
                ChunkFrom::Active(offset)
            } else if let Some(&(payload, offset)) = placed.get(&c.hash) {
                ChunkFrom::Written { payload, offset }
            } else {
                ChunkFrom::Download
            };
            placed.entry(c.hash).or_insert((pi, c.offset));
            match from {
                ChunkFrom::Download => {
                    out.download_bytes += u64::from(c.stored);
                    out.download_content_bytes += len;
                }
                _ => out.local_bytes += len,
            }
            out.total_bytes += len;
            chunks.push(from);
        }
        out.payloads.push(PayloadPlan {
            name: p.name.clone(),
            chunks,
        });
    }
    out
}

pub fn zero_hash(len: u64) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    let zeros = [0u8; 4096];
    let mut left = len;
    while left > 0 {
        let n = left.min(4096) as usize;
        h.update(&zeros[..n]);
        left -= n as u64;
    }
    *h.finalize().as_bytes()
}

/// Runs of consecutive chunks to download: (first chunk, chunk count). Consecutive chunks are
/// stored back to back, so a run is one byte range; a run ends before it would exceed
/// `max_bytes` stored bytes, so one HTTP request never asks for more (a single chunk is
/// always its own run).
pub fn download_runs(plan: &PayloadPlan, chunks: &[Chunk], max_bytes: u64) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64, u64)> = Vec::new();
    for (i, from) in plan.chunks.iter().enumerate() {
        if *from != ChunkFrom::Download {
            continue;
        }
        let (i, stored) = (i as u64, u64::from(chunks[i].stored));
        match runs.last_mut() {
            Some((start, n, bytes)) if *start + *n == i && *bytes + stored <= max_bytes => {
                *n += 1;
                *bytes += stored;
            }
            _ => runs.push((i, 1, stored)),
        }
    }
    runs.into_iter().map(|(s, n, _)| (s, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_coalesce_neighbours_and_respect_the_cap() {
        use ChunkFrom::*;
        let p = PayloadPlan {
            name: "root".into(),
            chunks: vec![
                Download,
                Download,
                Active(0),
                Download,
                Download,
                Download,
                Zero,
                Download,
            ],
        };
        let chunks: Vec<Chunk> = (0..8)
            .map(|i| Chunk {
                offset: i * 100,
                len: 100,
                hash: [0; 32],
                data_offset: i * 100,
                stored: 100,
                stored_hash: None,
            })
            .collect();
        assert_eq!(
            download_runs(&p, &chunks, 1600),
            vec![(0, 2), (3, 3), (7, 1)]
        );
        assert_eq!(
            download_runs(&p, &chunks, 200),
            vec![(0, 2), (3, 2), (5, 1), (7, 1)]
        );
    }
}
