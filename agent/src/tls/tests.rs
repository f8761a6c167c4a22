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
    assert_eq!(names[..3], ["hearth.local", "hearth", "localhost"]);
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

#[test]
fn issued_certificate_chains_to_the_ca_in_a_real_tls_verifier() {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let dir = tempfile::tempdir().expect("tmp");
    let ca = LocalCa::load_or_create(dir.path(), now()).expect("ca");
    let names = wanted_sans("hearth", &["10.0.0.7".parse().expect("ip")]);
    let cert = ca.issue_server(&names, now()).expect("issue");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("ca der"))
        .expect("add root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .expect("verifier");
    let leaf = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("leaf der");
    for name in ["hearth.local", "hearth", "localhost", "10.0.0.7"] {
        let server_name = ServerName::try_from(name.to_string()).expect("name");
        verifier
            .verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{name} must verify: {e}"));
    }
    let other = ServerName::try_from("example.com".to_string()).expect("name");
    assert!(
        verifier
            .verify_server_cert(&leaf, &[], &other, &[], UnixTime::now())
            .is_err()
    );
    resolver::certified_key(&cert.cert_pem, &cert.key_pem, ca.cert_pem())
        .expect("rustls accepts the key");
}
