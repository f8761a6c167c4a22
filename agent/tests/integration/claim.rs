//! The first-boot claim: one-time, code-protected, throttled, and race-free.

use crate::common;

use common::{Agent, PASSWORD, error_code};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn claim_body(code: &str, username: &str) -> serde_json::Value {
    json!({"code": code, "username": username, "password": PASSWORD, "hostname": "attic", "timezone": "Europe/Berlin"})
}

#[tokio::test]
async fn wrong_codes_are_refused_then_throttled_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.session();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let (status, headers, text) = s
            .request(
                Method::POST,
                "/api/v1/setup/claim",
                Some(claim_body("WRNG-C0DE", "eve")),
                &[],
            )
            .await;
        statuses.push(status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            assert!(text.contains("\"throttled\""), "{text}");
        }
    }
    assert_eq!(
        &statuses[..6],
        &[403; 6],
        "the first wrong codes are refused plainly: {statuses:?}"
    );
    assert_eq!(
        statuses[6], 429,
        "then the client is throttled: {statuses:?}"
    );
    let wait = retry_after.expect("Retry-After header");
    assert!((1..=300).contains(&wait));
    // Throttled means throttled: even the right code waits.
    let (status, _) = s
        .send(
            Method::POST,
            "/api/v1/setup/claim",
            Some(claim_body(&agent.setup_code(), "eve")),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (_, health) = s.send(Method::GET, "/api/health", None).await;
    assert_eq!(health["claimed"], false);
    // Not a hope: this waits exactly the Retry-After the agent announced, which is what is
    // checked (a spawned agent runs on the real clock).
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/setup/claim",
            Some(claim_body(&agent.setup_code(), "owner")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn bad_input_with_the_right_code_keeps_the_device_unclaimed() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.session();
    let code = agent.setup_code();
    for body in [
        json!({"code": code, "username": "Root!", "password": PASSWORD}),
        json!({"code": code, "username": "owner", "password": "short"}),
        json!({"code": code, "username": "owner", "password": PASSWORD, "hostname": "-bad-"}),
        json!({"code": code, "username": "owner", "password": PASSWORD, "timezone": "../../etc/passwd"}),
    ] {
        let (status, resp) = s
            .send(Method::POST, "/api/v1/setup/claim", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {resp}");
        assert_eq!(error_code(&resp), "invalid_input");
    }
    let (_, health) = s.send(Method::GET, "/api/health", None).await;
    assert_eq!(health["claimed"], false);
    assert_eq!(agent.setup_code(), code, "the code is unchanged");
    let (status, _) = s
        .send(
            Method::POST,
            "/api/v1/setup/claim",
            Some(claim_body(&code, "owner")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn concurrent_claims_have_exactly_one_winner_and_the_code_dies() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let code = agent.setup_code();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut s = agent.session();
        let body = claim_body(&code, &format!("owner{i}"));
        tasks.push(tokio::spawn(async move {
            let (status, resp) = s
                .send(Method::POST, "/api/v1/setup/claim", Some(body))
                .await;
            (status, resp)
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let (status, resp) = task.await.expect("task");
        match status {
            StatusCode::CREATED => winners += 1,
            StatusCode::CONFLICT => assert_eq!(error_code(&resp), "already_claimed"),
            other => panic!("unexpected {other}: {resp}"),
        }
    }
    assert_eq!(winners, 1);
    assert!(
        !dir.path().join("setup-code").exists(),
        "the setup code file is removed after the claim"
    );

    let mut late = agent.session();
    let (status, resp) = late
        .send(
            Method::POST,
            "/api/v1/setup/claim",
            Some(claim_body(&code, "late")),
        )
        .await;
    assert_eq!(
        (status, error_code(&resp)),
        (StatusCode::CONFLICT, "already_claimed")
    );
    let (_, health) = late.send(Method::GET, "/api/health", None).await;
    assert_eq!(health["claimed"], true);
    let (_, setup) = late.send(Method::GET, "/api/v1/setup", None).await;
    assert_eq!(
        (setup["hostname"].as_str(), setup["timezone"].as_str()),
        (Some("attic"), Some("Europe/Berlin"))
    );
}

/// The wizard's update step: a bad choice is refused with the field named and leaves the device
/// unclaimed; no choice means automatic updates in 03:00–05:00 on the image's channel; "Ask me
/// first" is kept as chosen.
#[tokio::test]
async fn the_claim_carries_the_update_choice_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.session();
    let (status, info) = s.send(Method::GET, "/api/v1/setup", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["updates"]["configured"], false, "{info}");
    assert_eq!(info["updates"]["channels"], json!(["stable", "beta"]));
    assert_eq!(
        info["updates"]["maintenance_window"],
        json!({"start": "03:00", "end": "05:00"})
    );
    let with = |updates: serde_json::Value| {
        let mut body = claim_body(&agent.setup_code(), "owner");
        body["updates"] = updates;
        body
    };
    for (bad, field) in [
        (
            json!({"automatic": true, "maintenance_window": {"start": "04:00", "end": "04:00"}}),
            "updates.maintenance_window",
        ),
        (
            json!({"automatic": true, "maintenance_window": {"start": "03:00", "end": "27:00"}}),
            "updates.maintenance_window",
        ),
        (
            json!({"automatic": true, "maintenance_window": {"start": "3", "end": "05:00"}}),
            "updates.maintenance_window",
        ),
        (
            json!({"automatic": true, "channel": "nightly"}),
            "updates.channel",
        ),
    ] {
        let (status, body) = s
            .send(Method::POST, "/api/v1/setup/claim", Some(with(bad.clone())))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(error_code(&body), "invalid_input", "{body}");
        assert!(
            body.to_string().to_lowercase().contains(field),
            "{bad}: {body}"
        );
    }
    for bad in [
        json!({"automatic": "yes"}),
        json!({"automatic": true, "colour": 1}),
    ] {
        let (status, body) = s
            .send(Method::POST, "/api/v1/setup/claim", Some(with(bad.clone())))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (_, health) = s.send(Method::GET, "/api/health", None).await;
    assert_eq!(health["claimed"], false, "a refused choice changes nothing");

    // No choice: automatic, the default window, the image's channel.
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/setup/claim",
            Some(claim_body(&agent.setup_code(), "owner")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, update) = s.send(Method::GET, "/api/v1/update", None).await;
    assert_eq!(status, StatusCode::OK, "{update}");
    assert_eq!(
        update["policy"],
        json!({"channel": "stable", "auto_install": true, "reboot": "maintenance_window",
               "maintenance_window": {"start": "03:00", "end": "05:00"}})
    );
}

#[tokio::test]
async fn ask_me_first_is_kept_with_its_window_and_channel() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.session();
    let mut body = claim_body(&agent.setup_code(), "owner");
    body["updates"] = json!({"automatic": false, "channel": "beta",
                             "maintenance_window": {"start": "23:30", "end": "01:00"}});
    let (status, b) = s
        .send(Method::POST, "/api/v1/setup/claim", Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    let (_, update) = s.send(Method::GET, "/api/v1/update", None).await;
    assert_eq!(
        update["policy"],
        json!({"channel": "beta", "auto_install": false, "reboot": "manual",
               "maintenance_window": {"start": "23:30", "end": "01:00"}})
    );
}
