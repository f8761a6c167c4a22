//! Moving a file's bytes between the network and the disk (issue 17): as few copies and
//! blocking-pool trips as the kernel allows, with the disk working while the network does.
//!
//! - **Download** ([`read_stream`]): one blocking-pool trip reads [`READ_CHUNK`] bytes straight
//!   into the buffer that becomes the body frame (no intermediate buffer as with
//!   `tokio::fs::File` + `ReaderStream`), and the next chunk is already being read while the
//!   current one is encrypted and sent. Memory: two chunks per download.
//! - **Upload** ([`Writer`]): body frames are kept as they arrived (no copy into a
//!   `BufWriter`, no second copy into `tokio::fs::File`'s buffer) and written with one `writev`
//!   per [`WRITE_BATCH`] on the blocking pool, while the next batch arrives. After each batch the
//!   kernel is asked to start writing it back (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the
//!   `fsync` at the end waits for the last batch only instead of the whole file: the upload is as
//!   durable as before, and the disk runs alongside the network instead of after it. Memory: two
//!   batches per upload.

use axum::body::Bytes;
use futures_util::Stream;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Bytes read per blocking-pool trip when downloading.
pub const READ_CHUNK: usize = 512 * 1024;
/// Bytes gathered from an upload's body before one write.
pub const WRITE_BATCH: usize = 1 << 20;
/// Linux's `IOV_MAX`: buffers one `writev` may take.
const MAX_IOV: usize = 1024;

