//! The static update repository: `bundles/*.hota` and, per channel and board, two indexes:
//! `index.hidx` names the latest format-1 bundle (read by devices on 0.1, which know nothing
//! else) and `index-v2.hidx` the latest format-2 bundle (read by devices from 0.2 on). Any web
//! server can serve it. Publishing copies the bundle in, then replaces the index atomically,
//! so a reader sees either the old or the new release, never a mix. Both indexes share one
//! serial counter, so a device that moves from one to the other never sees a serial go back.
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use time::{Duration, OffsetDateTime};

use crate::bundle::{self, VerifiedBundle};
use crate::format::{Trust, VerifyError};
use crate::index::{self, INDEX_FILE, INDEX_FILE_V2, Index, Latest};
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

/// Path of the index devices of today's format read (format 2).
pub fn index_path(repo: &Path, channel: &str, board: &str) -> PathBuf {
    index_path_for(repo, channel, board, crate::format::FORMAT_VERSION_CDC)
}

/// Path of the index that names bundles of container format `format`.
pub fn index_path_for(repo: &Path, channel: &str, board: &str, format: u16) -> PathBuf {
    let file = if format == crate::format::FORMAT_VERSION {
        INDEX_FILE
    } else {
        INDEX_FILE_V2
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
    for format in [
        crate::format::FORMAT_VERSION,
        crate::format::FORMAT_VERSION_CDC,
    ] {
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
        if m.format == crate::format::FORMAT_VERSION {
            "-v1"
        } else {
            ""
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
    // A device that updates through the format-1 index lands on a release that reads the
    // format-2 one, and refuses an index whose serial is below the last it accepted: keep the
    // format-2 index's serial above the format-1 one by re-signing it (same release).
    let v2_file = index_path(req.repo, req.channel, &m.board);
    if index_file != v2_file
        && let Some(v2) = current(&v2_file, req.trust)?
    {
        let reissued = Index {
            serial: serial + 1,
            created: req.now,
            expires: req.now + req.valid_for,
            ..v2
        };
        let bytes = index::sign(&reissued, req.keylist, req.key);
        crate::fsutil::write_atomic(&v2_file, &bytes).map_err(io(&v2_file))?;
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
