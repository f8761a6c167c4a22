//! Request and response bodies of the HTTP API, described for the OpenAPI document.

use crate::store::{Role, UserRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub claimed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetupInfo {
    pub claimed: bool,
    /// Suggested device name.
    pub hostname: String,
    pub timezone: String,
    /// What the wizard's update step offers.
    pub updates: SetupUpdates,
}

/// The wizard's update step: whether the image names an update server, the channels a claim
/// may choose (the first is the image's) and the default maintenance window.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupUpdates {
    pub configured: bool,
    pub channels: Vec<String>,
    pub maintenance_window: crate::update::records::MaintenanceWindow,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The one-time setup code, as shown on the console or in `hearth-setup.txt`.
    pub code: String,
    /// The grammar of `validate::username`.
    #[schema(pattern = r"^[a-z_][a-z0-9_-]{0,31}$")]
    pub username: String,
    pub password: String,
    pub hostname: Option<String>,
    pub timezone: Option<String>,
    /// The update step's choice; left out: automatic, 03:00–05:00, the image's channel.
    pub updates: Option<crate::update::records::ClaimUpdates>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// Six-digit code, required when the account has two-factor authentication on.
    pub totp: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub username: String,
    pub role: Role,
    pub totp_enabled: bool,
    /// May read app logs (always true for admins; members only when an admin grants it).
    pub app_logs: bool,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&UserRecord> for User {
    fn from(u: &UserRecord) -> Self {
        User {
            username: u.username.clone(),
            role: u.role,
            totp_enabled: u.totp_enabled(),
            app_logs: u.app_logs || u.role == Role::Admin,
            created_at: rfc3339(u.created_at),
        }
    }
}

pub use crate::clock::rfc3339;

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub csrf_token: String,
    pub user: User,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub csrf_token: String,
    pub user: User,
    /// RFC 3339; when the session ends unless used again.
    pub expires_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The grammar of `validate::username`.
    #[schema(pattern = r"^[a-z_][a-z0-9_-]{0,31}$")]
    pub username: String,
    /// At least 8 characters.
    #[schema(min_length = 8)]
    pub password: String,
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    /// A new password (at least 8 characters); all the user's sessions end.
    #[schema(min_length = 8)]
    pub password: Option<String>,
    /// Let a member read app logs (which often print the apps' admin passwords).
    pub app_logs: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32 secret to type into an authenticator app.
    pub secret: String,
    pub otpauth_uri: String,
    /// The `otpauth_uri` as a QR code, an SVG document.
    pub qr_svg: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// Six digits from the authenticator app.
    #[schema(pattern = r"^[0-9]{6}$")]
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    pub password: String,
}
