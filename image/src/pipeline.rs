//! The steps of one image build, in order. Each step reads what earlier steps left in the
//! work folder; only the last step touches the output folder.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::artifacts::{self, FileEntry, Manifest, PartitionEntry, StepTime};
use crate::board::{Arch, Board, BootMethod, Role, Slot};
use crate::build::{
    BuildOptions, BuildResult, NEEDED_FREE_BYTES, TOOLS, base_inputs, source_date_epoch,
};
use crate::cmd::{Runner, which};
use crate::partition::{Plan, derived_uuid, derived_volume_id};
use crate::progress::Progress;
use crate::rootfs::RootContent;
use crate::workspace::Workspace;
use crate::{
    bootstrap, disk, efi, fsutil, initrd, lint, ota, rootfs, rpi, seal, secureboot, uboot, uki,
    verity,
};
use hearth_ota::keys;

const STEPS: usize = 11;

pub fn run(ws: &Workspace, opts: &BuildOptions) -> Result<BuildResult> {
    let mut progress = Progress::new(STEPS);
    progress.step("check inputs");
    let board = ws.boards().load(&opts.board)?;
    preflight(&opts.out, &opts.cache)?;
    let key = signing_key(opts)?;
    let version_number = match opts.version_number {
        Some(n) => n,
        None => ota::version_number(&opts.version)?,
    };
    if opts.min_version_number > version_number {
        bail!(
            "--min-version-number {} is above the version number {version_number}",
            opts.min_version_number
        );
    }
    if let Some(url) = &opts.update_url {
        ota::check_update_url(url)?;
    }
    for dir in &opts.extra_overlays {
        if !dir.is_dir() {
            bail!("--extra-overlay {} is not a folder", dir.display());
        }
    }
    let ota_keys = ota::load_keys(opts.ota_keys.as_ref(), &opts.cache)?;
    let ssh_key = match &opts.ssh_key {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the SSH public key {}", p.display()))?,
        ),
        None => None,
    };
    let epoch = source_date_epoch();
    let work = opts
        .cache
        .join("work")
        .join(format!("{}-{}", board.name, std::process::id()));
    fsutil::remove_all(&work)?;
    std::fs::create_dir_all(&work)?;
    let runner = Runner::new(Some(&work.join("build.log")), opts.verbose)?;
    eprintln!(
        "      board {} ({}), version {} (number {version_number}), work {}",
        board.name,
        board.arch,
        opts.version,
        work.display()
    );
    let ota = OtaInputs {
        keys: ota_keys,
        version_number,
    };
    let result = run_steps(
        ws,
        opts,
        &board,
        &key,
        &ota,
        ssh_key,
        epoch,
        &work,
        &runner,
        &mut progress,
    );
    if result.is_err() {
        eprintln!(
            "build failed; the log is {}",
            work.join("build.log").display()
        );
        if !opts.keep_work {
            let _ = fsutil::remove_all(&work.join("root"));
            let _ = fsutil::remove_all(&work.join("parts"));
        }
        let _ = fsutil::remove_all(&staging_dir(opts, &board));
    } else if !opts.keep_work {
        let _ = fsutil::remove_all(&work);
    }
    result
}

