//! The grammar of a path inside a file root, checked before the kernel sees it.
//!
//! This is a first line of defence with clear error messages; confinement itself is the
//! kernel's job (`openat2` with `RESOLVE_BENEATH`, see `confined.rs`), so nothing here has to be
//! perfect for safety — only for helpful errors.

use std::fmt;

pub const MAX_PATH_BYTES: usize = 4095;
pub const MAX_NAME_BYTES: usize = 255;

/// A relative path inside a root: `a/b/c`, or empty for the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelPath {
    components: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("paths may not contain NUL or control characters")]
    ControlCharacter,
    #[error("paths may not contain '.' or '..' components")]
    DotComponent,
    #[error("paths may not contain empty components ('//')")]
    EmptyComponent,
    #[error("a name is longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    PathTooLong,
    #[error("this action needs a file or folder, not the root")]
    IsRoot,
}

impl RelPath {
    pub fn root() -> Self {
        Self {
            components: Vec::new(),
        }
    }

    /// Parses a path as it arrives in a request (already percent-decoded). Leading and trailing
    /// slashes are ignored; everything else must be a clean, relative path.
    pub fn parse(input: &str) -> Result<Self, PathError> {
        if input.len() > MAX_PATH_BYTES {
            return Err(PathError::PathTooLong);
        }
        let trimmed = input.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        let mut components = Vec::new();
        for part in trimmed.split('/') {
            validate_name(part)?;
            components.push(part.to_string());
        }
        Ok(Self { components })
    }

    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The path as the kernel should see it relative to the root directory (`.` for the root).
    pub fn as_os_path(&self) -> String {
        if self.is_root() {
            ".".to_string()
        } else {
            self.components.join("/")
        }
    }

    /// Parent path and final name; an error for the root.
    pub fn split_last(&self) -> Result<(RelPath, &str), PathError> {
        let (last, parent) = self.components.split_last().ok_or(PathError::IsRoot)?;
        Ok((
            RelPath {
                components: parent.to_vec(),
            },
            last.as_str(),
        ))
    }

    pub fn join(&self, name: &str) -> Result<RelPath, PathError> {
        validate_name(name)?;
        let mut components = self.components.clone();
        components.push(name.to_string());
        Ok(RelPath { components })
    }

    pub fn name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    pub fn first(&self) -> Option<&str> {
        self.components.first().map(String::as_str)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.components.join("/"))
    }
}

/// One file name: non-empty, not `.`/`..`, no `/`, NUL or control characters, ≤ 255 bytes.
pub fn validate_name(name: &str) -> Result<(), PathError> {
    if name.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if name == "." || name == ".." {
        return Err(PathError::DotComponent);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(PathError::NameTooLong);
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(PathError::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_parse() {
        assert!(RelPath::parse("").expect("root").is_root());
        assert!(RelPath::parse("/").expect("root").is_root());
        let p = RelPath::parse("/Photos/2024/beach day.jpg").expect("parse");
        assert_eq!(p.as_os_path(), "Photos/2024/beach day.jpg");
        assert_eq!(p.name(), Some("beach day.jpg"));
        let (parent, name) = p.split_last().expect("split");
        assert_eq!(
            (parent.as_os_path().as_str(), name),
            ("Photos/2024", "beach day.jpg")
        );
        assert_eq!(
            RelPath::parse("ünïcødé/文件").expect("unicode").name(),
            Some("文件")
        );
    }

    #[test]
    fn hostile_paths_are_refused_with_a_reason() {
        let cases: [(&str, PathError); 10] = [
            ("..", PathError::DotComponent),
            ("a/../../etc", PathError::DotComponent),
            ("./a", PathError::DotComponent),
            ("a//b", PathError::EmptyComponent),
            ("a\0b", PathError::ControlCharacter),
            ("a\nb", PathError::ControlCharacter),
            ("a\u{1b}[31m", PathError::ControlCharacter),
            ("a\u{7f}", PathError::ControlCharacter),
            (&"x".repeat(256), PathError::NameTooLong),
            (&"a/".repeat(2100), PathError::PathTooLong),
        ];
        for (input, want) in cases {
            assert_eq!(RelPath::parse(input), Err(want), "{input:?}");
        }
        assert_eq!(
            RelPath::root().split_last().map(|_| ()),
            Err(PathError::IsRoot)
        );
    }
}
