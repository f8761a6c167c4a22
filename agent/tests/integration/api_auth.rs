//! Every route of the OpenAPI document refuses requests without a session, however the request
//! dresses itself up: from loopback, with forwarding headers, or with `Host: localhost`.

use crate::common;

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
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// `/api/v1/users/{name}` → `/api/v1/users/admin`: a value that exists, so that only the
/// missing session can be the reason for a refusal.
fn fill_params(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        out.push_str(match &rest[start..end] {
            "{root}" => "home",
            "{path}" => "docs/a.txt",
            _ => "admin",
        });
        rest = &rest[end..];
    }
    out.push_str(rest);
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
    assert!(routes.len() >= 25, "the document lists the API: {routes:?}");

    for (method, path) in &routes {
        let is_open = OPEN.iter().any(|(m, p)| m == method && p == path);
        let documented_open = doc["paths"][path][method.to_lowercase()]
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
            let concrete = fill_params(path);
            let (status, _, text) = req_session
                .request(method.clone(), &concrete, body, spoof)
                .await;
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
    let (agent, mut admin) = common::claimed_agent().await;
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
    let (_agent, mut admin) = common::claimed_agent().await;
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

/// Method, path, body, extra headers, wanted status, wanted code.
type Case<'a> = (
    Method,
    &'a str,
    Option<&'a str>,
    &'a [(&'a str, &'a str)],
    StatusCode,
    &'a str,
);

