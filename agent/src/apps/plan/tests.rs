use super::*;
use std::path::Path;

const EVERY_KEY: &str = include_str!("../../../tests/fixtures/compose/every-key.yml");

struct Fixture {
    device: DeviceSettings,
    settings: AppSettings,
    in_use: BTreeSet<HostPort>,
    names: BTreeSet<String>,
    strategy: PortStrategy,
    files: BTreeMap<String, String>,
}

impl Fixture {
    fn new() -> Self {
        let mut device = DeviceSettings::under("/hearth");
        device.architecture = "amd64".into();
        Self {
            device,
            settings: AppSettings::default(),
            in_use: BTreeSet::new(),
            names: BTreeSet::new(),
            strategy: PortStrategy::Reassign,
            files: [(
                "db.env".to_string(),
                "DB_FROM_FILE=1\n# comment\nPOSTGRES_USER=overridden\n".to_string(),
            )]
            .into(),
        }
    }

    fn plan(&self, compose: &str) -> Result<Plan, PlanError> {
        plan(&PlanInput {
            compose,
            app_id: None,
            device: &self.device,
            settings: &self.settings,
            ports_in_use: &self.in_use,
            names_in_use: &self.names,
            port_strategy: self.strategy,
            env_files: &self.files,
        })
        .map(|(p, _)| p)
    }
}

#[test]
fn containers_start_in_dependency_order() {
    let p = Fixture::new().plan(EVERY_KEY).expect("plans");
    let order: Vec<&str> = p.containers.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(order, ["db", "web", "helper"]);
    let web = p.container("web").expect("web");
    assert_eq!(
        web.depends_on[0].condition,
        DependencyCondition::ServiceHealthy
    );
    assert_eq!(
        p.container("helper").expect("helper").network_mode,
        NetworkMode::Service("every-key-web".into())
    );
}

#[test]
fn names_and_labels_follow_docker_compose() {
    let p = Fixture::new().plan(EVERY_KEY).expect("plans");
    let db = p.container("db").expect("db");
    assert_eq!(db.name, "every-key-db-1");
    assert_eq!(p.container("web").expect("web").name, "every-key-web");
    assert_eq!(db.labels[labels::PROJECT], "every-key");
    assert_eq!(db.labels[labels::SERVICE], "db");
    assert_eq!(db.labels[labels::ONEOFF], "False");
    assert_eq!(db.labels[labels::CONTAINER_NUMBER], "1");
    assert_eq!(db.labels["com.example.shared"], "yes");
    assert_eq!(db.labels[labels::CONFIG_HASH].len(), 64);
    let nets: Vec<&str> = p.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nets, ["every-key_backend", "every-key_frontend"]);
    let backend = &p.networks[0];
    assert!(backend.internal);
    assert_eq!(backend.labels[labels::NETWORK], "backend");
    assert_eq!(p.volumes[0].name, "every-key_db-data");
    assert_eq!(p.volumes[0].labels[labels::VOLUME], "db-data");
    assert!(
        db.networks
            .iter()
            .any(|n| n.network == "every-key_backend" && n.aliases == ["db", "database"])
    );
}

#[test]
fn environment_merges_env_files_then_environment_then_settings() {
    let mut f = Fixture::new();
    f.settings.vars.insert("FROM_USER".into(), "u".into());
    f.settings.env.insert(
        "web".into(),
        [("GREETING".to_string(), "hi".to_string())].into(),
    );
    let p = f.plan(EVERY_KEY).expect("plans");
    let db = p.container("db").expect("db");
    assert_eq!(db.env["DB_FROM_FILE"], "1");
    assert_eq!(db.env["POSTGRES_USER"], "app");
    assert_eq!(db.env["FROM_USER"], "u");
    let web = p.container("web").expect("web");
    assert_eq!(web.env["GREETING"], "hi");
    assert_eq!(web.env["TZ"], "Etc/UTC");
    assert_eq!(web.env["PUID"], "1000");
}

