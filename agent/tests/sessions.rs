//! Sessions, CSRF, roles, login throttling and TOTP, driven in-process against the real router
//! with a manual clock, so expiry is tested without waiting.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use hearth_agent::clock::ManualClock;
use hearth_agent::config::Config;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

struct Harness {
    app: Router,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

#[derive(Clone, Default)]
struct Browser {
    session: Option<String>,
    device: Option<String>,
    csrf: Option<String>,
    ip: Option<&'static str>,
}

struct Reply {
    status: StatusCode,
    body: Value,
    raw: String,
}

fn cookie_from(resp: &axum::http::Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tmp");
        let clock = ManualClock::new(time::OffsetDateTime::now_utc());
        let mut config = Config::dev(dir.path());
        config.session_idle_timeout = Duration::from_secs(3600);
        config.session_max_age = Duration::from_secs(24 * 3600);
        let (state, _ca) =
            hearth_agent::daemon::build_state(config, Arc::new(clock.clone())).expect("state");
        hearth_agent::daemon::spawn_status_task(state.clone());
        let code = state
            .accounts
            .ensure_setup_code()
            .expect("code")
            .expect("unclaimed");
        let h = Harness {
            app: hearth_agent::api::app(state),
            clock,
            _dir: dir,
        };
        let mut admin = Browser::default();
        let r = h
            .call(
                &mut admin,
                "POST",
                "/api/v1/setup/claim",
                Some(json!({"code": code, "username": "admin", "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
        h
    }

    async fn call(&self, b: &mut Browser, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        let mut cookies = Vec::new();
        if let Some(s) = &b.session {
            cookies.push(format!("__Host-hearth_session={s}"));
        }
        if let Some(d) = &b.device {
            cookies.push(format!("__Host-hearth_device={d}"));
        }
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        if let Some(csrf) = &b.csrf {
            req = req.header("x-csrf-token", csrf);
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut request = req.body(body).expect("request");
        let ip: SocketAddr = format!("{}:40000", b.ip.unwrap_or("192.0.2.10"))
            .parse()
            .expect("ip");
        request.extensions_mut().insert(ConnectInfo(ip));
        let resp = self.app.clone().oneshot(request).await.expect("infallible");
        if let Some(s) = cookie_from(&resp, "__Host-hearth_session") {
            b.session = Some(s).filter(|s| !s.is_empty());
        }
        if let Some(d) = cookie_from(&resp, "__Host-hearth_device") {
            b.device = Some(d);
        }
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
        if let Some(csrf) = body.get("csrf_token").and_then(Value::as_str) {
            b.csrf = Some(csrf.to_string());
        }
        Reply { status, body, raw }
    }

    async fn login(&self, b: &mut Browser, user: &str, password: &str) -> Reply {
        self.call(
            b,
            "POST",
            "/api/v1/session",
            Some(json!({"username": user, "password": password})),
        )
        .await
    }

    async fn admin(&self) -> Browser {
        let mut b = Browser::default();
        let r = self.login(&mut b, "admin", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        b
    }
}

fn code(r: &Reply) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("")
}

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
        (StatusCode::BAD_REQUEST, "totp_invalid")
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
