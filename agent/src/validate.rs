//! Strict grammars for names that come from requests. A name that passes here is safe to use as
//! a store key, in a certificate, in a file name and as a program argument.

/// User names: `^[a-z_][a-z0-9_-]{0,31}$` (the portable Linux user-name grammar).
pub fn username(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 32
        && matches!(bytes[0], b'a'..=b'z' | b'_')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("User names are 1–32 characters: lower-case letters, digits, '_' and '-', not starting with a digit or '-'.".into())
    }
}

/// Host names: one DNS label, `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
pub fn hostname(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err("Device names are 1–63 characters: lower-case letters, digits and '-', not starting or ending with '-'.".into())
    }
}

/// Why a time zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimezoneError {
    #[error("'{0}' is not a time zone name.")]
    Grammar(String),
    /// Well-formed, but not in this device's zone database.
    #[error("Unknown time zone '{0}'.")]
    Unknown(String),
}

/// Time zones: an IANA name such as `Europe/Berlin` that exists in the zone database under
/// `zoneinfo_dir`. The grammar is checked before the file system is touched.
pub fn timezone(name: &str, zoneinfo_dir: &std::path::Path) -> Result<(), TimezoneError> {
    let grammar_ok = !name.is_empty()
        && name.len() <= 64
        && name.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+'))
        });
    if !grammar_ok {
        return Err(TimezoneError::Grammar(name.into()));
    }
    if name == "UTC" || name == "Etc/UTC" || zoneinfo_dir.join(name).is_file() {
        Ok(())
    } else {
        Err(TimezoneError::Unknown(name.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for good in ["alice", "_svc", "a-b_c9", &"a".repeat(32)] {
            assert!(username(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Alice",
            "9lives",
            "-x",
            "a b",
            "a/b",
            "a..b",
            &"a".repeat(33),
            "ä",
        ] {
            assert!(username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        for good in ["hearth", "my-nas2", "a"] {
            assert!(hostname(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a.b", "UPPER", "a_b", &"a".repeat(64)] {
            assert!(hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timezones_check_grammar_before_the_file_system() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("Europe")).expect("mkdir");
        std::fs::write(dir.path().join("Europe/Berlin"), b"TZif").expect("write");
        assert!(timezone("Europe/Berlin", dir.path()).is_ok());
        assert!(timezone("Etc/UTC", dir.path()).is_ok());
        assert_eq!(
            timezone("Europe/Atlantis", dir.path()),
            Err(TimezoneError::Unknown("Europe/Atlantis".into()))
        );
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "Europe/../../x",
            "Europe//Berlin",
            ".hidden",
        ] {
            assert!(
                matches!(timezone(bad, dir.path()), Err(TimezoneError::Grammar(_))),
                "{bad}"
            );
        }
    }
}
