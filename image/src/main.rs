//! The `hearth-image` command line: parses arguments and calls the library.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hearth_image::board::RootFs;
use hearth_image::build::BuildOptions;
use hearth_image::run::RunOptions;
use hearth_image::workspace::Workspace;
use hearth_ota::keys;

/// Builds, runs and flashes Hearth disk images.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Workspace holding board-configs/ and overlays/ (default: found from the current folder).
    #[arg(long, global = true)]
    workspace: Option<PathBuf>,
    /// Cache for bootstrapped bases (default: $HEARTH_IMAGE_CACHE or ~/.cache/hearth-image).
    #[arg(long, global = true)]
    cache: Option<PathBuf>,
    /// Echo the output of every program the builder runs.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the boards this workspace can build: architecture, boot method and how far each
    /// board's image is verified (booted in QEMU, emulated kernel boot, structural check only).
    ListBoards,
    /// Make a new ed25519 signing key (PKCS#8 PEM) and its public half (FILE.pub), and the
    /// release's Secure Boot key set (PK, KEK, db: keys, certificates and the signed lists
    /// for enrolment) in the folder FILE.secureboot.
    Keygen {
        #[arg(long, default_value = "hearth-signing.pem")]
        out: PathBuf,
    },
    /// Build a signed disk image for a board.
    Build(BuildArgs),
    /// Boot a built image under QEMU (software emulation) with UEFI firmware.
    Run {
        #[arg(long, default_value = "qemu-x86_64")]
        board: String,
        /// Image to boot (.img or .img.xz); default: the newest build of the board in --out.
        #[arg(long)]
        image: Option<PathBuf>,
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// Folder for the VM's disk, firmware variables and serial log.
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Size of the virtual disk in GiB (the data partition grows into it).
        #[arg(long, default_value_t = 8)]
        disk_gib: u64,
        /// Guest memory in MiB (default: the board's `[qemu] memory_mib`).
        #[arg(long)]
        memory_mib: Option<u32>,
        #[arg(long, default_value_t = 8443)]
        https_port: u16,
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
        #[arg(long)]
        ssh_port: Option<u16>,
        /// Show the serial console on this terminal too.
        #[arg(long)]
        console: bool,
        /// Boot the disk left in --run-dir by an earlier run again (keeps its state).
        #[arg(long)]
        reuse_disk: bool,
        /// Attach another disk file (raw, or qcow2 by its extension) as a virtio disk;
        /// repeatable. The guest sees them as vdb, vdc, … in order.
        #[arg(long = "extra-disk")]
        extra_disks: Vec<PathBuf>,
        /// Boot with Secure Boot enforced: the board's Secure Boot firmware, with the key set's
        /// PK, KEK and db enrolled in a fresh variable store.
        #[arg(long)]
        secure_boot: bool,
        /// The key set to enroll with --secure-boot (default: the development key set the
        /// builder signs with when it is given none).
        #[arg(long, value_name = "DIR", requires = "secure_boot")]
        secure_boot_keys: Option<PathBuf>,
    },
    /// Write an image (.img or .img.xz) to a whole disk, with progress, fsync and a read-back
    /// check. Refuses the running system's disk always, disks in use, and non-removable disks
    /// unless --force.
    Flash {
        #[arg(long)]
        image: PathBuf,
        #[arg(long)]
        device: PathBuf,
        /// Allow a disk that is not removable (still never the system's disk or a disk in use).
        #[arg(long)]
        force: bool,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a built image offline: the signature of its SHA256SUMS, the checksums of the files
    /// beside it, and (dm-verity boards) every slot's root against the root hash its initrd
    /// carries. Prints each check; exits non-zero on any mismatch.
    Verify {
        /// The image (.img or .img.xz), with its SHA256SUMS, .sig and manifest beside it.
        image: PathBuf,
        /// Public half of the image signing key (PEM, `hearth-image keygen`'s FILE.pub);
        /// default: the development key in the cache.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The release's Secure Boot db certificate (`hearth-image keygen`'s
        /// FILE.secureboot/db.crt): systemd-boot, the UKIs and their addons must be signed by
        /// it; default: the development key set's in the cache, if there is one.
        #[arg(long, value_name = "FILE")]
        secure_boot_cert: Option<PathBuf>,
    },
    /// Bootstrap (or find in the cache) a board's Debian base without building an image.
    Bootstrap {
        #[arg(long)]
        board: String,
        /// Only print the cache entry the board's base has (or would have); bootstrap nothing.
        #[arg(long)]
        print_entry: bool,
    },
}

