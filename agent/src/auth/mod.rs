//! Authentication building blocks: password hashing, TOTP, random tokens and throttling. Pure
//! functions and small types; the account logic that uses them lives in `accounts`.

pub mod password;
pub mod throttle;
pub mod tokens;
pub mod totp;
