use clap::Parser;

/// Hearth over-the-air update tool (bundles, signing, repositories).
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
