//! `ci/demo --check`: what a user of the update demo does, through the API the dashboard
//! uses, against the demo's VM (v1 booted, v2 published in the repository on the host):
//! claim with the setup code the console printed, open Updates (the device's version),
//! Check now (v2 available), Install (progress while it downloads and writes), Reboot now,
//! the trial boot of v2 committed by the health gate, and the banner's notice "installed v2".
//!
//! Reads `$HEARTH_DEMO_V1` and `$HEARTH_DEMO_V2` (the two versions `ci/demo` built). No
//! guest checks: the demo's image has no SSH (it is the image a user boots).

use crate::common::Session;
use crate::harness::{self, Checks, var};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::cell::RefCell;
use std::time::{Duration, Instant};

#[tokio::test]
#[ignore = "needs the VM and the repository of ci/demo --check"]
async fn update_to_v2() {
    let mut c = Checks::new();
    let (v1, v2) = (var("HEARTH_DEMO_V1"), var("HEARTH_DEMO_V2"));

    // The dashboard the user opens.
    let page = harness::client()
        .get(format!("{}/", var("HEARTH_E2E_URL")))
        .send()
        .await;
    let page = match page {
        Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    c.check(
        "the dashboard's page answers 200 with HTML",
        page.0 == StatusCode::OK && page.1.to_ascii_lowercase().contains("<html"),
        || {
            format!(
                "{} {}",
                page.0,
                page.1.chars().take(200).collect::<String>()
            )
        },
    );

    // Claim with the setup code ci/demo printed (the last one on the serial console).
    let code = harness::setup_code();
    c.require(
        "a setup code on the serial console",
        code.as_ref()
            .map(|_| ())
            .ok_or_else(|| "no `setup code: XXXX-XXXX` line in serial.log".into()),
    );
    let (status, body, mut s) = harness::claim(&code.unwrap_or_default()).await;
    c.require(
        "claim with the printed setup code answers 201",
        expect(status, 201, &body, "POST /api/v1/setup/claim"),
    );

    // Updates: the device's version and its update server.
    let (status, d) = s.send(Method::GET, "/api/v1/update", None).await;
    c.require(
        "GET update answers 200",
        expect(status, 200, &d, "GET /api/v1/update"),
    );
    c.check(
        &format!("Updates shows {v1} on slot a, an update server configured"),
        d["configured"] == true && d["current"]["version"] == v1 && d["current"]["slot"] == "a",
        || format!("configured {}, current {}", d["configured"], d["current"]),
    );

    // Check now.
    let t_update = Instant::now();
    let (status, d) = s.send(Method::POST, "/api/v1/update/check", None).await;
    c.require(
        &format!("Check now answers 200 with {v2} available"),
        if status == StatusCode::OK && d["available"]["version"] == v2 {
            Ok(())
        } else {
            Err(format!("{status} {d}"))
        },
    );

    install(&mut c, &mut s, &v2).await;

    // Reboot now: the trial boot of v2, the health gate, the commit.
    let t = Instant::now();
    let (status, body) = s.send(Method::POST, "/api/v1/update/reboot", None).await;
    c.status("Reboot now answers 202", status, 202, &body);
    let went_down = harness::wait_down(secs(300)).await;
    c.check("the device goes down for its reboot", went_down, || {
        "the agent still answered 300 s after the reboot request".into()
    });
    let back = harness::wait_health(secs(1500)).await;
    c.require(
        &format!("the agent answers after the reboot into {v2}"),
        back.map(|_| ()),
    );
    c.note(&format!(
        "reboot into {v2} to the agent answering: {} s",
        t.elapsed().as_secs()
    ));
    s = harness::login().await.1;
    let committed = harness::wait_json(&mut s, "/api/v1/update", secs(900), |d| {
        d["current"]["version"] == v2
            && d["current"]["slot"] == "b"
            && d["boot"]["primary"] == "b"
            && d["boot"]["trial"].is_null()
    })
    .await;
    let d = committed.clone().unwrap_or(Value::Null);
    c.record(
        &format!("the device reports {v2} on slot b, committed (no trial left)"),
        committed.map(|_| ()),
    );
    c.note(&format!(
        "update to committed (Check now to the commit): {} s",
        t_update.elapsed().as_secs()
    ));
    c.check(
        &format!("history: {v2} committed"),
        history(&d)
            .iter()
            .any(|h| h["kind"] == "committed" && h["to_version"] == v2),
        || format!("history: {}", d["history"]),
    );
    c.check(
        &format!("the banner's notice: {v2} committed"),
        d["notice"]["kind"] == "committed" && d["notice"]["to_version"] == v2,
        || format!("notice: {}", d["notice"]),
    );
    let (status, d) = s.send(Method::POST, "/api/v1/update/check", None).await;
    c.check(
        &format!("Check now on {v2}: nothing newer"),
        status == StatusCode::OK && d["available"].is_null(),
        || format!("{status} {d}"),
    );
    c.finish();
}

/// Install: progress while it runs, then the restart prompt for `v2` on slot b.
async fn install(c: &mut Checks, s: &mut Session, v2: &str) {
    let t = Instant::now();
    let (status, d) = s.send(Method::POST, "/api/v1/update/install", None).await;
    c.require(
        "Install answers 202 with a job id",
        if status == StatusCode::ACCEPTED && d.get("job_id").is_some() {
            Ok(())
        } else {
            Err(format!("{status} {d}"))
        },
    );
    // What the dashboard's progress bar showed: per state and phase, the polls and the last
    // `done of total`.
    let progress = RefCell::new(Vec::<(String, usize, String)>::new());
    let ready = harness::wait_json(s, "/api/v1/update", secs(1500), |d| {
        let p = &d["progress"];
        if p["total"].as_u64().is_some_and(|t| t > 0) {
            let label = format!(
                "{} {}",
                d["state"].as_str().unwrap_or("?"),
                p["phase"].as_str().unwrap_or("?")
            );
            let at = format!("{} of {}", p["done"], p["total"]);
            let mut seen = progress.borrow_mut();
            match seen.last_mut() {
                Some(last) if last.0 == label => (last.1, last.2) = (last.1 + 1, at),
                _ => seen.push((label, 1, at)),
            }
        }
        d["state"] == "reboot_required" && d["pending_reboot"]["version"] == v2
    })
    .await;
    let install_secs = t.elapsed().as_secs();
    let d = ready.clone().unwrap_or(Value::Null);
    c.require(
        &format!("the install reaches the reboot prompt for {v2}"),
        ready.map(|_| ()),
    );
    let progress = progress.into_inner();
    c.note(&format!(
        "install (Install to the reboot prompt): {install_secs} s; progress seen: {}",
        progress
            .iter()
            .map(|(label, polls, at)| format!("{label} ({polls} polls, last {at})"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    c.check(
        "the install reported its progress (done of total) while it ran",
        !progress.is_empty(),
        || "no GET /api/v1/update answer with progress.total > 0 during the install".into(),
    );
    c.check(
        &format!("{v2} waits for its reboot on slot b"),
        d["pending_reboot"]["slot"] == "b",
        || format!("pending_reboot: {}", d["pending_reboot"]),
    );
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn history(d: &Value) -> Vec<Value> {
    d["history"].as_array().cloned().unwrap_or_default()
}

fn expect(got: StatusCode, want: u16, body: &Value, what: &str) -> Result<(), String> {
    if got.as_u16() == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {want}, got {} with {body}",
            got.as_u16()
        ))
    }
}
