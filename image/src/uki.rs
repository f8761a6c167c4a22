//! Unified kernel images (UKI) for EFI boards: systemd-stub (`linux{x64,aa64}.efi.stub` from
//! the root's `systemd-boot-efi`) with the slot's kernel, initrd and command line added as PE
//! sections, so one file carries everything the firmware or systemd-boot starts and a
//! signature over it (Secure Boot, next step) covers all of it. Under Secure Boot systemd-stub
//! ignores a command line passed by the loader when the image has its own `.cmdline`.
//!
//! The sections are added the way systemd documents for objcopy (`--add-section NAME=FILE
//! --change-section-vma NAME=ADDR`), after the stub's own sections, each at the next
//! section-aligned address and the next file-aligned offset: `.osrel`, `.cmdline`, `.uname`,
//! `.initrd`, `.linux`. `ukify` is not used: Debian bookworm (the build host) has no
//! `systemd-ukify`, trixie's needs Python in the image root, and the host's `objcopy` has no
//! aarch64 PE target (arm64-efi). systemd's stubs are linked with room for extra section
//! headers (its `elf2efi --minimum-sections`); a stub without room, a PE32 (not PE32+) stub,
//! or a signed stub (a certificate table would cover only the old bytes) is refused.
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a PE32+ image: {0}")]
    NotPe(String),
    #[error("the stub has no room for {0} more section headers")]
    NoHeaderRoom(usize),
    #[error("the stub is signed (it has a certificate table); use the unsigned stub")]
    SignedStub,
    #[error("section {0:?}: too large for a PE image")]
    TooLarge(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UkiError {
    let path = path.to_path_buf();
    move |source| UkiError::Io { path, source }
}

/// The sections a Hearth UKI carries, in the order they are added.
pub const SECTIONS: [&str; 5] = [".osrel", ".cmdline", ".uname", ".initrd", ".linux"];

/// One PE section: its name and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub virtual_address: u32,
    pub virtual_size: u32,
    pub raw_offset: u32,
    pub raw_size: u32,
}

/// The parts of a PE32+ header this module reads and writes.
#[derive(Debug, Clone)]
struct Headers {
    /// Offset of the COFF file header (after "PE\0\0").
    coff: usize,
    /// Offset of the optional header.
    opt: usize,
    /// Offset of the section table.
    table: usize,
    sections: Vec<Section>,
    section_alignment: u32,
    file_alignment: u32,
    size_of_headers: u32,
}

const IMAGE_SCN_CNT_INITIALIZED_DATA: u32 = 0x0000_0040;
const IMAGE_SCN_MEM_READ: u32 = 0x4000_0000;
const PE32_PLUS: u16 = 0x20b;
/// Data directory 4: the Authenticode certificate table.
const CERT_DIRECTORY: usize = 4;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn align(v: u64, to: u32) -> u64 {
    let to = u64::from(to.max(1));
    v.div_ceil(to) * to
}

fn headers(b: &[u8]) -> Result<Headers, UkiError> {
    let bad = |why: &str| UkiError::NotPe(why.to_string());
    if b.get(..2) != Some(b"MZ") {
        return Err(bad("no MZ header"));
    }
    let pe = u32_at(b, 0x3c).ok_or_else(|| bad("truncated DOS header"))? as usize;
    if b.get(pe..pe + 4) != Some(b"PE\0\0") {
        return Err(bad("no PE signature"));
    }
    let coff = pe + 4;
    let count = u16_at(b, coff + 2).ok_or_else(|| bad("truncated COFF header"))? as usize;
    let opt_size = u16_at(b, coff + 16).ok_or_else(|| bad("truncated COFF header"))? as usize;
    let opt = coff + 20;
    if u16_at(b, opt) != Some(PE32_PLUS) {
        return Err(bad("not PE32+ (a 64-bit EFI image)"));
    }
    let field = |off: usize| u32_at(b, opt + off).ok_or_else(|| bad("truncated optional header"));
    let section_alignment = field(32)?;
    let file_alignment = field(36)?;
    let size_of_headers = field(60)?;
    let table = opt + opt_size;
    let mut sections = Vec::with_capacity(count);
    for i in 0..count {
        let h = table + i * 40;
        let raw = b
            .get(h..h + 40)
            .ok_or_else(|| bad("truncated section table"))?;
        let name_bytes = &raw[..8];
        let end = name_bytes.iter().position(|c| *c == 0).unwrap_or(8);
        sections.push(Section {
            name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
            virtual_size: u32_at(raw, 8).unwrap_or(0),
            virtual_address: u32_at(raw, 12).unwrap_or(0),
            raw_size: u32_at(raw, 16).unwrap_or(0),
            raw_offset: u32_at(raw, 20).unwrap_or(0),
        });
    }
    Ok(Headers {
        coff,
        opt,
        table,
        sections,
        section_alignment,
        file_alignment,
        size_of_headers,
    })
}

