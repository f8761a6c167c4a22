//! How much of a slot a read-only root file system occupies, read from its superblock, so the
//! delta index cuts only the image (a 280 MB squashfs) and not the whole partition behind it
//! (2 GiB on qemu-x86_64, the rest zeros or an older image).
//!
//! A hint, never trusted: the index only says where a chunk might be, and every chunk copied
//! from the active slot is hashed against the signed manifest before it is written. A wrong
//! length costs download bytes, never wrong data. Never writes.
use crate::storage::SlotStorage;

/// Bytes read from the start of a slot: the squashfs superblock is at 0, EROFS's at 1024.
const HEADER: usize = 1024 + 64;
/// mksquashfs pads its output to 4 KiB; EROFS images are whole blocks.
const SQUASHFS_PAD: u64 = 4096;
const SQUASHFS_MAGIC: &[u8; 4] = b"hsqs";
const EROFS_MAGIC: u32 = 0xE0F5_E1E2;

/// The length of the squashfs or EROFS image at the start of `header` (the slot's first bytes),
/// or `None` for anything else (a kernel, an initrd, a FAT boot partition).
pub fn image_len(header: &[u8]) -> Option<u64> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(header.get(at..at + 4)?.try_into().ok()?))
    };
    if header.get(..4) == Some(SQUASHFS_MAGIC) {
        let bytes_used = u64::from_le_bytes(header.get(40..48)?.try_into().ok()?);
        return bytes_used.checked_next_multiple_of(SQUASHFS_PAD);
    }
    if u32_at(1024)? == EROFS_MAGIC {
        let blkszbits = u32::from(*header.get(1024 + 12)?);
        let blocks = u64::from(u32_at(1024 + 36)?);
        return blocks.checked_mul(1u64.checked_shl(blkszbits)?);
    }
    None
}

/// How many bytes of `slot` the delta index should cut: the file system's length when the slot
/// starts with one, else (or when the header cannot be read) the whole slot.
pub fn index_len(slot: &mut dyn SlotStorage) -> std::io::Result<u64> {
    let capacity = slot.capacity()?;
    let mut header = vec![0u8; HEADER.min(usize::try_from(capacity).unwrap_or(HEADER))];
    if slot.read_at(0, &mut header).is_err() {
        return Ok(capacity);
    }
    Ok(image_len(&header).map_or(capacity, |len| len.min(capacity)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squashfs(bytes_used: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEADER];
        h[..4].copy_from_slice(SQUASHFS_MAGIC);
        h[40..48].copy_from_slice(&bytes_used.to_le_bytes());
        h
    }

    #[test]
    fn a_squashfs_slot_is_indexed_up_to_its_padded_length() {
        assert_eq!(image_len(&squashfs(280_000_001)), Some(280_002_560));
        assert_eq!(image_len(&squashfs(8192)), Some(8192));
    }

    #[test]
    fn an_erofs_slot_is_indexed_up_to_its_blocks() {
        let mut h = vec![0u8; HEADER];
        h[1024..1028].copy_from_slice(&EROFS_MAGIC.to_le_bytes());
        h[1024 + 12] = 12;
        h[1024 + 36..1024 + 40].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(image_len(&h), Some(4_096_000));
    }

    #[test]
    fn anything_else_and_short_or_absurd_headers_give_no_length() {
        assert_eq!(image_len(&[0u8; HEADER]), None);
        assert_eq!(image_len(b"hsqs"), None);
        assert_eq!(image_len(&squashfs(u64::MAX)), None);
        let mut h = vec![0u8; HEADER];
        h[1024..1028].copy_from_slice(&EROFS_MAGIC.to_le_bytes());
        h[1024 + 12] = 200;
        assert_eq!(image_len(&h), None);
    }

    #[test]
    fn a_slot_larger_than_its_image_is_cut_to_the_image_and_never_beyond_capacity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("slot");
        let mut bytes = squashfs(10_000);
        bytes.resize(1 << 20, 0xAB);
        std::fs::write(&path, &bytes).expect("write");
        let mut slot = crate::storage::FileSlot::open_read_only(&path).expect("open");
        assert_eq!(index_len(&mut slot).expect("len"), 12_288);
        let mut huge = squashfs(1 << 40);
        huge.resize(1 << 20, 0);
        std::fs::write(&path, &huge).expect("write");
        let mut slot = crate::storage::FileSlot::open_read_only(&path).expect("open");
        assert_eq!(index_len(&mut slot).expect("len"), 1 << 20);
        std::fs::write(&path, b"short kernel").expect("write");
        let mut slot = crate::storage::FileSlot::open_read_only(&path).expect("open");
        assert_eq!(index_len(&mut slot).expect("len"), 12);
    }
}
