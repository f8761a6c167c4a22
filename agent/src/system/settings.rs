//! The device settings an admin changes (host name, time zone, NTP): each is applied to the
//! system first and recorded in the store only once the system took it, so the store never
//! claims a setting the system refused. Checking the values is the caller's (they arrive
//! parsed); this module never reads the request.

use super::SystemControl;
use crate::error::ServiceError;
use crate::store::Store;

/// The system and the store, kept together (borrowed from the application state).
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    pub system: &'a dyn SystemControl,
    pub store: &'a Store,
}

impl Settings<'_> {
    /// Applies the given settings in order (name, zone, NTP); a refusal stops there.
    pub async fn change(
        &self,
        hostname: Option<&str>,
        timezone: Option<&str>,
        ntp: Option<bool>,
    ) -> Result<(), ServiceError> {
        let mut stored = self.store.device_settings()?;
        if let Some(name) = hostname {
            self.system.set_hostname(name).await?;
            stored.hostname = Some(name.to_string());
            self.store.put_device_settings(&stored)?;
        }
        if let Some(zone) = timezone {
            self.system.set_timezone(zone).await?;
            stored.timezone = zone.to_string();
            self.store.put_device_settings(&stored)?;
        }
        if let Some(on) = ntp {
            self.system.set_ntp(on).await?;
        }
        Ok(())
    }
}
