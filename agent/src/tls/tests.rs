use super::*;

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn ca_is_created_once_and_reused() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = LocalCa::load_or_create(dir.path(), now()).expect("create");
    let second = LocalCa::load_or_create(dir.path(), now()).expect("load");
    assert_eq!(first.cert_pem(), second.cert_pem());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("ca.key"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the CA key is private");
}

#[test]
fn server_cert_is_reused_then_renewed_near_expiry_or_on_new_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = LocalCa::load_or_create(dir.path(), now()).expect("ca");
    let names = wanted_sans("hearth", &["192.168.1.5".parse().expect("ip")]);
    assert_eq!(names, ["hearth.local", "localhost", "192.168.1.5"]);
    let (first, issued) = ensure_server_cert(dir.path(), &ca, &names, now()).expect("issue");
    assert!(issued);
    let (again, issued) = ensure_server_cert(dir.path(), &ca, &names, now()).expect("reuse");
    assert!(!issued);
    assert_eq!(first.cert_pem, again.cert_pem);

    let near_expiry = now() + SERVER_LIFETIME - Duration::days(10);
    let (_, issued) = ensure_server_cert(dir.path(), &ca, &names, near_expiry).expect("renew");
    assert!(issued, "a certificate 10 days from expiry is renewed");

    let renamed = wanted_sans("attic", &[]);
    let (cert, issued) = ensure_server_cert(dir.path(), &ca, &renamed, now()).expect("rename");
    assert!(issued);
    assert!(cert.meta.sans.contains(&"attic.local".to_string()));
}

/// rustls' WebPKI verifier (the one reqwest and the agent's own clients use) trusting only
/// `ca_pem`: verifies `leaf_pem` for `name`.
fn verify(ca_pem: &str, leaf_pem: &str, name: &str) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca der"))
        .expect("add root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .expect("verifier");
    let leaf = CertificateDer::from_pem_slice(leaf_pem.as_bytes()).expect("leaf der");
    let server_name = ServerName::try_from(name.to_string()).expect("name");
    verifier
        .verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn issued_certificate_chains_to_the_ca_in_a_real_tls_verifier() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = LocalCa::load_or_create(dir.path(), now()).expect("ca");
    let names = wanted_sans("hearth", &["10.0.0.7".parse().expect("ip")]);
    let cert = ca.issue_server(&names, now()).expect("issue");
    for name in ["hearth.local", "localhost", "10.0.0.7"] {
        verify(ca.cert_pem(), &cert.cert_pem, name)
            .unwrap_or_else(|e| panic!("{name} must verify: {e}"));
    }
    assert!(verify(ca.cert_pem(), &cert.cert_pem, "example.com").is_err());
    resolver::certified_key(&cert.cert_pem, &cert.key_pem, ca.cert_pem())
        .expect("rustls accepts the key");
}

#[test]
fn a_leaf_the_ca_signs_for_an_outside_name_is_rejected_by_the_verifier() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = LocalCa::load_or_create(dir.path(), now()).expect("ca");
    // What a stolen CA key would be used for: rcgen signs anything, the verifier must refuse.
    for outside in ["bank.example", "8.8.8.8", "2001:db8::1", "hearth"] {
        let leaf = ca
            .issue_server(&[outside.to_string()], now())
            .expect("issue");
        let err = verify(ca.cert_pem(), &leaf.cert_pem, outside)
            .expect_err(&format!("{outside} is outside the constraints"));
        assert!(
            format!("{err:?}").contains("NameConstraint"),
            "{outside}: rejected for its name, not something else: {err:?}"
        );
    }
    // One outside name spoils the whole certificate, the device's own names included.
    let mixed = ca
        .issue_server(&["hearth.local".into(), "bank.example".into()], now())
        .expect("issue");
    assert!(verify(ca.cert_pem(), &mixed.cert_pem, "hearth.local").is_err());
}

#[test]
fn the_devices_names_stay_valid_after_a_rename_and_for_app_subdomains() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = LocalCa::load_or_create(dir.path(), now()).expect("ca");
    let addrs: Vec<IpAddr> = [
        "192.168.1.5",
        "172.20.0.1",
        "169.254.3.4",
        "fd00::5",
        "127.0.0.1",
    ]
    .iter()
    .map(|a| a.parse().expect("ip"))
    .collect();
    for host in ["hearth", "attic"] {
        let mut names = wanted_sans(host, &addrs);
        names.push(format!("photos.{host}.local"));
        let leaf = ca.issue_server(&names, now()).expect("issue");
        for name in &names {
            verify(ca.cert_pem(), &leaf.cert_pem, name)
                .unwrap_or_else(|e| panic!("{name} must verify: {e}"));
        }
    }
}

