//! Random secrets and how they are stored: only a BLAKE3 hash of a bearer secret (session or
//! device token) is ever written to the store, so a copy of the store grants no access.

use subtle::ConstantTimeEq;

const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The kernel's getrandom only fails before its pool is initialised, which systemd waits for.
    getrandom::fill(&mut buf).expect("operating system random source failed");
    buf
}

/// A 256-bit random token, URL-safe base64 without padding (43 characters).
pub fn new_token() -> String {
    base64_url(&random_bytes::<32>())
}

/// A short random public identifier (not a secret).
pub fn new_id() -> String {
    base64_url(&random_bytes::<9>())
}

pub fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn base64_url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(URL_SAFE[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Setup codes: 8 characters from an alphabet without look-alikes, shown as `XXXX-XXXX`.
pub mod setup_code {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    pub fn generate() -> String {
        let bytes = super::random_bytes::<8>();
        let chars: String = bytes
            .iter()
            .map(|b| ALPHABET[(b & 31) as usize] as char)
            .collect();
        format!("{}-{}", &chars[..4], &chars[4..])
    }

    /// Canonical form of what a person typed: upper case, no separators or spaces, and the
    /// look-alike letters mapped the way Crockford's base32 does (O→0, I/L→1).
    pub fn normalize(input: &str) -> String {
        input
            .chars()
            .filter(|c| !matches!(c, '-' | ' ' | '\t'))
            .map(|c| match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_unique_and_url_safe() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| URL_SAFE.contains(&c)));
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_url(b"fo"), "Zm8");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn setup_code_normalization_accepts_what_people_type() {
        let code = setup_code::generate();
        assert_eq!(code.len(), 9);
        assert_eq!(
            setup_code::normalize(&code.to_lowercase()),
            code.replace('-', "")
        );
        assert_eq!(setup_code::normalize(" ab0o-1il "), "AB00111");
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
    }
}
