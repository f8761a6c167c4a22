//! Image signing keys: ed25519, stored as PKCS#8 PEM (private) and SPKI PEM (public), the
//! formats OpenSSL reads too (`openssl pkeyutl -verify -rawin`).
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path} does not exist (make one with `hearth-image keygen --out {}`)", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ed25519 key in PEM form: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("refusing to overwrite {path}")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("signature does not verify")]
    BadSignature,
}

/// Path of the public half written next to a private key.
pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Makes a new key pair and writes `out` (private, mode 0600) and `out.pub`.
pub fn generate(out: &Path) -> Result<VerifyingKey, KeyError> {
    let pub_path = public_path(out);
    for path in [out, pub_path.as_path()] {
        if path.exists() {
            return Err(KeyError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Random(e.to_string()))?;
    write_new(out, private.as_bytes(), 0o600)?;
    write_new(&pub_path, public.as_bytes(), 0o644)?;
    Ok(key.verifying_key())
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read(path)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read(path)?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| KeyError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => KeyError::Missing {
            path: path.to_path_buf(),
        },
        _ => KeyError::Read {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// PEM of the public half, to install into the image.
pub fn public_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap_or_default()
}

/// Raw 64-byte ed25519 signature over `message`.
pub fn sign(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    key.sign(message).to_bytes()
}

pub fn verify(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
    let sig = Signature::from_slice(signature).map_err(|_| KeyError::BadSignature)?;
    key.verify(message, &sig)
        .map_err(|_| KeyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_verifies_through_its_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("release.pem");
        generate(&path).expect("generate");
        let signing = load_signing_key(&path).expect("load private");
        let verifying = load_verifying_key(&public_path(&path)).expect("load public");
        let sig = sign(&signing, b"SHA256SUMS");
        verify(&verifying, b"SHA256SUMS", &sig).expect("verifies");
        assert!(verify(&verifying, b"tampered", &sig).is_err());
    }

    #[test]
    fn keygen_refuses_to_overwrite_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.pem");
        generate(&path).expect("first");
        assert!(matches!(generate(&path), Err(KeyError::Exists { .. })));
    }

    #[test]
    fn missing_key_is_reported_as_missing() {
        let err = load_signing_key(Path::new("/nonexistent/key.pem")).expect_err("must be refused");
        assert!(matches!(err, KeyError::Missing { .. }));
    }
}
