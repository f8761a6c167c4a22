//! The app lifecycle against the real Docker Engine (see `apps_common`). Each test uses its own
//! app ids, host ports and data root, so they run in parallel.

use crate::apps_common;

use apps_common::*;
use futures_util::StreamExt;
use hearth_agent::apps::lifecycle::{AppError, Apps, UpdateRequest};
use hearth_agent::apps::plan::AppSettings;
use hearth_agent::apps::runtime::{LogOptions, LogStream};
use hearth_agent::events::{Event, Events};
use hearth_agent::store::Store;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread")]
async fn install_open_logs_stats_stop_start_and_uninstall() {
    let Some(e) = env().await else { return };
    let id = unique("life");
    let port = 28100;
    let mut rx = e.events.subscribe();
    let rec = e
        .apps
        .install(request(&id, webapp("1", port)))
        .await
        .expect("installs");
    let ui = rec.plan.web_ui.clone().expect("web ui");
    assert_eq!(
        ui.url("hearth.local"),
        format!("http://hearth.local:{port}/version.txt")
    );
    assert_eq!(
        get(port, "/version.txt").await.trim(),
        "hearth-test-webapp v1"
    );
    assert_eq!(get(port, "/greeting.txt").await.trim(), "hello from hearth");

    // Progress events were published, pull progress among them.
    let mut phases = BTreeSet::new();
    while let Ok(ev) = rx.try_recv() {
        if let Event::AppProgress(p) = ev {
            phases.insert(p.phase.clone());
        }
    }
    assert!(
        phases.contains("pull") && phases.contains("health"),
        "{phases:?}"
    );

    // Compose labels: the runtime sees the project and both services.
    let objects = e.runtime.project_objects(Some(&id)).await.expect("list");
    let mut services: Vec<String> = objects
        .containers
        .iter()
        .map(|c| c.labels["com.docker.compose.service"].clone())
        .collect();
    services.sort();
    assert_eq!(services, ["db", "web"]);
    assert_eq!(objects.networks, [format!("{id}_default")]);
    assert!(objects.volumes.contains(&format!("{id}_cache")));
    if let Ok(out) = std::process::Command::new("docker-compose")
        .args(["-p", &id, "-f"])
        .arg(e.device.projects_dir.join(&id).join("docker-compose.yml"))
        .args(["ps", "-q"])
        .output()
    {
        let ids = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            ids.lines().count(),
            2,
            "docker-compose ps: {ids} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Logs: both streams, no follow.
    let lines: Vec<_> = e
        .apps
        .logs(
            &id,
            LogOptions {
                follow: false,
                tail: None,
            },
        )
        .expect("logs")
        .filter_map(|l| async move { l.ok() })
        .collect()
        .await;
    assert!(
        lines
            .iter()
            .any(|l| l.stream == LogStream::Stdout && l.text.contains("listening on 8080"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.stream == LogStream::Stderr && l.text.contains("stderr line from v1"))
    );

    let stats = e.apps.stats(&id).await.expect("stats");
    assert!(stats["web"].memory_bytes > 0, "{stats:?}");

    e.apps.stop(&id).await.expect("stops");
    let st = e.apps.status(&id).await.expect("status");
    assert!(
        st.iter()
            .all(|s| s.state != hearth_agent::apps::runtime::ContainerState::Running)
    );
    e.apps.start(&id).await.expect("starts");
    assert_eq!(
        get(port, "/version.txt").await.trim(),
        "hearth-test-webapp v1"
    );
    e.apps.restart(&id).await.expect("restarts");

    e.apps.uninstall(&id, true).await.expect("uninstalls");
    assert_nothing_left(&e, &id).await;
    let vols = e
        .runtime
        .project_objects(Some(&id))
        .await
        .expect("list")
        .volumes;
    assert!(vols.is_empty(), "{vols:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn update_keeps_data_and_a_broken_update_rolls_back() {
    let Some(e) = env().await else { return };
    let id = unique("upd");
    let port = 28200;
    e.apps
        .install(request(&id, webapp("1", port)))
        .await
        .expect("installs v1");
    assert_eq!(
        get(port, "/version.txt").await.trim(),
        "hearth-test-webapp v1"
    );

    let v2 = UpdateRequest {
        compose: Some(webapp("2", port)),
        by: "admin".into(),
        ..Default::default()
    };
    let rec = e.apps.update(&id, v2).await.expect("updates to v2");
    assert_eq!(
        get(port, "/version.txt").await.trim(),
        "hearth-test-webapp v2"
    );
    // The boot log in the data folder survived the re-creation.
    assert_eq!(
        get(port, "/boots.txt").await.lines().collect::<Vec<_>>(),
        ["v1", "v2"]
    );
    assert_eq!(rec.previous_images.len(), 2);

    let v3 = UpdateRequest {
        compose: Some(webapp("3", port)),
        by: "admin".into(),
        ..Default::default()
    };
    match e.apps.update(&id, v3).await {
        Err(AppError::RolledBack { reason }) => assert!(
            reason.contains("broken on purpose") || reason.contains("stopped"),
            "{reason}"
        ),
        other => panic!("v3 must roll back, got {other:?}"),
    }
    assert_eq!(
        get(port, "/version.txt").await.trim(),
        "hearth-test-webapp v2"
    );
    let rec = e.apps.get(&id).expect("record");
    assert!(
        rec.compose.contains("webapp:2"),
        "the record still describes v2"
    );
    assert!(rec.last_error.is_some());
    let boots = get(port, "/boots.txt").await;
    assert!(boots.starts_with("v1\nv2\n"), "{boots}");

    // Settings edit goes through the same path: a new greeting re-creates the container.
    let mut settings = AppSettings::default();
    settings.env.insert(
        "web".into(),
        [("GREETING".to_string(), "edited".to_string())].into(),
    );
    let edit = UpdateRequest {
        settings: Some(settings),
        by: "admin".into(),
        ..Default::default()
    };
    e.apps.update(&id, edit).await.expect("settings edit");
    assert_eq!(get(port, "/greeting.txt").await.trim(), "edited");

    e.apps.uninstall(&id, true).await.expect("uninstalls");
    assert_nothing_left(&e, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_and_leaves_nothing_behind() {
    let Some(e) = env().await else { return };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "img",
            webapp("1", 28301).replace("hearth-test/webapp:1", "hearth-test/no-such-image:1"),
            "pull",
        ),
        (
            "reg",
            webapp("1", 28302).replace("127.0.0.1:5000", "127.0.0.1:5999"),
            "pull",
        ),
        ("yaml", "services: [\n".to_string(), "YAML"),
        (
            "big",
            format!(
                "{}\n# {}",
                webapp("1", 28307),
                "x".repeat(hearth_agent::apps::compose::MAX_COMPOSE_BYTES)
            ),
            "the limit is",
        ),
        (
            "esc",
            webapp("1", 28303).replace(
                "/DATA/AppData/$AppID/web",
                "/DATA/AppData/$AppID/../../../../etc",
            ),
            "consent",
        ),
    ];
    for (name, compose, want) in cases {
        let id = unique(name);
        let err = e
            .apps
            .install(request(&id, compose))
            .await
            .expect_err(name)
            .to_string();
        assert!(
            err.to_lowercase().contains(&want.to_lowercase()),
            "{name}: {err}"
        );
        assert_nothing_left(&e, &id).await;
    }

    // Port clash with a port the user chose: refused before anything is created.
    let listener = std::net::TcpListener::bind("0.0.0.0:28304").expect("bind");
    let id = unique("port");
    let err = e
        .apps
        .install(request(&id, webapp("1", 28304)))
        .await
        .expect_err("clash");
    assert!(matches!(err, AppError::Plan(_)), "{err}");
    drop(listener);
    assert_nothing_left(&e, &id).await;

    // Name clash with a container that already exists outside Hearth.
    let id = unique("name");
    let first = e
        .apps
        .install(request(&id, webapp("1", 28305)))
        .await
        .expect("installs");
    let other_store = Store::open(&e.device.projects_dir.join("other-store")).expect("store");
    let other = Apps::new(
        e.runtime.clone(),
        other_store,
        e.device.clone(),
        Events::new(),
    );
    let err = other
        .install(request(&id, webapp("1", 28306)))
        .await
        .expect_err("name clash");
    assert!(matches!(err, AppError::NameClash(_)), "{err}");
    assert!(
        e.apps.get(&first.id).is_ok(),
        "the existing app is untouched"
    );
    e.apps.uninstall(&id, true).await.expect("uninstalls");
    assert_nothing_left(&e, &id).await;
}