fn preflight(out: &Path, cache: &Path) -> Result<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if !missing.is_empty() {
        bail!(
            "missing build tools: {} (ci/image-deps installs them)",
            missing.join(", ")
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let free = free_bytes(cache)?;
    if free < NEEDED_FREE_BYTES {
        bail!(
            "{} has {} MiB free; a build needs {} MiB",
            cache.display(),
            free >> 20,
            NEEDED_FREE_BYTES >> 20
        );
    }
    Ok(())
}

fn free_bytes(path: &Path) -> Result<u64> {
    let out = Command::new("df")
        .args(["--output=avail", "-B1", "--"])
        .arg(path)
        .output()
        .context("cannot run df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .context("cannot read free space from df")
}

/// What the OTA side of a build needs besides the options.
struct OtaInputs {
    keys: ota::OtaKeys,
    version_number: u64,
}

fn prefix(opts: &BuildOptions, board: &Board) -> String {
    format!("hearth-{}-{}", opts.version, board.name)
}

/// The private folder in `--out` the outputs are collected in before they are renamed.
fn staging_dir(opts: &BuildOptions, board: &Board) -> PathBuf {
    opts.out.join(format!(
        ".partial-{}-{}",
        prefix(opts, board),
        std::process::id()
    ))
}

fn signing_key(opts: &BuildOptions) -> Result<ed25519_dalek::SigningKey> {
    match &opts.key {
        Some(path) => {
            if !path.exists() {
                bail!(
                    "signing key {} does not exist (make one with `hearth-image keygen --out {}`)",
                    path.display(),
                    path.display()
                );
            }
            Ok(keys::load_signing(path)?)
        }
        None => {
            let path = opts.cache.join("dev-signing.pem");
            if !path.exists() {
                keys::generate(&path)?;
            }
            eprintln!(
                "      no --key: signing with the development key {}",
                path.display()
            );
            Ok(keys::load_signing(&path)?)
        }
    }
}

/// What every step of one build reads: the inputs and where the work goes.
struct Build<'a> {
    ws: &'a Workspace,
    opts: &'a BuildOptions,
    board: Board,
    epoch: u64,
    work: &'a Path,
    runner: &'a Runner,
    /// `hearth-V-BOARD`: the outputs' file name prefix.
    prefix: String,
    /// `BOARD VERSION`: what derived UUIDs and volume ids hash (the verity salt hashes the
    /// board alone).
    seed: String,
}

/// The prepared root and what it was made from.
struct PreparedRoot {
    root: PathBuf,
    base: bootstrap::Base,
    agent_sha: String,
    build_id: String,
    release: ota::Release,
}

/// The sealed root: the file system, followed by its verity hash tree.
struct SealedRoot {
    img: PathBuf,
    verity: verity::VerityInfo,
}

/// The partition files, and what the boot step staged for the bundle.
struct BootFiles {
    plan: Plan,
    filled: Vec<Slot>,
    /// The Pi's firmware folder, or a U-Boot SBC's U-Boot (`dir` is then the file written
    /// before the first partition).
    firmware: Option<rpi::Firmware>,
    boot_parts: Vec<(String, PathBuf)>,
    data_img: Option<PathBuf>,
    /// EFI boards: the slot's kernel and verity initrd (the ESP's and the bundle's).
    slot_boot: Option<efi::SlotBoot>,
}

struct Bundles {
    staging: PathBuf,
    path: PathBuf,
    manifest: hearth_ota::manifest::Manifest,
    /// `--bridge-bundle N`: the same release in format N, for devices that read nothing newer.
    bridge: Option<(u16, PathBuf)>,
}

#[allow(clippy::too_many_arguments)]
fn run_steps(
    ws: &Workspace,
    opts: &BuildOptions,
    board: &Board,
    key: &ed25519_dalek::SigningKey,
    ota: &OtaInputs,
    ssh_key: Option<String>,
    epoch: u64,
    work: &Path,
    runner: &Runner,
    progress: &mut Progress,
) -> Result<BuildResult> {
    let b = Build {
        ws,
        opts,
        board: Board {
            rootfs: opts.rootfs.unwrap_or(board.rootfs),
            ..board.clone()
        },
        epoch,
        work,
        runner,
        prefix: prefix(opts, board),
        seed: format!("{} {}", board.name, opts.version),
    };
    let prepared = prepare_root(&b, key, ota, ssh_key.clone(), progress)?;
    lint_root(&prepared.root, &b.board, ssh_key.is_some(), progress)?;
    let sealed = seal_root(&b, &prepared.root, progress)?;
    let boot = boot_files(&b, &prepared, &sealed, progress)?;
    let bundles = update_bundle(&b, &prepared, &sealed, &boot, ota, progress)?;
    let raw = assemble_disk(&b, &sealed, &boot, progress)?;
    let (image_path, root_out, raw_sha) = compress(&b, &sealed, &bundles, &raw, progress)?;
    progress.step("sign and publish");
    let published = publish(
        &b,
        key,
        ota,
        &prepared,
        &sealed,
        &boot,
        &bundles,
        (image_path.as_deref(), &root_out, raw_sha.as_deref()),
        progress,
    )?;
    progress.finish("");
    let summary = progress.summary();
    let bundle_out = opts
        .out
        .join(bundles.path.file_name().context("bundle name")?);
    Ok(BuildResult {
        image: match &image_path {
            Some(p) => opts.out.join(p.file_name().context("image name")?),
            None => bundle_out.clone(),
        },
        bundle: bundle_out,
        files: published,
        summary,
    })
}

/// Steps 2–4: the agent, the cached base, and the root copied from it with overlays, agent,
/// release identity and Hearth's initramfs layer.
fn prepare_root(
    b: &Build,
    key: &ed25519_dalek::SigningKey,
    ota: &OtaInputs,
    ssh_key: Option<String>,
    progress: &mut Progress,
) -> Result<PreparedRoot> {
    let (opts, board, runner) = (b.opts, &b.board, b.runner);
    progress.step("agent binary");
    let agent = agent_binary(b.ws, board.arch, opts, runner)?;
    let agent_sha = artifacts::sha256_file(&agent)?;
    progress.finish(&format!(
        "{} ({} KiB)",
        agent.display(),
        file_size(&agent) >> 10
    ));

    progress.step("bootstrap base");
    let inputs = base_inputs(b.ws, board)?;
    let base = bootstrap::ensure(&inputs, &opts.cache, &board.name, runner)?;
    progress.finish(if base.cached {
        "cached"
    } else {
        "bootstrapped"
    });

    progress.step("prepare root");
    let root = b.work.join("root");
    fsutil::remove_all(&root)?;
    runner.run(
        Command::new("cp")
            .args(["-a", "--reflink=auto", "--"])
            .arg(&base.root)
            .arg(&root),
        false,
    )?;
    let mut overlays = vec![b.ws.overlays().join("base")];
    overlays.extend(board.overlays.iter().map(|o| b.ws.overlays().join(o)));
    overlays.extend(opts.extra_overlays.iter().cloned());
    let build_id = build_id(&[&base.key, &agent_sha, &opts.version, &board.name]);
    let content = RootContent {
        overlays,
        agent_bin: agent.clone(),
        image_id: format!("hearth-{}", board.name),
        version: opts.version.clone(),
        build_id: build_id.clone(),
        signing_public_pem: keys::public_pem(&key.verifying_key()),
        ssh_authorized_key: ssh_key,
    };
    rootfs::prepare(&root, &content, runner)?;
    // The bundled app stores (`stores/`, vendored; the image's agent drop-in names
    // /usr/share/hearth/stores/casaos as the default store, docs/apps.md).
    let stores = root.join("usr/share/hearth/stores");
    std::fs::create_dir_all(&stores)?;
    crate::overlay::apply(&b.ws.root.join("stores"), &stores)?;
    let release = ota::release(board, &opts.version, ota.version_number, &build_id);
    ota::write_into_root(
        &root,
        &release,
        &ota.keys.root_pub_pem(),
        opts.update_url.as_deref(),
    )?;
    // Every root is verity-protected: its initramfs refuses to boot without a root hash, and
    // knows how to refuse a slot on this board's boot method.
    let layer = initrd::layer_with_files(
        &b.ws.overlays().join("initrd-layer"),
        b.epoch,
        &format!("{build_id}\n"),
        &verity::root_layer_files(board.boot),
    )?;
    initrd::append_to_root(&root, &layer)?;
    progress.finish(&format!(
        "initramfs layer {} KiB",
        layer.len().div_ceil(1024)
    ));
    Ok(PreparedRoot {
        root,
        base,
        agent_sha,
        build_id,
        release,
    })
}

/// Step 5: a root with findings is not sealed.
fn lint_root(root: &Path, board: &Board, ssh: bool, progress: &mut Progress) -> Result<()> {
    progress.step("lint root");
    let findings = lint::run(&lint::LintContext {
        root,
        elf_machine: match board.arch {
            Arch::Amd64 => 62,
            Arch::Arm64 => 183,
        },
        ssh_enabled: ssh,
    });
    if !findings.is_empty() {
        let list: Vec<String> = findings
            .iter()
            .map(|(l, p)| format!("  {l}: {p}"))
            .collect();
        bail!("the root fails its lints:\n{}", list.join("\n"));
    }
    progress.finish(&format!("{} lints passed", lint::LINTS.len()));
    Ok(())
}

/// Step 6: squashfs or EROFS, then the verity hash tree appended.
fn seal_root(b: &Build, root: &Path, progress: &mut Progress) -> Result<SealedRoot> {
    progress.step("seal root");
    let kind = b.board.rootfs;
    let parts = b.work.join("parts");
    std::fs::create_dir_all(&parts)?;
    let img = parts.join(format!("{}.root.{}", b.prefix, kind.name()));
    let uuid = derived_uuid(&b.seed, "rootfs");
    let sort = b.work.join("squashfs.sort");
    std::fs::write(&sort, ota::sort_file(root))?;
    let compression = if b.opts.fast {
        seal::Compression::Fast
    } else {
        seal::Compression::Release
    };
    let cmd = seal::command(kind, root, &img, b.epoch, &uuid, Some(&sort), compression);
    let size = seal::seal(cmd, &img, b.runner)?;
    // The salt per board, not per release: see verity.rs (delta-friendly trees).
    let verity = verity::format(
        &img,
        &b.board.name,
        &derived_uuid(&b.seed, "verity"),
        b.runner,
    )?;
    progress.finish(&format!(
        "{} {} MiB + verity tree {} KiB, root hash {}…",
        kind.name(),
        size >> 20,
        (verity.total_size - verity.hash_offset) >> 10,
        &verity.root_hash[..12]
    ));
    Ok(SealedRoot { img, verity })
}

/// Step 7: the boot partitions (ESP, or the Pi's) and the data partition.
fn boot_files(
    b: &Build,
    prepared: &PreparedRoot,
    sealed: &SealedRoot,
    progress: &mut Progress,
) -> Result<BootFiles> {
    let (opts, board, runner) = (b.opts, &b.board, b.runner);
    progress.step("boot files");
    let root = &prepared.root;
    let parts = b.work.join("parts");
    let plan = Plan::for_board(board, &b.seed);
    let filled: Vec<Slot> = if opts.both_slots {
        Slot::ALL.to_vec()
    } else {
        vec![Slot::A]
    };
    let firmware = board_firmware(b)?;
    // The slot's initrd (the ESP's, or the Pi boot partition's): the root's with the verity
    // root hash appended. One for both slots: they hold the same release's root.
    let initrd = parts.join("initrd.img");
    verity::boot_initrd(
        &efi::boot_file(root, "initrd.img-")?,
        &sealed.verity,
        &b.opts.version,
        b.epoch,
        &initrd,
    )?;
    let v = &sealed.verity;
    let slot_boot = match board.boot {
        BootMethod::SystemdBoot | BootMethod::UBoot => {
            let kernel = efi::boot_file(root, "vmlinuz-")?;
            let uki = if board.uki {
                let keys =
                    secureboot::load_or_dev(opts.secure_boot_keys.as_deref(), &opts.cache, runner)?;
                Some(slot_ukis(
                    board,
                    root,
                    &parts,
                    &kernel,
                    &initrd,
                    v,
                    &b.opts.version,
                    &keys,
                    runner,
                )?)
            } else {
                None
            };
            let fdt = match board.uboot.as_ref().and_then(|u| u.fdt.as_deref()) {
                Some(rel) => Some(uboot::kernel_dtb(root, rel)?),
                None => None,
            };
            Some(efi::SlotBoot {
                kernel,
                initrd: initrd.clone(),
                uki,
                fdt,
            })
        }
        BootMethod::RpiTryboot => None,
    };
    // A --bundle-only build still stages the EFI files it bundles (kernel, initrd) from the
    // root, and on a Pi the boot partition image it bundles.
    let boot_parts = match (opts.bundle_only, board.boot) {
        (true, BootMethod::SystemdBoot | BootMethod::UBoot) => Vec::new(),
        _ => boot_partitions(
            board,
            root,
            &parts,
            &plan,
            &opts.version,
            &filled,
            firmware.as_ref(),
            slot_boot.as_ref(),
            &initrd,
            b.epoch,
            runner,
        )?,
    };
    let data_img = if opts.bundle_only {
        None
    } else {
        Some(data_partition(
            board,
            root,
            &parts,
            &plan,
            &b.seed,
            &prepared.build_id,
            b.epoch,
            runner,
        )?)
    };
    progress.finish(if opts.bundle_only {
        "bundle payloads only"
    } else {
        ""
    });
    Ok(BootFiles {
        plan,
        filled,
        firmware,
        boot_parts,
        data_img,
        slot_boot,
    })
}

/// The board's firmware from Debian: the Pi's boot files, or a U-Boot SBC's boot loader (the
/// file written before the first partition, checked to fit there).
fn board_firmware(b: &Build) -> Result<Option<rpi::Firmware>> {
    let (opts, board, runner) = (b.opts, &b.board, b.runner);
    Ok(match board.boot {
        BootMethod::RpiTryboot => {
            let common = b.ws.boards().common()?;
            Some(rpi::fetch_firmware(
                board,
                &common.mirror,
                &opts.cache,
                runner,
            )?)
        }
        BootMethod::UBoot => match board.uboot.as_ref().and_then(|u| u.firmware.as_ref()) {
            Some(fw) => {
                let common = b.ws.boards().common()?;
                let fetched =
                    crate::debpkg::fetch(board, &fw.package, &common.mirror, &opts.cache, runner)?;
                let file = fetched.dir.join(&fw.file);
                let len = std::fs::metadata(&file)
                    .with_context(|| format!("{} has no {}", fw.package, fw.file))?
                    .len();
                if fw.offset + len > fw.first_partition_mib << 20 {
                    bail!(
                        "{} ({len} bytes at {}) runs into the first partition at {} MiB",
                        fw.file,
                        fw.offset,
                        fw.first_partition_mib
                    );
                }
                Some(rpi::Firmware {
                    path: file,
                    package: fetched.package,
                    version: fetched.version,
                })
            }
            None => None,
        },
        BootMethod::SystemdBoot => None,
    })
}

/// Step 8: the signed update bundle (and the format-1 one with `--v1-bundle`).
fn update_bundle(
    b: &Build,
    prepared: &PreparedRoot,
    sealed: &SealedRoot,
    boot: &BootFiles,
    ota: &OtaInputs,
    progress: &mut Progress,
) -> Result<Bundles> {
    let (opts, board) = (b.opts, &b.board);
    progress.step("update bundle");
    let staging = staging_dir(opts, board);
    fsutil::remove_all(&staging)?;
    std::fs::create_dir_all(&staging)?;
    let boot_fat = boot
        .boot_parts
        .iter()
        .find(|(n, _)| n == "boot-a")
        .map(|(_, p)| p.clone());
    let payloads = ota::payloads(
        board,
        &sealed.img,
        boot.slot_boot.as_ref(),
        boot_fat.as_deref(),
    )?;
    let path = staging.join(format!("{}.bundle", b.prefix));
    let cdc = hearth_ota::manifest::CdcParams::DEFAULT;
    // Format 3 (paged manifest, docs/ota-bundle.md): what devices of this release read.
    let manifest = ota::build_bundle(
        board,
        &prepared.release,
        opts.min_version_number,
        payloads.clone(),
        &ota.keys,
        hearth_ota::manifest::Chunking::Paged {
            cdc,
            paging: hearth_ota::pages::Paging::DEFAULT,
        },
        &path,
    )?;
    // The same release in an older format (`--bridge-bundle N`), for devices whose reader knows
    // nothing newer: published to that format's index, it carries them onto this release.
    let bridge = opts
        .bridge_bundle
        .map(|format| {
            let bridge_path = staging.join(format!("{}.v{format}.bundle", b.prefix));
            let chunking = match format {
                1 => hearth_ota::manifest::Chunking::Fixed {
                    size: hearth_ota::manifest::DEFAULT_CHUNK_SIZE,
                },
                2 => hearth_ota::manifest::Chunking::Cdc(cdc),
                _ => bail!("--bridge-bundle {format}: only formats 1 and 2 are older"),
            };
            ota::build_bundle(
                board,
                &prepared.release,
                opts.min_version_number,
                payloads,
                &ota.keys,
                chunking,
                &bridge_path,
            )?;
            Ok((format, bridge_path))
        })
        .transpose()?;
    progress.finish(&format!(
        "{} MiB, {} payloads",
        file_size(&path) >> 20,
        manifest.payloads.len()
    ));
    Ok(Bundles {
        staging,
        path,
        manifest,
        bridge,
    })
}

/// Step 9: the GPT disk with the partition files placed sparsely; returns its path.
fn assemble_disk(
    b: &Build,
    sealed: &SealedRoot,
    boot: &BootFiles,
    progress: &mut Progress,
) -> Result<PathBuf> {
    progress.step("assemble disk");
    let raw = b.work.join("parts").join(format!("{}.img", b.prefix));
    if let Some(data_img) = &boot.data_img {
        let mut files: Vec<(String, PathBuf)> = boot.boot_parts.clone();
        for slot in &boot.filled {
            files.push((format!("root-{}", slot.letter()), sealed.img.clone()));
        }
        files.push(("data".to_string(), data_img.clone()));
        let refs: Vec<(&str, &Path)> = files
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_path()))
            .collect();
        disk::assemble(&boot.plan, &refs, &raw, b.runner)?;
        // A U-Boot SBC's boot loader, where its boot ROM reads it (after the GPT).
        if let (Some(fw), Some(spec)) = (
            &boot.firmware,
            b.board.uboot.as_ref().and_then(|u| u.firmware.as_ref()),
        ) {
            let bytes =
                std::fs::read(&fw.path).with_context(|| format!("{}", fw.path.display()))?;
            let disk = std::fs::OpenOptions::new().write(true).open(&raw)?;
            std::os::unix::fs::FileExt::write_all_at(&disk, &bytes, spec.offset)?;
            disk.sync_all()?;
        }
        progress.finish(&format!("{} MiB", boot.plan.disk_size >> 20));
    } else {
        progress.finish("skipped (--bundle-only)");
    }
    Ok(raw)
}

