//! Compose files: parse YAML, interpolate variables, read into the typed model, and report what
//! was not understood. Pure: text and variables in, model and warnings out.
//!
//! YAML goes through `serde_yaml_ng`: `serde_yaml` is unmaintained, and `serde_yaml_ng` is its
//! maintained fork with the same data model (including `<<` merge keys, which Compose files use
//! for shared blocks), so the error messages and the `Value` type stay familiar. `saphyr` was
//! considered; its serde support is not yet released as a stable crate.

pub mod de;
pub mod interpolate;
pub mod model;

pub use de::{ListOrMap, Scalar, StringOrList};
pub use interpolate::{InterpolationError, Vars, interpolate};
pub use model::*;

use serde_yaml_ng::Value;

/// Largest compose file accepted (the biggest in the CasaOS store is about 40 KiB).
pub const MAX_COMPOSE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("the compose file is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the compose file is not valid YAML: {0}")]
    Yaml(String),
    #[error("the compose file must be a YAML mapping with a `services` section")]
    NotAMapping,
    #[error("the compose file defines no services")]
    NoServices,
    #[error("{path}: {source}")]
    Interpolation {
        path: String,
        source: InterpolationError,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "{path}: Hearth does not support this key; the file is refused rather than run without it"
    )]
    UnsupportedKey { path: String },
}

/// Keys Hearth reads past with a warning: they only describe tooling or scheduling and grant
/// nothing on the device. Every other key the model does not know refuses the file.
const IGNORABLE_KEYS: [&str; 7] = [
    "annotations",
    "attach",
    "develop",
    "placement",
    "update_config",
    "rollback_config",
    "endpoint_mode",
];

impl ComposeError {
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ComposeError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A parsed compose file plus what the reader wants the user to know.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub file: ComposeFile,
    pub warnings: Vec<String>,
}

/// Parses `text`, interpolating every value except `x-casaos` metadata with `vars`.
pub fn parse(text: &str, vars: &Vars) -> Result<Parsed, ComposeError> {
    if text.len() > MAX_COMPOSE_BYTES {
        return Err(ComposeError::TooLarge {
            size: text.len(),
            limit: MAX_COMPOSE_BYTES,
        });
    }
    let mut value: Value =
        serde_yaml_ng::from_str(text).map_err(|e| ComposeError::Yaml(e.to_string()))?;
    value
        .apply_merge()
        .map_err(|e| ComposeError::Yaml(e.to_string()))?;
    let services = match &value {
        Value::Mapping(m) => m.get("services").ok_or(ComposeError::NotAMapping)?,
        _ => return Err(ComposeError::NotAMapping),
    };
    match services {
        Value::Mapping(m) if !m.is_empty() => {}
        Value::Mapping(_) | Value::Null => return Err(ComposeError::NoServices),
        _ => {
            return Err(ComposeError::invalid(
                "services",
                "must be a mapping of services",
            ));
        }
    }
    let mut warnings = Vec::new();
    let mut unset = Vec::new();
    interpolate_tree(&mut value, "", vars, &mut unset)?;
    for name in unset {
        warnings.push(format!(
            "variable {name} is not set; an empty string is used instead"
        ));
    }
    let mut ignored = Vec::new();
    let file: ComposeFile = serde_ignored::deserialize(value.clone(), |path| {
        // serde_ignored marks each `Option` level with `?`: not part of the file's path.
        ignored.push(path.to_string().replace(".?", ""));
    })
    .map_err(|e| locate_type_error(&value, e.to_string()))?;
    for path in ignored {
        let last = path.rsplit('.').next().unwrap_or(&path);
        if last.starts_with("x-") {
            continue;
        }
        if IGNORABLE_KEYS.contains(&last) {
            warnings.push(format!("{path}: not used by Hearth, ignored"));
        } else {
            return Err(ComposeError::UnsupportedKey { path });
        }
    }
    validate(&file)?;
    Ok(Parsed { file, warnings })
}

/// Names the service or section a type error is in (serde's message alone has no path).
fn locate_type_error(value: &Value, message: String) -> ComposeError {
    if let Some(services) = value.get("services").and_then(Value::as_mapping) {
        for (name, svc) in services {
            if let Err(e) = serde_yaml_ng::from_value::<Service>(svc.clone()) {
                let name = name.as_str().unwrap_or("?");
                return ComposeError::invalid(format!("services.{name}"), e.to_string());
            }
        }
    }
    ComposeError::invalid("compose", message)
}

/// Interpolates every string scalar in place, skipping `x-casaos` blocks (store text is full of
/// dollar signs that are not templates).
fn interpolate_tree(
    value: &mut Value,
    path: &str,
    vars: &Vars,
    unset: &mut Vec<String>,
) -> Result<(), ComposeError> {
    match value {
        Value::String(s) => {
            let r = interpolate(s, vars).map_err(|source| ComposeError::Interpolation {
                path: path.trim_start_matches('.').to_string(),
                source,
            })?;
            for u in r.unset {
                if !unset.contains(&u) {
                    unset.push(u);
                }
            }
            *s = r.value;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &format!("{path}[{i}]"), vars, unset)?;
            }
        }
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                if key == "x-casaos" {
                    continue;
                }
                interpolate_tree(v, &format!("{path}.{key}"), vars, unset)?;
            }
        }
        Value::Tagged(t) => interpolate_tree(&mut t.value, path, vars, unset)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Cross-references the model: images present, dependencies and networks declared.
fn validate(file: &ComposeFile) -> Result<(), ComposeError> {
    for (name, svc) in &file.services {
        let p = format!("services.{name}");
        crate::apps::names::check_service(name).map_err(|m| ComposeError::invalid(&p, m))?;
        match (&svc.image, &svc.build) {
            (Some(image), _) if !image.trim().is_empty() => {}
            (_, Some(_)) => {
                return Err(ComposeError::invalid(
                    p,
                    "building images is not supported; give the service an `image`",
                ));
            }
            _ => return Err(ComposeError::invalid(p, "`image` is missing")),
        }
        for dep in svc.depends_on.iter().flat_map(|d| d.keys()) {
            if !file.services.contains_key(dep) {
                return Err(ComposeError::invalid(
                    format!("{p}.depends_on"),
                    format!("service {dep:?} is not defined"),
                ));
            }
        }
        for net in svc.networks.iter().flat_map(|n| n.keys()) {
            if net != "default" && !file.networks.contains_key(net) {
                return Err(ComposeError::invalid(
                    format!("{p}.networks"),
                    format!("network {net:?} is not declared under the top-level `networks`"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