#[derive(clap::Args)]
struct BuildArgs {
    #[arg(long)]
    board: String,
    /// Image version (default: the workspace version).
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    version: String,
    /// ed25519 signing key (PKCS#8 PEM); default: a development key in the cache.
    #[arg(long)]
    key: Option<PathBuf>,
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Prebuilt agent binary for the board's architecture.
    #[arg(long)]
    agent_bin: Option<PathBuf>,
    /// Enable SSH for root with this public key (off otherwise).
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// Override the board's read-only root file system.
    #[arg(long, value_parser = ["squashfs", "erofs"])]
    rootfs: Option<String>,
    /// Write the root into both slots (default: slot a; slot b is marked empty).
    #[arg(long)]
    both_slots: bool,
    /// Keep the work folder (root tree, partition files) for inspection.
    #[arg(long)]
    keep_work: bool,
    /// Publish the raw sparse .img instead of .img.xz (quick local boots).
    #[arg(long)]
    no_xz: bool,
    /// A local or CI build: fast compression of the root (squashfs zstd level 3, EROFS
    /// lz4) and no .img.xz. Published images are built without it.
    #[arg(long)]
    fast: bool,
    /// The update bundle's monotonic version number (default: MAJOR*1000000 +
    /// MINOR*1000 + PATCH of an x.y.z --version).
    #[arg(long)]
    version_number: Option<u64>,
    /// Oldest version number the update bundle may be installed over (default: any).
    #[arg(long, default_value_t = 0)]
    min_version_number: u64,
    /// OTA release private key (PKCS#8 PEM) that signs the update bundle; with
    /// --ota-keylist and --ota-root-pub. Default: development OTA keys in the cache.
    #[arg(long, requires_all = ["ota_keylist", "ota_root_pub"])]
    ota_release_key: Option<PathBuf>,
    /// Root-signed key list naming the release key (`hearth-ota delegate`).
    #[arg(long, requires_all = ["ota_release_key", "ota_root_pub"])]
    ota_keylist: Option<PathBuf>,
    /// OTA root public key (PEM), baked into the image as /usr/lib/hearth/ota-root.pub.
    #[arg(long, requires_all = ["ota_release_key", "ota_keylist"])]
    ota_root_pub: Option<PathBuf>,
    /// Update repository (http or https base URL of a `hearth-ota publish` folder) the
    /// device checks; written as `[update] repo_url` into the agent's device configuration.
    #[arg(long)]
    update_url: Option<String>,
    /// Another overlay folder laid over the root after the board's overlays; repeatable.
    #[arg(long = "extra-overlay")]
    extra_overlays: Vec<PathBuf>,
    /// Make only the sealed root and the update bundle (no disk image).
    #[arg(long)]
    bundle_only: bool,
    /// Also write the update bundle in this older format (`*.vN.bundle`): 2 for devices on a
    /// format-2 release, 1 for devices on 0.1. Publish it too for the first release of a new
    /// format (docs/ota-bundle.md, "Versioning").
    #[arg(long, value_name = "FORMAT", value_parser = clap::value_parser!(u16).range(1..=2))]
    bridge_bundle: Option<u16>,
    /// The release's Secure Boot key set (`hearth-image keygen`'s FILE.secureboot/) for boards
    /// with unified kernel images; default: the development key set in the cache.
    #[arg(long, value_name = "DIR")]
    secure_boot_keys: Option<PathBuf>,
}

/// Where `keygen --out FILE` puts the Secure Boot key set: FILE.secureboot.
fn secure_boot_dir(out: &std::path::Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".secureboot");
    PathBuf::from(name)
}

