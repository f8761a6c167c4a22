use super::*;

fn vars() -> Vars {
    [
        ("AppID", "every-key"),
        ("TZ", "Europe/Berlin"),
        ("PUID", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

const EVERY_KEY: &str = include_str!("../../../tests/fixtures/compose/every-key.yml");

#[test]
fn the_every_key_fixture_reads_into_the_model() {
    let p = parse(EVERY_KEY, &vars()).expect("parses");
    assert!(
        p.warnings.iter().all(|w| w.contains("is not set")),
        "{:?}",
        p.warnings
    );
    let f = &p.file;
    assert_eq!(f.name.as_deref(), Some("every-key"));
    assert_eq!(f.services.len(), 3);
    let db = &f.services["db"];
    // The merge key brought in restart and labels.
    assert_eq!(db.restart.as_deref(), Some("unless-stopped"));
    assert_eq!(
        db.labels.as_ref().and_then(|l| l.get("com.example.shared")),
        Some("yes")
    );
    let env = db.environment.as_ref().expect("env");
    assert_eq!(env.get("POSTGRES_USER"), Some("app"));
    assert_eq!(env.get("EMPTY_VALUE"), Some(""));
    assert_eq!(env.get("FROM_USER"), None);
    assert_eq!(db.env_file.as_ref().expect("env_file").entries().len(), 2);
    let hc = db.healthcheck.as_ref().expect("healthcheck");
    assert_eq!(hc.retries, Some(10));
    assert_eq!(db.shm_size.as_ref().map(|s| s.as_str()), Some("256m"));
    assert_eq!(db.ulimits.as_ref().expect("ulimits").len(), 2);
    let web = &f.services["web"];
    let env = web.environment.as_ref().expect("env");
    assert_eq!(env.get("TZ"), Some("Europe/Berlin"));
    assert_eq!(env.get("GREETING"), Some("hello"));
    assert_eq!(env.get("NUMBER"), Some("42"));
    assert_eq!(env.get("FLAG"), Some("true"));
    assert_eq!(web.ports.len(), 4);
    assert_eq!(web.volumes.len(), 5);
    assert_eq!(web.expose.len(), 2);
    assert!(matches!(web.command, Some(StringOrList::String(_))));
    assert!(matches!(web.entrypoint, Some(StringOrList::List(_))));
    let deps = web.depends_on.as_ref().expect("depends_on");
    assert_eq!(
        deps["db"].as_ref().and_then(|d| d.condition.as_deref()),
        Some("service_healthy")
    );
    let res = web
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .expect("resources");
    assert_eq!(res.limits.as_ref().and_then(|l| l.pids), Some(100));
    assert_eq!(
        web.extra_hosts
            .as_ref()
            .and_then(|h| h.get("host.docker.internal")),
        Some("host-gateway")
    );
    assert_eq!(
        web.sysctls
            .as_ref()
            .and_then(|s| s.get("net.core.somaxconn")),
        Some("1024")
    );
    assert_eq!(web.configs.len(), 1);
    assert!(web.x_casaos.is_some());
    let helper = &f.services["helper"];
    assert_eq!(helper.network_mode.as_deref(), Some("service:web"));
    assert_eq!(helper.cap_drop, ["ALL"]);
    assert_eq!(f.networks.len(), 2);
    assert_eq!(f.networks["backend"].internal, Some(true));
    assert!(f.volumes.contains_key("db-data"));
    assert!(f.configs["site"].content.is_some());
}

#[test]
fn unknown_keys_are_refused_with_their_path_not_ignored() {
    for (text, path) in [
        (
            "services:\n  a:\n    image: x\n    frobnicate: 3\n",
            "services.a.frobnicate",
        ),
        (
            "services:\n  a: {image: x}\nunknown_top: 1\n",
            "unknown_top",
        ),
        (
            "services:\n  a: {image: x, deploy: {resources: {limits: {gpus: 1}}}}\n",
            "services.a.deploy.resources.limits.gpus",
        ),
        (
            "services:\n  a: {image: x, healthcheck: {test: [CMD, 'true'], bogus: 1}}\n",
            "services.a.healthcheck.bogus",
        ),
    ] {
        match parse(text, &vars()) {
            Err(ComposeError::UnsupportedKey { path: p }) => assert_eq!(p, path),
            other => panic!("{text}: {other:?}"),
        }
    }
    // Inside long forms (read strictly, not through `untagged`), the key is named too.
    let e = parse(
        "services:\n  a:\n    image: x\n    volumes: [{type: bind, source: ., target: /x, bogus: 1}]\n",
        &vars(),
    )
    .expect_err("refused");
    assert!(e.to_string().contains("bogus"), "{e}");
}

#[test]
fn x_extensions_and_tooling_keys_are_read_past() {
    let p = parse(
        "services:\n  a:\n    image: x\n    x-custom: fine\n    develop: {watch: []}\n\
         x-anything: {}\n",
        &vars(),
    )
    .expect("parses");
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].starts_with("services.a.develop"));
}

#[test]
fn x_casaos_text_is_not_interpolated() {
    let p = parse(
        "services:\n  a:\n    image: x\n    x-casaos: {envs: [{container: A, description: {en_US: costs $5}}]}\n\
         x-casaos: {tips: {before_install: {en_US: 'use ${HOME} or $'}}}\n",
        &vars(),
    );
    assert!(p.is_ok(), "{p:?}");
}

#[test]
fn malformed_input_gets_clear_errors() {
    let cases: &[(&str, &str)] = &[
        ("services: [\n", "not valid YAML"),
        ("just a string", "must be a YAML mapping"),
        ("services: {}", "no services"),
        ("name: x\n", "must be a YAML mapping"),
        (
            "services:\n  a:\n    build: .\n",
            "building images is not supported",
        ),
        ("services:\n  a: {}\n", "`image` is missing"),
        (
            "services:\n  a:\n    image: x\n    depends_on: [b]\n",
            "\"b\" is not defined",
        ),
        (
            "services:\n  a:\n    image: x\n    networks: [nope]\n",
            "not declared",
        ),
        (
            "services:\n  a:\n    image: x\n    ports: {a: b}\n",
            "services.a",
        ),
        ("services:\n  a:\n    image: $ x\n", "invalid interpolation"),
        (
            "services:\n  a:\n    image: ${IMG:?set the image}\n",
            "set the image",
        ),
        (
            "services:\n  ../a:\n    image: x\n",
            "not a valid service name",
        ),
    ];
    for (text, want) in cases {
        let err = parse(text, &vars()).expect_err(text).to_string();
        assert!(
            err.contains(want),
            "{text:?}: {err:?} should mention {want:?}"
        );
    }
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let big = format!(
        "services:\n  a:\n    image: x\n#{}\n",
        "x".repeat(MAX_COMPOSE_BYTES)
    );
    assert!(matches!(
        parse(&big, &vars()),
        Err(ComposeError::TooLarge { .. })
    ));
}

#[test]
fn deeply_nested_yaml_does_not_crash() {
    let deep = format!(
        "services:\n  a:\n    image: x\n    labels: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    // Either an error or a parse; never a stack overflow.
    let _ = parse(&deep, &vars());
}
