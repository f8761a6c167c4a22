//! Boots a built image under QEMU (software emulation) with UEFI firmware: the dashboard's
//! HTTPS and HTTP ports forwarded to the host, the serial console kept in a log file (and on
//! the terminal on request), a monitor socket for a clean power-off.
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::board::{Board, QemuSpec};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub image: PathBuf,
    /// Folder for the disk, firmware variables, serial log and sockets of this VM.
    pub run_dir: PathBuf,
    /// The virtual disk is enlarged to this size (the data partition grows into it).
    pub disk_size: u64,
    /// Guest memory in MiB instead of the board's `[qemu] memory_mib` (the memory
    /// benchmark boots with 512).
    pub memory_mib: Option<u32>,
    pub https_port: u16,
    pub http_port: u16,
    pub ssh_port: Option<u16>,
    /// Show the serial console on the terminal as well as in the log.
    pub console: bool,
    /// Keep an existing disk in `run_dir` (boot it again) instead of writing a fresh one.
    pub reuse_disk: bool,
    /// More disks attached as virtio block devices (`vdb`, `vdc`, …), in order; `.qcow2`
    /// files as qcow2, anything else raw. Each gets the serial `hearth-extra<N>`.
    pub extra_disks: Vec<PathBuf>,
    /// Boot with Secure Boot enforced, this key set enrolled (`crate::secureboot`).
    pub secure_boot: Option<PathBuf>,
}

impl RunOptions {
    pub fn disk(&self) -> PathBuf {
        self.run_dir.join("disk.img")
    }
    pub fn serial_log(&self) -> PathBuf {
        self.run_dir.join("serial.log")
    }
    pub fn monitor(&self) -> PathBuf {
        self.run_dir.join("monitor.sock")
    }
}

/// The QEMU argv for `board` with `opts`.
pub fn qemu_command(q: &QemuSpec, opts: &RunOptions) -> Command {
    let mut cmd = Command::new(&q.binary);
    let mut fwd = format!(
        "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:443,hostfwd=tcp:127.0.0.1:{}-:80",
        opts.https_port, opts.http_port
    );
    if let Some(ssh) = opts.ssh_port {
        fwd.push_str(&format!(",hostfwd=tcp:127.0.0.1:{ssh}-:22"));
    }
    let serial = if opts.console {
        format!(
            "stdio,id=serial0,signal=off,logfile={}",
            opts.serial_log().display()
        )
    } else {
        format!("file,id=serial0,path={}", opts.serial_log().display())
    };
    // OVMF's Secure Boot build (x86 `q35`) keeps its variables safe from the OS with SMM: the
    // machine needs it, and the variable flash is only writable from SMM. AAVMF on `virt` has
    // no SMM (its Secure Boot build runs in the normal world, the flash stays as it is).
    let smm = q.machine.starts_with("q35");
    let (machine, code) = match (&opts.secure_boot, &q.firmware_code_secure_boot) {
        (Some(_), Some(code)) if smm => (format!("{},smm=on", q.machine), Some(code)),
        (Some(_), Some(code)) => (q.machine.clone(), Some(code)),
        _ => (q.machine.clone(), q.firmware_code.as_ref()),
    };
    if opts.secure_boot.is_some() && smm {
        cmd.args(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
    }
    cmd.args(["-accel", "tcg", "-machine", &machine, "-cpu", &q.cpu])
        .args([
            "-m",
            &opts.memory_mib.unwrap_or(q.memory_mib).to_string(),
            "-smp",
            "2",
        ]);
    match (&q.bios, code) {
        (Some(bios), _) => {
            cmd.arg("-bios").arg(bios);
        }
        (None, Some(code)) => {
            cmd.arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    code.display()
                ))
                .arg("-drive")
                .arg(format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    opts.run_dir.join("efivars.fd").display()
                ));
        }
        // board_check refuses a [qemu] table without firmware.
        (None, None) => {}
    }
    cmd.arg("-drive").arg(format!(
        "file={},format=raw,if=virtio",
        opts.disk().display()
    ));
    // Extra disks sit at fixed PCI slots above the system disk's: `if=virtio` drives are
    // created after `-device` ones, so without an address an extra disk would take a lower slot
    // and the guest would name it vda (the system disk vdb).
    for (i, extra) in opts.extra_disks.iter().enumerate() {
        let format = if extra.extension().is_some_and(|e| e == "qcow2") {
            "qcow2"
        } else {
            "raw"
        };
        cmd.arg("-drive")
            .arg(format!(
                "file={},format={format},if=none,id=extra{i}",
                extra.display()
            ))
            .arg("-device")
            .arg(format!(
                "virtio-blk-pci,drive=extra{i},serial=hearth-extra{i},addr={:#x}",
                0x10 + i
            ));
    }
    cmd.args(["-netdev", &fwd, "-device", "virtio-net-pci,netdev=net0"])
        .args(["-device", "virtio-rng-pci"])
        .args(["-chardev", &serial, "-serial", "chardev:serial0"])
        .args(["-display", "none"])
        .arg("-monitor")
        .arg(format!("unix:{},server,nowait", opts.monitor().display()))
        .arg("-pidfile")
        .arg(opts.run_dir.join("qemu.pid"));
    cmd
}

