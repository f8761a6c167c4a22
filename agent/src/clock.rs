//! Time as an injected dependency, so expiry, throttling and TOTP are testable without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

/// Wall-clock time source.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn now(&self) -> OffsetDateTime;
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