#[test]
fn a_required_env_file_that_is_missing_is_an_error() {
    let mut f = Fixture::new();
    f.files.clear();
    let err = f.plan(EVERY_KEY).expect_err("missing env file").to_string();
    assert!(err.contains("db.env"), "{err}");
}

#[test]
fn casaos_paths_land_under_the_device_roots() {
    let p = Fixture::new().plan(EVERY_KEY).expect("plans");
    let web = p.container("web").expect("web");
    let binds: Vec<(&Path, &str, bool)> = web
        .mounts
        .iter()
        .filter_map(|m| match m {
            Mount::Bind {
                source,
                target,
                read_only,
            } => Some((source.as_path(), target.as_str(), *read_only)),
            _ => None,
        })
        .collect();
    assert!(binds.contains(&(
        Path::new("/hearth/app-data/every-key/config"),
        "/config",
        true
    )));
    assert!(binds.contains(&(
        Path::new("/hearth/app-data/every-key/relative"),
        "/relative",
        false
    )));
    assert!(binds.contains(&(Path::new("/hearth/data/Media"), "/media", true)));
    assert!(binds.contains(&(
        Path::new("/hearth/app-data/every-key/.hearth/configs/site"),
        "/etc/site.conf",
        true
    )));
    assert!(
        p.host_folders
            .contains(&PathBuf::from("/hearth/app-data/every-key/config"))
    );
    assert!(
        p.host_folders
            .contains(&PathBuf::from("/hearth/data/Media"))
    );
    assert_eq!(p.files[0].content, "listen 80;\n");
    assert!(
        web.mounts.iter().any(
            |m| matches!(m, Mount::Volume { name: None, target, .. } if target == "/anonymous")
        )
    );
    assert!(
        web.mounts
            .iter()
            .any(|m| matches!(m, Mount::Tmpfs { target, .. } if target == "/tmp"))
    );
    assert!(p.findings.is_empty(), "{:?}", p.findings);
}

#[test]
fn resources_units_and_policies_are_converted() {
    let p = Fixture::new().plan(EVERY_KEY).expect("plans");
    let web = p.container("web").expect("web");
    assert_eq!(web.memory_limit, Some(512 << 20));
    assert_eq!(web.memory_reservation, Some(128 << 20));
    assert_eq!(web.nano_cpus, Some(1_500_000_000));
    assert_eq!(web.pids_limit, Some(100));
    assert_eq!(web.restart, RestartPolicy::OnFailure(Some(3)));
    assert_eq!(
        web.command.as_deref(),
        Some(&["httpd".to_string(), "-f".into(), "-p".into(), "8080".into()][..])
    );
    assert_eq!(web.stop_grace_period_ns, Some(30_000_000_000));
    let db = p.container("db").expect("db");
    assert_eq!(db.shm_size, Some(256 << 20));
    assert_eq!(
        db.healthcheck.as_ref().and_then(|h| h.start_period_ns),
        Some(60_000_000_000)
    );
    assert_eq!(db.ulimits.len(), 2);
    assert_eq!(db.restart, RestartPolicy::UnlessStopped);
}

#[test]
fn ports_are_assigned_without_clashes_and_the_web_ui_follows() {
    let mut f = Fixture::new();
    f.in_use.insert((8080, Protocol::Tcp));
    let p = f.plan(EVERY_KEY).expect("plans");
    let web = p.container("web").expect("web");
    let http = web
        .ports
        .iter()
        .find(|b| b.container_port == 80)
        .expect("80");
    assert_eq!(http.host_port, Some(8081));
    let udp = web
        .ports
        .iter()
        .find(|b| b.container_port == 9000)
        .expect("9000");
    assert_eq!(
        (udp.host_ip.as_deref(), udp.host_port, udp.protocol),
        (Some("127.0.0.1"), Some(9000), Protocol::Udp)
    );
    assert_eq!(
        web.ports
            .iter()
            .find(|b| b.container_port == 3000)
            .and_then(|b| b.host_port),
        None
    );
    let ui = p.web_ui.expect("web ui");
    assert_eq!((ui.port, ui.path.as_str()), (8081, "/admin"));
    assert_eq!(ui.url("hearth.local"), "http://hearth.local:8081/admin");
}

