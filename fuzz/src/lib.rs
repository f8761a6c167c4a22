//! Fixtures shared by the OTA fuzz target and the seed writer (`ota-seeds`): fixed keys and a
//! valid key list, manifest and index, so the fuzzer starts from inputs that pass every
//! signature and mutates the parsers behind them.
//!
//! OTA input layout: one mode byte, then the mode's bytes —
//! - [`RAW`]: a whole container (bundle or index), as it would arrive from the network;
//! - [`KEYLIST`]: a key-list body, signed here by the root key, in an otherwise valid bundle;
//! - [`MANIFEST`]: a manifest body, signed here by the release key, with a valid key list;
//! - [`INDEX`]: an index body, signed here by the release key, with a valid key list.
use ed25519_dalek::{Signer, SigningKey};
use hearth_ota::format::{self, Kind, Trust};
use hearth_ota::keylist::{KEYLIST_CONTEXT, KeyList, ReleaseKey, SignedKeyList};
use time::macros::datetime;

pub const RAW: u8 = 0;
pub const KEYLIST: u8 = 1;
pub const MANIFEST: u8 = 2;
pub const INDEX: u8 = 3;

pub struct Fixture {
    pub root: SigningKey,
    pub release: SigningKey,
    pub trust: Trust,
    pub keylist: SignedKeyList,
}

impl Fixture {
    pub fn new() -> Self {
        let root = SigningKey::from_bytes(&[1; 32]);
        let release = SigningKey::from_bytes(&[2; 32]);
        let list = KeyList {
            serial: 3,
            issued: datetime!(2026-01-01 0:00 UTC),
            keys: vec![ReleaseKey::new(
                &release.verifying_key(),
                datetime!(2025-01-01 0:00 UTC),
                datetime!(2099-01-01 0:00 UTC),
            )],
            revoked: vec!["00".repeat(32)],
        };
        let keylist = SignedKeyList::sign(&list, &root);
        let mut trust = Trust::new(root.verifying_key());
        trust.keylist_floor = 2;
        Fixture {
            root,
            release,
            trust,
            keylist,
        }
    }

    /// The signed prefix of a container around `body`, with a key list of `keylist_body`
    /// (root-signed here, so its parser is reached whatever the bytes).
    pub fn container(&self, kind: Kind, keylist_body: &[u8], body: &[u8]) -> Vec<u8> {
        let keylist = sign_keylist(&self.root, keylist_body);
        format::encode(kind, &keylist, body, &self.release)
    }

    /// The fixture's valid bundle file.
    pub fn valid_bundle(&self) -> Vec<u8> {
        let prefix = self.container(Kind::Bundle, &self.keylist.body, manifest_json().as_bytes());
        bundle(prefix, &payload())
    }

    /// The fixture's valid index file, naming [`Fixture::valid_bundle`].
    pub fn valid_index(&self) -> Vec<u8> {
        let body = index_json(&self.valid_bundle());
        self.container(Kind::Index, &self.keylist.body, body.as_bytes())
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The payload of the fixture bundle: two chunks of 4 KiB, the second one short.
pub fn payload() -> Vec<u8> {
    (0..6000u32).map(|i| (i % 251) as u8).collect()
}

pub fn manifest_json() -> String {
    let data = payload();
    let chunks: String = data.chunks(4096).map(blake3_hex).collect();
    serde_json::json!({
        "board": "fuzzboard",
        "arch": "amd64",
        "version": "1.2.3",
        "version_number": 10203,
        "min_version_number": 1,
        "created": "2026-06-01T00:00:00Z",
        "chunk_size": 4096,
        "payloads": [{"name": "rootfs", "size": data.len(), "chunks": chunks}],
    })
    .to_string()
}

pub fn index_json(bundle: &[u8]) -> String {
    serde_json::json!({
        "channel": "stable",
        "board": "fuzzboard",
        "serial": 7,
        "created": "2026-06-01T00:00:00Z",
        "expires": "2026-07-01T00:00:00Z",
        "latest": {
            "version": "1.2.3",
            "version_number": 10203,
            "min_version_number": 1,
            "arch": "amd64",
            "bundle": "bundles/1.2.3.hota",
            "size": bundle.len(),
            "prefix_blake3": "00".repeat(32),
            "release_notes": "Fixes.",
        },
    })
    .to_string()
}

fn blake3_hex(b: &[u8]) -> String {
    hearth_ota::hexutil::encode(blake3::hash(b).as_bytes())
}

/// A key list signed by the fixture's root key, whatever its bytes.
pub fn sign_keylist(root: &SigningKey, body: &[u8]) -> SignedKeyList {
    let signature = root.sign(&[KEYLIST_CONTEXT, body].concat()).to_bytes();
    SignedKeyList {
        body: body.to_vec(),
        signature,
    }
}

/// A whole bundle file: signed prefix, zero padding to the payload alignment, then `payload`.
pub fn bundle(prefix: Vec<u8>, payload: &[u8]) -> Vec<u8> {
    let mut out = prefix;
    let start = format::align_up(out.len() as u64, format::PAYLOAD_ALIGN);
    out.resize(start as usize, 0);
    out.extend_from_slice(payload);
    out
}
