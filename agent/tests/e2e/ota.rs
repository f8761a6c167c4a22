//! `ci/e2e-ota`: over-the-air updates on the qemu-x86_64 image (and, from `ci/e2e-uboot`, the
//! qemu-arm64-uboot one), phase by phase (the shell
//! builds v1–v4, publishes each into the repository before its phase, and cuts the power
//! between `v4_power_cut` and `v4_retry`):
//!  1. `v1_claim`: v1 1.0.0 claimed, its release, key and update URL in place; it stands in for
//!     a device on a format-2 release (`update.bundle_format = 2`: reads `index-v2.hidx`);
//!  2. `v2_delta_commit`: v2, the first format-3 release, installed through its format-2
//!     bridge bundle as a delta (downloaded < half the bundle), reboot, the health gate
//!     commits: 1.1.0 on slot b;
//!  3. `v3_rollback`: the broken v3 installed from `index-v3.hidx` as a format-3 delta (at most
//!     3× xdelta3 -9 of the same pair); its trial boot fails the gate and the device falls back
//!     to v2 by itself; the API reports the rollback with the gate's reason;
//!  4. `v4_power_cut`: v4's install started; when part of the slot is written the phase
//!     creates `$HEARTH_E2E_RUN_DIR/e2e-midway` and ends, and the shell cuts the power;
//!  5. `v4_retry`: after the power cut, still v2, the install reported interrupted; the retry
//!     commits 1.3.0 on slot a.
//!
//! Reads `$HEARTH_E2E_OTA_DIR` (bundles in `out/`, the repository's `nginx-access.log`),
//! `$HEARTH_E2E_REPO_PORT` and, for phase 3, `$HEARTH_E2E_XDELTA_V3` (bytes of xdelta3 -9
//! patches for the same pair) and `$HEARTH_E2E_DELTA_V3` (`hearth-ota delta-size` of v3's
//! bundle against v2's payloads), computed by the shell.

use crate::common::Session;
use crate::harness::{self, Checks, var};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[tokio::test]
#[ignore = "needs the v1 VM that ci/e2e-ota boots"]
async fn v1_claim() {
    let mut c = Checks::new();
    let code = harness::setup_code().unwrap_or_default();
    let (status, body, mut s) = harness::claim(&code).await;
    c.require(
        "claim answers 201",
        expect_status(status, 201, &body, "POST /api/v1/setup/claim"),
    );
    c.guest(
        "release.json in the root",
        r#"grep -q "\"version_number\": 1000000" /usr/lib/hearth/release.json"#,
    );
    c.guest(
        "root key in the root",
        r#"grep -q "BEGIN PUBLIC KEY" /usr/lib/hearth/ota-root.pub"#,
    );
    c.guest(
        "update URL in the device config",
        &format!(
            r#"grep -q 'repo_url = "http://10.0.2.2:{}/"' /usr/lib/hearth/agent.d/10-device.toml"#,
            var("HEARTH_E2E_REPO_PORT")
        ),
    );
    c.guest(
        "v1 stands in for a format-2 release (update.bundle_format = 2)",
        "grep -qx 'bundle_format = 2' /usr/lib/hearth/agent.d/90-e2e-format2.toml",
    );
    harness::agent_started_cleanly(&mut c, "v1's first boot");
    harness::unit_active(
        &mut c,
        "health gate ran and passed on a committed boot",
        "hearth-health-gate.service",
    );
    c.guest(
        "systemd-bless-boot is masked",
        r#"test "$(systemctl is-enabled systemd-bless-boot.service 2>/dev/null)" = masked"#,
    );
    let (status, d) = s.send(Method::GET, "/api/v1/update", None).await;
    c.require(
        "GET update answers 200",
        expect_status(status, 200, &d, "GET /api/v1/update"),
    );
    c.check(
        "update: configured, 1.0.0 on slot a",
        d["configured"] == true
            && d["current"]["version"] == "1.0.0"
            && d["current"]["slot"] == "a"
            && d["current"]["version_number"] == 1_000_000,
        || format!("{d}"),
    );
    c.finish();
}

