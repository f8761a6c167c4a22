//! Moving tags on the real engine and the local registry: an app installed from a tag that is
//! then pushed anew shows `update_available` with reason `image_digest`, and with
//! `auto_update` on the agent's scheduler updates it (through the update with rollback).

use crate::apps_common;
use crate::common;

use common::Agent;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

const REPO: &str = "127.0.0.1:5000/hearth-test/webapp";

fn docker(args: &[&str]) {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Points `REPO:tag` at `REPO:version` in the registry.
fn push_as(version: &str, tag: &str) {
    docker(&[
        "tag",
        &format!("{REPO}:{version}"),
        &format!("{REPO}:{tag}"),
    ]);
    docker(&["push", "-q", &format!("{REPO}:{tag}")]);
}

fn ours<'a>(apps: &'a Value, id: &str) -> &'a Value {
    apps.as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == id))
        .unwrap_or_else(|| panic!("{id} not in {apps}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_tag_is_detected_and_updated_automatically() {
    if std::env::var_os("HEARTH_SKIP_DOCKER_TESTS").is_some() {
        return;
    }
    let tag = format!("moving-{}", std::process::id());
    push_as("1", &tag);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("agent.d")).expect("mkdir");
    std::fs::write(
        dir.path().join("agent.d/10-apps.toml"),
        "app_update_check_secs = 1\n",
    )
    .expect("drop-in");
    let agent = Agent::start(dir.path());
    let mut s = agent.claim().await;
    let port = common::free_port();
    let id = format!("upd-{}", std::process::id());
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/apps",
            Some(json!({"compose": apps_common::webapp(&tag, port), "app_id": id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["auto_update"], false);
    assert_eq!(
        apps_common::get(port, "/version.txt").await.trim(),
        "hearth-test-webapp v1"
    );

    let (status, apps) = s
        .send(Method::POST, "/api/v1/apps/check-updates", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{apps}");
    let app = ours(&apps, &id);
    assert_eq!(app["update_available"], false, "{app}");
    assert!(app["digest_checked_at"].is_string(), "{app}");

    push_as("2", &tag);
    let (_, apps) = s
        .send(Method::POST, "/api/v1/apps/check-updates", None)
        .await;
    let app = ours(&apps, &id);
    assert_eq!(app["update_available"], true, "{app}");
    assert_eq!(app["update_reason"], "image_digest", "{app}");
    assert_eq!(app["updated_images"], json!(["db", "web"]), "{app}");
    assert_eq!(
        apps_common::get(port, "/version.txt").await.trim(),
        "hearth-test-webapp v1",
        "nothing changes without auto_update"
    );

    let (status, app) = s
        .send(
            Method::PATCH,
            &format!("/api/v1/apps/{id}"),
            Some(json!({"auto_update": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["auto_update"], true);

    // The scheduler (every second here) updates it; wait for the new version to answer.
    let mut text = String::new();
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, app) = s
            .send(Method::GET, &format!("/api/v1/apps/{id}"), None)
            .await;
        if app["state"] == "installed" && app["update_available"] == false {
            text = apps_common::get(port, "/version.txt").await;
            if text.contains("v2") {
                break;
            }
        }
    }
    assert_eq!(
        text.trim(),
        "hearth-test-webapp v2",
        "updated automatically"
    );
    let (_, app) = s
        .send(Method::GET, &format!("/api/v1/apps/{id}"), None)
        .await;
    assert_eq!(app["last_error"], Value::Null, "{app}");

    let (status, _) = s
        .send(
            Method::DELETE,
            &format!("/api/v1/apps/{id}?delete_data=true"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    docker(&["rmi", &format!("{REPO}:{tag}")]);
}
