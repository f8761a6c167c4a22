//! Reconcile against the real Docker Engine. In its own test binary because reconcile looks at
//! every Compose project on the engine: cargo runs test binaries one after another, so the
//! parallel lifecycle tests in `apps_docker.rs` cannot be mistaken for orphans.

use crate::apps_common;

use apps_common::*;
use hearth_agent::apps::lifecycle::Apps;
use hearth_agent::apps::record::RecordState;
use hearth_agent::events::Events;
use hearth_agent::store::Store;

#[tokio::test(flavor = "multi_thread")]
async fn reconcile_undoes_crashed_installs_reports_missing_apps_and_removes_orphans() {
    let Some(e) = env().await else { return };
    let id = unique("rec");
    let rec = e
        .apps
        .install(request(&id, webapp("1", 28400)))
        .await
        .expect("installs");
    // A second agent state whose record says the install was cut short (the agent died).
    let mut crashed = rec.clone();
    crashed.state = RecordState::Installing;
    let crash_store = Store::open(&e.device.projects_dir.join("crash-store")).expect("store");
    crash_store.put_app(&crashed).expect("put");
    let crash_apps = Apps::new(
        e.runtime.clone(),
        crash_store,
        e.device.clone(),
        Events::new(),
    );
    let report = crash_apps.reconcile().await.expect("reconciles");
    assert_eq!(report.undone_installs, std::slice::from_ref(&id));
    let o = e.runtime.project_objects(Some(&id)).await.expect("list");
    assert!(o.containers.is_empty() && o.networks.is_empty(), "{o:?}");
    assert!(crash_apps.get(&id).is_err());

    // The first agent's record now points at nothing: reconcile reports it missing.
    let report = e.apps.reconcile().await.expect("reconciles");
    assert!(report.missing.contains(&id), "{report:?}");
    e.apps.uninstall(&id, true).await.expect("uninstalls");
    assert_nothing_left(&e, &id).await;

    // Hearth-labelled objects without a record (an agent whose store lost the app) are removed.
    let id = unique("orphan");
    e.apps
        .install(request(&id, webapp("1", 28401)))
        .await
        .expect("installs");
    let empty = Store::open(&e.device.projects_dir.join("empty-store")).expect("store");
    let fresh = Apps::new(e.runtime.clone(), empty, e.device.clone(), Events::new());
    let report = fresh.reconcile().await.expect("reconciles");
    assert!(report.removed_orphans.contains(&id), "{report:?}");
    let o = e.runtime.project_objects(Some(&id)).await.expect("list");
    assert!(o.containers.is_empty() && o.networks.is_empty(), "{o:?}");
    e.apps.uninstall(&id, true).await.expect("uninstalls");
}
