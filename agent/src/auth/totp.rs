//! TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, ±1 step of skew).

use hmac::{Hmac, Mac};
use sha1::Sha1;

const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub fn new_secret() -> String {
    base32_encode(&super::tokens::random_bytes::<20>())
}

/// The code for time step `step`.
pub fn code_at(secret: &[u8], step: u64) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

/// Checks `code` against the steps around `unix_time`, refusing any step at or before
/// `last_step` (replay). Returns the matched step.
pub fn verify(secret_b32: &str, code: &str, unix_time: i64, last_step: Option<u64>) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let wanted: u32 = code.parse().ok()?;
    let secret = base32_decode(secret_b32)?;
    let now_step = unix_time.div_euclid(STEP_SECS);
    (now_step - 1..=now_step + 1)
        .filter(|s| *s >= 0)
        .map(|s| s as u64)
        .filter(|s| last_step.is_none_or(|last| *s > last))
        .find(|s| code_at(&secret, *s) == wanted)
}

pub fn otpauth_uri(secret_b32: &str, account: &str, issuer: &str) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret_b32}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        issuer = percent_encode(issuer),
        account = percent_encode(account),
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = B32.iter().position(|x| *x == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The QR code of `uri` as a standalone SVG document.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA-1 secret "12345678901234567890" (8-digit codes truncated to 6).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59 / 30), 287082);
        assert_eq!(code_at(secret, 1111111109 / 30), 81804);
        assert_eq!(code_at(secret, 1234567890 / 30), 5924);
        assert_eq!(code_at(secret, 2000000000 / 30), 279037);
    }

    #[test]
    fn base32_round_trips_and_matches_rfc4648() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("MZXW6YTBOI").expect("decode"), b"foobar");
        assert!(base32_decode("not base32!").is_none());
    }

    #[test]
    fn verify_accepts_adjacent_steps_and_refuses_replay() {
        let secret = base32_encode(b"12345678901234567890");
        let now = 1_700_000_000;
        let code = format!(
            "{:06}",
            code_at(b"12345678901234567890", (now / 30 - 1) as u64)
        );
        let step = verify(&secret, &code, now, None).expect("previous step accepted");
        assert_eq!(
            verify(&secret, &code, now, Some(step)),
            None,
            "replay refused"
        );
        assert_eq!(verify(&secret, "12345", now, None), None);
        assert_eq!(verify(&secret, "abcdef", now, None), None);
    }

    #[test]
    fn qr_and_uri_are_produced() {
        let uri = otpauth_uri("MZXW6YTBOI", "alice", "Hearth hearth");
        assert!(uri.starts_with("otpauth://totp/Hearth%20hearth:alice?secret=MZXW6YTBOI"));
        assert!(qr_svg(&uri).expect("svg").contains("<svg"));
    }
}
