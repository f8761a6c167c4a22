//! Cuts a byte stream into fixed-size chunks with bounded memory: one chunk buffer.

pub struct Chunker {
    chunk_size: usize,
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new(chunk_size: u64) -> Self {
        Chunker {
            chunk_size: chunk_size as usize,
            buf: Vec::with_capacity(chunk_size as usize),
        }
    }

    /// Feeds `data`; calls `each` with every completed chunk. Stops at the first error.
    pub fn feed<E>(
        &mut self,
        mut data: &[u8],
        each: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            let take = (self.chunk_size - self.buf.len()).min(data.len());
            if self.buf.is_empty() && take == self.chunk_size {
                each(&data[..take])?;
            } else {
                self.buf.extend_from_slice(&data[..take]);
                if self.buf.len() == self.chunk_size {
                    each(&self.buf)?;
                    self.buf.clear();
                }
            }
            data = &data[take..];
        }
        Ok(())
    }

    /// Hands over the last, short chunk if there is one.
    pub fn finish<E>(&mut self, each: &mut dyn FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if !self.buf.is_empty() {
            each(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Cuts a reader into content-defined chunks (FastCDC 2020, normalization level 1: what the
/// bundle builder and the device both use, so equal content gives equal chunks) and hands each
/// with its offset to `each`. Memory: one buffer of `params.max` bytes and the current chunk.
pub fn cdc_chunks(
    r: impl std::io::Read,
    params: crate::manifest::CdcParams,
    each: &mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut total = 0;
    for chunk in fastcdc::v2020::StreamCDC::new(r, params.min, params.avg, params.max) {
        let chunk = chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(e) => e,
            other => std::io::Error::other(other.to_string()),
        })?;
        each(chunk.offset, &chunk.data)?;
        total = chunk.offset + chunk.length as u64;
    }
    Ok(total)
}

/// A slot read front to back as a `Read` (for chunking it), up to `len` bytes.
pub struct SlotReader<'a> {
    slot: &'a mut dyn crate::storage::SlotStorage,
    at: u64,
    len: u64,
}

impl<'a> SlotReader<'a> {
    pub fn new(slot: &'a mut dyn crate::storage::SlotStorage, len: u64) -> Self {
        SlotReader { slot, at: 0, len }
    }
}

impl std::io::Read for SlotReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len - self.at).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.slot.read_at(self.at, &mut buf[..n])?;
        self.at += n as u64;
        Ok(n)
    }
}

/// BLAKE3 of every chunk of a reader, as the manifest lists them.
pub fn hash_reader(
    mut r: impl std::io::Read,
    chunk_size: u64,
) -> std::io::Result<(u64, Vec<[u8; 32]>)> {
    let mut hashes = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; chunk_size as usize];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = r.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        total += filled as u64;
        hashes.push(*blake3::hash(&buf[..filled]).as_bytes());
        if filled < buf.len() {
            break;
        }
    }
    Ok((total, hashes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The device and the builder must cut identically, across releases: a `fastcdc` update
    /// that moved cut points would silently make every delta a full download. Pins the cut
    /// points of a fixed input with Hearth's sizes.
    #[test]
    fn cdc_cut_points_are_pinned() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let data: Vec<u8> = (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let mut cuts = Vec::new();
        let total = cdc_chunks(
            &data[..],
            crate::manifest::CdcParams {
                min: 16 * 1024,
                avg: 32 * 1024,
                max: 128 * 1024,
            },
            &mut |off, c| {
                cuts.push((off, c.len()));
                Ok(())
            },
        )
        .expect("chunking a slice");
        assert_eq!(total, 1_000_000);
        let digest = blake3::hash(format!("{cuts:?}").as_bytes())
            .to_hex()
            .to_string();
        assert_eq!(
            (cuts.len(), &digest[..16]),
            (25, "147a6a7c489cd574"),
            "{cuts:?}"
        );
    }

    #[test]
    fn pieces_of_any_size_make_the_same_chunks() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for piece in [1, 7, 4096, 4097, 10_000] {
            let mut c = Chunker::new(4096);
            let mut got = Vec::new();
            let mut each = |b: &[u8]| -> Result<(), ()> {
                got.push(b.to_vec());
                Ok(())
            };
            for p in data.chunks(piece) {
                c.feed(p, &mut each).expect("feed");
            }
            c.finish(&mut each).expect("finish");
            assert_eq!(
                got.iter().map(Vec::len).collect::<Vec<_>>(),
                vec![4096, 4096, 1808]
            );
            assert_eq!(got.concat(), data);
        }
    }
}
