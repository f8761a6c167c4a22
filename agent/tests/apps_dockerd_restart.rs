//! The Docker daemon restarted, on the real engine: underneath an install (the install fails
//! cleanly and a reconcile leaves no orphans: no containers, networks, folders or records), and
//! after a container tried to swap its bind sources (Docker starts the app again by itself, with
//! no check by Hearth, and the container still cannot see the host's root).
//!
//! In its own test binary because it stops the shared `dockerd` (cargo runs test binaries one
//! after another, so no other Docker test runs meanwhile); its tests take turns (`SERIAL`).

#[path = "integration/apps_common/mod.rs"]
mod apps_common;

use apps_common::{
    assert_nothing_left, env, marker, request, service, swapper_script, unique, wait_file, webapp,
};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One daemon restart at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn dockerd_pids() -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-x", "dockerd"])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Restarts the Docker daemon the way it was started (systemd, or `ci/apps-deps`' background
/// process) and returns once it is gone; the caller waits for it to answer again.
fn restart_dockerd() {
    if std::path::Path::new("/run/systemd/system").is_dir() {
        let ok = Command::new("systemctl")
            .args(["restart", "docker"])
            .status()
            .expect("systemctl")
            .success();
        assert!(ok, "systemctl restart docker failed");
        return;
    }
    let pids = dockerd_pids();
    assert!(!pids.is_empty(), "no dockerd process to restart");
    for pid in &pids {
        Command::new("kill")
            .args(["-TERM", pid])
            .status()
            .expect("kill");
    }
    // Polled with a deadline: dockerd is not our child, so nothing tells us when it is gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dockerd_pids().is_empty() {
        assert!(Instant::now() < deadline, "dockerd did not stop in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::File::create(std::env::temp_dir().join("hearth-test-dockerd.log"))
        .expect("dockerd log");
    // `setsid --fork` starts dockerd in its own session and returns at once (no zombie).
    let started = Command::new("setsid")
        .args([
            "--fork",
            "nohup",
            "dockerd",
            "--containerd=/run/containerd/containerd.sock",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .status()
        .expect("start dockerd");
    assert!(started.success(), "setsid dockerd failed: {started}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_restarted_during_an_install_fails_cleanly_and_reconcile_leaves_no_orphans() {
    let _turn = SERIAL.lock().await;
    let Some(e) = env().await else { return };
    let id = unique("dockerd-restart");
    // `db` never becomes healthy, so the install is still waiting when the daemon goes away.
    let compose = webapp("1", 28391).replacen(
        "    stop_grace_period: 2s\n",
        "    stop_grace_period: 2s\n    healthcheck:\n      test: [\"CMD\", \"false\"]\n      interval: 1s\n",
        1,
    );
    assert!(compose.contains("\"false\""), "fixture changed");

    let apps = e.apps.clone();
    let req = request(&id, compose);
    let install = tokio::spawn(async move { apps.install(req).await });

    // Wait until the install created its containers, then restart the daemon. Polled with a
    // deadline: the install announces a container only before creating it, and then waits for
    // `db` to become healthy before it creates `web` (no "health" phase event comes).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = e.runtime.project_objects(Some(&id)).await.expect("list");
        if !o.containers.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the install created no container"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::spawn_blocking(restart_dockerd)
        .await
        .expect("restart");

    let outcome = install.await.expect("install task");
    assert!(
        outcome.is_err(),
        "an install whose engine went away must fail: {outcome:?}"
    );

    // The daemon answers again (it restarts `unless-stopped` containers by itself).
    wait_for_engine(&e).await;

    e.apps.reconcile().await.expect("reconciles");
    assert_nothing_left(&e, &id).await;
}

/// Polled with a deadline: a restarted engine announces nothing until it answers.
async fn wait_for_engine(e: &apps_common::Env) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while e.runtime.ping().await.is_err() {
        assert!(Instant::now() < deadline, "dockerd did not come back");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The swap (`./:/app` beside `./data:/data`, restart policy `always`), then the daemon
/// restarted: Docker itself starts the container again and re-resolves its bind sources, with no
/// check by Hearth in between. That run must see a plain folder at `/data`, never the host's root.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_swap_attempt_and_a_dockerd_restart_the_container_cannot_see_the_host_root() {
    let _turn = SERIAL.lock().await;
    let Some(e) = env().await else { return };
    let id = unique("swap-dockerd");
    let m = marker(&e);
    let compose = format!(
        "services:\n{}",
        service(
            "swapper",
            &swapper_script(false),
            &[
                "./:/app",
                "./data:/data",
                "./state:/state",
                "/DATA/Shared:/share"
            ],
            &m
        )
    );
    e.apps
        .install(request(&id, compose))
        .await
        .expect("installs");
    let app_dir = e.device.app_data_root.join(&id);
    wait_file(&app_dir.join("state/attempted"), "the swap attempt").await;
    assert!(
        !app_dir.join("state/result").exists(),
        "the swapper ran twice before the daemon restart"
    );

    tokio::task::spawn_blocking(restart_dockerd)
        .await
        .expect("restart");
    wait_for_engine(&e).await;

    let result = wait_file(&app_dir.join("state/result"), "the run after the restart").await;
    let runs = std::fs::read_to_string(app_dir.join("state/runs")).expect("runs");
    assert_eq!(runs.trim(), "2", "Docker did not start the app again");
    assert_eq!(
        result, "SAFE",
        "after the restart /data was the host's root"
    );
    let data = std::fs::symlink_metadata(app_dir.join("data")).expect("data");
    assert!(data.is_dir(), "the host folder was replaced: {data:?}");
    e.apps.uninstall(&id, true).await.expect("uninstalls");
    assert_nothing_left(&e, &id).await;
}
