//! What every phase uses: the environment the shell hands over, the check tally with its
//! one-line report, the guest over SSH, and the API client (the agent tests' `Session`).

use crate::common::Session;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The admin the scenarios claim the device for.
pub const USERNAME: &str = "admin";
pub const PASSWORD: &str = "e2e-password-1234";

/// A variable the shell exports (see `ci/lib.sh`, `e2e_export`).
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the e2e scenarios run against a VM that ci/e2e or ci/e2e-ota starts"
        )
    })
}

pub fn run_dir() -> PathBuf {
    PathBuf::from(var("HEARTH_E2E_RUN_DIR"))
}

/// The tally of one phase: prints and reports `ok   NAME` or `FAIL NAME: why` per check and
/// fails the test at the end (`finish`) when any check failed.
pub struct Checks {
    report: std::fs::File,
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    pub fn new() -> Checks {
        let path = var("HEARTH_E2E_REPORT");
        let report = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open the report {path}: {e}"));
        Checks {
            report,
            passed: 0,
            failed: Vec::new(),
        }
    }

    /// A line on stdout and in the report (timings, sizes, what a check saw).
    pub fn note(&mut self, line: &str) {
        println!("{line}");
        let _ = writeln!(self.report, "{line}");
    }

    /// Records one check; returns whether it passed.
    pub fn record(&mut self, name: &str, result: Result<(), String>) -> bool {
        match result {
            Ok(()) => {
                self.passed += 1;
                self.note(&format!("ok   {name}"));
                true
            }
            Err(why) => {
                // One line per check: the reason's own line breaks would split it.
                let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
                let why: String = why.chars().take(600).collect();
                self.failed.push(name.to_string());
                self.note(&format!("FAIL {name}: {why}"));
                false
            }
        }
    }

    /// A check that passes when `ok` holds; `why` says what was seen otherwise.
    pub fn check(&mut self, name: &str, ok: bool, why: impl FnOnce() -> String) -> bool {
        self.record(name, if ok { Ok(()) } else { Err(why()) })
    }

    /// A check of an answer's status code.
    pub fn status(&mut self, name: &str, got: StatusCode, want: u16, body: &Value) -> bool {
        self.check(name, got.as_u16() == want, || {
            format!("expected {want}, got {} with {body}", got.as_u16())
        })
    }

    /// A check run in the guest: `script` (a shell command line) must exit 0.
    pub fn guest(&mut self, name: &str, script: &str) -> bool {
        let result = guest(script).and_then(|out| {
            if out.ok {
                Ok(())
            } else {
                Err(format!(
                    "in the guest `{script}` exited with {}{}",
                    out.code,
                    if out.stderr.trim().is_empty() {
                        String::new()
                    } else {
                        format!("; stderr: {}", out.stderr.trim())
                    }
                ))
            }
        });
        self.record(name, result)
    }

    /// A check the rest of the run depends on: on failure, asks the shell to stop the run
    /// (`$HEARTH_E2E_RUN_DIR/e2e-stop`) and ends this phase.
    pub fn require(&mut self, name: &str, result: Result<(), String>) {
        if !self.record(name, result) {
            let _ = std::fs::write(run_dir().join("e2e-stop"), format!("{name}\n"));
            self.finish();
        }
    }

    /// Ends the phase: fails the test when any check failed.
    pub fn finish(&mut self) {
        if !self.failed.is_empty() {
            panic!(
                "{} of {} check(s) failed: {}",
                self.failed.len(),
                self.failed.len() + self.passed,
                self.failed.join("; ")
            );
        }
    }
}

