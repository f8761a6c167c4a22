//! Disk hot-plug with real kernel uevents: attaching a loop device (the kernel announces a
//! `change` for `loopN`) reaches a dashboard listening on `/api/v1/events` as a disk event with
//! the disk's fresh listing; and the auto-mount policy setting.

use crate::common;

use common::Agent;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["--detach", &self.0]).output();
    }
}

fn start_agent(dir: &std::path::Path) -> Agent {
    std::fs::create_dir_all(dir.join("agent.d")).expect("mkdir");
    std::fs::write(
        dir.join("agent.d/10-disks.toml"),
        "disks_include_loop = true\n",
    )
    .expect("drop-in");
    Agent::start(dir)
}

/// Reads SSE frames until one satisfies `want` (or gives up after a generous deadline, which is
/// a hang guard, not a speed check).
async fn wait_for_event(
    resp: &mut reqwest::Response,
    want: impl Fn(&str, &Value) -> bool,
) -> (String, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buffer = String::new();
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_string();
            let data: Value = frame
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            if want(&name, &data) {
                return (name, data);
            }
        }
    }
    panic!("the expected event never arrived");
}

#[tokio::test]
async fn an_attached_loop_device_is_announced_on_the_event_stream() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = start_agent(dir.path());
    let s = agent.claim().await;
    let mut events = s
        .client
        .get(format!("{}/api/v1/events", s.base))
        .header(
            "cookie",
            format!(
                "__Host-hearth_session={}",
                s.cookie.clone().expect("cookie")
            ),
        )
        .send()
        .await
        .expect("events");
    assert_eq!(events.status(), StatusCode::OK);
    // The first frame (status) shows the stream is live before the device appears.
    wait_for_event(&mut events, |name, _| name == "status").await;

    let backing = dir.path().join("usb.img");
    std::fs::File::create(&backing)
        .and_then(|f| f.set_len(72 << 20))
        .expect("backing file");
    let out = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&backing)
        .output()
        .expect("losetup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = Loop(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let name = dev.0.trim_start_matches("/dev/").to_string();

    // Other tests attach and detach loop devices at the same time, and the kernel hands the
    // freed names out again: a late `disk_removed` of another test's loop0 can follow this
    // test's attach of a new loop0. This test's device is the one of 72 MiB (no other test's).
    let (event, data) = wait_for_event(&mut events, |event, data| {
        event.starts_with("disk_")
            && event != "disk_removed"
            && data["disk"] == name.as_str()
            && data["info"]["size_bytes"] == 72u64 << 20
    })
    .await;
    assert!(
        event == "disk_changed" || event == "disk_added",
        "{event}: {data}"
    );
    assert_eq!(
        data["info"]["name"],
        name.as_str(),
        "with the fresh listing: {data}"
    );
    assert_eq!(
        data["automounted"],
        json!([]),
        "the policy is off by default"
    );

    // Detached, the loop device stays with size 0: no longer a disk, so it is reported gone.
    drop(dev);
    let (_, data) = wait_for_event(&mut events, |event, data| {
        event == "disk_removed" && data["disk"] == name.as_str()
    })
    .await;
    assert_eq!(data["info"], Value::Null);
}

#[tokio::test]
async fn the_automount_policy_is_a_setting() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = start_agent(dir.path());
    let mut s = agent.claim().await;
    let (status, body) = s.send(Method::GET, "/api/v1/disks/settings", None).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"automount": "off"}))
    );
    let (status, body) = s
        .send(
            Method::PATCH,
            "/api/v1/disks/settings",
            Some(json!({"automount": "removable"})),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"automount": "removable"}))
    );
    let (status, body) = s
        .send(
            Method::PATCH,
            "/api/v1/disks/settings",
            Some(json!({"automount": "always"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, body) = s.send(Method::GET, "/api/v1/disks/settings", None).await;
    assert_eq!(
        body,
        json!({"automount": "removable"}),
        "kept, and the bad value changed nothing"
    );
}
