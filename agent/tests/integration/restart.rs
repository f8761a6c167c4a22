//! A restart, graceful or `kill -9`, keeps users, sessions, settings and the TLS identity.

use crate::common;

use common::{Agent, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn restart_keeps_users_sessions_and_certificates() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut agent = Agent::start(dir.path());
    let mut admin = agent.claim().await;
    let (status, _) = admin
        .send(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "bob", "password": PASSWORD, "role": "member"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let ca_before = std::fs::read(dir.path().join("tls/ca.crt")).expect("ca");
    let cert_before = std::fs::read(dir.path().join("tls/server.crt")).expect("cert");
    // A client built before the restart trusts only the CA it saw then.
    let old_client = agent.client();

    agent.restart();
    admin.client = old_client;
    admin.base = agent.url("");
    let (status, body) = admin.send(Method::GET, "/api/v1/session", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the session survives a restart: {body}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("tls/ca.crt")).expect("ca"),
        ca_before
    );
    assert_eq!(
        std::fs::read(dir.path().join("tls/server.crt")).expect("cert"),
        cert_before
    );
    let (_, health) = admin.send(Method::GET, "/api/health", None).await;
    assert_eq!(health["claimed"], true);

    // kill -9 right after an acknowledged change.
    let (status, _) = admin
        .send(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "carol", "password": PASSWORD, "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    agent.kill9();
    agent = Agent::start(dir.path());
    let mut bob = agent.session();
    assert_eq!(bob.login("bob", PASSWORD).await.0, StatusCode::OK);
    let mut carol = agent.session();
    let (status, body) = carol.login("carol", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["role"], "admin");
    assert!(
        !dir.path().join("setup-code").exists(),
        "a claimed device never shows a setup code again"
    );
}

#[tokio::test]
async fn the_setup_code_survives_a_restart_until_the_claim() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut agent = Agent::start(dir.path());
    let code = agent.setup_code();
    agent.restart();
    assert_eq!(agent.setup_code(), code);
    let mut s = agent.session();
    let (status, _) = s
        .send(
            Method::POST,
            "/api/v1/setup/claim",
            Some(json!({"code": code.to_lowercase(), "username": "admin", "password": PASSWORD})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "codes are accepted in any case"
    );
}

#[tokio::test]
async fn unknown_configuration_keys_stop_the_agent_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("agent.d")).expect("mkdir");
    std::fs::write(dir.path().join("agent.d/50-typo.toml"), "listn = 1\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth-agent"))
        .args(["--dev", "--data-dir"])
        .arg(dir.path())
        .arg("--config-dir")
        .arg(dir.path().join("agent.d"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("50-typo.toml") && err.contains("listn"),
        "{err}"
    );
}
