//! The file manager over the real HTTPS API: upload (whole and resumable), download with Range,
//! listing, folder actions, trash, copy jobs, edit conflicts, and hostile URLs.

use crate::common;

use common::{PASSWORD, Session, error_code};
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
    let (_agent, mut s) = common::claimed_agent().await;
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
    let (_agent, mut s) = common::claimed_agent().await;
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
    let (_agent, mut s) = common::claimed_agent().await;
    put(&mut s, "/api/v1/files/home/notes.txt", b"v1".to_vec(), &[]).await;
    let (status, text) = s
        .send(Method::GET, "/api/v1/files/home/notes.txt?edit=true", None)
        .await;
    assert_eq!(
        (status, text["content"].as_str()),
        (StatusCode::OK, Some("v1"))
    );
    let etag = text["etag"].as_str().expect("etag").to_string();
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
    let (_agent, mut s) = common::claimed_agent().await;
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
    // Polled (the list is what this test checks); 60 s only bounds a hang, no timing is asserted.
    for _ in 0..1200 {
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
    let (agent, mut admin) = common::claimed_agent().await;
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
    std::fs::write(agent.dir.join("outside.txt"), b"outside").expect("write");
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
    assert!(!agent.dir.join("files/planted").exists() && !agent.dir.join("planted").exists());
    let (_, roots) = bob.send(Method::GET, "/api/v1/files", None).await;
    let names: Vec<&str> = roots
        .as_array()
        .expect("roots")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, vec!["home"], "the shared folder needs a grant");
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
    let (agent, mut s) = common::claimed_agent().await;
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
    std::fs::write(agent.dir.join("outside-secret.txt"), b"outside secret").expect("write");
    let fotos = agent.dir.join("files/home/admin/Fotos");
    std::os::unix::fs::symlink(agent.dir.join("outside-secret.txt"), fotos.join("leak.txt"))
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
    let zip_path = agent.dir.join("fotos.zip");
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

async fn root_names(s: &mut Session) -> Vec<(String, bool)> {
    let (status, roots) = s.send(Method::GET, "/api/v1/files", None).await;
    assert_eq!(status, StatusCode::OK);
    roots
        .as_array()
        .expect("roots")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().expect("name").to_string(),
                r["writable"].as_bool().expect("writable"),
            )
        })
        .collect()
}

