//! Time as an injected dependency, so expiry, throttling, TOTP, time stamps and the updates'
//! maintenance window are testable without sleeping. Nothing outside this file reads the system
//! clock for wall-clock time.
//!
//! Local time comes from the IANA time-zone database through `jiff` (the system's
//! `/usr/share/zoneinfo`, the same files `timedated` uses), never from running `date`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// Wall-clock time source.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> OffsetDateTime;

    /// Now, as a wall clock in the IANA time zone `zone` shows it (the device's configured
    /// zone, `AppState::timezone`); UTC if the zone is unknown to the zone database.
    fn local_now(&self, zone: &str) -> OffsetDateTime {
        in_zone(self.now(), zone)
    }

    /// Now as an RFC 3339 time stamp (UTC), the form records and events carry.
    fn now_rfc3339(&self) -> String {
        self.now()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

/// `at` in the IANA time zone `zone` (its offset at that instant, daylight saving included);
/// `at` in UTC if the zone database has no such zone.
pub fn in_zone(at: OffsetDateTime, zone: &str) -> OffsetDateTime {
    let offset = jiff::tz::TimeZone::get(zone)
        .map_err(|e| tracing::debug!(zone, error = %e, "unknown time zone; using UTC"))
        .ok()
        .and_then(|tz| {
            let instant = jiff::Timestamp::from_nanosecond(at.unix_timestamp_nanos()).ok()?;
            time::UtcOffset::from_whole_seconds(tz.to_offset(instant).seconds()).ok()
        })
        .unwrap_or(time::UtcOffset::UTC);
    at.to_offset(offset)
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    unix_nanos: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            unix_nanos: Arc::new(AtomicI64::new(start.unix_timestamp_nanos() as i64)),
        }
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.unix_nanos
            .fetch_add(by.as_nanos() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let nanos = self.unix_nanos.load(Ordering::SeqCst);
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// A time as RFC 3339 text, the one form the API, the store and the logs use.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn local_time_follows_the_zone_and_its_daylight_saving() {
        let clock = ManualClock::new(datetime!(2026-01-15 12:00 UTC));
        let berlin = clock.local_now("Europe/Berlin");
        assert_eq!((berlin.hour(), berlin.minute()), (13, 0), "CET is UTC+1");
        assert_eq!(berlin, clock.now(), "the same instant");
        clock.advance(std::time::Duration::from_secs(182 * 24 * 3600));
        assert_eq!(clock.local_now("Europe/Berlin").hour(), 14, "CEST is UTC+2");
        let kolkata = in_zone(datetime!(2026-01-15 12:00 UTC), "Asia/Kolkata");
        assert_eq!((kolkata.hour(), kolkata.minute()), (17, 30));
        assert_eq!(clock.local_now("Etc/UTC").hour(), 12);
    }

    #[test]
    fn an_unknown_zone_is_utc() {
        let clock = ManualClock::new(datetime!(2026-01-15 12:00 UTC));
        for zone in ["Mars/Olympus", "", "../../etc/passwd"] {
            let local = clock.local_now(zone);
            assert_eq!(
                (local.hour(), local.offset()),
                (12, time::UtcOffset::UTC),
                "{zone:?}"
            );
        }
    }

    #[test]
    fn time_stamps_come_from_the_clock() {
        let clock = ManualClock::new(datetime!(2026-01-15 12:00:05 UTC));
        assert_eq!(clock.now_rfc3339(), "2026-01-15T12:00:05Z");
    }
}
