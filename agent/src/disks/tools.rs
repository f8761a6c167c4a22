//! The external programs disks need, each run with an argument vector.

use std::collections::HashMap;
use std::process::{Command, Stdio};

/// `blkid -o export DEV` as a map (TYPE, LABEL, UUID, ...); empty when nothing is found.
pub fn blkid(dev: &str) -> HashMap<String, String> {
    let Ok(out) = Command::new("blkid")
        .args(["-o", "export", "--", dev])
        .stderr(Stdio::null())
        .output()
    else {
        return HashMap::new();
    };
    parse_export(&String::from_utf8_lossy(&out.stdout))
}

pub fn parse_export(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// SMART health from `smartctl --json -H -A DEV`, if the tool and the disk support it.
pub fn smart(dev: &str) -> Option<super::SmartHealth> {
    let out = Command::new("smartctl")
        .args(["--json", "-H", "-A", "--", dev])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    parse_smart(&String::from_utf8_lossy(&out.stdout))
}

pub fn parse_smart(json: &str) -> Option<super::SmartHealth> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let passed = v["smart_status"]["passed"].as_bool()?;
    Some(super::SmartHealth {
        passed,
        temperature_celsius: v["temperature"]["current"].as_i64(),
        power_on_hours: v["power_on_time"]["hours"].as_u64(),
    })
}

/// Runs `program args…`, feeding `stdin`; the error carries the program's own message.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), super::DiskError> {
    use std::io::Write;
    let tool_error = |message: String| super::DiskError::Tool {
        program: program.to_string(),
        message,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_error(format!("cannot start: {e}")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| tool_error(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| tool_error(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr);
        Err(tool_error(msg.trim().chars().take(400).collect()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_blkid_and_smartctl_output() {
        let m =
            super::parse_export("DEVNAME=/dev/sdb1\nUUID=1234-ABCD\nTYPE=exfat\nLABEL=My Disk\n");
        assert_eq!(m.get("TYPE").map(String::as_str), Some("exfat"));
        assert_eq!(m.get("LABEL").map(String::as_str), Some("My Disk"));
        let smart = super::parse_smart(r#"{"smart_status":{"passed":true},"temperature":{"current":34},"power_on_time":{"hours":1200}}"#)
            .expect("smart");
        assert!(smart.passed);
        assert_eq!(
            (smart.temperature_celsius, smart.power_on_hours),
            (Some(34), Some(1200))
        );
        assert!(super::parse_smart(r#"{"smartctl":{"exit_status":2}}"#).is_none());
    }
}
