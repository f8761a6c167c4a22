//! Compose's units: Go-style durations (`1m30s`) and byte sizes (`256M`, `1.5g`, `10mb`).

/// A Go/Compose duration in nanoseconds: `300ms`, `10s`, `1m30s`, `2h`, `1.5s`, `0`.
pub fn duration_ns(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let bad = || format!("{s:?} is not a duration (like 30s, 1m30s or 500ms)");
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

/// A byte size: a plain number is bytes; suffixes b, k, m, g (with optional `b`/`ib`, any case).
pub fn bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let bad = || format!("{s:?} is not a size (like 512m, 1.5g or 1048576)");
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let n: f64 = t[..num_len].parse().map_err(|_| bad())?;
    let unit = t[num_len..].trim();
    let factor: f64 = match unit {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    Ok((n * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ns("10s"), Ok(10_000_000_000));
        assert_eq!(duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Ok(500_000_000));
        assert_eq!(duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(duration_ns("0"), Ok(0));
        for bad in ["", "10", "s", "10x", "1m-3s"] {
            assert!(duration_ns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes("256M"), Ok(256 << 20));
        assert_eq!(bytes("256m"), Ok(256 << 20));
        assert_eq!(bytes("1.5G"), Ok(3 << 29));
        assert_eq!(bytes("10mb"), Ok(10 << 20));
        assert_eq!(bytes("1024"), Ok(1024));
        assert_eq!(bytes("64kib"), Ok(64 << 10));
        assert!(bytes("lots").is_err());
        assert!(bytes("12 parsecs").is_err());
    }
}
