//! `hearth-ota`: a thin command line over the library (keys, delegation, bundles, repository).
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hearth_ota::bundle::{self, BundleSpec};
use hearth_ota::format::{self, Kind, Trust};
use hearth_ota::keylist::{KeyList, ReleaseKey, SignedKeyList};
use hearth_ota::manifest::{CdcParams, Chunking};
use hearth_ota::source::FileSource;
use hearth_ota::{decide, keys, repo};
use time::{Duration, OffsetDateTime};

/// Hearth over-the-air update tool (bundles, signing, repositories).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make an ed25519 key pair: OUT (private, PKCS#8 PEM) and OUT.pub (SPKI PEM).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a key list delegating to release keys (done with the offline root key).
    Delegate {
        #[arg(long)]
        root: PathBuf,
        /// Release public keys (PEM) allowed to sign.
        #[arg(long = "release", required = true)]
        release: Vec<PathBuf>,
        /// Release public keys (PEM) to revoke.
        #[arg(long = "revoke")]
        revoke: Vec<PathBuf>,
        /// Must grow with every new list.
        #[arg(long)]
        serial: u64,
        #[arg(long, default_value_t = 730)]
        valid_days: i64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Build a signed bundle from payload images.
    Sign(SignArgs),
    /// Verify a bundle completely (signatures, delegation, every chunk).
    Verify(VerifyArgs),
    /// Show a bundle's header and manifest (verified when --key is given).
    Inspect {
        bundle: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Install a bundle into a slot (development and benchmarks; the agent uses the library).
    /// Boot control is the file-backed backend in --boot-dir.
    Install {
        /// A local bundle file, or an http(s) URL read with Range requests.
        bundle: String,
        /// Root public key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// NAME=PATH of each payload's target (file or block device).
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        /// NAME=PATH of the active slot's counterpart, for delta.
        #[arg(long = "active")]
        active: Vec<String>,
        #[arg(long, default_value = "b")]
        slot: String,
        #[arg(long)]
        boot_dir: PathBuf,
    },
    /// Print (JSON) the bytes a device holding OLD would download to install BUNDLE: the signed
    /// prefix plus the stored bytes of every chunk it does not have.
    DeltaSize {
        bundle: PathBuf,
        /// Root public key (PEM): the manifest is read only after its signature verified.
        #[arg(long)]
        key: PathBuf,
        /// The device's active slot: PATH (the root payload) or NAME=PATH, repeatable.
        #[arg(long = "from", required = true)]
        from: Vec<String>,
    },
    /// Add a bundle to a static repository and sign the channel's index.
    Publish(PublishArgs),
}

#[derive(clap::Args)]
struct SignArgs {
    /// Release private key.
    #[arg(long)]
    key: PathBuf,
    /// Signed key list (from `delegate`).
    #[arg(long)]
    keys: PathBuf,
    /// Root public key, to check the delegation before signing.
    #[arg(long)]
    root: Option<PathBuf>,
    #[arg(long)]
    board: String,
    #[arg(long)]
    arch: String,
    #[arg(long)]
    version: String,
    #[arg(long)]
    version_number: u64,
    #[arg(long, default_value_t = 0)]
    min_version_number: u64,
    /// Bundle format: 3 (content-defined, compressed chunks, their list in pages a device
    /// derives from its running slot; what the image builder makes), 2 (the same chunks, one
    /// signed list; devices from 0.2 on, the bridge for them) or 1 (fixed chunks; devices on
    /// 0.1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=3))]
    format: u16,
    /// Chunk size of a format-1 bundle.
    #[arg(long, default_value_t = hearth_ota::manifest::DEFAULT_CHUNK_SIZE)]
    chunk_size: u64,
    /// FastCDC minimum, average and maximum chunk sizes of a format-2 or 3 bundle (bytes).
    #[arg(long, num_args = 3, value_names = ["MIN", "AVG", "MAX"])]
    cdc: Option<Vec<u32>>,
    /// NAME=PATH, in bundle order (e.g. root=root.img).
    #[arg(long = "payload", required = true)]
    payloads: Vec<String>,
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct VerifyArgs {
    bundle: PathBuf,
    /// Root public key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// Also check that a device of this board/arch at this version may install it.
    #[arg(long, requires_all = ["arch", "current_version_number"])]
    board: Option<String>,
    #[arg(long)]
    arch: Option<String>,
    #[arg(long)]
    current_version_number: Option<u64>,
}

#[derive(clap::Args)]
struct PublishArgs {
    #[arg(long)]
    repo: PathBuf,
    #[arg(long)]
    channel: String,
    bundle: PathBuf,
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    keys: PathBuf,
    #[arg(long)]
    root: PathBuf,
    #[arg(long, default_value = "")]
    notes: String,
    #[arg(long)]
    notes_file: Option<PathBuf>,
    #[arg(long, default_value_t = 30)]
    expires_days: i64,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Keygen { out } => {
            let key = keys::generate(&out)?;
            println!(
                "key id {}",
                hearth_ota::hexutil::encode(&keys::key_id(&key))
            );
        }
        Command::Delegate {
            root,
            release,
            revoke,
            serial,
            valid_days,
            out,
        } => delegate(root, release, revoke, serial, valid_days, out)?,
        Command::Sign(args) => sign(args)?,
        Command::Verify(args) => verify(args)?,
        Command::Inspect { bundle: path, key } => inspect(path, key)?,
        Command::Install {
            bundle,
            key,
            targets,
            active,
            slot,
            boot_dir,
        } => install_cmd(&bundle, &key, &targets, &active, &slot, &boot_dir)?,
        Command::DeltaSize { bundle, key, from } => delta_size(&bundle, &key, &from)?,
        Command::Publish(args) => publish(args)?,
    }
    Ok(())
}

fn sign(args: SignArgs) -> Result<()> {
    let SignArgs {
        key,
        keys: keylist,
        root,
        board,
        arch,
        version,
        version_number,
        min_version_number,
        format,
        chunk_size,
        cdc,
        payloads,
        out,
    } = args;
    let chunking = match (format, cdc) {
        (1, None) => Chunking::Fixed { size: chunk_size },
        (1, Some(_)) => bail!("--cdc is for formats 2 and 3"),
        (_, None) => Chunking::Cdc(CdcParams::DEFAULT),
        (_, Some(v)) => {
            let p = CdcParams {
                min: v[0],
                avg: v[1],
                max: v[2],
            };
            if !p.valid() {
                bail!("--cdc {v:?}: sizes out of range");
            }
            Chunking::Cdc(p)
        }
    };
    let chunking = match (format, chunking) {
        (3, Chunking::Cdc(cdc)) => Chunking::Paged {
            cdc,
            paging: hearth_ota::pages::Paging::DEFAULT,
        },
        (_, c) => c,
    };
    let mut parsed = Vec::new();
    for p in payloads {
        let (name, path) = p.split_once('=').context("--payload takes NAME=PATH")?;
        parsed.push((name.to_string(), PathBuf::from(path)));
    }
    let spec = BundleSpec {
        board,
        arch,
        version,
        version_number,
        min_version_number,
        created: OffsetDateTime::now_utc(),
        chunking,
        payloads: parsed,
    };
    let root = root.map(|r| keys::load_verifying(&r)).transpose()?;
    let m = bundle::build(
        &spec,
        &SignedKeyList::load(&keylist)?,
        &keys::load_signing(&key)?,
        root.as_ref(),
        &out,
    )?;
    println!(
        "{}: {} {} for {}/{}",
        out.display(),
        m.version,
        m.version_number,
        m.board,
        m.arch
    );
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<()> {
    let VerifyArgs {
        bundle: path,
        key,
        board,
        arch,
        current_version_number,
    } = args;
    let trust = Trust::new(keys::load_verifying(&key)?);
    let mut src = FileSource::open(&path)?;
    let b = bundle::open(&mut src, &trust)?;
    bundle::verify_payloads(&mut src, &b)?;
    if let (Some(board), Some(arch), Some(n)) = (board, arch, current_version_number) {
        decide::check_manifest(
            &decide::Device {
                board,
                arch,
                version_number: n,
            },
            &b.manifest,
        )?;
    }
    println!(
        "{}: OK ({} {}, signed by {})",
        path.display(),
        b.manifest.version,
        b.manifest.version_number,
        b.opened.release_key.id
    );
    Ok(())
}

fn publish(args: PublishArgs) -> Result<()> {
    let PublishArgs {
        repo: dir,
        channel,
        bundle,
        key,
        keys: keylist,
        root,
        notes,
        notes_file,
        expires_days,
    } = args;
    let release_notes = match notes_file {
        Some(f) => std::fs::read_to_string(&f).with_context(|| f.display().to_string())?,
        None => notes,
    };
    let trust = Trust::new(keys::load_verifying(&root)?);
    let format = bundle::open(&mut FileSource::open(&bundle)?, &trust)?
        .manifest
        .format;
    let index = repo::publish(&repo::PublishRequest {
        repo: &dir,
        channel: &channel,
        bundle: &bundle,
        release_notes,
        valid_for: Duration::days(expires_days),
        now: OffsetDateTime::now_utc(),
        key: &keys::load_signing(&key)?,
        keylist: &SignedKeyList::load(&keylist)?,
        trust: &trust,
    })?;
    println!(
        "{}: serial {}, latest {} ({}), expires {}",
        repo::index_path_for(&dir, &channel, &index.board, format).display(),
        index.serial,
        index.latest.version,
        index.latest.bundle,
        hearth_ota::manifest::rfc3339(index.expires)
    );
    Ok(())
}

fn delegate(
    root: PathBuf,
    release: Vec<PathBuf>,
    revoke: Vec<PathBuf>,
    serial: u64,
    valid_days: i64,
    out: PathBuf,
) -> Result<()> {
    let root = keys::load_signing(&root)?;
    let now = OffsetDateTime::now_utc();
    let mut list = KeyList {
        serial,
        issued: now,
        keys: Vec::new(),
        revoked: Vec::new(),
    };
    for p in release {
        list.keys.push(ReleaseKey::new(
            &keys::load_verifying(&p)?,
            now,
            now + Duration::days(valid_days),
        ));
    }
    for p in revoke {
        list.revoked.push(hearth_ota::hexutil::encode(
            keys::load_verifying(&p)?.as_bytes(),
        ));
    }
    if list.keys.iter().any(|k| list.revoked.contains(&k.public)) {
        bail!("a key cannot be both delegated and revoked");
    }
    let signed = SignedKeyList::sign(&list, &root);
    hearth_ota::fsutil::write_atomic(&out, &signed.to_file_bytes())?;
    println!(
        "{}: serial {serial}, {} release key(s), {} revoked",
        out.display(),
        list.keys.len(),
        list.revoked.len()
    );
    Ok(())
}

fn inspect(path: PathBuf, key: Option<PathBuf>) -> Result<()> {
    let mut src = FileSource::open(&path)?;
    match key {
        Some(key) => {
            let b = bundle::open(&mut src, &Trust::new(keys::load_verifying(&key)?))?;
            println!(
                "verified: yes (signed by release key {}, key list serial {})",
                b.opened.release_key.id, b.opened.keylist.serial
            );
            println!(
                "payload data at offset {}, bundle size {}",
                b.payload_start, b.size
            );
            let m = &b.manifest;
            let summary = serde_json::json!({
                "format": m.format,
                "board": m.board,
                "arch": m.arch,
                "version": m.version,
                "version_number": m.version_number,
                "min_version_number": m.min_version_number,
                "created": hearth_ota::manifest::rfc3339(m.created),
                "chunking": m.chunking,
                "payloads": m.payloads.iter().map(|p| serde_json::json!({
                    "name": p.name,
                    "size": p.size,
                    "stored": p.stored_size(),
                    "chunks": p.chunks.len(),
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        None => {
            let p = format::peek(&mut src, Kind::Bundle)?;
            println!("verified: NO (pass --key ROOT_PUB to check the signatures)");
            println!(
                "header: key list {} bytes, manifest {} bytes, release key id {}",
                p.keylist_len, p.body_len, p.key_id
            );
            println!("key list (unverified): {}", p.unverified_keylist);
            let json = bundle::manifest_json(p.version, &p.unverified_body_bytes)
                .unwrap_or_else(|_| p.unverified_body.clone().into_bytes());
            let body: serde_json::Value =
                serde_json::from_slice(&json).unwrap_or(serde_json::Value::Null);
            println!(
                "manifest (unverified): {}",
                serde_json::to_string_pretty(&strip_chunks(body))?
            );
        }
    }
    Ok(())
}

fn strip_chunks(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(ps) = v.get_mut("payloads").and_then(|p| p.as_array_mut()) {
        for p in ps {
            if let Some(c) = p.get_mut("chunks") {
                let n = match c {
                    serde_json::Value::String(s) => s.len() / 64,
                    serde_json::Value::Array(a) => a.len(),
                    _ => 0,
                };
                *c = serde_json::Value::String(format!("<{n} chunk hashes>"));
            }
            // Format 3: the page list (hash, chunks, bytes, ... per page).
            if let Some(serde_json::Value::Array(pages)) = p.get_mut("pages") {
                let n = pages.len();
                p["pages"] = serde_json::Value::String(format!("<{n} pages>"));
            }
        }
    }
    v
}

fn delta_size(bundle_path: &std::path::Path, key: &std::path::Path, from: &[String]) -> Result<()> {
    use hearth_ota::delta::{self, LocalChunks};
    use hearth_ota::storage::FileSlot;
    let trust = Trust::new(keys::load_verifying(key)?);
    let mut src = FileSource::open(bundle_path)?;
    let pending = bundle::open_signed(&mut src, &trust)?;
    let mut indexes = Vec::new();
    for f in from {
        let (name, path) = match f.split_once('=') {
            Some((n, p)) => (n.to_string(), PathBuf::from(p)),
            None => ("root".to_string(), PathBuf::from(f)),
        };
        let mut slot =
            FileSlot::open_read_only(&path).with_context(|| path.display().to_string())?;
        let len = hearth_ota::fs_extent::index_len(&mut slot)
            .with_context(|| path.display().to_string())?;
        let index = delta::index_slot(&mut slot, pending.manifest.chunking, len)
            .with_context(|| path.display().to_string())?;
        indexes.push((name, index));
    }
    // Format 3: pages derived from the old root are not downloaded; the plan uses the same
    // indexes the pages were derived from.
    let b = pending.resolve(&mut src, indexes)?;
    let plan = delta::plan(&b, &|name| LocalChunks {
        active: b.local_index(name),
        in_place: None,
    });
    let out = serde_json::json!({
        "format": b.manifest.format,
        "bundle_bytes": b.size,
        "prefix_bytes": b.payload_start,
        "page_bytes": b.pages_fetched,
        "chunk_bytes": plan.download_bytes,
        "download_bytes": b.payload_start + b.pages_fetched + plan.download_bytes,
        "changed_content_bytes": plan.download_content_bytes,
        "total_bytes": plan.total_bytes,
    });
    println!("{out}");
    Ok(())
}

fn name_path(spec: &str) -> Result<(String, PathBuf)> {
    let (name, path) = spec.split_once('=').context("expected NAME=PATH")?;
    Ok((name.to_string(), PathBuf::from(path)))
}

fn install_cmd(
    bundle_ref: &str,
    key: &std::path::Path,
    targets: &[String],
    active: &[String],
    slot: &str,
    boot_dir: &std::path::Path,
) -> Result<()> {
    use hearth_ota::boot::{BootControl, DirFs, Slot, file::FileBoot};
    use hearth_ota::install::{InstallRequest, Target, install};
    use hearth_ota::storage::FileSlot;
    let trust = Trust::new(keys::load_verifying(key)?);
    let slot = Slot::parse(slot).context("--slot is a or b")?;
    // Multi-thread: `Handle::block_on` cannot drive I/O on a current-thread runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut src: Box<dyn hearth_ota::source::BundleSource> =
        if bundle_ref.starts_with("http://") || bundle_ref.starts_with("https://") {
            Box::new(hearth_ota::http::HttpSource::new(
                reqwest::Client::new(),
                bundle_ref.to_string(),
                runtime.handle().clone(),
            ))
        } else {
            Box::new(FileSource::open(std::path::Path::new(bundle_ref))?)
        };
    let pending = bundle::open_signed(&mut *src, &trust)?;
    let mut opened = Vec::new();
    for t in targets {
        let (name, path) = name_path(t)?;
        let active = match active
            .iter()
            .map(|a| name_path(a))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .find(|(n, _)| *n == name)
        {
            Some((_, p)) => {
                Some(FileSlot::open_read_only(&p).with_context(|| p.display().to_string())?)
            }
            None => None,
        };
        opened.push((
            name,
            FileSlot::open(&path).with_context(|| path.display().to_string())?,
            active,
        ));
    }
    std::fs::create_dir_all(boot_dir)?;
    let mut boot = FileBoot::new(DirFs::new(boot_dir));
    if boot.state().is_err() {
        boot.initialize(slot.other())?;
    }
    let mut targets = Target::from_slots(&mut opened);
    let b = hearth_ota::install::resolve(pending, &mut *src, &mut targets)?;
    let mut last = None;
    let report = install(InstallRequest {
        bundle: &b,
        source: &mut *src,
        targets,
        boot: &mut boot,
        slot,
        progress: &mut |p| {
            if last != Some(p.phase) {
                eprintln!("{:?}", p.phase);
                last = Some(p.phase);
            }
        },
    })?;
    let out = serde_json::json!({
        "version": b.manifest.version,
        "total_bytes": report.plan.total_bytes,
        "download_bytes": report.plan.download_bytes,
        "prefix_bytes": b.payload_start,
        "page_bytes": b.pages_fetched,
        "local_bytes": report.plan.local_bytes,
        "fetched_bytes": report.fetched,
        "reboot": report.reboot.argv(),
    });
    println!("{out}");
    Ok(())
}
