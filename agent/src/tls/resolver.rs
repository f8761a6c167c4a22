//! A rustls certificate resolver whose certificate can be replaced while the server runs.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, RwLock};

#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

/// Builds a rustls key from PEM text; the chain is the server certificate then the CA.
pub fn certified_key(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<CertifiedKey, String> {
    let mut chain: Vec<CertificateDer<'static>> = Vec::new();
    for pem in [cert_pem, ca_pem] {
        chain.push(
            CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| format!("certificate: {e}"))?,
        );
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("private key: {e}"))?;
    Ok(CertifiedKey::new(chain, signing))
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
