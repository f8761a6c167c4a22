//! A small HTTP(S) server the tests start themselves: fixed answers per path, over plain HTTP
//! or HTTPS with a test CA made by rcgen (its PEM is written for the agent's
//! `app_store_ca_files`).

use axum::Router;
use axum::body::Body;
use axum::http::{Response, StatusCode, Uri, header};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub enum Reply {
    Body {
        content_type: String,
        bytes: Vec<u8>,
    },
    Redirect(String),
    Status(u16),
}

pub struct TestServer {
    pub port: u16,
    pub https: bool,
    /// The test CA (HTTPS only).
    pub ca_file: Option<PathBuf>,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<Vec<String>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.routes
            .lock()
            .expect("lock")
            .insert(path.to_string(), reply);
    }

    pub fn body(&self, path: &str, content_type: &str, bytes: Vec<u8>) {
        self.set(
            path,
            Reply::Body {
                content_type: content_type.into(),
                bytes,
            },
        );
    }

    /// How many requests reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

/// Starts a server on 127.0.0.1; with `ca_dir` it speaks HTTPS with a fresh test CA written to
/// `ca_dir/test-ca.pem`.
pub async fn start(ca_dir: Option<&Path>) -> TestServer {
    let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
    let hits: Arc<Mutex<Vec<String>>> = Arc::default();
    let (r, h) = (routes.clone(), hits.clone());
    let app = Router::new().fallback(move |uri: Uri| {
        let (r, h) = (r.clone(), h.clone());
        async move {
            let path = uri.path().to_string();
            h.lock().expect("lock").push(path.clone());
            let reply = r.lock().expect("lock").get(&path).cloned();
            match reply {
                Some(Reply::Body {
                    content_type,
                    bytes,
                }) => Response::builder()
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Body::from(bytes)),
                Some(Reply::Redirect(to)) => Response::builder()
                    .status(StatusCode::FOUND)
                    .header(header::LOCATION, to)
                    .body(Body::empty()),
                Some(Reply::Status(s)) => Response::builder().status(s).body(Body::empty()),
                None => Response::builder().status(404).body(Body::empty()),
            }
            .expect("response")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (task, ca_file) = match ca_dir {
        None => (
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
            None,
        ),
        Some(dir) => {
            let (config, ca_pem) = tls_config();
            let ca_file = dir.join("test-ca.pem");
            std::fs::write(&ca_file, ca_pem).expect("write CA");
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let task = tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let (acceptor, app) = (acceptor.clone(), app.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let svc = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                    });
                }
            });
            (task, Some(ca_file))
        }
    };
    TestServer {
        port,
        https: ca_dir.is_some(),
        ca_file,
        routes,
        hits,
        _task: task,
    }
}

/// A server config for 127.0.0.1 and localhost signed by a new CA; returns the CA's PEM too.
fn tls_config() -> (rustls::ServerConfig, String) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "Hearth test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec!["localhost".into()]).expect("params");
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = leaf.signed_by(&key, &issuer).expect("leaf");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
    (config, ca_cert.pem())
}

/// A zip of the given entries (names as given, unchecked).
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("start");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// The test store (fixture folder) as a zip under one top folder, as GitHub serves it.
pub fn test_store_zip(top: &str) -> Vec<u8> {
    let root = super::test_store();
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    let owned: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(rel, bytes)| (format!("{top}/{rel}"), bytes))
        .collect();
    let refs: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    zip_of(&refs)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            let rel = p
                .strip_prefix(root)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read(&p).expect("read")));
        }
    }
}
