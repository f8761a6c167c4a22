//! Boot files of a Raspberry Pi board (filled in by the Pi step of the image issue).
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::board::{Board, Slot};
use crate::cmd::Runner;

/// Stages `bootconfig` and the slots' boot partitions; returns `(partition, folder)` pairs.
pub fn stage(
    board: &Board,
    _root: &Path,
    _parts: &Path,
    _filled: &[Slot],
    _runner: &Runner,
) -> Result<Vec<(String, PathBuf)>> {
    bail!("{}: Raspberry Pi boot files are not built yet", board.name)
}