/// axum's own rejections (a bad query, a bad path parameter, a body that is not JSON, an
/// unknown method, a body over the limit) use the same JSON shape with a stable code.
#[tokio::test]
async fn extractor_rejections_use_the_error_shape() {
    let (agent, mut admin) = common::claimed_agent().await;
    let huge = "x".repeat(200 << 10);
    let cases: Vec<Case> = vec![
        // A query that does not parse.
        (
            Method::GET,
            "/api/v1/services/hearth-agent.service/journal?lines=many",
            None,
            &[],
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::GET,
            "/api/v1/catalog/x/y/screenshots/notanumber",
            None,
            &[],
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some("{not json"),
            &[("content-type", "application/json")],
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some("{}"),
            &[("content-type", "text/plain")],
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            Method::PUT,
            "/api/v1/users",
            None,
            &[],
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(huge.as_str()),
            &[("content-type", "application/json")],
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
    ];
    for (method, path, body, headers, want_status, want_code) in cases {
        let mut req = admin
            .client
            .request(method.clone(), agent.url(path))
            .header(
                "cookie",
                format!(
                    "__Host-hearth_session={}",
                    admin.cookie.clone().expect("cookie")
                ),
            )
            .header("x-csrf-token", admin.csrf.clone().expect("csrf"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, want_status, "{method} {path}: {text}");
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}: {content_type}"
        );
        let json: Value = serde_json::from_str(&text).expect("JSON body");
        assert_eq!(error_code(&json), want_code, "{method} {path}: {text}");
    }
    // The admin's session still works (nothing above changed anything).
    let (status, _) = admin.send(Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Routes a member may use. Every other route that needs a session is for admins only, and
/// the app log route is for admins and members an admin granted it. A route whose guard is
/// wrong (a `Session` where an `AdminSession` belongs, or the other way) fails this test, and
/// so does a new route nobody classified.
const MEMBER_ROUTES: [(&str, &str); 27] = [
    ("GET", "/api/v1/stores"),
    ("GET", "/api/v1/catalog"),
    ("GET", "/api/v1/catalog/{store}/{app}"),
    ("GET", "/api/v1/catalog/{store}/{app}/icon"),
    ("GET", "/api/v1/catalog/{store}/{app}/thumbnail"),
    ("GET", "/api/v1/catalog/{store}/{app}/screenshots/{n}"),
    ("GET", "/api/v1/apps"),
    ("GET", "/api/v1/apps/{id}"),
    ("GET", "/api/v1/apps/{id}/stats"),
    ("GET", "/api/v1/system/settings"),
    ("GET", "/api/v1/system/status"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/files"),
    ("GET", "/api/v1/files/{root}"),
    ("GET", "/api/v1/files/{root}/{path}"),
    ("PUT", "/api/v1/files/{root}/{path}"),
    ("POST", "/api/v1/files/{root}/{path}"),
    ("DELETE", "/api/v1/files/{root}/{path}"),
    ("GET", "/api/v1/trash/{root}"),
    ("DELETE", "/api/v1/trash/{root}"),
    ("POST", "/api/v1/trash/{root}/{id}"),
    ("GET", "/api/v1/jobs"),
    ("DELETE", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/session"),
    ("PUT", "/api/v1/account/password"),
    // Every household device must trust the CA, so members see its status and can download
    // the next one during a rotation (docs/security.md, "Device CA"); only admins rotate.
    ("GET", "/api/v1/tls/ca"),
    ("GET", "/api/v1/tls/ca/next.crt"),
];
/// Member routes with a side effect on the session itself, checked by other tests.
const MEMBER_SESSION_ROUTES: [(&str, &str); 4] = [
    ("DELETE", "/api/v1/session"),
    ("POST", "/api/v1/account/totp"),
    ("POST", "/api/v1/account/totp/confirm"),
    ("DELETE", "/api/v1/account/totp"),
];
const GRANTED_ROUTES: [(&str, &str); 1] = [("GET", "/api/v1/apps/{id}/logs")];

#[tokio::test]
async fn every_route_has_the_guard_its_role_needs() {
    let (agent, mut admin) = common::claimed_agent().await;
    let (status, _) = admin
        .send(
            Method::POST,
            "/api/v1/users",
            Some(serde_json::json!({"username": "bob", "password": common::PASSWORD, "role": "member"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut bob = agent.session();
    assert_eq!(bob.login("bob", common::PASSWORD).await.0, StatusCode::OK);
    let (_, doc) = bob.send(Method::GET, "/api/openapi.json", None).await;
    let member = |m: &str, p: &str| {
        MEMBER_ROUTES
            .iter()
            .chain(&MEMBER_SESSION_ROUTES)
            .any(|(rm, rp)| *rm == m && *rp == p)
    };
    let granted = |m: &str, p: &str| GRANTED_ROUTES.iter().any(|(rm, rp)| *rm == m && *rp == p);
    for (method, path) in routes(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        if op.get("security").is_none() {
            continue;
        }
        let documented_403 = op["responses"].get("403").is_some();
        assert!(
            documented_403,
            "{method} {path}: 403 is not in the document"
        );
        if MEMBER_SESSION_ROUTES
            .iter()
            .any(|(rm, rp)| *rm == method && *rp == path)
        {
            continue;
        }
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let body = (m != Method::GET).then(|| serde_json::json!({}));
        // Only the body of the long-lived event stream is not read; the status tells.
        let (status, _, text) = if path == "/api/v1/events" {
            let resp = bob
                .client
                .get(agent.url(&path))
                .header(
                    "cookie",
                    format!("__Host-hearth_session={}", bob.cookie.clone().expect("c")),
                )
                .send()
                .await
                .expect("send");
            (resp.status(), resp.headers().clone(), String::new())
        } else {
            bob.request(m, &fill_params(&path), body, &[]).await
        };
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let refused = status == StatusCode::FORBIDDEN && error_code(&json) == "forbidden";
        if member(&method, &path) {
            assert!(
                !refused,
                "{method} {path}: a member may use it, got {status} {text}"
            );
        } else if granted(&method, &path) {
            assert!(
                refused,
                "{method} {path}: members need a grant, got {status} {text}"
            );
        } else {
            assert!(
                refused,
                "{method} {path}: admins only, a member got {status} {text}"
            );
        }
        assert_ne!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}: the member is signed in"
        );
    }
}