/// The sections of a PE32+ image.
pub fn sections(b: &[u8]) -> Result<Vec<Section>, UkiError> {
    Ok(headers(b)?.sections)
}

/// The bytes of section `name` (its virtual size: without the file alignment's padding).
pub fn section<'a>(b: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, UkiError> {
    let Some(s) = sections(b)?.into_iter().find(|s| s.name == name) else {
        return Ok(None);
    };
    let len = s.virtual_size.min(s.raw_size) as usize;
    let start = s.raw_offset as usize;
    b.get(start..start + len)
        .map(Some)
        .ok_or_else(|| UkiError::NotPe(format!("section {name} is past the end of the file")))
}

/// Adds `add` (name, contents) as read-only data sections after the stub's own, and returns the
/// new image. Names longer than 8 bytes are refused (PE section names are 8 bytes).
pub fn add_sections(stub: &[u8], add: &[(&str, &[u8])]) -> Result<Vec<u8>, UkiError> {
    let h = headers(stub)?;
    let opt_dirs = u32_at(stub, h.opt + 108).unwrap_or(0) as usize;
    if opt_dirs > CERT_DIRECTORY {
        let at = h.opt + 112 + CERT_DIRECTORY * 8;
        if u32_at(stub, at).unwrap_or(0) != 0 || u32_at(stub, at + 4).unwrap_or(0) != 0 {
            return Err(UkiError::SignedStub);
        }
    }
    let new_table_end = h.table + (h.sections.len() + add.len()) * 40;
    let first_raw = h
        .sections
        .iter()
        .filter(|s| s.raw_size > 0)
        .map(|s| s.raw_offset as usize)
        .min()
        .unwrap_or(h.size_of_headers as usize);
    if new_table_end > first_raw.min(h.size_of_headers as usize) {
        return Err(UkiError::NoHeaderRoom(add.len()));
    }
    let mut out = stub.to_vec();
    let mut next_va = h
        .sections
        .iter()
        .map(|s| u64::from(s.virtual_address) + u64::from(s.virtual_size.max(s.raw_size)))
        .max()
        .unwrap_or(u64::from(h.size_of_headers));
    let data_end = h
        .sections
        .iter()
        .map(|s| u64::from(s.raw_offset) + u64::from(s.raw_size))
        .max()
        .unwrap_or(0)
        .max(stub.len() as u64);
    out.resize(align(data_end, h.file_alignment) as usize, 0);
    let mut initialized = u64::from(u32_at(stub, h.opt + 8).unwrap_or(0));
    for (i, (name, data)) in add.iter().enumerate() {
        if name.len() > 8 || name.is_empty() {
            return Err(UkiError::NotPe(format!(
                "section name {name:?} is not 1-8 bytes"
            )));
        }
        let too_large = || UkiError::TooLarge((*name).to_string());
        let va = align(next_va, h.section_alignment);
        let raw_offset = out.len() as u64;
        let raw_size = align(data.len() as u64, h.file_alignment);
        let vsize = u32::try_from(data.len()).map_err(|_| too_large())?;
        let (va32, off32, raw32) = (
            u32::try_from(va).map_err(|_| too_large())?,
            u32::try_from(raw_offset).map_err(|_| too_large())?,
            u32::try_from(raw_size).map_err(|_| too_large())?,
        );
        out.extend_from_slice(data);
        out.resize((raw_offset + raw_size) as usize, 0);
        let at = h.table + (h.sections.len() + i) * 40;
        let mut header = [0u8; 40];
        header[..name.len()].copy_from_slice(name.as_bytes());
        put_u32(&mut header, 8, vsize);
        put_u32(&mut header, 12, va32);
        put_u32(&mut header, 16, raw32);
        put_u32(&mut header, 20, off32);
        put_u32(
            &mut header,
            36,
            IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ,
        );
        out[at..at + 40].copy_from_slice(&header);
        next_va = va + u64::from(vsize);
        initialized += raw_size;
    }
    let count = u16::try_from(h.sections.len() + add.len())
        .map_err(|_| UkiError::NotPe("too many sections".into()))?;
    put_u16(&mut out, h.coff + 2, count);
    let size_of_image = u32::try_from(align(next_va, h.section_alignment))
        .map_err(|_| UkiError::TooLarge("image".into()))?;
    put_u32(&mut out, h.opt + 56, size_of_image);
    put_u32(
        &mut out,
        h.opt + 8,
        u32::try_from(initialized).unwrap_or(u32::MAX),
    );
    // The optional checksum is not checked by EFI firmware; zero says "none" (sbsign and
    // ukify leave it to the signing tool as well).
    put_u32(&mut out, h.opt + 64, 0);
    Ok(out)
}

