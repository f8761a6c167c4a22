//! Side-by-side install time: Hearth's lifecycle vs `docker-compose up -d --wait` (compose v2,
//! which waits for running and healthy containers as Hearth does) on the same compose file
//! (images already pulled for both, so this measures Hearth's own overhead; runs alternate,
//! medians are reported), and
//! catalog load and search time over the CasaOS store. A benchmark, not a test: it is ignored
//! by default and prints numbers; run it with
//! `cargo test -p hearth-agent --release --test apps_bench -- --ignored --nocapture`.

use crate::apps_common;

use apps_common::*;
use std::process::Command;
use std::time::Instant;

fn compose_up(file: &std::path::Path, project: &str) -> std::time::Duration {
    let t = Instant::now();
    let st = Command::new("docker-compose")
        .args(["-p", project, "-f"])
        .arg(file)
        .args(["up", "-d", "--wait", "--quiet-pull"])
        .status()
        .expect("docker-compose");
    assert!(st.success());
    t.elapsed()
}

fn compose_down(file: &std::path::Path, project: &str) {
    let _ = Command::new("docker-compose")
        .args(["-p", project, "-f"])
        .arg(file)
        .args(["down", "-v"])
        .status();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn install_time_hearth_vs_docker_compose() {
    let Some(e) = env().await else { return };
    const RUNS: u32 = 5;
    let (mut hearth, mut compose) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let id = unique(&format!("bench{i}"));
        let t = Instant::now();
        e.apps
            .install(request(&id, webapp("1", 28500)))
            .await
            .expect("installs");
        hearth.push(t.elapsed().as_secs_f64());
        // The same file, interpolated by Hearth for the app, as docker-compose reads it.
        let file = e.device.projects_dir.join(&id).join("docker-compose.yml");
        let text = std::fs::read_to_string(&file)
            .expect("project file")
            .replace("28500", "28501");
        let dir = tempfile::tempdir().expect("tempdir");
        let cfile = dir.path().join("docker-compose.yml");
        let data = dir.path().join("data");
        for sub in ["db", "web"] {
            std::fs::create_dir_all(data.join(sub)).expect("mkdir");
        }
        let text = text
            .replace("/DATA/AppData/$AppID", &data.display().to_string())
            .replace("$TZ", "Etc/UTC");
        std::fs::write(&cfile, text).expect("write");
        e.apps.uninstall(&id, true).await.expect("uninstalls");
        let took = compose_up(&cfile, &format!("{id}c"));
        compose.push(took.as_secs_f64());
        compose_down(&cfile, &format!("{id}c"));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("install runs (s): hearth {hearth:.2?}, docker-compose up -d --wait {compose:.2?}");
    let (h, c) = (median(&mut hearth), median(&mut compose));
    println!(
        "install (2 services, healthy dependency), median of {RUNS}: hearth {h:.2} s, docker-compose up -d --wait {c:.2} s, ratio {:.2}",
        h / c
    );
    // For ci/bench.
    println!("BENCH install_hearth_s={h:.3}");
    println!("BENCH install_compose_s={c:.3}");
    println!("BENCH install_ratio={:.2}", h / c);
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn catalog_load_and_search_over_the_casaos_store() {
    let store = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stores/casaos");
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let c =
        hearth_agent::apps::catalog::Catalog::load(&[store], dir.path().join("s.json"), "amd64");
    let load = t.elapsed();
    let t = Instant::now();
    let mut hits = 0;
    for q in ["media", "git", "photo", "dns", "zzzz", ""] {
        hits += c.search(q, None, "de_DE").len();
    }
    let search = t.elapsed() / 6;
    let apps = c.search("", None, "en_US").len();
    println!(
        "catalog: {apps} apps loaded in {load:?}; one search in {search:?} ({hits} hits over 6 queries)"
    );
    println!("BENCH catalog_apps={apps}");
    println!("BENCH catalog_load_ms={:.1}", load.as_secs_f64() * 1000.0);
    println!(
        "BENCH catalog_search_ms={:.3}",
        search.as_secs_f64() * 1000.0
    );
}