#[tokio::test]
#[ignore = "needs the VM of ci/e2e-ota with v2 published"]
async fn v2_delta_commit() {
    let mut c = Checks::new();
    let mut s = logged_in(&mut c).await;
    cut_log();
    let installed = install(&mut c, &mut s).await;
    let d = installed.clone().unwrap_or(Value::Null);
    c.require("v2 installs", installed.map(|_| ()));
    // Through the bridge: the format-2 index and the format-2 bundle, nothing of format 3.
    let uris = requested();
    c.check(
        "v1 read index-v2.hidx and the format-2 bridge bundle only",
        uris.iter().any(|u| u.ends_with("/index-v2.hidx"))
            && uris
                .iter()
                .any(|u| is_bundle(u) && !u.ends_with("-v3.hota"))
            && !uris
                .iter()
                .any(|u| u.ends_with("/index-v3.hidx") || u.ends_with("-v3.hota")),
        || format!("requests: {uris:?}"),
    );
    let bundle2 = bundle_size("1.1.0", Some(2));
    let down2 = history_field(&d, "installed", "1.1.0", "downloaded_bytes");
    let reused2 = history_field(&d, "installed", "1.1.0", "reused_bytes");
    let served2 = served_bytes();
    c.note(&format!(
        "v1→v2 install: {} s; downloaded {down2} B (agent), served {served2} B (nginx), reused {reused2} B, bundle {bundle2} B",
        INSTALL_SECS.with(|t| t.get())
    ));
    c.check(
        "delta: downloaded less than half the bundle",
        served2 < bundle2 / 2,
        || format!("served {served2} B of a {bundle2} B bundle"),
    );
    c.check(
        "delta: the agent counted what it downloaded",
        down2 > 0,
        || format!("history's downloaded_bytes for 1.1.0: {down2}"),
    );
    c.check(
        "pending reboot into 1.1.0 on slot b",
        d["pending_reboot"]["version"] == "1.1.0" && d["pending_reboot"]["slot"] == "b",
        || format!("pending_reboot: {}", d["pending_reboot"]),
    );
    let secs = reboot_into_update(&mut c, &mut s, "1.1.0").await;
    c.note(&format!("reboot into v2 to agent answering: {secs} s"));
    let committed = harness::wait_json(&mut s, "/api/v1/update", secs_(900), |d| {
        d["current"]["version"] == "1.1.0"
            && d["current"]["slot"] == "b"
            && d["boot"]["primary"] == "b"
            && d["boot"]["trial"].is_null()
    })
    .await;
    let d = committed.clone().unwrap_or(Value::Null);
    c.record(
        "v2 committed by the health gate (slot b primary, no trial)",
        committed.map(|_| ()),
    );
    c.check(
        "history: 1.1.0 committed",
        has_history(&d, |h| {
            h["kind"] == "committed" && h["to_version"] == "1.1.0"
        }),
        || format!("history: {}", d["history"]),
    );
    c.guest(
        "v2's file is in the root",
        r#"grep -q "version 2" /usr/share/hearth/web/e2e-version.txt"#,
    );
    c.guest(
        "root is root-b",
        // With dm-verity `/` is /dev/mapper/hearth-root: its one underlying device must be
        // root-b (the hash tree is appended to the same partition). The initramfs makes
        // /dev/mapper/hearth-root a device node, not a link to dm-N, so the mount is found by
        // its device number (vboot4 checked this by hand in a booted guest: passes for the
        // booted slot, fails for the other).
        r#"grep -q "hearth.slot=b" /proc/cmdline && b=$(basename "$(readlink -f /dev/disk/by-partlabel/root-b)") && mm=$(findmnt -no MAJ:MIN / | tr -d ' ') && { [ "$mm" = "$(cat /sys/class/block/$b/dev)" ] || [ -e "/sys/dev/block/$mm/slaves/$b" ]; }"#,
    );
    harness::unit_active(
        &mut c,
        "health gate active on v2",
        "hearth-health-gate.service",
    );
    harness::agent_started_cleanly(&mut c, "v2's trial boot");
    c.finish();
}

