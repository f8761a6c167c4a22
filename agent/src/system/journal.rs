//! Reading the journal of a unit with `journalctl --output=json` (an argument vector, never a
//! shell), newest first, with a priority floor and a plain-text filter applied here.

use super::SystemError;
use serde::Serialize;
use std::path::PathBuf;
use utoipa::ToSchema;

pub const MAX_LINES: usize = 1000;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct JournalEntry {
    /// Microseconds since the Unix epoch.
    pub time_usec: u64,
    /// 0 (emergency) … 7 (debug).
    pub priority: u8,
    pub identifier: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct JournalQuery {
    pub lines: usize,
    /// Show only entries at this priority or more urgent.
    pub max_priority: Option<u8>,
    /// Case-insensitive text the message must contain.
    pub contains: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Journal {
    program: PathBuf,
}

impl Default for Journal {
    fn default() -> Self {
        Self::new(PathBuf::from("journalctl"))
    }
}

impl Journal {
    pub fn new(program: PathBuf) -> Self {
        Self { program }
    }

    /// The argument vector for a query on `unit` (already checked against the unit policy).
    pub fn args(unit: &str, query: &JournalQuery) -> Vec<String> {
        // Ask for more than needed when filtering text here, within the hard cap.
        let fetch = if query.contains.is_some() {
            MAX_LINES
        } else {
            query.lines.clamp(1, MAX_LINES)
        };
        let mut args = vec![
            "--output=json".to_string(),
            "--no-pager".to_string(),
            "--reverse".to_string(),
            format!("--lines={fetch}"),
            format!("--unit={unit}"),
        ];
        if let Some(p) = query.max_priority {
            args.push(format!("--priority=0..{}", p.min(7)));
        }
        args
    }

    pub async fn read(
        &self,
        unit: &str,
        query: &JournalQuery,
    ) -> Result<Vec<JournalEntry>, SystemError> {
        let output = tokio::process::Command::new(&self.program)
            .args(Self::args(unit, query))
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| {
                SystemError::Journal(format!("cannot run {}: {e}", self.program.display()))
            })?;
        if !output.status.success() {
            let err = String::from_utf8_lossy(&output.stderr);
            return Err(SystemError::Journal(err.trim().chars().take(300).collect()));
        }
        let needle = query.contains.as_ref().map(|s| s.to_lowercase());
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(parse_line)
            .filter(|e| {
                needle
                    .as_ref()
                    .is_none_or(|n| e.message.to_lowercase().contains(n))
            })
            .take(query.lines.clamp(1, MAX_LINES))
            .collect())
    }
}

/// One line of `journalctl --output=json`. Binary messages arrive as arrays of bytes.
pub fn parse_line(line: &str) -> Option<JournalEntry> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let message = match &v["MESSAGE"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(bytes) => {
            let raw: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().map(|b| b as u8))
                .collect();
            String::from_utf8_lossy(&raw).into_owned()
        }
        _ => return None,
    };
    let field = |name: &str| v[name].as_str().map(str::to_string);
    Some(JournalEntry {
        time_usec: field("__REALTIME_TIMESTAMP")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        priority: field("PRIORITY").and_then(|p| p.parse().ok()).unwrap_or(6),
        identifier: field("SYSLOG_IDENTIFIER")
            .or_else(|| field("_SYSTEMD_UNIT"))
            .unwrap_or_default(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_binary_messages() {
        let text = r#"{"__REALTIME_TIMESTAMP":"1700000000000000","PRIORITY":"3","SYSLOG_IDENTIFIER":"dockerd","MESSAGE":"boom"}"#;
        let e = parse_line(text).expect("entry");
        assert_eq!(
            (
                e.time_usec,
                e.priority,
                e.identifier.as_str(),
                e.message.as_str()
            ),
            (1_700_000_000_000_000, 3, "dockerd", "boom")
        );
        let binary = r#"{"PRIORITY":"6","_SYSTEMD_UNIT":"x.service","MESSAGE":[104,105,27]}"#;
        assert_eq!(parse_line(binary).expect("entry").message, "hi\u{1b}");
        assert!(parse_line("not json").is_none());
    }

    #[test]
    fn arguments_are_a_fixed_vector() {
        let q = JournalQuery {
            lines: 5000,
            max_priority: Some(4),
            contains: None,
        };
        assert_eq!(
            Journal::args("docker.service", &q),
            [
                "--output=json",
                "--no-pager",
                "--reverse",
                "--lines=1000",
                "--unit=docker.service",
                "--priority=0..4"
            ]
        );
    }

    #[tokio::test]
    async fn reads_from_the_program_and_filters() {
        let dir = tempfile::tempdir().expect("tmp");
        let script = dir.path().join("journalctl");
        let log = dir.path().join("argv");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\necho '{{\"PRIORITY\":\"6\",\"MESSAGE\":\"started\"}}'\necho '{{\"PRIORITY\":\"3\",\"MESSAGE\":\"Failed hard\"}}'\n",
                log.display()
            ),
        )
        .expect("script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let journal = Journal::new(script);
        let q = JournalQuery {
            lines: 10,
            max_priority: None,
            contains: Some("FAILED".into()),
        };
        let entries = journal.read("docker.service", &q).await.expect("read");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].message, "Failed hard");
        let argv = std::fs::read_to_string(log).expect("argv");
        assert!(argv.contains("--unit=docker.service\n"), "{argv}");
    }
}
