//! App stores and the catalog: CasaOS-layout folders (`Apps/<name>/docker-compose.yml`,
//! `category-list.json`, icons) loaded into memory, searched by title, tagline and description
//! in the user's language, filtered by category. A store that fails to reload keeps its last
//! good copy and reports why. Stores added by an admin are remembered in one JSON file written
//! atomically.
//!
//! A store can also be a zip URL (https only; GitHub's `archive/refs/heads/main.zip` layout with
//! one top folder works). Each URL has a cache folder `<cache>/<blake3(url)>/` holding unpacked
//! copies `v-<n>/` and a `current` symlink swapped atomically (`rename`) after a new copy has
//! been downloaded, checked ([`super::store_zip`]) and loaded; the previous copy is kept so an
//! install reading it meanwhile still finds its files, older ones are deleted. A download
//! that fails leaves `current`, the loaded apps and the previous copies untouched and records
//! the error.

use super::casaos::{self, AppMeta};
use super::fetch::Fetcher;
use super::{source, store_zip};
use crate::clock::SharedClock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
    /// [`AppMeta::for_listing`]: the title, tagline and every short field.
    pub meta: AppMeta,
    /// The description in every language, compressed: most of a store's text, and read only by
    /// a search and by the app's page.
    pub description: PackedText,
    /// An icon file in the app's store folder, found when the store was loaded (its type is
    /// checked from its bytes when served).
    pub icon_file: Option<PathBuf>,
}

/// Text the catalog keeps compressed: an app's description in every language, one zstd frame
/// per language. The CasaOS store's descriptions are 2.29 MB of text in up to 24 languages
/// (two thirds of the catalog's memory on a device that sits idle); packed, 1.18 MB. A search
/// unpacks the reader's language and English only (docs/apps.md, "The catalog in memory"); one
/// frame for every language would pack to 1.00 MB, but a search would then unpack all of them:
/// 5.3 ms for a search instead of 0.8 (`ci/bench-catalog`).
#[derive(Debug, Clone, Default)]
pub struct PackedText(BTreeMap<Box<str>, Box<[u8]>>);

impl PackedText {
    /// zstd's own default: unpacking is as fast at any level, and higher ones gain a few percent
    /// on text this short for several times the load's time.
    const LEVEL: i32 = 3;

    /// A compression context for [`PackedText::pack`], one per loading thread: a context made
    /// for each of a store's ~1,800 texts took more time than compressing them.
    pub fn packer() -> Option<zstd::bulk::Compressor<'static>> {
        zstd::bulk::Compressor::new(Self::LEVEL)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "no zstd compression context; store apps' descriptions are not kept");
            })
            .ok()
    }

    pub fn pack(text: &casaos::Localized, z: &mut zstd::bulk::Compressor<'_>) -> Self {
        let mut packed = BTreeMap::new();
        for (lang, t) in &text.0 {
            match z.compress(t.as_bytes()) {
                Ok(bytes) => {
                    packed.insert(lang.as_str().into(), bytes.into_boxed_slice());
                }
                Err(e) => {
                    tracing::warn!(error = %e, lang, "could not pack a store app's description; kept none in that language");
                }
            }
        }
        Self(packed)
    }

    /// Every language, as the app's page shows it.
    pub fn unpack(&self) -> casaos::Localized {
        let Ok(mut z) = zstd::bulk::Decompressor::new() else {
            return casaos::Localized::default();
        };
        casaos::Localized(
            self.0
                .iter()
                .filter_map(|(lang, bytes)| Some((lang.to_string(), unpack_frame(&mut z, bytes)?)))
                .collect(),
        )
    }

    /// The frame of the text [`casaos::Localized::pick`] would choose for `lang`.
    fn pick_frame(&self, lang: &str) -> Option<&[u8]> {
        casaos::pick_locale(&self.0, lang).map(|b| &b[..])
    }

    /// Bytes held, for the memory figures in the tests.
    #[cfg(test)]
    fn packed_len(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// One frame's text; `bulk::compress` wrote its size in the frame's header.
fn unpack_frame(z: &mut zstd::bulk::Decompressor<'_>, bytes: &[u8]) -> Option<String> {
    let size = zstd::zstd_safe::get_frame_content_size(bytes)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())?;
    String::from_utf8(z.decompress(bytes, size).ok()?).ok()
}

