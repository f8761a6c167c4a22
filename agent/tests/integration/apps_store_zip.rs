//! Store zips downloaded over real HTTPS (a local server with a test CA made by rcgen): the
//! catalog loads them, refreshes them, and keeps its last good copy when a download is bad.
//! The last test drives the same through a real agent's API.

use crate::apps_common;
use crate::common;

use apps_common::serve::{self, Reply, zip_of};
use hearth_agent::apps::catalog::{Catalog, CatalogOptions};
use hearth_agent::apps::fetch::Fetcher;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::Path;

const ZIP: &str = "application/zip";

fn catalog(dir: &Path, ca: Option<&Path>) -> Catalog {
    let cas: Vec<_> = ca.into_iter().map(Path::to_path_buf).collect();
    Catalog::open(CatalogOptions {
        dirs: Vec::new(),
        urls: Vec::new(),
        saved: dir.join("stores.json"),
        default_store: None,
        cache_dir: dir.join("app-stores"),
        arch: "amd64".into(),
        fetcher: Some(Fetcher::new(&cas, true, true).expect("fetcher")),
        media: None,
        clock: std::sync::Arc::new(hearth_agent::clock::SystemClock),
    })
}

/// The test store plus a second app, as a second version of the store.
fn store_v2() -> Vec<u8> {
    let compose = std::fs::read(apps_common::test_store().join("Apps/WebApp/docker-compose.yml"))
        .expect("fixture");
    zip_of(&[
        ("s-main/Apps/WebApp/docker-compose.yml", &compose),
        ("s-main/Apps/Other/docker-compose.yml", &compose),
        ("s-main/category-list.json", b"[]"),
    ])
}

fn copies(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn a_store_zip_is_downloaded_over_https_and_refreshed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = serve::start(Some(dir.path())).await;
    srv.body(
        "/store/main.zip",
        ZIP,
        serve::test_store_zip("hearth-store-main"),
    );
    let c = catalog(dir.path(), srv.ca_file.as_deref());
    let url = srv.url("/store/main.zip");
    let s = c.add_url(&url).await.expect("adds");
    assert_eq!(s.apps.len(), 1);
    assert_eq!(s.url.as_deref(), Some(url.as_str()));
    assert!(s.source.ends_with("hearth-store-main"), "{:?}", s.source);
    assert_eq!(c.search("tiny", None, "en_US").len(), 1);
    assert!(c.add_url(&url).await.is_err(), "the same URL twice");

    srv.body("/store/main.zip", ZIP, store_v2());
    c.refresh().await;
    let s = &c.stores()[0];
    assert_eq!(s.error, None);
    assert_eq!(s.apps.len(), 2, "the new copy is served");
    let cache = s.source.parent().and_then(Path::parent).expect("cache");
    let names = copies(cache);
    assert_eq!(
        names.len(),
        3,
        "current, the new copy and the previous one: {names:?}"
    );
    assert!(names.contains(&"current".to_string()));

    // A third refresh prunes the oldest copy.
    c.refresh().await;
    assert_eq!(copies(cache).len(), 3, "{:?}", copies(cache));

    // Remembered across restarts, loaded from the cached copy without a download.
    let hits = srv.hits("/store/main.zip");
    let again = catalog(dir.path(), srv.ca_file.as_deref());
    assert_eq!(again.stores()[0].apps.len(), 2);
    assert_eq!(again.stores()[0].id, s.id);
    again.refresh_missing().await;
    assert_eq!(
        srv.hits("/store/main.zip"),
        hits,
        "nothing downloaded at start"
    );
    again.remove(&s.id).expect("removes");
    assert!(!cache.exists(), "the cache of a removed store is deleted");
}