fn joined<T>(r: Result<io::Result<T>, tokio::task::JoinError>) -> io::Result<T> {
    r.unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// Reads up to `n` bytes from the file's current position (fewer only at its end).
fn read_chunk(file: &File, n: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(n);
    // `read_to_end` reads into the spare capacity without zeroing it first; `take` stops it at
    // `n`, so it never grows the buffer.
    file.take(n as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// `len` bytes of `file` from its current position, as a stream of body frames, one chunk read
/// ahead. A file that shrinks meanwhile ends the stream early (the response's `Content-Length`
/// then makes the client see a truncated transfer, never a silently short file).
pub fn read_stream(file: File, len: u64) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    struct State {
        file: Arc<File>,
        left: u64,
        ahead: Option<JoinHandle<io::Result<Bytes>>>,
    }
    impl State {
        fn read_ahead(&mut self) {
            if self.left == 0 {
                return;
            }
            let n = self.left.min(READ_CHUNK as u64) as usize;
            self.left -= n as u64;
            let file = self.file.clone();
            self.ahead = Some(tokio::task::spawn_blocking(move || read_chunk(&file, n)));
        }
    }
    let mut first = State {
        file: Arc::new(file),
        left: len,
        ahead: None,
    };
    first.read_ahead();
    futures_util::stream::unfold(first, |mut s| async move {
        let chunk = joined(s.ahead.take()?.await);
        match chunk {
            Ok(bytes) if bytes.is_empty() => None,
            Ok(bytes) => {
                s.read_ahead();
                Some((Ok(bytes), s))
            }
            // Nothing more is read after an error; the stream ends after reporting it.
            Err(e) => Some((Err(e), s)),
        }
    })
}

/// Writes all of `bufs` with as few `writev` calls as the kernel allows.
fn write_all_vectored(mut file: &File, bufs: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let upto = slices.len().min(MAX_IOV);
        match file.write_vectored(&slices[..upto]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Asks the kernel to start writing `len` bytes at `offset` back to the disk, without waiting
/// for it. Only a hint: the `fsync` at the end is what makes the file durable, so a file system
/// that does not support it changes nothing.
#[allow(unsafe_code)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: sync_file_range takes a file descriptor that `file` keeps open for the whole
        // call and plain integers; it touches no memory of this process.
        let _ = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len);
    }
}

/// An upload's bytes on their way to `file` (opened for writing at `offset`; append mode is
/// fine). Call [`Writer::finish`] at the end: without it the last batch is not written.
pub struct Writer {
    file: Arc<File>,
    offset: u64,
    batch: Vec<Bytes>,
    batched: usize,
    pending: Option<JoinHandle<io::Result<()>>>,
}

impl Writer {
    pub fn new(file: File, offset: u64) -> Self {
        Writer {
            file: Arc::new(file),
            offset,
            batch: Vec::new(),
            batched: 0,
            pending: None,
        }
    }

    /// Takes one body frame; writes when a batch is full (waiting for the previous write first,
    /// so a slow disk slows the upload instead of filling memory).
    pub async fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= WRITE_BATCH {
            self.submit().await?;
        }
        Ok(())
    }

    async fn wait(&mut self) -> io::Result<()> {
        match self.pending.take() {
            Some(p) => joined(p.await),
            None => Ok(()),
        }
    }

    async fn submit(&mut self) -> io::Result<()> {
        self.wait().await?;
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let len = std::mem::take(&mut self.batched) as u64;
        let (file, offset) = (self.file.clone(), self.offset);
        self.offset += len;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            write_all_vectored(&file, &batch)?;
            start_writeback(&file, offset, len);
            Ok(())
        }));
        Ok(())
    }

    /// Writes what is left; with `durable`, waits until the file's data is on the disk
    /// (`fsync`).
    pub async fn finish(mut self, durable: bool) -> io::Result<()> {
        self.submit().await?;
        self.wait().await?;
        if durable {
            let file = self.file.clone();
            joined(tokio::task::spawn_blocking(move || file.sync_all()).await)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::{Seek, SeekFrom};

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_keeps_every_byte_in_order_across_batches_and_resumes() {
        let dir = tempfile::tempdir().expect("test I/O");
        let path = dir.path().join("f");
        let data = pattern(3 * WRITE_BATCH + 12_345);
        // Frames of odd sizes, some tiny (more buffers than one writev takes), some empty.
        let mut frames = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < data.len() {
            let n = match k % 4 {
                0 => 1,
                1 => 0,
                2 => 7,
                _ => 70_001,
            }
            .min(data.len() - at);
            frames.push(Bytes::copy_from_slice(&data[at..at + n]));
            at += n;
            k += 1;
        }
        let half = frames.len() / 2;
        let first: usize = frames[..half].iter().map(|f| f.len()).sum();
        let mut w = Writer::new(File::create(&path).expect("test I/O"), 0);
        for f in &frames[..half] {
            w.push(f.clone()).await.expect("test I/O");
        }
        w.finish(false).await.expect("test I/O");
        assert_eq!(
            std::fs::metadata(&path).expect("test I/O").len(),
            first as u64
        );
        // A resumed upload appends.
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("test I/O");
        let mut w = Writer::new(file, first as u64);
        for f in &frames[half..] {
            w.push(f.clone()).await.expect("test I/O");
        }
        w.finish(true).await.expect("test I/O");
        assert_eq!(std::fs::read(&path).expect("test I/O"), data);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_error_is_reported() {
        // /dev/full refuses every write with ENOSPC.
        let Ok(file) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return;
        };
        let mut w = Writer::new(file, 0);
        let mut failed = false;
        for _ in 0..3 {
            if w.push(Bytes::from(vec![1u8; WRITE_BATCH])).await.is_err() {
                failed = true;
                break;
            }
        }
        let finished = w.finish(false).await;
        assert!(failed || finished.is_err(), "ENOSPC must surface");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reader_streams_exactly_the_range_asked_for() {
        let dir = tempfile::tempdir().expect("test I/O");
        let path = dir.path().join("f");
        let data = pattern(2 * READ_CHUNK + 999);
        std::fs::write(&path, &data).expect("test I/O");
        for (start, len) in [
            (0usize, data.len()),
            (5, READ_CHUNK),
            (READ_CHUNK - 1, READ_CHUNK + 2),
            (data.len() - 1, 1),
            (0, 0),
        ] {
            let mut file = File::open(&path).expect("test I/O");
            file.seek(SeekFrom::Start(start as u64)).expect("test I/O");
            let frames: Vec<Bytes> = read_stream(file, len as u64)
                .map(|f| f.expect("test I/O"))
                .collect()
                .await;
            assert!(
                frames
                    .iter()
                    .all(|f| f.len() <= READ_CHUNK && !f.is_empty())
            );
            assert_eq!(frames.concat(), &data[start..start + len], "{start}+{len}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_that_shrinks_ends_the_stream_short() {
        let dir = tempfile::tempdir().expect("test I/O");
        let path = dir.path().join("f");
        std::fs::write(&path, pattern(3 * READ_CHUNK)).expect("test I/O");
        let file = File::open(&path).expect("test I/O");
        let mut stream = Box::pin(read_stream(file, 3 * READ_CHUNK as u64));
        let first = stream.next().await.expect("test I/O").expect("test I/O");
        assert_eq!(first.len(), READ_CHUNK);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("test I/O")
            .set_len(READ_CHUNK as u64 + 10)
            .expect("test I/O");
        let mut rest = 0;
        while let Some(f) = stream.next().await {
            rest += f.expect("test I/O").len();
        }
        // The second chunk may have been read ahead before the file shrank.
        assert!(rest == 10 || rest == READ_CHUNK, "{rest}");
    }
}
