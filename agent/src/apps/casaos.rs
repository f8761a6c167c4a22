//! CasaOS store metadata: the `x-casaos` blocks of a compose file (app level and per service),
//! read leniently. A field of the wrong shape becomes a warning and is left out; it never stops
//! an app from being planned, because store metadata is decoration around the compose file.

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;

/// Text in several languages, keyed by CasaOS locale (`en_US`, `zh_CN`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Localized(pub BTreeMap<String, String>);

impl Localized {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text for `lang` (`de-DE`, `de_DE` or `de`): the exact locale, else the same language
    /// in another region, else `en_US`, else any English, else the first one.
    pub fn pick(&self, lang: &str) -> Option<&str> {
        pick_locale(&self.0, lang).map(String::as_str)
    }
}

/// [`Localized::pick`]'s choice for any map keyed by CasaOS locale (the catalog keeps its
/// descriptions packed per locale, `catalog::PackedText`).
pub fn pick_locale<'a, K, V>(map: &'a BTreeMap<K, V>, lang: &str) -> Option<&'a V>
where
    K: Ord + std::borrow::Borrow<str>,
{
    let want = lang.replace('-', "_");
    let base = want
        .split('_')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let exact = map
        .iter()
        .find(|(k, _)| k.borrow().eq_ignore_ascii_case(&want));
    let same_lang = || {
        map.iter().find(|(k, _)| {
            k.borrow()
                .split('_')
                .next()
                .unwrap_or_default()
                .eq_ignore_ascii_case(&base)
        })
    };
    let english = || {
        map.get_key_value("en_US")
            .or_else(|| map.iter().find(|(k, _)| k.borrow().starts_with("en")))
    };
    exact
        .or_else(same_lang)
        .or_else(english)
        .or_else(|| map.iter().next())
        .map(|(_, v)| v)
}

/// App-level `x-casaos`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AppMeta {
    pub id: Option<String>,
    pub store_app_id: Option<String>,
    pub main: Option<String>,
    pub index: Option<String>,
    pub port_map: Option<String>,
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub title: Localized,
    pub tagline: Localized,
    pub description: Localized,
    pub tips: Tips,
    pub category: Option<String>,
    pub architectures: Vec<String>,
    pub author: Option<String>,
    pub developer: Option<String>,
    pub icon: Option<String>,
    pub screenshot_link: Vec<String>,
    pub thumbnail: Option<String>,
    pub version: Option<String>,
    pub update_at: Option<String>,
    pub release_notes: Localized,
    pub website: Option<String>,
    pub repo: Option<String>,
    pub support: Option<String>,
    pub docs: Option<String>,
    /// App-level `envs`/`ports`/`volumes` (a few store apps put them here instead of per service).
    pub fields: ServiceMeta,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Tips {
    pub before_install: Localized,
    /// Other tip sections (`custom`, ...), by name.
    pub other: BTreeMap<String, Localized>,
}

/// Per-service `x-casaos`: descriptions of the settings a user may change.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ServiceMeta {
    pub envs: Vec<FieldDoc>,
    pub ports: Vec<FieldDoc>,
    pub volumes: Vec<FieldDoc>,
    pub devices: Vec<FieldDoc>,
    pub command: Vec<FieldDoc>,
}

/// One documented setting: the container-side name (env var, port, path) and its description.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct FieldDoc {
    pub container: String,
    pub description: Localized,
}

const APP_KEYS: &[&str] = &[
    "id",
    "store_app_id",
    "main",
    "index",
    "port_map",
    "scheme",
    "hostname",
    "title",
    "tagline",
    "description",
    "tips",
    "category",
    "architectures",
    "author",
    "developer",
    "icon",
    "screenshot_link",
    "screenshot",
    "thumbnail",
    "version",
    "update_at",
    "release_notes",
    "website",
    "repo",
    "support",
    "docs",
    "envs",
    "ports",
    "volumes",
    "devices",
];

impl AppMeta {
    /// What the catalog keeps of every app as it is: all but the long texts only the app's own
    /// page shows (release notes, tips, the settings' descriptions), which that page reads again
    /// from the compose file, and the description, which the catalog keeps compressed for the
    /// search (`catalog::PackedText`). The title and tagline stay, in every language: the grid
    /// shows them in the reader's language (docs/apps.md, "The catalog in memory").
    pub fn for_listing(self) -> Self {
        Self {
            description: Localized::default(),
            release_notes: Localized::default(),
            tips: Tips::default(),
            fields: ServiceMeta::default(),
            ..self
        }
    }
}