#[tokio::test]
async fn shares_are_seen_and_changed_only_as_granted() {
    let (agent, mut admin) = common::claimed_agent().await;
    for user in ["bob", "carol"] {
        let (status, _) = admin
            .send(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": user, "password": PASSWORD, "role": "member"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, share) = admin
        .send(
            Method::POST,
            "/api/v1/shares",
            Some(json!({"name": "Family", "grants": {"bob": "read", "carol": "write"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    assert_eq!(share["grants"]["bob"], "read");
    put(
        &mut admin,
        "/api/v1/files/Family/plan.txt",
        b"v1".to_vec(),
        &[],
    )
    .await;
    put(
        &mut admin,
        "/api/v1/files/shared/old.txt",
        b"old".to_vec(),
        &[],
    )
    .await;
    for (body, code) in [
        (json!({"name": "../etc"}), "invalid_input"),
        (json!({"name": "home"}), "invalid_input"),
        (json!({"name": "disk-usb"}), "invalid_input"),
        (
            json!({"name": "x", "grants": {"nobody": "read"}}),
            "unknown_name",
        ),
        (
            json!({"name": "y", "grants": {"bob": "admin"}}),
            "invalid_input",
        ),
        (json!({"name": "Family"}), "conflict"),
    ] {
        let (status, reply) = admin
            .send(Method::POST, "/api/v1/shares", Some(body.clone()))
            .await;
        assert!(status.is_client_error(), "{body}: {status}");
        assert_eq!(error_code(&reply), code, "{body}: {reply}");
    }
    assert!(
        !agent.dir.join("files/shares/x").exists() && !agent.dir.join("files/shares/y").exists()
    );

    let mut bob = agent.session();
    bob.login("bob", PASSWORD).await;
    let mut carol = agent.session();
    carol.login("carol", PASSWORD).await;
    assert_eq!(
        root_names(&mut bob).await,
        [("home".to_string(), true), ("Family".to_string(), false)]
    );
    assert_eq!(
        root_names(&mut admin).await[..3],
        [
            ("home".to_string(), true),
            ("Family".to_string(), true),
            ("shared".to_string(), true)
        ]
    );
    let (status, _) = bob.send(Method::GET, "/api/v1/shares", None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "members do not manage shares"
    );

    read_grant_reads_and_refuses_every_change(&agent, &mut bob).await;

    // Write grant: carol changes things; an ungranted share is invisible to her.
    let (status, _) = put(
        &mut carol,
        "/api/v1/files/Family/carol.txt",
        b"c".to_vec(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for url in [
        "/api/v1/files/shared",
        "/api/v1/files/shared/old.txt",
        "/api/v1/trash/shared",
    ] {
        let (status, _, body) = get_bytes(&mut carol, url, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert!(!String::from_utf8_lossy(&body).contains("old-content"));
    }

    rename_regrant_and_delete(&agent, &mut admin, &mut bob, &mut carol).await;
}

/// Read-only: reading and copying out work; every change is refused and changes nothing.
async fn read_grant_reads_and_refuses_every_change(agent: &common::Agent, bob: &mut Session) {
    let (status, _, bytes) = get_bytes(bob, "/api/v1/files/Family/plan.txt", &[]).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, &b"v1"[..]));
    let (status, _, _) = get_bytes(bob, "/api/v1/files/Family?format=zip", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let before = std::fs::read_dir(agent.dir.join("files/shares/Family"))
        .expect("ls")
        .count();
    let (status, body) = put(bob, "/api/v1/files/Family/new.txt", b"x".to_vec(), &[]).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, _) = put(
        bob,
        "/api/v1/files/Family/plan.txt?overwrite=true",
        b"hacked".to_vec(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (method, url, body) in [
        (
            Method::POST,
            "/api/v1/files/Family/sub",
            Some(json!({"action": "mkdir"})),
        ),
        (
            Method::POST,
            "/api/v1/files/Family/plan.txt",
            Some(json!({"action": "rename", "name": "p.txt"})),
        ),
        (
            Method::POST,
            "/api/v1/files/Family/plan.txt",
            Some(json!({"action": "move", "to_root": "home", "to_path": "plan.txt"})),
        ),
        (
            Method::POST,
            "/api/v1/files/home/x",
            Some(json!({"action": "copy", "to_root": "Family", "to_path": "x"})),
        ),
        (Method::DELETE, "/api/v1/files/Family/plan.txt", None),
        (Method::DELETE, "/api/v1/trash/Family", None),
    ] {
        let (status, reply) = bob.send(method.clone(), url, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {url}: {reply}");
    }
    assert_eq!(
        std::fs::read(agent.dir.join("files/shares/Family/plan.txt")).expect("plan"),
        b"v1"
    );
    assert_eq!(
        std::fs::read_dir(agent.dir.join("files/shares/Family"))
            .expect("ls")
            .count(),
        before,
        "nothing created, nothing deleted"
    );
    let (status, _) = bob
        .send(
            Method::POST,
            "/api/v1/files/Family/plan.txt",
            Some(json!({"action": "copy", "to_root": "home", "to_path": "plan.txt"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "copying out of a read share is reading"
    );
}

/// Rename moves the folder; grants change; the old name is gone. Deleting a share with files
/// needs purge=true.
async fn rename_regrant_and_delete(
    agent: &common::Agent,
    admin: &mut Session,
    bob: &mut Session,
    carol: &mut Session,
) {
    let (status, share) = admin
        .send(
            Method::PATCH,
            "/api/v1/shares/Family",
            Some(json!({"name": "Familie", "grants": {"bob": "write"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{share}");
    assert!(agent.dir.join("files/shares/Familie/plan.txt").exists());
    assert!(!agent.dir.join("files/shares/Family").exists());
    let (status, _) = put(bob, "/api/v1/files/Familie/bob.txt", b"b".to_vec(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "bob may write now");
    assert_eq!(root_names(carol).await, [("home".to_string(), true)]);
    let (status, reply) = admin
        .send(
            Method::PATCH,
            "/api/v1/shares/Familie",
            Some(json!({"name": "shared"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&reply)),
        (StatusCode::CONFLICT, "conflict")
    );

    // Deleting a share with files needs purge=true.
    let (status, reply) = admin
        .send(Method::DELETE, "/api/v1/shares/Familie", None)
        .await;
    assert_eq!(
        (status, error_code(&reply)),
        (StatusCode::CONFLICT, "not_empty")
    );
    assert!(agent.dir.join("files/shares/Familie/plan.txt").exists());
    let (status, _) = admin
        .send(Method::DELETE, "/api/v1/shares/Familie?purge=true", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!agent.dir.join("files/shares/Familie").exists());
    let (status, _, _) = get_bytes(bob, "/api/v1/files/Familie", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = admin.send(Method::GET, "/api/v1/shares", None).await;
    assert_eq!(list, json!([{"name": "shared", "grants": {}}]));
}

/// Runs `script` in a busybox container from the local registry with `data` at `/data` and
/// `outside` at `/outside`, as an app would with its app-data folder.
fn in_app_container(data: &std::path::Path, outside: &std::path::Path, script: &str) -> String {
    let output = std::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", "-v"])
        .arg(format!("{}:/data", data.display()))
        .arg("-v")
        .arg(format!("{}:/outside", outside.display()))
        .args(["127.0.0.1:5000/hearth-test/webapp:1", "sh", "-c", script])
        .output()
        .expect("docker run");
    assert!(
        output.status.success(),
        "container failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("ls").flatten() {
        let p = entry.path();
        let meta = std::fs::symlink_metadata(&p).expect("lstat");
        let name = p.display().to_string();
        if meta.is_dir() {
            out.push((name, Vec::new()));
            out.extend(tree(&p));
        } else if meta.is_symlink() {
            out.push((
                name,
                std::fs::read_link(&p)
                    .expect("link")
                    .display()
                    .to_string()
                    .into(),
            ));
        } else {
            out.push((name, std::fs::read(&p).expect("read")));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn links_planted_by_an_app_container_are_never_followed() {
    let (agent, mut s) = common::claimed_agent().await;
    let app = agent.dir.join("app-data/webapp");
    let outside = agent.dir.join("outside");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("secret.txt"), b"outside secret").expect("secret");
    let report = in_app_container(
        &app,
        &outside,
        "ln -s /etc /data/etc; ln -s /outside/secret.txt /data/secret; \
         ln -s /proc/self/root /data/magic; ln -s ../../.. /data/up; \
         echo own > /data/own.txt; ln /data/own.txt /data/own-link; \
         echo in-container > /tmp/c; \
         ln /outside/secret.txt /data/hard 2>/dev/null && echo HARD-OUTSIDE; \
         ln /tmp/c /data/hard2 2>/dev/null && echo HARD-ROOTFS; \
         mkdir /data/sub; echo ok",
    );
    assert_eq!(
        report.trim(),
        "ok",
        "the kernel refuses hard links across mounts (EXDEV), so an app cannot link a file from \
         outside its folder into it"
    );
    let outside_before = tree(&outside);
    let etc_hostname = std::fs::read("/etc/hostname").unwrap_or_default();

    for path in [
        "etc",
        "etc/hostname",
        "etc/passwd",
        "secret",
        "magic",
        "magic/etc/hostname",
        "up",
        "up/outside/secret.txt",
    ] {
        for query in ["", "?format=zip"] {
            let url = format!("/api/v1/files/appdata/webapp/{path}{query}");
            let (status, _, body) = get_bytes(&mut s, &url, &[]).await;
            let text = String::from_utf8_lossy(&body);
            assert!(status.is_client_error(), "{url}: {status} {text}");
            assert!(
                !text.contains("outside secret") && !text.contains("root:x:0"),
                "{url}"
            );
        }
    }
    // Hard links inside the app's folder read like the file they are; appending to one (a
    // resumed upload) is refused, overwriting replaces the name only.
    let (status, _, body) = get_bytes(&mut s, "/api/v1/files/appdata/webapp/own-link", &[]).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"own\n"[..]));
    let (status, _) = put(
        &mut s,
        "/api/v1/files/appdata/webapp/own-link?overwrite=true",
        b"new".to_vec(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(std::fs::read(app.join("own.txt")).expect("own"), b"own\n");

    // Writes through or onto the planted links.
    for (method, path, body) in [
        ("PUT", "etc/planted", None),
        ("PUT", "up/outside/planted", None),
        ("PUT", "magic/tmp/planted", None),
        ("PUT", "secret", None),
        ("POST", "etc/planted", Some(json!({"action": "mkdir"}))),
        (
            "POST",
            "own.txt",
            Some(json!({"action": "rename", "name": "secret"})),
        ),
        (
            "POST",
            "own.txt",
            Some(json!({"action": "rename", "name": "etc"})),
        ),
        (
            "POST",
            "own.txt",
            Some(json!({"action": "move", "to_root": "appdata", "to_path": "webapp/etc/x"})),
        ),
        (
            "POST",
            "sub",
            Some(
                json!({"action": "copy", "to_root": "appdata", "to_path": "webapp/up/outside/sub"}),
            ),
        ),
    ] {
        let url = format!("/api/v1/files/appdata/webapp/{path}");
        let status = if method == "PUT" {
            put(&mut s, &url, b"planted".to_vec(), &[]).await.0
        } else {
            s.send(Method::POST, &url, body).await.0
        };
        assert!(status.is_client_error(), "{method} {url}: {status}");
    }
    // Uploading over a planted link with overwrite replaces the link itself, inside the root.
    let (status, _) = put(
        &mut s,
        "/api/v1/files/appdata/webapp/secret?overwrite=true",
        b"replaced".to_vec(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        !std::fs::symlink_metadata(app.join("secret"))
            .expect("lstat")
            .is_symlink()
    );
    // Deleting the links deletes the links.
    for link in ["etc", "magic", "up"] {
        let url = format!("/api/v1/files/appdata/webapp/{link}?permanent=true");
        let (status, _) = s.send(Method::DELETE, &url, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{url}");
    }
    assert_eq!(tree(&outside), outside_before, "nothing outside changed");
    assert_eq!(
        std::fs::read("/etc/hostname").unwrap_or_default(),
        etc_hostname
    );
    assert!(
        !std::path::Path::new("/etc/planted").exists()
            && !std::path::Path::new("/tmp/planted").exists()
    );
    // The container's files are root-owned; clean up through the agent's own (root) test run.
    let _ = std::fs::remove_dir_all(&app);
}
