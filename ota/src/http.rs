//! Fetching from an update repository over HTTP(S): the signed index, and bundle bytes with
//! Range requests that resume where a dropped connection stopped. The caller supplies the
//! `reqwest::Client` (trusted roots, proxy, origin policy) and the repository's base URL.
use crate::source::{BundleSource, Sink, SourceError};

/// Largest index accepted (a signed index is a few KiB).
pub const MAX_INDEX_BYTES: usize = 2 * 1024 * 1024;
/// Failed attempts in a row (without progress) before a range read gives up.
pub const ATTEMPTS: u32 = 5;
/// How long a Range request may stall before it is abandoned and resumed.
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn http(e: impl std::fmt::Display) -> SourceError {
    SourceError::Http(e.to_string())
}

/// URL of a channel's index in a repository whose root is `base` (ends with `/` or not): the
/// one naming format-3 bundles, which this build installs best (`docs/ota-bundle.md`).
pub fn index_url(base: &str, channel: &str, board: &str) -> String {
    index_url_for(base, channel, board, crate::format::FORMAT_VERSION_PAGED)
}

/// URL of the channel's index naming bundles of container format `format` (`index.hidx` for
/// format 1, `index-v2.hidx` for 2, `index-v3.hidx` for 3).
pub fn index_url_for(base: &str, channel: &str, board: &str, format: u16) -> String {
    let file = match format {
        crate::format::FORMAT_VERSION => crate::index::INDEX_FILE,
        crate::format::FORMAT_VERSION_CDC => crate::index::INDEX_FILE_V2,
        _ => crate::index::INDEX_FILE_V3,
    };
    format!("{}/{channel}/{board}/{file}", base.trim_end_matches('/'))
}

/// URL of a bundle named by an index (`bundle` is relative to the repository root).
pub fn bundle_url(base: &str, bundle: &str) -> Result<String, SourceError> {
    if bundle.starts_with('/')
        || bundle.split('/').any(|p| p == ".." || p.is_empty())
        || bundle.contains("://")
    {
        return Err(SourceError::Http(format!(
            "bundle path {bundle:?} leaves the repository"
        )));
    }
    Ok(format!("{}/{bundle}", base.trim_end_matches('/')))
}

