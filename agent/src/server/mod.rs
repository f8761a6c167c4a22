//! The listeners: HTTPS with the device certificate, and plain HTTP answered with a redirect to
//! HTTPS. The HTTPS port also accepts plain HTTP (the first byte tells a TLS handshake apart) so
//! that `http://device:port/` redirects instead of failing.
//!
//! Every connection is admitted against the caps in `limits` at accept time and lives under
//! timeouts: the TLS handshake, the request header (HTTP/1), and an idle watchdog (no request in
//! flight, no byte moved). HTTP/2 connections have a bounded number of streams and a bound on
//! streams the client resets (the "rapid reset" attack). See docs/security.md.

mod drain;
mod limits;
mod redirect;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub use drain::keep_unread_body;
pub use limits::{ConnectionCaps, Limits, client_group};
pub use redirect::redirect_target;

/// A TLS handshake record starts with content type 22.
const TLS_HANDSHAKE: u8 = 0x16;
/// Concurrent HTTP/2 streams per connection: a dashboard needs a few dozen (thumbnails, status,
/// events); more only multiplies what one connection can make the agent do at once.
const H2_MAX_STREAMS: u32 = 64;
/// Streams a client may open and reset before the agent answered them, at once (hyper's
/// default is 20; the rapid-reset attack, CVE-2023-44487, opens and resets without end).
const H2_MAX_PENDING_RESETS: usize = 20;
/// Streams the agent may reset because of client errors before it closes the connection.
const H2_MAX_ERROR_RESETS: usize = 256;
/// How long to wait after asking an idle connection to close before dropping it.
const GRACE: Duration = Duration::from_secs(5);
/// How long the accept loop rests when the process is out of descriptors (or memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Server {
    app: Router,
    tls: TlsAcceptor,
    fallback_host: Arc<str>,
    caps: Arc<ConnectionCaps>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

pub fn tls_config(resolver: Arc<crate::tls::CertResolver>) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// Accepts the next connection. Running out of descriptors (`EMFILE`, `ENFILE`) or kernel
/// memory makes `accept` fail at once for as long as it lasts; retrying at once would spin a
/// core, so the loop rests a moment and lets connections close.
async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok(pair) => Some(pair),
        Err(e) => {
            let exhausted = matches!(
                e.raw_os_error(),
                Some(libc_errno) if [
                    nix::errno::Errno::EMFILE as i32,
                    nix::errno::Errno::ENFILE as i32,
                    nix::errno::Errno::ENOBUFS as i32,
                    nix::errno::Errno::ENOMEM as i32,
                ].contains(&libc_errno)
            );
            if exhausted {
                tracing::warn!(error = %e, "cannot accept connections: resources exhausted; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            } else {
                tracing::debug!(error = %e, "accept failed");
            }
            None
        }
    }
}

impl Server {
    pub fn new(app: Router, tls: rustls::ServerConfig, fallback_host: &str) -> Self {
        Self::with_limits(app, tls, fallback_host, Limits::for_this_process())
    }

    pub fn with_limits(
        app: Router,
        tls: rustls::ServerConfig,
        fallback_host: &str,
        limits: Limits,
    ) -> Self {
        tracing::info!(
            max_connections = limits.max_connections,
            max_per_client = limits.max_per_client,
            "connection caps"
        );
        Self {
            app,
            tls: TlsAcceptor::from(Arc::new(tls)),
            fallback_host: fallback_host.into(),
            caps: ConnectionCaps::new(limits),
        }
    }

    fn limits(&self) -> Limits {
        *self.caps.limits()
    }

    /// Serves HTTPS (and redirects plain HTTP) on `listener` until the task is dropped.
    pub async fn serve_https(self, listener: TcpListener) {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(443);
        loop {
            let Some((stream, peer)) = accept(&listener).await else {
                continue;
            };
            // Over the cap: the connection is closed at once, before anything is read.
            let Some(permit) = self.caps.admit(peer.ip()) else {
                continue;
            };
            let server = self.clone();
            tokio::spawn(async move {
                server.connection(stream, peer, port).await;
                drop(permit);
            });
        }
    }

    /// Serves only redirects to HTTPS on `https_port`.
    pub async fn serve_redirects(self, listener: TcpListener, https_port: u16) {
        loop {
            let Some((stream, peer)) = accept(&listener).await else {
                continue;
            };
            let Some(permit) = self.caps.admit(peer.ip()) else {
                continue;
            };
            let host = self.fallback_host.clone();
            let limits = self.limits();
            tokio::spawn(async move {
                serve_plain(stream, https_port, host, false, limits).await;
                drop(permit);
            });
        }
    }

    async fn connection(self, stream: TcpStream, peer: SocketAddr, port: u16) {
        let limits = self.limits();
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(limits.handshake_timeout, stream.peek(&mut first)).await;
        if !matches!(peeked, Ok(Ok(1))) {
            return;
        }
        if first[0] != TLS_HANDSHAKE {
            serve_plain(stream, port, self.fallback_host.clone(), true, limits).await;
            return;
        }
        // Without TCP_NODELAY a response that ends in a short segment (the tail of a 70 KB
        // catalog, a TLS record after a full window) waits for the client's delayed ACK: 40 ms
        // per such response on Linux (nginx sets it on its connections too).
        let _ = stream.set_nodelay(true);
        let Ok(Ok(tls)) =
            tokio::time::timeout(limits.handshake_timeout, self.tls.accept(stream)).await
        else {
            return;
        };
        let activity = limits::Activity::new();
        let app = self.app.clone();
        let watch = activity.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let in_flight = watch.request();
                let call = app.clone().oneshot(req.map(axum::body::Body::new));
                async move {
                    let response = call.await;
                    drop(in_flight);
                    response
                }
            });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        // HTTP/2's default 64 KiB windows cap an upload at one window per round trip (60 MiB/s
        // here against 700 MiB/s over HTTP/1.1); bigger windows let it run at disk speed. They
        // bound what a client may have in flight, not what the agent allocates up front.
        builder
            .http2()
            .timer(TokioTimer::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
            .max_local_error_reset_streams(H2_MAX_ERROR_RESETS)
            .max_header_list_size(64 << 10);
        let io = TokioIo::new(limits::Watched::new(tls, activity.clone()));
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        loop {
            let deadline = activity.idle_deadline(limits.idle_timeout);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = tokio::time::sleep_until(deadline) => {
                    if activity.is_idle(limits.idle_timeout) {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(GRACE, conn.as_mut()).await;
                        return;
                    }
                }
            }
        }
    }
}

async fn serve_plain(
    stream: TcpStream,
    https_port: u16,
    fallback_host: Arc<str>,
    same_port: bool,
    limits: Limits,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let location = redirect_target(
            host.as_deref(),
            &fallback_host,
            https_port,
            same_port,
            req.uri(),
        );
        async move {
            hyper::Response::builder()
                .status(hyper::StatusCode::PERMANENT_REDIRECT)
                .header(hyper::header::LOCATION, location)
                .header(hyper::header::CONTENT_LENGTH, "0")
                .body(axum::body::Body::empty())
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    // A redirect needs one request; whatever the client does, the connection ends.
    let _ = tokio::time::timeout(limits.redirect_lifetime, conn).await;
}