/// What a command in the guest did.
pub struct GuestOutput {
    pub ok: bool,
    pub code: String,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `script` in the guest through `$HEARTH_E2E_SSH` (an executable that runs its
/// arguments there over SSH); `Err` when SSH itself could not run.
pub fn guest(script: &str) -> Result<GuestOutput, String> {
    let ssh = var("HEARTH_E2E_SSH");
    let out = Command::new(&ssh)
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {ssh}: {e}"))?;
    if out.status.code() == Some(255) {
        return Err(format!(
            "ssh to the guest failed (255): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(GuestOutput {
        ok: out.status.success(),
        code: out
            .status
            .code()
            .map_or_else(|| "a signal".to_string(), |c| c.to_string()),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `script` in the guest for its output (reports, setup steps), whatever its status.
pub fn guest_output(script: &str) -> String {
    match guest(script) {
        Ok(out) => format!("{}{}", out.stdout, out.stderr),
        Err(e) => e,
    }
}

/// A client for the device. The device's certificate comes from its own CA, made on first
/// boot, so the client does not verify it (like `curl -k` in the scripts before). Like curl
/// in those scripts, every request opens its own connection: a pooled one left idle during a
/// long guest check can be closed by the emulated guest while the next request is already on
/// its way (seen as "peer closed connection without sending TLS close_notify" on a PATCH).
pub fn client() -> Client {
    Client::builder()
        .pool_max_idle_per_host(0)
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .build()
        .expect("reqwest client")
}

/// A session against the device (`$HEARTH_E2E_URL`), not logged in.
pub fn session() -> Session {
    Session {
        client: client(),
        base: var("HEARTH_E2E_URL"),
        cookie: None,
        device_cookie: None,
        csrf: None,
    }
}

/// `GET /api/health`: its JSON, or why there is none (the agent is not answering).
pub async fn health() -> Result<Value, String> {
    let resp = client()
        .get(format!("{}/api/health", var("HEARTH_E2E_URL")))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("GET /api/health: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("GET /api/health answered {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("GET /api/health: {e}: {text}"))
}

/// Whether QEMU (its pid file in the run folder) still runs.
pub fn qemu_alive() -> bool {
    std::fs::read_to_string(run_dir().join("qemu.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Waits until the agent answers `/api/health` (the guest booted); `Err` with the serial
/// console's last lines when it does not within `limit` or QEMU exited.
pub async fn wait_health(limit: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(body) = health().await {
            return Ok(body);
        }
        if !qemu_alive() {
            return Err(format!("QEMU exited; serial console:\n{}", serial_tail(20)));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the agent did not answer within {} s; serial console: {}",
                limit.as_secs(),
                serial_tail(10)
            ));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// Waits until the agent stops answering (the guest goes down for a reboot).
pub async fn wait_down(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if health().await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    false
}

/// The serial console (`serial.log` in the run folder) without terminal escapes.
pub fn serial_log() -> String {
    let raw = std::fs::read(run_dir().join("serial.log")).unwrap_or_default();
    let text = String::from_utf8_lossy(&raw);
    let escapes = regex::Regex::new(r"\x1b\[[0-9;?]*[a-zA-Z]").expect("regex");
    escapes.replace_all(&text, "").into_owned()
}

fn serial_tail(lines: usize) -> String {
    let log = serial_log();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last setup code the agent printed on the serial console.
pub fn setup_code() -> Option<String> {
    let re = regex::Regex::new(r"(?i)setup code: ([0-9A-Z]{4}-[0-9A-Z]{4})").expect("regex");
    re.captures_iter(&serial_log())
        .last()
        .map(|c| c[1].to_string())
}

/// Claims the device for the admin; the status, the body and the logged-in session.
pub async fn claim(code: &str) -> (StatusCode, Value, Session) {
    let mut s = session();
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/setup/claim",
            // "Ask me first": the OTA phases install each version themselves; an automatic
            // install in the default window (03:00–05:00 device time) must not race them.
            Some(
                json!({"code": code, "username": USERNAME, "password": PASSWORD,
                        "updates": {"automatic": false}}),
            ),
        )
        .await;
    (status, body, s)
}

/// Logs the admin in (a phase after the claim, or after a reboot).
pub async fn login() -> (StatusCode, Session) {
    let mut s = session();
    let (status, _) = s.login(USERNAME, PASSWORD).await;
    (status, s)
}

/// Polls `GET path` until `done` holds on its JSON; logs in again on 401 (a reboot ends the
/// session). `Ok` with the last answer, or `Err` saying what was last seen.
pub async fn wait_json(
    s: &mut Session,
    path: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if health().await.is_ok() {
            let (status, body) = s.send(Method::GET, path, None).await;
            if status == StatusCode::OK && done(&body) {
                return Ok(body);
            }
            if status == StatusCode::UNAUTHORIZED {
                *s = login().await.1;
            }
            last = format!("{} {body}", status.as_u16());
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Err(format!(
        "GET {path} did not reach the expected state within {} s; last answer: {last}",
        limit.as_secs()
    ))
}

/// A JSON value as text for a failure message (`null` when absent).
pub fn show(v: &Value) -> String {
    v.to_string()
}

/// `unit` is active once the boot's start-up jobs are done. The agent answers before the rest
/// of start-up (issue 17's boot order: the health gate, for one, runs after Docker), so the
/// check first waits for them (`is-system-running --wait`, bounded by the gate's own limit)
/// instead of reading a unit whose job is still queued.
pub fn unit_active(c: &mut Checks, name: &str, unit: &str) {
    c.guest(
        name,
        &format!(
            "timeout 1200 systemctl is-system-running --wait >/dev/null; \
             systemctl is-active --quiet {unit}"
        ),
    );
}

/// The agent started on this boot without help: no job of the boot failed, was cancelled or
/// timed out on a dependency (a `RequiresMountsFor=` mount that came late once kept the agent
/// from starting at all on busy boots), the agent was never restarted, and it is active; plus
/// a note of when it became active, in seconds after the kernel started. `when` names the boot.
pub fn agent_started_cleanly(c: &mut Checks, when: &str) {
    c.guest(
        &format!("the agent started cleanly on {when} (no failed dependency, no restart)"),
        r#"bad=$(journalctl -b --no-pager -o cat | grep -E "Dependency failed for|Timed out waiting for|Job .* (timed out|canceled)|hearth-agent\.service: (Failed|Main process exited|Scheduled restart|Job .* failed)");
           if [ -n "$bad" ]; then echo "$bad" >&2; exit 1; fi;
           test "$(systemctl show -P NRestarts hearth-agent.service)" = 0 &&
           systemctl is-active --quiet hearth-agent.service"#,
    );
    let at = guest_output(
        "echo $(( $(systemctl show -P ActiveEnterTimestampMonotonic hearth-agent.service) / 1000000 ))",
    );
    c.note(&format!(
        "agent active {} s after the kernel started ({when})",
        at.trim()
    ));
}
