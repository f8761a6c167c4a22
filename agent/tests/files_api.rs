//! The file manager over the real HTTPS API: upload (whole and resumable), download with Range,
//! listing, folder actions, trash, copy jobs, edit conflicts, and hostile URLs.

mod common;

use common::{Agent, PASSWORD, Session, error_code};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn put(
    s: &mut Session,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = s.client.put(format!("{}{}", s.base, path)).body(body);
    req = req.header(
        "cookie",
        format!(
            "__Host-hearth_session={}",
            s.cookie.clone().expect("cookie")
        ),
    );
    req = req.header("x-csrf-token", s.csrf.clone().expect("csrf"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("put");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get_bytes(
    s: &mut Session,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = s.client.get(format!("{}{}", s.base, path));
    req = req.header(
        "cookie",
        format!(
            "__Host-hearth_session={}",
            s.cookie.clone().expect("cookie")
        ),
    );
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("get");
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn upload_download_range_list_and_trash() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.claim().await;
    let (status, _) = s
        .send(
            Method::POST,
            "/api/v1/files/home/docs",
            Some(json!({"action": "mkdir"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (status, body) = put(
        &mut s,
        "/api/v1/files/home/docs/data.bin",
        data.clone(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["entry"]["size"], 300_000);
    let (status, body) = put(
        &mut s,
        "/api/v1/files/home/docs/data.bin",
        b"x".to_vec(),
        &[],
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "exists"),
        "no silent overwrite"
    );

    let (status, headers, bytes) = get_bytes(&mut s, "/api/v1/files/home/docs/data.bin", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, data);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("cd")
            .starts_with("attachment")
    );
    let (status, headers, bytes) = get_bytes(
        &mut s,
        "/api/v1/files/home/docs/data.bin",
        &[("range", "bytes=1000-1999")],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, data[1000..2000]);
    assert_eq!(headers["content-range"], "bytes 1000-1999/300000");
    let (status, _, _) = get_bytes(
        &mut s,
        "/api/v1/files/home/docs/data.bin",
        &[("range", "bytes=400000-")],
    )
    .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

    let (status, listing) = s.send(Method::GET, "/api/v1/files/home", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listing["entries"][0]["name"], "docs");
    assert_eq!(listing["entries"][0]["kind"], "directory");

    let (status, item) = s
        .send(Method::DELETE, "/api/v1/files/home/docs/data.bin", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get_bytes(&mut s, "/api/v1/files/home/docs/data.bin", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, trash) = s.send(Method::GET, "/api/v1/trash/home", None).await;
    assert_eq!(trash[0]["original_path"], "/docs/data.bin");
    let id = item["id"].as_str().expect("id");
    let (status, _) = s
        .send(Method::POST, &format!("/api/v1/trash/home/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, bytes) = get_bytes(&mut s, "/api/v1/files/home/docs/data.bin", &[]).await;
    assert_eq!(bytes, data, "restored intact");
}

#[tokio::test]
async fn an_interrupted_upload_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.claim().await;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let path = "/api/v1/files/home/big.bin";
    let (status, body) = put(
        &mut s,
        path,
        data[..400_000].to_vec(),
        &[("content-range", "bytes 0-399999/1000000")],
    )
    .await;
    assert_eq!(
        (status, body["received"].as_u64()),
        (StatusCode::ACCEPTED, Some(400_000))
    );
    // The client lost track: it asks where to continue.
    let (status, body) = put(
        &mut s,
        path,
        Vec::new(),
        &[("content-range", "bytes */1000000")],
    )
    .await;
    assert_eq!(
        (status, body["received"].as_u64()),
        (StatusCode::ACCEPTED, Some(400_000))
    );
    // A chunk at the wrong offset is refused and says where to continue.
    let (status, body) = put(
        &mut s,
        path,
        data[500_000..].to_vec(),
        &[("content-range", "bytes 500000-999999/1000000")],
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "upload_offset")
    );
    let (status, listing) = s.send(Method::GET, "/api/v1/files/home", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listing["total"], 0,
        "a partial upload is not visible as a file: {listing}"
    );
    let (status, body) = put(
        &mut s,
        path,
        data[400_000..].to_vec(),
        &[("content-range", "bytes 400000-999999/1000000")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, _, bytes) = get_bytes(&mut s, path, &[]).await;
    assert_eq!(bytes, data);
}

#[tokio::test]
async fn text_edits_detect_conflicts() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.claim().await;
    put(&mut s, "/api/v1/files/home/notes.txt", b"v1".to_vec(), &[]).await;
    let (status, text) = s
        .send(Method::GET, "/api/v1/files/home/notes.txt?edit=true", None)
        .await;
    assert_eq!(
        (status, text["content"].as_str()),
        (StatusCode::OK, Some("v1"))
    );
    let etag = text["etag"].as_str().expect("etag").to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, _) = put(
        &mut s,
        "/api/v1/files/home/notes.txt",
        b"v2 from elsewhere".to_vec(),
        &[("if-match", &etag)],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = put(
        &mut s,
        "/api/v1/files/home/notes.txt",
        b"v2 stale".to_vec(),
        &[("if-match", &etag)],
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::PRECONDITION_FAILED, "edit_conflict")
    );
    let (_, _, bytes) = get_bytes(&mut s, "/api/v1/files/home/notes.txt", &[]).await;
    assert_eq!(bytes, b"v2 from elsewhere");
    let big = vec![b'a'; 1024 * 1024 + 1];
    put(&mut s, "/api/v1/files/home/big.txt", big, &[]).await;
    let (status, body) = s
        .send(Method::GET, "/api/v1/files/home/big.txt?edit=true", None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
}

#[tokio::test]
async fn copy_runs_as_a_job_and_rename_moves() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.claim().await;
    s.send(
        Method::POST,
        "/api/v1/files/home/a",
        Some(json!({"action": "mkdir"})),
    )
    .await;
    put(&mut s, "/api/v1/files/home/a/f.txt", b"hello".to_vec(), &[]).await;
    let (status, job) = s
        .send(
            Method::POST,
            "/api/v1/files/home/a",
            Some(json!({"action": "copy", "to_root": "shared", "to_path": "a-copy"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("id").to_string();
    let mut state = String::new();
    for _ in 0..100 {
        let (_, jobs) = s.send(Method::GET, "/api/v1/jobs", None).await;
        let found = jobs
            .as_array()
            .expect("jobs")
            .iter()
            .find(|j| j["id"] == id.as_str())
            .cloned()
            .expect("job listed");
        state = found["state"].as_str().unwrap_or_default().to_string();
        if state != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "done");
    let (_, _, bytes) = get_bytes(&mut s, "/api/v1/files/shared/a-copy/f.txt", &[]).await;
    assert_eq!(bytes, b"hello");
    let (status, entry) = s
        .send(
            Method::POST,
            "/api/v1/files/home/a/f.txt",
            Some(json!({"action": "rename", "name": "g.txt"})),
        )
        .await;
    assert_eq!(
        (status, entry["name"].as_str()),
        (StatusCode::CREATED, Some("g.txt"))
    );
    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/files/home/a/g.txt",
            Some(json!({"action": "rename", "name": "../escape"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
}

#[tokio::test]
async fn hostile_urls_and_other_users_files_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut admin = agent.claim().await;
    admin
        .send(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "bob", "password": PASSWORD, "role": "member"})),
        )
        .await;
    put(
        &mut admin,
        "/api/v1/files/home/secret.txt",
        b"admin only".to_vec(),
        &[],
    )
    .await;
    std::fs::write(dir.path().join("outside.txt"), b"outside").expect("write");
    let mut bob = agent.session();
    bob.login("bob", PASSWORD).await;
    let hostile = [
        "/api/v1/files/home/..%2f..%2fadmin%2fsecret.txt",
        "/api/v1/files/home/%2e%2e/%2e%2e/outside.txt",
        "/api/v1/files/home/..%252f..%252fadmin",
        "/api/v1/files/home/a%00b",
        "/api/v1/files/home/.hearth-trash/info",
        "/api/v1/files/home/.hearth-uploads",
        "/api/v1/files/appdata",
        "/api/v1/files/nonexistent",
        "/api/v1/trash/appdata",
        "/api/v1/files/home/%0aevil",
    ];
    for url in hostile {
        let (status, headers, body) = get_bytes(&mut bob, url, &[]).await;
        let text = String::from_utf8_lossy(&body);
        assert!(status.is_client_error(), "{url}: {status} {text}");
        assert!(
            !text.contains("admin only") && !text.contains("outside"),
            "{url} leaked: {text}"
        );
        assert!(
            headers.get("content-disposition").is_none(),
            "{url} served a file"
        );
    }
    let (status, body) = put(
        &mut bob,
        "/api/v1/files/home/..%2f..%2fplanted",
        b"x".to_vec(),
        &[],
    )
    .await;
    assert!(status.is_client_error(), "{body}");
    assert!(!dir.path().join("files/planted").exists() && !dir.path().join("planted").exists());
    let (_, roots) = bob.send(Method::GET, "/api/v1/files", None).await;
    let names: Vec<&str> = roots
        .as_array()
        .expect("roots")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, vec!["home", "shared"]);
}

/// Reads a zip with Python's `zipfile` (an independent reader) and returns name → content (or
/// `"<dir>"`), plus whether every non-ASCII name carried the UTF-8 flag.
fn unzip_with_python(zip: &std::path::Path) -> Value {
    let script = r#"
import json, sys, zipfile
out = {}
utf8 = True
with zipfile.ZipFile(sys.argv[1]) as z:
    assert z.testzip() is None, "bad CRC"
    for info in z.infolist():
        if not info.filename.isascii() and not info.flag_bits & 0x800:
            utf8 = False
        out[info.filename] = "<dir>" if info.is_dir() else z.read(info).decode("latin-1")
print(json.dumps({"entries": out, "utf8": utf8}))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "python could not read the zip: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

#[tokio::test]
async fn folders_download_as_a_streamed_zip_without_following_symlinks_out() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = Agent::start(dir.path());
    let mut s = agent.claim().await;
    for folder in [
        "/api/v1/files/home/Fotos",
        "/api/v1/files/home/Fotos/Sommer été",
    ] {
        let (status, _) = s
            .send(Method::POST, folder, Some(json!({"action": "mkdir"})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    put(
        &mut s,
        "/api/v1/files/home/Fotos/a.txt",
        b"alpha".to_vec(),
        &[],
    )
    .await;
    put(
        &mut s,
        "/api/v1/files/home/Fotos/Sommer%20%C3%A9t%C3%A9/%E6%B5%B7.bin",
        big.clone(),
        &[],
    )
    .await;
    put(&mut s, "/api/v1/files/home/top.txt", b"top".to_vec(), &[]).await;
    // Planted links: out of the root (file and folder), and one that stays inside.
    std::fs::write(dir.path().join("outside-secret.txt"), b"outside secret").expect("write");
    let fotos = dir.path().join("files/home/admin/Fotos");
    std::os::unix::fs::symlink(
        dir.path().join("outside-secret.txt"),
        fotos.join("leak.txt"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink("/etc", fotos.join("etc")).expect("symlink");
    std::os::unix::fs::symlink("a.txt", fotos.join("inside-link")).expect("symlink");

    let (status, headers, bytes) =
        get_bytes(&mut s, "/api/v1/files/home/Fotos?format=zip", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/zip");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"Fotos.zip\"; filename*=UTF-8''Fotos.zip"
    );
    let zip_path = dir.path().join("fotos.zip");
    std::fs::write(&zip_path, &bytes).expect("write zip");
    let read = unzip_with_python(&zip_path);
    let big_text: String = big.iter().map(|b| *b as char).collect();
    assert_eq!(
        read["entries"],
        json!({
            "Fotos/": "<dir>",
            "Fotos/Sommer été/": "<dir>",
            "Fotos/Sommer été/海.bin": big_text,
            "Fotos/a.txt": "alpha",
        }),
        "symlinks (in or out of the root) are left out, never followed"
    );
    assert_eq!(read["utf8"], true, "non-ASCII names carry the UTF-8 flag");
    assert!(!String::from_utf8_lossy(&bytes).contains("outside secret"));
    assert!(!String::from_utf8_lossy(&bytes).contains("root:x:0:0"));

    // The whole root, and a folder with a non-ASCII name (safe file name in the header).
    let (status, headers, bytes) = get_bytes(&mut s, "/api/v1/files/home?format=zip", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"home.zip\"; filename*=UTF-8''home.zip"
    );
    std::fs::write(&zip_path, &bytes).expect("write zip");
    let read = unzip_with_python(&zip_path);
    let names: Vec<&String> = read["entries"].as_object().expect("map").keys().collect();
    assert!(names.contains(&&"home/top.txt".to_string()), "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains(".hearth")),
        "Hearth's own folders stay out: {names:?}"
    );
    let (status, headers, _) = get_bytes(
        &mut s,
        "/api/v1/files/home/Fotos/Sommer%20%C3%A9t%C3%A9?format=zip",
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"Sommer _t_.zip\"; filename*=UTF-8''Sommer%20%C3%A9t%C3%A9.zip"
    );

    // A symlinked folder pointing out of the root cannot be zipped; nor can a file; nor can an
    // unknown format be asked for.
    for (url, code) in [
        (
            "/api/v1/files/home/Fotos/etc?format=zip",
            StatusCode::FORBIDDEN,
        ),
        (
            "/api/v1/files/home/top.txt?format=zip",
            StatusCode::CONFLICT,
        ),
        (
            "/api/v1/files/home/Fotos?format=tar",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, _, body) = get_bytes(&mut s, url, &[]).await;
        assert_eq!(status, code, "{url}: {}", String::from_utf8_lossy(&body));
        assert!(!String::from_utf8_lossy(&body).contains("root:x:0:0"));
    }
}