/// What goes into one slot's UKI.
#[derive(Debug, Clone)]
pub struct UkiParts<'a> {
    /// systemd-stub, `usr/lib/systemd/boot/efi/linux{x64,aa64}.efi.stub` in the root.
    pub stub: &'a Path,
    pub kernel: &'a Path,
    /// The slot's initrd (the root's with the verity layer appended).
    pub initrd: &'a Path,
    pub cmdline: &'a str,
    /// os-release text (what systemd-boot shows for the image).
    pub osrel: &'a str,
    /// The kernel release (`uname -r`).
    pub uname: &'a str,
}

/// Writes the UKI of `parts` to `out`.
pub fn assemble(parts: &UkiParts<'_>, out: &Path) -> Result<(), UkiError> {
    let read = |p: &Path| std::fs::read(p).map_err(io(p));
    let stub = read(parts.stub)?;
    let kernel = read(parts.kernel)?;
    let initrd = read(parts.initrd)?;
    let mut cmdline = parts.cmdline.as_bytes().to_vec();
    cmdline.push(0);
    let image = add_sections(
        &stub,
        &[
            (".osrel", parts.osrel.as_bytes()),
            (".cmdline", &cmdline),
            (".uname", parts.uname.as_bytes()),
            (".initrd", &initrd),
            (".linux", &kernel),
        ],
    )?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(out, image).map_err(io(out))
}

/// The command line embedded in a UKI (without the terminating NUL).
pub fn cmdline(b: &[u8]) -> Result<Option<String>, UkiError> {
    Ok(section(b, ".cmdline")?.map(|c| {
        let end = c.iter().position(|x| *x == 0).unwrap_or(c.len());
        String::from_utf8_lossy(&c[..end]).into_owned()
    }))
}

/// systemd-stub's file name for an EFI architecture suffix (`x64`, `aa64`).
pub fn stub_path(root: &Path, efi_suffix: &str) -> PathBuf {
    root.join(format!(
        "usr/lib/systemd/boot/efi/linux{efi_suffix}.efi.stub"
    ))
}

/// systemd's stub for command-line addons (`addon{x64,aa64}.efi.stub`).
pub fn addon_stub_path(root: &Path, efi_suffix: &str) -> PathBuf {
    root.join(format!(
        "usr/lib/systemd/boot/efi/addon{efi_suffix}.efi.stub"
    ))
}