/// The default store: the image's copy (here the test store's folder) is served at once, the
/// published zip replaces it at the first start online, and a restart keeps the download.
#[tokio::test]
async fn the_default_store_moves_from_the_image_copy_to_its_published_zip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = serve::start(Some(dir.path())).await;
    srv.body("/store/main.zip", ZIP, store_v2());
    let url = srv.url("/store/main.zip");
    let open = || {
        let cas: Vec<_> = srv.ca_file.iter().cloned().collect();
        Catalog::open(CatalogOptions {
            dirs: Vec::new(),
            urls: Vec::new(),
            saved: dir.path().join("stores.json"),
            default_store: Some(hearth_agent::apps::catalog::DefaultStore {
                dir: apps_common::test_store(),
                url: Some(url.clone()),
            }),
            cache_dir: dir.path().join("app-stores"),
            arch: "amd64".into(),
            fetcher: Some(Fetcher::new(&cas, true, true).expect("fetcher")),
            media: None,
            clock: std::sync::Arc::new(hearth_agent::clock::SystemClock),
        })
    };
    let c = open();
    let s = &c.stores()[0];
    assert_eq!(s.source, apps_common::test_store());
    assert_eq!(s.apps.len(), 1, "the image's copy, before any download");
    c.refresh_missing().await;
    let s = &c.stores()[0];
    assert_eq!(s.error, None);
    assert_eq!(s.apps.len(), 2, "the published zip replaced it");
    assert_eq!(srv.hits("/store/main.zip"), 1);
    let id = s.id.clone();
    let again = open();
    assert_eq!(again.stores()[0].apps.len(), 2, "the download is kept");
    assert_eq!(
        again.stores()[0].id,
        id,
        "a download does not rename the store"
    );
    again.refresh_missing().await;
    assert_eq!(
        srv.hits("/store/main.zip"),
        1,
        "not downloaded again at start"
    );
}

#[tokio::test]
async fn bad_downloads_keep_the_last_good_copy_and_say_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = serve::start(Some(dir.path())).await;
    srv.body("/s.zip", ZIP, serve::test_store_zip("top"));
    let c = catalog(dir.path(), srv.ca_file.as_deref());
    let good = c.add_url(&srv.url("/s.zip")).await.expect("adds");
    let cache = good.source.parent().and_then(Path::parent).expect("cache");
    let before = copies(cache);

    let mut symlink = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    symlink
        .add_symlink(
            "top/Apps/WebApp/x",
            "/etc/shadow",
            zip::write::SimpleFileOptions::default(),
        )
        .expect("symlink");
    let symlink = symlink.finish().expect("zip").into_inner();
    let big = vec![0u8; hearth_agent::apps::store_zip::MAX_ZIP_BYTES as usize + 1];
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "path traversal",
            Reply::Body {
                content_type: ZIP.into(),
                bytes: zip_of(&[
                    ("top/Apps/A/docker-compose.yml", b"x"),
                    ("../../evil", b"x"),
                ]),
            },
            "'..'",
        ),
        (
            "symlink",
            Reply::Body {
                content_type: ZIP.into(),
                bytes: symlink,
            },
            "symbolic link",
        ),
        (
            "oversized",
            Reply::Body {
                content_type: ZIP.into(),
                bytes: big,
            },
            "larger than",
        ),
        (
            "not a zip",
            Reply::Body {
                content_type: "text/html".into(),
                bytes: b"<html>moved</html>".to_vec(),
            },
            "not a zip file",
        ),
        (
            "no Apps folder",
            Reply::Body {
                content_type: ZIP.into(),
                bytes: zip_of(&[("a/README.md", b"hi"), ("b/README.md", b"hi")]),
            },
            "no Apps/ folder",
        ),
        ("not found", Reply::Status(404), "answered 404"),
        (
            "redirect to plain http",
            Reply::Redirect(format!("http://127.0.0.1:{}/s.zip", srv.port)),
            "not allowed",
        ),
    ];
    for (what, reply, want) in cases {
        srv.set("/s.zip", reply);
        c.refresh().await;
        let s = &c.stores()[0];
        let err = s.error.clone().unwrap_or_default();
        assert!(err.contains(want), "{what}: {err}");
        assert_eq!(s.apps.len(), 1, "{what}: last good copy kept");
        assert_eq!(s.source, good.source, "{what}: same copy");
        assert!(s.refreshed_at.is_some());
        assert_eq!(
            copies(cache),
            before,
            "{what}: nothing replaced or left over"
        );
        assert!(
            !dir.path().join("evil").exists() && !cache.join("evil").exists(),
            "{what}"
        );
    }
    // Healthy again: the error clears.
    srv.body("/s.zip", ZIP, serve::test_store_zip("top"));
    c.refresh().await;
    assert_eq!(c.stores()[0].error, None);
}

