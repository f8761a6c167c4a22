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