#[test]
fn public_addresses_are_left_out_of_the_server_certificate() {
    let addrs: Vec<IpAddr> = ["192.168.1.5", "2a00:1450::5", "8.8.4.4", "fe80::1"]
        .iter()
        .map(|a| a.parse().expect("ip"))
        .collect();
    assert_eq!(
        wanted_sans("hearth", &addrs),
        ["hearth.local", "localhost", "192.168.1.5", "fe80::1"]
    );
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[test]
fn a_ca_key_readable_by_others_is_set_back_to_0600_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let tls = DeviceTls::open(dir.path(), now()).expect("open");
    tls.server_key(&wanted_sans("hearth", &[]), now())
        .expect("server");
    for key in ["ca.key", "server.key"] {
        let path = dir.path().join(key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    DeviceTls::open(dir.path(), now()).expect("reopen");
    assert_eq!(mode(&dir.path().join("ca.key")), 0o600);
    assert_eq!(mode(&dir.path().join("server.key")), 0o600);
    assert_eq!(mode(dir.path()), 0o700);
}

#[test]
fn a_ca_from_before_constraints_loads_and_reports_itself_unconstrained() {
    let dir = tempfile::tempdir().expect("tmp");
    let legacy = CaMeta {
        common_name: "Hearth local CA 00000000".into(),
        name_constrained: false,
        not_before: None,
        not_after: None,
    };
    let key = KeyPair::generate().expect("key");
    let cert = ca_params(&legacy).self_signed(&key).expect("cert").pem();
    write(&dir.path().join("ca.key"), &key.serialize_pem(), 0o600).expect("key");
    write(
        &dir.path().join("ca.json"),
        r#"{"common_name":"Hearth local CA 00000000"}"#,
        0o644,
    )
    .expect("meta");
    write(&dir.path().join("ca.crt"), &cert, 0o644).expect("crt");
    let tls = DeviceTls::open(dir.path(), now()).expect("open");
    let status = tls.status();
    assert!(!status.current.name_constrained);
    assert_eq!(status.current.common_name, "Hearth local CA 00000000");
    assert_eq!(
        tls.current_cert_pem(),
        cert,
        "the existing CA is kept, not replaced"
    );
}

#[test]
fn rotation_serves_a_certificate_from_the_new_ca_only_after_activation() {
    let dir = tempfile::tempdir().expect("tmp");
    let names = wanted_sans("hearth", &["192.168.1.5".parse().expect("ip")]);
    let tls = DeviceTls::open(dir.path(), now()).expect("open");
    tls.server_key(&names, now()).expect("server");
    let old_ca = tls.current_cert_pem();

    let status = tls.begin(now()).expect("begin");
    let pending = status.pending.expect("pending");
    assert!(pending.name_constrained);
    assert!(matches!(
        tls.begin(now()),
        Err(RotationError::AlreadyPending)
    ));
    let new_ca = tls.pending_cert_pem().expect("pending pem");
    assert_ne!(new_ca, old_ca);
    // Still the old CA's certificate until activation.
    let served = ServerCert::load(dir.path()).expect("load").expect("cert");
    verify(&old_ca, &served.cert_pem, "hearth.local").expect("old chain");
    assert_eq!(mode(&dir.path().join("next/ca.key")), 0o600);

    let status = tls.activate(&names, now()).expect("activate");
    assert_eq!(status.current, pending);
    assert!(status.pending.is_none());
    let previous = status.previous.expect("previous");
    assert_eq!(previous.fingerprint_sha256, fingerprint(&old_ca));
    assert_eq!(tls.current_cert_pem(), new_ca);
    let served = ServerCert::load(dir.path()).expect("load").expect("cert");
    verify(&new_ca, &served.cert_pem, "hearth.local").expect("new chain");
    assert!(verify(&old_ca, &served.cert_pem, "hearth.local").is_err());

    // The state survives a restart; the old key is gone.
    let reopened = DeviceTls::open(dir.path(), now()).expect("reopen");
    assert_eq!(reopened.status().current, pending);
    assert_eq!(reopened.status().previous, Some(previous));
    assert!(!dir.path().join("next").exists());
    reopened.forget_previous().expect("forget");
    assert!(reopened.status().previous.is_none());
    assert!(matches!(
        reopened.forget_previous(),
        Err(RotationError::NoPrevious)
    ));
    assert!(matches!(reopened.cancel(), Err(RotationError::NotPending)));
}

#[test]
fn an_activation_cut_after_the_key_was_written_is_finished_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let tls = DeviceTls::open(dir.path(), now()).expect("open");
    tls.begin(now()).expect("begin");
    let new_ca = tls.pending_cert_pem().expect("pending");
    drop(tls);
    // The power went after the new key replaced ca.key, before ca.json and ca.crt.
    let next_key = std::fs::read(dir.path().join("next/ca.key")).expect("next key");
    std::fs::write(dir.path().join("ca.key"), next_key).expect("write");
    let tls = DeviceTls::open(dir.path(), now()).expect("reopen");
    assert_eq!(tls.current_cert_pem(), new_ca);
    assert!(tls.status().pending.is_none());
    assert!(!dir.path().join("next").exists());
    let names = wanted_sans("hearth", &[]);
    tls.server_key(&names, now())
        .expect("key matches certificate");
    let served = ServerCert::load(dir.path()).expect("load").expect("cert");
    verify(&new_ca, &served.cert_pem, "hearth.local").expect("chain");
}

#[test]
fn a_cancelled_rotation_leaves_the_current_ca_and_no_pending_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let tls = DeviceTls::open(dir.path(), now()).expect("open");
    let before = tls.current_cert_pem();
    tls.begin(now()).expect("begin");
    tls.cancel().expect("cancel");
    assert_eq!(tls.current_cert_pem(), before);
    assert!(!dir.path().join("next").exists());
    assert!(tls.pending_cert_pem().is_none());
}