#[derive(Debug, Clone)]
pub struct LoadedStore {
    pub id: String,
    /// The folder the apps are read from (for a zip store: the current unpacked copy).
    pub source: PathBuf,
    /// Where a zip store is downloaded from.
    pub url: Option<String>,
    /// From the configuration (cannot be removed through the API).
    pub configured: bool,
    /// The default store's copy in the image (`apps.default_store_dir`): served until a
    /// download from `url` succeeds.
    pub bundled: Option<PathBuf>,
    /// When the current copy was loaded.
    pub loaded_at: Option<String>,
    /// When the last refresh was tried (successful or not).
    pub refreshed_at: Option<String>,
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
    /// The agent's route serving the icon (the store's URL is never given to the browser).
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
    /// A well-formed folder or URL whose contents are not a usable store.
    #[error("{location} is not an app store: {reason}")]
    NotAStore { location: String, reason: String },
    /// A store URL the agent will not fetch (not https, credentials in it, no host, too long).
    #[error("{0}")]
    BadUrl(String),
    #[error("{0}")]
    Exists(String),
    #[error("store {0} comes from the configuration")]
    Configured(String),
    #[error("no {0}")]
    ImageNotFound(String),
    #[error("cannot save the store list: {0}")]
    Save(std::io::Error),
    #[error(transparent)]
    Media(#[from] super::media::MediaError),
}

/// One entry of the saved store list: a folder, or a zip URL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
enum SavedStore {
    Dir(PathBuf),
    /// The default store: the image's copy, refreshed from `url` when one is set.
    Default {
        bundled: PathBuf,
        #[serde(default)]
        url: Option<String>,
    },
    Url {
        url: String,
    },
}

/// The store a fresh device starts with (`apps.default_store_dir`, `apps.default_store_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultStore {
    /// The copy shipped in the image.
    pub dir: PathBuf,
    /// Its published zip (https), downloaded when the device is online.
    pub url: Option<String>,
}

/// Where the stores come from and how zip stores are downloaded.
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    pub dirs: Vec<PathBuf>,
    pub urls: Vec<String>,
    /// The JSON file remembering stores added through the API.
    pub saved: PathBuf,
    /// Seeded into the saved list while that file does not exist yet (a fresh device); once
    /// the list is written (a store added or removed) it is what counts, so a removed default
    /// store does not come back.
    pub default_store: Option<DefaultStore>,
    /// Where zip stores are unpacked.
    pub cache_dir: PathBuf,
    pub arch: String,
    /// The client for zip stores (None: URL stores cannot be refreshed).
    pub fetcher: Option<Fetcher>,
    /// Fetches and caches icons and screenshots (None: only icons in store folders).
    pub media: Option<super::media::MediaCache>,
    /// Time stamps of loads and refreshes.
    pub clock: SharedClock,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    stores: Arc<RwLock<Vec<LoadedStore>>>,
    saved: PathBuf,
    cache_dir: PathBuf,
    arch: String,
    fetcher: Option<Fetcher>,
    media: Option<super::media::MediaCache>,
    /// One refresh (or URL add) at a time.
    refreshing: Arc<tokio::sync::Mutex<()>>,
    clock: SharedClock,
    /// Open until the first load is done (see [`Catalog::open_in_background`]).
    loaded: Arc<Latch>,
}

