//! App isolation against the real Docker Engine: what a container can do to its bind sources
//! from inside, what happens when one is swapped while the app is stopped, that a refused plan
//! creates nothing, and that an installed app the policy no longer allows is held stopped.
//!
//! "Host root visible" is tested with a marker file in this test's temporary folder: a
//! container that had the host's `/` at `/data` would see it at `/data<marker path>`.

use crate::apps_common;

use apps_common::*;
use hearth_agent::apps::lifecycle::{AppError, UpdateRequest};
use hearth_agent::apps::record::Hold;
use hearth_agent::apps::runtime::ContainerState;

/// The app (`./:/app` beside `./data:/data`, restart policy `always`). The swapper tries
/// every way to turn `data` into the host's root from inside (through `/app/data`, pinned by the
/// planner, and `/data` itself), then exits
/// so Docker's restart policy starts it again (Docker re-resolves bind sources at that start);
/// the second run reports what `/data` is. A second service shares a user folder in which the
/// swapper plants a link to `/`, and reports what that link shows it.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_cannot_turn_its_bind_sources_into_the_host_root() {
    let Some(e) = env().await else { return };
    let id = unique("swap");
    let m = marker(&e);
    let swapper = swapper_script(true);
    let reader = "while true; do \
          if [ -e \"/share/escape$MARKER\" ]; then echo HOSTROOT; else echo SAFE; fi > /rstate/tmp; \
          [ -L /share/escape ] && mv /rstate/tmp /rstate/result; sleep 0.5; done";
    let compose = format!(
        "services:\n{}{}",
        service(
            "swapper",
            &swapper,
            &[
                "./:/app",
                "./data:/data",
                "./state:/state",
                "/DATA/Shared:/share"
            ],
            &m
        ),
        service(
            "reader",
            reader,
            &["/DATA/Shared:/share:ro", "./rstate:/rstate"],
            &m
        ),
    );
    e.apps
        .install(request(&id, compose))
        .await
        .expect("installs");
    let app_dir = e.device.app_data_root.join(&id);
    // The restart policy ran the swapper a second time, after its swap attempt.
    let result = wait_file(&app_dir.join("state/result"), "swapper's second run").await;
    let runs = std::fs::read_to_string(app_dir.join("state/runs")).expect("runs");
    assert!(runs.trim().parse::<u32>().expect("count") >= 2, "{runs}");
    assert_eq!(result, "SAFE", "the swapper saw the host's root at /data");
    assert!(
        std::fs::symlink_metadata(app_dir.join("data"))
            .expect("data")
            .is_dir(),
        "the host folder was replaced"
    );
    let reader = wait_file(&app_dir.join("rstate/result"), "reader").await;
    assert_eq!(
        reader, "SAFE",
        "the shared folder's link reached the host's root"
    );
    e.apps.uninstall(&id, true).await.expect("uninstalls");
    assert_nothing_left(&e, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bind_source_replaced_while_the_app_is_stopped_is_refused_at_start() {
    let Some(e) = env().await else { return };
    let id = unique("stopped");
    let m = marker(&e);
    let script = "if [ -e \"/data$MARKER\" ]; then echo HOSTROOT; else echo SAFE; fi > /state/seen; \
                  exec sleep 3600";
    let compose = format!(
        "services:\n{}",
        service("app", script, &["./data:/data", "./state:/state"], &m)
            .replace("restart: always", "restart: unless-stopped")
    );
    e.apps
        .install(request(&id, compose))
        .await
        .expect("installs");
    let app_dir = e.device.app_data_root.join(&id);
    assert_eq!(
        wait_file(&app_dir.join("state/seen"), "first run").await,
        "SAFE"
    );
    e.apps.stop(&id).await.expect("stops");
    std::fs::remove_file(app_dir.join("state/seen")).expect("rm");
    // Someone with access to the host folder swaps the source while the app is stopped.
    std::fs::rename(app_dir.join("data"), app_dir.join("data.real")).expect("mv");
    std::os::unix::fs::symlink("/", app_dir.join("data")).expect("swap");
    for r in [e.apps.start(&id).await, e.apps.restart(&id).await] {
        let err = r.expect_err("a swapped source is not started");
        assert!(
            matches!(err, AppError::Host(_)) && err.to_string().contains("symlink"),
            "{err}"
        );
    }
    let st = e.apps.status(&id).await.expect("status");
    assert!(
        st.iter().all(|s| s.state != ContainerState::Running),
        "{st:?}"
    );
    assert!(!app_dir.join("state/seen").exists(), "the container ran");
    // Put back, it starts again.
    std::fs::remove_file(app_dir.join("data")).expect("rm link");
    std::fs::rename(app_dir.join("data.real"), app_dir.join("data")).expect("mv back");
    e.apps.start(&id).await.expect("starts");
    assert_eq!(
        wait_file(&app_dir.join("state/seen"), "second run").await,
        "SAFE"
    );
    e.apps.uninstall(&id, true).await.expect("uninstalls");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_plan_creates_no_folder_volume_network_or_container() {
    let Some(e) = env().await else { return };
    let id = unique("refused");
    // A key Hearth does not carry out, another container's volumes, and a host-root volume
    // without consent; each beside a network and a folder the plan would create.
    for (bad, what) in [
        ("    use_api_socket: true\n", "use_api_socket"),
        (
            "    volumes_from: [\"container:elsewhere\"]\n",
            "volumes_from",
        ),
    ] {
        let compose = format!(
            "services:\n  a:\n    image: {SWAP_IMAGE}\n    volumes: [\"./data:/data\"]\n    \
             networks: [n]\n{bad}networks:\n  n: {{}}\n"
        );
        let err = e
            .apps
            .install(request(&id, compose))
            .await
            .expect_err("refused");
        assert!(
            matches!(err, AppError::Plan(_)) && err.to_string().contains(what),
            "{err}"
        );
    }
    let root = format!(
        "services:\n  a:\n    image: {SWAP_IMAGE}\n    volumes: [root:/host]\nvolumes:\n  root:\n    \
         driver_opts: {{type: none, o: bind, device: /}}\n"
    );
    let err = e
        .apps
        .install(request(&id, root))
        .await
        .expect_err("needs consent");
    match err {
        AppError::ConsentRequired(f) => {
            assert!(
                f.iter()
                    .any(|f| f.kind.as_str() == "host_path" && f.subject == "/")
            )
        }
        other => panic!("{other}"),
    }
    assert_nothing_left(&e, &id).await;
    let o = e.runtime.project_objects(Some(&id)).await.expect("list");
    assert!(o.volumes.is_empty(), "{o:?}");
    assert!(
        !e.runtime
            .volume_exists(&format!("{id}_root"))
            .await
            .expect("volume"),
        "a volume was created"
    );
    assert!(
        !e.device.projects_dir.join(&id).exists(),
        "a project folder was created"
    );
}

/// An agent upgrade whose policy finds something the admin never consented to: the app is
/// held stopped (restart policy `no`, so Docker does not start it either), start is refused
/// with the findings, and consenting (an update with the consent) runs it again.
#[tokio::test(flavor = "multi_thread")]
async fn an_installed_app_the_policy_no_longer_allows_is_held_until_consent() {
    let Some(e) = env().await else { return };
    let id = unique("held");
    let mut req = request(&id, webapp("1", 28410));
    req.compose = req.compose.replace(
        "    init: true\n",
        "    init: true\n    cap_add: [NET_ADMIN]\n",
    );
    req.consent = ["cap_add:web:NET_ADMIN".to_string()].into();
    e.apps.install(req).await.expect("installs");
    // An older agent recorded no such consent.
    let mut r = e.apps.get(&id).expect("record");
    r.consents.clear();
    e.store.put_app(&r).expect("put");

    let report = e.apps.reconcile().await.expect("reconciles");
    assert!(report.held.contains(&id), "{report:?}");
    let r = e.apps.get(&id).expect("record");
    match &r.held {
        Some(Hold::Unconsented { findings, .. }) => {
            assert_eq!(findings[0].id, "cap_add:web:NET_ADMIN")
        }
        other => panic!("{other:?}"),
    }
    let st = e.apps.status(&id).await.expect("status");
    assert!(
        st.iter().all(|s| s.state != ContainerState::Running),
        "{st:?}"
    );
    for c in &r.plan.containers {
        let out = std::process::Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.HostConfig.RestartPolicy.Name}}",
                &c.name,
            ])
            .output()
            .expect("docker inspect");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "no",
            "{}",
            c.name
        );
    }
    let err = e.apps.start(&id).await.expect_err("held");
    assert!(matches!(err, AppError::Held { .. }), "{err}");

    let r = e
        .apps
        .update(
            &id,
            UpdateRequest {
                compose: None,
                settings: Some(r.settings.clone()),
                consent: ["cap_add:web:NET_ADMIN".to_string()].into(),
                by: "admin".into(),
            },
        )
        .await
        .expect("consenting runs it");
    assert!(r.held.is_none());
    assert_eq!(
        get(28410, "/version.txt").await.trim(),
        "hearth-test-webapp v1"
    );
    e.apps.uninstall(&id, true).await.expect("uninstalls");
}
