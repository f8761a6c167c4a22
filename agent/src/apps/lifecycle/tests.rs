//! The lifecycle over the fake runtime: failure handling and bookkeeping, fast and exhaustive.
//! The same behaviours against the real engine are in `agent/tests/integration/apps_docker.rs`.

use super::*;
use crate::apps::runtime::fake::FakeRuntime;

const APP: &str = "name: shop\nservices:\n  db:\n    image: reg/db:1\n    volumes: [data:/var/lib/db]\n    healthcheck: {test: [CMD, true]}\n  web:\n    image: reg/web:1\n    depends_on: {db: {condition: service_healthy}}\n    ports: ['8080:80']\n    volumes: ['/DATA/AppData/$AppID/web:/data']\nvolumes:\n  data: {}\n";

struct T {
    apps: Apps,
    fake: Arc<FakeRuntime>,
    dir: tempfile::TempDir,
}

fn setup() -> T {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(FakeRuntime::new());
    for i in ["reg/db:1", "reg/web:1", "reg/web:2", "reg/web:3"] {
        fake.add_image(i);
    }
    fake.crash_image("reg/web:3");
    let store = Store::open(&dir.path().join("store")).expect("store");
    let mut device = DeviceSettings::under(dir.path());
    device.architecture = "amd64".into();
    let mut apps = Apps::new(fake.clone(), store, device, Events::new())
        .with_health_timeout(Duration::from_secs(5));
    // No real listeners in tests.
    apps.proc_net = dir.path().join("no-proc");
    T { apps, fake, dir }
}

fn req(compose: &str) -> InstallRequest {
    InstallRequest {
        app_id: None,
        compose: compose.to_string(),
        side_files: BTreeMap::new(),
        source: AppSource::Custom,
        settings: AppSettings::default(),
        consent: BTreeSet::new(),
        by: "ada".into(),
        exact_ports: false,
    }
}

fn assert_clean(t: &T) {
    assert!(
        t.fake.container_names().is_empty(),
        "{:?}",
        t.fake.container_names()
    );
    assert!(
        t.fake.network_names().is_empty(),
        "{:?}",
        t.fake.network_names()
    );
    assert!(t.apps.list().expect("list").is_empty());
    assert!(!t.apps.device.app_data_root.join("shop").exists());
    assert!(!t.apps.device.projects_dir.join("shop").exists());
}

#[tokio::test]
async fn install_creates_in_dependency_order_and_records_the_app() {
    let t = setup();
    let rec = t.apps.install(req(APP)).await.expect("installs");
    assert_eq!(rec.state, RecordState::Installed);
    let calls = t.fake.calls();
    let pos = |c: &str| {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("no {c} in {calls:?}"))
    };
    assert!(pos("create-network shop_default") < pos("create shop-db-1"));
    // Like `docker compose up`: every container is created, then they start in dependency
    // order.
    assert!(pos("create shop-web-1") < pos("start shop-db-1"));
    assert!(pos("start shop-db-1") < pos("start shop-web-1"));
    assert_eq!(t.fake.volume_names(), ["shop_data"]);
    assert!(t.dir.path().join("app-data/shop/web").is_dir());
    assert!(
        t.dir
            .path()
            .join("projects/shop/docker-compose.yml")
            .is_file()
    );
    assert_eq!(t.apps.get("shop").expect("record").image_digests.len(), 2);
}

#[tokio::test]
async fn a_failure_at_any_step_removes_everything_the_install_created() {
    for step in [
        "pull reg/web",
        "create-network",
        "create-volume",
        "create shop-web-1",
        "start shop-web-1",
        "start shop-db-1",
    ] {
        let t = setup();
        t.fake.fail_on(step);
        let err = t.apps.install(req(APP)).await.expect_err(step);
        assert!(!err.to_string().is_empty());
        assert_clean(&t);
        assert!(
            t.fake.volume_names().is_empty(),
            "{step}: {:?}",
            t.fake.volume_names()
        );
    }
}