#[tokio::test]
#[ignore = "needs the VM of ci/e2e-ota with the broken v3 published"]
async fn v3_rollback() {
    let mut c = Checks::new();
    let mut s = logged_in(&mut c).await;
    cut_log();
    let installed = install(&mut c, &mut s).await;
    c.require("v3 installs", installed.map(|_| ()));
    let served = served_bytes();
    c.note(&format!(
        "v2→v3 install: {} s; served {served} B of {} B",
        INSTALL_SECS.with(|t| t.get()),
        bundle_size("1.2.0", None)
    ));
    // On v2 (format 3) the device reads index-v3.hidx and its format-3 bundle.
    let uris = requested();
    c.check(
        "v2 read index-v3.hidx and the format-3 bundle",
        uris.iter().any(|u| u.ends_with("/index-v3.hidx"))
            && uris.iter().any(|u| u.ends_with("-v3.hota"))
            && !uris.iter().any(|u| u.ends_with("/index-v2.hidx")),
        || format!("requests: {uris:?}"),
    );
    // v3 is the general kind of release (files added early in the tree): its delta must stay
    // within reach of a near-optimal binary diff of the same pair (xdelta3 -9 of root, kernel
    // and initrd): issue 14 asks for at most 3×, what the device fetched from the repository
    // and what `hearth-ota delta-size` says it needs. (Format 2 paid ~34 B of signed manifest
    // per chunk, about a third of this download; format 3's pages are derived on the device.)
    let xdelta: u64 = var("HEARTH_E2E_XDELTA_V3").parse().unwrap_or(0);
    let predicted: u64 = var("HEARTH_E2E_DELTA_V3").parse().unwrap_or(0);
    let ratio = |b: u64| b as f64 / xdelta.max(1) as f64;
    c.note(&format!(
        "v2→v3 xdelta3 -9: {xdelta} B; Hearth served {served} B ({:.2}×), delta-size {predicted} B ({:.2}×)",
        ratio(served),
        ratio(predicted)
    ));
    c.check(
        "v2→v3 download (served) is at most 3× the xdelta3 patch",
        xdelta > 0 && served > 0 && served <= 3 * xdelta,
        || format!("served {served} B, xdelta3 {xdelta} B"),
    );
    c.check(
        "v2→v3 delta-size is at most 3× the xdelta3 patch",
        xdelta > 0 && predicted > 0 && predicted <= 3 * xdelta,
        || format!("delta-size {predicted} B, xdelta3 {xdelta} B"),
    );
    let t = Instant::now();
    let (status, body) = s.send(Method::POST, "/api/v1/update/reboot", None).await;
    c.status("reboot answers 202", status, 202, &body);
    harness::wait_down(secs_(300)).await;
    // The trial boot of v3 never answers (its agent unit fails); the gate reboots into v2.
    let back = harness::wait_health(secs_(1800)).await;
    c.require("back on v2 after the failed trial", back.map(|_| ()));
    c.note(&format!(
        "reboot into v3, failed gate, fallback to v2 answering: {} s",
        t.elapsed().as_secs()
    ));
    let mut s = harness::login().await.1;
    let reported = harness::wait_json(&mut s, "/api/v1/update", secs_(600), |d| {
        has_history(d, |h| {
            h["kind"] == "rolled_back"
                && h["to_version"] == "1.2.0"
                && h["reason"].as_str().is_some_and(|r| !r.is_empty())
        })
    })
    .await;
    let d = reported.clone().unwrap_or(Value::Null);
    c.record(
        "the API reports the rolled-back update (1.2.0, with a reason)",
        reported.map(|_| ()),
    );
    // With the agent broken, the reason is the gate's own verdict, not the boot loader's
    // fallback alone; with init broken (`HEARTH_E2E_V3_BREAK=init`) nothing of v3 ran, and
    // only the boot loader's counter brought the device back.
    let (name, prefix) = if std::env::var("HEARTH_E2E_V3_BREAK").as_deref() == Ok("init") {
        (
            "the boot loader's counter fell back (its reason)",
            "slot a did not come up: the boot loader returned to slot b",
        )
    } else {
        (
            "the health gate failed the trial (its reason)",
            "health check failed",
        )
    };
    c.check(
        name,
        has_history(&d, |h| {
            h["kind"] == "rolled_back"
                && h["reason"].as_str().is_some_and(|r| r.starts_with(prefix))
        }),
        || format!("history: {}", d["history"]),
    );
    c.check(
        "still 1.1.0 on slot b, committed",
        d["current"]["version"] == "1.1.0"
            && d["current"]["slot"] == "b"
            && d["boot"]["primary"] == "b"
            && d["boot"]["trial"].is_null(),
        || format!("current {}, boot {}", d["current"], d["boot"]),
    );
    let reason = d["history"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["kind"] == "rolled_back"))
        .map_or(Value::Null, |h| h["reason"].clone());
    c.note(&format!(
        "rollback reason: {}",
        reason.as_str().unwrap_or("?")
    ));
    let trial_boots = harness::serial_log()
        .lines()
        // "Kernel command line:" on every architecture (x86 prints a "Command line:" too).
        .filter(|l| l.contains("Kernel command line:") && l.contains("hearth.slot=a"))
        .count();
    c.check(
        "the serial console saw the v3 trial boot on slot a",
        trial_boots >= 2,
        || format!("{trial_boots} kernel command line(s) with hearth.slot=a in serial.log"),
    );
    c.finish();
}

