//! The file API's header handling: `Range` (downloads), `Content-Range` (resumable uploads),
//! the request path grammar and `Content-Disposition` built from a file name. Checks what each
//! promises, not only "no panic": a range accepted is inside the file, an upload range is
//! inside its total, a parsed path has no dot or empty component, and a disposition header can
//! always be built and its `filename*` decodes back to the exact name.
//!
//! Input: 8 bytes of file size, then `RANGE\nCONTENT-RANGE\nPATH`.
#![no_main]

use hearth_agent::files::path::RelPath;
use hearth_agent::fuzzing::{content_disposition, parse_content_range, parse_range};
use libfuzzer_sys::fuzz_target;

fn check_range(header: &str, size: u64) {
    if let Some((start, end)) = parse_range(header, size) {
        assert!(
            start <= end && end < size,
            "{header:?} on {size} gave {start}-{end}"
        );
        // What the download handler computes from it.
        let len = end - start + 1;
        assert!(start + len - 1 == end);
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ASCII escape");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn check_disposition(name: &str) {
    for kind in ["attachment", "inline"] {
        let value = content_disposition(kind, name)
            .unwrap_or_else(|| panic!("no Content-Disposition for {name:?}"));
        let value = value.to_str().expect("the header is visible ASCII");
        let rest = value
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix("; filename=\""))
            .expect("disposition and quoted filename");
        let (plain, encoded) = rest
            .split_once("\"; filename*=UTF-8''")
            .expect("quoted filename then filename*");
        assert!(
            !plain.contains(['"', '\\', ';']),
            "the quoted filename breaks out: {value:?}"
        );
        assert_eq!(percent_decode(encoded), name.as_bytes(), "{value:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((size, text)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let size = u64::from_le_bytes(*size);
    let mut parts = text.splitn(3, '\n');
    let (range, content_range, path) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    // Sizes near the edges matter most: the raw value, a small one, and the largest.
    for size in [size, size % 4096, u64::MAX] {
        check_range(range, size);
    }
    if let Some((range, total)) = parse_content_range(content_range) {
        if let Some((start, end)) = range {
            assert!(start <= end && end < total, "{content_range:?}");
            // What the upload handler computes from it.
            let _expected_written = end + 1;
        }
    }
    match RelPath::parse(path) {
        Ok(rel) if rel.is_root() => assert_eq!(rel.as_os_path(), "."),
        Ok(rel) => {
            for part in rel.as_os_path().split('/') {
                assert!(
                    !part.is_empty() && part != "." && part != ".." && !part.contains('\0'),
                    "{path:?} parsed to {:?}",
                    rel.as_os_path()
                );
            }
            check_disposition(rel.name().unwrap_or("download"));
        }
        Err(_) => check_disposition(path),
    }
});
