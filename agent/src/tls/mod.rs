//! The device's TLS identity: a local certificate authority created on first start, and a
//! server certificate it signs for the device's names and addresses.
//!
//! Both live under `<data_dir>/tls/` (keys mode 0600, written atomically) and are reused on
//! restart. The server certificate is re-issued, and swapped into the running server without a
//! restart, when it nears expiry, when the device's names or addresses change, or when the CA
//! was rotated. The CA certificate is what a person downloads once to make their browser trust
//! the device; it is name-constrained (see `constraints`) so that trust covers only the
//! device's own names and addresses. Rotation (a new CA, then the switch) lives in `rotation`.

pub mod constraints;
mod resolver;
mod rotation;

pub use resolver::CertResolver;
pub use rotation::{CaInfo, CaStatus, DeviceTls, RotationError};

use crate::fsutil::{ensure_dir, write_atomic};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Server certificates live 397 days, the most browsers accept.
const SERVER_LIFETIME: Duration = Duration::days(397);
/// Ten years: every rotation asks each user to trust a new root by hand, so the CA outlives
/// the hardware it most likely runs on; the name constraints bound what a stolen key is worth,
/// and rotation (documented in docs/security.md) is there for a suspected compromise.
const CA_LIFETIME: Duration = Duration::days(10 * 365);
/// Renew when less than this much validity is left.
pub const RENEW_BEFORE: Duration = Duration::days(30);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct CaMeta {
    common_name: String,
    /// False for CAs made before name constraints existed (their `ca.json` lacks the field):
    /// the dashboard then recommends a rotation.
    #[serde(default)]
    name_constrained: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    not_before: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    not_after: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerMeta {
    pub sans: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 fingerprint of the CA that signed it; a certificate from another CA (before a
    /// rotation, or from before this field existed) is re-issued.
    #[serde(default)]
    pub issuer_fingerprint: String,
}

/// The device CA: its key and certificate.
pub struct LocalCa {
    key: KeyPair,
    meta: CaMeta,
    cert_pem: String,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// A server certificate and key in PEM, with what it covers.
#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub meta: ServerMeta,
}

struct Paths {
    ca_key: PathBuf,
    ca_cert: PathBuf,
    ca_meta: PathBuf,
    server_key: PathBuf,
    server_cert: PathBuf,
    server_meta: PathBuf,
}

fn paths(dir: &Path) -> Paths {
    Paths {
        ca_key: dir.join("ca.key"),
        ca_cert: dir.join("ca.crt"),
        ca_meta: dir.join("ca.json"),
        server_key: dir.join("server.key"),
        server_cert: dir.join("server.crt"),
        server_meta: dir.join("server.json"),
    }
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    write_atomic(path, text.as_bytes(), mode).map_err(|source| TlsError::Io {
        path: path.into(),
        source,
    })
}

fn invalid(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        path: path.into(),
        message: message.to_string(),
    }
}

fn ca_params(meta: &CaMeta) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Hearth");
    dn.push(DnType::CommonName, meta.common_name.as_str());
    params.distinguished_name = dn;
    if meta.name_constrained {
        params.name_constraints = Some(constraints::name_constraints());
    }
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl LocalCa {
    /// Loads the CA from `dir`, or creates it if none exists yet.
    pub fn load_or_create(dir: &Path, now: OffsetDateTime) -> Result<Self, TlsError> {
        ensure_dir(dir, 0o700).map_err(|source| TlsError::Io {
            path: dir.into(),
            source,
        })?;
        match Self::load(dir)? {
            Some(ca) => Ok(ca),
            None => Self::create(dir, now),
        }
    }

    /// The CA in `dir`, if its key, metadata and certificate are all there.
    fn load(dir: &Path) -> Result<Option<Self>, TlsError> {
        let p = paths(dir);
        match (read(&p.ca_key)?, read(&p.ca_meta)?, read(&p.ca_cert)?) {
            (Some(key), Some(meta), Some(cert_pem)) => Ok(Some(LocalCa {
                key: KeyPair::from_pem(&key).map_err(|e| invalid(&p.ca_key, e))?,
                meta: serde_json::from_str(&meta).map_err(|e| invalid(&p.ca_meta, e))?,
                cert_pem,
            })),
            _ => Ok(None),
        }
    }

    /// Makes a new name-constrained CA and writes it to `dir`.
    fn create(dir: &Path, now: OffsetDateTime) -> Result<Self, TlsError> {
        let ca = Self::generate(now)?;
        ca.save(dir)?;
        tracing::info!(ca = %ca.meta.common_name, "created the device certificate authority");
        Ok(ca)
    }

    /// A new name-constrained CA, in memory only.
    fn generate(now: OffsetDateTime) -> Result<Self, TlsError> {
        let id = crate::auth::tokens::random_bytes::<4>();
        let meta = CaMeta {
            common_name: format!(
                "Hearth local CA {:02x}{:02x}{:02x}{:02x}",
                id[0], id[1], id[2], id[3]
            ),
            name_constrained: true,
            not_before: Some(now - Duration::hours(1)),
            not_after: Some(now + CA_LIFETIME),
        };
        let key = KeyPair::generate()?;
        let mut params = ca_params(&meta);
        params.not_before = now - Duration::hours(1);
        params.not_after = now + CA_LIFETIME;
        params.serial_number = Some(SerialNumber::from_slice(
            &crate::auth::tokens::random_bytes::<16>(),
        ));
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(LocalCa {
            key,
            meta,
            cert_pem,
        })
    }

    /// Writes key, metadata, then certificate. Key first: a crash between the writes leaves
    /// files that `load` treats as "no CA here" rather than a certificate without its key.
    fn save(&self, dir: &Path) -> Result<(), TlsError> {
        let p = paths(dir);
        write(&p.ca_key, &self.key.serialize_pem(), 0o600)?;
        write(
            &p.ca_meta,
            &serde_json::to_string(&self.meta).unwrap_or_default(),
            0o644,
        )?;
        write(&p.ca_cert, &self.cert_pem, 0o644)
    }

    /// SHA-256 of the certificate's DER, as browsers show it (upper-case hex, colons).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_pem)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for `sans`.
    pub fn issue_server(
        &self,
        sans: &[String],
        now: OffsetDateTime,
    ) -> Result<ServerCert, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(s.clone().try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            sans.first().map(String::as_str).unwrap_or("hearth"),
        );
        params.distinguished_name = dn;
        params.not_before = now - Duration::hours(1);
        params.not_after = now + SERVER_LIFETIME;
        params.serial_number = Some(SerialNumber::from_slice(
            &crate::auth::tokens::random_bytes::<16>(),
        ));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::new(ca_params(&self.meta), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            meta: ServerMeta {
                sans: sans.to_vec(),
                not_after: params.not_after,
                issuer_fingerprint: self.fingerprint(),
            },
        })
    }
}

