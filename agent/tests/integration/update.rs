//! Over-the-air updates through the real agent over HTTPS: real bundles made with the
//! `hearth-ota` library, a repository published with it and served by a local HTTP server
//! with Range support, file-backed slots and the `file` boot control (the main flow also on
//! the `uboot` one: U-Boot's redundant environment in a file, as `fw_env.config` locates it).
//! "Reboots" restart the agent with a kernel command line naming the booted slot, after the
//! boot loader simulator (`FileBoot::simulate_boot`, `UBootEnv::simulate_boot`: what the
//! firmware or Hearth's boot script does) has run.
#![allow(clippy::unwrap_used)]

use crate::common;

use crate::http_server;

use common::{Agent, PASSWORD, Session, error_code};
use ed25519_dalek::SigningKey;
use hearth_ota::boot::file::FileBoot;
use hearth_ota::boot::uboot::{Env, UBootEnv, encode};
use hearth_ota::boot::{BootControl, BootState, DirFs, Slot};
use hearth_ota::bundle::{BundleSpec, build};
use hearth_ota::format::Trust;
use hearth_ota::keylist::{KeyList, ReleaseKey, SignedKeyList};
use hearth_ota::release::{BootBackend, fw_env_config};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const SIZE: usize = 2 * 1024 * 1024;
const BOARD: &str = "qemu-x86_64";

struct Keys {
    release: SigningKey,
    keylist: SignedKeyList,
    trust: Trust,
    root_pub: String,
}

fn keys() -> Keys {
    let root = SigningKey::from_bytes(&[1; 32]);
    let release = SigningKey::from_bytes(&[2; 32]);
    let now = OffsetDateTime::now_utc();
    let list = KeyList {
        serial: 1,
        issued: now - time::Duration::days(200),
        keys: vec![ReleaseKey::new(
            &release.verifying_key(),
            now - time::Duration::days(200),
            now + time::Duration::days(365),
        )],
        revoked: vec![],
    };
    Keys {
        keylist: SignedKeyList::sign(&list, &root),
        trust: Trust::new(root.verifying_key()),
        root_pub: hearth_ota::keys::public_pem(&root.verifying_key()),
        release,
    }
}

/// Deterministic pseudo-random bytes.
fn image_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Rig {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    keys: Keys,
    server: http_server::Server,
    v1: Vec<u8>,
    /// What release.json names (`update_boot` is not set).
    backend: BootBackend,
}

impl Rig {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// Builds a bundle of `root` as version `1.N.0` for `board`, in format 3 (releases' format).
    fn bundle(&self, n: u64, root: &[u8], board: &str, min: u64) -> PathBuf {
        self.bundle_in(3, n, root, board, min)
    }

    /// The same in bundle format `format` (2: the bridge for devices on a format-2 release).
    fn bundle_in(&self, format: u16, n: u64, root: &[u8], board: &str, min: u64) -> PathBuf {
        let cdc = hearth_ota::manifest::CdcParams {
            min: 4096,
            avg: 16384,
            max: 65536,
        };
        let chunking = match format {
            2 => hearth_ota::manifest::Chunking::Cdc(cdc),
            _ => hearth_ota::manifest::Chunking::Paged {
                cdc,
                paging: hearth_ota::pages::Paging::DEFAULT,
            },
        };
        let img = self.path(&format!("work/root-{n}-{board}.img"));
        std::fs::write(&img, root).unwrap();
        let spec = BundleSpec {
            board: board.into(),
            arch: "x86_64".into(),
            version: format!("1.{n}.0"),
            version_number: n,
            min_version_number: min,
            created: OffsetDateTime::now_utc() - time::Duration::hours(1),
            chunking,
            payloads: vec![("root".into(), img)],
        };
        let out = self.path(&format!("work/hearth-{n}-{board}-f{format}.hota"));
        build(
            &spec,
            &self.keys.keylist,
            &self.keys.release,
            Some(&self.keys.trust.root),
            &out,
        )
        .unwrap();
        out
    }

    fn publish_at(&self, bundle: &Path, notes: &str, now: OffsetDateTime) {
        hearth_ota::repo::publish(&hearth_ota::repo::PublishRequest {
            repo: &self.path("repo"),
            channel: "stable",
            bundle,
            release_notes: notes.into(),
            valid_for: time::Duration::days(30),
            now,
            key: &self.keys.release,
            keylist: &self.keys.keylist,
            trust: &self.keys.trust,
        })
        .unwrap();
    }

    fn publish(&self, bundle: &Path, notes: &str) {
        self.publish_at(bundle, notes, OffsetDateTime::now_utc());
    }

    /// What the running image says it is, and the slot the kernel was booted from.
    fn boot_as(&self, version_number: u64, slot: Slot) {
        std::fs::write(
            self.path("release.json"),
            json!({"board": BOARD, "arch": "x86_64", "version": format!("1.{version_number}.0"),
                   "version_number": version_number, "boot": self.backend, "build_id": "test"})
            .to_string(),
        )
        .unwrap();
        std::fs::write(
            self.path("cmdline"),
            format!(
                "quiet root=PARTLABEL=root-{} hearth.slot={} ro\n",
                slot.letter(),
                slot.letter()
            ),
        )
        .unwrap();
    }

    fn boot(&self) -> Box<dyn BootControl + Send> {
        let bootctl = self.path("bootctl");
        self.backend.open(&bootctl, Some(&bootctl)).unwrap()
    }

