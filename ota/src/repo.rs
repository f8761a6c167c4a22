//! The static update repository: `bundles/*.hota` and, per channel and board, one index per
//! bundle format: `index.hidx` names the latest format-1 bundle (read by devices on 0.1, which
//! know nothing else), `index-v2.hidx` the latest format-2 bundle and `index-v3.hidx` the latest
//! format-3 one. Any web server can serve it. Publishing copies the bundle in, then replaces the
//! index atomically, so a reader sees either the old or the new release, never a mix. The
//! indexes share one serial counter, and an index of a newer format is always above every older
//! one, so a device that moves to a newer format's index never sees a serial go back.
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use time::{Duration, OffsetDateTime};

use crate::bundle::{self, VerifiedBundle};
use crate::format::{Trust, VerifyError};
use crate::index::{self, INDEX_FILE, INDEX_FILE_V2, INDEX_FILE_V3, Index, Latest};
use crate::keylist::SignedKeyList;
use crate::source::FileSource;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the bundle is not valid: {0}")]
    Bundle(VerifyError),
    #[error("the repository's current index cannot be read: {0}")]
    CurrentIndex(VerifyError),
    #[error("channel {0:?} is not a valid name ([a-z0-9][a-z0-9_-]*)")]
    Channel(String),
    #[error("version {offered} is not newer than the published {current}")]
    NotNewer { current: u64, offered: u64 },
}

pub struct PublishRequest<'a> {
    pub repo: &'a Path,
    pub channel: &'a str,
    pub bundle: &'a Path,
    pub release_notes: String,
    pub valid_for: Duration,
    pub now: OffsetDateTime,
    pub key: &'a SigningKey,
    pub keylist: &'a SignedKeyList,
    pub trust: &'a Trust,
}

/// Every bundle format, oldest first.
const FORMATS: [u16; 3] = [
    crate::format::FORMAT_VERSION,
    crate::format::FORMAT_VERSION_CDC,
    crate::format::FORMAT_VERSION_PAGED,
];

/// Path of the index devices of today's format read (format 2).
pub fn index_path(repo: &Path, channel: &str, board: &str) -> PathBuf {
    index_path_for(repo, channel, board, crate::format::FORMAT_VERSION_CDC)
}

/// Path of the index that names bundles of container format `format`.
pub fn index_path_for(repo: &Path, channel: &str, board: &str, format: u16) -> PathBuf {
    let file = match format {
        crate::format::FORMAT_VERSION => INDEX_FILE,
        crate::format::FORMAT_VERSION_CDC => INDEX_FILE_V2,
        _ => INDEX_FILE_V3,
    };
    repo.join(channel).join(board).join(file)
}

/// The current index at `path`, if there is one.
fn current(path: &Path, trust: &Trust) -> Result<Option<Index>, PublishError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            index::decode(&bytes, trust)
                .map_err(PublishError::CurrentIndex)?
                .0,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Adds a bundle to the repository and makes it the latest of its channel and board.
pub fn publish(req: &PublishRequest<'_>) -> Result<Index, PublishError> {
    if !crate::manifest::board_name_ok(req.channel) {
        return Err(PublishError::Channel(req.channel.to_string()));
    }
    let mut src = FileSource::open(req.bundle).map_err(|e| PublishError::Bundle(e.into()))?;
    let verified = bundle::open(&mut src, req.trust).map_err(PublishError::Bundle)?;
    bundle::verify_payloads(&mut src, &verified).map_err(PublishError::Bundle)?;
    let m = &verified.manifest;
    let index_file = index_path_for(req.repo, req.channel, &m.board, m.format);
    let mut serial = 0;
    for format in FORMATS {
        let path = index_path_for(req.repo, req.channel, &m.board, format);
        let Some(current) = current(&path, req.trust)? else {
            continue;
        };
        serial = serial.max(current.serial);
        if path == index_file && m.version_number <= current.latest.version_number {
            return Err(PublishError::NotNewer {
                current: current.latest.version_number,
                offered: m.version_number,
            });
        }
    }
    let serial = serial + 1;
    let rel = format!(
        "bundles/hearth-{}-{}-{}{}.hota",
        m.version,
        m.board,
        m.version_number,
        // The bridge release is published in two formats: distinct names.
        match m.format {
            crate::format::FORMAT_VERSION => "-v1",
            crate::format::FORMAT_VERSION_CDC => "",
            _ => "-v3",
        }
    );
    copy_in(req.bundle, &req.repo.join(&rel))?;
    let index = Index {
        channel: req.channel.to_string(),
        board: m.board.clone(),
        serial,
        created: req.now,
        expires: req.now + req.valid_for,
        latest: latest(&verified, rel, req.release_notes.clone()),
    };
    let bytes = index::sign(&index, req.keylist, req.key);
    let dir = index_file.parent().unwrap_or(req.repo);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    crate::fsutil::write_atomic(&index_file, &bytes).map_err(io(&index_file))?;
    // A device that updates through an older format's index lands on a release that reads a
    // newer one, and refuses an index whose serial is below the last it accepted: keep every
    // newer format's index above this one by re-signing it (same release), oldest first.
    let mut serial = serial;
    for format in FORMATS.into_iter().filter(|f| *f > m.format) {
        let file = index_path_for(req.repo, req.channel, &m.board, format);
        if let Some(newer) = current(&file, req.trust)? {
            serial += 1;
            let reissued = Index {
                serial,
                created: req.now,
                expires: req.now + req.valid_for,
                ..newer
            };
            let bytes = index::sign(&reissued, req.keylist, req.key);
            crate::fsutil::write_atomic(&file, &bytes).map_err(io(&file))?;
        }
    }
    Ok(index)
}

fn latest(b: &VerifiedBundle, bundle: String, release_notes: String) -> Latest {
    let m = &b.manifest;
    Latest {
        version: m.version.clone(),
        version_number: m.version_number,
        min_version_number: m.min_version_number,
        arch: m.arch.clone(),
        bundle,
        size: b.size,
        prefix_blake3: crate::hexutil::encode(&b.opened.prefix_blake3),
        release_notes,
    }
}

fn copy_in(from: &Path, to: &Path) -> Result<(), PublishError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = to.with_extension("hota.partial");
    std::fs::copy(from, &tmp).map_err(io(&tmp))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, to).map_err(io(to))?;
    crate::fsutil::sync_dir(dir).map_err(io(dir))
}
