//! Updating apps from where they came from (the store's current compose file, or the same
//! compose file for custom apps, with fresh images for moving tags), on request and
//! automatically for apps with `auto_update` on.

use super::{Apps, UpdateRequest};
use crate::apps::catalog::Catalog;
use crate::apps::record::{AppRecord, AppSource};
use crate::error::ServiceError;
use std::collections::BTreeSet;

/// Updates `id` from its source. Runs detached: a client that goes away does not cancel an
/// update halfway.
pub async fn update_from_source(
    apps: &Apps,
    catalog: &Catalog,
    id: &str,
    consent: BTreeSet<String>,
    by: &str,
) -> Result<AppRecord, ServiceError> {
    let r = apps.get(id)?;
    let compose = match &r.source {
        AppSource::Store { store, app } => {
            let a = catalog.app(store, app)?;
            Some(
                crate::apps::source::load(&a.compose_path)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?
                    .text,
            )
        }
        AppSource::Custom => None,
    };
    let req = UpdateRequest {
        compose,
        settings: None,
        consent,
        by: by.to_string(),
    };
    let apps = apps.clone();
    let id = id.to_string();
    match tokio::spawn(async move { apps.update(&id, req).await }).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ServiceError::Internal(format!("app operation task: {e}"))),
    }
}

/// One round of automatic updates: checks moving tags, then updates every app with
/// `auto_update` on whose store version or image digests changed.
pub async fn auto_update(apps: &Apps, catalog: &Catalog) {
    if let Err(e) = apps.check_digests().await {
        tracing::warn!(error = %e, "app update check failed");
        return;
    }
    let Ok(records) = apps.list() else {
        return;
    };
    for r in records.into_iter().filter(|r| r.auto_update) {
        let store_update = match &r.source {
            AppSource::Store { store, app } => catalog
                .app(store, app)
                .ok()
                .and_then(|a| a.meta.version)
                .is_some_and(|v| Some(&v) != r.plan.version.as_ref()),
            AppSource::Custom => false,
        };
        let digest_update = apps
            .digest_check(&r.id)
            .is_some_and(|c| !c.services.is_empty());
        if !(store_update || digest_update) {
            continue;
        }
        tracing::info!(app = %r.id, store_update, digest_update, "updating automatically");
        if let Err(e) =
            update_from_source(apps, catalog, &r.id, Default::default(), "auto-update").await
        {
            tracing::warn!(app = %r.id, error = %e, "automatic update failed");
        }
    }
}
