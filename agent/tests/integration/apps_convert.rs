//! `POST /api/v1/apps/convert` on a real agent: a `docker run` command becomes compose YAML that
//! the planner accepts; bad commands get a 400 with the reason.

use crate::common;

use common::error_code;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn docker_run_commands_convert_over_https() {
    let (_agent, mut s) = common::claimed_agent().await;
    let cmd = "docker run -d -p 18181:80 -e A=B --name web --restart unless-stopped --frobnicate nginx:1.27";
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/apps/convert",
            Some(json!({ "command": cmd })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let yaml = body["yaml"].as_str().expect("yaml");
    assert!(yaml.contains("container_name: web"), "{yaml}");
    assert!(
        body["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains("frobnicate")))),
        "{body}"
    );
    // The YAML goes through the same planner as any compose file.
    let (status, plan) = s
        .send(
            Method::POST,
            "/api/v1/apps/plan",
            Some(json!({ "compose": yaml })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["app_id"], "web");

    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/apps/convert",
            Some(json!({ "command": "docker run --env-file .env nginx" })),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_command"),
        "{body}"
    );
    assert!(body.to_string().contains("--env-file"), "{body}");
}