    fn boot_state(&self) -> BootState {
        self.boot().state().unwrap()
    }

    /// A power-on: what the boot loader picks (and counts down) before the kernel starts.
    fn simulate_boot(&self) -> Option<Slot> {
        let bootctl = self.path("bootctl");
        match self.backend {
            BootBackend::File => FileBoot::new(DirFs::new(&bootctl)).simulate_boot(),
            BootBackend::UBoot => {
                UBootEnv::new(fw_env_config(&bootctl.join("fw_env.config")).unwrap())
                    .simulate_boot()
            }
            other => panic!("no simulator for {other}"),
        }
        .unwrap()
    }

    fn slot(&self, s: &str) -> Vec<u8> {
        std::fs::read(self.path(&format!("slots/root-{s}"))).unwrap()
    }

    fn served(&self) -> u64 {
        self.server.knobs.lock().unwrap().served_bytes
    }

    fn start_agent(&self) -> Agent {
        Agent::start(&self.dir)
    }

    /// Runs `hearth-agent health-gate` with the agent's configuration.
    fn gate(&self, port: u16) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_hearth-agent"))
            .args(["--dev", "--data-dir"])
            .arg(&self.dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--config-dir")
            .arg(self.path("agent.d"))
            .arg("health-gate")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }
}

/// A device running 1.1.0 from slot a; slot b holds old junk; nothing published yet.
async fn rig(extra_config: &str) -> Rig {
    rig_on(extra_config, BootBackend::File).await
}

/// [`rig`] on the boot-control `backend`, which release.json names.
async fn rig_on(extra_config: &str, backend: BootBackend) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    for d in ["work", "repo", "slots", "bootctl", "agent.d"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let keys = keys();
    std::fs::write(dir.join("ota-root.pub"), &keys.root_pub).unwrap();
    let v1 = image_bytes(SIZE, 1);
    std::fs::write(dir.join("slots/root-a"), &v1).unwrap();
    std::fs::write(dir.join("slots/root-b"), vec![7u8; SIZE / 2]).unwrap();
    match backend {
        BootBackend::File => FileBoot::new(DirFs::new(&dir.join("bootctl")))
            .initialize(Slot::A)
            .unwrap(),
        BootBackend::UBoot => {
            // As the image builder leaves it: both slots committed, a first; two 16 KiB
            // copies in one file, the second never written yet (no valid CRC).
            std::fs::write(
                dir.join("bootctl/fw_env.config"),
                "# device offset size\nuboot.env 0x0 0x4000\nuboot.env 0x4000 0x4000\n",
            )
            .unwrap();
            let env = Env::from([("BOOT_ORDER".to_string(), "A B".to_string())]);
            let mut image = encode(&env, 0x4000, 1).unwrap();
            image.resize(0x8000, 0);
            std::fs::write(dir.join("bootctl/uboot.env"), image).unwrap();
        }
        other => panic!("no rig for {other}"),
    }
    let server = http_server::start(dir.join("repo")).await;
    let config = format!(
        "update_repo_url = \"{}\"\nupdate_root_key = \"{}\"\nupdate_release_file = \"{}\"\n\
         update_slot_dir = \"{}\"\nupdate_boot_dir = \"{}\"\n\
         update_cmdline_file = \"{}\"\nupdate_health_timeout_secs = 3\n{extra_config}",
        server.base,
        dir.join("ota-root.pub").display(),
        dir.join("release.json").display(),
        dir.join("slots").display(),
        dir.join("bootctl").display(),
        dir.join("cmdline").display(),
    );
    std::fs::write(dir.join("agent.d/50-update.toml"), config).unwrap();
    let rig = Rig {
        _tmp: tmp,
        dir,
        keys,
        server,
        v1,
        backend,
    };
    rig.boot_as(1, Slot::A);
    rig
}

