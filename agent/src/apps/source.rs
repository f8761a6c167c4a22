//! Reading a compose file and its side files (`env_file`s, `configs.*.file`) from a folder.
//! Side files must be relative paths inside the compose file's folder: no absolute paths, no
//! `..`, no symlinks leading out, and each is size-limited, so a store cannot make the agent
//! read arbitrary files.

use super::compose::MAX_COMPOSE_BYTES;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: usize },
    #[error("{path}: not valid UTF-8")]
    NotText { path: PathBuf },
}

/// A compose file's text and the side files it names that exist beside it.
#[derive(Debug, Clone)]
pub struct ComposeSource {
    pub path: PathBuf,
    pub text: String,
    pub side_files: BTreeMap<String, String>,
}

/// Reads at most `limit` bytes of UTF-8 text.
pub fn read_text(path: &Path, limit: usize) -> Result<String, SourceError> {
    let io = |error| SourceError::Io {
        path: path.to_path_buf(),
        error,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(limit as u64 + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() > limit {
        return Err(SourceError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    String::from_utf8(buf).map_err(|_| SourceError::NotText {
        path: path.to_path_buf(),
    })
}

/// The relative paths the compose text names as side files (best effort: YAML errors are left
/// for the parser to report).
pub fn side_file_names(text: &str) -> Vec<String> {
    let Ok(v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(services) = v.get("services").and_then(|s| s.as_mapping()) {
        for svc in services.values() {
            match svc.get("env_file") {
                Some(serde_yaml_ng::Value::String(s)) => out.push(s.clone()),
                Some(serde_yaml_ng::Value::Sequence(items)) => {
                    for i in items {
                        if let Some(p) = i
                            .as_str()
                            .or_else(|| i.get("path").and_then(|p| p.as_str()))
                        {
                            out.push(p.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for section in ["configs", "secrets"] {
        if let Some(m) = v.get(section).and_then(|s| s.as_mapping()) {
            for def in m.values() {
                if let Some(f) = def.get("file").and_then(|f| f.as_str()) {
                    out.push(f.to_string());
                }
            }
        }
    }
    out
}

/// The compose file for `file`: the path itself, or with a store the app of that name
/// (`<store>/Apps/<name>/docker-compose.yml`, matched without regard to case).
pub fn locate(file: &Path, store_dir: Option<&Path>) -> Result<PathBuf, SourceError> {
    let Some(store) = store_dir else {
        return Ok(file.to_path_buf());
    };
    if file.is_file() {
        return Ok(file.to_path_buf());
    }
    let apps = store.join("Apps");
    let want = file.to_string_lossy().to_lowercase();
    let entries = std::fs::read_dir(&apps).map_err(|error| SourceError::Io {
        path: apps.clone(),
        error,
    })?;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().to_lowercase() == want {
            return Ok(e.path().join("docker-compose.yml"));
        }
    }
    Err(SourceError::Io {
        path: apps.join(file),
        error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such app in the store"),
    })
}

/// True for a plain relative path that stays inside its folder.
fn confined(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Loads `path` and its side files. Side files that are missing or refused are left out (the
/// planner then reports the one it needs by name).
pub fn load(path: &Path) -> Result<ComposeSource, SourceError> {
    let text = read_text(path, MAX_COMPOSE_BYTES)?;
    // A bare file name has the empty path as its parent: that is the current folder.
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let canon_dir = dir.canonicalize().map_err(|error| SourceError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    let mut side_files = BTreeMap::new();
    for rel in side_file_names(&text) {
        if !confined(&rel) {
            continue;
        }
        let full = dir.join(&rel);
        let inside = full.canonicalize().is_ok_and(|c| c.starts_with(&canon_dir));
        if inside && let Ok(t) = read_text(&full, 256 * 1024) {
            side_files.insert(rel, t);
        }
    }
    Ok(ComposeSource {
        path: path.to_path_buf(),
        text,
        side_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_files_outside_the_folder_are_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = dir.path().join("app");
        std::fs::create_dir(&app).expect("mkdir");
        std::fs::write(dir.path().join("secret.env"), "TOKEN=x").expect("write");
        std::fs::write(app.join("ok.env"), "A=1").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret.env"), app.join("link.env"))
            .expect("symlink");
        std::fs::write(
            app.join("docker-compose.yml"),
            "services:\n  a:\n    image: x\n    env_file: [ok.env, ../secret.env, /etc/hostname, link.env]\n",
        )
        .expect("write");
        let src = load(&app.join("docker-compose.yml")).expect("loads");
        assert_eq!(src.side_files.keys().collect::<Vec<_>>(), ["ok.env"]);
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big.yml");
        std::fs::write(&p, vec![b'#'; MAX_COMPOSE_BYTES + 1]).expect("write");
        assert!(matches!(load(&p), Err(SourceError::TooLarge { .. })));
    }
}
