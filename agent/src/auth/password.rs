//! Password hashing with argon2id (RFC 9106 second recommendation: 19 MiB, 2 passes).

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 1024;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
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
    fn policy_rejects_short_and_huge_passwords() {
        assert!(check_policy("1234567").is_err());
        assert!(check_policy("12345678").is_ok());
        assert!(check_policy(&"x".repeat(MAX_LENGTH + 1)).is_err());
    }
}