fn cache_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("HEARTH_IMAGE_CACHE").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hearth-image")))
        .unwrap_or_else(|| PathBuf::from("/var/cache/hearth-image"))
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

/// The most recently written `hearth-*-<board>.img[.xz]` in `out`.
fn newest_image(out: &std::path::Path, board: &str) -> Result<PathBuf> {
    let suffixes = [format!("-{board}.img.xz"), format!("-{board}.img")];
    std::fs::read_dir(out)
        .with_context(|| format!("cannot read {}", out.display()))?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            suffixes.iter().any(|s| name.ends_with(s.as_str()))
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .with_context(|| {
            format!(
                "no image for {board} in {}; build one or pass --image",
                out.display()
            )
        })
}

/// `hearth-image build`: the options as the library takes them, then the build.
fn build(
    args: BuildArgs,
    workspace_arg: Option<PathBuf>,
    cache: Option<PathBuf>,
    verbose: bool,
) -> Result<()> {
    let BuildArgs {
        board,
        version,
        key,
        out,
        agent_bin,
        ssh_key,
        rootfs,
        both_slots,
        keep_work,
        no_xz,
        fast,
        version_number,
        min_version_number,
        ota_release_key,
        ota_keylist,
        ota_root_pub,
        update_url,
        extra_overlays,
        bundle_only,
        bridge_bundle,
        secure_boot_keys,
    } = args;
    let ws = workspace(workspace_arg)?;
    let rootfs = match rootfs.as_deref() {
        Some("erofs") => Some(RootFs::Erofs),
        Some(_) => Some(RootFs::Squashfs),
        None => None,
    };
    let opts = BuildOptions {
        board,
        version,
        key,
        out,
        agent_bin,
        cache: cache_dir(cache),
        ssh_key,
        rootfs,
        both_slots,
        keep_work,
        no_xz,
        fast,
        verbose,
        version_number,
        min_version_number,
        ota_keys: match (ota_release_key, ota_keylist, ota_root_pub) {
            (Some(release_key), Some(keylist), Some(root_pub)) => {
                Some(hearth_image::ota::OtaKeyFiles {
                    release_key,
                    keylist,
                    root_pub,
                })
            }
            _ => None,
        },
        update_url,
        extra_overlays,
        bundle_only,
        bridge_bundle,
        secure_boot_keys,
    };
    let result = hearth_image::build::build(&ws, &opts)?;
    eprintln!("\n{}", result.summary);
    for f in &result.files {
        println!("{}", f.display());
    }
    Ok(())
}

/// `hearth-image flash`: check the disk, say what is written where, write and verify.
fn flash(
    image: &std::path::Path,
    device: &std::path::Path,
    force: bool,
    quiet: bool,
) -> Result<()> {
    let target = hearth_image::flash::check(image, device, force)?;
    if !quiet {
        eprintln!(
            "writing {} ({} MiB{}) to {} ({}, {} MiB{})",
            image.display(),
            target.image_size.div_ceil(1 << 20),
            if target.compressed {
                ", decompressing"
            } else {
                ""
            },
            device.display(),
            target.name,
            target.size >> 20,
            if target.removable {
                ", removable"
            } else {
                ", forced: not removable"
            }
        );
    }
    let report = hearth_image::flash::flash(image, &target, !quiet)?;
    println!(
        "wrote and verified {} bytes to {} in {:.1} s (sha256 {})",
        report.bytes,
        device.display(),
        report.seconds,
        report.sha256
    );
    Ok(())
}

