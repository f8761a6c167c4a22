//! Password hashing with argon2id (RFC 9106 second recommendation: 19 MiB, 2 passes).

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Memory one argon2 computation takes (the `m` parameter, in KiB).
pub const MEMORY_KIB: u32 = 19 * 1024;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 1024;

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters cannot fail")
        .to_string()
}

/// True if `password` matches the PHC string `stored`. A malformed stored hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the same work as a real verification, for unknown users, so that response timing
/// does not reveal whether a user name exists.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| hash("hearth-dummy-password"));
    let _ = verify(password, stored);
}

/// Bounds how many password hashes are computed at once. Each takes 19 MiB for its duration
/// (about 50 ms on a desktop core, 300 ms on a Pi): unbounded, 60 parallel logins took an agent
/// from 40 MiB to 1.1 GiB. The bound is sized to the device: at most a sixteenth of its memory
/// and no more than its cores (more would not finish sooner). Requests wait for a turn for a
/// while; past that they are told to come back (429 with `Retry-After`).
#[derive(Debug, Clone)]
pub struct HashGate {
    permits: Arc<Semaphore>,
    size: usize,
    wait: Duration,
}

/// Returned when no turn came within the wait.
#[derive(Debug, Clone, Copy)]
pub struct Busy;

impl HashGate {
    pub fn for_this_device() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let info = rustix::system::sysinfo();
        let memory = (info.totalram as u64).saturating_mul(u64::from(info.mem_unit.max(1)));
        Self::new(permits_for(memory, cpus), Duration::from_secs(5))
    }

    pub fn new(size: usize, wait: Duration) -> Self {
        HashGate {
            permits: Arc::new(Semaphore::new(size.max(1))),
            size: size.max(1),
            wait,
        }
    }

    /// Hashes at once allowed.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `work` (a hash or a verification) on the blocking pool once a turn is free.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let result = tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|_| Busy)?;
        Ok(result)
    }
}

/// Concurrent hashes for a device with `memory` bytes and `cpus` cores.
pub fn permits_for(memory: u64, cpus: usize) -> usize {
    let per_hash = u64::from(MEMORY_KIB) * 1024;
    ((memory / 16 / per_hash) as usize).clamp(1, cpus.max(1))
}

/// Checks a new password's length; returns a message for the user if it is unacceptable.
pub fn check_policy(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(format!(
            "The password must have at least {MIN_LENGTH} characters."
        ));
    }
    if password.len() > MAX_LENGTH {
        return Err(format!(
            "The password must have at most {MAX_LENGTH} bytes."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_right_password() {
        let stored = hash("correct horse");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct hors", &stored));
        assert!(!verify("correct horse", "not-a-phc-string"));
    }

    #[test]
    fn hashing_concurrency_follows_memory_and_cores() {
        const GIB: u64 = 1 << 30;
        assert_eq!(
            permits_for(GIB / 2, 4),
            1,
            "a 512 MiB device hashes one at a time"
        );
        assert_eq!(permits_for(GIB, 4), 3);
        assert_eq!(permits_for(8 * GIB, 4), 4, "never more than the cores");
        assert_eq!(permits_for(0, 0), 1);
    }

    #[test]
    fn policy_rejects_short_and_huge_passwords() {
        assert!(check_policy("1234567").is_err());
        assert!(check_policy("12345678").is_ok());
        assert!(check_policy(&"x".repeat(MAX_LENGTH + 1)).is_err());
    }
}
