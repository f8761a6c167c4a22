//! Sessions, CSRF, roles, login throttling and TOTP, driven in-process against the real router
//! with a manual clock, so expiry is tested without waiting.

use crate::common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::inproc::{Browser, Harness, METRICS_TOKEN, PASSWORD, code};
use hearth_agent::clock::ManualClock;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tower::ServiceExt;

#[tokio::test]
async fn idle_and_old_sessions_expire() {
    let h = Harness::new().await;
    let mut b = h.admin().await;
    assert_eq!(
        h.call(&mut b, "GET", "/api/v1/session", None).await.status,
        StatusCode::OK
    );
    h.clock.advance(Duration::from_secs(3601));
    let r = h.call(&mut b, "GET", "/api/v1/session", None).await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );

    // Activity keeps a session alive, but never past its maximum age.
    let mut b = h.admin().await;
    for i in 1..=40 {
        h.clock.advance(Duration::from_secs(3000));
        let r = h.call(&mut b, "GET", "/api/v1/session", None).await;
        if r.status == StatusCode::UNAUTHORIZED {
            assert!(i * 3000 >= 24 * 3600, "ended early, after {} s", i * 3000);
            return;
        }
        assert_eq!(r.status, StatusCode::OK);
    }
    panic!("a session used every 50 minutes must still end after 24 hours");
}

