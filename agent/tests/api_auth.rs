//! Every route of the OpenAPI document refuses requests without a session, however the request
//! dresses itself up: from loopback, with forwarding headers, or with `Host: localhost`.

mod common;

use common::{Agent, error_code};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The routes that answer without a session. Adding an open route must be a deliberate change
/// to this list.
const OPEN: [(&str, &str); 5] = [
    ("GET", "/api/health"),
    ("GET", "/api/v1/setup"),
    ("POST", "/api/v1/setup/claim"),
    ("POST", "/api/v1/session"),
    ("GET", "/api/v1/tls/ca.crt"),
];

const SPOOFS: [&[(&str, &str)]; 5] = [
    &[],
    &[("x-forwarded-for", "127.0.0.1")],
    &[("x-real-ip", "127.0.0.1")],
    &[("forwarded", "for=127.0.0.1;proto=https;host=localhost")],
    &[("host", "localhost")],
];

fn routes(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.push((method.to_uppercase(), path.replace("{name}", "admin")));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_documented_route_needs_a_session_except_the_open_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    // Claim first so that the claim route answers 409 rather than creating anything.
    let _admin = agent.claim().await;
    let mut anon = agent.session();
    let (status, doc) = anon.send(Method::GET, "/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let routes = routes(&doc);
    assert!(routes.len() >= 15, "the document lists the API: {routes:?}");

    for (method, path) in &routes {
        let is_open = OPEN.iter().any(|(m, p)| m == method && p == path);
        let documented_open = doc["paths"][path.replace("admin", "{name}")][method.to_lowercase()]
            .get("security")
            .is_none();
        assert_eq!(
            is_open, documented_open,
            "{method} {path}: document and test disagree on openness"
        );
        if is_open {
            continue;
        }
        for spoof in SPOOFS {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let body = (method != Method::GET).then(|| serde_json::json!({}));
            let mut req_session = agent.session();
            let (status, _, text) = req_session.request(method.clone(), path, body, spoof).await;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {spoof:?}: {text}"
            );
            assert_eq!(error_code(&body), "unauthenticated");
        }
    }
}

#[tokio::test]
async fn a_forged_or_stale_cookie_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut admin = agent.claim().await;
    let mut forged = agent.session();
    forged.cookie = Some("A".repeat(43));
    let (status, _) = forged
        .send(Method::GET, "/api/v1/system/status", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let stale = admin.cookie.clone();
    let (status, _) = admin.send(Method::DELETE, "/api/v1/session", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    admin.cookie = stale;
    let (status, body) = admin.send(Method::GET, "/api/v1/system/status", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a logged-out session is revoked on the device: {body}"
    );
}

#[tokio::test]
async fn responses_carry_hardening_headers_and_plain_http_redirects() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut anon = agent.session();
    for path in ["/", "/api/health", "/api/v1/users"] {
        let (_, headers, _) = anon.request(Method::GET, path, None, &[]).await;
        let csp = headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(headers.contains_key("strict-transport-security"), "{path}");
        assert_eq!(
            headers.get("x-content-type-options").map(|v| v.as_bytes()),
            Some(&b"nosniff"[..])
        );
    }
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = plain
        .get(format!("http://127.0.0.1:{}/apps?x=1", agent.port))
        .send()
        .await
        .expect("plain request");
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
        Some(format!("https://127.0.0.1:{}/apps?x=1", agent.port).as_str())
    );
}

#[tokio::test]
async fn errors_have_one_json_shape() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut admin = agent.claim().await;
    let cases: [(Method, &str, Option<Value>, StatusCode, &str); 6] = [
        (
            Method::POST,
            "/api/v1/users",
            Some(serde_json::json!({"username": "x"})),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(serde_json::json!([1, 2])),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/api/v1/nope",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/api/v1/users/ghost",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(
                serde_json::json!({"username": "Bad Name", "password": "long enough", "role": "member"}),
            ),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::DELETE,
            "/api/v1/users/admin",
            None,
            StatusCode::CONFLICT,
            "last_admin",
        ),
    ];
    for (method, path, body, want_status, want_code) in cases {
        let (status, json) = admin.send(method.clone(), path, body).await;
        assert_eq!(status, want_status, "{method} {path}: {json}");
        assert_eq!(error_code(&json), want_code, "{method} {path}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}