/// Reads the app-level block. Unknown or malformed fields become `warnings`.
pub fn app_meta(v: Option<&Value>, warnings: &mut Vec<String>) -> AppMeta {
    let Some(Value::Mapping(m)) = v else {
        if v.is_some_and(|v| !v.is_null()) {
            warnings.push("x-casaos: not a mapping, ignored".into());
        }
        return AppMeta::default();
    };
    let mut r = Reader {
        warnings,
        prefix: "x-casaos",
    };
    for k in m.keys() {
        let key = k.as_str().unwrap_or_default();
        if !APP_KEYS.contains(&key) {
            r.warnings
                .push(format!("x-casaos.{key}: unknown key, ignored"));
        }
    }
    let get = |k: &str| m.get(k);
    let mut screenshots = r.list(get("screenshot_link"), "screenshot_link");
    screenshots.extend(r.list(get("screenshot"), "screenshot"));
    AppMeta {
        id: r.text(get("id"), "id"),
        store_app_id: r.text(get("store_app_id"), "store_app_id"),
        main: r.text(get("main"), "main"),
        index: r.text(get("index"), "index"),
        port_map: r
            .text(get("port_map"), "port_map")
            .filter(|s| !s.is_empty()),
        scheme: r.text(get("scheme"), "scheme").filter(|s| !s.is_empty()),
        hostname: r.text(get("hostname"), "hostname"),
        title: r.localized(get("title"), "title"),
        tagline: r.localized(get("tagline"), "tagline"),
        description: r.localized(get("description"), "description"),
        tips: r.tips(get("tips")),
        category: r.text(get("category"), "category"),
        architectures: r.list(get("architectures"), "architectures"),
        author: r.text(get("author"), "author"),
        developer: r.text(get("developer"), "developer"),
        icon: r.text(get("icon"), "icon"),
        screenshot_link: screenshots,
        thumbnail: r.text(get("thumbnail"), "thumbnail"),
        version: r.text(get("version"), "version"),
        update_at: r.text(get("update_at"), "update_at"),
        release_notes: r.localized(get("release_notes"), "release_notes"),
        website: r.text(get("website"), "website"),
        repo: r.text(get("repo"), "repo"),
        support: r.text(get("support"), "support"),
        docs: r.text(get("docs"), "docs"),
        fields: r.service_fields(m),
    }
}

/// Reads a service-level block.
pub fn service_meta(service: &str, v: Option<&Value>, warnings: &mut Vec<String>) -> ServiceMeta {
    let prefix = format!("services.{service}.x-casaos");
    match v {
        Some(Value::Mapping(m)) => {
            let mut r = Reader {
                warnings,
                prefix: &prefix,
            };
            for k in m.keys() {
                let key = k.as_str().unwrap_or_default();
                if !["envs", "ports", "volumes", "devices", "command"].contains(&key) {
                    r.warnings
                        .push(format!("{prefix}.{key}: unknown key, ignored"));
                }
            }
            r.service_fields(m)
        }
        Some(Value::Null) | None => ServiceMeta::default(),
        Some(_) => {
            warnings.push(format!("{prefix}: not a mapping, ignored"));
            ServiceMeta::default()
        }
    }
}

struct Reader<'a> {
    warnings: &'a mut Vec<String>,
    prefix: &'a str,
}