#[tokio::test]
#[ignore = "needs the VM of ci/e2e-ota with v4 published; the shell cuts the power after it"]
async fn v4_power_cut() {
    let mut c = Checks::new();
    let mut s = logged_in(&mut c).await;
    let (status, body) = s.send(Method::POST, "/api/v1/update/check", None).await;
    c.check(
        "check answers 200 (v4 available)",
        status == StatusCode::OK && body["available"]["version"] == "1.3.0",
        || format!("{status} {body}"),
    );
    let (status, body) = s.send(Method::POST, "/api/v1/update/install", None).await;
    c.status("install answers 202", status, 202, &body);
    // The shell cuts the power as soon as this phase ends: when the install has written part
    // of the slot (the write phase, progress.done above 0 and below the total; the index
    // phase before it, reading the running slot, counts bytes too). An install that finished
    // before a poll saw it midway (ci/e2e-uboot's arm64 guest wrote v4, nearly all reused
    // from the slot, in 26 s) ends the wait at once, as a failed check, instead of after the
    // timeout.
    // Polled every 200 ms, not wait_json's 3 s: with the hash tree in the delta index an arm64
    // guest's write phase of v4 lasts only a few seconds (ci/e2e-uboot missed it at 3 s).
    let midway = async {
        let deadline = Instant::now() + secs_(900);
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            let (status, d) = s.send(Method::GET, "/api/v1/update", None).await;
            if status == StatusCode::OK {
                let p = &d["progress"];
                let seen = match (p["phase"].as_str(), p["done"].as_f64(), p["total"].as_f64()) {
                    (Some("write"), Some(done), Some(total)) if total > 0.0 => {
                        done > 0.0 && done < total
                    }
                    _ => d["state"] == "reboot_required",
                };
                if seen {
                    return Ok(d);
                }
            }
            last = format!("{} {d}", status.as_u16());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!(
            "no write progress within 900 s (scaled); last answer: {last}"
        ))
    }
    .await;
    match midway {
        Ok(d) if d["state"] == "reboot_required" => {
            c.record(
                "install progress seen before the power cut",
                Err("the install finished before a poll saw it midway".into()),
            );
        }
        Ok(d) => {
            // Tells the shell to cut the power (whatever the checks above said).
            std::fs::write(harness::run_dir().join("e2e-midway"), "").expect("e2e-midway");
            c.note(&format!(
                "power cut at: {} {} of {} bytes",
                d["progress"]["phase"].as_str().unwrap_or("?"),
                d["progress"]["done"],
                d["progress"]["total"]
            ));
        }
        Err(e) => {
            c.record("install progress seen before the power cut", Err(e));
        }
    }
    c.finish();
}