/// Step 10: xz (or the raw image); moves image and root into the staging folder. Returns the
/// image (none with `--bundle-only`), the staged root and, on a Pi, the raw image's SHA-256.
fn compress(
    b: &Build,
    sealed: &SealedRoot,
    bundles: &Bundles,
    raw: &Path,
    progress: &mut Progress,
) -> Result<(Option<PathBuf>, PathBuf, Option<String>)> {
    let opts = b.opts;
    progress.step("compress");
    // Raspberry Pi Imager checks the uncompressed image too.
    let raw_sha = match b.board.boot {
        BootMethod::RpiTryboot if !opts.no_xz && !opts.fast && !opts.bundle_only => {
            Some(artifacts::sha256_file(raw)?)
        }
        _ => None,
    };
    let image_path = if opts.bundle_only {
        None
    } else if opts.no_xz || opts.fast {
        let raw_out = bundles.staging.join(format!("{}.img", b.prefix));
        std::fs::rename(raw, &raw_out)?;
        Some(raw_out)
    } else {
        let xz = bundles.staging.join(format!("{}.img.xz", b.prefix));
        artifacts::compress_xz(raw, &xz)?;
        Some(xz)
    };
    let root_out = bundles
        .staging
        .join(sealed.img.file_name().context("root image name")?);
    std::fs::rename(&sealed.img, &root_out)?;
    progress.finish(&match &image_path {
        Some(p) => format!("{} MiB", file_size(p) >> 20),
        None => "skipped (--bundle-only)".to_string(),
    });
    Ok((image_path, root_out, raw_sha))
}