impl Reader<'_> {
    fn warn(&mut self, key: &str, what: &str) {
        self.warnings
            .push(format!("{}.{key}: expected {what}, ignored", self.prefix));
    }

    fn text(&mut self, v: Option<&Value>, key: &str) -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => None,
            _ => {
                self.warn(key, "text");
                None
            }
        }
    }

    fn list(&mut self, v: Option<&Value>, key: &str) -> Vec<String> {
        match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(_) => {
                self.warn(key, "a list");
                Vec::new()
            }
        }
    }

    fn localized(&mut self, v: Option<&Value>, key: &str) -> Localized {
        match v {
            None | Some(Value::Null) => Localized::default(),
            // A bare string is taken as English.
            Some(Value::String(s)) => Localized([("en_US".to_string(), s.clone())].into()),
            Some(Value::Mapping(m)) => Localized(
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), text_of(v)?)))
                    .collect(),
            ),
            Some(_) => {
                self.warn(key, "localized text");
                Localized::default()
            }
        }
    }

    fn tips(&mut self, v: Option<&Value>) -> Tips {
        let Some(Value::Mapping(m)) = v else {
            return Tips::default();
        };
        let mut tips = Tips::default();
        let mut stray = BTreeMap::new();
        for (k, v) in m {
            let Some(k) = k.as_str() else { continue };
            if looks_like_locale(k) {
                // Some store files put the text straight under `tips`: treat it as before_install.
                if let Some(t) = text_of(v) {
                    stray.insert(k.to_string(), t);
                }
            } else if k == "before_install" {
                tips.before_install = self.localized(Some(v), "tips.before_install");
            } else {
                let l = self.localized(Some(v), &format!("tips.{k}"));
                tips.other.insert(k.to_string(), l);
            }
        }
        for (k, t) in stray {
            tips.before_install.0.entry(k).or_insert(t);
        }
        tips
    }

    fn service_fields(&mut self, m: &serde_yaml_ng::Mapping) -> ServiceMeta {
        ServiceMeta {
            envs: self.docs(m.get("envs"), "envs"),
            ports: self.docs(m.get("ports"), "ports"),
            volumes: self.docs(m.get("volumes"), "volumes"),
            devices: self.docs(m.get("devices"), "devices"),
            command: self.docs(m.get("command"), "command"),
        }
    }

    /// `[{container: X, description: {...}}]`; also `[{X: {...}}]` as one store app writes it.
    fn docs(&mut self, v: Option<&Value>, key: &str) -> Vec<FieldDoc> {
        let items = match v {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                self.warn(key, "a list");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for item in items {
            let Value::Mapping(m) = item else {
                self.warn(key, "a list of mappings");
                continue;
            };
            if let Some(container) = m.get("container").and_then(text_of) {
                let description = self.localized(m.get("description"), key);
                out.push(FieldDoc {
                    container,
                    description,
                });
            } else if let Some((k, v)) = m.iter().next() {
                let description = self.localized(Some(v), key);
                out.push(FieldDoc {
                    container: text_of(k).unwrap_or_default(),
                    description,
                });
            }
        }
        out
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn looks_like_locale(k: &str) -> bool {
    let b = k.as_bytes();
    b.len() == 5
        && b[2] == b'_'
        && b[..2].iter().all(u8::is_ascii_lowercase)
        && b[3..].iter().all(u8::is_ascii_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(yaml: &str) -> (AppMeta, Vec<String>) {
        let v: Value = serde_yaml_ng::from_str(yaml).expect("yaml");
        let mut w = Vec::new();
        (app_meta(Some(&v), &mut w), w)
    }

    #[test]
    fn localized_text_is_chosen_by_language_with_fallbacks() {
        let l = Localized(
            [
                ("en_US", "Hello"),
                ("de_DE", "Hallo"),
                ("zh_CN", "你好"),
                ("pt_BR", "Olá"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        );
        assert_eq!(l.pick("de_DE"), Some("Hallo"));
        assert_eq!(l.pick("de-AT"), Some("Hallo"));
        assert_eq!(l.pick("de"), Some("Hallo"));
        assert_eq!(l.pick("pt_PT"), Some("Olá"));
        assert_eq!(l.pick("fr_FR"), Some("Hello"));
        assert_eq!(Localized::default().pick("en_US"), None);
    }

    #[test]
    fn every_app_field_is_read() {
        let (m, w) = meta(
            r#"
id: org.example.app
store_app_id: app
main: web
index: /admin
port_map: 8080
scheme: https
hostname: app.example.org
title: {en_US: App, de_DE: Anwendung}
tagline: {en_US: Tag}
description: {en_US: Desc}
tips: {before_install: {en_US: First user is admin}, custom: {en_US: Extra}}
category: Media
architectures: [amd64, arm64]
author: A
developer: D
icon: https://x/icon.png
screenshot_link: [https://x/1.png]
thumbnail: https://x/t.png
version: "1.2"
update_at: "2026-01-01"
release_notes: {en_US: Notes}
website: https://w
repo: https://r
support: https://s
docs: https://d
"#,
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(m.id.as_deref(), Some("org.example.app"));
        assert_eq!(m.port_map.as_deref(), Some("8080"));
        assert_eq!(m.scheme.as_deref(), Some("https"));
        assert_eq!(m.index.as_deref(), Some("/admin"));
        assert_eq!(m.title.pick("de_DE"), Some("Anwendung"));
        assert_eq!(
            m.tips.before_install.pick("en_US"),
            Some("First user is admin")
        );
        assert_eq!(m.tips.other["custom"].pick("en"), Some("Extra"));
        assert_eq!(m.architectures, ["amd64", "arm64"]);
        assert_eq!(m.screenshot_link.len(), 1);
        assert_eq!(m.version.as_deref(), Some("1.2"));
        assert_eq!(m.docs.as_deref(), Some("https://d"));
    }

    #[test]
    fn malformed_fields_are_warnings_not_errors() {
        let (m, w) = meta("title: [1, 2]\narchitectures: {a: b}\nen_US: stray\ntips:\n");
        assert!(m.title.is_empty());
        assert!(m.architectures.is_empty());
        assert_eq!(w.len(), 3, "{w:?}");
    }

    #[test]
    fn service_field_docs_accept_both_shapes() {
        let v: Value = serde_yaml_ng::from_str(
            "envs:\n  - container: TZ\n    description: {en_US: Time zone}\n\
             command:\n  - workspace: {en_US: the workspace}\nports:\n  - container: \"80\"\n",
        )
        .expect("yaml");
        let mut w = Vec::new();
        let s = service_meta("web", Some(&v), &mut w);
        assert_eq!(s.envs[0].container, "TZ");
        assert_eq!(s.envs[0].description.pick("en_US"), Some("Time zone"));
        assert_eq!(s.command[0].container, "workspace");
        assert_eq!(s.ports[0].container, "80");
        assert!(w.is_empty(), "{w:?}");
    }
}
