//! The signed container shared by bundles and indexes (`docs/ota-bundle.md`): a 32-byte header,
//! the root-signed key list, a JSON body and the release signature over everything before it.
//! Owns the order of checks; never decodes a byte before the signature covering it verified.
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use time::OffsetDateTime;

use crate::keylist::{KeyList, ReleaseKey, SignedKeyList};
use crate::source::{BundleSource, SourceError};

/// Container version of indexes and of bundles for devices on 0.1 (fixed chunks).
pub const FORMAT_VERSION: u16 = 1;
/// Container version of bundles with content-defined, compressed chunks.
pub const FORMAT_VERSION_CDC: u16 = 2;
/// Container version of bundles whose chunk list is cut into pages (two-level manifest).
pub const FORMAT_VERSION_PAGED: u16 = 3;
pub const HEADER_LEN: usize = 32;
pub const SIG_LEN: usize = 64;
pub const MAX_KEYLIST: u32 = 64 * 1024;
/// Payload data starts at a multiple of this in a bundle.
pub const PAYLOAD_ALIGN: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bundle,
    Index,
}

impl Kind {
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Bundle => b"HRTHOTA\0",
            Kind::Index => b"HRTHIDX\0",
        }
    }
    /// Signature domain: a v2 signature can never be taken for a v1 one or the other way.
    fn context(self, version: u16) -> &'static [u8] {
        match (self, version) {
            (Kind::Bundle, FORMAT_VERSION_CDC) => b"hearth-ota bundle v2\n",
            (Kind::Bundle, FORMAT_VERSION_PAGED) => b"hearth-ota bundle v3\n",
            (Kind::Bundle, _) => b"hearth-ota bundle v1\n",
            (Kind::Index, _) => b"hearth-ota index v1\n",
        }
    }
    /// Container versions this build reads.
    fn versions(self) -> &'static [u16] {
        match self {
            Kind::Bundle => &[FORMAT_VERSION, FORMAT_VERSION_CDC, FORMAT_VERSION_PAGED],
            Kind::Index => &[FORMAT_VERSION],
        }
    }
    pub fn max_body(self) -> u32 {
        match self {
            Kind::Bundle => 16 * 1024 * 1024,
            Kind::Index => 1024 * 1024,
        }
    }
}

/// Why a bundle, key list or index was refused. Every variant is a distinct refusal reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("not a Hearth {0} (bad magic)")]
    BadMagic(&'static str),
    #[error("format version {0} is not supported (this build reads versions 1, 2 and 3)")]
    UnsupportedVersion(u16),
    #[error("reserved header field {0} is not zero")]
    ReservedNotZero(&'static str),
    #[error("header field {field} = {value} is out of range")]
    LengthOutOfRange { field: &'static str, value: u64 },
    #[error("file is truncated: needed {needed} bytes, it has {have}")]
    Truncated { needed: u64, have: u64 },
    #[error("the key list is not signed by the trusted root key")]
    KeyListSignature,
    #[error("the key list is malformed: {0}")]
    KeyListMalformed(String),
    #[error("key list serial {serial} is older than the one already seen ({seen})")]
    KeyListRollback { serial: u64, seen: u64 },
    #[error("signed by key {0}, which the key list does not contain")]
    UnknownKey(String),
    #[error("signed by revoked release key {0}")]
    RevokedKey(String),
    #[error("release key {id} was not valid at {at}")]
    KeyNotValid { id: String, at: String },
    #[error("the signature does not verify with the release key")]
    BodySignature,
    #[error("the signed body is malformed: {0}")]
    BodyMalformed(String),
    #[error("padding after the signature is not zero")]
    PaddingNotZero,
    #[error("file size {actual} does not match the manifest ({expected})")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("payload {payload} chunk {chunk} does not match its signed hash")]
    ChunkHash { payload: String, chunk: u64 },
    #[error("payload {payload} page {page} does not match its signed hash")]
    PageHash { payload: String, page: u64 },
    #[error("bundle is for board {found}, this device is {expected}")]
    WrongBoard { expected: String, found: String },
    #[error("bundle is for architecture {found}, this device is {expected}")]
    WrongArch { expected: String, found: String },
    #[error("version {offered} is not newer than the installed {current} (downgrade refused)")]
    Downgrade { current: u64, offered: u64 },
    #[error("this bundle needs at least version {min}; the device runs {current}")]
    TooOld { current: u64, min: u64 },
    #[error("the index expired at {0}")]
    IndexExpired(String),
    #[error("index serial {serial} is older than the last accepted one ({seen}) (replay refused)")]
    IndexReplay { serial: u64, seen: u64 },
    #[error("the index is for {found}, expected {expected}")]
    IndexMismatch { expected: String, found: String },
    #[error("the bundle does not match what the index names: {0}")]
    BundleNotInIndex(String),
    #[error("reading failed: {0}")]
    Source(String),
}

impl From<SourceError> for VerifyError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Truncated { needed, have } => VerifyError::Truncated { needed, have },
            other => VerifyError::Source(other.to_string()),
        }
    }
}

