//! Request authentication: the session cookie, the CSRF header, roles, and the client address.
//!
//! Nothing about a request's origin grants anything: not loopback, not `X-Forwarded-For`,
//! `X-Real-IP`, `Forwarded` or `Host`. Only a valid session cookie authenticates, and every
//! state-changing request must also carry that session's CSRF token in `X-CSRF-Token`.

use super::error::ApiError;
use crate::accounts::Authenticated;
use crate::auth::tokens::secrets_equal;
use crate::error::ServiceError;
use crate::state::AppState;
use crate::store::Role;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub const SESSION_COOKIE: &str = "__Host-hearth_session";
pub const DEVICE_COOKIE: &str = "__Host-hearth_device";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn set_cookie(name: &str, value: &str, max_age_secs: u64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Strict")
}

pub fn clear_cookie(name: &str) -> String {
    set_cookie(name, "", 0)
}

/// Any signed-in user. For unsafe methods the CSRF token has been checked.
#[derive(Debug, Clone)]
pub struct Session(pub Authenticated);

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct AdminSession(pub Authenticated);

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(ServiceError::Unauthenticated)?;
        let auth = state.accounts.authenticate(token)?;
        if !is_safe(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !secrets_equal(sent, &auth.session.csrf_token) {
                return Err(ServiceError::CsrfInvalid.into());
            }
        }
        Ok(Session(auth))
    }
}

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Session(auth) = Session::from_request_parts(parts, state).await?;
        if auth.user.role != Role::Admin {
            return Err(ServiceError::Forbidden.into());
        }
        Ok(AdminSession(auth))
    }
}

/// The TCP peer's address: used only to key throttling, never to grant anything.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientAddr(ip))
    }
}
