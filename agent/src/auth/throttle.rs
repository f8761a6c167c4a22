//! Failure throttling with capped exponential back-off, for login and setup-code attempts.
//!
//! A key (a client address, an account name, or "global") gets a number of free failures;
//! after that, every failure blocks the key for twice as long as the last one, up to a cap. The
//! cap is what keeps a legitimate owner from being locked out for long. Successes clear a key.
//! Memory is bounded: at most `max_entries` keys are remembered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub free_failures: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten.
    pub forget_after: Duration,
    pub max_entries: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: OffsetDateTime,
    last_failure: OffsetDateTime,
}

#[derive(Debug)]
pub struct Throttle {
    policy: Policy,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `key` is blocked.
    pub fn check(&self, key: &str, now: OffsetDateTime) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some(entry) if entry.blocked_until > now => {
                let wait = entry.blocked_until - now;
                Err(Duration::from_secs(wait.whole_seconds().max(0) as u64 + 1))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, key: &str, now: OffsetDateTime) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.count_failure(&mut entries, key, now);
    }

    /// Checks `key` and, if it is not blocked, counts the attempt as a failure at once, in one
    /// step: concurrent attempts cannot all pass the check before the first failure is
    /// recorded (60 parallel guesses would otherwise all be tried). A success afterwards clears
    /// the key with `record_success`; a failure needs nothing more.
    pub fn reserve(&self, key: &str, now: OffsetDateTime) -> Result<(), Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(key)
            && entry.blocked_until > now
        {
            let wait = entry.blocked_until - now;
            return Err(Duration::from_secs(wait.whole_seconds().max(0) as u64 + 1));
        }
        self.count_failure(&mut entries, key, now);
        Ok(())
    }

    fn count_failure(&self, entries: &mut HashMap<String, Entry>, key: &str, now: OffsetDateTime) {
        if !entries.contains_key(key) && entries.len() >= self.policy.max_entries {
            self.evict(entries, now);
        }
        let forget = self.policy.forget_after;
        let entry = entries.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            blocked_until: now,
            last_failure: now,
        });
        if now - entry.last_failure > forget {
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.last_failure = now;
        if let Some(delay) = self.delay_after(entry.failures) {
            entry.blocked_until = now + delay;
        }
    }

    pub fn record_success(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The block that follows failure number `failures`, if any.
    fn delay_after(&self, failures: u32) -> Option<Duration> {
        let over = failures.checked_sub(self.policy.free_failures)?;
        if over == 0 {
            return None;
        }
        let factor = 2u32.saturating_pow(over - 1);
        Some(
            self.policy
                .base_delay
                .saturating_mul(factor)
                .min(self.policy.max_delay),
        )
    }

    fn evict(&self, entries: &mut HashMap<String, Entry>, now: OffsetDateTime) {
        let forget = self.policy.forget_after;
        entries.retain(|_, e| now - e.last_failure <= forget);
        if entries.len() >= self.policy.max_entries
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            free_failures: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            forget_after: Duration::from_secs(3600),
            max_entries: 4,
        }
    }

    #[test]
    fn free_failures_then_doubling_delay_up_to_the_cap() {
        let t = Throttle::new(policy());
        let start = OffsetDateTime::UNIX_EPOCH;
        for _ in 0..3 {
            t.record_failure("k", start);
            assert!(t.check("k", start).is_ok());
        }
        let mut waits = Vec::new();
        for _ in 0..8 {
            t.record_failure("k", start);
            waits.push(t.check("k", start).expect_err("blocked").as_secs());
        }
        assert_eq!(waits, vec![2, 3, 5, 9, 17, 31, 31, 31]);
        assert!(
            t.check("k", start + Duration::from_secs(31)).is_ok(),
            "cap bounds the lockout"
        );
        assert!(t.check("other", start).is_ok());
    }

    #[test]
    fn success_clears_and_old_failures_are_forgotten() {
        let t = Throttle::new(policy());
        let start = OffsetDateTime::UNIX_EPOCH;
        for _ in 0..5 {
            t.record_failure("k", start);
        }
        t.record_success("k");
        assert!(t.check("k", start).is_ok());
        for _ in 0..3 {
            t.record_failure("j", start);
        }
        let later = start + Duration::from_secs(7200);
        t.record_failure("j", later);
        assert!(
            t.check("j", later).is_ok(),
            "failures older than forget_after do not count"
        );
    }

    #[test]
    fn reservations_count_before_the_outcome_is_known() {
        let t = Throttle::new(policy());
        let now = OffsetDateTime::UNIX_EPOCH;
        // Attempts in flight together: the free ones and the one that starts the block pass,
        // every later one is refused although no outcome has been recorded yet.
        let passed = (0..60).filter(|_| t.reserve("k", now).is_ok()).count();
        assert_eq!(passed, 4);
        t.record_success("k");
        assert!(t.reserve("k", now).is_ok(), "a success clears the key");
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(policy());
        let now = OffsetDateTime::UNIX_EPOCH;
        for i in 0..100 {
            t.record_failure(&format!("k{i}"), now + Duration::from_secs(i));
        }
        assert!(t.entries.lock().expect("lock").len() <= 4);
    }
}
