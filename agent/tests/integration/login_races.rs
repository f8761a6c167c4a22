//! Login and second factors raced from one LAN client, in-process against the real router:
//! parallel guesses, IPv6 address hopping, re-used TOTP codes, logins racing a demotion, and
//! current-password checks.

use crate::common;

use axum::http::StatusCode;
use common::inproc::{Browser, Harness, PASSWORD, code};
use futures_util::future::join_all;
use hearth_agent::clock::ManualClock;
use serde_json::json;
use std::time::Duration;

/// The attack: 60 wrong passwords for one account at once. The attempts are reserved
/// before hashing, so only the free ones (and the one that starts the block) are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_wrong_passwords_are_throttled_before_hashing() {
    let h = Harness::new().await;
    let attempts = (0..60).map(|_| async {
        let mut b = Browser {
            ip: Some("198.51.100.50"),
            ..Browser::default()
        };
        h.login(&mut b, "admin", "wrong guess").await.status
    });
    let statuses = join_all(attempts).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    eprintln!("60 parallel wrong passwords: {checked} checked (401), {throttled} throttled (429)");
    assert_eq!(checked + throttled, 60, "{statuses:?}");
    assert!(
        checked <= 6,
        "at most the account's free attempts are hashed: {statuses:?}"
    );
}

const SAME_64: [&str; 12] = [
    "2001:db8:5:6::1",
    "2001:db8:5:6::2",
    "2001:db8:5:6::3",
    "2001:db8:5:6::4",
    "2001:db8:5:6:1::5",
    "2001:db8:5:6:2::6",
    "2001:db8:5:6:3::7",
    "2001:db8:5:6:4::8",
    "2001:db8:5:6:5::9",
    "2001:db8:5:6:6::a",
    "2001:db8:5:6:7::b",
    "2001:db8:5:6:8::c",
];

/// A client hopping between addresses of its own /64 is still one client.
#[tokio::test]
async fn ipv6_clients_are_throttled_by_their_64() {
    let h = Harness::new().await;
    let mut statuses = Vec::new();
    for (i, ip) in SAME_64.iter().enumerate() {
        let ip: &'static str = ip;
        let mut b = Browser {
            ip: Some(ip),
            ..Browser::default()
        };
        statuses.push(
            h.login(&mut b, &format!("user{i}"), "guess")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses[11], 429, "{statuses:?}");
    // Another /64 is another client.
    let mut other = Browser {
        ip: Some("2001:db8:5:7::1"),
        ..Browser::default()
    };
    assert_eq!(
        h.login(&mut other, "nobody", "guess").await.status,
        StatusCode::UNAUTHORIZED
    );
}

fn totp_now(secret: &str, clock: &ManualClock) -> String {
    use hearth_agent::clock::Clock;
    let key = hearth_agent::auth::totp::base32_decode(secret).expect("secret");
    let step = (clock.now().unix_timestamp() / 30) as u64;
    format!("{:06}", hearth_agent::auth::totp::code_at(&key, step))
}

async fn enable_totp(h: &Harness, b: &mut Browser) -> String {
    let enrol = h.call(b, "POST", "/api/v1/account/totp", None).await;
    let secret = enrol.body["secret"].as_str().expect("secret").to_string();
    let code = totp_now(&secret, &h.clock);
    let ok = h
        .call(
            b,
            "POST",
            "/api/v1/account/totp/confirm",
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.raw);
    h.clock.advance(Duration::from_secs(30));
    secret
}

/// Two logins racing with the same code: one wins, the other is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_code_is_accepted_once_even_in_parallel() {
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    let secret = enable_totp(&h, &mut admin).await;
    let code_now = totp_now(&secret, &h.clock);
    let attempts = (0..4).map(|i| {
        let code_now = code_now.clone();
        let h = &h;
        async move {
            let mut b = Browser {
                ip: Some(["192.0.2.31", "192.0.2.32", "192.0.2.33", "192.0.2.34"][i]),
                ..Browser::default()
            };
            h.call(
                &mut b,
                "POST",
                "/api/v1/session",
                Some(json!({"username": "admin", "password": PASSWORD, "totp": code_now})),
            )
            .await
            .status
        }
    });
    let statuses = join_all(attempts).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
}

