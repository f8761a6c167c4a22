//! App stores and the catalog: CasaOS-layout folders (`Apps/<name>/docker-compose.yml`,
//! `category-list.json`, icons) loaded into memory, searched by title, tagline and description
//! in the user's language, filtered by category. A store that fails to reload keeps its last
//! good copy and reports why. Stores added by an admin are remembered in one JSON file written
//! atomically.

use super::casaos::{self, AppMeta};
use super::source;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Category {
    pub name: String,
    #[serde(default)]
    pub font: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StoreApp {
    /// The folder name under `Apps/`.
    pub name: String,
    pub compose_path: PathBuf,
    pub meta: AppMeta,
}

#[derive(Debug, Clone)]
pub struct LoadedStore {
    pub id: String,
    pub source: PathBuf,
    /// From the configuration (cannot be removed through the API).
    pub configured: bool,
    pub loaded_at: Option<String>,
    pub error: Option<String>,
    pub apps: Vec<StoreApp>,
    pub categories: Vec<Category>,
}

/// One search hit, localized.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CatalogEntry {
    pub store: String,
    pub app: String,
    pub title: String,
    pub tagline: String,
    pub category: Option<String>,
    pub version: Option<String>,
    pub icon: Option<String>,
    /// False when the app is not published for this device's architecture.
    pub available: bool,
    pub architectures: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("app store {0} not found")]
    StoreNotFound(String),
    #[error("app {app} not found in store {store}")]
    AppNotFound { store: String, app: String },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot save the store list: {0}")]
    Save(std::io::Error),
}

#[derive(Debug, Clone)]
pub struct Catalog {
    stores: Arc<RwLock<Vec<LoadedStore>>>,
    saved: PathBuf,
    arch: String,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Reads one store folder.
pub fn load_store(dir: &Path) -> Result<(Vec<StoreApp>, Vec<Category>), String> {
    let apps_dir = dir.join("Apps");
    let entries =
        std::fs::read_dir(&apps_dir).map_err(|e| format!("{}: {e}", apps_dir.display()))?;
    let mut apps = Vec::new();
    for e in entries.flatten() {
        let compose_path = e.path().join("docker-compose.yml");
        let Ok(text) = source::read_text(&compose_path, super::compose::MAX_COMPOSE_BYTES) else {
            continue;
        };
        let Ok(v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
            tracing::warn!(path = %compose_path.display(), "store app is not valid YAML; skipped");
            continue;
        };
        let mut warnings = Vec::new();
        let meta = casaos::app_meta(v.get("x-casaos"), &mut warnings);
        apps.push(StoreApp {
            name: e.file_name().to_string_lossy().into_owned(),
            compose_path,
            meta,
        });
    }
    if apps.is_empty() {
        return Err(format!("{} holds no apps", apps_dir.display()));
    }
    apps.sort_by_key(|a| a.name.to_lowercase());
    let categories = std::fs::read_to_string(dir.join("category-list.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok((apps, categories))
}

/// A store id from its folder: `store-config.json`'s `store_id`, else the folder name,
/// reduced to the app-id grammar.
fn store_id(dir: &Path) -> String {
    let from_config = std::fs::read_to_string(dir.join("store-config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("store_id")
                .and_then(|s| s.as_str())
                .map(str::to_string)
        });
    let raw = from_config.unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "store".into())
    });
    super::names::app_id_from(&raw)
}

fn matches(meta: &AppMeta, name: &str, q: &str, lang: &str) -> bool {
    if q.is_empty() {
        return true;
    }
    let q = q.to_lowercase();
    let texts = [&meta.title, &meta.tagline, &meta.description];
    name.to_lowercase().contains(&q)
        || texts.iter().any(|t| {
            [t.pick(lang), t.pick("en_US")]
                .into_iter()
                .flatten()
                .any(|s| s.to_lowercase().contains(&q))
        })
}