#[tokio::test]
#[ignore = "needs the VM of ci/e2e-ota booted again after the power cut"]
async fn v4_retry() {
    let mut c = Checks::new();
    let mut s = logged_in(&mut c).await;
    let after = harness::wait_json(&mut s, "/api/v1/update", secs_(300), |d| {
        d["current"]["version"] == "1.1.0"
            && d["current"]["slot"] == "b"
            && d["boot"]["primary"] == "b"
    })
    .await;
    let d = after.clone().unwrap_or(Value::Null);
    c.record(
        "after the power cut: still 1.1.0 on slot b",
        after.map(|_| ()),
    );
    harness::agent_started_cleanly(&mut c, "the boot after the power cut");
    c.check(
        "history: the install was interrupted",
        has_history(&d, |h| {
            h["kind"] == "interrupted" && h["to_version"] == "1.3.0"
        }),
        || format!("history: {}", d["history"]),
    );
    cut_log();
    let installed = install(&mut c, &mut s).await;
    let d = installed.clone().unwrap_or(Value::Null);
    c.require("the retry installs", installed.map(|_| ()));
    c.note(&format!(
        "v4 retry install: {} s; downloaded {} B (agent), served {} B of {} B",
        INSTALL_SECS.with(|t| t.get()),
        history_field(&d, "installed", "1.3.0", "downloaded_bytes"),
        served_bytes(),
        bundle_size("1.3.0", None)
    ));
    let secs = reboot_into_update(&mut c, &mut s, "1.3.0").await;
    c.note(&format!("reboot into v4 to agent answering: {secs} s"));
    let committed = harness::wait_json(&mut s, "/api/v1/update", secs_(900), |d| {
        d["current"]["version"] == "1.3.0"
            && d["current"]["slot"] == "a"
            && d["boot"]["primary"] == "a"
            && d["boot"]["trial"].is_null()
    })
    .await;
    c.record("v4 committed on slot a", committed.map(|_| ()));
    harness::agent_started_cleanly(&mut c, "v4's trial boot");
    c.guest(
        "v4's file is in the root",
        r#"grep -q "version 4" /usr/share/hearth/web/e2e-version.txt"#,
    );
    c.guest(
        "no failed units on v4",
        r#"test -z "$(systemctl list-units --failed --plain --no-legend)""#,
    );
    let (_, d) = s.send(Method::GET, "/api/v1/update", None).await;
    let _ = std::fs::write(
        ota_dir().join("update-final.json"),
        serde_json::to_vec_pretty(&d).unwrap_or_default(),
    );
    c.finish();
}

/// `n` seconds, times `$HEARTH_E2E_TIME_SCALE` (ci/e2e-uboot's arm64 guest under TCG is
/// slower than the x86_64 one).
fn secs_(n: u64) -> Duration {
    let scale = std::env::var("HEARTH_E2E_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    Duration::from_secs(n * scale)
}

fn ota_dir() -> PathBuf {
    PathBuf::from(var("HEARTH_E2E_OTA_DIR"))
}

fn expect_status(got: StatusCode, want: u16, body: &Value, what: &str) -> Result<(), String> {
    if got.as_u16() == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {want}, got {} with {body}",
            got.as_u16()
        ))
    }
}

/// Logs the admin in at the start of a phase (a check the phase depends on).
async fn logged_in(c: &mut Checks) -> Session {
    let (status, s) = harness::login().await;
    c.require(
        "the admin logs in",
        expect_status(status, 200, &Value::Null, "POST /api/v1/session"),
    );
    s
}

