//! The device itself: managed services and their journals, power, and the system settings
//! (host name, time zone, NTP). Admin-only, except reading the settings.

use super::auth::{AdminSession, Session};
use super::error::{ApiResult, Body};
use crate::error::ServiceError;
use crate::state::AppState;
use crate::system::journal::{JournalEntry, JournalQuery};
use crate::system::{PowerAction, UnitAction, UnitStatus};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Hearth's own and the key system services, with what an admin may do to each.
#[utoipa::path(get, path = "/api/v1/services", tag = "device", security(("session" = [])),
    responses((status = 200, body = [UnitStatus]), (status = 503, body = super::error::ErrorBody)))]
pub async fn services(
    State(state): State<AppState>,
    _admin: AdminSession,
) -> ApiResult<Json<Vec<UnitStatus>>> {
    Ok(Json(state.system.units(state.unit_policy.managed()).await?))
}

/// Starts, stops or restarts a managed service.
#[utoipa::path(post, path = "/api/v1/services/{unit}/{action}", tag = "device", security(("session" = [])),
    params(("unit" = String, Path), ("action" = crate::system::UnitAction, Path, description = "start, stop or restart")),
    responses((status = 204), (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn service_action(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
    Path((unit, action)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let action = UnitAction::parse(&action)
        .ok_or_else(|| ServiceError::invalid("action", "Use start, stop or restart."))?;
    state.unit_policy.check_action(&unit, action)?;
    state.system.unit_action(&unit, action).await?;
    tracing::info!(admin = %auth.user.username, %unit, action = action.as_str(), "service action");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct JournalParams {
    /// How many entries (newest first), at most 1000.
    pub lines: Option<usize>,
    /// Only entries at this priority (0–7) or more urgent.
    #[param(maximum = 7)]
    pub priority: Option<u8>,
    /// Only entries whose message contains this text.
    pub contains: Option<String>,
}

/// A managed service's journal, newest first.
#[utoipa::path(get, path = "/api/v1/services/{unit}/journal", tag = "device", security(("session" = [])),
    params(("unit" = String, Path), JournalParams),
    responses((status = 200, body = [JournalEntry]), (status = 404, body = super::error::ErrorBody)))]
pub async fn service_journal(
    State(state): State<AppState>,
    _admin: AdminSession,
    Path(unit): Path<String>,
    Query(params): Query<JournalParams>,
) -> ApiResult<Json<Vec<JournalEntry>>> {
    state.unit_policy.check_unit(&unit)?;
    let query = JournalQuery {
        lines: params.lines.unwrap_or(200),
        max_priority: params.priority,
        contains: params.contains.filter(|c| !c.is_empty()),
    };
    Ok(Json(state.journal.read(&unit, &query).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerRequest {
    /// Must be true: a reboot or power-off is never triggered by accident.
    pub confirm: bool,
}

/// Reboots or powers off the device (admin, confirmed).
#[utoipa::path(post, path = "/api/v1/system/{action}", tag = "device", security(("session" = [])),
    params(("action" = String, Path, description = "reboot or poweroff")), request_body = PowerRequest,
    responses((status = 202), (status = 400, body = super::error::ErrorBody)))]
pub async fn power(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
    Path(action): Path<String>,
    Body(req): Body<PowerRequest>,
) -> ApiResult<StatusCode> {
    let action = match action.as_str() {
        "reboot" => PowerAction::Reboot,
        "poweroff" => PowerAction::PowerOff,
        _ => return Err(ServiceError::NotFound(format!("system action {action}")).into()),
    };
    if !req.confirm {
        return Err(
            ServiceError::invalid("confirm", "Confirm the action with \"confirm\": true.").into(),
        );
    }
    tracing::warn!(admin = %auth.user.username, ?action, "power action requested");
    state.system.power(action).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemSettings {
    pub hostname: String,
    pub timezone: String,
    pub ntp: bool,
    pub ntp_synchronized: bool,
    /// Microseconds since the Unix epoch, as the device sees it.
    pub time_usec: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// The same rule as `validate::hostname`.
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub hostname: Option<String>,
    /// The grammar of `validate::timezone` (the zone must also exist on the device).
    #[schema(
        max_length = 64,
        pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9_+.-]*(/[A-Za-z0-9_+-][A-Za-z0-9_+.-]*)*$"
    )]
    pub timezone: Option<String>,
    pub ntp: Option<bool>,
}

async fn current_settings(state: &AppState) -> ApiResult<SystemSettings> {
    let time = state.system.time().await?;
    Ok(SystemSettings {
        hostname: state.hostname(),
        timezone: time.timezone,
        ntp: time.ntp,
        ntp_synchronized: time.ntp_synchronized,
        time_usec: time.time_usec,
    })
}

/// The device name, time zone, NTP and clock.
#[utoipa::path(get, path = "/api/v1/system/settings", tag = "device", security(("session" = [])),
    responses((status = 200, body = SystemSettings), (status = 503, body = super::error::ErrorBody)))]
pub async fn settings(
    State(state): State<AppState>,
    _session: Session,
) -> ApiResult<Json<SystemSettings>> {
    Ok(Json(current_settings(&state).await?))
}

/// Changes the device name (also what mDNS announces), time zone or NTP. Everything is checked
/// before anything is changed.
#[utoipa::path(patch, path = "/api/v1/system/settings", tag = "device", security(("session" = [])), request_body = SettingsPatch,
    responses((status = 200, body = SystemSettings), (status = 400, body = super::error::ErrorBody),
        (status = 422, body = super::error::ErrorBody, description = "unknown_name: the time zone is not in the device's zone database"),
        (status = 503, body = super::error::ErrorBody)))]
pub async fn update_settings(
    State(state): State<AppState>,
    AdminSession(auth): AdminSession,
    Body(patch): Body<SettingsPatch>,
) -> ApiResult<Json<SystemSettings>> {
    if let Some(name) = &patch.hostname {
        crate::validate::hostname(name).map_err(|m| ServiceError::invalid("hostname", m))?;
    }
    if let Some(zone) = &patch.timezone {
        crate::validate::timezone(zone, std::path::Path::new("/usr/share/zoneinfo"))
            .map_err(ServiceError::from)?;
    }
    state
        .device_settings()
        .change(
            patch.hostname.as_deref(),
            patch.timezone.as_deref(),
            patch.ntp,
        )
        .await?;
    tracing::info!(admin = %auth.user.username, ?patch, "system settings changed");
    Ok(Json(current_settings(&state).await?))
}