impl ServerCert {
    pub fn load(dir: &Path) -> Result<Option<Self>, TlsError> {
        let p = paths(dir);
        match (
            read(&p.server_cert)?,
            read(&p.server_key)?,
            read(&p.server_meta)?,
        ) {
            (Some(cert_pem), Some(key_pem), Some(meta)) => Ok(Some(ServerCert {
                cert_pem,
                key_pem,
                meta: serde_json::from_str(&meta).map_err(|e| invalid(&p.server_meta, e))?,
            })),
            _ => Ok(None),
        }
    }

    /// Writes key, then certificate, then the metadata that marks the set complete.
    pub fn save(&self, dir: &Path) -> Result<(), TlsError> {
        let p = paths(dir);
        let _ = std::fs::remove_file(&p.server_meta);
        write(&p.server_key, &self.key_pem, 0o600)?;
        write(&p.server_cert, &self.cert_pem, 0o644)?;
        write(
            &p.server_meta,
            &serde_json::to_string(&self.meta).unwrap_or_default(),
            0o644,
        )
    }

    /// True when this certificate should be replaced: it expires within [`RENEW_BEFORE`],
    /// does not cover every wanted name, or was signed by another CA than `ca`.
    pub fn needs_renewal(&self, wanted: &[String], ca: &LocalCa, now: OffsetDateTime) -> bool {
        self.meta.not_after - now < RENEW_BEFORE
            || wanted.iter().any(|w| !self.meta.sans.contains(w))
            || self.meta.issuer_fingerprint != ca.fingerprint()
    }
}