/// Writes `out`: the board's variable store template with the key set's PK, KEK and db
/// enrolled and Secure Boot on (`virt-fw-vars`, python3-virt-firmware).
pub fn enrolled_vars(q: &QemuSpec, keys_dir: &Path, out: &Path) -> Result<()> {
    let keys = crate::secureboot::SecureBootKeys::load(keys_dir)?;
    let owner = keys.owner()?;
    let template = q
        .firmware_vars_secure_boot
        .as_ref()
        .or(q.firmware_vars.as_ref())
        .context("the board has no UEFI variable store ([qemu] firmware_vars)")?;
    let status = Command::new("virt-fw-vars")
        .arg("--input")
        .arg(template)
        .arg("--output")
        .arg(out)
        // A template with keys of its own (AAVMF's `.ms.fd`): only the release's may stay.
        .args(if q.firmware_vars_secure_boot.is_some() {
            &["-d", "PK", "-d", "KEK", "-d", "db"][..]
        } else {
            &[][..]
        })
        .args(["--set-pk", &owner])
        .arg(keys.cert("PK"))
        .args(["--add-kek", &owner])
        .arg(keys.cert("KEK"))
        .args(["--add-db", &owner])
        .arg(keys.cert("db"))
        .arg("--secure-boot")
        .stdout(Stdio::null())
        .status()
        .context("cannot start virt-fw-vars (python3-virt-firmware; ci/image-deps installs it)")?;
    if !status.success() {
        bail!(
            "virt-fw-vars could not enroll {} ({status})",
            keys_dir.display()
        );
    }
    Ok(())
}

/// Writes the VM's disk from `image` (`.img` or `.img.xz`), sparse, then enlarges it.
pub fn prepare_disk(image: &Path, disk: &Path, size: u64) -> Result<()> {
    let tmp = disk.with_extension("partial");
    let mut out = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let is_xz = image.extension().is_some_and(|e| e == "xz");
    if is_xz {
        let mut child = Command::new("xz")
            .args(["-dc", "-T2", "--"])
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start xz")?;
        let stdout = child.stdout.take().context("xz stdout")?;
        copy_sparse(stdout, &mut out)?;
        if !child.wait()?.success() {
            bail!("xz could not decompress {}", image.display());
        }
    } else {
        copy_sparse(File::open(image)?, &mut out)?;
    }
    let len = out.metadata()?.len();
    out.set_len(len.max(size))?;
    out.sync_all()?;
    std::fs::rename(&tmp, disk)?;
    Ok(())
}

fn copy_sparse(mut from: impl Read, to: &mut File) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match from.read(&mut buf[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            break;
        }
        if buf[..filled].iter().any(|&b| b != 0) {
            to.seek(SeekFrom::Start(pos))?;
            to.write_all(&buf[..filled])?;
        }
        pos += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    to.set_len(pos)?;
    Ok(())
}

