//! The hostile compose suite: every file in `fixtures/hostile/` tries one way to reach the host
//! or another app (its first comment line says how) and must be refused or flagged with the
//! finding kind its `# expect:` line names; every file in `fixtures/hostile/controls/` must
//! plan without findings. Each is judged the way the lifecycle judges an install: next to an
//! installed app (`fixtures/hostile/installed/nextcloud.yml`), so findings that reach into it
//! must name it.

use hearth_agent::apps::plan::{self, DeviceSettings, Mount, Plan, PlanError};
use hearth_agent::apps::policy::{self, Others, swap};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

fn device() -> DeviceSettings {
    DeviceSettings::under("/hearth")
}

fn plan_one(compose: &str, id: &str) -> Result<Plan, PlanError> {
    let d = device();
    plan::plan(&plan::PlanInput {
        compose,
        app_id: Some(id),
        device: &d,
        settings: &Default::default(),
        ports_in_use: &BTreeSet::new(),
        names_in_use: &BTreeSet::new(),
        port_strategy: plan::PortStrategy::Reassign,
        env_files: &Default::default(),
    })
    .map(|(p, _)| p)
}

/// Plans `compose` as app `evil` beside the installed nextcloud, as `Apps::plan_for` does.
fn judge_beside_nextcloud(compose: &str) -> Result<Plan, PlanError> {
    let installed = std::fs::read_to_string(dir().join("installed/nextcloud.yml")).expect("read");
    let other = plan_one(&installed, "nextcloud").expect("nextcloud plans");
    let mut p = plan_one(compose, "evil")?;
    swap::check(&swap::bind_sources(&p), &swap::bind_sources(&other))?;
    p.findings = policy::judge_across(&p, &device(), &Others::from_plans([&other]));
    Ok(p)
}

fn yml_files(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    v.sort();
    v
}

/// Whether some container mounts a folder writable and, at the matching place inside it, a
/// bind source that lies inside that folder (the pin that makes a swap impossible).
fn has_pin(p: &Plan) -> bool {
    p.containers.iter().any(|c| {
        c.mounts.iter().any(|outer| {
            let Mount::Bind {
                source: w,
                target: t,
                read_only: false,
            } = outer
            else {
                return false;
            };
            c.mounts.iter().any(|inner| match inner {
                Mount::Bind {
                    source: s,
                    target: it,
                    ..
                } if s != w && s.starts_with(w) => {
                    let rel = s.strip_prefix(w).expect("inside");
                    *it == format!("{}/{}", t.trim_end_matches('/'), rel.display())
                }
                _ => false,
            })
        })
    })
}

/// The `# expect:` line: `refused`, `pinned`, `clean`, or a finding kind with an optional
/// `app=NAME`.
fn expectation(text: &str, file: &Path) -> (String, Option<String>) {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{}: no `# expect:` line", file.display()));
    let mut parts = line.split_whitespace();
    let kind = parts.next().expect("kind").to_string();
    let app = parts
        .find_map(|p| p.strip_prefix("app="))
        .map(str::to_string);
    (kind, app)
}

