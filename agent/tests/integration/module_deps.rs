//! The agent's module dependencies, checked over its source: the HTTP handlers (`crate::api`)
//! are a front end that only the command line (`cli.rs`, which wires the router into the
//! daemon and prints the OpenAPI document) and the crate root (the fuzzing re-exports) may
//! name. The daemon, the server and every service (`update`, `disks`, `apps`, `system`,
//! `network`, ...) must not depend on handlers (ARCHITECTURE.md, invariants).
//!
//! The handlers also never reach into the store (`state.store`): each store access is a
//! method of the service that owns the data (`state.shares()`, `state.device_settings()`, ...).
//!
//! Every path in the source is resolved against the module it is written in (`crate::`,
//! `super::`, `self::`, relative names, `use` groups, inline modules, macro arguments), so
//! `use super::api` from `daemon.rs` is caught as well as `crate::api::app`.

use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// Files (relative to `agent/src`) allowed to name `crate::api`, besides `api/` itself.
const ALLOWED: [&str; 2] = ["lib.rs", "cli.rs"];

/// One place a file names the handlers.
#[derive(Debug, PartialEq)]
struct Use {
    module: String,
    path: String,
}

/// Collects every path that resolves to `crate::api...` in one file.
struct Finder {
    /// The module the visitor is in (`["crate", "update", "install"]`).
    module: Vec<String>,
    found: Vec<Use>,
}

impl Finder {
    fn resolve(&self, segments: &[String]) -> Option<Vec<String>> {
        let (first, rest) = segments.split_first()?;
        let mut base = match first.as_str() {
            "crate" => vec!["crate".to_string()],
            "self" => self.module.clone(),
            "super" => {
                let mut m = self.module.clone();
                m.pop();
                m
            }
            // A relative name: an item of the current module (imports are checked where they
            // are written, so `use crate::api; api::x` is caught at the `use`).
            _ => {
                let mut m = self.module.clone();
                m.push(first.clone());
                m
            }
        };
        for s in rest {
            if s == "super" {
                base.pop();
            } else if s != "self" {
                base.push(s.clone());
            }
        }
        Some(base)
    }

    fn check(&mut self, segments: &[String]) {
        if let Some(full) = self.resolve(segments)
            && full.len() >= 2
            && full[0] == "crate"
            && full[1] == "api"
        {
            self.found.push(Use {
                module: self.module.join("::"),
                path: segments.join("::"),
            });
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.leaf(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.leaf(prefix, &r.ident),
            syn::UseTree::Glob(_) => {
                let whole = prefix.clone();
                self.check(&whole);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn leaf(&mut self, prefix: &[String], ident: &syn::Ident) {
        let mut whole = prefix.to_vec();
        if ident != "self" {
            whole.push(ident.to_string());
        }
        self.check(&whole);
    }
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.check(&segments);
        syn::visit::visit_path(self, path);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.module.pop();
        }
    }

    /// Macro arguments are tokens, not a syntax tree: look for the path written out.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Tokens print as `crate :: api :: x`: join the paths back, keep other words apart.
        let tokens = mac.tokens.to_string().replace(" :: ", "::");
        for word in tokens.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            if word.contains("::") {
                let segments: Vec<String> = word
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                self.check(&segments);
            }
        }
        syn::visit::visit_macro(self, mac);
    }
}

/// The module a source file defines: `update/install.rs` is `crate::update::install`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut module = vec!["crate".to_string()];
    let parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if !(last && (part == "mod" || (part == "lib" && i == 0))) {
            module.push(part.clone());
        }
    }
    module
}

fn uses_of_api(module: Vec<String>, source: &str) -> Vec<Use> {
    let file = syn::parse_file(source).expect("the agent's source parses");
    let mut finder = Finder {
        module,
        found: Vec::new(),
    };
    finder.visit_file(&file);
    finder.found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source folder") {
        let path = entry.expect("source folder entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_command_line_and_the_crate_root_name_the_http_handlers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 100, "found only {} source files", files.len());
    let mut offenders = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        // main.rs is the binary crate (its `crate` is not the library's).
        if relative.starts_with("api") || relative == Path::new("main.rs") {
            continue;
        }
        if ALLOWED.iter().any(|a| relative == Path::new(a)) {
            continue;
        }
        let source = std::fs::read_to_string(file).expect("read source");
        for found in uses_of_api(module_of(relative), &source) {
            offenders.push(format!("{}: {}", relative.display(), found.path));
        }
    }
    assert!(
        offenders.is_empty(),
        "modules outside api/ depend on the HTTP handlers:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_dependency_check_sees_every_way_of_naming_the_handlers() {
    let daemon = module_of(Path::new("daemon.rs"));
    assert_eq!(daemon, ["crate", "daemon"]);
    let install = module_of(Path::new("update/install.rs"));
    assert_eq!(install, ["crate", "update", "install"]);
    assert_eq!(module_of(Path::new("update/mod.rs")), ["crate", "update"]);
    let cases = [
        (daemon.clone(), "fn f() { let _ = crate::api::app; }"),
        (daemon.clone(), "use crate::{api::app, state::AppState};"),
        (daemon.clone(), "use super::api;"),
        (daemon.clone(), "use crate::api::*;"),
        (install.clone(), "use super::super::api::error::ApiError;"),
        (
            install.clone(),
            "fn f() { tokio::spawn(crate::api::run()); }",
        ),
        (
            install.clone(),
            r#"fn f() { tracing::info!("{}", crate::api::x()); }"#,
        ),
        (
            install.clone(),
            "mod inner { use super::super::super::api::x; }",
        ),
    ];
    for (module, source) in cases {
        assert_eq!(uses_of_api(module, source).len(), 1, "not caught: {source}");
    }
    let clean = [
        (
            daemon.clone(),
            "use crate::server::Server; use axum::Router;",
        ),
        (
            install.clone(),
            "use super::api_types::X; fn f() { other::api::g(); }",
        ),
        (
            install,
            "mod api { pub fn g() {} } fn f() { self::api::g(); }",
        ),
    ];
    for (module, source) in clean {
        assert_eq!(uses_of_api(module, source), [], "false alarm: {source}");
    }
}

/// `state.store` (the handlers' state is always called `state`).
struct StoreReach(usize);

impl<'ast> Visit<'ast> for StoreReach {
    fn visit_expr_field(&mut self, field: &'ast syn::ExprField) {
        let on_state = matches!(&*field.base, syn::Expr::Path(p) if p.path.is_ident("state"));
        if on_state && matches!(&field.member, syn::Member::Named(m) if m == "store") {
            self.0 += 1;
        }
        syn::visit::visit_expr_field(self, field);
    }
}

fn store_reaches(source: &str) -> usize {
    let file = syn::parse_file(source).expect("the agent's source parses");
    let mut reach = StoreReach(0);
    reach.visit_file(&file);
    reach.0
}

#[test]
fn http_handlers_never_reach_into_the_store() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = Vec::new();
    rust_files(&api, &mut files);
    assert!(files.len() > 10, "found only {} handler files", files.len());
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| store_reaches(&std::fs::read_to_string(f).expect("read source")) > 0)
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "handlers use state.store directly (add a service method):\n{}",
        offenders.join("\n")
    );
    // The check itself sees an access, and not a field of something else named `store`.
    assert_eq!(store_reaches("fn f() { state.store.shares(); }"), 1);
    assert_eq!(store_reaches("fn f() { let s = &state.store; }"), 1);
    assert_eq!(
        store_reaches("fn f() { g(entry.store); state.shares(); }"),
        0
    );
}