thread_local! {
    /// Seconds the last `install` took (from the check to the reboot prompt).
    static INSTALL_SECS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Check, install, wait for the reboot prompt: the update status at the prompt, or why not.
async fn install(c: &mut Checks, s: &mut Session) -> Result<Value, String> {
    let t = Instant::now();
    let (status, body) = s.send(Method::POST, "/api/v1/update/check", None).await;
    if !c.status("check answers 200", status, 200, &body) {
        return Err(format!("check answered {status}"));
    }
    let (status, body) = s.send(Method::POST, "/api/v1/update/install", None).await;
    if !c.check(
        "install answers 202 with a job id",
        status == StatusCode::ACCEPTED && body.get("job_id").is_some(),
        || format!("{status} {body}"),
    ) {
        return Err(format!("install answered {status} {body}"));
    }
    let ready = harness::wait_json(s, "/api/v1/update", secs_(1500), |d| {
        d["state"] == "reboot_required" && !d["pending_reboot"].is_null()
    })
    .await;
    c.record("install reaches reboot_required", ready.clone().map(|_| ()));
    INSTALL_SECS.with(|v| v.set(t.elapsed().as_secs()));
    ready
}

/// Reboots through the API into the installed update and waits until the agent is back;
/// returns the seconds that took and leaves `s` logged in again.
async fn reboot_into_update(c: &mut Checks, s: &mut Session, version: &str) -> u64 {
    let t = Instant::now();
    let (status, body) = s.send(Method::POST, "/api/v1/update/reboot", None).await;
    c.status("reboot answers 202", status, 202, &body);
    harness::wait_down(secs_(300)).await;
    let back = harness::wait_health(secs_(1500)).await;
    c.require(
        &format!("the agent answers after the reboot into {version}"),
        back.map(|_| ()),
    );
    let secs = t.elapsed().as_secs();
    *s = harness::login().await.1;
    secs
}

fn has_history(d: &Value, pred: impl Fn(&Value) -> bool) -> bool {
    d["history"].as_array().is_some_and(|h| h.iter().any(pred))
}

/// A field of the history entry of `kind` to `version` (0 when absent).
fn history_field(d: &Value, kind: &str, version: &str, field: &str) -> u64 {
    d["history"]
        .as_array()
        .and_then(|h| {
            h.iter()
                .find(|h| h["kind"] == kind && h["to_version"] == version)
        })
        .and_then(|h| h[field].as_u64())
        .unwrap_or(0)
}

/// Size of the release's bundle the builder wrote: the format-3 one (`hearth-V-BOARD.bundle`),
/// or with `bridge` the bridge bundle of that format (`hearth-V-BOARD.vN.bundle`).
fn bundle_size(version: &str, bridge: Option<u16>) -> u64 {
    let out = ota_dir().join("out");
    std::fs::read_dir(&out)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .find(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name
                .strip_prefix(&format!("hearth-{version}-"))
                .and_then(|n| n.strip_suffix(".bundle"))
            else {
                return false;
            };
            let format = stem
                .rsplit_once(".v")
                .and_then(|(_, f)| f.parse::<u16>().ok());
            format == bridge
        })
        .and_then(|e| e.metadata().ok())
        .map_or(0, |m| m.len())
}

/// Empties the repository's access log (nginx appends, so later requests start it again).
fn cut_log() {
    let _ = std::fs::File::create(ota_dir().join("nginx-access.log"));
}

/// The URIs requested from the repository since the log was last cut.
fn requested() -> Vec<String> {
    let log = std::fs::read_to_string(ota_dir().join("nginx-access.log")).unwrap_or_default();
    log.lines()
        .filter_map(|line| line.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

/// A bundle's URI (published bundles live under `bundles/`).
fn is_bundle(uri: &str) -> bool {
    uri.ends_with(".bundle") || uri.contains("bundles/")
}

/// Bytes the repository sent for bundle requests since the log was last cut (its lines are
/// `METHOD URI STATUS BYTES "RANGE"`).
fn served_bytes() -> u64 {
    let log = std::fs::read_to_string(ota_dir().join("nginx-access.log")).unwrap_or_default();
    log.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let uri = fields.get(1)?;
            is_bundle(uri)
                .then(|| fields.get(3)?.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}
