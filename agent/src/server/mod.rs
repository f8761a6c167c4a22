//! The listeners: HTTPS with the device certificate, and plain HTTP answered with a redirect to
//! HTTPS. The HTTPS port also accepts plain HTTP (the first byte tells a TLS handshake apart) so
//! that `http://device:port/` redirects instead of failing.

mod redirect;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// A TLS handshake record starts with content type 22.
const TLS_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub use redirect::redirect_target;

#[derive(Clone)]
pub struct Server {
    app: Router,
    tls: TlsAcceptor,
    fallback_host: Arc<str>,
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

impl Server {
    pub fn new(app: Router, tls: rustls::ServerConfig, fallback_host: &str) -> Self {
        Self {
            app,
            tls: TlsAcceptor::from(Arc::new(tls)),
            fallback_host: fallback_host.into(),
        }
    }

    /// Serves HTTPS (and redirects plain HTTP) on `listener` until the task is dropped.
    pub async fn serve_https(self, listener: TcpListener) {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(443);
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let server = self.clone();
            tokio::spawn(async move { server.connection(stream, peer, port).await });
        }
    }

    /// Serves only redirects to HTTPS on `https_port`.
    pub async fn serve_redirects(self, listener: TcpListener, https_port: u16) {
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            let host = self.fallback_host.clone();
            tokio::spawn(async move { serve_plain(stream, https_port, host, false).await });
        }
    }

    async fn connection(self, stream: TcpStream, peer: SocketAddr, port: u16) {
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await;
        if !matches!(peeked, Ok(Ok(1))) {
            return;
        }
        if first[0] != TLS_HANDSHAKE {
            serve_plain(stream, port, self.fallback_host.clone(), true).await;
            return;
        }
        let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls.accept(stream)).await
        else {
            return;
        };
        let app = self.app.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // HTTP/2's default 64 KiB windows cap an upload at one window per round trip (60 MiB/s
        // here against 700 MiB/s over HTTP/1.1); bigger windows let it run at disk speed. They
        // bound what a client may have in flight, not what the agent allocates up front.
        builder
            .http2()
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20);
        let _ = builder
            .serve_connection_with_upgrades(TokioIo::new(tls), service)
            .await;
    }
}

async fn serve_plain(stream: TcpStream, https_port: u16, fallback_host: Arc<str>, same_port: bool) {
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
                .body(http_body_util_empty())
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn http_body_util_empty() -> axum::body::Body {
    axum::body::Body::empty()
}