/// The kernel release of a `/boot/vmlinuz-RELEASE` file name.
pub fn kernel_release(kernel: &Path) -> String {
    kernel
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal PE32+ image shaped like systemd's stubs: `sections` sections of 0x200 bytes,
    /// section alignment 0x1000, file alignment 0x200, headers of 0x400 bytes (room for a few
    /// more section headers).
    pub(crate) fn fake_stub(sections: usize) -> Vec<u8> {
        let (pe, opt_size) = (0x80usize, 240usize);
        let headers = 0x400usize;
        let mut b = vec![0u8; headers + sections * 0x200];
        b[..2].copy_from_slice(b"MZ");
        put_u32(&mut b, 0x3c, pe as u32);
        b[pe..pe + 4].copy_from_slice(b"PE\0\0");
        let coff = pe + 4;
        put_u16(&mut b, coff, 0x8664);
        put_u16(&mut b, coff + 2, sections as u16);
        put_u16(&mut b, coff + 16, opt_size as u16);
        let opt = coff + 20;
        put_u16(&mut b, opt, PE32_PLUS);
        put_u32(&mut b, opt + 32, 0x1000);
        put_u32(&mut b, opt + 36, 0x200);
        put_u32(&mut b, opt + 56, 0x1000 * (sections as u32 + 1));
        put_u32(&mut b, opt + 60, headers as u32);
        put_u32(&mut b, opt + 108, 16);
        let table = opt + opt_size;
        for i in 0..sections {
            let h = table + i * 40;
            b[h..h + 5].copy_from_slice(format!(".s{i:03}").as_bytes());
            put_u32(&mut b, h + 8, 0x100);
            put_u32(&mut b, h + 12, 0x1000 * (i as u32 + 1));
            put_u32(&mut b, h + 16, 0x200);
            put_u32(&mut b, h + 20, (headers + i * 0x200) as u32);
            let start = headers + i * 0x200;
            b[start..start + 0x100].fill(i as u8 + 1);
        }
        b
    }

    #[test]
    fn added_sections_follow_the_stubs_aligned_and_readable() {
        let stub = fake_stub(3);
        let kernel = vec![7u8; 5000];
        let out = add_sections(
            &stub,
            &[(".cmdline", b"ro hearth.slot=a\0"), (".linux", &kernel)],
        )
        .expect("add");
        let s = sections(&out).expect("sections");
        assert_eq!(s.len(), 5);
        assert_eq!(s[3].name, ".cmdline");
        assert_eq!(
            s[3].virtual_address, 0x4000,
            "after the last stub section, aligned"
        );
        assert_eq!(s[3].raw_offset % 0x200, 0);
        assert_eq!(s[4].virtual_address, 0x5000);
        assert_eq!(s[4].virtual_size, 5000);
        assert_eq!(s[4].raw_size, 5120, "file alignment");
        assert_eq!(section(&out, ".linux").expect("read"), Some(&kernel[..]));
        assert_eq!(
            cmdline(&out).expect("cmdline").as_deref(),
            Some("ro hearth.slot=a")
        );
        // The stub's own sections are byte for byte where they were.
        assert_eq!(&out[..stub.len()][0x400..], &stub[0x400..]);
        assert_eq!(
            section(&out, ".s001").expect("read"),
            Some(&[2u8; 0x100][..])
        );
        // SizeOfImage covers the last section.
        let opt = 0x80 + 4 + 20;
        assert_eq!(u32_at(&out, opt + 56), Some(0x5000 + 0x2000));
    }

    #[test]
    fn a_stub_without_header_room_or_signed_or_not_pe_is_refused() {
        // Headers of 0x400 bytes: the table starts at 0x188, so 15 headers fit before 0x400:
        // 12 more than the stub's 3, not 13.
        let stub = fake_stub(3);
        let many: Vec<(&str, &[u8])> = (0..13).map(|_| (".x", &b"x"[..])).collect();
        assert!(matches!(
            add_sections(&stub, &many),
            Err(UkiError::NoHeaderRoom(13))
        ));
        assert!(add_sections(&stub, &many[..12]).is_ok());
        let mut signed = stub.clone();
        let opt = 0x80 + 4 + 20;
        put_u32(&mut signed, opt + 112 + CERT_DIRECTORY * 8, 0x9000);
        put_u32(&mut signed, opt + 112 + CERT_DIRECTORY * 8 + 4, 0x100);
        assert!(matches!(
            add_sections(&signed, &[(".x", b"x")]),
            Err(UkiError::SignedStub)
        ));
        assert!(matches!(
            add_sections(b"ELF not a PE", &[(".x", b"x")]),
            Err(UkiError::NotPe(_))
        ));
        assert!(matches!(
            add_sections(&stub, &[(".waytoolong", b"x")]),
            Err(UkiError::NotPe(_))
        ));
    }

    #[test]
    fn assemble_writes_every_part() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = |n: &str| tmp.path().join(n);
        std::fs::write(p("stub"), fake_stub(2)).expect("stub");
        std::fs::write(p("vmlinuz-6.12.9-amd64"), b"KERNEL").expect("kernel");
        std::fs::write(p("initrd"), b"INITRD").expect("initrd");
        let kernel = p("vmlinuz-6.12.9-amd64");
        let parts = UkiParts {
            stub: &p("stub"),
            kernel: &kernel,
            initrd: &p("initrd"),
            cmdline: "root=PARTLABEL=root-a hearth.roothash=ab",
            osrel: "ID=hearth\n",
            uname: &kernel_release(&kernel),
        };
        assemble(&parts, &p("out/hearth.efi")).expect("assemble");
        let b = std::fs::read(p("out/hearth.efi")).expect("read");
        let names: Vec<String> = sections(&b)
            .expect("s")
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names[2..], SECTIONS.map(String::from));
        assert_eq!(section(&b, ".linux").expect("l"), Some(&b"KERNEL"[..]));
        assert_eq!(section(&b, ".initrd").expect("i"), Some(&b"INITRD"[..]));
        assert_eq!(
            section(&b, ".uname").expect("u"),
            Some(&b"6.12.9-amd64"[..])
        );
        assert_eq!(
            cmdline(&b).expect("c").as_deref(),
            Some("root=PARTLABEL=root-a hearth.roothash=ab")
        );
    }
}
