//! Where a plain-HTTP request is sent: the same host over HTTPS. The `Host` header only picks
//! the name the client already used; a malformed one falls back to the device's own name.

use axum::http::Uri;

/// Host names and address literals only: letters, digits, `.`, `-`, `:` and IPv6 brackets.
fn host_is_sane(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Splits `host[:port]` (IPv6 in brackets) and returns the host part.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.find(']') {
        return &host[..=end];
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The `Location` for a redirect to HTTPS. With `same_port` the client reached the HTTPS port
/// over plain HTTP, so its `Host` (port included) is kept as it is.
pub fn redirect_target(
    host: Option<&str>,
    fallback_host: &str,
    https_port: u16,
    same_port: bool,
    uri: &Uri,
) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = host.filter(|h| host_is_sane(h));
    let authority = match (host, same_port) {
        (Some(h), true) => h.to_string(),
        (h, _) => {
            let name = h.map_or(fallback_host, strip_port);
            if https_port == 443 {
                name.to_string()
            } else {
                format!("{name}:{https_port}")
            }
        }
    };
    format!("https://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    #[test]
    fn redirects_keep_host_and_path() {
        assert_eq!(
            redirect_target(Some("hearth.local"), "x", 443, false, &uri("/apps?q=1")),
            "https://hearth.local/apps?q=1"
        );
        assert_eq!(
            redirect_target(Some("hearth.local:80"), "x", 8443, false, &uri("/")),
            "https://hearth.local:8443/"
        );
        assert_eq!(
            redirect_target(Some("127.0.0.1:8443"), "x", 8443, true, &uri("/a")),
            "https://127.0.0.1:8443/a"
        );
        assert_eq!(
            redirect_target(Some("[::1]:80"), "x", 443, false, &uri("/")),
            "https://[::1]/"
        );
    }

    #[test]
    fn malformed_host_falls_back_to_the_device_name() {
        for bad in ["evil.com/path", "a b", "x\"y", ""] {
            assert_eq!(
                redirect_target(Some(bad), "hearth.local", 443, false, &uri("/")),
                "https://hearth.local/",
                "{bad}"
            );
        }
        assert_eq!(
            redirect_target(None, "hearth.local", 443, true, &uri("/")),
            "https://hearth.local/"
        );
    }
}
