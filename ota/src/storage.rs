//! A slot's storage: a regular file (tests) or a block device (`/dev/disk/by-partlabel/root-b`).
//! A trait, so tests can put a crash-simulating layer underneath the installer.
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub trait SlotStorage {
    /// Capacity in bytes.
    fn capacity(&mut self) -> std::io::Result<u64>;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()>;
    /// Makes every write so far durable.
    fn sync(&mut self) -> std::io::Result<()>;
    /// Asks the device to start writing `len` bytes at `offset` without waiting for them: the
    /// disk works while the installer checks and unpacks the next chunks. Only a hint; `sync`
    /// is still what makes anything durable. Default: nothing.
    fn start_writeback(&mut self, _offset: u64, _len: u64) {}
    /// Ends a growable target (a regular file such as a kernel on the ESP) at `len`, so no
    /// bytes of an older, longer content remain; fixed-size devices ignore it.
    fn truncate(&mut self, _len: u64) -> std::io::Result<()> {
        Ok(())
    }
    /// For messages.
    fn describe(&self) -> String;
    /// Another handle on the same storage, for another thread: the installer writes on one and
    /// reads each written window back on another while it unpacks and checks the next chunks.
    /// `None` (the default): it does all of that on its own thread, the read-back after all
    /// writes.
    fn handle(&self) -> Option<Box<dyn SlotStorage + Send>> {
        None
    }
}

pub struct FileSlot {
    path: PathBuf,
    file: std::fs::File,
    /// Regular files grow as they are written; block devices have a fixed size.
    growable: bool,
}

impl FileSlot {
    /// Opens an existing file or block device for reading and writing.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let growable = file.metadata()?.is_file();
        Ok(FileSlot {
            path: path.to_path_buf(),
            file,
            growable,
        })
    }

    /// Opens read-only (the active slot, for the delta index).
    pub fn open_read_only(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        Ok(FileSlot {
            path: path.to_path_buf(),
            file,
            growable: false,
        })
    }
}

impl SlotStorage for FileSlot {
    fn capacity(&mut self) -> std::io::Result<u64> {
        if self.growable {
            return Ok(u64::MAX);
        }
        self.file.seek(SeekFrom::End(0))
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_all()
    }

    /// `POSIX_FADV_DONTNEED` on Linux starts the write-back of the range's dirty pages
    /// (`WB_SYNC_NONE`, as `sync_file_range(SYNC_FILE_RANGE_WRITE)` does, which needs unsafe
    /// code here) and drops only pages that are already clean. A failure costs speed, not data.
    fn start_writeback(&mut self, offset: u64, len: u64) {
        let _ = rustix::fs::fadvise(
            &self.file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        );
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        if self.growable {
            self.file.set_len(len)
        } else {
            Ok(())
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn handle(&self) -> Option<Box<dyn SlotStorage + Send>> {
        let file = self.file.try_clone().ok()?;
        Some(Box::new(FileSlot {
            path: self.path.clone(),
            file,
            growable: self.growable,
        }))
    }
}

/// Length of a file or block device.
pub fn device_len(path: &Path) -> std::io::Result<u64> {
    std::fs::File::open(path)?.seek(SeekFrom::End(0))
}