#[tokio::test]
async fn a_crashing_container_fails_the_install_with_its_logs() {
    let t = setup();
    let err = t
        .apps
        .install(req(&APP.replace("reg/web:1", "reg/web:3")))
        .await
        .expect_err("crashes");
    let msg = err.to_string();
    assert!(
        msg.contains("service web") && msg.contains("says hello"),
        "{msg}"
    );
    assert_clean(&t);
}

#[tokio::test]
async fn findings_without_consent_refuse_before_touching_the_runtime() {
    let t = setup();
    let risky = APP.replace(
        "    ports: ['8080:80']\n",
        "    ports: ['8080:80']\n    privileged: true\n",
    );
    match t.apps.install(req(&risky)).await {
        Err(AppError::ConsentRequired(f)) => assert_eq!(f[0].id, "privileged:web"),
        other => panic!("{other:?}"),
    }
    assert!(t.fake.calls().is_empty(), "{:?}", t.fake.calls());
    let mut r = req(&risky);
    r.consent.insert("privileged:web".into());
    let rec = t.apps.install(r).await.expect("installs with consent");
    assert_eq!(rec.consents.len(), 1);
    assert_eq!(rec.consents[0].by, "ada");
    assert!(!rec.consents[0].at.is_empty());
}

#[tokio::test]
async fn engine_down_mid_install_fails_cleanly_and_reconcile_removes_leftovers() {
    let t = setup();
    t.fake.fail_on("create shop-web-1");
    // The engine "restarts": the failure above, then it is unreachable while undo runs.
    let apps = t.apps.clone();
    let fake = t.fake.clone();
    let install = tokio::spawn(async move { apps.install(req(APP)).await });
    // Bring it down right after the failure so undo cannot reach it.
    for _ in 0..200 {
        if fake.calls().iter().any(|c| c == "create shop-web-1") {
            fake.set_down(true);
            break;
        }
        tokio::task::yield_now().await;
    }
    let err = install.await.expect("join").expect_err("fails");
    assert!(!err.to_string().is_empty());
    assert!(
        t.apps.list().expect("list").is_empty(),
        "no record survives a failed install"
    );
    t.fake.set_down(false);
    let report = t.apps.reconcile().await.expect("reconciles");
    assert!(
        report.removed_orphans.is_empty() || report.removed_orphans == ["shop"],
        "{report:?}"
    );
    assert!(
        t.fake.container_names().is_empty(),
        "{:?}",
        t.fake.container_names()
    );
    assert!(
        t.fake.network_names().is_empty(),
        "{:?}",
        t.fake.network_names()
    );
}

#[tokio::test]
async fn update_rolls_back_to_the_previous_images() {
    let t = setup();
    t.apps.install(req(APP)).await.expect("installs");
    let up = UpdateRequest {
        compose: Some(APP.replace("reg/web:1", "reg/web:2")),
        by: "ada".into(),
        ..Default::default()
    };
    let rec = t.apps.update("shop", up).await.expect("updates");
    assert_eq!(rec.previous_images["web"], "sha256:reg/web:1");
    let bad = UpdateRequest {
        compose: Some(APP.replace("reg/web:1", "reg/web:3")),
        by: "ada".into(),
        ..Default::default()
    };
    assert!(matches!(
        t.apps.update("shop", bad).await,
        Err(AppError::RolledBack { .. })
    ));
    let calls = t.fake.calls();
    // The rollback re-created web from the image id it ran before the failed update.
    assert!(calls.iter().rev().any(|c| c == "create shop-web-1"));
    let rec = t.apps.get("shop").expect("record");
    assert!(rec.compose.contains("reg/web:2"));
    assert_eq!(
        rec.plan.ports[0].host_port,
        Some(8080),
        "the host port is kept"
    );
}

#[tokio::test]
async fn uninstall_keeps_data_unless_asked() {
    let t = setup();
    t.apps.install(req(APP)).await.expect("installs");
    t.apps.uninstall("shop", false).await.expect("uninstalls");
    assert!(t.fake.container_names().is_empty());
    assert_eq!(t.fake.volume_names(), ["shop_data"]);
    assert!(t.dir.path().join("app-data/shop/web").is_dir());
    // Reinstalling reuses the kept volume.
    t.apps.install(req(APP)).await.expect("reinstalls");
    t.apps
        .uninstall("shop", true)
        .await
        .expect("uninstalls with data");
    assert!(t.fake.volume_names().is_empty());
    assert_clean(&t);
}

