//! The device CA over time: the one in use, a pending successor during a rotation, and the
//! retired one the user may still have to remove from their trust store.
//!
//! Rotation is three steps the dashboard walks the user through:
//! 1. `begin`: a new CA is made and kept aside (`tls/next/`); the device keeps serving the old
//!    one, so nothing breaks while the user downloads and trusts the new CA.
//! 2. `activate`: the new CA becomes the current one and a server certificate it signed is
//!    served at once; the old CA's public part is kept (`tls/previous/`) to name it to the user.
//! 3. `forget_previous`: after the user removed the old CA from their devices.
//!
//! Files on disk: `tls/ca.{key,json,crt}` is the current CA, as before rotation existed (the
//! health gate and older tools read `tls/ca.crt`). Activation copies `next/` over those files,
//! key first, and removes `next/` last; `open` finishes an activation a crash interrupted (the
//! current key then equals the pending one). The old key is not kept anywhere.

use super::{
    CertResolver, LocalCa, TlsError, constraints, enforce_private, ensure_server_cert, paths, read,
    resolver_key, write,
};
use crate::fsutil::ensure_dir;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("a CA rotation is already under way")]
    AlreadyPending,
    #[error("no CA rotation is under way")]
    NotPending,
    #[error("there is no previous CA")]
    NoPrevious,
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What the dashboard shows of one CA.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CaInfo {
    /// The name a browser or OS shows for the certificate ("Hearth local CA 1a2b3c4d").
    pub common_name: String,
    /// SHA-256 of the certificate, as trust stores show it: compare before trusting.
    pub fingerprint_sha256: String,
    /// Valid from (RFC 3339); absent for CAs made before this was recorded.
    pub not_before: Option<String>,
    /// Valid until (RFC 3339); absent for CAs made before this was recorded.
    pub not_after: Option<String>,
    /// True when the CA may only vouch for `.local` names, `localhost` and private, loopback
    /// and link-local addresses. False for CAs made before constraints existed: rotate.
    pub name_constrained: bool,
}

/// The device CA and any rotation in progress.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CaStatus {
    pub current: CaInfo,
    /// A new CA made by `POST /api/v1/tls/ca/rotation`, not served yet.
    pub pending: Option<CaInfo>,
    /// The CA replaced by the last rotation, until the user says it is removed.
    pub previous: Option<CaInfo>,
    /// The DNS subtrees the CA may sign for.
    pub permitted_dns: Vec<String>,
}

struct CaSet {
    current: LocalCa,
    pending: Option<LocalCa>,
    previous: Option<CaInfo>,
}

/// The device's TLS identity: CAs on disk under `dir` and the server certificate in use.
pub struct DeviceTls {
    dir: PathBuf,
    set: Mutex<CaSet>,
    /// Set once the HTTPS server runs; in-process tests have none.
    resolver: OnceLock<Arc<CertResolver>>,
}

impl std::fmt::Debug for DeviceTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTls")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn info(ca: &LocalCa) -> CaInfo {
    let rfc = |t: Option<OffsetDateTime>| t.map(crate::update::rfc3339);
    CaInfo {
        common_name: ca.meta.common_name.clone(),
        fingerprint_sha256: ca.fingerprint(),
        not_before: rfc(ca.meta.not_before),
        not_after: rfc(ca.meta.not_after),
        name_constrained: ca.meta.name_constrained,
    }
}

fn remove_dir(dir: &Path) -> Result<(), TlsError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(TlsError::Io {
            path: dir.into(),
            source,
        }),
    }
}

