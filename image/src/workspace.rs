//! Where the builder's inputs live: the workspace root holding `board-configs/` and
//! `overlays/`, and the cache directory for bootstrapped bases.
use std::path::{Path, PathBuf};

use crate::board::BoardDir;

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    /// Finds the workspace from `start` upwards: the first folder holding `board-configs/`.
    pub fn discover(start: &Path) -> Option<Workspace> {
        start
            .ancestors()
            .find(|dir| dir.join("board-configs").is_dir() && dir.join("overlays").is_dir())
            .map(|root| Workspace {
                root: root.to_path_buf(),
            })
    }

    pub fn boards(&self) -> BoardDir {
        BoardDir::new(self.root.join("board-configs"))
    }

    pub fn overlays(&self) -> PathBuf {
        self.root.join("overlays")
    }
}
