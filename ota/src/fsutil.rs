//! Crash-safe file replacement: temp file → fsync → rename → fsync the directory.
use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` so that after a power cut the file holds either the old or the
/// new content, never a mix. On FAT (ESP, Pi boot partitions) rename is not journalled, but the
/// old file stays intact until the rename and the new one is complete before it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
