//! Every request runs in a tracing span `request{request_id, method, path}`, so each log line
//! written while serving it (by a handler, a service, the error mapping) names the request. A
//! 5xx body carries the same id (`error::server_error` reads it here), which is how a person
//! with only the dashboard's error message finds the details in the device's log.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Middleware: gives the request a fresh id and runs it inside its span.
pub async fn span(request: Request, next: Next) -> Response {
    let id = crate::auth::tokens::new_id();
    // At the error level: a span is recorded only where the log filter lets its level through,
    // and every line the filter lets through (`RUST_LOG=warn` included) should name its request.
    let span = tracing::error_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    REQUEST_ID
        .scope(id, next.run(request).instrument(span))
        .await
}

/// The id of the request being served; a fresh one outside a request (a background task).
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| crate::auth::tokens::new_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::{ApiError, ErrorCode, json_errors};
    use crate::error::ServiceError;
    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().expect("lock").clone();
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    async fn failing() -> Result<(), ApiError> {
        tracing::warn!("looking for the thing");
        Err(ServiceError::Internal("the thing is gone".into()).into())
    }

    /// Answers 500 as plain text, which `json_errors` rewrites into a server error.
    async fn plain_500() -> (StatusCode, &'static str) {
        (StatusCode::INTERNAL_SERVER_ERROR, "a library said no")
    }

    async fn request_id_of(app: Router, uri: &str) -> String {
        let response = app
            .oneshot(
                axum::http::Request::get(uri)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(body["error"]["code"], ErrorCode::Internal.as_str());
        body["error"]["request_id"]
            .as_str()
            .expect("a request id")
            .to_string()
    }

    #[tokio::test]
    async fn the_log_lines_of_a_failed_request_carry_the_id_in_its_body() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            // As the tests and quiet devices run the agent (`RUST_LOG=warn`).
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route("/api/failing", get(failing))
            .route("/api/plain", get(plain_500))
            .layer(axum::middleware::from_fn(json_errors))
            .layer(axum::middleware::from_fn(span));

        let first = request_id_of(app.clone(), "/api/failing").await;
        let second = request_id_of(app, "/api/plain").await;
        assert_ne!(first, second, "every request has its own id");

        let lines = captured.lines();
        for (id, path, messages) in [
            (
                &first,
                "/api/failing",
                &["looking for the thing", "the thing is gone"][..],
            ),
            (&second, "/api/plain", &["a library said no"][..]),
        ] {
            for message in messages {
                let line = lines
                    .iter()
                    .find(|l| l.contains(message))
                    .unwrap_or_else(|| panic!("no log line with {message:?} in {lines:#?}"));
                assert!(line.contains(&format!("request_id={id}")), "{line}");
                assert!(line.contains(&format!("path={path}")), "{line}");
                assert!(line.contains("method=GET"), "{line}");
            }
        }
    }
}