/// `hearth-image verify`: exits 1 when any check fails.
fn verify(
    image: &std::path::Path,
    key: Option<PathBuf>,
    secure_boot_cert: Option<PathBuf>,
    cache: Option<PathBuf>,
) -> Result<()> {
    let secure_boot_cert = secure_boot_cert.or_else(|| {
        let dev = hearth_image::secureboot::dev_dir(&cache_dir(cache.clone())).join("db.crt");
        dev.is_file().then(|| {
            eprintln!(
                "no --secure-boot-cert: checking Secure Boot signatures against the development db {}",
                dev.display()
            );
            dev
        })
    });
    let key_path = match key {
        Some(k) => k,
        None => {
            let dev = keys::public_path(&cache_dir(cache).join("dev-signing.pem"));
            eprintln!(
                "no --key: checking against the development key {}",
                dev.display()
            );
            dev
        }
    };
    let key = keys::load_verifying(&key_path)?;
    let report = hearth_image::verify::verify(image, &key, secure_boot_cert.as_deref(), true)?;
    let failed = report.failed();
    println!(
        "{} checks, {} failed: {}",
        report.checks.len(),
        failed,
        if failed == 0 {
            "the image is the signed one"
        } else {
            "the image does NOT match what was signed"
        }
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::ListBoards => {
            let boards = workspace(cli.workspace)?.boards();
            let loaded = boards
                .names()?
                .iter()
                .map(|name| boards.load(name))
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", hearth_image::board::list(&loaded));
        }
        Command::Keygen { out } => {
            let sb_dir = secure_boot_dir(&out);
            if out.exists() || sb_dir.exists() {
                anyhow::bail!(
                    "{} or {} exists already: keygen never replaces keys",
                    out.display(),
                    sb_dir.display()
                );
            }
            keys::generate(&out)?;
            let runner = hearth_image::cmd::Runner::new(None, cli.verbose)?;
            hearth_image::secureboot::SecureBootKeys::generate(&sb_dir, "Hearth release", &runner)?;
            println!(
                "wrote {} (private), {} (public) and the Secure Boot key set {} (db.crt is what the release's UKIs verify under)",
                out.display(),
                keys::public_path(&out).display(),
                sb_dir.display()
            );
        }
        Command::Build(args) => build(args, cli.workspace, cli.cache, cli.verbose)?,
        Command::Run {
            board,
            image,
            out,
            run_dir,
            disk_gib,
            memory_mib,
            https_port,
            http_port,
            ssh_port,
            console,
            reuse_disk,
            extra_disks,
            secure_boot,
            secure_boot_keys,
        } => {
            let ws = workspace(cli.workspace)?;
            let board = ws.boards().load(&board)?;
            let image = match image {
                Some(i) => i,
                None => newest_image(&out, &board.name)?,
            };
            let cache = cache_dir(cli.cache);
            let run_dir = run_dir.unwrap_or_else(|| cache.join("run").join(&board.name));
            let secure_boot = match (secure_boot, secure_boot_keys) {
                (false, _) => None,
                (true, Some(dir)) => Some(dir),
                (true, None) => Some(hearth_image::secureboot::dev_dir(&cache)),
            };
            let opts = RunOptions {
                image,
                run_dir,
                disk_size: disk_gib << 30,
                memory_mib,
                https_port,
                http_port,
                ssh_port,
                console,
                reuse_disk,
                extra_disks,
                secure_boot,
            };
            hearth_image::run::run(&board, &opts)?;
        }
        Command::Flash {
            image,
            device,
            force,
            quiet,
        } => flash(&image, &device, force, quiet)?,
        Command::Verify {
            image,
            key,
            secure_boot_cert,
        } => verify(&image, key, secure_boot_cert, cli.cache)?,
        Command::Bootstrap {
            board,
            print_entry: true,
        } => {
            let ws = workspace(cli.workspace)?;
            let board = ws.boards().load(&board)?;
            let inputs = hearth_image::build::base_inputs(&ws, &board)?;
            let entry = hearth_image::bootstrap::entry_dir(&inputs, &cache_dir(cli.cache))?;
            println!("{}", entry.display());
        }
        Command::Bootstrap { board, .. } => {
            let ws = workspace(cli.workspace)?;
            let cache = cache_dir(cli.cache);
            std::fs::create_dir_all(&cache)
                .with_context(|| format!("cannot create {}", cache.display()))?;
            let base = hearth_image::build::bootstrap_only(&ws, &board, &cache, cli.verbose)?;
            println!(
                "{} ({} packages)",
                base.root.display(),
                base.packages.lines().count()
            );
        }
    }
    Ok(())
}