impl DeviceTls {
    /// Opens the TLS directory: finishes an interrupted activation, tightens key modes, and
    /// creates the CA on first start.
    pub fn open(dir: &Path, now: OffsetDateTime) -> Result<Self, TlsError> {
        ensure_dir(dir, 0o700).map_err(|source| TlsError::Io {
            path: dir.into(),
            source,
        })?;
        let next_dir = dir.join("next");
        if let (Some(current_key), Some(next)) =
            (read(&paths(dir).ca_key)?, LocalCa::load(&next_dir)?)
            && current_key == next.key.serialize_pem()
        {
            tracing::warn!("finishing a CA rotation that was interrupted");
            next.save(dir)?;
            remove_dir(&next_dir)?;
        }
        for key in [
            dir.to_path_buf(),
            next_dir.clone(),
            paths(dir).ca_key,
            paths(dir).server_key,
            paths(&next_dir).ca_key,
        ] {
            enforce_private(&key)?;
        }
        let current = LocalCa::load_or_create(dir, now)?;
        let pending = LocalCa::load(&next_dir)?;
        let previous = read_previous(&dir.join("previous"))?;
        Ok(DeviceTls {
            dir: dir.to_path_buf(),
            set: Mutex::new(CaSet {
                current,
                pending,
                previous,
            }),
            resolver: OnceLock::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CaSet> {
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn status(&self) -> CaStatus {
        let set = self.lock();
        CaStatus {
            current: info(&set.current),
            pending: set.pending.as_ref().map(info),
            previous: set.previous.clone(),
            permitted_dns: constraints::PERMITTED_DNS
                .iter()
                .map(|d| (*d).to_string())
                .collect(),
        }
    }

    pub fn current_cert_pem(&self) -> String {
        self.lock().current.cert_pem().to_string()
    }

    pub fn pending_cert_pem(&self) -> Option<String> {
        self.lock()
            .pending
            .as_ref()
            .map(|ca| ca.cert_pem().to_string())
    }

    /// The server certificate for `wanted` from the current CA (issued when missing, near
    /// expiry, lacking a name or from another CA), in rustls form.
    pub fn server_key(
        &self,
        wanted: &[String],
        now: OffsetDateTime,
    ) -> Result<rustls::sign::CertifiedKey, TlsError> {
        let set = self.lock();
        let (cert, _) = ensure_server_cert(&self.dir, &set.current, wanted, now)?;
        resolver_key(&cert, &set.current).map_err(|e| super::invalid(&self.dir, e))
    }

    /// Hands over the running server's resolver, so renewals and rotations reach it.
    pub fn attach(&self, resolver: Arc<CertResolver>) {
        let _ = self.resolver.set(resolver);
    }

    /// Re-checks the server certificate and swaps it into the running server.
    pub fn refresh(&self, wanted: &[String], now: OffsetDateTime) -> Result<(), TlsError> {
        let key = self.server_key(wanted, now)?;
        if let Some(resolver) = self.resolver.get() {
            resolver.replace(key);
        }
        Ok(())
    }

    /// Step 1: makes the successor CA and keeps it aside; the device still serves the old one.
    pub fn begin(&self, now: OffsetDateTime) -> Result<CaStatus, RotationError> {
        {
            let mut set = self.lock();
            if set.pending.is_some() {
                return Err(RotationError::AlreadyPending);
            }
            let next_dir = self.dir.join("next");
            ensure_dir(&next_dir, 0o700).map_err(|source| TlsError::Io {
                path: next_dir.clone(),
                source,
            })?;
            let next = LocalCa::create(&next_dir, now)?;
            tracing::info!(ca = %next.meta.common_name, "CA rotation begun");
            set.pending = Some(next);
        }
        Ok(self.status())
    }

    /// Drops the pending CA; nothing the device serves changes.
    pub fn cancel(&self) -> Result<CaStatus, RotationError> {
        {
            let mut set = self.lock();
            if set.pending.take().is_none() {
                return Err(RotationError::NotPending);
            }
            remove_dir(&self.dir.join("next"))?;
            tracing::info!("CA rotation cancelled");
        }
        Ok(self.status())
    }

    /// Step 2: the pending CA becomes current and signs the certificate served from now on.
    pub fn activate(
        &self,
        wanted: &[String],
        now: OffsetDateTime,
    ) -> Result<CaStatus, RotationError> {
        {
            let mut set = self.lock();
            let Some(next) = set.pending.take() else {
                return Err(RotationError::NotPending);
            };
            let old = info(&set.current);
            let previous_dir = self.dir.join("previous");
            ensure_dir(&previous_dir, 0o700).map_err(|source| TlsError::Io {
                path: previous_dir.clone(),
                source,
            })?;
            write(&paths(&previous_dir).ca_cert, set.current.cert_pem(), 0o644)?;
            write(
                &previous_dir.join("info.json"),
                &serde_json::to_string(&old).unwrap_or_default(),
                0o644,
            )?;
            // Key first (see `open`), then `next/` goes last.
            next.save(&self.dir)?;
            remove_dir(&self.dir.join("next"))?;
            tracing::info!(from = %old.common_name, to = %next.meta.common_name, "CA rotated");
            set.current = next;
            set.previous = Some(old);
        }
        self.refresh(wanted, now)?;
        Ok(self.status())
    }

    /// Step 3: forgets the retired CA once the user removed it from their trust stores.
    pub fn forget_previous(&self) -> Result<CaStatus, RotationError> {
        {
            let mut set = self.lock();
            if set.previous.take().is_none() {
                return Err(RotationError::NoPrevious);
            }
            remove_dir(&self.dir.join("previous"))?;
        }
        Ok(self.status())
    }
}

fn read_previous(dir: &Path) -> Result<Option<CaInfo>, TlsError> {
    let file = dir.join("info.json");
    match read(&file)? {
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| super::invalid(&file, e)),
        None => Ok(None),
    }
}