#[tokio::test]
async fn a_second_install_of_the_same_id_is_refused() {
    let t = setup();
    t.apps.install(req(APP)).await.expect("installs");
    assert!(matches!(
        t.apps.install(req(APP)).await,
        Err(AppError::AlreadyInstalled(_))
    ));
}

#[tokio::test]
async fn a_moved_tag_is_detected_and_an_update_clears_it() {
    let t = setup();
    t.apps.install(req(APP)).await.expect("installs");
    let checks = t.apps.check_digests().await.expect("check");
    assert_eq!(checks["shop"].services, Vec::<String>::new());
    assert_eq!(checks["shop"].error, None);

    t.fake.set_registry_digest("reg/web:1", "sha256:new");
    let checks = t.apps.check_digests().await.expect("check");
    assert_eq!(checks["shop"].services, ["web"]);
    assert_eq!(t.apps.digest_check("shop"), Some(checks["shop"].clone()));

    let upd = UpdateRequest {
        by: "ada".into(),
        ..UpdateRequest::default()
    };
    let rec = t.apps.update("shop", upd).await.expect("updates");
    assert_eq!(rec.image_digests["web"], "reg/web:1@sha256:new");
    assert_eq!(t.apps.digest_check("shop"), None, "cleared by the update");
    let checks = t.apps.check_digests().await.expect("check");
    assert!(checks["shop"].services.is_empty());

    // An unreachable registry is reported, not taken as an update.
    t.fake.set_down(true);
    let checks = t.apps.check_digests().await.expect("check");
    assert!(checks["shop"].services.is_empty());
    assert!(checks["shop"].error.is_some());
    t.fake.set_down(false);

    let rec = t.apps.set_auto_update("shop", true).await.expect("flag");
    assert!(rec.auto_update && t.apps.get("shop").expect("record").auto_update);
}

/// Docker starts on demand: with no app installed the start-up reconcile does not call the
/// engine at all; the first install reconciles first, so the leftovers of an install whose
/// undo could not reach the engine are gone before the same app is installed again.
#[tokio::test]
async fn with_no_app_the_start_leaves_the_engine_alone_and_the_first_install_reconciles() {
    let t = setup();
    // Leftovers with no record, under this agent's projects folder: the same app installed
    // through a store that is gone (what an install whose undo could not reach the engine
    // leaves).
    let gone = tempfile::tempdir().expect("tempdir");
    let mut device = DeviceSettings::under(t.dir.path());
    device.architecture = "amd64".into();
    let mut other = Apps::new(
        t.fake.clone(),
        Store::open(&gone.path().join("store")).expect("store"),
        device,
        Events::new(),
    )
    .with_health_timeout(Duration::from_secs(5));
    other.proc_net = t.dir.path().join("no-proc");
    other.install(req(APP)).await.expect("installs");
    assert!(t.apps.list().expect("list").is_empty());
    assert!(!t.fake.container_names().is_empty(), "leftovers");
    // The agent starts again: no record, so no engine call.
    let calls = t.fake.calls().len();
    assert_eq!(t.apps.reconcile_at_start().await.expect("start"), None);
    assert_eq!(
        t.fake.calls().len(),
        calls,
        "{:?}",
        &t.fake.calls()[calls..]
    );
    // The first install removes the leftovers (a list of the engine's objects, then removals),
    // then installs.
    let rec = t.apps.install(req(APP)).await.expect("installs");
    assert_eq!(rec.state, RecordState::Installed);
    let after = &t.fake.calls()[calls..];
    let first_create = after
        .iter()
        .position(|c| c.starts_with("create"))
        .expect("creates");
    assert!(
        after[..first_create]
            .iter()
            .any(|c| c.starts_with("remove")),
        "{after:?}"
    );
    // Reconciled once: nothing is pending any more.
    assert!(!t.apps.deferred.load(std::sync::atomic::Ordering::SeqCst));
}

