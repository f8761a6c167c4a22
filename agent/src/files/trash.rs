//! Deleting to a trash folder per root, with restore and empty. Items live under
//! `.hearth-trash/items/<id>` with a record `.hearth-trash/info/<id>.json` saying where they came
//! from; the record is written (atomically) before the move, so a crash leaves at worst a record
//! without an item, which listing ignores.

use super::confined::{Entry, FsError, FsResult, Root};
use super::path::RelPath;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TrashItem {
    pub id: String,
    /// Where the item was, inside its root.
    pub original_path: String,
    /// RFC 3339.
    pub deleted_at: String,
    pub kind: super::confined::EntryKind,
    pub size: u64,
}

fn rel(s: &str) -> FsResult<RelPath> {
    Ok(RelPath::parse(s)?)
}

fn info_path(id: &str) -> FsResult<RelPath> {
    rel(&format!(".hearth-trash/info/{id}.json"))
}

fn item_path(id: &str) -> FsResult<RelPath> {
    rel(&format!(".hearth-trash/items/{id}"))
}

/// Moves `path` into the trash and returns its record.
pub fn trash(root: &Root, path: &RelPath, deleted_at: String) -> FsResult<TrashItem> {
    root.check_user_path(path)?;
    let entry: Entry = root.stat(path)?;
    root.mkdir_all(&rel(".hearth-trash/items")?)?;
    root.mkdir_all(&rel(".hearth-trash/info")?)?;
    let id = crate::auth::tokens::new_id().replace(['-', '_'], "x");
    let item = TrashItem {
        id: id.clone(),
        original_path: path.to_string(),
        deleted_at,
        kind: entry.kind,
        size: entry.size,
    };
    let json = serde_json::to_vec(&item).unwrap_or_default();
    let mut file = root.create_new(&info_path(&id)?)?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(|e| super::confined::io_error(e, path))?;
    if let Err(e) = root.rename_to(path, root, &item_path(&id)?) {
        let _ = root.remove_all(&info_path(&id)?);
        return Err(e);
    }
    Ok(item)
}

/// The trash's items, newest first.
pub fn list(root: &Root) -> FsResult<Vec<TrashItem>> {
    let info_dir = rel(".hearth-trash/info")?;
    let entries = match root.list(&info_dir) {
        Ok(entries) => entries,
        Err(FsError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut items = Vec::new();
    for entry in entries {
        let Some(id) = entry.name.strip_suffix(".json") else {
            continue;
        };
        if let Ok(item) = read_info(root, id)
            && root.stat(&item_path(id)?).is_ok()
        {
            items.push(item);
        }
    }
    items.sort_by(|a, b| b.deleted_at.cmp(&a.deleted_at));
    Ok(items)
}

fn read_info(root: &Root, id: &str) -> FsResult<TrashItem> {
    super::path::validate_name(id)?;
    let path = info_path(id)?;
    let mut text = String::new();
    root.open_read(&path)?
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| super::confined::io_error(e, &path))?;
    serde_json::from_str(&text).map_err(|_| FsError::NotFound(format!("trash item {id}")))
}

/// Puts an item back where it was (recreating missing parent folders). Refuses to replace
/// anything that now occupies its old place.
pub fn restore(root: &Root, id: &str) -> FsResult<TrashItem> {
    let item = read_info(root, id)?;
    let original = RelPath::parse(&item.original_path)?;
    root.check_user_path(&original)?;
    if let Ok((parent, _)) = original.split_last() {
        root.mkdir_all(&parent)?;
    }
    root.rename_to(&item_path(id)?, root, &original)?;
    root.remove_all(&info_path(id)?)?;
    Ok(item)
}

/// Deletes everything in the trash for good.
pub fn empty(root: &Root) -> FsResult<usize> {
    let items = list(root)?;
    for dir in [".hearth-trash/items", ".hearth-trash/info"] {
        match root.remove_all(&rel(dir)?) {
            Ok(()) | Err(FsError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(items.len())
}
