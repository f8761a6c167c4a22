//! Where bundle bytes come from: a local file or HTTP Range requests (`http.rs`). Sources hand
//! bytes to a sink in pieces so a long range never has to fit in memory.
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("truncated: needed {needed} bytes, the source has {have}")]
    Truncated { needed: u64, have: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(String),
}

/// A sink gets the bytes of a range in order; `Break` stops the read early (its owner keeps
/// the reason).
pub type Sink<'a> = dyn FnMut(&[u8]) -> ControlFlow<()> + 'a;

pub trait BundleSource {
    /// Total length of the bundle.
    fn size(&mut self) -> Result<u64, SourceError>;
    /// Streams `len` bytes at `offset` into `sink`; errors if they are not all there.
    fn read_at(&mut self, offset: u64, len: u64, sink: &mut Sink<'_>) -> Result<(), SourceError>;
    /// Bytes fetched from the network so far (0 for local sources).
    fn bytes_fetched(&self) -> u64 {
        0
    }
}

/// Reads a small range into memory.
pub fn read_vec(src: &mut dyn BundleSource, offset: u64, len: u64) -> Result<Vec<u8>, SourceError> {
    let mut out = Vec::with_capacity(len as usize);
    src.read_at(offset, len, &mut |b| {
        out.extend_from_slice(b);
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

pub struct FileSource {
    path: PathBuf,
    file: std::fs::File,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let file = std::fs::File::open(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FileSource {
            path: path.to_path_buf(),
            file,
        })
    }
}

impl BundleSource for FileSource {
    fn size(&mut self) -> Result<u64, SourceError> {
        let meta = self.file.metadata().map_err(|source| SourceError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(meta.len())
    }

    fn read_at(&mut self, offset: u64, len: u64, sink: &mut Sink<'_>) -> Result<(), SourceError> {
        let have = self.size()?;
        if offset.saturating_add(len) > have {
            return Err(SourceError::Truncated {
                needed: offset.saturating_add(len),
                have,
            });
        }
        let mut buf = vec![0u8; len.min(1 << 20) as usize];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            self.file
                .read_exact_at(&mut buf[..n], offset + done)
                .map_err(|source| SourceError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if sink(&buf[..n]).is_break() {
                return Ok(());
            }
            done += n as u64;
        }
        Ok(())
    }
}
