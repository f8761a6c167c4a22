//! The file manager API: roots, listing, download (with Range), streamed and resumable upload,
//! folder actions, delete-to-trash, and copy jobs. Every path goes through `files::RelPath` and
//! a kernel-confined `files::Root`; nothing here builds a host path from request data.

use super::auth::Session;
use super::error::{ApiResult, Body};
use crate::accounts::Authenticated;
use crate::error::ServiceError;
use crate::files::confined::io_error;
use crate::files::{Entry, EntryKind, FsError, OpenRoot, RelPath, Root, RootInfo, trash};
use crate::jobs::JobStatus;
use crate::state::AppState;
use crate::store::Role;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::io::{Seek, SeekFrom};
use tokio::io::AsyncReadExt;
use utoipa::{IntoParams, ToSchema};

/// Files larger than this are not opened in the text editor.
pub const EDIT_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct Listing {
    pub root: String,
    pub path: String,
    pub entries: Vec<Entry>,
    pub total: usize,
    pub offset: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TextFile {
    pub content: String,
    /// Send back in `If-Match` when saving, so a concurrent edit is not overwritten.
    pub etag: String,
}

/// The JSON answers of a `GET` on a path: a folder's listing, or a text file for the editor.
/// For the document only: the handler builds either directly.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FolderAnswer {
    Listing(Listing),
    Text(TextFile),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadProgress {
    /// Bytes of the upload the device has; the next chunk starts here.
    pub received: u64,
    pub complete: bool,
    pub entry: Option<Entry>,
    /// The new file's ETag (for the next `If-Match`), once complete.
    pub etag: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct GetQuery {
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    /// `name` (default), `size` or `modified`; folders always come first.
    #[param(inline)]
    pub sort: Option<SortKey>,
    /// Serve a file for preview in the page instead of as a download (images only).
    pub inline: Option<bool>,
    /// Return a text file's content and ETag for the editor (up to 1 MiB).
    pub edit: Option<bool>,
    /// `zip`: download a folder (or the whole root) as a zip archive, streamed.
    #[param(inline)]
    pub format: Option<ArchiveFormat>,
}

/// The order of a folder listing (after the folders-first rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortKey {
    Name,
    Size,
    Modified,
}

/// How a folder is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveFormat {
    Zip,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PutQuery {
    /// Replace an existing file.
    pub overwrite: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// Delete for good instead of moving to the trash.
    pub permanent: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum FileAction {
    Mkdir,
    Rename { name: String },
    Move { to_root: String, to_path: String },
    Copy { to_root: String, to_path: String },
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ActionResult {
    Entry(Entry),
    Job(JobStatus),
}

fn open_any(state: &AppState, auth: &Authenticated, name: &str) -> ApiResult<OpenRoot> {
    let shares = state.shares().all()?;
    let root = state
        .files
        .open(name, &auth.user.username, auth.user.role, &shares)
        .map_err(|e| ServiceError::Internal(format!("cannot open root {name}: {e}")))?;
    root.ok_or_else(|| ServiceError::NotFound(format!("folder root {name}")).into())
}

/// Opens a root to read from.
fn open_root(state: &AppState, auth: &Authenticated, name: &str) -> ApiResult<Root> {
    Ok(open_any(state, auth, name)?.root)
}

/// Opens a root to change: a share granted read-only answers 403 before anything is touched.
fn open_root_for_write(state: &AppState, auth: &Authenticated, name: &str) -> ApiResult<Root> {
    let open = open_any(state, auth, name)?;
    if !open.writable {
        return Err(ServiceError::Forbidden.into());
    }
    Ok(open.root)
}

fn user_path(root: &Root, raw: &str) -> ApiResult<RelPath> {
    let rel = RelPath::parse(raw).map_err(FsError::from)?;
    root.check_user_path(&rel)?;
    Ok(rel)
}

fn etag(entry: &Entry) -> String {
    format!(
        "\"{:x}-{:x}.{:x}\"",
        entry.size, entry.modified, entry.modified_nanos
    )
}

/// The roots this user may open.
#[utoipa::path(get, path = "/api/v1/files", tag = "files", security(("session" = [])),
    responses((status = 200, body = [RootInfo]), (status = 401, body = super::error::ErrorBody)))]
pub async fn roots(
    State(state): State<AppState>,
    Session(auth): Session,
) -> ApiResult<Json<Vec<RootInfo>>> {
    let shares = state.shares().all()?;
    Ok(Json(state.files.available(
        &auth.user.username,
        auth.user.role,
        &shares,
    )))
}

/// Lists the top of a root.
#[utoipa::path(get, path = "/api/v1/files/{root}", tag = "files", security(("session" = [])),
    params(("root" = String, Path), GetQuery),
    responses((status = 200, description = "A folder listing, a text file for the editor (`edit=true`), a folder as a zip (`format=zip`), or the file's bytes (an image or text type with `inline=true`)",
        content((FolderAnswer = "application/json"), (Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/zip"),
            (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/gif"), (Vec<u8> = "image/webp"), (Vec<u8> = "image/avif"), (Vec<u8> = "text/plain"))),
        (status = 206, description = "Partial content (`Range`)", content((Vec<u8> = "application/octet-stream"))),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "wrong_kind: `format=zip` on a file")))]
pub async fn get_root(
    state: State<AppState>,
    session: Session,
    Path(root): Path<String>,
    query: Query<GetQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    get_path(state, session, Path((root, String::new())), query, headers).await
}

/// Lists a folder (sorted, paged) or downloads a file (with `Range`), or returns a text file for
/// the editor (`?edit=true`).
#[utoipa::path(get, path = "/api/v1/files/{root}/{path}", tag = "files", security(("session" = [])),
    params(("root" = String, Path), ("path" = String, Path, description = "Path inside the root"), GetQuery),
    responses((status = 200, description = "A folder listing, a text file for the editor (`edit=true`), a folder as a zip (`format=zip`), or the file's bytes (an image or text type with `inline=true`)",
        content((FolderAnswer = "application/json"), (Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/zip"),
            (Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/gif"), (Vec<u8> = "image/webp"), (Vec<u8> = "image/avif"), (Vec<u8> = "text/plain"))),
        (status = 206, description = "Partial content (`Range`)", content((Vec<u8> = "application/octet-stream"))),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "wrong_kind: `format=zip` on a file"),
        (status = 413, body = super::error::ErrorBody)))]
pub async fn get_path(
    State(state): State<AppState>,
    Session(auth): Session,
    Path((root_name, raw)): Path<(String, String)>,
    Query(query): Query<GetQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let root = open_root(&state, &auth, &root_name)?;
    let rel = user_path(&root, &raw)?;
    let entry = root.stat(&rel)?;
    let is_dir = entry.kind == EntryKind::Directory
        || (entry.kind == EntryKind::Symlink && root.list(&rel).is_ok());
    match (query.format, is_dir) {
        (None, true) => return Ok(Json(listing(&root, &root_name, &rel, &query)?).into_response()),
        (Some(ArchiveFormat::Zip), true) => return Ok(zip_download(root, &root_name, rel)),
        (None, false) => {}
        (Some(ArchiveFormat::Zip), false) => {
            // The kernel's answer says why: a file (409) or a link out of the root (403).
            root.open_dir(&rel)?;
            return Err(
                ServiceError::invalid("format", "Only folders are downloaded as a zip.").into(),
            );
        }
    }
    if query.edit == Some(true) {
        return text_for_edit(&root, &rel).await;
    }
    download(&root, &rel, query.inline == Some(true), &headers).await
}

fn listing(root: &Root, root_name: &str, rel: &RelPath, query: &GetQuery) -> ApiResult<Listing> {
    let mut entries = root.list(rel)?;
    let dirs_first = |e: &Entry| e.kind != EntryKind::Directory;
    match query.sort {
        Some(SortKey::Size) => {
            entries.sort_by(|a, b| dirs_first(a).cmp(&dirs_first(b)).then(b.size.cmp(&a.size)))
        }
        Some(SortKey::Modified) => entries.sort_by(|a, b| {
            dirs_first(a)
                .cmp(&dirs_first(b))
                .then(b.modified.cmp(&a.modified))
        }),
        None | Some(SortKey::Name) => entries.sort_by(|a, b| {
            dirs_first(a)
                .cmp(&dirs_first(b))
                .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
        }),
    }
    let total = entries.len();
    let offset = query.offset.unwrap_or(0).min(total);
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
    let entries = entries.into_iter().skip(offset).take(limit).collect();
    Ok(Listing {
        root: root_name.to_string(),
        path: rel.to_string(),
        entries,
        total,
        offset,
    })
}

async fn text_for_edit(root: &Root, rel: &RelPath) -> ApiResult<Response> {
    let entry = root.stat(rel)?;
    if entry.size > EDIT_LIMIT {
        return Err(ServiceError::TooLarge(format!(
            "Files over {} KiB cannot be edited here.",
            EDIT_LIMIT / 1024
        ))
        .into());
    }
    let mut file = tokio::fs::File::from_std(root.open_read(rel)?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .await
        .map_err(|e| crate::files::confined::io_error(e, rel))?;
    let content = String::from_utf8(bytes)
        .map_err(|_| ServiceError::invalid("path", "This file is not text (UTF-8)."))?;
    Ok(Json(TextFile {
        content,
        etag: etag(&entry),
    })
    .into_response())
}

/// Content types safe to show inline; anything else (HTML, SVG, scripts) is a download.
fn inline_type(name: &str) -> Option<&'static str> {
    match name.rsplit('.').next()?.to_ascii_lowercase().as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "avif" => Some("image/avif"),
        "txt" | "log" | "md" => Some("text/plain; charset=utf-8"),
        _ => None,
    }
}

/// A folder as a zip, built on a blocking thread while the response streams (see
/// `files::archive`). An error mid-way aborts the response, so a client never takes a truncated
/// archive for a whole one.
fn zip_download(root: Root, root_name: &str, rel: RelPath) -> Response {
    let top = rel.name().unwrap_or(root_name).to_string();
    let file_name = format!("{top}.zip");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let err_tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let writer = crate::files::archive::ChannelWriter::new(tx);
        let result = crate::files::archive::write_zip(&root, &rel, &top, writer)
            .and_then(|mut w| std::io::Write::flush(&mut w).map_err(|e| io_error(e, &rel)));
        if let Err(e) = result {
            tracing::warn!("zip of {rel} stopped: {e}");
            let _ = err_tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut response = axum::body::Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Some(v) = content_disposition("attachment", &file_name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`: the plain form has only safe
/// ASCII (others become `_`), the encoded one the exact name. Public for the fuzz harness.
pub fn content_disposition(disposition: &str, name: &str) -> Option<HeaderValue> {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.()".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "{disposition}; filename=\"{plain}\"; filename*=UTF-8''{encoded}"
    ))
    .ok()
}

/// `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` against `size`; None for anything else.
pub fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?.trim();
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.saturating_sub(n), size - 1)
        }
        (s, "") => (s.parse().ok()?, size - 1),
        (s, e) => (s.parse().ok()?, e.parse::<u64>().ok()?.min(size - 1)),
    };
    (start <= end && start < size).then_some((start, end))
}

async fn download(
    root: &Root,
    rel: &RelPath,
    inline: bool,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let entry = root.stat(rel)?;
    let file = root.open_read(rel)?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(entry.size);
    let name = rel.name().unwrap_or("download").to_string();
    let inline_ct = inline.then(|| inline_type(&name)).flatten();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some(r) => match parse_range(r, size) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
            None => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                )
                    .into_response());
            }
        },
    };
    let mut file = file;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| crate::files::confined::io_error(e, rel))?;
    let stream = crate::files::transfer::read_stream(file, len);
    let mut response = axum::body::Body::from_stream(stream).into_response();
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(inline_ct.unwrap_or("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&etag(&entry)) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{}", start, start + len - 1, size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    let disposition = if inline_ct.is_some() {
        "inline"
    } else {
        "attachment"
    };
    if let Some(v) = content_disposition(disposition, &name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `Content-Range: bytes START-END/TOTAL` or `bytes */TOTAL` (a status query). Public for the
/// fuzz harness.
pub fn parse_content_range(value: &str) -> Option<(Option<(u64, u64)>, u64)> {
    let spec = value.strip_prefix("bytes ")?.trim();
    let (range, total) = spec.split_once('/')?;
    let total: u64 = total.parse().ok()?;
    if range == "*" {
        return Some((None, total));
    }
    let (s, e) = range.split_once('-')?;
    let (s, e): (u64, u64) = (s.parse().ok()?, e.parse().ok()?);
    (s <= e && e < total).then_some((Some((s, e)), total))
}

/// Uploads a file, streamed to disk. Send it whole, or in chunks with
/// `Content-Range: bytes START-END/TOTAL` (resumable: `bytes */TOTAL` with an empty body asks
/// how much arrived). `If-Match` with the editor's ETag refuses to overwrite a changed file.
#[utoipa::path(put, path = "/api/v1/files/{root}/{path}", tag = "files", security(("session" = [])),
    params(("root" = String, Path), ("path" = String, Path), PutQuery),
    // Optional: an empty body is an empty file (HTTP cannot tell a missing body from an empty one).
    request_body(content = Option<Vec<u8>>, content_type = "application/octet-stream", description = "The file's bytes, or the next chunk of them; empty for an empty file"),
    responses((status = 201, body = UploadProgress, description = "Upload complete"),
        (status = 202, body = UploadProgress, description = "Chunk stored; more expected"),
        (status = 409, body = super::error::ErrorBody, description = "exists or upload_offset"),
        (status = 412, body = super::error::ErrorBody, description = "edit_conflict")))]
pub async fn put_path(
    State(state): State<AppState>,
    Session(auth): Session,
    Path((root_name, raw)): Path<(String, String)>,
    Query(query): Query<PutQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let root = open_root_for_write(&state, &auth, &root_name)?;
    let rel = user_path(&root, &raw)?;
    let (parent, _) = rel.split_last().map_err(FsError::from)?;
    if root.stat(&parent)?.kind != EntryKind::Directory {
        return Err(FsError::NotADirectory(parent.to_string()).into());
    }
    let overwrite = query.overwrite == Some(true) || headers.contains_key(header::IF_MATCH);
    if !overwrite && root.stat(&rel).is_ok() {
        return Err(FsError::Exists(rel.to_string()).into());
    }
    let range =
        match headers
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
        {
            Some(v) => Some(parse_content_range(v).ok_or_else(|| {
                ServiceError::invalid("Content-Range", "Use bytes START-END/TOTAL.")
            })?),
            None => None,
        };
    let partial = partial_path(&auth.user.username, &rel)?;
    root.mkdir_all(&RelPath::parse(".hearth-uploads").map_err(FsError::from)?)?;
    let received = match root.stat(&partial) {
        Ok(e) => e.size,
        Err(FsError::NotFound(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    let (start, total) = match range {
        Some((None, _)) => return Ok(progress(StatusCode::ACCEPTED, received, false, None)),
        Some((Some((s, _)), total)) => (s, Some(total)),
        None => (0, None),
    };
    if start == 0 && received > 0 {
        root.remove_all(&partial)?;
    } else if start != received {
        return Err(ServiceError::UploadOffset { received }.into());
    }
    let file = if start == 0 {
        root.create_new(&partial)?
    } else {
        root.open_append(&partial)?
    };
    // Body frames are small (TLS records): they are gathered and written a MiB at a time on
    // the blocking pool while the next ones arrive (files::transfer).
    let mut file = crate::files::transfer::Writer::new(file, start);
    let mut written = start;
    let mut stream = body.into_data_stream();
    let io = |e| crate::files::confined::io_error(e, &rel);
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                // Keep what arrived, so a resumed upload continues from there.
                file.finish(false).await.map_err(io)?;
                return Err(
                    ServiceError::invalid("body", format!("the upload broke off: {e}")).into(),
                );
            }
        };
        written += chunk.len() as u64;
        file.push(chunk).await.map_err(io)?;
    }
    file.finish(true).await.map_err(io)?;
    if let Some((Some((_, end)), _)) = range
        && written != end + 1
    {
        return Err(ServiceError::invalid(
            "body",
            format!(
                "expected bytes up to {end}, got {}",
                written.saturating_sub(1)
            ),
        )
        .into());
    }
    match total {
        Some(total) if written < total => Ok(progress(StatusCode::ACCEPTED, written, false, None)),
        _ => {
            finish_upload(&root, &partial, &rel, overwrite, &headers)?;
            Ok(progress(
                StatusCode::CREATED,
                written,
                true,
                Some(root.stat(&rel)?),
            ))
        }
    }
}

fn progress(status: StatusCode, received: u64, complete: bool, entry: Option<Entry>) -> Response {
    let etag = entry.as_ref().map(etag);
    let body = UploadProgress {
        received,
        complete,
        entry,
        etag,
    };
    (status, Json(body)).into_response()
}

/// Where an unfinished upload of `rel` by `user` collects.
fn partial_path(user: &str, rel: &RelPath) -> ApiResult<RelPath> {
    let key = blake3::hash(format!("{user}\0{rel}").as_bytes()).to_hex();
    Ok(RelPath::parse(&format!(".hearth-uploads/{}", &key[..32])).map_err(FsError::from)?)
}

fn finish_upload(
    root: &Root,
    partial: &RelPath,
    rel: &RelPath,
    overwrite: bool,
    headers: &HeaderMap,
) -> ApiResult<()> {
    if let Some(expected) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        let current = root.stat(rel).map(|e| etag(&e)).unwrap_or_default();
        if current != expected {
            let _ = root.remove_all(partial);
            return Err(ServiceError::PreconditionFailed(
                "The file changed since you opened it.".into(),
            )
            .into());
        }
    }
    if overwrite {
        root.replace_file(partial, rel)?;
    } else {
        root.rename_to(partial, root, rel)?;
    }
    Ok(())
}

/// Creates a folder, renames, moves, or copies (as a job with progress).
#[utoipa::path(post, path = "/api/v1/files/{root}/{path}", tag = "files", security(("session" = [])),
    params(("root" = String, Path), ("path" = String, Path)), request_body = FileAction,
    responses((status = 201, body = ActionResult), (status = 202, body = ActionResult, description = "Copy job started"),
        (status = 409, body = super::error::ErrorBody)))]
pub async fn post_path(
    State(state): State<AppState>,
    Session(auth): Session,
    Path((root_name, raw)): Path<(String, String)>,
    Body(action): Body<FileAction>,
) -> ApiResult<Response> {
    // A copy only reads its source; every other action changes this root.
    let root = match action {
        FileAction::Copy { .. } => open_root(&state, &auth, &root_name)?,
        _ => open_root_for_write(&state, &auth, &root_name)?,
    };
    let rel = user_path(&root, &raw)?;
    let created = |root: &Root, rel: &RelPath| -> ApiResult<Response> {
        Ok((
            StatusCode::CREATED,
            Json(ActionResult::Entry(root.stat(rel)?)),
        )
            .into_response())
    };
    match action {
        FileAction::Mkdir => {
            root.mkdir(&rel)?;
            created(&root, &rel)
        }
        FileAction::Rename { name } => {
            let (parent, _) = rel.split_last().map_err(FsError::from)?;
            let to = parent.join(&name).map_err(FsError::from)?;
            root.check_user_path(&to)?;
            root.rename_to(&rel, &root, &to)?;
            created(&root, &to)
        }
        FileAction::Move { to_root, to_path } => {
            let dest = open_root_for_write(&state, &auth, &to_root)?;
            let to = user_path(&dest, &to_path)?;
            root.rename_to(&rel, &dest, &to)?;
            created(&dest, &to)
        }
        FileAction::Copy { to_root, to_path } => {
            let dest = open_root_for_write(&state, &auth, &to_root)?;
            let to = user_path(&dest, &to_path)?;
            root.stat(&rel)?;
            // Refused now, not in a failed job: a destination folder that is missing, not a
            // folder, or leads out of its root.
            let (to_parent, _) = to.split_last().map_err(FsError::from)?;
            dest.open_dir(&to_parent)?;
            if dest.stat(&to).is_ok() {
                return Err(FsError::Exists(to.to_string()).into());
            }
            let description = format!("Copy {root_name}{rel} to {to_root}{to}");
            let job = state.jobs.start(
                "copy",
                &auth.user.username,
                description,
                state.events.clone(),
            );
            let status = job.status();
            tokio::task::spawn_blocking(move || {
                let result = root.copy_to(&rel, &dest, &to, &mut |done| job.progress(done));
                if result.is_err() {
                    let _ = dest.remove_all(&to);
                }
                job.finish(result.map(|_| ()).map_err(|e| e.to_string()));
            });
            Ok((StatusCode::ACCEPTED, Json(ActionResult::Job(status))).into_response())
        }
    }
}

/// Moves a file or folder to the root's trash (or deletes it for good with `?permanent=true`).
#[utoipa::path(delete, path = "/api/v1/files/{root}/{path}", tag = "files", security(("session" = [])),
    params(("root" = String, Path), ("path" = String, Path), DeleteQuery),
    responses((status = 200, body = trash::TrashItem), (status = 204, description = "Deleted for good"),
        (status = 404, body = super::error::ErrorBody)))]
pub async fn delete_path(
    State(state): State<AppState>,
    Session(auth): Session,
    Path((root_name, raw)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> ApiResult<Response> {
    let root = open_root_for_write(&state, &auth, &root_name)?;
    let rel = user_path(&root, &raw)?;
    if rel.is_root() {
        return Err(FsError::Path(crate::files::path::PathError::IsRoot).into());
    }
    if query.permanent == Some(true) {
        root.remove_all(&rel)?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let item = trash::trash(&root, &rel, super::models::rfc3339(state.clock.now()))?;
    Ok(Json(item).into_response())
}

/// What is in a root's trash.
#[utoipa::path(get, path = "/api/v1/trash/{root}", tag = "files", security(("session" = [])),
    params(("root" = String, Path)), responses((status = 200, body = [trash::TrashItem])))]
pub async fn trash_list(
    State(state): State<AppState>,
    Session(auth): Session,
    Path(root_name): Path<String>,
) -> ApiResult<Json<Vec<trash::TrashItem>>> {
    let root = open_root(&state, &auth, &root_name)?;
    Ok(Json(trash::list(&root)?))
}

/// Empties a root's trash.
#[utoipa::path(delete, path = "/api/v1/trash/{root}", tag = "files", security(("session" = [])),
    params(("root" = String, Path)), responses((status = 204)))]
pub async fn trash_empty(
    State(state): State<AppState>,
    Session(auth): Session,
    Path(root_name): Path<String>,
) -> ApiResult<StatusCode> {
    let root = open_root_for_write(&state, &auth, &root_name)?;
    trash::empty(&root)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restores a trashed item to where it was.
#[utoipa::path(post, path = "/api/v1/trash/{root}/{id}", tag = "files", security(("session" = [])),
    params(("root" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = trash::TrashItem), (status = 409, body = super::error::ErrorBody)))]
pub async fn trash_restore(
    State(state): State<AppState>,
    Session(auth): Session,
    Path((root_name, id)): Path<(String, String)>,
) -> ApiResult<Json<trash::TrashItem>> {
    let root = open_root_for_write(&state, &auth, &root_name)?;
    Ok(Json(trash::restore(&root, &id)?))
}

/// The caller's jobs (admins see all).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "files", security(("session" = [])),
    responses((status = 200, body = [JobStatus])))]
pub async fn jobs(State(state): State<AppState>, Session(auth): Session) -> Json<Vec<JobStatus>> {
    Json(
        state
            .jobs
            .list(&auth.user.username, auth.user.role == Role::Admin),
    )
}

/// Cancels a running job.
#[utoipa::path(delete, path = "/api/v1/jobs/{id}", tag = "files", security(("session" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Session(auth): Session,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state
        .jobs
        .cancel(&id, &auth.user.username, auth.user.role == Role::Admin)
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ServiceError::NotFound(format!("job {id}")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 999)));
        for bad in [
            "bytes=1000-",
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=x-1",
        ] {
            assert_eq!(parse_range(bad, 1000), None, "{bad}");
        }
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((Some((0, 99)), 1000))
        );
        assert_eq!(parse_content_range("bytes */1000"), Some((None, 1000)));
        assert_eq!(parse_content_range("bytes 0-1000/1000"), None);
        assert_eq!(parse_content_range("bytes 5-1/10"), None);
    }
}
