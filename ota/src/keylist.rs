//! The root-signed list of release keys: who may sign bundles and indexes, when, and which
//! keys are revoked. Decoded only after the root signature over its raw bytes has verified.
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::format::VerifyError;
use crate::hexutil;

pub const KEYLIST_CONTEXT: &[u8] = b"hearth-ota keylist v1\n";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyList {
    pub serial: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub issued: OffsetDateTime,
    pub keys: Vec<ReleaseKey>,
    #[serde(default)]
    pub revoked: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseKey {
    pub id: String,
    pub public: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

impl ReleaseKey {
    pub fn new(key: &VerifyingKey, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        ReleaseKey {
            id: hexutil::encode(&crate::keys::key_id(key)),
            public: hexutil::encode(key.as_bytes()),
            not_before,
            not_after,
        }
    }
}

/// A key list as it travels: the exact signed bytes and the root's signature over them.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedKeyList {
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

/// On-disk form of a signed key list (`keys.json`), kept by the release operator.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyListFile {
    body: String,
    signature: String,
}

impl SignedKeyList {
    pub fn sign(list: &KeyList, root: &SigningKey) -> Self {
        let body = serde_json::to_vec(list).unwrap_or_default();
        let signature = root.sign(&[KEYLIST_CONTEXT, &body].concat()).to_bytes();
        SignedKeyList { body, signature }
    }

    pub fn to_file_bytes(&self) -> Vec<u8> {
        let file = KeyListFile {
            body: String::from_utf8_lossy(&self.body).into_owned(),
            signature: hexutil::encode(&self.signature),
        };
        serde_json::to_vec_pretty(&file).unwrap_or_default()
    }

    /// Reads an operator's `keys.json` (trusted input on the signing machine).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let file: KeyListFile = serde_json::from_slice(&std::fs::read(path)?)?;
        let signature = hexutil::decode_array(&file.signature).ok_or_else(|| {
            anyhow::anyhow!("{}: signature is not 64 bytes of hex", path.display())
        })?;
        Ok(SignedKeyList {
            body: file.body.into_bytes(),
            signature,
        })
    }

    /// Verifies the root signature, then decodes; refuses lists older than `floor`.
    pub fn verify(&self, root: &VerifyingKey, floor: u64) -> Result<KeyList, VerifyError> {
        let sig = Signature::from_bytes(&self.signature);
        root.verify(&[KEYLIST_CONTEXT, &self.body].concat(), &sig)
            .map_err(|_| VerifyError::KeyListSignature)?;
        let list: KeyList = serde_json::from_slice(&self.body)
            .map_err(|e| VerifyError::KeyListMalformed(e.to_string()))?;
        if list.serial < floor {
            return Err(VerifyError::KeyListRollback {
                serial: list.serial,
                seen: floor,
            });
        }
        Ok(list)
    }
}

impl KeyList {
    /// The release key named by `id`, refusing unknown and revoked keys.
    pub fn release_key(&self, id: &[u8; 8]) -> Result<(VerifyingKey, &ReleaseKey), VerifyError> {
        let hex_id = hexutil::encode(id);
        let entry = self
            .keys
            .iter()
            .find(|k| k.id == hex_id)
            .ok_or(VerifyError::UnknownKey(hex_id.clone()))?;
        if self
            .revoked
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&entry.public))
        {
            return Err(VerifyError::RevokedKey(hex_id));
        }
        let bytes: [u8; 32] = hexutil::decode_array(&entry.public).ok_or_else(|| {
            VerifyError::KeyListMalformed(format!("key {hex_id} is not 32 bytes of hex"))
        })?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| {
            VerifyError::KeyListMalformed(format!("key {hex_id} is not a valid ed25519 point"))
        })?;
        if crate::keys::key_id(&key) != *id {
            return Err(VerifyError::KeyListMalformed(format!(
                "key {hex_id} does not match its id"
            )));
        }
        Ok((key, entry))
    }
}
