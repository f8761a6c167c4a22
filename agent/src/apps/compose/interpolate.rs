//! Variable interpolation with Docker Compose's rules, over one string at a time.
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`,
//! `${VAR?error}`, `${VAR:+replacement}`, `${VAR+replacement}`, nested templates inside defaults,
//! and `$$` for a literal `$`. An unset variable without a default becomes the empty string and a
//! warning, as in Compose. A `$` not followed by a name, `{` or `$` is an error (Compose calls it
//! an invalid template). Pure: the variables are passed in; nothing reads the process environment.

use std::collections::BTreeMap;

/// Variables visible to interpolation.
pub type Vars = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("invalid interpolation: {0}")]
    Invalid(String),
    #[error("required variable {name} is missing: {message}")]
    Required { name: String, message: String },
}

/// The outcome of interpolating one string: the value and the names of unset variables used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpolated {
    pub value: String,
    pub unset: Vec<String>,
}

/// Interpolates `input` with `vars`.
pub fn interpolate(input: &str, vars: &Vars) -> Result<Interpolated, InterpolationError> {
    let mut unset = Vec::new();
    let value = expand(input, vars, &mut unset)?;
    Ok(Interpolated { value, unset })
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn expand(input: &str, vars: &Vars, unset: &mut Vec<String>) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let close = matching_brace(&after[1..]).ok_or_else(|| {
                    InterpolationError::Invalid(format!("unclosed \"${{\" in {input:?}"))
                })?;
                let inner = &after[1..1 + close];
                out.push_str(&braced(inner, input, vars, unset)?);
                rest = &after[close + 2..];
            }
            Some(c) if is_name_start(c) => {
                let len = after
                    .find(|c: char| !is_name_char(c))
                    .unwrap_or(after.len());
                let name = &after[..len];
                out.push_str(&lookup(name, vars, unset));
                rest = &after[len..];
            }
            _ => {
                return Err(InterpolationError::Invalid(format!(
                    "\"$\" must be followed by a variable name, \"{{\" or \"$\" in {input:?} \
                     (write \"$$\" for a literal dollar sign)"
                )));
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing a `${` whose content starts at `s`, honouring nested `${...}`.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn lookup(name: &str, vars: &Vars, unset: &mut Vec<String>) -> String {
    match vars.get(name) {
        Some(v) => v.clone(),
        None => {
            if !unset.iter().any(|u| u == name) {
                unset.push(name.to_string());
            }
            String::new()
        }
    }
}

fn braced(
    inner: &str,
    input: &str,
    vars: &Vars,
    unset: &mut Vec<String>,
) -> Result<String, InterpolationError> {
    let name_len = inner
        .find(|c: char| !is_name_char(c))
        .unwrap_or(inner.len());
    let name = &inner[..name_len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(InterpolationError::Invalid(format!(
            "\"${{{inner}}}\" is not a valid variable reference in {input:?}"
        )));
    }
    let op = &inner[name_len..];
    let value = vars.get(name);
    let (colon, op) = match op.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    // With a colon, an empty value counts as unset.
    let present = value.is_some_and(|v| !colon || !v.is_empty());
    let mut op_chars = op.chars();
    match op_chars.next() {
        None if !colon => Ok(lookup(name, vars, unset)),
        Some('-') => match (present, value) {
            (true, Some(v)) => Ok(v.clone()),
            _ => expand(&op[1..], vars, unset),
        },
        Some('+') => {
            if present {
                expand(&op[1..], vars, unset)
            } else {
                Ok(String::new())
            }
        }
        Some('?') => match (present, value) {
            (true, Some(v)) => Ok(v.clone()),
            _ => Err(InterpolationError::Required {
                name: name.to_string(),
                message: expand(&op[1..], vars, unset)?,
            }),
        },
        _ => Err(InterpolationError::Invalid(format!(
            "\"${{{inner}}}\" is not a valid variable reference in {input:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [
            ("AppID", "gitea"),
            ("EMPTY", ""),
            ("TZ", "Europe/Berlin"),
            ("N", "7"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn ok(s: &str) -> String {
        interpolate(s, &vars()).expect("interpolates").value
    }

    #[test]
    fn plain_and_braced_names() {
        assert_eq!(ok("/DATA/AppData/$AppID/data"), "/DATA/AppData/gitea/data");
        assert_eq!(ok("${AppID}_x"), "gitea_x");
        assert_eq!(ok("$AppID-$N"), "gitea-7");
        assert_eq!(ok("no vars"), "no vars");
    }

    #[test]
    fn dollar_dollar_is_a_literal_dollar() {
        assert_eq!(ok("cost $$5 and $${AppID}"), "cost $5 and ${AppID}");
    }

    #[test]
    fn defaults_follow_colon_rules() {
        assert_eq!(ok("${MISSING:-d}"), "d");
        assert_eq!(ok("${MISSING-d}"), "d");
        assert_eq!(ok("${EMPTY:-d}"), "d");
        assert_eq!(ok("${EMPTY-d}"), "");
        assert_eq!(ok("${N:-d}"), "7");
        assert_eq!(ok("${MISSING:-}"), "");
    }

    #[test]
    fn replacement_when_set() {
        assert_eq!(ok("${N:+set}"), "set");
        assert_eq!(ok("${EMPTY:+set}"), "");
        assert_eq!(ok("${EMPTY+set}"), "set");
        assert_eq!(ok("${MISSING+set}"), "");
    }

    #[test]
    fn nested_defaults_are_interpolated() {
        assert_eq!(ok("${MISSING:-${AppID}-x}"), "gitea-x");
        assert_eq!(ok("${MISSING:-${ALSO_MISSING:-deep}}"), "deep");
    }

    #[test]
    fn required_variables_fail_with_the_message() {
        let err = interpolate("${MISSING:?set MISSING first}", &vars()).expect_err("required");
        assert_eq!(
            err,
            InterpolationError::Required {
                name: "MISSING".into(),
                message: "set MISSING first".into()
            }
        );
        assert!(interpolate("${EMPTY:?no}", &vars()).is_err());
        assert_eq!(ok("${EMPTY?no}"), "");
        assert!(interpolate("${MISSING?no}", &vars()).is_err());
    }

    #[test]
    fn unset_variables_become_empty_and_are_reported() {
        let r = interpolate("a${NOPE}b$NOPE$OTHER", &vars()).expect("interpolates");
        assert_eq!(r.value, "ab");
        assert_eq!(r.unset, vec!["NOPE".to_string(), "OTHER".to_string()]);
    }

    #[test]
    fn invalid_templates_are_errors() {
        for bad in [
            "$",
            "a $ b",
            "$5",
            "${",
            "${AppID",
            "${}",
            "${5x}",
            "${AppID!x}",
        ] {
            assert!(
                matches!(
                    interpolate(bad, &vars()),
                    Err(InterpolationError::Invalid(_))
                ),
                "{bad:?} should be invalid"
            );
        }
    }
}