impl Catalog {
    /// Loads the configured stores and those saved in `saved` (a JSON list of folders).
    pub fn load(configured: &[PathBuf], saved: PathBuf, arch: &str) -> Self {
        let extra: Vec<PathBuf> = std::fs::read_to_string(&saved)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let mut stores = Vec::new();
        for (dir, configured) in configured
            .iter()
            .map(|d| (d, true))
            .chain(extra.iter().map(|d| (d, false)))
        {
            let mut s = LoadedStore {
                id: store_id(dir),
                source: dir.clone(),
                configured,
                loaded_at: None,
                error: None,
                apps: Vec::new(),
                categories: Vec::new(),
            };
            reload(&mut s);
            if !stores.iter().any(|o: &LoadedStore| o.id == s.id) {
                stores.push(s);
            }
        }
        Self {
            stores: Arc::new(RwLock::new(stores)),
            saved,
            arch: arch.to_string(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<LoadedStore>> {
        self.stores.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<LoadedStore>> {
        self.stores.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stores(&self) -> Vec<LoadedStore> {
        self.read().clone()
    }

    /// Reloads every store; a store that fails keeps its last good apps and records the error.
    pub fn refresh(&self) {
        for s in self.write().iter_mut() {
            reload(s);
        }
    }

    /// Adds a local store folder and remembers it.
    pub fn add(&self, dir: &Path) -> Result<LoadedStore, CatalogError> {
        if !dir.is_absolute() {
            return Err(CatalogError::Invalid(
                "a store folder must be an absolute path".into(),
            ));
        }
        let (apps, categories) = load_store(dir).map_err(CatalogError::Invalid)?;
        let store = LoadedStore {
            id: store_id(dir),
            source: dir.to_path_buf(),
            configured: false,
            loaded_at: Some(now()),
            error: None,
            apps,
            categories,
        };
        let mut stores = self.write();
        if stores.iter().any(|s| s.id == store.id) {
            return Err(CatalogError::Invalid(format!(
                "a store with id {} exists already",
                store.id
            )));
        }
        stores.push(store.clone());
        self.save(&stores)?;
        Ok(store)
    }

    pub fn remove(&self, id: &str) -> Result<(), CatalogError> {
        let mut stores = self.write();
        let pos = stores
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| CatalogError::StoreNotFound(id.into()))?;
        if stores[pos].configured {
            return Err(CatalogError::Invalid(format!(
                "store {id} comes from the configuration"
            )));
        }
        stores.remove(pos);
        self.save(&stores)
    }

    fn save(&self, stores: &[LoadedStore]) -> Result<(), CatalogError> {
        let extra: Vec<&PathBuf> = stores
            .iter()
            .filter(|s| !s.configured)
            .map(|s| &s.source)
            .collect();
        let json = serde_json::to_vec_pretty(&extra).unwrap_or_default();
        crate::fsutil::write_atomic(&self.saved, &json, 0o600).map_err(CatalogError::Save)
    }

    /// Search over every store; `q` matches title, tagline, description (and folder name).
    pub fn search(&self, q: &str, category: Option<&str>, lang: &str) -> Vec<CatalogEntry> {
        let mut out = Vec::new();
        for s in self.read().iter() {
            for a in &s.apps {
                let cat_ok = category.is_none_or(|c| {
                    a.meta
                        .category
                        .as_deref()
                        .is_some_and(|ac| ac.eq_ignore_ascii_case(c))
                });
                if cat_ok && matches(&a.meta, &a.name, q.trim(), lang) {
                    out.push(self.entry(&s.id, a, lang));
                }
            }
        }
        out.sort_by_key(|a| a.title.to_lowercase());
        out
    }

    pub fn entry(&self, store: &str, a: &StoreApp, lang: &str) -> CatalogEntry {
        CatalogEntry {
            store: store.to_string(),
            app: a.name.clone(),
            title: a.meta.title.pick(lang).unwrap_or(&a.name).to_string(),
            tagline: a.meta.tagline.pick(lang).unwrap_or_default().to_string(),
            category: a.meta.category.clone(),
            version: a.meta.version.clone(),
            icon: a.meta.icon.clone(),
            available: a.meta.architectures.is_empty()
                || a.meta.architectures.iter().any(|x| x == &self.arch),
            architectures: a.meta.architectures.clone(),
        }
    }

    pub fn app(&self, store: &str, app: &str) -> Result<StoreApp, CatalogError> {
        let stores = self.read();
        let s = stores
            .iter()
            .find(|s| s.id == store)
            .ok_or_else(|| CatalogError::StoreNotFound(store.into()))?;
        s.apps
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(app))
            .cloned()
            .ok_or_else(|| CatalogError::AppNotFound {
                store: store.into(),
                app: app.into(),
            })
    }

    /// Every category of every store, without duplicates.
    pub fn categories(&self) -> Vec<Category> {
        let mut out: Vec<Category> = Vec::new();
        for s in self.read().iter() {
            for c in &s.categories {
                if !out.iter().any(|o| o.name == c.name) {
                    out.push(c.clone());
                }
            }
        }
        out
    }
}

fn reload(s: &mut LoadedStore) {
    match load_store(&s.source) {
        Ok((apps, categories)) => {
            s.apps = apps;
            s.categories = categories;
            s.loaded_at = Some(now());
            s.error = None;
        }
        Err(e) => s.error = Some(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn casaos() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/appstores/casaos")
    }

    fn test_store() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/test-store")
    }

    #[test]
    fn the_casaos_store_loads_and_searches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Catalog::load(&[casaos()], dir.path().join("stores.json"), "amd64");
        let stores = c.stores();
        assert_eq!(stores[0].id, "zimaos-appstore");
        assert!(stores[0].apps.len() >= 160, "{}", stores[0].apps.len());
        assert!(c.search("", None, "en_US").len() >= 160);
        let git = c.search("git", None, "en_US");
        assert!(git.iter().any(|e| e.app == "Gitea"), "{git:?}");
        let media = c.search("", Some("media"), "en_US");
        assert!(!media.is_empty() && media.iter().all(|e| e.category.as_deref() == Some("Media")));
        assert!(c.categories().iter().any(|k| k.name == "Media"));
    }

    #[test]
    fn a_store_that_breaks_keeps_its_last_good_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        std::fs::create_dir_all(store.join("Apps/WebApp")).expect("mkdir");
        std::fs::copy(
            test_store().join("Apps/WebApp/docker-compose.yml"),
            store.join("Apps/WebApp/docker-compose.yml"),
        )
        .expect("copy");
        let c = Catalog::load(&[], dir.path().join("stores.json"), "riscv64");
        let added = c.add(&store).expect("adds");
        assert_eq!(added.apps.len(), 1);
        let hit = &c.search("tiny http", None, "de_DE")[0];
        assert_eq!(hit.title, "Test-Web-App");
        assert!(!hit.available, "not published for riscv64");
        std::fs::remove_dir_all(store.join("Apps")).expect("break it");
        c.refresh();
        let s = &c.stores()[0];
        assert!(s.error.is_some());
        assert_eq!(s.apps.len(), 1, "last good copy kept");
        // Remembered across restarts.
        let again = Catalog::load(&[], dir.path().join("stores.json"), "amd64");
        assert_eq!(again.stores().len(), 1);
        again.remove(&s.id).expect("removes");
        assert!(
            Catalog::load(&[], dir.path().join("stores.json"), "amd64")
                .stores()
                .is_empty()
        );
    }

    #[test]
    fn bad_store_folders_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Catalog::load(&[], dir.path().join("stores.json"), "amd64");
        assert!(c.add(Path::new("relative")).is_err());
        assert!(c.add(dir.path()).is_err());
    }
}