#[test]
fn exact_ports_refuse_a_clash() {
    let mut f = Fixture::new();
    f.in_use.insert((8443, Protocol::Tcp));
    f.strategy = PortStrategy::Exact;
    match f.plan(EVERY_KEY) {
        Err(PlanError::PortClash { port, service, .. }) => {
            assert_eq!((port, service.as_str()), (8443, "web"))
        }
        other => panic!("expected a port clash, got {other:?}"),
    }
}

#[test]
fn user_chosen_ports_are_exact_even_for_store_apps() {
    let mut f = Fixture::new();
    f.settings
        .ports
        .insert("web".into(), [("80".to_string(), 18080u16)].into());
    let p = f.plan(EVERY_KEY).expect("plans");
    assert_eq!(p.web_ui.expect("ui").port, 18080);
    f.in_use.insert((18080, Protocol::Tcp));
    assert!(matches!(
        f.plan(EVERY_KEY),
        Err(PlanError::PortClash { port: 18080, .. })
    ));
}

#[test]
fn container_name_clash_is_refused() {
    let mut f = Fixture::new();
    f.names.insert("every-key-web".into());
    assert!(matches!(
        f.plan(EVERY_KEY),
        Err(PlanError::NameClash { .. })
    ));
}

#[test]
fn dependency_cycles_are_refused() {
    let c =
        "name: c\nservices:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n";
    assert!(matches!(
        Fixture::new().plan(c),
        Err(PlanError::DependencyCycle(_))
    ));
}

#[test]
fn a_compose_file_without_a_name_needs_an_app_id() {
    assert!(matches!(
        Fixture::new().plan("services:\n  a: {image: x}\n"),
        Err(PlanError::MissingAppId)
    ));
}

#[test]
fn undeclared_named_volumes_are_refused() {
    let c = "name: v\nservices:\n  a: {image: x, volumes: ['data:/data']}\n";
    assert!(
        Fixture::new()
            .plan(c)
            .expect_err("undeclared")
            .to_string()
            .contains("not declared")
    );
}

#[test]
fn escaping_the_roots_with_dot_dot_is_a_finding() {
    let c = "name: esc\nservices:\n  a:\n    image: x\n    volumes: ['/DATA/AppData/esc/../../../etc:/host-etc']\n";
    let p = Fixture::new().plan(c).expect("plans");
    assert_eq!(p.findings.len(), 1, "{:?}", p.findings);
    assert_eq!(p.findings[0].id, "host_path:a:/etc");
    assert!(!p.host_folders.iter().any(|f| f.starts_with("/etc")));
}

#[test]
fn services_in_profiles_are_left_out_unless_needed() {
    let c = "name: p\nservices:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, profiles: [db]}\n  c: {image: x, profiles: [extra]}\n";
    let p = Fixture::new().plan(c).expect("plans");
    let names: Vec<&str> = p.containers.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    assert!(p.warnings.iter().any(|w| w.contains("services.c")));
}

#[test]
fn architecture_mismatch_is_reported_not_refused() {
    let mut f = Fixture::new();
    f.device.architecture = "riscv64".into();
    let p = f.plan(EVERY_KEY).expect("plans");
    assert!(!p.architecture_supported);
}

#[test]
fn the_plan_is_deterministic() {
    let f = Fixture::new();
    let a = serde_json::to_string(&f.plan(EVERY_KEY).expect("plans")).expect("json");
    let b = serde_json::to_string(&f.plan(EVERY_KEY).expect("plans")).expect("json");
    assert_eq!(a, b);
}