#[tokio::test]
async fn state_changes_need_the_sessions_csrf_token() {
    let h = Harness::new().await;
    let mut b = h.admin().await;
    let body = json!({"username": "bob", "password": PASSWORD, "role": "member"});
    let real = b.csrf.clone();
    for csrf in [None, Some("wrong".to_string())] {
        b.csrf = csrf;
        let r = h
            .call(&mut b, "POST", "/api/v1/users", Some(body.clone()))
            .await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::FORBIDDEN, "csrf_invalid")
        );
    }
    // Another session's token does not work either.
    let other = h.admin().await;
    b.csrf = other.csrf.clone();
    assert_eq!(
        h.call(&mut b, "POST", "/api/v1/users", Some(body.clone()))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    b.csrf = None;
    assert_eq!(
        h.call(&mut b, "DELETE", "/api/v1/session", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    b.csrf = real;
    assert_eq!(
        h.call(&mut b, "POST", "/api/v1/users", Some(body))
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn members_cannot_use_admin_routes() {
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    let r = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/users",
            Some(json!({"username": "bob", "password": PASSWORD, "role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mut bob = Browser::default();
    assert_eq!(
        h.login(&mut bob, "bob", PASSWORD).await.status,
        StatusCode::OK
    );
    for (method, path, body) in [
        ("GET", "/api/v1/users", None),
        (
            "POST",
            "/api/v1/users",
            Some(json!({"username": "x", "password": PASSWORD, "role": "admin"})),
        ),
        ("PATCH", "/api/v1/users/bob", Some(json!({"role": "admin"}))),
        ("DELETE", "/api/v1/users/admin", None),
        ("GET", "/metrics", None),
    ] {
        let r = h.call(&mut bob, method, path, body).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{method} {path}"
        );
    }
    assert_eq!(
        h.call(&mut bob, "GET", "/api/v1/system/status", None)
            .await
            .status,
        StatusCode::OK
    );
    let r = h.call(&mut admin, "GET", "/metrics", None).await;
    assert!(r.raw.contains("hearth_sessions"), "{}", r.raw);
}

#[tokio::test]
async fn login_errors_are_identical_for_unknown_users_and_wrong_passwords() {
    let h = Harness::new().await;
    let mut a = Browser::default();
    let unknown = h.login(&mut a, "nobody", PASSWORD).await;
    let wrong = h.login(&mut a, "admin", "wrong password").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.raw, wrong.raw);
    assert_eq!(code(&unknown), "invalid_credentials");
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out() {
    let h = Harness::new().await;
    // The owner's browser has logged in before, so it holds a known-device cookie.
    let mut owner = h.admin().await;
    h.call(&mut owner, "DELETE", "/api/v1/session", None).await;

    // Attackers from many addresses hammer the account.
    let ips = [
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
    ];
    let mut throttled = 0;
    for i in 0..24 {
        let mut attacker = Browser {
            ip: Some(ips[i % ips.len()]),
            ..Browser::default()
        };
        if h.login(&mut attacker, "admin", "guess").await.status == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
        }
    }
    assert!(
        throttled > 0,
        "the account is throttled for unknown browsers"
    );

    // A fresh browser of the owner's waits at most the account cap (30 s)...
    let mut fresh = Browser::default();
    let r = h.login(&mut fresh, "admin", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // ...and the known browser is not locked out at all.
    let r = h.login(&mut owner, "admin", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    h.clock.advance(Duration::from_secs(31));
    assert_eq!(
        h.login(&mut fresh, "admin", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn one_client_guessing_is_throttled_whatever_account_it_tries() {
    let h = Harness::new().await;
    let mut guesser = Browser {
        ip: Some("203.0.113.9"),
        ..Browser::default()
    };
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(
            h.login(&mut guesser, &format!("user{i}"), "guess")
                .await
                .status
                .as_u16(),
        );
    }
    assert!(statuses[..10].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[11], 429, "{statuses:?}");
}

#[tokio::test]
async fn password_changes_revoke_other_sessions() {
    let h = Harness::new().await;
    let mut laptop = h.admin().await;
    let mut phone = h.admin().await;
    let r = h
        .call(
            &mut laptop,
            "PUT",
            "/api/v1/account/password",
            Some(json!({"current_password": "nope nope", "new_password": "a new password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h
        .call(
            &mut laptop,
            "PUT",
            "/api/v1/account/password",
            Some(json!({"current_password": PASSWORD, "new_password": "a new password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.raw);
    assert_eq!(
        h.call(&mut laptop, "GET", "/api/v1/session", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.call(&mut phone, "GET", "/api/v1/session", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let mut b = Browser::default();
    assert_eq!(
        h.login(&mut b, "admin", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.login(&mut b, "admin", "a new password").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admins_manage_users_and_the_last_admin_stays() {
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    let create =
        |name: &str, role: &str| json!({"username": name, "password": PASSWORD, "role": role});
    assert_eq!(
        h.call(
            &mut admin,
            "POST",
            "/api/v1/users",
            Some(create("carol", "member"))
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let dup = h
        .call(
            &mut admin,
            "POST",
            "/api/v1/users",
            Some(create("carol", "admin")),
        )
        .await;
    assert_eq!(
        (dup.status, code(&dup)),
        (StatusCode::CONFLICT, "user_exists")
    );
    let mut carol = Browser::default();
    assert_eq!(
        h.login(&mut carol, "carol", PASSWORD).await.status,
        StatusCode::OK
    );

    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/users/admin",
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::CONFLICT, "last_admin"));
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/users/carol",
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.body["role"], "admin");
    let r = h
        .call(
            &mut admin,
            "PATCH",
            "/api/v1/users/carol",
            Some(json!({"password": "reset password"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        h.call(&mut carol, "GET", "/api/v1/session", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "a reset ends the user's sessions"
    );

    assert_eq!(
        h.call(&mut admin, "DELETE", "/api/v1/users/carol", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let list = h.call(&mut admin, "GET", "/api/v1/users", None).await;
    let names: Vec<&str> = list
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, vec!["admin"]);
}

fn totp_now(secret: &str, clock: &ManualClock) -> String {
    use hearth_agent::clock::Clock;
    let key = hearth_agent::auth::totp::base32_decode(secret).expect("secret");
    let step = (clock.now().unix_timestamp() / 30) as u64;
    format!("{:06}", hearth_agent::auth::totp::code_at(&key, step))
}

#[tokio::test]
async fn totp_enrolment_then_login_needs_a_fresh_code() {
    let h = Harness::new().await;
    let mut b = h.admin().await;
    let enrol = h.call(&mut b, "POST", "/api/v1/account/totp", None).await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.raw);
    assert!(
        enrol.body["qr_svg"]
            .as_str()
            .is_some_and(|s| s.contains("<svg"))
    );
    let secret = enrol.body["secret"].as_str().expect("secret").to_string();
    let bad = h
        .call(
            &mut b,
            "POST",
            "/api/v1/account/totp/confirm",
            Some(json!({"code": "000000"})),
        )
        .await;
    assert_eq!(
        (bad.status, code(&bad)),
        (StatusCode::UNPROCESSABLE_ENTITY, "totp_invalid")
    );
    let first = totp_now(&secret, &h.clock);
    let ok = h
        .call(
            &mut b,
            "POST",
            "/api/v1/account/totp/confirm",
            Some(json!({"code": first})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.raw);

    let mut fresh = Browser::default();
    let r = h.login(&mut fresh, "admin", PASSWORD).await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::UNAUTHORIZED, "totp_required")
    );
    let login = |totp: String| json!({"username": "admin", "password": PASSWORD, "totp": totp});
    let replay = h
        .call(
            &mut fresh,
            "POST",
            "/api/v1/session",
            Some(login(first.clone())),
        )
        .await;
    assert_eq!(
        code(&replay),
        "invalid_credentials",
        "a used code is not accepted again"
    );
    h.clock.advance(Duration::from_secs(30));
    let r = h
        .call(
            &mut fresh,
            "POST",
            "/api/v1/session",
            Some(login(totp_now(&secret, &h.clock))),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["user"]["totp_enabled"], true);

    let r = h
        .call(
            &mut fresh,
            "DELETE",
            "/api/v1/account/totp",
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let mut again = Browser::default();
    assert_eq!(
        h.login(&mut again, "admin", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn status_reports_the_live_system() {
    let h = Harness::new().await;
    let mut b = h.admin().await;
    let r = h.call(&mut b, "GET", "/api/v1/system/status", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["memory"]["total_bytes"].as_u64().unwrap_or(0) > 0);
    assert!(!r.body["cpu"]["cores"].as_array().expect("cores").is_empty());
    assert_eq!(r.body["version"], hearth_agent::VERSION);
}

#[tokio::test]
async fn metrics_need_an_admin_or_the_configured_token() {
    let h = Harness::new().await;
    let scrape = |auth: Option<&str>| {
        let mut req = Request::builder().uri("/metrics");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        h.app
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
    };
    let ok = scrape(Some(&format!("Bearer {METRICS_TOKEN}")))
        .await
        .expect("infallible");
    assert_eq!(ok.status(), StatusCode::OK);
    let text = axum::body::to_bytes(ok.into_body(), 1 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("hearth_claimed 1")
            && text.contains("hearth_http_responses_total{class=\"2xx\"}"),
        "{text}"
    );
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token"),
        Some(METRICS_TOKEN),
    ] {
        let resp = scrape(auth).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
}

#[tokio::test]
async fn the_event_stream_pushes_status_and_ends_when_the_session_is_revoked() {
    use http_body_util::BodyExt;
    let h = Harness::new().await;
    let mut b = h.admin().await;
    let mut req = Request::builder()
        .uri("/api/v1/events")
        .header(
            "cookie",
            format!(
                "__Host-hearth_session={}",
                b.session.clone().expect("cookie")
            ),
        )
        .body(Body::empty())
        .expect("request");
    req.extensions_mut().insert(ConnectInfo(
        "192.0.2.10:1".parse::<SocketAddr>().expect("addr"),
    ));
    let resp = h.app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut seen = String::new();
    while seen.matches("event: status").count() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a status event arrives every interval")
            .expect("stream open")
            .expect("frame");
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
    assert!(seen.contains("\"memory\""), "{seen}");

    assert_eq!(
        h.call(&mut b, "DELETE", "/api/v1/session", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream must end after logout");
}

/// Reads SSE frames from `body` for `window`, returning the text seen.
async fn read_events(body: &mut Body, window: Duration) -> String {
    use http_body_util::BodyExt;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
        }
    }
    seen
}

async fn open_events(h: &Harness, b: &Browser) -> Body {
    let mut req = Request::builder()
        .uri("/api/v1/events")
        .header(
            "cookie",
            format!(
                "__Host-hearth_session={}",
                b.session.clone().expect("cookie")
            ),
        )
        .body(Body::empty())
        .expect("request");
    req.extensions_mut().insert(ConnectInfo(
        "192.0.2.10:1".parse::<SocketAddr>().expect("addr"),
    ));
    h.app
        .clone()
        .oneshot(req)
        .await
        .expect("infallible")
        .into_body()
}

#[tokio::test]
async fn job_events_reach_only_their_owner_and_admins() {
    let h = Harness::new().await;
    let mut admin = h.admin().await;
    h.call(
        &mut admin,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "bob", "password": PASSWORD, "role": "member"})),
    )
    .await;
    h.call(
        &mut admin,
        "POST",
        "/api/v1/users",
        Some(json!({"username": "eve", "password": PASSWORD, "role": "member"})),
    )
    .await;
    let (mut bob, mut eve) = (Browser::default(), Browser::default());
    h.login(&mut bob, "bob", PASSWORD).await;
    h.login(&mut eve, "eve", PASSWORD).await;
    let (mut bob_events, mut eve_events, mut admin_events) = (
        open_events(&h, &bob).await,
        open_events(&h, &eve).await,
        open_events(&h, &admin).await,
    );
    h.call(
        &mut bob,
        "POST",
        "/api/v1/files/home/private",
        Some(json!({"action": "mkdir"})),
    )
    .await;
    let r = h
        .call(
            &mut bob,
            "POST",
            "/api/v1/files/home/private",
            Some(json!({"action": "copy", "to_root": "home", "to_path": "private-copy"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    let window = Duration::from_millis(1500);
    let (b, e, a) = tokio::join!(
        read_events(&mut bob_events, window),
        read_events(&mut eve_events, window),
        read_events(&mut admin_events, window)
    );
    assert!(b.contains("event: job"), "the owner hears the job: {b}");
    assert!(a.contains("event: job"), "admins hear every job");
    assert!(
        !e.contains("event: job") && !e.contains("private"),
        "another member hears nothing of it: {e}"
    );
}