/// A gate that opens once and stays open: readers of the catalog wait on it while the first
/// load runs in the background.
#[derive(Debug, Default)]
struct Latch {
    open: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Latch {
    fn opened() -> Self {
        Self {
            open: std::sync::Mutex::new(true),
            cv: std::sync::Condvar::new(),
        }
    }
    fn release(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }
    fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        while !*open {
            open = self.cv.wait(open).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Reads one store folder. The compose files are parsed on every core (most of a load is YAML
/// parsing: 167 CasaOS apps took 155 ms on one core).
pub fn load_store(dir: &Path) -> Result<(Vec<StoreApp>, Vec<Category>), String> {
    let apps_dir = dir.join("Apps");
    let entries =
        std::fs::read_dir(&apps_dir).map_err(|e| format!("{}: {e}", apps_dir.display()))?;
    let folders: Vec<(String, PathBuf)> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let per_thread = folders.len().div_ceil(threads).max(1);
    let apps: Vec<StoreApp> = std::thread::scope(|scope| {
        let workers: Vec<_> = folders
            .chunks(per_thread)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut packer = PackedText::packer();
                    chunk
                        .iter()
                        .filter_map(|folder| load_app(folder, packer.as_mut()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    if apps.is_empty() {
        return Err(format!("{} holds no apps", apps_dir.display()));
    }
    // Copied here, then the workers' copies dropped: each worker kept its apps in its own
    // allocator arena, scattered among the freed remains of the YAML it parsed, which pinned
    // that arena's pages. The copies lie together; the arenas empty and go back to the system
    // at the next heap trim (0.8 MB anonymous, natively; docs/image.md, "The agent's memory").
    let mut apps: Vec<StoreApp> = apps.iter().map(StoreApp::clone).collect();
    apps.sort_by_key(|a| a.name.to_lowercase());
    let categories = std::fs::read_to_string(dir.join("category-list.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok((apps, categories))
}

/// The `x-casaos` metadata of a compose file; None when it cannot be read or is not YAML.
fn read_meta(compose_path: &Path) -> Option<AppMeta> {
    let text = source::read_text(compose_path, super::compose::MAX_COMPOSE_BYTES).ok()?;
    let Ok(v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
        tracing::warn!(path = %compose_path.display(), "store app's compose file is not valid YAML");
        return None;
    };
    Some(casaos::app_meta(v.get("x-casaos"), &mut Vec::new()))
}

/// An app's whole metadata, read again from its compose file: the catalog keeps only
/// [`AppMeta::for_listing`]. When the file cannot be read any more (a store refresh removed
/// it), what the catalog kept.
pub fn full_meta(app: &StoreApp) -> AppMeta {
    read_meta(&app.compose_path).unwrap_or_else(|| AppMeta {
        description: app.description.unpack(),
        ..app.meta.clone()
    })
}

/// One app folder of a store; None (skipped) without a readable, valid compose file.
fn load_app(
    (name, folder): &(String, PathBuf),
    packer: Option<&mut zstd::bulk::Compressor<'_>>,
) -> Option<StoreApp> {
    let compose_path = folder.join("docker-compose.yml");
    let meta = read_meta(&compose_path)?;
    let description = packer
        .map(|z| PackedText::pack(&meta.description, z))
        .unwrap_or_default();
    let meta = meta.for_listing();
    let icon_file = ["icon.png", "icon.svg", "icon.jpg", "icon.webp"]
        .into_iter()
        .map(|f| folder.join(f))
        .find(|p| p.is_file());
    Some(StoreApp {
        name: name.clone(),
        compose_path,
        meta,
        description,
        icon_file,
    })
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

/// Whether `q` is in the app's folder name, or in its title, tagline or description in the
/// reader's language or English. The description is unpacked only when nothing else matched.
fn matches(app: &StoreApp, q: &str, lang: &str, z: &mut zstd::bulk::Decompressor<'_>) -> bool {
    if q.is_empty() {
        return true;
    }
    let q = q.to_lowercase();
    let found = |t: &casaos::Localized| {
        [t.pick(lang), t.pick("en_US")]
            .into_iter()
            .flatten()
            .any(|s| s.to_lowercase().contains(&q))
    };
    app.name.to_lowercase().contains(&q) || found(&app.meta.title) || found(&app.meta.tagline) || {
        let mine = app.description.pick_frame(lang);
        let english = app.description.pick_frame("en_US");
        let english = english.filter(|e| mine.is_none_or(|m| !std::ptr::eq(*e, m)));
        [mine, english]
            .into_iter()
            .flatten()
            .filter_map(|frame| unpack_frame(z, frame))
            .any(|s| s.to_lowercase().contains(&q))
    }
}

impl Catalog {
    /// Loads the configured store folders and those saved in `saved` (no zip stores).
    pub fn load(configured: &[PathBuf], saved: PathBuf, arch: &str) -> Self {
        let cache_dir = saved.parent().unwrap_or(Path::new(".")).join("app-stores");
        Self::open(CatalogOptions {
            dirs: configured.to_vec(),
            urls: Vec::new(),
            saved,
            default_store: None,
            cache_dir,
            arch: arch.to_string(),
            fetcher: None,
            media: None,
            clock: Arc::new(crate::clock::SystemClock),
        })
    }

    /// Loads every configured and saved store from disk (zip stores from their cached copy;
    /// nothing is downloaded here: see [`Catalog::refresh_missing`]).
    pub fn open(o: CatalogOptions) -> Self {
        let stores = load_stores(&o);
        Self::with_stores(o, stores, Arc::new(Latch::opened()))
    }

    /// Like [`Catalog::open`], but the stores load on a thread of their own: the agent answers
    /// before its catalog is parsed (167 compose files: about 0.1 s on a PC, seconds on a small
    /// board or under emulation, all of it otherwise on the boot's critical path). Anything
    /// that reads the catalog waits until the load is done.
    pub fn open_in_background(o: CatalogOptions) -> Self {
        let latch = Arc::new(Latch::default());
        let catalog = Self::with_stores(o.clone(), Vec::new(), latch.clone());
        let stores = catalog.stores.clone();
        let opts = o.clone();
        let spawned = std::thread::Builder::new()
            .name("catalog-load".into())
            .spawn(move || {
                let loaded = load_stores(&opts);
                *stores.write().unwrap_or_else(|p| p.into_inner()) = loaded;
                latch.release();
            });
        if let Err(e) = spawned {
            // No thread to spare: load here instead.
            tracing::warn!(error = %e, "cannot load the app catalog in the background");
            let loaded = load_stores(&o);
            *catalog.stores.write().unwrap_or_else(|p| p.into_inner()) = loaded;
            catalog.loaded.release();
        }
        catalog
    }

    fn with_stores(o: CatalogOptions, stores: Vec<LoadedStore>, loaded: Arc<Latch>) -> Self {
        Self {
            stores: Arc::new(RwLock::new(stores)),
            saved: o.saved,
            cache_dir: o.cache_dir,
            arch: o.arch,
            fetcher: o.fetcher,
            media: o.media,
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
            clock: o.clock,
            loaded,
        }
    }
}

/// Every configured and saved store, read from disk.
fn load_stores(o: &CatalogOptions) -> Vec<LoadedStore> {
    let started = std::time::Instant::now();
    let extra: Vec<SavedStore> = match std::fs::read_to_string(&o.saved) {
        Ok(t) => serde_json::from_str(&t).unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => o
            .default_store
            .iter()
            .map(|d| SavedStore::Default {
                bundled: d.dir.clone(),
                url: d.url.clone(),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let configured = o
        .dirs
        .iter()
        .map(|d| (SavedStore::Dir(d.clone()), true))
        .chain(
            o.urls
                .iter()
                .map(|u| (SavedStore::Url { url: u.clone() }, true)),
        );
    let mut stores = Vec::new();
    for (entry, configured) in configured.chain(extra.into_iter().map(|e| (e, false))) {
        let s = match entry {
            SavedStore::Dir(dir) => {
                let mut s = LoadedStore {
                    id: store_id(&dir),
                    source: dir,
                    url: None,
                    configured,
                    bundled: None,
                    loaded_at: None,
                    refreshed_at: None,
                    error: None,
                    apps: Vec::new(),
                    categories: Vec::new(),
                };
                reload(&mut s, o.clock.now_rfc3339());
                s
            }
            SavedStore::Url { url } => {
                cached_url_store(&o.cache_dir, &url, configured, o.clock.now_rfc3339())
            }
            SavedStore::Default { bundled, url } => {
                default_store(&o.cache_dir, bundled, url, o.clock.now_rfc3339())
            }
        };
        if !stores.iter().any(|o: &LoadedStore| o.id == s.id) {
            stores.push(s);
        }
    }
    tracing::info!(
        stores = stores.len(),
        apps = stores.iter().map(|s| s.apps.len()).sum::<usize>(),
        ms = started.elapsed().as_millis() as u64,
        "app catalog loaded"
    );
    stores
}

impl Catalog {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<LoadedStore>> {
        self.loaded.wait();
        self.stores.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<LoadedStore>> {
        self.loaded.wait();
        self.stores.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stores(&self) -> Vec<LoadedStore> {
        self.read().clone()
    }

    /// Reloads the folder stores; a store that fails keeps its last good apps and records the
    /// error. Zip stores are left alone (see [`Catalog::refresh`]).
    pub fn refresh_dirs(&self) {
        let now = self.clock.now_rfc3339();
        for s in self.write().iter_mut().filter(|s| s.url.is_none()) {
            reload(s, now.clone());
        }
    }

    /// Reloads every store: folders from disk, zip stores downloaded anew.
    pub async fn refresh(&self) {
        let _one = self.refreshing.lock().await;
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.refresh_dirs()).await;
        let urls: Vec<(String, String)> = self
            .read()
            .iter()
            .filter_map(|s| s.url.clone().map(|u| (s.id.clone(), u)))
            .collect();
        for (id, url) in urls {
            self.refresh_url(&id, &url).await;
        }
    }

    /// Downloads the zip stores that have no copy yet (at start), and the default store's zip
    /// while the image's copy is served.
    pub async fn refresh_missing(&self) {
        let _one = self.refreshing.lock().await;
        let urls: Vec<(String, String)> = self
            .read()
            .iter()
            .filter(|s| s.loaded_at.is_none() || s.bundled.as_ref() == Some(&s.source))
            .filter_map(|s| s.url.clone().map(|u| (s.id.clone(), u)))
            .collect();
        for (id, url) in urls {
            self.refresh_url(&id, &url).await;
        }
    }

    async fn refresh_url(&self, id: &str, url: &str) {
        let result = self.download(url).await;
        let mut stores = self.write();
        let Some(s) = stores.iter_mut().find(|s| s.id == id) else {
            return;
        };
        s.refreshed_at = Some(self.clock.now_rfc3339());
        match result {
            Ok(d) => {
                s.source = d.root;
                s.apps = d.apps;
                s.categories = d.categories;
                s.loaded_at = s.refreshed_at.clone();
                s.error = None;
            }
            Err(e) => {
                tracing::warn!(store = %id, error = %e, "app store refresh failed; keeping the last good copy");
                s.error = Some(e);
            }
        }
    }

    /// Downloads, checks, unpacks and loads `url`, then makes it the current copy.
    async fn download(&self, url: &str) -> Result<Downloaded, String> {
        let fetcher = self
            .fetcher
            .as_ref()
            .ok_or("downloading stores is not configured")?;
        let zip = fetcher
            .get(url, store_zip::MAX_ZIP_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        let dir = url_cache_dir(&self.cache_dir, url);
        tokio::task::spawn_blocking(move || install_copy(&dir, &zip.bytes))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Adds a zip store: downloaded and checked now; refused (and not remembered) if that fails.
    pub async fn add_url(&self, url: &str) -> Result<LoadedStore, CatalogError> {
        check_store_url(url).map_err(CatalogError::BadUrl)?;
        let _one = self.refreshing.lock().await;
        if self.read().iter().any(|s| s.url.as_deref() == Some(url)) {
            return Err(CatalogError::Exists(format!("{url} is added already")));
        }
        let d = self
            .download(url)
            .await
            .map_err(|reason| CatalogError::NotAStore {
                location: url.to_string(),
                reason,
            })?;
        let store = LoadedStore {
            id: url_store_id(&d.root, url),
            source: d.root,
            url: Some(url.to_string()),
            configured: false,
            bundled: None,
            loaded_at: Some(self.clock.now_rfc3339()),
            refreshed_at: Some(self.clock.now_rfc3339()),
            error: None,
            apps: d.apps,
            categories: d.categories,
        };
        let mut stores = self.write();
        if stores.iter().any(|s| s.id == store.id) {
            let _ = std::fs::remove_dir_all(url_cache_dir(&self.cache_dir, url));
            return Err(CatalogError::Exists(format!(
                "a store with id {} exists already",
                store.id
            )));
        }
        stores.push(store.clone());
        self.save(&stores)?;
        Ok(store)
    }

    /// Adds a local store folder and remembers it.
    pub fn add(&self, dir: &Path) -> Result<LoadedStore, CatalogError> {
        if !dir.is_absolute() {
            return Err(CatalogError::Invalid(
                "a store folder must be an absolute path".into(),
            ));
        }
        let (apps, categories) = load_store(dir).map_err(|reason| CatalogError::NotAStore {
            location: dir.display().to_string(),
            reason,
        })?;
        let store = LoadedStore {
            id: store_id(dir),
            source: dir.to_path_buf(),
            url: None,
            configured: false,
            bundled: None,
            loaded_at: Some(self.clock.now_rfc3339()),
            refreshed_at: Some(self.clock.now_rfc3339()),
            error: None,
            apps,
            categories,
        };
        let mut stores = self.write();
        if stores.iter().any(|s| s.id == store.id) {
            return Err(CatalogError::Exists(format!(
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
            return Err(CatalogError::Configured(id.into()));
        }
        let removed = stores.remove(pos);
        self.save(&stores)?;
        if let Some(url) = removed.url {
            let _ = std::fs::remove_dir_all(url_cache_dir(&self.cache_dir, &url));
        }
        Ok(())
    }

    fn save(&self, stores: &[LoadedStore]) -> Result<(), CatalogError> {
        let extra: Vec<SavedStore> = stores
            .iter()
            .filter(|s| !s.configured)
            .map(|s| match (&s.bundled, &s.url) {
                (Some(bundled), url) => SavedStore::Default {
                    bundled: bundled.clone(),
                    url: url.clone(),
                },
                (None, Some(url)) => SavedStore::Url { url: url.clone() },
                (None, None) => SavedStore::Dir(s.source.clone()),
            })
            .collect();
        let json = serde_json::to_vec_pretty(&extra).unwrap_or_default();
        crate::fsutil::write_atomic(&self.saved, &json, 0o600).map_err(CatalogError::Save)
    }

    /// Search over every store; `q` matches title, tagline, description (and folder name).
    pub fn search(&self, q: &str, category: Option<&str>, lang: &str) -> Vec<CatalogEntry> {
        let mut out = Vec::new();
        let Ok(mut z) = zstd::bulk::Decompressor::new() else {
            tracing::warn!("no zstd decompression context for the catalog search");
            return out;
        };
        for s in self.read().iter() {
            for a in &s.apps {
                let cat_ok = category.is_none_or(|c| {
                    a.meta
                        .category
                        .as_deref()
                        .is_some_and(|ac| ac.eq_ignore_ascii_case(c))
                });
                if cat_ok && matches(a, q.trim(), lang, &mut z) {
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
            icon: (a.meta.icon.is_some() || local_icon(a).is_some())
                .then(|| format!("/api/v1/catalog/{store}/{}/icon", a.name)),
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

    /// An app image: `icon`, `thumbnail` or `screenshot` number `n`. Icons in the app's store
    /// folder win over the `icon` URL.
    pub async fn image(
        &self,
        store: &str,
        app: &str,
        kind: ImageKind,
    ) -> Result<(super::media::ImageType, Vec<u8>), CatalogError> {
        let a = self.app(store, app)?;
        let missing = || CatalogError::ImageNotFound(format!("{kind:?} of {app}").to_lowercase());
        if kind == ImageKind::Icon
            && let Some(path) = local_icon(&a)
            && let Ok(bytes) = tokio::fs::read(path).await
            && (bytes.len() as u64) <= super::media::MAX_MEDIA_BYTES
            && let Some(t) = super::media::ImageType::sniff(&bytes)
        {
            return Ok((t, bytes));
        }
        let url = match kind {
            ImageKind::Icon => a.meta.icon.clone(),
            ImageKind::Thumbnail => a.meta.thumbnail.clone(),
            ImageKind::Screenshot(n) => a.meta.screenshot_link.get(n).cloned(),
        }
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(missing)?;
        let media = self.media.as_ref().ok_or_else(missing)?;
        Ok(media.get(url.trim()).await?)
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

/// Which image of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Icon,
    Thumbnail,
    Screenshot(usize),
}

/// An icon file in the app's store folder (its type is checked from its bytes when served).
fn local_icon(a: &StoreApp) -> Option<&Path> {
    a.icon_file.as_deref()
}

/// Loads a folder store again; `now` is the refresh time stamp.
fn reload(s: &mut LoadedStore, now: String) {
    s.refreshed_at = Some(now);
    match load_store(&s.source) {
        Ok((apps, categories)) => {
            s.apps = apps;
            s.categories = categories;
            s.loaded_at = s.refreshed_at.clone();
            s.error = None;
        }
        Err(e) => s.error = Some(e),
    }
}

/// A store URL must be https, without credentials, at most 2048 characters.
pub fn check_store_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    if u.scheme() != "https" {
        return Err(format!("{url}: a store URL must use https"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{url}: credentials in store URLs are not allowed"));
    }
    if url.len() > 2048 || u.host_str().is_none() {
        return Err(format!("{url}: not a usable store URL"));
    }
    Ok(())
}

struct Downloaded {
    root: PathBuf,
    apps: Vec<StoreApp>,
    categories: Vec<Category>,
}

fn url_cache_dir(cache: &Path, url: &str) -> PathBuf {
    let hash = blake3::hash(url.as_bytes()).to_hex();
    cache.join(&hash.as_str()[..24])
}

/// A zip store's id: `store-config.json`'s `store_id` when the copy has one, else derived from
/// the URL (host and file name).
fn url_store_id(root: &Path, url: &str) -> String {
    let from_config = root
        .join("store-config.json")
        .is_file()
        .then(|| store_id(root));
    from_config.filter(|s| !s.is_empty()).unwrap_or_else(|| {
        let u = reqwest::Url::parse(url).ok();
        let host = u.as_ref().and_then(|u| u.host_str()).unwrap_or("store");
        let stem = u
            .as_ref()
            .and_then(|u| u.path_segments())
            .and_then(|mut p| p.next_back().map(str::to_string))
            .unwrap_or_default();
        let stem = stem.trim_end_matches(".zip");
        super::names::app_id_from(&format!("{host}-{stem}"))
    })
}

/// A zip store as found in its cache folder at start.
fn cached_url_store(cache: &Path, url: &str, configured: bool, now: String) -> LoadedStore {
    let current = url_cache_dir(cache, url).join("current");
    let mut s = LoadedStore {
        id: String::new(),
        source: current.clone(),
        url: Some(url.to_string()),
        configured,
        bundled: None,
        loaded_at: None,
        refreshed_at: None,
        error: Some("not downloaded yet".into()),
        apps: Vec::new(),
        categories: Vec::new(),
    };
    if let Ok(root) = current
        .canonicalize()
        .map_err(|e| e.to_string())
        .and_then(|c| store_zip::store_root(&c))
    {
        s.source = root;
        reload(&mut s, now);
    }
    s.id = url_store_id(&s.source, url);
    s
}

/// The default store at start: its downloaded copy when there is one, else the image's copy.
/// Its id is the image copy's (`store-config.json`), so a download does not rename it.
fn default_store(cache: &Path, bundled: PathBuf, url: Option<String>, now: String) -> LoadedStore {
    let mut image_copy = LoadedStore {
        id: store_id(&bundled),
        source: bundled.clone(),
        url: url.clone(),
        configured: false,
        bundled: Some(bundled),
        loaded_at: None,
        refreshed_at: None,
        error: None,
        apps: Vec::new(),
        categories: Vec::new(),
    };
    if let Some(url) = &url {
        let downloaded = cached_url_store(cache, url, false, now.clone());
        if downloaded.loaded_at.is_some() {
            return LoadedStore {
                id: image_copy.id,
                bundled: image_copy.bundled,
                ..downloaded
            };
        }
    }
    reload(&mut image_copy, now);
    image_copy
}

/// Unpacks `zip` as a new copy in `dir`, loads it, and swaps `dir/current` to it. Nothing of
/// the current copy changes unless every step succeeds.
fn install_copy(dir: &Path, zip: &[u8]) -> Result<Downloaded, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Not the injected clock: this names copies on disk, which must sort by creation and never
    // collide, even while a test's manual clock stands still.
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let tmp = dir.join(format!("tmp-{stamp}"));
    let unpacked = (|| {
        store_zip::extract(zip, &tmp)?;
        let root = store_zip::store_root(&tmp)?;
        let (apps, categories) = load_store(&root)?;
        Ok::<_, String>((root, apps, categories))
    })();
    let (root, _, _) = match unpacked {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let version = format!("v-{stamp}");
    let final_dir = dir.join(&version);
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::rename(&tmp, &final_dir).map_err(io)?;
    let link_tmp = dir.join("current.new");
    let _ = std::fs::remove_file(&link_tmp);
    std::os::unix::fs::symlink(&version, &link_tmp).map_err(io)?;
    std::fs::rename(&link_tmp, dir.join("current")).map_err(io)?;
    // Load again from the final place so the apps' paths point there.
    let rel = root
        .strip_prefix(&tmp)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    let root = final_dir.join(rel);
    let (apps, categories) = load_store(&root)?;
    prune_copies(dir, &version);
    Ok(Downloaded {
        root,
        apps,
        categories,
    })
}

/// Keeps the current copy and the one before it; removes older copies and leftovers.
fn prune_copies(dir: &Path, current: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut versions: Vec<String> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("tmp-") {
            let _ = std::fs::remove_dir_all(e.path());
        } else if name.starts_with("v-") && name != current {
            versions.push(name);
        }
    }
    // Names sort by their time stamp (same number of digits for centuries).
    versions.sort();
    versions.pop();
    for v in versions {
        let _ = std::fs::remove_dir_all(dir.join(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn casaos() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stores/casaos")
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

    /// The catalog holds only what lists and searches use; an app's page still shows the rest.
    #[test]
    fn listing_keeps_search_texts_and_the_page_reads_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Catalog::load(&[casaos()], dir.path().join("stores.json"), "amd64");
        let apps = c.stores()[0].apps.clone();
        // An app whose compose file has all the long texts.
        let (kept, full) = apps
            .iter()
            .map(|a| (a, full_meta(a)))
            .find(|(_, f)| {
                !f.release_notes.is_empty()
                    && !f.tips.before_install.is_empty()
                    && !f.fields.envs.is_empty()
            })
            .expect("a CasaOS app with release notes, tips and documented settings");
        // The catalog holds none of them...
        assert!(kept.meta.release_notes.is_empty());
        assert!(kept.meta.tips.before_install.is_empty() && kept.meta.tips.other.is_empty());
        assert!(kept.meta.fields.envs.is_empty());
        // ...but every text the grid and the search use, in every language.
        assert_eq!(kept.meta.title, full.title);
        assert_eq!(kept.meta.tagline, full.tagline);
        assert!(kept.meta.description.is_empty(), "kept packed, not as text");
        assert_eq!(kept.description.unpack(), full.description);
        assert!(
            full.description.0.len() > 1,
            "{:?}",
            full.description.0.keys()
        );
        // Packed, every app's descriptions take little more than half their text.
        let (text, packed) = apps.iter().fold((0, 0), |(text, packed), a| {
            let all: usize = a.description.unpack().0.values().map(String::len).sum();
            (text + all, packed + a.description.packed_len())
        });
        eprintln!("descriptions: {text} bytes of text, {packed} packed");
        assert!(
            text > 1_000_000 && packed * 10 < text * 6,
            "{packed} of {text}"
        );
        assert_eq!(kept.meta.screenshot_link, full.screenshot_link);
        // A word only in an app's German description is still found by a German reader.
        let (app, word) = apps
            .iter()
            .find_map(|a| {
                let description = a.description.unpack();
                let de = description.pick("de_DE")?;
                let en = [
                    description.pick("en_US"),
                    a.meta.title.pick("en_US"),
                    a.meta.tagline.pick("en_US"),
                    Some(a.name.as_str()),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
                let word = de
                    .split(|ch: char| !ch.is_alphabetic())
                    .find(|w| w.chars().count() >= 9 && !en.contains(&w.to_lowercase()))?;
                Some((a.name.clone(), word.to_string()))
            })
            .expect("a German description word not in the English one");
        assert!(
            c.search(&word, None, "de_DE").iter().any(|e| e.app == app),
            "{word} finds {app}"
        );
        // An English reader's search unpacks English only.
        assert!(
            !c.search(&word, None, "en_US").iter().any(|e| e.app == app),
            "{word} is not in {app}'s English texts"
        );
        // A compose file gone since the load (a store refresh removed it): the page shows what
        // the catalog kept.
        let mut gone = kept.clone();
        gone.compose_path = dir.path().join("missing/docker-compose.yml");
        assert_eq!(full_meta(&gone).description, full.description);
        assert!(full_meta(&gone).release_notes.is_empty());
    }

    /// The agent's catalog loads on its own thread; whoever reads it first waits for the
    /// whole load (never an empty or partial catalog), and sees what a direct load sees.
    #[test]
    fn a_catalog_opened_in_the_background_is_whole_when_first_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = || CatalogOptions {
            dirs: vec![casaos()],
            urls: Vec::new(),
            saved: dir.path().join("stores.json"),
            default_store: None,
            cache_dir: dir.path().join("app-stores"),
            arch: "amd64".into(),
            fetcher: None,
            media: None,
            clock: Arc::new(crate::clock::SystemClock),
        };
        let direct = Catalog::open(options());
        let want: Vec<String> = direct
            .search("", None, "en_US")
            .into_iter()
            .map(|e| e.app)
            .collect();
        assert!(want.len() >= 160, "{}", want.len());
        for _ in 0..3 {
            let c = Catalog::open_in_background(options());
            // Read at once, from several threads, while the load may still run.
            let got: Vec<Vec<String>> = std::thread::scope(|s| {
                let readers: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            c.search("", None, "en_US")
                                .into_iter()
                                .map(|e| e.app)
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                readers
                    .into_iter()
                    .map(|r| r.join().expect("reader"))
                    .collect()
            });
            assert!(got.iter().all(|g| *g == want));
        }
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
        c.refresh_dirs();
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

    fn with_default(dir: &Path, default: Option<DefaultStore>) -> Catalog {
        Catalog::open(CatalogOptions {
            dirs: Vec::new(),
            urls: Vec::new(),
            saved: dir.join("stores.json"),
            default_store: default,
            cache_dir: dir.join("app-stores"),
            arch: "amd64".into(),
            fetcher: None,
            media: None,
            clock: Arc::new(crate::clock::SystemClock),
        })
    }

    #[tokio::test]
    async fn the_default_store_is_served_from_the_image_until_removed_for_good() {
        let dir = tempfile::tempdir().expect("tempdir");
        let default = DefaultStore {
            dir: casaos(),
            url: Some("https://store.invalid/main.zip".into()),
        };
        let c = with_default(dir.path(), Some(default.clone()));
        let s = &c.stores()[0];
        assert_eq!(
            (s.id.as_str(), s.configured, &s.source),
            ("zimaos-appstore", false, &casaos())
        );
        assert!(s.apps.len() >= 160, "{}", s.apps.len());
        // Offline (here: no client at all): the download fails, the image's copy stays.
        c.refresh_missing().await;
        let s = &c.stores()[0];
        assert!(s.error.is_some() && s.apps.len() >= 160, "{:?}", s.error);
        // Nothing written yet: a restart seeds it again.
        assert!(!dir.path().join("stores.json").exists());
        let c = with_default(dir.path(), Some(default.clone()));
        // Another store added: both are remembered, the default one as the default one.
        c.add(&test_store()).expect("adds");
        let again = with_default(dir.path(), None);
        let ids: Vec<String> = again.stores().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["zimaos-appstore", "test-store"]);
        assert_eq!(again.stores()[0].bundled.as_ref(), Some(&casaos()));
        // Removed: it does not come back, although the configuration still names it.
        c.remove("zimaos-appstore").expect("removes");
        let after = with_default(dir.path(), Some(default));
        let ids: Vec<String> = after.stores().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["test-store"]);
    }

    #[test]
    fn bad_store_folders_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Catalog::load(&[], dir.path().join("stores.json"), "amd64");
        assert!(c.add(Path::new("relative")).is_err());
        assert!(c.add(dir.path()).is_err());
    }
}