/// A container the engine keeps (Hearth's or a user's own `docker run --restart`) makes the
/// start reconcile, which starts a socket-activated engine, even with no app installed.
#[tokio::test]
async fn containers_in_the_engine_folder_make_the_start_reconcile() {
    let t = setup();
    let engine_dir = t.dir.path().join("docker-containers");
    let apps = t
        .apps
        .clone()
        .with_engine_containers_dir(engine_dir.clone());
    assert_eq!(
        apps.reconcile_at_start().await.expect("start"),
        None,
        "no folder"
    );
    std::fs::create_dir_all(&engine_dir).expect("mkdir");
    assert_eq!(
        apps.reconcile_at_start().await.expect("start"),
        None,
        "empty"
    );
    assert!(t.fake.calls().is_empty(), "{:?}", t.fake.calls());
    std::fs::create_dir_all(engine_dir.join("0123abcd")).expect("mkdir");
    let report = apps.reconcile_at_start().await.expect("start");
    assert_eq!(report, Some(ReconcileReport::default()));
    assert_eq!(t.fake.calls(), ["list *"]);
}

#[tokio::test]
async fn reconcile_leaves_another_agents_apps_alone() {
    let t = setup();
    t.apps.install(req(APP)).await.expect("installs");
    // A second agent (another data folder) on the same engine.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = Apps::new(
        t.fake.clone(),
        Store::open(&other_dir.path().join("store")).expect("store"),
        DeviceSettings::under(other_dir.path()),
        Events::new(),
    );
    let report = other.reconcile().await.expect("reconciles");
    assert_eq!(report.foreign, ["shop"]);
    assert!(report.removed_orphans.is_empty());
    assert_eq!(t.fake.container_names().len(), 2, "untouched");
}

