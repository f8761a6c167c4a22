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
use crate::{bootstrap, disk, efi, fsutil, initrd, lint, ota, rootfs, rpi, seal};
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

// Split into one function per step on the image/verity branch (vboot2); this allow goes with
// that merge.
#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
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
    let prefix = prefix(opts, board);
    let seed = format!("{} {}", board.name, opts.version);
    let rootfs_kind = opts.rootfs.unwrap_or(board.rootfs);
    let board = &Board {
        rootfs: rootfs_kind,
        ..board.clone()
    };

    progress.step("agent binary");
    let agent = agent_binary(ws, board.arch, opts, runner)?;
    let agent_sha = artifacts::sha256_file(&agent)?;
    progress.finish(&format!(
        "{} ({} KiB)",
        agent.display(),
        file_size(&agent) >> 10
    ));

    progress.step("bootstrap base");
    let inputs = base_inputs(ws, board)?;
    let base = bootstrap::ensure(&inputs, &opts.cache, &board.name, runner)?;
    progress.finish(if base.cached {
        "cached"
    } else {
        "bootstrapped"
    });

    progress.step("prepare root");
    let root = work.join("root");
    fsutil::remove_all(&root)?;
    runner.run(
        Command::new("cp")
            .args(["-a", "--reflink=auto", "--"])
            .arg(&base.root)
            .arg(&root),
        false,
    )?;
    let mut overlays = vec![ws.overlays().join("base")];
    overlays.extend(board.overlays.iter().map(|o| ws.overlays().join(o)));
    overlays.extend(opts.extra_overlays.iter().cloned());
    let build_id = build_id(&[&base.key, &agent_sha, &opts.version, &board.name]);
    let content = RootContent {
        overlays,
        agent_bin: agent.clone(),
        image_id: format!("hearth-{}", board.name),
        version: opts.version.clone(),
        build_id: build_id.clone(),
        signing_public_pem: keys::public_pem(&key.verifying_key()),
        ssh_authorized_key: ssh_key.clone(),
    };
    rootfs::prepare(&root, &content, runner)?;
    // The bundled app stores (`stores/`, vendored; the image's agent drop-in names
    // /usr/share/hearth/stores/casaos as the default store, docs/apps.md).
    let stores = root.join("usr/share/hearth/stores");
    std::fs::create_dir_all(&stores)?;
    crate::overlay::apply(&ws.root.join("stores"), &stores)?;
    let release = ota::release(board, &opts.version, ota.version_number, &build_id);
    ota::write_into_root(
        &root,
        &release,
        &ota.keys.root_pub_pem(),
        opts.update_url.as_deref(),
    )?;
    let layer = initrd::layer(
        &ws.overlays().join("initrd-layer"),
        epoch,
        &format!("{build_id}\n"),
    )?;
    initrd::append_to_root(&root, &layer)?;
    progress.finish(&format!(
        "initramfs layer {} KiB",
        layer.len().div_ceil(1024)
    ));

    progress.step("lint root");
    let findings = lint::run(&lint::LintContext {
        root: &root,
        elf_machine: match board.arch {
            Arch::Amd64 => 62,
            Arch::Arm64 => 183,
        },
        ssh_enabled: ssh_key.is_some(),
    });
    if !findings.is_empty() {
        let list: Vec<String> = findings
            .iter()
            .map(|(l, p)| format!("  {l}: {p}"))
            .collect();
        bail!("the root fails its lints:\n{}", list.join("\n"));
    }
    progress.finish(&format!("{} lints passed", lint::LINTS.len()));

    progress.step("seal root");
    let parts = work.join("parts");
    std::fs::create_dir_all(&parts)?;
    let root_img = parts.join(format!("{prefix}.root.{}", rootfs_kind.name()));
    let uuid = derived_uuid(&seed, "rootfs");
    let sort = work.join("squashfs.sort");
    std::fs::write(&sort, ota::sort_file(&root))?;
    let compression = if opts.fast {
        seal::Compression::Fast
    } else {
        seal::Compression::Release
    };
    let cmd = seal::command(
        rootfs_kind,
        &root,
        &root_img,
        epoch,
        &uuid,
        Some(&sort),
        compression,
    );
    let root_size = seal::seal(cmd, &root_img, runner)?;
    progress.finish(&format!("{} {} MiB", rootfs_kind.name(), root_size >> 20));

    progress.step("boot files");
    let plan = Plan::for_board(board, &seed);
    let filled: Vec<Slot> = if opts.both_slots {
        Slot::ALL.to_vec()
    } else {
        vec![Slot::A]
    };
    let firmware = match board.boot {
        BootMethod::RpiTryboot => {
            let common = ws.boards().common()?;
            Some(rpi::fetch_firmware(
                board,
                &common.mirror,
                &opts.cache,
                runner,
            )?)
        }
        BootMethod::SystemdBoot => None,
    };
    // A --bundle-only build still stages the EFI files it bundles (kernel, initrd) from the
    // root, and on a Pi the boot partition image it bundles.
    let boot_parts = match (opts.bundle_only, board.boot) {
        (true, BootMethod::SystemdBoot) => Vec::new(),
        _ => boot_partitions(
            board,
            &root,
            &parts,
            &plan,
            &opts.version,
            &filled,
            firmware.as_ref(),
            epoch,
            runner,
        )?,
    };
    let data_img = if opts.bundle_only {
        None
    } else {
        Some(data_partition(
            board, &root, &parts, &plan, &seed, &build_id, epoch, runner,
        )?)
    };
    progress.finish(if opts.bundle_only {
        "bundle payloads only"
    } else {
        ""
    });

    progress.step("update bundle");
    let staging = staging_dir(opts, board);
    fsutil::remove_all(&staging)?;
    std::fs::create_dir_all(&staging)?;
    let (kernel, initrd) = (
        efi::boot_file(&root, "vmlinuz-")?,
        efi::boot_file(&root, "initrd.img-")?,
    );
    let boot_fat = boot_parts
        .iter()
        .find(|(n, _)| n == "boot-a")
        .map(|(_, p)| p.clone());
    let payloads = ota::payloads(
        board,
        &root_img,
        Some((&kernel, &initrd)),
        boot_fat.as_deref(),
    )?;
    let bundle_path = staging.join(format!("{prefix}.bundle"));
    let cdc = hearth_ota::manifest::CdcParams::DEFAULT;
    // Format 3 (paged manifest, docs/ota-bundle.md): what devices of this release read.
    let bundle_manifest = ota::build_bundle(
        board,
        &release,
        opts.min_version_number,
        payloads.clone(),
        &ota.keys,
        hearth_ota::manifest::Chunking::Paged {
            cdc,
            paging: hearth_ota::pages::Paging::DEFAULT,
        },
        &bundle_path,
    )?;
    // The same release in an older format (`--bridge-bundle N`), for devices whose reader knows
    // nothing newer: published to that format's index, it carries them onto this release.
    let bridge_bundle = opts
        .bridge_bundle
        .map(|format| {
            let path = staging.join(format!("{prefix}.v{format}.bundle"));
            let chunking = match format {
                1 => hearth_ota::manifest::Chunking::Fixed {
                    size: hearth_ota::manifest::DEFAULT_CHUNK_SIZE,
                },
                2 => hearth_ota::manifest::Chunking::Cdc(cdc),
                _ => bail!("--bridge-bundle {format}: only formats 1 and 2 are older"),
            };
            ota::build_bundle(
                board,
                &release,
                opts.min_version_number,
                payloads,
                &ota.keys,
                chunking,
                &path,
            )?;
            Ok((format, path))
        })
        .transpose()?;
    progress.finish(&format!(
        "{} MiB, {} payloads",
        file_size(&bundle_path) >> 20,
        bundle_manifest.payloads.len()
    ));

    progress.step("assemble disk");
    let raw = parts.join(format!("{prefix}.img"));
    if let Some(data_img) = &data_img {
        let mut files: Vec<(String, PathBuf)> = boot_parts.clone();
        for slot in &filled {
            files.push((format!("root-{}", slot.letter()), root_img.clone()));
        }
        files.push(("data".to_string(), data_img.clone()));
        let refs: Vec<(&str, &Path)> = files
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_path()))
            .collect();
        disk::assemble(&plan, &refs, &raw, runner)?;
        progress.finish(&format!("{} MiB", plan.disk_size >> 20));
    } else {
        progress.finish("skipped (--bundle-only)");
    }

    progress.step("compress");
    // Raspberry Pi Imager checks the uncompressed image too.
    let raw_sha = match board.boot {
        BootMethod::RpiTryboot if !opts.no_xz && !opts.fast && !opts.bundle_only => {
            Some(artifacts::sha256_file(&raw)?)
        }
        _ => None,
    };
    let image_path = if opts.bundle_only {
        None
    } else if opts.no_xz || opts.fast {
        let raw_out = staging.join(format!("{prefix}.img"));
        std::fs::rename(&raw, &raw_out)?;
        Some(raw_out)
    } else {
        let xz = staging.join(format!("{prefix}.img.xz"));
        artifacts::compress_xz(&raw, &xz)?;
        Some(xz)
    };
    let root_out = staging.join(root_img.file_name().context("root image name")?);
    std::fs::rename(&root_img, &root_out)?;
    progress.finish(&match &image_path {
        Some(p) => format!("{} MiB", file_size(p) >> 20),
        None => "skipped (--bundle-only)".to_string(),
    });

    progress.step("sign and publish");
    let image = image_path.as_deref().map(FileEntry::of).transpose()?;
    let rootfs = FileEntry::of(&root_out)?;
    let bundle = FileEntry::of(&bundle_path)?;
    let bridge_bundle = bridge_bundle
        .map(|(format, path)| {
            Ok::<_, artifacts::ArtifactError>(artifacts::BridgeBundle {
                format,
                bundle: FileEntry::of(&path)?,
            })
        })
        .transpose()?;
    let mut packages = artifacts::parse_packages(&base.packages);
    if let Some(fw) = &firmware {
        packages.push(artifacts::Package {
            name: fw.package.clone(),
            version: fw.version.clone(),
            arch: format!("{} (boot partitions only)", board.arch.debian()),
        });
    }
    let manifest = Manifest {
        board: board.name.clone(),
        arch: board.arch.debian().to_string(),
        version: opts.version.clone(),
        build_id,
        base_key: base.key.clone(),
        source_date_epoch: epoch,
        rootfs_kind: rootfs_kind.name().to_string(),
        rootfs: rootfs.clone(),
        image: image.clone(),
        image_raw_size: if opts.bundle_only { 0 } else { plan.disk_size },
        version_number: ota.version_number,
        min_version_number: opts.min_version_number,
        bundle: bundle.clone(),
        bundle_format: bundle_manifest.format,
        bridge_bundle: bridge_bundle.clone(),
        bundle_payloads: bundle_manifest
            .payloads
            .iter()
            .map(|p| artifacts::BundlePayload {
                name: p.name.clone(),
                size: p.size,
            })
            .collect(),
        ota_root_key_id: hearth_ota::hexutil::encode(&keys::key_id(&ota.keys.root_pub)),
        slots_filled: filled.iter().map(|s| s.letter().to_string()).collect(),
        agent_sha256: agent_sha,
        partitions: plan
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
    let manifest_path = staging.join(format!("{prefix}.manifest.json"));
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    let mut entries: Vec<FileEntry> = image.iter().cloned().collect();
    entries.extend([rootfs, bundle, FileEntry::of(&manifest_path)?]);
    entries.extend(bridge_bundle.map(|b| b.bundle));
    if let (BootMethod::RpiTryboot, Some(image)) = (board.boot, &image) {
        let list = rpi::os_list_of(
            board,
            &opts.version,
            epoch,
            image,
            plan.disk_size,
            raw_sha.as_deref().unwrap_or(&image.sha256),
        );
        let path = staging.join(format!("{prefix}.os_list.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&list)?)?;
        entries.push(FileEntry::of(&path)?);
    }
    artifacts::sign_checksums(&staging, &prefix, &entries, key)?;
    let published = artifacts::publish(&staging, &opts.out)?;
    progress.finish("");
    let summary = progress.summary();
    let bundle_out = opts
        .out
        .join(bundle_path.file_name().context("bundle name")?);
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
    epoch: u64,
    runner: &Runner,
) -> Result<Vec<(String, PathBuf)>> {
    let seed = format!("{} {version}", board.name);
    let mut out = Vec::new();
    let staged: Vec<(String, PathBuf)> = match board.boot {
        BootMethod::SystemdBoot => {
            let dir = parts.join("stage-esp");
            efi::stage(board, root, &dir, version, filled)?;
            vec![("esp".to_string(), dir)]
        }
        BootMethod::RpiTryboot => rpi::stage(
            board,
            root,
            parts,
            filled,
            firmware.context("Raspberry Pi firmware")?,
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
            .arg(root.join("usr/share/factory/var"))
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
