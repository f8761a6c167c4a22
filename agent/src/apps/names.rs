//! Strict grammars for the names that reach Docker and the file system: app ids (the Compose
//! project), service names and container names. Anything else is refused, never escaped.

/// An app id is a Compose project name: lower-case letters, digits, `-` and `_`, starting with a
/// letter or digit, at most 63 characters (it becomes part of container and folder names).
pub fn check_app_id(id: &str) -> Result<(), String> {
    let ok_start = id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if id.is_empty() || id.len() > 63 || !ok_start || !ok_chars {
        return Err(format!(
            "{id:?} is not a valid app id (lower-case letters, digits, '-' and '_', \
             starting with a letter or digit, at most 63 characters)"
        ));
    }
    Ok(())
}

/// Turns a free-form name (a CasaOS `name:` such as `Stable-Diffusion-WebUI`) into an app id.
pub fn app_id_from(name: &str) -> String {
    let mut id: String = name
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    id = id.trim_start_matches(['-', '_']).to_string();
    id.truncate(63);
    id
}

/// Service names follow Compose: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_service(name: &str) -> Result<(), String> {
    check_docker_name(name, "service name")
}

/// Container, network and volume names: Docker's own grammar `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_docker_name(name: &str, what: &str) -> Result<(), String> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_start || !ok_chars || name.len() > 128 {
        return Err(format!(
            "{name:?} is not a valid {what} (letters, digits, '_', '.', '-', starting with a \
             letter or digit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_follow_the_project_grammar() {
        for good in ["gitea", "a", "my-app_2", "0ad"] {
            assert!(check_app_id(good).is_ok(), "{good}");
        }
        for bad in ["", "Gitea", "-x", "a/b", "a b", "..", &"x".repeat(64)] {
            assert!(check_app_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn free_form_names_become_valid_ids() {
        assert_eq!(
            app_id_from("Stable-Diffusion-WebUI"),
            "stable-diffusion-webui"
        );
        assert_eq!(app_id_from("my app!"), "my-app-");
        assert!(check_app_id(&app_id_from("Ünïcode Ápp")).is_ok());
    }

    #[test]
    fn docker_names_refuse_separators_and_traversal() {
        assert!(check_docker_name("gitea", "x").is_ok());
        assert!(check_docker_name("my.app-1_x", "x").is_ok());
        for bad in ["", "../x", "a/b", "-a", "a b", "a\0"] {
            assert!(check_docker_name(bad, "x").is_err(), "{bad:?}");
        }
    }
}