/// What the device trusts: the root key baked into its image and the highest key-list serial it
/// has accepted so far (persist `Opened::keylist.serial` after an accepted update).
#[derive(Debug, Clone)]
pub struct Trust {
    pub root: VerifyingKey,
    pub keylist_floor: u64,
}

impl Trust {
    pub fn new(root: VerifyingKey) -> Self {
        Trust {
            root,
            keylist_floor: 0,
        }
    }
}

/// A container whose key list and body signatures verified.
#[derive(Debug, Clone)]
pub struct Opened {
    pub keylist: KeyList,
    pub release_key: ReleaseKey,
    /// Container format version (1, 2 or 3 for bundles, 1 for indexes).
    pub version: u16,
    /// The verified raw body, ready to decode.
    pub body: Vec<u8>,
    /// Length of the signed prefix (header … release signature).
    pub prefix_len: u64,
    pub prefix_blake3: [u8; 32],
}

struct Header {
    version: u16,
    keylist_len: u32,
    body_len: u32,
    key_id: [u8; 8],
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_header(h: &[u8], kind: Kind) -> Result<Header, VerifyError> {
    if &h[0..8] != kind.magic() {
        return Err(VerifyError::BadMagic(match kind {
            Kind::Bundle => "bundle",
            Kind::Index => "index",
        }));
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    if !kind.versions().contains(&version) {
        return Err(VerifyError::UnsupportedVersion(version));
    }
    if h[10..12] != [0, 0] {
        return Err(VerifyError::ReservedNotZero("flags"));
    }
    if h[20..24] != [0, 0, 0, 0] {
        return Err(VerifyError::ReservedNotZero("reserved"));
    }
    let keylist_len = le_u32(h, 12);
    if !(2..=MAX_KEYLIST).contains(&keylist_len) {
        return Err(VerifyError::LengthOutOfRange {
            field: "key list length",
            value: keylist_len.into(),
        });
    }
    let body_len = le_u32(h, 16);
    if !(2..=kind.max_body()).contains(&body_len) {
        return Err(VerifyError::LengthOutOfRange {
            field: "body length",
            value: body_len.into(),
        });
    }
    let mut key_id = [0u8; 8];
    key_id.copy_from_slice(&h[24..32]);
    Ok(Header {
        version,
        keylist_len,
        body_len,
        key_id,
    })
}

/// Builds the signed prefix of a container of format version 1.
pub fn encode(kind: Kind, keylist: &SignedKeyList, body: &[u8], key: &SigningKey) -> Vec<u8> {
    encode_version(kind, FORMAT_VERSION, keylist, body, key)
}

/// Builds the signed prefix of a container of format `version`.
pub fn encode_version(
    kind: Kind,
    version: u16,
    keylist: &SignedKeyList,
    body: &[u8],
    key: &SigningKey,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + keylist.body.len() + body.len() + 2 * SIG_LEN);
    out.extend_from_slice(kind.magic());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(keylist.body.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&crate::keys::key_id(&key.verifying_key()));
    out.extend_from_slice(&keylist.body);
    out.extend_from_slice(&keylist.signature);
    out.extend_from_slice(body);
    let sig = key.sign(&[kind.context(version), &out].concat());
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// Reads and verifies the signed prefix of a container from `src`.
pub fn open(src: &mut dyn BundleSource, kind: Kind, trust: &Trust) -> Result<Opened, VerifyError> {
    let header = crate::source::read_vec(src, 0, HEADER_LEN as u64)?;
    let h = parse_header(&header, kind)?;
    let (kl, bl) = (h.keylist_len as usize, h.body_len as usize);
    let prefix_len = (HEADER_LEN + kl + SIG_LEN + bl + SIG_LEN) as u64;
    let rest = crate::source::read_vec(src, HEADER_LEN as u64, prefix_len - HEADER_LEN as u64)?;
    let prefix = [header, rest].concat();
    let signed = SignedKeyList {
        body: prefix[HEADER_LEN..HEADER_LEN + kl].to_vec(),
        signature: prefix[HEADER_LEN + kl..HEADER_LEN + kl + SIG_LEN]
            .try_into()
            .unwrap_or([0; 64]),
    };
    let keylist = signed.verify(&trust.root, trust.keylist_floor)?;
    let (release, entry) = keylist.release_key(&h.key_id)?;
    let sig_at = prefix.len() - SIG_LEN;
    let sig = Signature::from_bytes(prefix[sig_at..].try_into().unwrap_or(&[0; 64]));
    release
        .verify(&[kind.context(h.version), &prefix[..sig_at]].concat(), &sig)
        .map_err(|_| VerifyError::BodySignature)?;
    let body = prefix[sig_at - bl..sig_at].to_vec();
    let release_key = entry.clone();
    Ok(Opened {
        version: h.version,
        keylist,
        release_key,
        body,
        prefix_len,
        prefix_blake3: *blake3::hash(&prefix).as_bytes(),
    })
}

/// Refuses a signature made outside the release key's validity window.
pub fn check_key_window(key: &ReleaseKey, at: OffsetDateTime) -> Result<(), VerifyError> {
    if at < key.not_before || at > key.not_after {
        return Err(VerifyError::KeyNotValid {
            id: key.id.clone(),
            at: crate::manifest::rfc3339(at),
        });
    }
    Ok(())
}

pub fn align_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Header fields and the *unverified* body, for display only (`hearth-ota inspect` without a
/// root key). Never use this to decide anything.
#[derive(Debug)]
pub struct Peek {
    pub version: u16,
    pub keylist_len: u32,
    pub body_len: u32,
    pub key_id: String,
    pub unverified_keylist: String,
    pub unverified_body: String,
    /// The raw body (format 2 compresses it).
    pub unverified_body_bytes: Vec<u8>,
}

pub fn peek(src: &mut dyn BundleSource, kind: Kind) -> Result<Peek, VerifyError> {
    let header = crate::source::read_vec(src, 0, HEADER_LEN as u64)?;
    let h = parse_header(&header, kind)?;
    let (kl, bl) = (u64::from(h.keylist_len), u64::from(h.body_len));
    let keylist = crate::source::read_vec(src, HEADER_LEN as u64, kl)?;
    let body = crate::source::read_vec(src, HEADER_LEN as u64 + kl + SIG_LEN as u64, bl)?;
    Ok(Peek {
        version: h.version,
        keylist_len: h.keylist_len,
        body_len: h.body_len,
        key_id: crate::hexutil::encode(&h.key_id),
        unverified_keylist: String::from_utf8_lossy(&keylist).into_owned(),
        unverified_body: String::from_utf8_lossy(&body).into_owned(),
        unverified_body_bytes: body,
    })
}
