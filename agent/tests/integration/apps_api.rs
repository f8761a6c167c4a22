//! The apps API end to end: a real agent (HTTPS, sessions, CSRF) with the test store configured,
//! installing into the real Docker Engine (see `apps_common` for the requirements).

use crate::common;

use common::{Agent, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;

fn test_store() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-store")
}

fn start_agent(dir: &std::path::Path) -> Agent {
    std::fs::create_dir_all(dir.join("agent.d")).expect("mkdir");
    std::fs::write(
        dir.join("agent.d/10-apps.toml"),
        format!("app_stores = [{:?}]\n", test_store().display().to_string()),
    )
    .expect("drop-in");
    Agent::start(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_install_open_logs_and_uninstall_over_https() {
    if std::env::var_os("HEARTH_SKIP_DOCKER_TESTS").is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(dir.path());
    let mut s = agent.claim().await;

    let (status, stores) = s.send(Method::GET, "/api/v1/stores", None).await;
    assert_eq!(status, StatusCode::OK, "{stores}");
    assert_eq!(stores[0]["apps"], 1);
    let store = stores[0]["id"].as_str().expect("id").to_string();

    let (_, cat) = s
        .send(Method::GET, "/api/v1/catalog?q=tiny&lang=de_DE", None)
        .await;
    assert_eq!(cat["apps"][0]["title"], "Test-Web-App", "{cat}");
    let (_, cat) = s
        .send(Method::GET, "/api/v1/catalog?category=Media", None)
        .await;
    assert_eq!(cat["apps"].as_array().map(Vec::len), Some(0));

    let (status, app) = s
        .send(
            Method::GET,
            &format!("/api/v1/catalog/{store}/WebApp"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert!(
        app["plan"]["containers"]
            .as_array()
            .is_some_and(|c| c.len() == 2),
        "{app}"
    );

    let id = format!("api-{}", std::process::id());
    let body = json!({"store": store, "app": "WebApp", "app_id": id});
    let (status, installed) = s.send(Method::POST, "/api/v1/apps", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{installed}");
    let url = installed["web_url"].as_str().expect("web url");
    let port: u16 = url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    let text = reqwest::get(format!("http://127.0.0.1:{port}/version.txt"))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert_eq!(text.trim(), "hearth-test-webapp v1");

    let (_, list) = s.send(Method::GET, "/api/v1/apps", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["containers"].as_array().map(Vec::len), Some(2));

    let (status, _, logs) = s
        .request(
            Method::GET,
            &format!("/api/v1/apps/{id}/logs?tail=20"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(lines.iter().any(|l| l["stream"] == "stderr"), "{logs}");

    let (status, stats) = s
        .send(Method::GET, &format!("/api/v1/apps/{id}/stats"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");

    for action in ["stop", "start", "restart"] {
        let (status, body) = s
            .send(Method::POST, &format!("/api/v1/apps/{id}/{action}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{action}: {body}");
    }

    // Custom compose with a privileged service: refused until consented.
    let custom =
        "services:\n  x:\n    image: 127.0.0.1:5000/hearth-test/webapp:1\n    privileged: true\n";
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"compose": custom, "app_id": format!("{id}-c")})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "consent_required"),
        "{body}"
    );
    // The findings travel as data, for the dashboard's consent dialog.
    let details = &body["error"]["details"];
    assert_eq!(details["kind"], "findings", "{body}");
    assert_eq!(details["findings"][0]["id"], "privileged:x", "{body}");
    assert_eq!(details["findings"][0]["kind"], "privileged", "{body}");
    assert_eq!(details["findings"][0]["service"], "x", "{body}");
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"compose": "services: [", "app_id": "bad"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_compose"),
        "{body}"
    );

    let (status, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/apps/{id}?delete_data=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = s.send(Method::GET, "/api/v1/apps", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(0));
}

/// The agent starts before Docker (its unit does not wait) and must stay up when the engine
/// never comes, its socket not even there: the dashboard answers, the catalog loads, and an
/// install gets a clear 503 `runtime_unavailable` and leaves nothing behind. (bollard refuses
/// a missing socket path; the agent used to exit at start with "Socket not found".)
#[tokio::test(flavor = "multi_thread")]
async fn without_the_engine_socket_the_agent_serves_and_installs_answer_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("agent.d")).expect("mkdir");
    std::fs::write(
        dir.path().join("agent.d/10-apps.toml"),
        format!(
            "[apps]\nstores = [{:?}]\ncontainer_socket = {:?}\n",
            test_store().display().to_string(),
            dir.path().join("missing/docker.sock").display().to_string()
        ),
    )
    .expect("drop-in");
    let agent = Agent::start(dir.path());
    let mut s = agent.claim().await;
    let (status, stores) = s.send(Method::GET, "/api/v1/stores", None).await;
    assert_eq!(status, StatusCode::OK, "{stores}");
    let store = stores[0]["id"].as_str().expect("id").to_string();
    let body = json!({"store": store, "app": "WebApp", "app_id": "no-engine"});
    let (status, err) = s.send(Method::POST, "/api/v1/apps", Some(body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(error_code(&err), "runtime_unavailable", "{err}");
    let (status, apps) = s.send(Method::GET, "/api/v1/apps", None).await;
    assert_eq!(status, StatusCode::OK, "{apps}");
    assert_eq!(apps.as_array().map(Vec::len), Some(0), "{apps}");
    let (status, _) = s.send(Method::GET, "/api/health", None).await;
    assert_eq!(status, StatusCode::OK);
}
