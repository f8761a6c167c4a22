//! Outgoing HTTP(S) for apps: store zips, icons and screenshots. One place decides the trust
//! roots, the size limits, the redirects and which addresses may be reached.
//!
//! Trust roots: Mozilla's, compiled in through `webpki-roots`, plus the CA files an admin names
//! (`app_store_ca_files`). Compiled-in roots are chosen over the system store
//! (`rustls-native-certs`) because the agent then behaves the same on every image whether or
//! not it ships `ca-certificates`, and the roots are renewed with every agent update (which
//! the OTA path delivers anyway); a device that needs its own CA adds it in the config.
//!
//! Addresses: with `allow_private = false` a host that resolves to a loopback, private,
//! link-local, unique-local, multicast or unspecified address is refused, at the first request
//! and at every redirect (at most [`MAX_REDIRECTS`]), so a store's icon URL cannot make the
//! agent probe the device or its LAN.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const MAX_REDIRECTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}: only http and https URLs are allowed")]
    Scheme(String),
    #[error("{0}: not a valid URL")]
    Url(String),
    #[error("{url}: refused to reach the private or loopback address {addr}")]
    Private { url: String, addr: IpAddr },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("cannot read CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
}

/// True for addresses that are not on the public internet.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // 100.64.0.0/10 (carrier-grade NAT) and 0.0.0.0/8
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s & 0xfe00) == 0xfc00
                || (s & 0xffc0) == 0xfe80
        }
    }
}

/// A resolver that refuses private addresses.
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| is_private(a.ip())) {
                return Err(format!("{host} resolves to the private address {}", bad.ip()).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Checks a URL's scheme and, for IP literals, its address (names are checked by the resolver).
fn check_url(url: &reqwest::Url, allow_private: bool) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Scheme(url.to_string()));
    }
    if !allow_private {
        let host = url.host_str().unwrap_or_default();
        let ip: Option<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
            Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        } else {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()
        };
        if let Some(addr) = ip.filter(|a| is_private(*a)) {
            return Err(FetchError::Private {
                url: url.to_string(),
                addr,
            });
        }
    }
    Ok(())
}

/// The HTTP client for apps, with its policy.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    allow_private: bool,
    https_only: bool,
}

/// What a successful fetch returns.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
}

impl Fetcher {
    /// `ca_files`: PEM files with extra trust anchors. `allow_private`: tests and LAN-only
    /// setups may reach loopback and private addresses. `https_only`: plain http is refused,
    /// redirects included (store zips).
    pub fn new(
        ca_files: &[PathBuf],
        allow_private: bool,
        https_only: bool,
    ) -> Result<Self, FetchError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for path in ca_files {
            let ca_err = |message: String| FetchError::CaFile {
                path: path.clone(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ca_err(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
                n += 1;
            }
            if n == 0 {
                return Err(ca_err("no certificate in it".into()));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Http {
            url: String::new(),
            message: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if let Err(e) = check_url(attempt.url(), allow_private) {
                attempt.error(e.to_string())
            } else {
                attempt.follow()
            }
        });
        let mut b = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(redirects)
            .https_only(https_only)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("hearth-agent/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            b = b.dns_resolver(Arc::new(PublicOnly));
        }
        let client = b.build().map_err(|e| FetchError::Http {
            url: String::new(),
            message: e.to_string(),
        })?;
        Ok(Self {
            client,
            allow_private,
            https_only,
        })
    }

    /// GETs `url` and reads at most `limit` bytes of its body (a larger body is an error, not a
    /// truncation).
    pub async fn get(&self, url: &str, limit: u64) -> Result<Fetched, FetchError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| FetchError::Url(url.to_string()))?;
        check_url(&parsed, self.allow_private)?;
        if self.https_only && parsed.scheme() != "https" {
            return Err(FetchError::Http {
                url: url.to_string(),
                message: "only https is allowed here".into(),
            });
        }
        let http = |e: reqwest::Error| FetchError::Http {
            url: url.to_string(),
            message: error_chain(&e),
        };
        let mut resp = self.client.get(parsed).send().await.map_err(http)?;
        if self.https_only && resp.url().scheme() != "https" {
            return Err(FetchError::Http {
                url: url.to_string(),
                message: "redirected to plain http".into(),
            });
        }
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: resp.status().as_u16(),
            });
        }
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(http)? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            bytes,
            content_type,
        })
    }
}

/// reqwest's error with its causes ("error sending request: ... certificate unknown").
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.0.1",
        ] {
            assert!(is_private(a.parse().expect("ip")), "{a}");
        }
        for a in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(!is_private(a.parse().expect("ip")), "{a}");
        }
    }

    #[tokio::test]
    async fn private_and_odd_urls_are_refused_before_any_request() {
        let f = Fetcher::new(&[], false, false).expect("client");
        for url in [
            "http://127.0.0.1:1/x.png",
            "http://localhost/x.png",
            "http://[::1]/x",
            "http://10.0.0.1/x",
        ] {
            assert!(
                matches!(f.get(url, 10).await, Err(FetchError::Private { .. })),
                "{url}"
            );
        }
        assert!(matches!(
            f.get("file:///etc/passwd", 10).await,
            Err(FetchError::Scheme(_))
        ));
        assert!(matches!(
            f.get("not a url", 10).await,
            Err(FetchError::Url(_))
        ));
    }
}