/// The names a device's certificate must cover: `<host>.local`, `localhost` and its addresses
/// inside the CA's permitted ranges. The bare host name is not among them: the CA may not sign
/// it (see `constraints`), and a verifier rejects a certificate with any name outside the
/// constraints, so one stray name would break all the others.
pub fn wanted_sans(hostname: &str, addresses: &[IpAddr]) -> Vec<String> {
    let mut sans = vec![format!("{hostname}.local"), "localhost".to_string()];
    let mut ips: Vec<IpAddr> = addresses
        .iter()
        .filter(|ip| constraints::permitted_ip(ip))
        .copied()
        .collect();
    ips.sort();
    ips.dedup();
    sans.extend(ips.iter().map(IpAddr::to_string));
    sans.dedup();
    sans
}

/// The names the server certificate for `hostname` must cover now (this machine's addresses).
pub fn wanted_names(hostname: &str) -> Vec<String> {
    wanted_sans(hostname, &local_addresses())
}

/// The machine's interface addresses (without IPv6 link-local ones, which need a zone).
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return vec![IpAddr::from([127, 0, 0, 1])];
    };
    addrs
        .filter_map(|ifa| ifa.address)
        .filter_map(|addr| {
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80))
        .collect()
}

/// Loads the server certificate, issuing a new one if there is none or it needs renewal.
/// Returns the certificate in use and whether it was (re)issued.
pub fn ensure_server_cert(
    dir: &Path,
    ca: &LocalCa,
    wanted: &[String],
    now: OffsetDateTime,
) -> Result<(ServerCert, bool), TlsError> {
    if let Some(existing) = ServerCert::load(dir)?
        && !existing.needs_renewal(wanted, ca, now)
    {
        return Ok((existing, false));
    }
    let cert = ca.issue_server(wanted, now)?;
    cert.save(dir)?;
    tracing::info!(names = ?wanted, not_after = %cert.meta.not_after, "issued server certificate");
    Ok((cert, true))
}

/// SHA-256 of the first certificate in `pem`, upper-case hex with colons.
pub fn fingerprint(pem: &str) -> String {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let Ok(der) = CertificateDer::from_pem_slice(pem.as_bytes()) else {
        return String::new();
    };
    sha2::Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Makes sure a private key file (or the folder holding keys) is for its owner only (the agent
/// runs as root): a key copied in by hand, restored from a backup or left by an older version
/// with wider permissions is tightened at start, with a warning.
fn enforce_private(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(TlsError::Io {
                path: path.into(),
                source,
            });
        }
    };
    let want = match meta.file_type() {
        t if t.is_file() => 0o600,
        t if t.is_dir() => 0o700,
        _ => return Err(invalid(path, "neither a regular file nor a folder")),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode != want {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "TLS key or folder was open to others; tightened");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(want)).map_err(
            |source| TlsError::Io {
                path: path.into(),
                source,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

/// The rustls form of `cert`, chained to the CA.
pub fn resolver_key(cert: &ServerCert, ca: &LocalCa) -> Result<rustls::sign::CertifiedKey, String> {
    resolver::certified_key(&cert.cert_pem, &cert.key_pem, ca.cert_pem())
}
