//! Rotating the device CA through the API, against the real agent over real TLS: the old CA
//! keeps working until activation, then only clients that trust the new CA connect.

use crate::common;

use common::{Agent, PASSWORD, error_code};
use reqwest::{Client, Method, StatusCode};
use serde_json::json;

/// A fresh client (no pooled connection) that trusts only `ca_pem`.
fn trusting(ca_pem: &str) -> Client {
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("pem"))
        .tls_built_in_root_certs(false)
        .build()
        .expect("client")
}

async fn connects(ca_pem: &str, agent: &Agent) -> bool {
    trusting(ca_pem)
        .get(agent.url("/api/health"))
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn rotation_through_the_api_switches_the_served_ca_only_at_activation() {
    let (agent, mut admin) = common::claimed_agent().await;
    let old_ca = std::fs::read_to_string(agent.dir.join("tls/ca.crt")).expect("ca");

    let (status, body) = admin.send(Method::GET, "/api/v1/tls/ca", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"]["name_constrained"], true);
    assert!(body["pending"].is_null());
    let old_fingerprint = body["current"]["fingerprint_sha256"].clone();

    // A member may read the status and fetch a pending CA, but not rotate.
    let (status, _) = admin
        .send(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "bob", "password": PASSWORD, "role": "member"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut member = agent.session();
    assert_eq!(member.login("bob", PASSWORD).await.0, StatusCode::OK);
    let (status, _) = member
        .send(Method::POST, "/api/v1/tls/ca/rotation", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = admin
        .send(Method::POST, "/api/v1/tls/ca/rotation/activate", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing to activate: {body}");

    let (status, body) = admin
        .send(Method::POST, "/api/v1/tls/ca/rotation", None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let pending = body["pending"].clone();
    assert_ne!(pending["fingerprint_sha256"], old_fingerprint);
    let (status, body) = admin
        .send(Method::POST, "/api/v1/tls/ca/rotation", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "conflict");

    let (status, _, new_ca) = member
        .request(Method::GET, "/api/v1/tls/ca/next.crt", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(new_ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(
        connects(&old_ca, &agent).await,
        "old CA served until activation"
    );
    assert!(!connects(&new_ca, &agent).await);

    let (status, body) = admin
        .send(Method::POST, "/api/v1/tls/ca/rotation/activate", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["current"], pending);
    assert_eq!(body["previous"]["fingerprint_sha256"], old_fingerprint);
    assert!(connects(&new_ca, &agent).await, "new CA served at once");
    assert!(!connects(&old_ca, &agent).await, "old CA no longer trusted");
    assert_eq!(
        std::fs::read_to_string(agent.dir.join("tls/ca.crt")).expect("ca"),
        new_ca,
        "tls/ca.crt (read by the health gate) is the new CA"
    );
    let (status, _, served) = agent
        .session()
        .request(Method::GET, "/api/v1/tls/ca.crt", None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, new_ca, "the download link offers the new CA");

    let (status, body) = admin
        .send(Method::DELETE, "/api/v1/tls/ca/previous", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["previous"].is_null());
    let (status, _) = admin
        .send(Method::DELETE, "/api/v1/tls/ca/previous", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