/// Downloads an index (bounded size). Verify it with `index::accept` before using it.
pub async fn fetch_index(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, SourceError> {
    let mut resp = client.get(url).send().await.map_err(http)?;
    if !resp.status().is_success() {
        return Err(SourceError::Http(format!("GET {url}: {}", resp.status())));
    }
    let mut out = Vec::new();
    while let Some(piece) = resp.chunk().await.map_err(http)? {
        if out.len() + piece.len() > MAX_INDEX_BYTES {
            return Err(SourceError::Http(format!(
                "{url} is larger than {MAX_INDEX_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

/// A bundle on a web server, read with Range requests. Synchronous for the installer: it drives
/// its futures on the given runtime handle, so call it from a blocking thread
/// (`tokio::task::spawn_blocking`), never from inside an async task. The runtime must be
/// multi-threaded: `Handle::block_on` cannot drive I/O on a current-thread runtime.
pub struct HttpSource {
    client: reqwest::Client,
    url: String,
    runtime: tokio::runtime::Handle,
    size: Option<u64>,
    fetched: u64,
    requests: u64,
    idle_timeout: std::time::Duration,
}

impl HttpSource {
    pub fn new(client: reqwest::Client, url: String, runtime: tokio::runtime::Handle) -> Self {
        HttpSource {
            client,
            url,
            runtime,
            size: None,
            fetched: 0,
            requests: 0,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// A request that brings no byte for this long counts as failed (and is retried).
    pub fn with_idle_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Range requests made so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// One Range request from `offset`; returns bytes delivered before the body ended or failed.
    async fn attempt(
        &mut self,
        offset: u64,
        len: u64,
        sink: &mut Sink<'_>,
        stopped: &mut bool,
    ) -> Result<u64, (u64, SourceError)> {
        self.requests += 1;
        let range = format!("bytes={}-{}", offset, offset + len - 1);
        let send = self
            .client
            .get(&self.url)
            .header(reqwest::header::RANGE, range)
            .send();
        let resp = tokio::time::timeout(self.idle_timeout, send).await;
        let resp = resp.map_err(|_| (0, SourceError::Http(format!("{}: no answer", self.url))))?;
        let mut resp = resp.map_err(|e| (0, http(e)))?;
        if resp.status() == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            return Err((
                0,
                SourceError::Truncated {
                    needed: offset + len,
                    have: self.size.unwrap_or(0),
                },
            ));
        }
        if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
            // A 200 would be the whole bundle: refuse rather than download everything.
            return Err((
                0,
                SourceError::Http(format!(
                    "GET {} with Range: {} (206 expected)",
                    self.url,
                    resp.status()
                )),
            ));
        }
        let mut got = 0u64;
        loop {
            let Ok(next) = tokio::time::timeout(self.idle_timeout, resp.chunk()).await else {
                let stalled = format!("{}: stalled after {got} of {len} bytes", self.url);
                return Err((got, SourceError::Http(stalled)));
            };
            match next {
                Ok(Some(piece)) => {
                    let piece = &piece[..piece.len().min((len - got) as usize)];
                    self.fetched += piece.len() as u64;
                    got += piece.len() as u64;
                    if sink(piece).is_break() {
                        *stopped = true;
                        return Ok(got);
                    }
                    if got == len {
                        return Ok(got);
                    }
                }
                Ok(None) => {
                    return Err((
                        got,
                        SourceError::Http(format!(
                            "{}: body ended after {got} of {len} bytes",
                            self.url
                        )),
                    ));
                }
                Err(e) => return Err((got, http(e))),
            }
        }
    }
}

impl BundleSource for HttpSource {
    fn size(&mut self) -> Result<u64, SourceError> {
        if let Some(size) = self.size {
            return Ok(size);
        }
        let runtime = self.runtime.clone();
        let resp = runtime
            .block_on(self.client.head(&self.url).send())
            .map_err(http)?;
        if !resp.status().is_success() {
            return Err(SourceError::Http(format!(
                "HEAD {}: {}",
                self.url,
                resp.status()
            )));
        }
        let size = resp
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .ok_or_else(|| SourceError::Http(format!("HEAD {}: no Content-Length", self.url)))?;
        self.size = Some(size);
        Ok(size)
    }

    fn read_at(&mut self, offset: u64, len: u64, sink: &mut Sink<'_>) -> Result<(), SourceError> {
        let size = self.size()?;
        if offset.saturating_add(len) > size {
            return Err(SourceError::Truncated {
                needed: offset.saturating_add(len),
                have: size,
            });
        }
        let runtime = self.runtime.clone();
        let mut done = 0u64;
        let mut failures = 0;
        while done < len {
            let mut stopped = false;
            match runtime.block_on(self.attempt(offset + done, len - done, sink, &mut stopped)) {
                Ok(got) => {
                    done += got;
                    if stopped {
                        return Ok(());
                    }
                }
                Err((got, e)) => {
                    // Resume after what the sink already has; give up after ATTEMPTS failures
                    // in a row that brought nothing.
                    done += got;
                    failures = if got > 0 { 1 } else { failures + 1 };
                    if matches!(e, SourceError::Truncated { .. }) || failures >= ATTEMPTS {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    fn bytes_fetched(&self) -> u64 {
        self.fetched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_paths_stay_inside_the_repository() {
        let base = "https://updates.example/hearth/";
        assert_eq!(
            bundle_url(base, "bundles/x.hota").ok().as_deref(),
            Some("https://updates.example/hearth/bundles/x.hota")
        );
        for bad in [
            "/etc/passwd",
            "../x.hota",
            "bundles/../../x",
            "bundles//x",
            "http://evil/x",
        ] {
            assert!(bundle_url(base, bad).is_err(), "{bad}");
        }
        assert_eq!(
            index_url(base, "stable", "rpi4"),
            "https://updates.example/hearth/stable/rpi4/index-v3.hidx"
        );
        for (format, file) in [
            (1, "index.hidx"),
            (2, "index-v2.hidx"),
            (3, "index-v3.hidx"),
        ] {
            assert_eq!(
                index_url_for(base, "beta", "pi5", format),
                format!("https://updates.example/hearth/beta/pi5/{file}")
            );
        }
    }
}