#[tokio::test]
async fn adding_a_bad_store_url_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = serve::start(Some(dir.path())).await;
    srv.body("/s.zip", ZIP, serve::test_store_zip("top"));
    srv.body("/bad.zip", ZIP, zip_of(&[("/abs/evil", b"x")]));
    let c = catalog(dir.path(), srv.ca_file.as_deref());
    let closed = common::free_port();
    for (url, want) in [
        (format!("http://127.0.0.1:{}/s.zip", srv.port), "https"),
        ("ftp://example.org/s.zip".to_string(), "https"),
        (
            "https://user:pw@example.org/s.zip".to_string(),
            "credentials",
        ),
        ("not a url".to_string(), "not a valid URL"),
        (srv.url("/bad.zip"), "absolute paths"),
        (format!("https://127.0.0.1:{closed}/s.zip"), "127.0.0.1"),
    ] {
        let err = c.add_url(&url).await.expect_err(&url).to_string();
        assert!(err.contains(want), "{url}: {err}");
    }
    // A server whose certificate the agent does not trust.
    let untrusting = catalog(&dir.path().join("other"), None);
    let err = untrusting
        .add_url(&srv.url("/s.zip"))
        .await
        .expect_err("unknown CA")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(c.stores().is_empty() && untrusting.stores().is_empty());
    assert!(
        !dir.path().join("stores.json").exists(),
        "nothing remembered"
    );
    assert!(
        copies(&dir.path().join("app-stores"))
            .iter()
            .all(|d| copies(&dir.path().join("app-stores").join(d)).is_empty()),
        "no copy left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stores_api_adds_refreshes_and_reports_zip_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = serve::start(Some(dir.path())).await;
    srv.body("/s.zip", ZIP, serve::test_store_zip("top"));
    std::fs::create_dir_all(dir.path().join("agent.d")).expect("mkdir");
    let ca = srv.ca_file.clone().expect("ca");
    std::fs::write(
        dir.path().join("agent.d/10-apps.toml"),
        format!("app_store_ca_files = [{:?}]\n", ca.display().to_string()),
    )
    .expect("drop-in");
    let agent = common::Agent::start(dir.path());
    let mut s = agent.claim().await;

    let url = srv.url("/s.zip");
    let (status, body) = s
        .send(Method::POST, "/api/v1/stores", Some(json!({ "url": url })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["url"], url.as_str());
    assert_eq!(body["apps"], 1);
    assert!(body["loaded_at"].is_string() && body["refreshed_at"].is_string());

    srv.body("/s.zip", ZIP, zip_of(&[("../evil", b"x")]));
    let (status, stores) = s.send(Method::POST, "/api/v1/stores/refresh", None).await;
    assert_eq!(status, StatusCode::OK, "{stores}");
    assert_eq!(stores[0]["apps"], 1, "{stores}");
    assert!(
        stores[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("..")),
        "{stores}"
    );
    let (_, listed) = s.send(Method::GET, "/api/v1/stores", None).await;
    assert_eq!(listed, stores);

    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/stores",
            Some(json!({ "url": srv.url("/s.zip").replace("/s.zip", "/other.zip") })),
        )
        .await;
    // Well-formed, but nothing is served there: the request was fine, the URL holds no store.
    assert_eq!(
        (status, common::error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_a_store"),
        "{body}"
    );
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/stores",
            Some(json!({ "url": url, "path": "/tmp" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