async fn get(s: &mut Session) -> Value {
    let (status, body) = s.send(Method::GET, "/api/v1/update", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Polls the update state until `done` holds (or fails after a minute).
async fn wait_for(s: &mut Session, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = get(s).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn job(s: &mut Session, id: &str) -> Value {
    let (status, jobs) = s.send(Method::GET, "/api/v1/jobs", None).await;
    assert_eq!(status, StatusCode::OK);
    jobs.as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_job(s: &mut Session, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = job(s, id).await;
        if j["state"] != "running" && !j.is_null() {
            return j;
        }
        assert!(Instant::now() < deadline, "job {id} still running: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs, retrying while the agent answers 409 `update_busy` (a scheduled check running).
async fn post_when_idle(s: &mut Session, path: &str) -> (StatusCode, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = s.send(Method::POST, path, None).await;
        if error_code(&body) != "update_busy" || Instant::now() >= deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check(s: &mut Session) -> (StatusCode, Value) {
    post_when_idle(s, "/api/v1/update/check").await
}

async fn install(s: &mut Session) -> String {
    let (status, body) = post_when_idle(s, "/api/v1/update/install").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["job_id"].as_str().unwrap().to_string()
}

/// Collects the `job` events of the event stream in the background.
/// Opens the event stream and returns once it is subscribed (the agent subscribes before it
/// answers the headers), then collects job events until one ends.
async fn listen_jobs(s: &Session) -> tokio::task::JoinHandle<Vec<Value>> {
    let req = s.client.get(format!("{}/api/v1/events", s.base)).header(
        "cookie",
        format!("__Host-hearth_session={}", s.cookie.clone().unwrap()),
    );
    let mut resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    tokio::spawn(async move {
        let mut text = String::new();
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok(Ok(Some(chunk))) =
                tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await
            else {
                break;
            };
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                if block.contains("event: job") {
                    let data = block
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect::<String>();
                    let v: Value = serde_json::from_str(&data).unwrap();
                    let finished = v["state"] != "running";
                    events.push(v);
                    if finished {
                        return events;
                    }
                }
            }
        }
        events
    })
}

fn history_kinds(state: &Value) -> Vec<String> {
    state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect()
}

/// No update server set (a demo image): the Updates API still says what the device runs,
/// from release.json and the kernel command line, here on a U-Boot board.
#[tokio::test]
async fn without_an_update_server_the_version_board_and_slot_still_show() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("agent.d")).unwrap();
    std::fs::write(
        dir.join("release.json"),
        json!({"board": "qemu-arm64-uboot", "arch": "arm64", "version": "2.3.4",
               "version_number": 7, "boot": "uboot", "build_id": "abc123"})
        .to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("cmdline"), "console=ttyAMA0 hearth.slot=b ro\n").unwrap();
    std::fs::write(
        dir.join("agent.d/50-update.toml"),
        format!(
            "[update]\nrelease_file = \"{}\"\ncmdline_file = \"{}\"\n",
            dir.join("release.json").display(),
            dir.join("cmdline").display()
        ),
    )
    .unwrap();
    let agent = Agent::start(dir);
    let mut admin = agent.claim().await;
    let body = get(&mut admin).await;
    assert_eq!(body["configured"], false, "{body}");
    let reason = body["not_configured_reason"].as_str().unwrap();
    assert!(reason.contains("repo_url"), "{reason}");
    assert_eq!(
        body["current"],
        json!({"version": "2.3.4", "version_number": 7, "board": "qemu-arm64-uboot",
               "arch": "arm64", "slot": "b", "build_id": "abc123"})
    );
    assert!(body["boot"].is_null(), "{body}");
}

#[tokio::test]
async fn unconfigured_updates_answer_409_and_members_get_403() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::start(tmp.path());
    let mut admin = agent.claim().await;
    let body = get(&mut admin).await;
    assert_eq!(body["configured"], false, "{body}");
    for (method, path, body) in [
        (Method::POST, "/api/v1/update/check", None),
        (Method::POST, "/api/v1/update/install", None),
        (Method::POST, "/api/v1/update/reboot", None),
        (
            Method::PATCH,
            "/api/v1/update/policy",
            Some(json!({"auto_install": true})),
        ),
    ] {
        let (status, b) = admin.send(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{method} {path}: {b}");
        assert_eq!(error_code(&b), "update_not_configured", "{b}");
    }
    // The agent runs on: other routes answer.
    let (status, _) = admin.send(Method::GET, "/api/v1/session", None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = admin
        .send(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "bob", "password": PASSWORD, "role": "member"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut bob = agent.session();
    assert_eq!(bob.login("bob", PASSWORD).await.0, StatusCode::OK);
    for (method, path) in [
        (Method::GET, "/api/v1/update"),
        (Method::POST, "/api/v1/update/check"),
        (Method::POST, "/api/v1/update/install"),
        (Method::POST, "/api/v1/update/reboot"),
        (Method::PATCH, "/api/v1/update/policy"),
    ] {
        let (status, b) = bob.send(method.clone(), path, Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_reboot_commit_then_a_failed_trial_rolls_back() {
    install_reboot_commit_then_rollback(BootBackend::File).await;
}

/// The same flow on U-Boot's environment (release.json names `uboot`): the Updates API reads
/// and drives it as it does the file backend, and U-Boot's own counter rolls a trial that
/// never comes up back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_reboot_commit_then_rollback_on_uboot() {
    install_reboot_commit_then_rollback(BootBackend::UBoot).await;
}

async fn install_reboot_commit_then_rollback(backend: BootBackend) {
    // systemd (docker.service, hearth-agent.service active) and NetworkManager (online) on a
    // private bus, for the health gate's checks.
    let bus = common::dbus_mock::private_bus().await;
    let _nm = common::nm_mock::serve_network_manager(
        &bus.address,
        common::nm_mock::MockNetworkConfig::home(),
    )
    .await;
    let rig = rig_on(&format!(
        "system_bus_address = \"{}\"\nupdate_health_units = [\"docker.service\", \"hearth-agent.service\"]\n",
        bus.address
    ), backend)
    .await;
    // 1.2.0 changes 200 KB in the middle of the root image.
    let mut v2 = rig.v1.clone();
    v2[900_000..1_100_000].copy_from_slice(&image_bytes(200_000, 2));
    let b2 = rig.bundle(2, &v2, BOARD, 1);
    let b2_size = std::fs::metadata(&b2).unwrap().len();
    rig.publish(&b2, "Faster start-up.");

    let mut agent = rig.start_agent();
    let mut admin = agent.claim().await;
    let body = get(&mut admin).await;
    assert_eq!(body["configured"], true, "{body}");
    assert_eq!(body["current"]["version"], "1.1.0");
    assert_eq!(body["current"]["slot"], "a");
    assert_eq!(body["boot"]["primary"], "a");
    assert_eq!(body["state"], "idle");
    assert_eq!(body["policy"]["channel"], "stable");

    // Check: 1.2.0 is available, with its notes.
    let (status, body) = check(&mut admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["last_check"]["result"], "available", "{body}");
    assert_eq!(body["available"]["version"], "1.2.0");
    assert_eq!(body["available"]["notes"], "Faster start-up.");
    assert_eq!(body["available"]["size"], b2_size);

    // Install, following the job on the event stream.
    let events = listen_jobs(&admin).await;
    let served_before = rig.served();
    let id = install(&mut admin).await;
    let j = wait_job(&mut admin, &id).await;
    assert_eq!(j["state"], "done", "{j}");
    let events = events.await.unwrap();
    let ours: Vec<&Value> = events.iter().filter(|e| e["id"] == id).collect();
    assert!(ours.len() >= 3, "progress events: {events:?}");
    assert_eq!(ours.last().unwrap()["state"], "done");
    assert_eq!(ours[0]["kind"], "update");

    let body = get(&mut admin).await;
    assert_eq!(body["state"], "reboot_required", "{body}");
    assert_eq!(
        body["pending_reboot"],
        json!({"version": "1.2.0", "slot": "b"})
    );
    assert_eq!(body["boot"]["trial"], json!({"slot": "b", "tries_left": 3}));
    let h = &body["history"][0];
    assert_eq!(
        (
            h["kind"].as_str(),
            h["from_version"].as_str(),
            h["to_version"].as_str()
        ),
        (Some("installed"), Some("1.1.0"), Some("1.2.0"))
    );
    // Delta: only the chunks around the changed 200 KB came over the network.
    let downloaded = h["downloaded_bytes"].as_u64().unwrap();
    let reused = h["reused_bytes"].as_u64().unwrap();
    assert!(
        (200_000..=200_000 + 2 * 65_536).contains(&downloaded),
        "{h}"
    );
    assert_eq!(downloaded + reused, SIZE as u64, "{h}");
    let served = rig.served() - served_before;
    assert!(
        served < b2_size / 4,
        "served {served} of a {b2_size}-byte bundle"
    );
    assert_eq!(rig.slot("b"), v2, "slot b holds 1.2.0");
    assert_eq!(rig.slot("a"), rig.v1, "slot a untouched");
    let st = rig.boot_state();
    assert_eq!((st.primary, st.trial), (Some(Slot::A), Some((Slot::B, 3))));

    // A second install while one waits for its reboot: nothing new to install.
    let (status, b) = admin
        .send(Method::POST, "/api/v1/update/install", None)
        .await;
    assert_eq!(
        (status, error_code(&b)),
        (StatusCode::CONFLICT, "update_not_available")
    );

    // "Reboot": the boot loader tries b; the agent comes up on 1.2.0 from slot b.
    agent.terminate();
    assert_eq!(rig.simulate_boot(), Some(Slot::B));
    rig.boot_as(2, Slot::B);
    let client = agent.client();
    agent = rig.start_agent();
    admin.client = client;
    admin.base = agent.url("");
    let body = get(&mut admin).await;
    assert_eq!(body["state"], "trial", "{body}");
    assert_eq!(body["current"]["version"], "1.2.0");
    let (status, b) = admin
        .send(Method::POST, "/api/v1/update/install", None)
        .await;
    assert_eq!(
        (status, error_code(&b)),
        (StatusCode::CONFLICT, "update_trial_pending")
    );

    // The health gate finds the agent, the units and the network up, and commits b.
    let out = rig.gate(agent.port);
    assert!(
        out.status.success(),
        "gate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let st = rig.boot_state();
    assert_eq!((st.primary, st.trial), (Some(Slot::B), None));
    let body = get(&mut admin).await;
    assert_eq!(history_kinds(&body), ["committed", "installed"], "{body}");
    assert_eq!(body["state"], "idle");
    assert_eq!(body["history"][0]["to_version"], "1.2.0");
    // Running the gate again on a committed boot is a no-op.
    assert!(rig.gate(agent.port).status.success());

    let agent = a_failed_trial_rolls_back(&rig, agent, &mut admin, &v2).await;
    if backend == BootBackend::UBoot {
        a_trial_that_never_comes_up_is_counted_down(&rig, agent, &mut admin, &v2).await;
    }
}

/// 1.4.0 goes into slot a and hangs before anything could run the gate: U-Boot's boot script
/// tries a three times (each try decrements `BOOT_A_LEFT` in the environment before booting),
/// then boots b; the agent on b reports the rollback.
async fn a_trial_that_never_comes_up_is_counted_down(
    rig: &Rig,
    mut agent: Agent,
    admin: &mut Session,
    v2: &[u8],
) {
    let mut v4 = v2.to_vec();
    v4[SIZE - 100_000..].copy_from_slice(&image_bytes(100_000, 4));
    let b4 = rig.bundle(4, &v4, BOARD, 1);
    rig.publish(&b4, "Hangs at boot.");
    let (status, body) = check(admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["available"]["version"], "1.4.0");
    let id = install(admin).await;
    assert_eq!(wait_job(admin, &id).await["state"], "done");
    assert_eq!(rig.slot("a"), v4);
    let body = get(admin).await;
    assert_eq!(body["boot"]["trial"], json!({"slot": "a", "tries_left": 3}));
    agent.terminate();
    for left in [2, 1, 0] {
        assert_eq!(rig.simulate_boot(), Some(Slot::A));
        assert_eq!(rig.boot_state().trial, Some((Slot::A, left)));
    }
    assert_eq!(rig.simulate_boot(), Some(Slot::B), "the counter ran out");
    rig.boot_as(2, Slot::B);
    agent = rig.start_agent();
    admin.client = agent.client();
    admin.base = agent.url("");
    let body = get(admin).await;
    assert_eq!(body["history"][0]["kind"], "rolled_back", "{body}");
    assert_eq!(body["history"][0]["to_version"], "1.4.0");
    assert_eq!(body["current"]["version"], "1.2.0");
    assert_eq!(body["current"]["slot"], "b");
    assert_eq!(body["boot"]["primary"], "b");
    // The spent trial leaves the boot order: no trial with 0 tries lingers.
    assert!(body["boot"]["trial"].is_null(), "{body}");
    assert!(
        !rig.boot_state().is_bootable(Slot::A),
        "{:?}",
        rig.boot_state()
    );
    assert_eq!(body["state"], "idle");
    assert!(body["pending_reboot"].is_null());
    drop(agent);
}

/// 1.3.0 is published, installed into slot a, and its trial boot is unhealthy: the agent does
/// not come up (the gate cannot reach it within its 3 s), the slot is marked bad and the device
/// falls back to 1.2.0 on b.
async fn a_failed_trial_rolls_back(
    rig: &Rig,
    mut agent: Agent,
    admin: &mut Session,
    v2: &[u8],
) -> Agent {
    let mut v3 = v2.to_vec();
    v3[..100_000].copy_from_slice(&image_bytes(100_000, 3));
    let b3 = rig.bundle(3, &v3, BOARD, 1);
    rig.publish(&b3, "Broken on purpose.");
    let (status, body) = check(admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["available"]["version"], "1.3.0");
    let id = install(admin).await;
    assert_eq!(wait_job(admin, &id).await["state"], "done");
    assert_eq!(rig.slot("a"), v3);
    assert_eq!(rig.slot("b"), v2, "the committed slot is untouched");
    agent.terminate();
    assert_eq!(rig.simulate_boot(), Some(Slot::A));
    rig.boot_as(3, Slot::A);
    let out = rig.gate(common::free_port());
    assert!(!out.status.success(), "the gate must fail");
    let st = rig.boot_state();
    assert!(!st.is_bootable(Slot::A), "trial slot marked bad: {st:?}");
    assert_eq!(st.primary, Some(Slot::B));

    // The unit reboots; the boot loader falls back to b at once.
    assert_eq!(rig.simulate_boot(), Some(Slot::B));
    rig.boot_as(2, Slot::B);
    agent = rig.start_agent();
    admin.client = agent.client();
    admin.base = agent.url("");
    let body = get(admin).await;
    assert_eq!(
        history_kinds(&body),
        ["rolled_back", "installed", "committed", "installed"],
        "{body}"
    );
    let h = &body["history"][0];
    assert_eq!(h["to_version"], "1.3.0");
    assert_eq!(h["from_version"], "1.2.0");
    let reason = h["reason"].as_str().unwrap();
    assert!(
        reason.contains("health check failed") && reason.contains("agent"),
        "{reason}"
    );
    assert_eq!(body["current"]["version"], "1.2.0");
    assert_eq!(body["state"], "idle");
    assert!(body["pending_reboot"].is_null());
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_killed_midway_is_reported_interrupted_and_resumes() {
    let rig = rig("").await;
    // 1.2.0 shares nothing with 1.1.0: every chunk must be downloaded.
    let v2 = image_bytes(SIZE, 22);
    let b2 = rig.bundle(2, &v2, BOARD, 1);
    rig.publish(&b2, "All new.");
    let mut agent = rig.start_agent();
    let mut admin = agent.claim().await;
    assert_eq!(check(&mut admin).await.0, StatusCode::OK);
    // The download stalls after 1 MiB of payload; the agent is killed while it waits.
    {
        let mut k = rig.server.knobs.lock().unwrap();
        k.stall_once_after = Some(1024 * 1024);
        // Not the small reads of the bundle's header and manifest: the payload download.
        k.stall_min_len = 1024 * 1024 + 1;
    }
    let _id = install(&mut admin).await;
    let body = wait_for(&mut admin, "the download to stall", |b| {
        b["progress"]["downloaded_bytes"].as_u64().unwrap_or(0) >= 1024 * 1024
    })
    .await;
    assert_eq!(body["state"], "downloading", "{body}");
    agent.kill9();
    assert!(
        !rig.boot_state().is_bootable(Slot::B),
        "b unbootable while written"
    );

    let client = agent.client();
    agent = rig.start_agent();
    admin.client = client;
    admin.base = agent.url("");
    let body = get(&mut admin).await;
    assert_eq!(history_kinds(&body), ["interrupted"], "{body}");
    assert_eq!(body["history"][0]["to_version"], "1.2.0");
    assert_eq!(body["history"][0]["code"], "update_interrupted");
    assert_eq!(body["state"], "idle");
    let st = rig.boot_state();
    assert_eq!(
        (st.primary, st.trial, st.bootable),
        (Some(Slot::A), None, vec![Slot::A])
    );
    assert_eq!(rig.slot("a"), rig.v1);

    // The retry finds the first megabyte in place and downloads only the rest.
    let id = install(&mut admin).await;
    assert_eq!(wait_job(&mut admin, &id).await["state"], "done");
    let body = get(&mut admin).await;
    assert_eq!(history_kinds(&body), ["installed", "interrupted"], "{body}");
    let h = &body["history"][0];
    let (downloaded, reused) = (
        h["downloaded_bytes"].as_u64().unwrap(),
        h["reused_bytes"].as_u64().unwrap(),
    );
    // All of it but the chunk (at most 64 KiB here) that straddles where the kill stopped it.
    assert!(reused >= 1024 * 1024 - 64 * 1024, "{h}");
    assert_eq!(downloaded + reused, SIZE as u64, "{h}");
    assert_eq!(rig.slot("b"), v2);
    assert_eq!(rig.boot_state().trial, Some((Slot::B, 3)));
}

/// Slot a still holds 1.1.0 and the boot state is as installed: primary a, nothing on trial.
fn slots_unchanged(rig: &Rig) {
    assert_eq!(rig.slot("a"), rig.v1, "slot a untouched");
    let st = rig.boot_state();
    assert_eq!(
        (st.primary, st.trial, st.bootable),
        (Some(Slot::A), None, vec![Slot::A])
    );
}

/// A 422 with `code` whose message says `says`.
fn refused(status: StatusCode, body: &Value, code: &str, says: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(body), code, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains(says), "{msg}");
}

/// Indexes signed by a key the root never delegated to, and by a revoked release key.
async fn foreign_and_revoked_signers_are_refused(
    rig: &Rig,
    admin: &mut Session,
    index: &Path,
    b2: &Path,
) {
    rig.publish(b2, "Real.");
    let (real, _, _) =
        hearth_ota::index::decode(&std::fs::read(index).unwrap(), &rig.keys.trust).unwrap();
    std::fs::remove_file(index).unwrap();
    let stranger = SigningKey::from_bytes(&[9; 32]);
    std::fs::write(
        index,
        hearth_ota::index::sign(&real, &rig.keys.keylist, &stranger),
    )
    .unwrap();
    let (status, body) = check(admin).await;
    refused(status, &body, "update_index_invalid", "does not contain");
    let root = SigningKey::from_bytes(&[1; 32]);
    let now = OffsetDateTime::now_utc();
    let revoking = SignedKeyList::sign(
        &KeyList {
            serial: 2,
            issued: now - time::Duration::days(1),
            keys: vec![ReleaseKey::new(
                &rig.keys.release.verifying_key(),
                now - time::Duration::days(200),
                now + time::Duration::days(365),
            )],
            revoked: vec![hearth_ota::hexutil::encode(
                rig.keys.release.verifying_key().as_bytes(),
            )],
        },
        &root,
    );
    std::fs::write(
        index,
        hearth_ota::index::sign(&real, &revoking, &rig.keys.release),
    )
    .unwrap();
    let (status, body) = check(admin).await;
    refused(status, &body, "update_index_invalid", "revoked");
    std::fs::remove_file(index).unwrap();
}

/// A device on a format-2 release (`update.bundle_format = 2`: the stand-in ci/e2e-ota boots as
/// v1) reads `index-v2.hidx` only: the first format-3 release reaches it through its format-2
/// bridge bundle, and a format-3 bundle that index named would be refused, slots untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_2_device_takes_the_bridge_bundle_and_refuses_format_3() {
    let rig = rig("[update]\nbundle_format = 2\n").await;
    let mut v2 = rig.v1.clone();
    v2[..70_000].copy_from_slice(&image_bytes(70_000, 5));
    rig.publish(&rig.bundle(2, &v2, BOARD, 1), "Paged.");
    let agent = rig.start_agent();
    let mut admin = agent.claim().await;
    // Only `index-v3.hidx` exists: not what this device reads.
    let (status, body) = check(&mut admin).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_GATEWAY, "update_repo_unreachable"),
        "{body}"
    );

    // `index-v2.hidx` naming the format-3 bundle: the check takes the index, the install
    // refuses the bundle before writing anything.
    let dir = rig.path("repo/stable").join(BOARD);
    std::fs::copy(dir.join("index-v3.hidx"), dir.join("index-v2.hidx")).unwrap();
    let (status, body) = check(&mut admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["available"]["version"], "1.2.0", "{body}");
    let id = install(&mut admin).await;
    let j = wait_job(&mut admin, &id).await;
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["error_code"], "update_bundle_invalid", "{j}");
    assert!(
        j["error"].as_str().unwrap().contains("format-3 bundle"),
        "{j}"
    );
    slots_unchanged(&rig);
    assert_eq!(rig.slot("b"), vec![7u8; SIZE / 2], "slot b not written");

    // The bridge: the same release in format 2, published after it (index-v2.hidx, the copy
    // above removed: a repository never has it).
    std::fs::remove_file(dir.join("index-v2.hidx")).unwrap();
    rig.publish(&rig.bundle_in(2, 2, &v2, BOARD, 1), "Paged (bridge).");
    let (status, body) = check(&mut admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = install(&mut admin).await;
    let j = wait_job(&mut admin, &id).await;
    assert_eq!(j["state"], "done", "{j}");
    assert_eq!(
        rig.slot("b"),
        v2,
        "slot b holds 1.2.0 from the bridge bundle"
    );
    let body = get(&mut admin).await;
    assert_eq!(
        body["pending_reboot"],
        json!({"version": "1.2.0", "slot": "b"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_indexes_and_bundles_are_refused_with_codes_and_slots_untouched() {
    let rig = rig("").await;
    let mut agent = rig.start_agent();
    let mut admin = agent.claim().await;
    let index = rig.path("repo/stable").join(BOARD).join("index-v3.hidx");

    // Nothing published: the repository has no index for this board.
    let (status, body) = check(&mut admin).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_GATEWAY, "update_repo_unreachable")
    );
    let (status, body) = admin
        .send(Method::POST, "/api/v1/update/install", None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "update_not_available")
    );

    // An index for another board, placed under this board's path.
    let mut v2 = rig.v1.clone();
    v2[..70_000].copy_from_slice(&image_bytes(70_000, 5));
    let pi = rig.bundle(2, &v2, "rpi4", 1);
    rig.publish(&pi, "For a Pi.");
    std::fs::create_dir_all(index.parent().unwrap()).unwrap();
    std::fs::copy(rig.path("repo/stable/rpi4/index-v3.hidx"), &index).unwrap();
    let (status, body) = check(&mut admin).await;
    refused(status, &body, "update_index_invalid", "rpi4");
    let state = get(&mut admin).await;
    assert_eq!(state["last_check"]["result"], "error");
    assert_eq!(state["last_check"]["error"]["code"], "update_index_invalid");
    std::fs::remove_file(&index).unwrap();

    // An expired index (published 60 days ago, valid for 30).
    let b2 = rig.bundle(2, &v2, BOARD, 1);
    rig.publish_at(
        &b2,
        "Old.",
        OffsetDateTime::now_utc() - time::Duration::days(60),
    );
    let (status, body) = check(&mut admin).await;
    refused(status, &body, "update_index_invalid", "expired");
    // A forged index (one byte of its signed body changed).
    let good = std::fs::read(&index).unwrap();
    let mut forged = good.clone();
    let n = forged.len();
    forged[n / 2] ^= 1;
    std::fs::write(&index, &forged).unwrap();
    let (status, body) = check(&mut admin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "update_index_invalid");
    std::fs::remove_file(&index).unwrap();

    foreign_and_revoked_signers_are_refused(&rig, &mut admin, &index, &b2).await;
    slots_unchanged(&rig);

    // A valid index whose bundle was tampered with after publishing: the check accepts the
    // index, the install refuses the payload.
    rig.publish(&b2, "Tampered.");
    let (status, body) = check(&mut admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let published = std::fs::read_dir(rig.path("repo/bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(&format!("-{BOARD}-2")))
        .unwrap();
    let mut bytes = std::fs::read(&published).unwrap();
    // The payload ends the bundle; flip a byte of its first chunk, which differs from slot a
    // and so is downloaded.
    let at = bytes.len() - SIZE + 100;
    bytes[at] ^= 0xff;
    std::fs::write(&published, &bytes).unwrap();
    let id = install(&mut admin).await;
    let j = wait_job(&mut admin, &id).await;
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["error_code"], "update_bundle_invalid", "{j}");
    let state = get(&mut admin).await;
    assert_eq!(state["history"][0]["kind"], "failed");
    assert_eq!(state["history"][0]["code"], "update_bundle_invalid");
    slots_unchanged(&rig);
    bytes[at] ^= 0xff;
    std::fs::write(&published, &bytes).unwrap();

    // A replayed older index (serial 2 after serial 3 was seen).
    let older = std::fs::read(&index).unwrap();
    let mut v3 = v2.clone();
    v3[..10].copy_from_slice(b"0123456789");
    let b3 = rig.bundle(3, &v3, BOARD, 1);
    rig.publish(&b3, "Newer.");
    assert_eq!(check(&mut admin).await.0, StatusCode::OK);
    let newer = std::fs::read(&index).unwrap();
    std::fs::write(&index, &older).unwrap();
    let (status, body) = check(&mut admin).await;
    refused(status, &body, "update_index_invalid", "replay");
    std::fs::write(&index, &newer).unwrap();

    // A downgrade: the device now runs 1.5.0 and the index offers 1.3.0.
    rig.publish(&rig.bundle(4, &v3, BOARD, 1), "4");
    agent.terminate();
    rig.boot_as(5, Slot::A);
    let client = agent.client();
    agent = rig.start_agent();
    admin.client = client;
    admin.base = agent.url("");
    let (status, body) = check(&mut admin).await;
    refused(status, &body, "update_index_invalid", "downgrade");
    let (status, body) = admin
        .send(Method::POST, "/api/v1/update/install", None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "update_not_available")
    );

    // Too old: 1.6.0 may only be installed from 1.6-era 5.x… from version 6 on.
    rig.boot_as(1, Slot::A);
    let b6 = rig.bundle(6, &v3, BOARD, 3);
    rig.publish(&b6, "Needs 1.3.0.");
    let (status, body) = check(&mut admin).await;
    refused(status, &body, "update_index_invalid", "at least version 3");
    slots_unchanged(&rig);
}

#[tokio::test]
async fn policy_changes_are_validated_and_kept() {
    let rig = rig("").await;
    let mut agent = rig.start_agent();
    let mut admin = agent.claim().await;
    let before = get(&mut admin).await["policy"].clone();
    assert_eq!(
        before,
        json!({"channel": "stable", "auto_install": false, "reboot": "manual",
               "maintenance_window": {"start": "03:00", "end": "05:00"}})
    );
    for bad in [
        json!({"channel": "Bad Name"}),
        json!({"channel": ""}),
        json!({"channel": "../x"}),
        json!({"maintenance_window": {"start": "25:00", "end": "05:00"}}),
        json!({"maintenance_window": {"start": "3:00", "end": "05:00"}}),
        json!({"maintenance_window": {"start": "04:00", "end": "04:00"}}),
        json!({"maintenance_window": {"start": "04:00"}}),
        json!({"reboot": "sometimes"}),
        json!({"auto_install": "yes"}),
        json!({"colour": "red"}),
        json!({"pause_days": 91}),
        json!({"pause_days": -1}),
        // A valid field does not slip through next to an invalid one.
        json!({"auto_install": true, "channel": "NO"}),
    ] {
        let (status, body) = admin
            .send(Method::PATCH, "/api/v1/update/policy", Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(error_code(&body), "invalid_input", "{body}");
    }
    assert_eq!(get(&mut admin).await["policy"], before, "nothing changed");

    let (status, body) = admin
        .send(
            Method::PATCH,
            "/api/v1/update/policy",
            Some(
                json!({"channel": "beta", "auto_install": true, "reboot": "maintenance_window",
                        "maintenance_window": {"start": "23:30", "end": "01:00"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let want = json!({"channel": "beta", "auto_install": true, "reboot": "maintenance_window",
                      "maintenance_window": {"start": "23:30", "end": "01:00"}});
    assert_eq!(body["policy"], want);
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/api/v1/update/policy",
            Some(json!({"reboot": "immediately"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["policy"]["channel"], "beta",
        "a partial patch keeps the rest"
    );
    // The escape hatch: a pause of N days, and resuming.
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/api/v1/update/policy",
            Some(json!({"pause_days": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let until = body["policy"]["paused_until"]
        .as_str()
        .expect("paused_until");
    let until = time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let days = (until - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((6 * 24..=7 * 24).contains(&days), "{days} h");
    assert_eq!(
        body["policy"]["auto_install"], true,
        "a pause keeps the policy"
    );
    agent.restart();
    admin.client = agent.client();
    admin.base = agent.url("");
    let body = get(&mut admin).await;
    assert_eq!(body["policy"]["reboot"], "immediately");
    assert_eq!(body["policy"]["maintenance_window"]["start"], "23:30");
    assert!(
        body["policy"]["paused_until"].is_string(),
        "the pause survives a restart"
    );
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/api/v1/update/policy",
            Some(json!({"pause_days": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["policy"].get("paused_until").is_none(), "{body}");
}

fn hhmm(minutes: i64) -> String {
    let m = minutes.rem_euclid(24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Local minutes since midnight, as the agent reads them.
fn local_minutes() -> i64 {
    let out = std::process::Command::new("date")
        .arg("+%H:%M")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (h, m) = text.trim().split_once(':').unwrap();
    h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboots_go_through_logind_and_the_window_installs_by_itself() {
    let bus = common::dbus_mock::private_bus().await;
    let rig = rig(&format!(
        "system_bus_address = \"{}\"\nupdate_check_secs = 1\nupdate_health_units = []\n\
         update_health_network = false\n",
        bus.address
    ))
    .await;
    let reboots = || {
        bus.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.starts_with("reboot"))
            .count()
    };
    let mut v2 = rig.v1.clone();
    v2[..1000].copy_from_slice(&image_bytes(1000, 9));
    rig.publish(&rig.bundle(2, &v2, BOARD, 1), "Two.");
    let mut agent = rig.start_agent();
    let mut admin = agent.claim().await;

    // Nothing installed: nothing to reboot into.
    let (status, body) = admin
        .send(Method::POST, "/api/v1/update/reboot", None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "update_no_pending_reboot")
    );

    // Manual policy: install, then the admin's reboot goes to logind.
    assert_eq!(check(&mut admin).await.0, StatusCode::OK);
    let id = install(&mut admin).await;
    assert_eq!(wait_job(&mut admin, &id).await["state"], "done");
    assert_eq!(reboots(), 0, "manual policy: no reboot by itself");
    let (status, body) = admin
        .send(Method::POST, "/api/v1/update/reboot", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(reboots(), 1);

    // The window policy reboots into the waiting 1.2.0 by itself, inside the window.
    let now = local_minutes();
    let window = json!({"start": hhmm(now - 10), "end": hhmm(now + 10)});
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/api/v1/update/policy",
            Some(json!({"reboot": "maintenance_window", "maintenance_window": window})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while reboots() < 2 {
        assert!(Instant::now() < deadline, "no reboot in the window");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The device comes back on 1.2.0 from slot b; the gate (agent check only here) commits.
    agent.terminate();
    assert_eq!(rig.simulate_boot(), Some(Slot::B));
    rig.boot_as(2, Slot::B);
    agent = rig.start_agent();
    admin.client = agent.client();
    admin.base = agent.url("");
    let out = rig.gate(agent.port);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&mut admin).await["history"][0]["kind"], "committed");

    // Automatic install in the open window: the agent checks (every second here), finds
    // 1.3.0, installs it into slot a and reboots.
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/api/v1/update/policy",
            Some(json!({"auto_install": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = reboots();
    let mut v3 = v2.clone();
    v3[5000..6000].copy_from_slice(&image_bytes(1000, 10));
    rig.publish(&rig.bundle(3, &v3, BOARD, 1), "Three.");
    // The trial is set (pending_reboot) a moment before the job records the install and ends:
    // wait for the end of the job, not only for the boot loader's state.
    let body = wait_for(&mut admin, "the automatic install", |b| {
        b["pending_reboot"]["version"] == "1.3.0" && b["state"] != "installing"
    })
    .await;
    assert_eq!(body["history"][0]["to_version"], "1.3.0", "{body}");
    assert_eq!(rig.slot("a"), v3);
    let deadline = Instant::now() + Duration::from_secs(90);
    while reboots() <= before {
        assert!(
            Instant::now() < deadline,
            "no reboot after the automatic install"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
