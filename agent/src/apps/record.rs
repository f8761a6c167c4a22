//! What the agent remembers about an installed app: where it came from, the compose text and
//! the user's settings (so it can be re-planned), the plan it runs, and the consents given.

use super::plan::{AppSettings, Plan};
use super::policy::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AppSource {
    Store { store: String, app: String },
    Custom,
}

/// An admin's consent to one policy finding, with who and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Consent {
    pub finding: String,
    pub by: String,
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Being created; a record found in this state at start-up is a crashed install to undo.
    Installing,
    Installed,
    /// Being re-created by an update or a settings change.
    Updating,
    Removing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub id: String,
    pub source: AppSource,
    pub compose: String,
    pub settings: AppSettings,
    pub plan: Plan,
    pub consents: Vec<Consent>,
    pub state: RecordState,
    pub installed_at: String,
    pub updated_at: String,
    /// Image id (`sha256:...`) each service ran before the last update, for rollback.
    #[serde(default)]
    pub previous_images: BTreeMap<String, String>,
    /// Registry digest of each service's image when last pulled (moving-tag update detection).
    #[serde(default)]
    pub image_digests: BTreeMap<String, String>,
    #[serde(default)]
    pub auto_update: bool,
    /// The last failed operation's message (cleared by the next success).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why the app is kept stopped (its restart policy set to `no`) although installed: its
    /// stored configuration, judged by this agent's policy, needs something the admin has not
    /// granted. Cleared by consenting (an update with the consents) or by uninstalling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Hold>,
}

/// Why an installed app is held stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Hold {
    /// The policy finds things nobody consented to (after an agent upgrade, or another app was
    /// installed that this one reaches into). Consenting to `findings` starts it again.
    Unconsented { findings: Vec<Finding>, at: String },
    /// The stored configuration is now refused outright (an unsupported key, a bind source
    /// another container could swap); only an update to a fixed file or uninstalling helps.
    Refused { message: String, at: String },
}

impl AppRecord {
    pub fn consented(&self) -> std::collections::BTreeSet<String> {
        self.consents.iter().map(|c| c.finding.clone()).collect()
    }
}
