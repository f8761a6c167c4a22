//! App icons, thumbnails and screenshots fetched by a real agent from a local HTTP server,
//! cached, and served from authenticated routes as inert images.

use crate::apps_common;
use crate::common;

use apps_common::serve::{self, Reply};
use common::{Agent, error_code};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n-a-tiny-png-for-tests";
const SVG: &str = "<?xml version='1.0'?>\n<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";

/// A store with one app whose images live on `srv`.
fn store(dir: &Path, srv: &serve::TestServer) -> std::path::PathBuf {
    let root = dir.join("media-store");
    std::fs::create_dir_all(root.join("Apps/Pics")).expect("mkdir");
    let compose = format!(
        "services:\n  a:\n    image: 127.0.0.1:5000/hearth-test/webapp:1\nx-casaos:\n  title:\n    en_US: Pics\n  icon: {}\n  thumbnail: {}\n  screenshot_link:\n    - {}\n    - {}\n    - {}\n    - {}\n    - file:///etc/passwd\n",
        srv.url("/icon"),
        srv.url("/thumb"),
        srv.url("/shot.svg"),
        srv.url("/page.html"),
        srv.url("/big.png"),
        srv.url("/r1"),
    );
    std::fs::write(root.join("Apps/Pics/docker-compose.yml"), compose).expect("write");
    root
}

fn start_agent(dir: &Path, store: &Path, allow_private: bool) -> Agent {
    std::fs::create_dir_all(dir.join("agent.d")).expect("mkdir");
    std::fs::write(
        dir.join("agent.d/10-apps.toml"),
        format!(
            "app_stores = [{:?}]\napp_media_allow_private = {allow_private}\n",
            store.display().to_string()
        ),
    )
    .expect("drop-in");
    Agent::start(dir)
}

fn serve_images(srv: &serve::TestServer) {
    srv.body("/icon", "application/octet-stream", PNG.to_vec());
    srv.body("/thumb", "image/webp", b"RIFF\0\0\0\0WEBPVP8 x".to_vec());
    srv.body("/shot.svg", "text/html", SVG.as_bytes().to_vec());
    srv.body(
        "/page.html",
        "image/png",
        b"<html><body>hi</body></html>".to_vec(),
    );
    let mut big = PNG.to_vec();
    big.resize(hearth_agent::apps::media::MAX_MEDIA_BYTES as usize + 1, 0);
    srv.body("/big.png", "image/png", big);
    // Four redirects: one more than allowed.
    for (from, to) in [
        ("/r1", "/r2"),
        ("/r2", "/r3"),
        ("/r3", "/r4"),
        ("/r4", "/icon"),
    ] {
        srv.set(from, Reply::Redirect(srv.url(to)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_fetched_cached_and_served_inert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = serve::start(None).await;
    serve_images(&srv);
    let agent = start_agent(dir.path(), &store(dir.path(), &srv), true);
    let mut s = agent.claim().await;
    let (_, stores) = s.send(Method::GET, "/api/v1/stores", None).await;
    let id = stores[0]["id"].as_str().expect("store id").to_string();
    let base = format!("/api/v1/catalog/{id}/Pics");

    let (status, app) = s.send(Method::GET, &base, None).await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["icon"], format!("{base}/icon"));
    assert_eq!(app["thumbnail"], format!("{base}/thumbnail"));
    assert_eq!(app["screenshots"][0], format!("{base}/screenshots/0"));
    assert!(
        ![&app["screenshots"], &app["icon"], &app["thumbnail"]]
            .iter()
            .any(|v| v.to_string().contains("127.0.0.1:")),
        "no third-party URL reaches the browser outside meta: {}",
        app["screenshots"]
    );
    let (_, cat) = s.send(Method::GET, "/api/v1/catalog", None).await;
    assert_eq!(cat["apps"][0]["icon"], format!("{base}/icon"));

    for _ in 0..2 {
        let (status, headers, body) = s
            .request(Method::GET, &format!("{base}/icon"), None, &[])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["content-type"], "image/png");
        assert!(body.ends_with("-a-tiny-png-for-tests"));
    }
    assert_eq!(
        srv.hits("/icon"),
        1,
        "the second answer came from the cache"
    );

    let (status, headers, _) = s
        .request(Method::GET, &format!("{base}/thumbnail"), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/webp");

    // SVG: typed from its bytes (the server said text/html), never a live document.
    let (status, headers, body) = s
        .request(Method::GET, &format!("{base}/screenshots/0"), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, SVG);
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{csp}"
    );

    for (n, what) in [
        (1, "HTML called image/png"),
        (2, "too large"),
        (3, "too many redirects"),
        (4, "file URL"),
    ] {
        let (status, body) = s
            .send(Method::GET, &format!("{base}/screenshots/{n}"), None)
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_GATEWAY, "image_unavailable"),
            "{what}: {body}"
        );
    }
    assert_eq!(srv.hits("/r4"), 0, "the fourth redirect was not followed");
    let (status, body) = s
        .send(Method::GET, &format!("{base}/screenshots/9"), None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // Sessions only.
    let resp = agent
        .client()
        .get(agent.url(&format!("{base}/icon")))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("app-media"))
        .expect("cache dir")
        .flatten()
        .collect();
    assert_eq!(cached.len(), 3, "icon, thumbnail, screenshot cached");
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_image_urls_are_refused_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = serve::start(None).await;
    serve_images(&srv);
    let agent = start_agent(dir.path(), &store(dir.path(), &srv), false);
    let mut s = agent.claim().await;
    let (_, stores) = s.send(Method::GET, "/api/v1/stores", None).await;
    let id = stores[0]["id"].as_str().expect("store id");
    let (status, body): (StatusCode, Value) = s
        .send(
            Method::GET,
            &format!("/api/v1/catalog/{id}/Pics/icon"),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_GATEWAY, "image_unavailable"),
        "{body}"
    );
    assert!(body.to_string().contains("private or loopback"), "{body}");
    assert_eq!(srv.hits("/icon"), 0, "nothing was requested");
}
