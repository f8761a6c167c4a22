//! Rules of requests that the derived schemas cannot state: "these fields or that one", "at
//! least one of", a field whose limits depend on another, the grammar of a wildcard path
//! parameter. `apply` writes them into the generated document (component schemas by name,
//! parameters by path), so that clients (and Schemathesis) know which requests are well
//! formed. The handlers check every rule themselves; this module only describes them and must
//! never be the check.
//!
//! A constraint on one field belongs on its type (`#[schema(pattern, max_length, ...)]`, a
//! `value_type` such as `apps::plan::PortNumber`), not here. What stays here cannot be said with
//! utoipa's attributes:
//! - combinations across fields (`oneOf`/`anyOf` of required and absent fields);
//! - a `not` (share names that other roots use);
//! - `additionalProperties: false` on each variant of an internally tagged enum (`FileAction`;
//!   utoipa sets it for `deny_unknown_fields` on structs only);
//! - patterns of path parameters that are constants shared with the checks (utoipa's `pattern`
//!   takes a string literal only, which would be a second copy of each grammar).
//!
//! A present field set to `null` counts as absent (serde reads it as `None`), so "given" below
//! means "present and not null".

use serde_json::{Value, json};

/// `field` is present and of JSON type `kind` (so not `null`).
fn given(field: &str, kind: &str) -> Value {
    json!({"required": [field], "properties": {field: {"type": kind}}})
}

/// `field` is absent or `null`.
fn absent(field: &str) -> Value {
    json!({"properties": {field: {"type": "null"}}})
}

/// All of the schemas, as one.
fn all(parts: &[Value]) -> Value {
    json!({"allOf": parts})
}

/// `files::shares::validate_name`: names other roots use are not share names.
fn share_name(s: &mut Value) {
    let reserved = crate::files::shares::RESERVED;
    s["properties"]["name"]["not"] =
        json!({"anyOf": [{"enum": reserved}, {"type": "string", "pattern": "^disk-"}]});
}

/// A change to one component schema.
type Rule = fn(&mut Value);

/// Each rule: the component schema's name and the change to make to it.
fn rules() -> Vec<(&'static str, Rule)> {
    vec![
        ("InstallBody", |s| {
            // `install_request`: a store app (`store` and `app`) or custom compose YAML.
            s["oneOf"] = json!([
                all(&[
                    given("store", "string"),
                    given("app", "string"),
                    absent("compose")
                ]),
                all(&[given("compose", "string"), absent("store"), absent("app")]),
            ]);
        }),
        ("AddStoreRequest", |s| {
            // `add_store`: a folder or a zip URL.
            s["oneOf"] = json!([
                all(&[given("path", "string"), absent("url")]),
                all(&[given("url", "string"), absent("path")]),
            ]);
        }),
        ("PatchAppBody", |s| {
            // `patch_app`: something to change.
            s["anyOf"] = json!([given("settings", "object"), given("auto_update", "boolean")]);
        }),
        ("InterfacePatch", |s| {
            // `validate::interface_patch`: at least one family.
            s["anyOf"] = json!([given("ipv4", "object"), given("ipv6", "object")]);
        }),
        ("IpPatch", |s| {
            // `validate::common_shape`: addresses and a gateway with `manual` only, and
            // `manual` needs an address.
            s["oneOf"] = json!([
                {
                    "properties": {
                        "method": {"const": "auto"},
                        "addresses": {"maxItems": 0},
                        "gateway": {"type": "null"},
                    }
                },
                {
                    "required": ["addresses"],
                    "properties": {"method": {"const": "manual"}, "addresses": {"minItems": 1}},
                },
            ]);
        }),
        ("CreateShareRequest", share_name),
        ("UpdateShareRequest", share_name),
        ("FileAction", |s| {
            // Each action takes its own fields only (`deny_unknown_fields` on the enum).
            if let Some(variants) = s.get_mut("oneOf").and_then(Value::as_array_mut) {
                for v in variants {
                    v["additionalProperties"] = json!(false);
                }
            }
        }),
    ]
}

