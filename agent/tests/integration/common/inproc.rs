//! In-process harness: the real router and state with a manual clock, called through tower.

#![allow(dead_code)]

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

pub const PASSWORD: &str = "correct horse battery";
pub const METRICS_TOKEN: &str = "metrics-token-for-tests";

pub struct Harness {
    pub app: Router,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub state: hearth_agent::state::AppState,
    /// The in-memory adapters, for a harness made by [`Harness::with_fakes`].
    pub fakes: Option<hearth_agent::adapters::Fakes>,
}

#[derive(Clone, Default)]
pub struct Browser {
    pub session: Option<String>,
    pub device: Option<String>,
    pub csrf: Option<String>,
    pub ip: Option<&'static str>,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub raw: String,
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
    pub async fn new() -> Harness {
        Self::with_config(|_| {}).await
    }

    /// A claimed device whose configuration `adjust` may change first.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Harness {
        Self::claimed(Self::unclaimed(adjust).await).await
    }

    /// A claimed device whose container engine, systemd and block devices are the in-memory
    /// fakes (`h.fakes`), so the whole API runs without root, Docker or D-Bus.
    pub async fn with_fakes() -> Harness {
        Self::claimed(Self::unclaimed_on(|_| {}, true).await).await
    }

    async fn claimed((h, code): (Harness, String)) -> Harness {
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

    /// A device not claimed yet, and its setup code.
    pub async fn unclaimed(adjust: impl FnOnce(&mut Config)) -> (Harness, String) {
        Self::unclaimed_on(adjust, false).await
    }

    async fn unclaimed_on(adjust: impl FnOnce(&mut Config), fakes: bool) -> (Harness, String) {
        let dir = tempfile::tempdir().expect("tmp");
        let clock = ManualClock::new(time::OffsetDateTime::now_utc());
        let mut config = Config::dev(dir.path());
        config.session_idle_timeout = Duration::from_secs(3600);
        config.session_max_age = Duration::from_secs(24 * 3600);
        config.metrics_token = Some(METRICS_TOKEN.into());
        adjust(&mut config);
        let (adapters, fakes) = if fakes {
            let (a, f) = hearth_agent::adapters::Adapters::fakes(Arc::new(clock.clone()));
            (a, Some(f))
        } else {
            let a = hearth_agent::adapters::Adapters::real(&config, Arc::new(clock.clone()))
                .expect("adapters");
            (a, None)
        };
        let (state, _ca) = hearth_agent::daemon::build_state(config, adapters).expect("state");
        hearth_agent::daemon::spawn_status_task(state.clone());
        let code = state
            .accounts
            .ensure_setup_code()
            .expect("code")
            .expect("unclaimed");
        let h = Harness {
            app: hearth_agent::api::app(state.clone()),
            clock,
            dir,
            state,
            fakes,
        };
        (h, code)
    }

    pub async fn call(
        &self,
        b: &mut Browser,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
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
        let ip = SocketAddr::new(b.ip.unwrap_or("192.0.2.10").parse().expect("ip"), 40000);
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

    /// A GET whose response body is left open (event streams).
    pub async fn call_streaming(&self, b: &mut Browser, path: &str) -> axum::http::Response<Body> {
        let mut req = Request::builder().uri(path);
        if let Some(s) = &b.session {
            req = req.header("cookie", format!("__Host-hearth_session={s}"));
        }
        let mut request = req.body(Body::empty()).expect("request");
        let ip = SocketAddr::new(b.ip.unwrap_or("192.0.2.10").parse().expect("ip"), 40000);
        request.extensions_mut().insert(ConnectInfo(ip));
        self.app.clone().oneshot(request).await.expect("infallible")
    }

    pub async fn login(&self, b: &mut Browser, user: &str, password: &str) -> Reply {
        self.call(
            b,
            "POST",
            "/api/v1/session",
            Some(json!({"username": user, "password": password})),
        )
        .await
    }

    pub async fn admin(&self) -> Browser {
        let mut b = Browser::default();
        let r = self.login(&mut b, "admin", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        b
    }
}

pub fn code(r: &Reply) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("")
}
