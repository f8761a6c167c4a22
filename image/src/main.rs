//! The `hearth-image` command line: parses arguments and calls the library.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hearth_image::keys;
use hearth_image::workspace::Workspace;

/// Builds, runs and flashes Hearth disk images.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Workspace holding board-configs/ and overlays/ (default: found from the current folder).
    #[arg(long, global = true)]
    workspace: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the boards this workspace can build.
    ListBoards,
    /// Make a new ed25519 signing key (PKCS#8 PEM) and its public half (FILE.pub).
    Keygen {
        #[arg(long, default_value = "hearth-signing.pem")]
        out: PathBuf,
    },
}

fn workspace(arg: Option<PathBuf>) -> Result<Workspace> {
    match arg {
        Some(root) => Ok(Workspace { root }),
        None => {
            let cwd = std::env::current_dir().context("cannot read the current folder")?;
            Workspace::discover(&cwd).context(
                "no board-configs/ found here or above; run inside the Hearth workspace or pass --workspace",
            )
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::ListBoards => {
            let boards = workspace(cli.workspace)?.boards();
            for name in boards.names()? {
                let board = boards.load(&name)?;
                println!("{:<12} {:<6} {}", board.name, board.arch, board.description);
            }
        }
        Command::Keygen { out } => {
            keys::generate(&out)?;
            println!(
                "wrote {} (private) and {} (public)",
                out.display(),
                keys::public_path(&out).display()
            );
        }
    }
    Ok(())
}
