//! The image pipeline: bootstrap → root → lints → seal → boot files → disk → artifacts.
use std::path::{Path, PathBuf};

use crate::board::Board;
use crate::bootstrap::{self, Base, BaseInputs};
use crate::cmd::Runner;
use crate::workspace::Workspace;

/// SOURCE_DATE_EPOCH of everything the builder makes, unless the environment sets one:
/// a constant, so the cached base stays valid from one commit to the next.
pub const DEFAULT_EPOCH: u64 = 1_735_689_600; // 2025-01-01T00:00:00Z

pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EPOCH)
}

pub fn base_inputs(ws: &Workspace, board: &Board) -> anyhow::Result<BaseInputs> {
    let common = ws.boards().common()?;
    Ok(BaseInputs::new(
        board,
        &common,
        ws.overlays().join("initramfs"),
        source_date_epoch(),
    ))
}

/// Only the first step: makes sure the board's base is in the cache.
pub fn bootstrap_only(
    ws: &Workspace,
    board: &str,
    cache: &Path,
    verbose: bool,
) -> anyhow::Result<Base> {
    let board = ws.boards().load(board)?;
    let inputs = base_inputs(ws, &board)?;
    let log: PathBuf = cache.join(format!("bootstrap-{}.log", board.name));
    let runner = Runner::new(Some(&log), verbose)?;
    eprintln!("bootstrapping {} base (log: {})", board.arch, log.display());
    Ok(bootstrap::ensure(&inputs, cache, &board.name, &runner)?)
}