#[tokio::test]
async fn a_bind_source_inside_another_apps_writable_folder_is_refused_and_creates_nothing() {
    let t = setup();
    let media =
        "name: media\nservices:\n  m:\n    image: reg/web:1\n    volumes: ['/DATA/Media:/media']\n";
    t.apps.install(req(media)).await.expect("installs");
    let before = t.fake.calls().len();
    let thief = "name: thief\nservices:\n  t:\n    image: reg/web:1\n    volumes: ['/DATA/Media/Movies:/movies:ro']\n";
    match t.apps.install(req(thief)).await {
        Err(AppError::Plan(PlanError::SwappableSource(s))) => {
            assert_eq!(
                (s.writer_app.as_str(), s.inner_app.as_str()),
                ("media", "thief")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.fake.calls().len(), before, "the runtime was touched");
    assert!(!t.apps.device.user_data_root.join("Media/Movies").exists());
    // The other way round: a writable parent of an installed app's source.
    let parent =
        "name: parent\nservices:\n  p:\n    image: reg/web:1\n    volumes: ['/DATA:/all']\n";
    assert!(matches!(
        t.apps.install(req(parent)).await,
        Err(AppError::Plan(PlanError::SwappableSource(_)))
    ));
}

#[tokio::test]
async fn another_apps_volume_network_and_container_are_findings_that_name_it() {
    let t = setup();
    t.apps.install(req(APP)).await.expect("installs shop");
    let thief = "name: thief\nservices:\n  t:\n    image: reg/web:1\n    volumes: [v:/v]\n    networks: [n]\n  \
                 u:\n    image: reg/web:1\n    pid: 'container:shop-db-1'\nvolumes:\n  v: {external: true, name: shop_data}\n\
                 networks:\n  n: {name: shop_default}\n";
    let findings = match t.apps.install(req(thief)).await {
        Err(AppError::ConsentRequired(f)) => f,
        other => panic!("{other:?}"),
    };
    let named: Vec<(&str, Option<&str>)> = findings
        .iter()
        .map(|f| (f.kind.as_str(), f.app.as_deref()))
        .collect();
    for want in [
        ("shared_volume", Some("shop")),
        ("shared_network", Some("shop")),
        ("shared_namespace", Some("shop")),
    ] {
        assert!(named.contains(&want), "{want:?} in {named:?}");
    }
}

#[tokio::test]
async fn reconcile_holds_an_app_without_consent_until_the_admin_consents() {
    let t = setup();
    let risky = APP.replace(
        "    ports: ['8080:80']\n",
        "    ports: ['8080:80']\n    cap_add: [NET_ADMIN]\n",
    );
    let mut r = req(&risky);
    r.consent.insert("cap_add:web:NET_ADMIN".into());
    t.apps.install(r).await.expect("installs");
    // As an older agent would have left it: no consent recorded.
    let mut rec = t.apps.get("shop").expect("record");
    rec.consents.clear();
    t.apps.store.put_app(&rec).expect("put");

    let report = t.apps.reconcile().await.expect("reconciles");
    assert_eq!(report.held, ["shop"]);
    assert!(report.healthy.is_empty());
    let calls = t.fake.calls();
    let pos = |c: &str| {
        calls
            .iter()
            .position(|x| x.starts_with(c))
            .unwrap_or_else(|| panic!("no {c} in {calls:?}"))
    };
    assert!(pos("restart-policy shop-web-1 No") < pos("stop shop-web-1"));
    assert!(pos("restart-policy shop-db-1 No") < pos("stop shop-db-1"));
    assert_eq!(t.fake.container_names().len(), 2, "nothing is removed");
    match t.apps.get("shop").expect("record").held {
        Some(Hold::Unconsented { findings, .. }) => {
            assert_eq!(findings[0].id, "cap_add:web:NET_ADMIN")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.apps.start("shop").await,
        Err(AppError::Held { .. })
    ));
    assert!(matches!(
        t.apps.restart("shop").await,
        Err(AppError::Held { .. })
    ));
    // A second reconcile keeps it held.
    assert_eq!(t.apps.reconcile().await.expect("again").held, ["shop"]);

    let rec = t
        .apps
        .update(
            "shop",
            UpdateRequest {
                compose: None,
                settings: Some(rec.settings.clone()),
                consent: ["cap_add:web:NET_ADMIN".to_string()].into(),
                by: "ada".into(),
            },
        )
        .await
        .expect("consenting re-creates it");
    assert!(rec.held.is_none());
    assert_eq!(t.apps.reconcile().await.expect("again").healthy, ["shop"]);
}

#[tokio::test]
async fn a_stored_file_the_planner_now_refuses_is_held_as_refused() {
    let t = setup();
    t.apps.install(req(APP)).await.expect("installs");
    let mut rec = t.apps.get("shop").expect("record");
    rec.compose = rec.compose.replace(
        "    image: reg/web:1\n",
        "    image: reg/web:1\n    gpu_thing: 1\n",
    );
    t.apps.store.put_app(&rec).expect("put");
    let report = t.apps.reconcile().await.expect("reconciles");
    assert_eq!(report.held, ["shop"]);
    match t.apps.get("shop").expect("record").held {
        Some(Hold::Refused { message, .. }) => assert!(message.contains("gpu_thing"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn of_two_installed_apps_that_nest_only_the_one_whose_source_could_be_swapped_is_held() {
    let t = setup();
    let media =
        "name: media\nservices:\n  m:\n    image: reg/web:1\n    volumes: ['/DATA/Media:/media']\n";
    let all = "name: all\nservices:\n  a:\n    image: reg/web:1\n    volumes: ['/DATA:/data']\n";
    t.apps.install(req(media)).await.expect("installs media");
    // Installed by an older agent that did not check across apps.
    let mut rec = t.apps.get("media").expect("record");
    t.apps.store.delete_app("media").expect("delete");
    t.apps.install(req(all)).await.expect("installs all alone");
    rec.updated_at = "older".into();
    t.apps.store.put_app(&rec).expect("put back");
    let report = t.apps.reconcile().await.expect("reconciles");
    assert_eq!(report.held, ["media"], "{report:?}");
    match t.apps.get("media").expect("record").held {
        Some(Hold::Refused { message, .. }) => assert!(message.contains("all/a"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(t.apps.get("all").expect("record").held.is_none());
}
