//! Every app in the real CasaOS store (a read-only copy beside the repository) must plan
//! without error, its metadata must read without panicking, and the policy's findings must
//! match what the files ask for.

use hearth_agent::apps::{casaos, plan, source};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// The vendored store, `stores/casaos` in the repository.
fn store_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stores/casaos");
    assert!(
        dir.join("Apps").is_dir(),
        "the CasaOS store is missing: expected it at {} (the repository's stores/casaos)",
        dir.display()
    );
    dir
}

fn app_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(store_dir().join("Apps"))
        .expect("read Apps")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("docker-compose.yml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn plan_app(
    dir: &std::path::Path,
    in_use: &BTreeSet<plan::HostPort>,
) -> Result<plan::Plan, String> {
    let src = source::load(&dir.join("docker-compose.yml")).map_err(|e| e.to_string())?;
    let device = plan::DeviceSettings::under("/var/lib/hearth");
    let input = plan::PlanInput {
        compose: &src.text,
        app_id: None,
        device: &device,
        settings: &Default::default(),
        ports_in_use: in_use,
        names_in_use: &BTreeSet::new(),
        port_strategy: plan::PortStrategy::Reassign,
        env_files: &src.side_files,
    };
    plan::plan(&input)
        .map(|(p, _)| p)
        .map_err(|e| e.to_string())
}

#[test]
fn every_casaos_app_plans_without_error() {
    let dirs = app_dirs();
    assert!(dirs.len() >= 100, "only {} apps found", dirs.len());
    let mut failures = BTreeMap::new();
    let mut planned = 0;
    for dir in &dirs {
        match plan_app(dir, &BTreeSet::new()) {
            Ok(p) => {
                planned += 1;
                assert!(!p.containers.is_empty(), "{}", dir.display());
                for c in &p.containers {
                    assert_eq!(c.labels["com.docker.compose.project"], p.app_id);
                    assert!(!c.image.is_empty());
                }
            }
            Err(e) => {
                failures.insert(dir.file_name().map(|n| n.to_string_lossy().to_string()), e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} apps failed: {failures:#?}",
        failures.len(),
        dirs.len()
    );
    eprintln!("planned {planned} CasaOS apps");
}

#[test]
fn every_casaos_app_has_readable_metadata_in_english() {
    for dir in app_dirs() {
        let text = std::fs::read_to_string(dir.join("docker-compose.yml")).expect("read");
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("yaml");
        let mut warnings = Vec::new();
        let meta = casaos::app_meta(v.get("x-casaos"), &mut warnings);
        assert!(
            meta.title.pick("en_US").is_some(),
            "{}: no title",
            dir.display()
        );
        assert!(
            !meta.architectures.is_empty(),
            "{}: no architectures",
            dir.display()
        );
    }
}

#[test]
fn store_apps_move_to_free_ports_when_theirs_are_taken() {
    let dir = store_dir().join("Apps/Gitea");
    let free = plan_app(&dir, &BTreeSet::new()).expect("plans");
    let web = free.web_ui.clone().expect("gitea has a web UI");
    let taken: BTreeSet<plan::HostPort> = [(web.port, plan::Protocol::Tcp)].into();
    let moved = plan_app(&dir, &taken).expect("plans");
    let moved_web = moved.web_ui.expect("web ui");
    assert_ne!(moved_web.port, web.port);
    assert!(
        moved
            .ports
            .iter()
            .any(|p| p.host_port == Some(moved_web.port))
    );
}

#[test]
fn docker_socket_apps_are_flagged_by_the_policy() {
    for app in ["Portainer", "Glances"] {
        let p = plan_app(&store_dir().join("Apps").join(app), &BTreeSet::new()).expect("plans");
        assert!(
            p.findings
                .iter()
                .any(|f| f.subject.ends_with("docker.sock")),
            "{app}: {:?}",
            p.findings
        );
    }
}

/// The table in docs/apps.md of how many store apps carry each finding kind, generated here so
/// the documentation cannot drift from the policy (`HEARTH_UPDATE_DOCS=1` rewrites it).
#[test]
fn docs_list_how_many_store_apps_carry_each_finding_kind() {
    use hearth_agent::apps::policy::FindingKind;
    let dirs = app_dirs();
    let mut per_kind: BTreeMap<FindingKind, usize> = BTreeMap::new();
    let mut clean = 0;
    for dir in &dirs {
        let p = plan_app(dir, &BTreeSet::new()).expect("plans");
        let kinds: BTreeSet<FindingKind> = p.findings.iter().map(|f| f.kind).collect();
        if kinds.is_empty() {
            clean += 1;
        }
        for k in kinds {
            *per_kind.entry(k).or_default() += 1;
        }
    }
    let mut table = format!(
        "| finding kind | store apps |\n|---|---|\n| (none) | {clean} of {} |\n",
        dirs.len()
    );
    for k in FindingKind::ALL {
        table.push_str(&format!(
            "| `{}` | {} |\n",
            k.as_str(),
            per_kind.get(&k).copied().unwrap_or(0)
        ));
    }
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/apps.md");
    let text = std::fs::read_to_string(&docs).expect("docs/apps.md");
    let (start, end) = (
        "<!-- casaos-findings:start -->\n",
        "<!-- casaos-findings:end -->",
    );
    let a = text.find(start).expect("start marker in docs/apps.md") + start.len();
    let b = text.find(end).expect("end marker in docs/apps.md");
    if std::env::var_os("HEARTH_UPDATE_DOCS").is_some() {
        let new = format!("{}{table}{}", &text[..a], &text[b..]);
        std::fs::write(&docs, new).expect("write docs");
        return;
    }
    assert_eq!(
        &text[a..b],
        table,
        "docs/apps.md's finding table is stale: run with HEARTH_UPDATE_DOCS=1"
    );
}