#[test]
fn every_hostile_file_is_refused_or_flagged_with_its_finding() {
    let files = yml_files(&dir());
    let flagged = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .expect("read")
                .contains("# expect: pinned")
        })
        .count();
    assert!(
        flagged >= 40,
        "only {flagged} hostile files refused or flagged"
    );
    let mut wrong = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        assert!(
            text.starts_with("# tries: "),
            "{}: say what it tries",
            f.display()
        );
        let (kind, app) = expectation(&text, f);
        let outcome = judge_beside_nextcloud(&text);
        let ok = match (kind.as_str(), &outcome) {
            ("refused", Err(_)) => true,
            ("refused", Ok(_)) => false,
            ("pinned", Ok(p)) => has_pin(p),
            (_, Err(_)) => false,
            (k, Ok(p)) => p
                .findings
                .iter()
                .any(|x| x.kind.as_str() == k && (app.is_none() || x.app == app)),
        };
        if !ok {
            let got = match &outcome {
                Ok(p) => format!("{:?}", p.findings),
                Err(e) => format!("refused: {e}"),
            };
            wrong.push(format!("{}: wanted {kind} {app:?}, got {got}", f.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn refusals_say_why_in_words() {
    let text = std::fs::read_to_string(dir().join("16-swap-cross-app-outer.yml")).expect("read");
    let e = judge_beside_nextcloud(&text).expect_err("refused");
    let m = e.to_string();
    assert!(
        m.contains("/hearth/data/Media") && m.contains("link"),
        "{m}"
    );
    let text = std::fs::read_to_string(dir().join("45-unknown-key.yml")).expect("read");
    let m = judge_beside_nextcloud(&text)
        .expect_err("refused")
        .to_string();
    assert!(
        m.contains("use_api_socket") && m.contains("not support"),
        "{m}"
    );
    let text =
        std::fs::read_to_string(dir().join("15-swap-cross-app-user-data.yml")).expect("read");
    let m = judge_beside_nextcloud(&text)
        .expect_err("refused")
        .to_string();
    assert!(m.contains("nextcloud"), "{m}");
}

#[test]
fn findings_about_another_app_name_it_in_the_message() {
    let text = std::fs::read_to_string(dir().join("17-other-app-data-short.yml")).expect("read");
    let p = judge_beside_nextcloud(&text).expect("plans");
    let f = &p.findings[0];
    assert!(f.message.contains("shares data with nextcloud"), "{f:?}");
}

#[test]
fn every_control_plans_clean() {
    let files = yml_files(&dir().join("controls"));
    assert!(files.len() >= 5);
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        assert_eq!(expectation(&text, &f).0, "clean");
        let p = judge_beside_nextcloud(&text)
            .unwrap_or_else(|e| panic!("{}: refused: {e}", f.display()));
        assert!(p.findings.is_empty(), "{}: {:?}", f.display(), p.findings);
    }
}

#[test]
fn network_mode_bridge_gets_the_apps_own_network_not_dockers_shared_one() {
    let text =
        std::fs::read_to_string(dir().join("controls/side-by-side-binds.yml")).expect("read");
    let p = judge_beside_nextcloud(&text).expect("plans");
    let c = &p.containers[0];
    assert_eq!(c.network_mode, plan::NetworkMode::Project);
    assert_eq!(c.networks[0].network, "evil_default");
}

#[test]
fn the_issues_swap_inside_one_app_is_pinned_not_left_open() {
    let text = std::fs::read_to_string(dir().join("09-swap-app-root-and-data.yml")).expect("read");
    let p = judge_beside_nextcloud(&text).expect("plans");
    let c = &p.containers[0];
    assert!(
        c.mounts
            .iter()
            .any(|m| matches!(m, Mount::Bind { source, target, .. }
            if source.ends_with("evil/data") && target == "/app/data")),
        "{:?}",
        c.mounts
    );
}

/// `hearth-agent app plan FILE` with a bare file name in the current folder (it failed with
/// "No such file or directory" and an empty path), printing `findings[]` with `kind`/`subject`.
#[test]
fn app_plan_takes_a_bare_file_name_and_prints_findings() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        dir().join("22-case-variant.yml"),
        tmp.path().join("compose.yml"),
    )
    .expect("copy");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth-agent"))
        .current_dir(tmp.path())
        .args(["app", "plan", "compose.yml", "--app-id", "evil"])
        .arg("--device-root")
        .arg(tmp.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let f = &plan["findings"][0];
    assert_eq!(f["kind"], "host_path", "{plan}");
    assert_eq!(f["subject"], "/data/appdata/nextcloud");
    // A refused file: exit status 1 and the reason.
    std::fs::copy(dir().join("45-unknown-key.yml"), tmp.path().join("bad.yml")).expect("copy");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth-agent"))
        .current_dir(tmp.path())
        .args(["app", "plan", "bad.yml", "--app-id", "evil"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use_api_socket"));
}