/// Step 11: the manifest, the Pi's Imager list, `SHA256SUMS` and its signature, then the
/// atomic rename of everything into `--out`.
#[allow(clippy::too_many_arguments)]
fn publish(
    b: &Build,
    key: &ed25519_dalek::SigningKey,
    ota: &OtaInputs,
    prepared: &PreparedRoot,
    sealed: &SealedRoot,
    boot: &BootFiles,
    bundles: &Bundles,
    (image_path, root_out, raw_sha): (Option<&Path>, &Path, Option<&str>),
    progress: &Progress,
) -> Result<Vec<PathBuf>> {
    let (opts, board) = (b.opts, &b.board);
    let staging = &bundles.staging;
    let image = image_path.map(FileEntry::of).transpose()?;
    let rootfs = FileEntry::of(root_out)?;
    let bundle = FileEntry::of(&bundles.path)?;
    let bridge_bundle = bundles
        .bridge
        .as_ref()
        .map(|(format, path)| {
            Ok::<_, artifacts::ArtifactError>(artifacts::BridgeBundle {
                format: *format,
                bundle: FileEntry::of(path)?,
            })
        })
        .transpose()?;
    let mut packages = artifacts::parse_packages(&prepared.base.packages);
    artifacts::measure_packages(
        &prepared.root,
        &prepared
            .root
            .join(crate::rootfs::FACTORY_VAR)
            .join("lib/dpkg/info"),
        &mut packages,
    )?;
    if let Some(fw) = &boot.firmware {
        packages.push(artifacts::Package {
            name: fw.package.clone(),
            version: fw.version.clone(),
            arch: match board.boot {
                BootMethod::UBoot => format!(
                    "{} (boot loader, before the partitions)",
                    board.arch.debian()
                ),
                _ => format!("{} (boot partitions only)", board.arch.debian()),
            },
            shipped_bytes: None,
        });
    }
    let manifest = Manifest {
        board: board.name.clone(),
        arch: board.arch.debian().to_string(),
        version: opts.version.clone(),
        build_id: prepared.build_id.clone(),
        base_key: prepared.base.key.clone(),
        source_date_epoch: b.epoch,
        rootfs_kind: board.rootfs.name().to_string(),
        rootfs: rootfs.clone(),
        verity: Some(sealed.verity.clone()),
        image: image.clone(),
        image_raw_size: if opts.bundle_only {
            0
        } else {
            boot.plan.disk_size
        },
        version_number: ota.version_number,
        min_version_number: opts.min_version_number,
        bundle: bundle.clone(),
        bundle_format: bundles.manifest.format,
        bridge_bundle: bridge_bundle.clone(),
        bundle_payloads: bundles
            .manifest
            .payloads
            .iter()
            .map(|p| artifacts::BundlePayload {
                name: p.name.clone(),
                size: p.size,
            })
            .collect(),
        ota_root_key_id: hearth_ota::hexutil::encode(&keys::key_id(&ota.keys.root_pub)),
        slots_filled: boot.filled.iter().map(|s| s.letter().to_string()).collect(),
        agent_sha256: prepared.agent_sha.clone(),
        partitions: boot
            .plan
            .partitions
            .iter()
            .map(|p| PartitionEntry {
                name: p.name.clone(),
                offset: p.offset,
                size: p.size,
                type_guid: p.type_guid.to_string(),
                uuid: p.uuid.clone(),
            })
            .collect(),
        packages,
        steps: progress
            .steps()
            .iter()
            .map(|(s, d, n)| StepTime {
                step: s.clone(),
                seconds: d.as_secs_f64(),
                note: n.clone(),
            })
            .collect(),
    };
    let manifest_path = staging.join(format!("{}.manifest.json", b.prefix));
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    let mut entries: Vec<FileEntry> = image.iter().cloned().collect();
    entries.extend([rootfs, bundle, FileEntry::of(&manifest_path)?]);
    entries.extend(bridge_bundle.map(|b| b.bundle));
    if let (BootMethod::RpiTryboot, Some(image)) = (board.boot, &image) {
        let list = rpi::os_list_of(
            board,
            &opts.version,
            b.epoch,
            image,
            boot.plan.disk_size,
            raw_sha.unwrap_or(&image.sha256),
        );
        let path = staging.join(format!("{}.os_list.json", b.prefix));
        std::fs::write(&path, serde_json::to_vec_pretty(&list)?)?;
        entries.push(FileEntry::of(&path)?);
    }
    artifacts::sign_checksums(staging, &b.prefix, &entries, key)?;
    Ok(artifacts::publish(staging, &opts.out)?)
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The agent for the board's architecture: `--agent-bin`, else the workspace's release build
/// (built now for x86_64; for arm64 the output of `ci/cross-arm64`).
fn agent_binary(
    ws: &Workspace,
    arch: Arch,
    opts: &BuildOptions,
    runner: &Runner,
) -> Result<PathBuf> {
    if let Some(bin) = &opts.agent_bin {
        if !bin.is_file() {
            bail!("--agent-bin {} does not exist", bin.display());
        }
        return Ok(bin.clone());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.root.join("target"));
    match arch {
        Arch::Amd64 => {
            runner.run(
                Command::new("cargo").current_dir(&ws.root).args([
                    "build",
                    "--release",
                    "-p",
                    "hearth-agent",
                ]),
                true,
            )?;
            Ok(target_dir.join("release/hearth-agent"))
        }
        Arch::Arm64 => {
            let bin = target_dir.join(format!("{}/release/hearth-agent", arch.rust_target()));
            if !bin.is_file() {
                bail!(
                    "no arm64 agent at {}; run ci/cross-arm64 or pass --agent-bin",
                    bin.display()
                );
            }
            Ok(bin)
        }
    }
}

/// The board's UKI (kernel, the slot's verity initrd, the command line with the root hash),
/// the two slots' command-line addons and systemd-boot, each signed with the Secure Boot db
/// key, in `parts`.
#[allow(clippy::too_many_arguments)]
fn slot_ukis(
    board: &Board,
    root: &Path,
    parts: &Path,
    kernel: &Path,
    initrd: &Path,
    verity: &verity::VerityInfo,
    version: &str,
    keys: &secureboot::SecureBootKeys,
    runner: &Runner,
) -> Result<efi::UkiBoot> {
    let suffix = board.arch.efi_suffix();
    let osrel_path = root.join("usr/lib/os-release");
    let osrel = std::fs::read_to_string(&osrel_path)
        .with_context(|| format!("{}", osrel_path.display()))?;
    let uki = parts.join("hearth.efi");
    uki::assemble(
        &uki::UkiParts {
            stub: &uki::stub_path(root, suffix),
            kernel,
            initrd,
            cmdline: &efi::uki_cmdline(board, &verity.root_hash),
            osrel: &efi::uki_osrel(&osrel, version),
            uname: &uki::kernel_release(kernel),
        },
        &uki,
    )?;
    let addon_stub = uki::addon_stub_path(root, suffix);
    let stub = std::fs::read(&addon_stub).with_context(|| format!("{}", addon_stub.display()))?;
    let mut addons = Vec::new();
    for slot in Slot::ALL {
        let mut line = efi::slot_addon_cmdline(slot).into_bytes();
        line.push(0);
        let out = parts.join(format!("slot-{}.addon.efi", slot.letter()));
        std::fs::write(&out, uki::add_sections(&stub, &[(".cmdline", &line)])?)
            .with_context(|| format!("{}", out.display()))?;
        keys.sign(&out, &out, runner)?;
        addons.push(out);
    }
    let [a, b]: [PathBuf; 2] = addons
        .try_into()
        .map_err(|_| anyhow::anyhow!("two slots"))?;
    keys.sign(&uki, &uki, runner)?;
    let loader = parts.join(format!("systemd-boot{suffix}.efi"));
    keys.sign(
        &root.join(format!("usr/lib/systemd/boot/efi/systemd-boot{suffix}.efi")),
        &loader,
        runner,
    )?;
    Ok(efi::UkiBoot {
        uki,
        addons: [a, b],
        loader,
        enrol: keys.enrolment_files(),
    })
}

/// Makes the FAT partition files of the board; returns `(partition name, file)` pairs.
#[allow(clippy::too_many_arguments)]
fn boot_partitions(
    board: &Board,
    root: &Path,
    parts: &Path,
    plan: &Plan,
    version: &str,
    filled: &[Slot],
    firmware: Option<&rpi::Firmware>,
    slot_boot: Option<&efi::SlotBoot>,
    slot_initrd: &Path,
    epoch: u64,
    runner: &Runner,
) -> Result<Vec<(String, PathBuf)>> {
    let seed = format!("{} {version}", board.name);
    let mut out = Vec::new();
    let staged: Vec<(String, PathBuf)> = match board.boot {
        BootMethod::SystemdBoot => {
            let dir = parts.join("stage-esp");
            let boot = slot_boot.context("the slot's kernel and verity initrd")?;
            efi::stage(board, root, &dir, version, filled, boot)?;
            vec![("esp".to_string(), dir)]
        }
        BootMethod::UBoot => {
            let dir = parts.join("stage-esp");
            let boot = slot_boot.context("the slot's kernel and verity initrd")?;
            uboot::stage(
                board,
                &dir,
                filled,
                boot,
                boot.fdt.as_deref(),
                epoch,
                runner,
            )?;
            let env = parts.join("uboot-env.raw");
            std::fs::write(&env, uboot::initial_env(filled))?;
            out.push((crate::board::names::UBOOT_ENV.to_string(), env));
            vec![("esp".to_string(), dir)]
        }
        BootMethod::RpiTryboot => rpi::stage(
            board,
            root,
            parts,
            filled,
            firmware.context("Raspberry Pi firmware")?,
            slot_initrd,
        )?,
    };
    // A Pi's filled boot partitions have the same content in both slots (the OTA bundle's
    // `boot` payload fits either): one FAT image, label and volume id for both.
    let mut slot_fat: Option<PathBuf> = None;
    for (name, dir) in staged {
        let part = plan.get(&name).context("partition in plan")?;
        let slot_boot = board.boot == BootMethod::RpiTryboot
            && name.starts_with("boot-")
            && !dir.join(rpi::EMPTY_SLOT_FILE).exists();
        if slot_boot && let Some(img) = &slot_fat {
            out.push((name, img.clone()));
            continue;
        }
        let img = parts.join(format!("{name}.vfat"));
        let (label, id_name) = if slot_boot {
            ("HEARTH_BOOT".to_string(), "boot")
        } else {
            (name.to_uppercase().replace('-', "_"), name.as_str())
        };
        disk::make_fat(
            &img,
            part.size,
            &label,
            &derived_volume_id(&seed, id_name),
            &dir,
            epoch,
            runner,
        )?;
        if slot_boot {
            slot_fat = Some(img.clone());
        }
        out.push((name, img));
    }
    Ok(out)
}

/// The data partition, seeded with the root's factory `/var` so the first boot copies nothing.
#[allow(clippy::too_many_arguments)]
fn data_partition(
    board: &Board,
    root: &Path,
    parts: &Path,
    plan: &Plan,
    seed: &str,
    build_id: &str,
    epoch: u64,
    runner: &Runner,
) -> Result<PathBuf> {
    let content = parts.join("data-content");
    fsutil::remove_all(&content)?;
    runner.run(
        Command::new("cp")
            .args(["-a", "--"])
            .arg(root.join(crate::rootfs::FACTORY_VAR))
            .arg(&content),
        false,
    )?;
    let marker = content.join("lib/hearth/.seeded");
    std::fs::create_dir_all(marker.parent().context("marker dir")?)?;
    std::fs::write(&marker, format!("{build_id}\n"))?;
    let part = board
        .partitions
        .iter()
        .find(|p| p.role == Role::Data)
        .context("data partition")?;
    let size = plan.get(&part.name).context("data in plan")?.size;
    let img = parts.join("data.ext4");
    disk::make_ext4(
        &img,
        size,
        "data",
        &derived_uuid(seed, "data-fs"),
        &content,
        epoch,
        runner,
    )?;
    Ok(img)
}

/// Short id of a build's inputs: the data partition re-seeds `/var` when it changes.
fn build_id(parts: &[&str]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(parts.join("\0").as_bytes());
    crate::hex(&digest)[..16].to_string()
}
