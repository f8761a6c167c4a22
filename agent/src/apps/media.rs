//! Icons, screenshots and thumbnails of store apps, fetched by the agent so the browser never
//! loads third-party hosts. Only http(s) URLs, through [`Fetcher`] (no private or loopback
//! addresses unless `app_media_allow_private`, at most 3 redirects), at most
//! [`MAX_MEDIA_BYTES`]; the type is decided from the bytes (PNG, JPEG, WebP, SVG; anything
//! else is refused, whatever the server's `Content-Type` says). Cached on disk under
//! `<dir>/<blake3(url)>.<ext>`, written atomically; failures are remembered for
//! [`RETRY_AFTER`] so a dead host is not asked on every page view.

use super::fetch::{FetchError, Fetcher};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_MEDIA_BYTES: u64 = 4 * 1024 * 1024;
pub const RETRY_AFTER: Duration = Duration::from_secs(600);

/// What the image routes answer with: scripts, frames, plugins and foreign loads are off, so an
/// SVG opened on its own is inert.
pub const MEDIA_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{0}: not a PNG, JPEG, WebP or SVG image")]
    NotAnImage(String),
    #[error("{0}: failed recently, not asked again yet")]
    RecentlyFailed(String),
}

/// The image types served, with their extension and MIME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Webp,
    Svg,
}

impl ImageType {
    const ALL: [ImageType; 4] = [Self::Png, Self::Jpeg, Self::Webp, Self::Svg];

    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Svg => "image/svg+xml",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
            Self::Svg => "svg",
        }
    }

    /// The type from the bytes themselves.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Some(Self::Png);
        }
        if bytes.starts_with(b"\xff\xd8\xff") {
            return Some(Self::Jpeg);
        }
        if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            return Some(Self::Webp);
        }
        // SVG: UTF-8 text whose first element is <svg (after an optional XML declaration,
        // comments and a doctype).
        let text = std::str::from_utf8(bytes).ok()?;
        let mut rest = text.trim_start_matches('\u{feff}').trim_start();
        loop {
            if let Some(r) = rest.strip_prefix("<?xml") {
                rest = r.split_once("?>")?.1.trim_start();
            } else if let Some(r) = rest.strip_prefix("<!--") {
                rest = r.split_once("-->")?.1.trim_start();
            } else if rest.starts_with("<!DOCTYPE") || rest.starts_with("<!doctype") {
                rest = rest.split_once('>')?.1.trim_start();
            } else {
                break;
            }
        }
        let is_svg = rest
            .strip_prefix("<svg")
            .is_some_and(|r| r.starts_with(|c: char| c.is_whitespace() || c == '>'));
        is_svg.then_some(Self::Svg)
    }
}

#[derive(Debug, Clone)]
pub struct MediaCache {
    dir: PathBuf,
    fetcher: Fetcher,
    failed: Arc<Mutex<HashMap<String, Instant>>>,
}

impl MediaCache {
    pub fn new(dir: PathBuf, fetcher: Fetcher) -> Self {
        Self {
            dir,
            fetcher,
            failed: Arc::default(),
        }
    }

    fn key(url: &str) -> String {
        blake3::hash(url.as_bytes()).to_hex().as_str()[..32].to_string()
    }

    /// The image at `url`, from the cache or fetched now.
    pub async fn get(&self, url: &str) -> Result<(ImageType, Vec<u8>), MediaError> {
        let key = Self::key(url);
        for t in ImageType::ALL {
            if let Ok(bytes) = tokio::fs::read(self.dir.join(format!("{key}.{}", t.ext()))).await {
                return Ok((t, bytes));
            }
        }
        {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.retain(|_, at| at.elapsed() < RETRY_AFTER);
            if failed.contains_key(url) {
                return Err(MediaError::RecentlyFailed(url.to_string()));
            }
        }
        match self.fetch(url).await {
            Ok((t, bytes)) => {
                let path = self.dir.join(format!("{key}.{}", t.ext()));
                let (dir, b) = (self.dir.clone(), bytes.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    crate::fsutil::ensure_dir(&dir, 0o700)
                        .and_then(|_| crate::fsutil::write_atomic(&path, &b, 0o600))
                })
                .await;
                Ok((t, bytes))
            }
            Err(e) => {
                tracing::info!(%url, error = %e, "app image not fetched");
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(url.to_string(), Instant::now());
                Err(e)
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<(ImageType, Vec<u8>), MediaError> {
        let f = self.fetcher.get(url, MAX_MEDIA_BYTES).await?;
        let t = ImageType::sniff(&f.bytes).ok_or_else(|| MediaError::NotAnImage(url.into()))?;
        Ok((t, f.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(
            ImageType::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(ImageType::Png)
        );
        assert_eq!(ImageType::sniff(b"\xff\xd8\xff\xe0"), Some(ImageType::Jpeg));
        assert_eq!(
            ImageType::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageType::Webp)
        );
        for svg in [
            "<svg xmlns='http://www.w3.org/2000/svg'/>",
            "\u{feff}<?xml version='1.0'?>\n<!-- c -->\n<!DOCTYPE svg>\n<svg>\n</svg>",
        ] {
            assert_eq!(
                ImageType::sniff(svg.as_bytes()),
                Some(ImageType::Svg),
                "{svg}"
            );
        }
        for bad in [
            &b"<html><svg></svg></html>"[..],
            b"<svgfoo>",
            b"GIF89a",
            b"",
            b"<?xml version='1.0'?><html/>",
        ] {
            assert_eq!(ImageType::sniff(bad), None, "{bad:?}");
        }
    }
}
