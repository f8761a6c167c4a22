//! HTTP/2 early refusals: a request refused before its body is read (a missing CSRF token, a
//! member's forbidden upload, an upload after logout, a body over its limit) must still deliver
//! its status and JSON body.
//!
//! With HTTP/2, dropping an unread request body resets the stream (`RST_STREAM(CANCEL)`), and
//! the reset goes out before the response the handler returns a moment later: curl reports a
//! framing-layer error and a browser a network error. So this layer keeps the request body
//! alive across the handler: the handler reads it through a shared handle, and when it has
//! answered without reading it all, the rest is drained in the background (bounded in bytes
//! and time) while the response goes out first. A client that stops sending when it has its
//! answer (as browsers and curl do) ends the stream itself.
//!
//! With HTTP/1.1, hyper closes the connection after such a response when the rest of the body
//! is not already in its buffer, but the response did not say so: a client that put the
//! connection back in its pool sent its next request into the closing socket and got a reset
//! or a TLS EOF instead of an answer (Schemathesis's "EOF occurred in violation of protocol").
//! So a refusal that leaves the body unread carries `Connection: close`.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// At most this much of an unread body is drained (and thrown away) after a refusal.
const DRAIN_MAX_BYTES: u64 = 64 << 20;
/// And for at most this long.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(10);

type Shared = Arc<Mutex<Body>>;

/// A request body read through a handle shared with the layer.
struct SharedBody(Shared);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Pin::new(&mut *body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).size_hint()
    }
}

/// Middleware: see the module documentation.
pub async fn keep_unread_body(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let version = request.version();
    let (parts, body) = request.into_parts();
    let shared: Shared = Arc::new(Mutex::new(body));
    let handle = Body::new(SharedBody(shared.clone()));
    let mut response = next.run(Request::from_parts(parts, handle)).await;
    // Only when the handler let go of the body: one that kept it (a streamed upload handed to
    // a task) reads it itself.
    if Arc::strong_count(&shared) == 1 {
        let unread = !shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_end_stream();
        if unread && version == Version::HTTP_2 {
            tokio::spawn(drain(shared));
        } else if unread {
            // HTTP/1: hyper drains what it has buffered or closes; tell the client first.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    response
}

async fn drain(shared: Shared) {
    let work = async {
        let mut seen = 0u64;
        loop {
            let frame = std::future::poll_fn(|cx| {
                let mut body = shared.lock().unwrap_or_else(|e| e.into_inner());
                Pin::new(&mut *body).poll_frame(cx)
            })
            .await;
            match frame {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if seen > DRAIN_MAX_BYTES {
                        return;
                    }
                }
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, work).await;
}
