//! Delta planning: which chunks of a bundle a device already has (in its active slot, already in
//! place in the target slot from an interrupted attempt, or all zero) and which byte ranges of
//! the bundle it must download. Pure planning over chunk indexes; reading slots is separate.
use std::collections::HashMap;

use crate::bundle::VerifiedBundle;
use crate::storage::SlotStorage;

/// Where chunk hashes were found in a slot: hash → offset.
#[derive(Debug, Default, Clone)]
pub struct ChunkIndex {
    pub chunk_size: u64,
    pub offsets: HashMap<[u8; 32], u64>,
    /// Hash of each chunk at its position (for finding chunks already in place).
    pub at: Vec<[u8; 32]>,
}

/// Hashes a slot chunk by chunk, up to `limit` bytes (memory: one chunk + 40 bytes per chunk).
pub fn index_slot(
    slot: &mut dyn SlotStorage,
    chunk_size: u64,
    limit: u64,
) -> std::io::Result<ChunkIndex> {
    let len = slot.capacity()?.min(limit);
    let mut index = ChunkIndex {
        chunk_size,
        ..Default::default()
    };
    let mut buf = vec![0u8; chunk_size as usize];
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(chunk_size) as usize;
        if slot.read_at(offset, &mut buf[..n]).is_err() {
            break; // a file shorter than expected: index what is there
        }
        let hash = *blake3::hash(&buf[..n]).as_bytes();
        index.offsets.entry(hash).or_insert(offset);
        index.at.push(hash);
        offset += n as u64;
    }
    Ok(index)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFrom {
    /// The target already holds it at the right place (an interrupted earlier attempt).
    InPlace,
    /// All zero bytes.
    Zero,
    /// Copy from the active slot at this offset.
    Active(u64),
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
    pub download_bytes: u64,
    pub local_bytes: u64,
    pub total_bytes: u64,
}

/// Indexes a payload may use: the active slot's content and the target's current content.
#[derive(Debug, Default)]
pub struct LocalChunks<'a> {
    pub active: Option<&'a ChunkIndex>,
    pub target: Option<&'a ChunkIndex>,
}

/// Plans every payload. `local` gives, per payload name, what the device already has.
pub fn plan<'i>(bundle: &VerifiedBundle, local: &dyn Fn(&str) -> LocalChunks<'i>) -> Plan {
    let m = &bundle.manifest;
    let mut out = Plan::default();
    for p in &m.payloads {
        let have = local(&p.name);
        let mut chunks = Vec::new();
        for i in 0..p.chunk_count(m.chunk_size) {
            let hash = p.chunk_hash(i);
            let len = (p.size - i * m.chunk_size).min(m.chunk_size);
            let from = source_of(&hash, i, len, m.chunk_size, &have);
            match from {
                ChunkFrom::Download => out.download_bytes += len,
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

fn source_of(
    hash: &[u8; 32],
    i: u64,
    len: u64,
    chunk_size: u64,
    have: &LocalChunks<'_>,
) -> ChunkFrom {
    let usable = |idx: &ChunkIndex| idx.chunk_size == chunk_size;
    if let Some(t) = have.target.filter(|t| usable(t))
        && t.at.get(i as usize) == Some(hash)
    {
        return ChunkFrom::InPlace;
    }
    if *hash == zero_hash(len) {
        return ChunkFrom::Zero;
    }
    match have
        .active
        .filter(|a| usable(a))
        .and_then(|a| a.offsets.get(hash))
    {
        Some(&offset) => ChunkFrom::Active(offset),
        None => ChunkFrom::Download,
    }
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

/// Runs of consecutive chunks to download: (first chunk, chunk count), capped at `max_chunks`
/// per run so one HTTP request never spans more than `max_chunks × chunk size` bytes.
pub fn download_runs(plan: &PayloadPlan, max_chunks: u64) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (i, from) in plan.chunks.iter().enumerate() {
        if *from != ChunkFrom::Download {
            continue;
        }
        let i = i as u64;
        match runs.last_mut() {
            Some((start, n)) if *start + *n == i && *n < max_chunks => *n += 1,
            _ => runs.push((i, 1)),
        }
    }
    runs
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
        assert_eq!(download_runs(&p, 16), vec![(0, 2), (3, 3), (7, 1)]);
        assert_eq!(download_runs(&p, 2), vec![(0, 2), (3, 2), (5, 1), (7, 1)]);
    }
}