/// One name of a file path (`files::path::validate_name`): not empty, `.` or `..`, no `/` and
/// no control characters. (Its byte limit is the handler's alone: JSON Schema counts
/// characters.)
macro_rules! file_name {
    () => {
        r"([^/.\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*|\.[^/.\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*|\.\.[^/\x00-\x1f\x7f-\x9f]+)"
    };
}

/// `files::path::RelPath::parse` for the `{path}` of the file routes that change something:
/// names separated by single slashes, leading and trailing slashes ignored, at least one name.
pub const FILE_PATH_PATTERN: &str = concat!(r"^/*", file_name!(), r"(/", file_name!(), r")*/*$");

/// The same for reading, where the root itself (no name, or only slashes) is a path too.
pub const FILE_PATH_OR_ROOT_PATTERN: &str =
    concat!(r"^/*(", file_name!(), r"(/", file_name!(), r")*/*)?$");

/// Path parameters with a grammar: (route, method, parameter, pattern).
const PARAMETERS: [(&str, &str, &str, &str); 5] = [
    (
        "/api/v1/network/interfaces/{name}",
        "patch",
        "name",
        crate::network::validate::INTERFACE_NAME_PATTERN,
    ),
    (
        "/api/v1/files/{root}/{path}",
        "get",
        "path",
        FILE_PATH_OR_ROOT_PATTERN,
    ),
    (
        "/api/v1/files/{root}/{path}",
        "put",
        "path",
        FILE_PATH_PATTERN,
    ),
    (
        "/api/v1/files/{root}/{path}",
        "post",
        "path",
        FILE_PATH_PATTERN,
    ),
    (
        "/api/v1/files/{root}/{path}",
        "delete",
        "path",
        FILE_PATH_PATTERN,
    ),
];

/// Writes the rules into `doc` (the OpenAPI document as JSON). Answers the names of the rules
/// whose schema or parameter is missing (a renamed type or route): the caller's test asserts
/// there are none.
pub fn apply(doc: &mut Value) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for (name, rule) in rules() {
        match doc
            .pointer_mut(&format!("/components/schemas/{name}"))
            .filter(|s| s.is_object())
        {
            Some(schema) => rule(schema),
            None => missing.push(name),
        }
    }
    for (route, method, param, pattern) in PARAMETERS {
        let params = doc
            .pointer_mut(&format!(
                "/paths/{}/{method}/parameters",
                route.replace('/', "~1")
            ))
            .and_then(Value::as_array_mut);
        let target = params
            .into_iter()
            .flatten()
            .find(|p| p["name"] == param && p["in"] == "path");
        match target {
            Some(p) => p["schema"]["pattern"] = json!(pattern),
            None => missing.push(route),
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_finds_its_schema() {
        let mut doc = serde_json::to_value(super::super::api_routes().1).expect("document");
        assert_eq!(apply(&mut doc), Vec::<&str>::new());
        let variants = doc["components"]["schemas"]["FileAction"]["oneOf"]
            .as_array()
            .expect("FileAction is a oneOf");
        assert!(variants.iter().all(|v| v["additionalProperties"] == false));
    }

    #[test]
    fn the_file_path_patterns_are_the_path_grammar() {
        use crate::files::path::RelPath;
        let change = regex::Regex::new(FILE_PATH_PATTERN).expect("pattern");
        let read = regex::Regex::new(FILE_PATH_OR_ROOT_PATTERN).expect("pattern");
        let nul = "a\u{0}b".to_string();
        let c1 = "a\u{85}b".to_string();
        for good in ["a", "/a/", "a/b c/d.txt", ".hidden", "...", "..x", "ü/日本"] {
            assert!(change.is_match(good) && read.is_match(good), "{good}");
            assert!(!RelPath::parse(good).expect(good).is_root(), "{good}");
        }
        for root in ["", "/", "//"] {
            assert!(read.is_match(root) && !change.is_match(root), "{root:?}");
            assert!(RelPath::parse(root).expect(root).is_root(), "{root:?}");
        }
        for bad in [".", "..", "a/./b", "a/../b", "a//b", "tab\tname", &nul, &c1] {
            assert!(!change.is_match(bad) && !read.is_match(bad), "{bad:?}");
            assert!(RelPath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