/// A login that read the user before a concurrent demotion must not write the old role back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_racing_a_demotion_does_not_undo_it() {
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/users",
            Some(json!({"username": "carol", "password": PASSWORD, "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mut carol = Browser::default();
    assert_eq!(
        h.login(&mut carol, "carol", PASSWORD).await.status,
        StatusCode::OK
    );
    // With TOTP on, a login writes the user record (the code's step) after hashing.
    let secret = enable_totp(&h, &mut carol).await;
    for round in 0..3 {
        let code_now = totp_now(&secret, &h.clock);
        let mut fresh = Browser::default();
        let login = h.call(
            &mut fresh,
            "POST",
            "/api/v1/session",
            Some(json!({"username": "carol", "password": PASSWORD, "totp": code_now})),
        );
        let mut admin2 = admin.clone();
        let demote = async {
            // Lands while the login hashes the password.
            tokio::time::sleep(Duration::from_millis(5)).await;
            h.call(
                &mut admin2,
                "PATCH",
                "/api/v1/users/carol",
                Some(json!({"role": if round % 2 == 0 { "member" } else { "admin" }})),
            )
            .await
        };
        let (_, demoted) = tokio::join!(login, demote);
        assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.raw);
        let users = h.call(&mut admin, "GET", "/api/v1/users", None).await;
        let role = users
            .body
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["username"] == "carol")
            .map(|u| u["role"].clone());
        let want = if round % 2 == 0 { "member" } else { "admin" };
        assert_eq!(
            role,
            Some(json!(want)),
            "round {round}: the role change stands"
        );
        h.clock.advance(Duration::from_secs(30));
    }
}

/// Checks of the current password (password change, TOTP off) are throttled like logins: a
/// stolen session is not a password oracle.
#[tokio::test]
async fn current_password_checks_are_throttled() {
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = h
            .call(
                &mut admin,
                "PUT",
                "/api/v1/account/password",
                Some(json!({"current_password": "guess guess", "new_password": "new password 1"})),
            )
            .await;
        statuses.push(r.status.as_u16());
    }
    assert!(statuses[..5].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[7], 429, "{statuses:?}");
    let r = h
        .call(
            &mut admin,
            "DELETE",
            "/api/v1/account/totp",
            Some(json!({"password": "guess guess"})),
        )
        .await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::TOO_MANY_REQUESTS, "throttled")
    );
    assert!(r.raw.contains("throttled"));
}

/// Members do not read app logs (store apps print their admin passwords there) unless an
/// admin grants it.
#[tokio::test]
async fn members_read_app_logs_only_when_granted() {
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/users",
            Some(json!({"username": "dave", "password": PASSWORD, "role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["app_logs"], false);
    let mut dave = Browser::default();
    assert_eq!(
        h.login(&mut dave, "dave", PASSWORD).await.status,
        StatusCode::OK
    );
    let r = h
        .call(&mut dave, "GET", "/api/v1/apps/nosuchapp/logs", None)
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::FORBIDDEN, "forbidden"));
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/users/dave",
            Some(json!({"app_logs": true})),
        )
        .await;
    assert_eq!(r.body["app_logs"], true, "{}", r.raw);
    let r = h
        .call(&mut dave, "GET", "/api/v1/apps/nosuchapp/logs", None)
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "granted: only the app is missing: {}",
        r.raw
    );
}

/// A user holds a bounded number of live event streams.
#[tokio::test]
async fn live_event_streams_per_user_are_capped() {
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    let mut open = Vec::new();
    for _ in 0..hearth_agent::events::MAX_STREAMS_PER_USER {
        let r = h.call_streaming(&mut admin, "/api/v1/events").await;
        assert_eq!(r.status(), StatusCode::OK);
        open.push(r);
    }
    let r = h.call(&mut admin, "GET", "/api/v1/events", None).await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::TOO_MANY_REQUESTS, "throttled")
    );
    open.pop();
    let again = h.call_streaming(&mut admin, "/api/v1/events").await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a closed stream frees its place"
    );
}

/// A stream ends when its user's role changes (what it may hear was decided by the role).
#[tokio::test]
async fn an_event_stream_ends_when_the_role_changes() {
    use http_body_util::BodyExt;
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    h.call(
        &mut admin,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "erin", "password": PASSWORD, "role": "admin"})),
    )
    .await;
    let mut erin = Browser::default();
    assert_eq!(
        h.login(&mut erin, "erin", PASSWORD).await.status,
        StatusCode::OK
    );
    let stream = h.call_streaming(&mut erin, "/api/v1/events").await;
    let mut body = stream.into_body();
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/users/erin",
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ends after the demotion");
}