/// Boots the image: prepares the disk, then becomes QEMU (`exec`), so whoever started
/// `hearth-image run` holds QEMU's process itself — stopping it stops the VM, and no QEMU is
/// left behind when a script kills the runner. Returns only when QEMU cannot be started.
pub fn run(board: &Board, opts: &RunOptions) -> Result<()> {
    let q = board.qemu.as_ref().with_context(|| {
        format!(
            "board {} cannot run under QEMU (no [qemu] table)",
            board.name
        )
    })?;
    if opts.secure_boot.is_some() && q.firmware_code_secure_boot.is_none() {
        bail!(
            "board {} has no Secure Boot firmware ([qemu] firmware_code_secure_boot)",
            board.name
        );
    }
    std::fs::create_dir_all(&opts.run_dir)?;
    for extra in &opts.extra_disks {
        if !extra.is_file() {
            bail!("--extra-disk {} is not a file", extra.display());
        }
    }
    if !(opts.reuse_disk && opts.disk().is_file()) {
        eprintln!(
            "writing {} from {}",
            opts.disk().display(),
            opts.image.display()
        );
        prepare_disk(&opts.image, &opts.disk(), opts.disk_size)?;
        let vars = opts.run_dir.join("efivars.fd");
        match (&opts.secure_boot, &q.firmware_vars) {
            (Some(dir), _) => enrolled_vars(q, dir, &vars)?,
            (None, Some(template)) => {
                std::fs::copy(template, &vars)
                    .with_context(|| format!("cannot copy {}", template.display()))?;
            }
            // A board booted from a boot ROM image (`bios`) keeps no UEFI variables.
            (None, None) => {}
        }
    }
    let _ = std::fs::remove_file(opts.serial_log());
    eprintln!(
        "booting {} under QEMU (TCG); dashboard https://127.0.0.1:{}/ , serial log {}",
        board.name,
        opts.https_port,
        opts.serial_log().display()
    );
    let err = qemu_command(q, opts).exec();
    Err(err).with_context(|| format!("cannot start {}", q.binary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::load_board_file;

    fn argv(board: &str, secure_boot: bool) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../board-configs")
            .join(format!("{board}.toml"));
        let b = load_board_file(&path).expect("board");
        let opts = RunOptions {
            image: "/x/image.img".into(),
            run_dir: "/run-dir".into(),
            disk_size: 1 << 30,
            memory_mib: None,
            https_port: 1,
            http_port: 2,
            ssh_port: None,
            console: false,
            reuse_disk: false,
            extra_disks: Vec::new(),
            secure_boot: secure_boot.then(|| PathBuf::from("/keys")),
        };
        let cmd = qemu_command(b.qemu.as_ref().expect("qemu"), &opts);
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// OVMF's Secure Boot build needs SMM and a secure variable flash on q35; AAVMF on `virt`
    /// has no SMM (a secure flash would hide the variables from it); U-Boot boots from -bios.
    #[test]
    fn each_firmware_gets_its_own_machine_options() {
        let x86 = argv("qemu-x86_64", true);
        assert!(x86.contains("-machine q35,smm=on"), "{x86}");
        assert!(x86.contains("driver=cfi.pflash01,property=secure,value=on"));
        assert!(x86.contains("OVMF_CODE_4M.secboot.fd"));
        let arm = argv("arm64-efi", true);
        assert!(arm.contains("-machine virt "), "{arm}");
        assert!(
            !arm.contains("smm") && !arm.contains("property=secure"),
            "{arm}"
        );
        assert!(arm.contains("file=/usr/share/AAVMF/AAVMF_CODE.fd"), "{arm}");
        assert!(arm.contains("file=/run-dir/efivars.fd"));
        let plain = argv("arm64-efi", false);
        assert!(!plain.contains("smm"), "{plain}");
        let uboot = argv("qemu-arm64-uboot", false);
        assert!(
            uboot.contains("-bios /usr/lib/u-boot/qemu_arm64/u-boot.bin"),
            "{uboot}"
        );
        assert!(!uboot.contains("pflash"), "{uboot}");
    }
}
