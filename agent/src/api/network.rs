//! The device's network: interfaces, IP settings with a safe apply, Wi-Fi. Admin-only. Every
//! name in a request is checked against its grammar (`network::validate`) before the adapter
//! sees it.

use super::auth::AdminSession;
use super::error::{ApiResult, Body};
use crate::error::ServiceError;
use crate::network::validate::{self, Invalid, InvalidKind};
use crate::network::{Interface, InterfaceList, InterfacePatch, PendingChange, WifiList};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

impl From<Invalid> for ServiceError {
    fn from(e: Invalid) -> Self {
        match e.kind {
            InvalidKind::Shape => ServiceError::invalid(e.field, e.message),
            InvalidKind::Address => ServiceError::InvalidAddress {
                field: e.field,
                message: e.message,
            },
        }
    }
}

/// Every network interface with its link state, speed and addresses.
#[utoipa::path(get, path = "/api/v1/network/interfaces", tag = "network", security(("session" = [])),
    responses((status = 200, body = InterfaceList), (status = 403, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
pub async fn interfaces(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<InterfaceList>> {
    Ok(Json(InterfaceList {
        interfaces: state.network.interfaces().await?,
    }))
}

/// Changes an interface's IPv4/IPv6 settings behind a NetworkManager checkpoint: confirm it
/// (`POST /api/v1/network/checkpoints/{id}/confirm`) within `rollback_seconds` from the new
/// address, or the device returns to the old settings by itself.
#[utoipa::path(patch, path = "/api/v1/network/interfaces/{name}", tag = "network", security(("session" = [])),
    params(("name" = String, Path, description = "interface name, e.g. eth0")), request_body = InterfacePatch,
    responses((status = 202, body = PendingChange), (status = 400, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "invalid_address: an address, gateway or DNS server that is not a usable address of its family"),
        (status = 503, body = super::error::ErrorBody)))]
pub async fn update_interface(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
    Path(name): Path<String>,
    Body(patch): Body<InterfacePatch>,
) -> ApiResult<(StatusCode, Json<PendingChange>)> {
    validate::interface_name(&name)?;
    let change = validate::interface_patch(&patch)?;
    let seconds = state.config.network_rollback_secs;
    let checkpoint = state.network.apply_ip(&name, &change, seconds).await?;
    tracing::info!(admin = %auth.user.username, interface = %name, %checkpoint, "network settings changed");
    Ok((
        StatusCode::ACCEPTED,
        Json(PendingChange {
            checkpoint,
            rollback_seconds: seconds,
        }),
    ))
}

/// Keeps a network change: the dashboard calls this once it reaches the device again.
#[utoipa::path(post, path = "/api/v1/network/checkpoints/{id}/confirm", tag = "network", security(("session" = [])),
    params(("id" = String, Path, pattern = r"^[0-9]{1,10}$", description = "the number at the end of NetworkManager's checkpoint path")),
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn confirm(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    validate::checkpoint_id(&id)?;
    state.network.confirm(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Undoes a network change now.
#[utoipa::path(post, path = "/api/v1/network/checkpoints/{id}/rollback", tag = "network", security(("session" = [])),
    params(("id" = String, Path, pattern = r"^[0-9]{1,10}$", description = "the number at the end of NetworkManager's checkpoint path")),
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    validate::checkpoint_id(&id)?;
    state.network.rollback(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Wi-Fi networks in range, one per SSID, strongest first.
#[utoipa::path(get, path = "/api/v1/network/wifi", tag = "network", security(("session" = [])),
    responses((status = 200, body = WifiList), (status = 503, body = super::error::ErrorBody)))]
pub async fn wifi(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<WifiList>> {
    Ok(Json(state.network.wifi().await?))
}

/// Asks the Wi-Fi device to scan; the list updates within seconds.
#[utoipa::path(post, path = "/api/v1/network/wifi/scan", tag = "network", security(("session" = [])),
    responses((status = 202), (status = 404, body = super::error::ErrorBody), (status = 503, body = super::error::ErrorBody)))]
pub async fn scan(State(state): State<AppState>, _admin: AdminSession) -> ApiResult<StatusCode> {
    state.network.scan().await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WifiConnect {
    /// 1–32 bytes (802.11).
    #[schema(min_length = 1, max_length = 32)]
    pub ssid: String,
    /// WPA2/WPA3-personal passphrase (`validate::wpa_password`: 8–63 printable ASCII
    /// characters or 64 hex digits); leave out for an open or already saved network.
    #[schema(pattern = r"^([ -~]{8,63}|[0-9A-Fa-f]{64})$")]
    pub password: Option<String>,
}

/// Joins a Wi-Fi network and answers with the Wi-Fi interface once it is connected. A refused
/// password answers 422 `wifi_auth_failed` and is not saved.
#[utoipa::path(post, path = "/api/v1/network/wifi/connect", tag = "network", security(("session" = [])),
    request_body = WifiConnect,
    responses((status = 200, body = Interface), (status = 400, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "wifi_auth_failed, activation_failed, password_required (the network needs one), wifi_unsupported")))]
pub async fn connect(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
    Body(req): Body<WifiConnect>,
) -> ApiResult<Json<Interface>> {
    validate::ssid(&req.ssid)?;
    if let Some(p) = &req.password {
        validate::wpa_password(p)?;
    }
    let iface = state
        .network
        .connect(&req.ssid, req.password.as_deref())
        .await?;
    tracing::info!(admin = %auth.user.username, ssid = %req.ssid, "joined Wi-Fi network");
    Ok(Json(iface))
}

/// Forgets every saved profile of a Wi-Fi network.
#[utoipa::path(delete, path = "/api/v1/network/wifi/{ssid}", tag = "network", security(("session" = [])),
    params(("ssid" = String, Path, max_length = 32, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$")),
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn forget(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(ssid): Path<String>,
) -> ApiResult<StatusCode> {
    validate::ssid(&ssid)?;
    state.network.forget(&ssid).await?;
    Ok(StatusCode::NO_CONTENT)
}
