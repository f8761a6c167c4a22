//! How much of a slot a read-only root file system occupies, read from its superblock, so the
//! delta index cuts only the image (a 280 MB squashfs) and not the whole partition behind it
//! (2 GiB on qemu-x86_64, the rest zeros or an older image). A dm-verity hash tree right after
//! the file system (`veritysetup format --hash-offset`, what the image builder appends) is part
//! of the image: without it the next release's tree, which differs from this one only where the
//! data changed, would be downloaded whole on every update (0.8 % of the root).
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

/// dm-verity's superblock magic (cryptsetup's `struct verity_sb`, 512 bytes).
const VERITY_MAGIC: &[u8; 8] = b"verity\0\0";
const VERITY_SB: usize = 512;

/// The length of the dm-verity hash area (superblock, then the levels from the top down, each
/// padded to a hash block) at the start of `sb`, for a file system of `data_len` bytes; `None`
/// unless `sb` is a version-1 superblock of a normal (not Chrome OS) tree over exactly those
/// bytes. Digests are padded to a power of two per block, as cryptsetup lays them out.
pub fn verity_tree_len(sb: &[u8], data_len: u64) -> Option<u64> {
    if sb.len() < VERITY_SB || &sb[..8] != VERITY_MAGIC {
        return None;
    }
    let u32_at = |at: usize| u32::from_le_bytes(sb[at..at + 4].try_into().expect("4 bytes"));
    let (version, hash_type) = (u32_at(8), u32_at(12));
    let algorithm = sb[32..64].split(|b| *b == 0).next()?;
    let data_block = u64::from(u32_at(64));
    let hash_block = u64::from(u32_at(68));
    let data_blocks = u64::from_le_bytes(sb[72..80].try_into().expect("8 bytes"));
    let digest: u64 = match algorithm {
        b"sha1" => 20,
        b"sha256" => 32,
        b"sha512" => 64,
        _ => return None,
    };
    let block_ok = |b: u64| b.is_power_of_two() && (512..=65536).contains(&b);
    if version != 1 || hash_type != 1 || !block_ok(data_block) || !block_ok(hash_block) {
        return None;
    }
    if data_blocks.checked_mul(data_block)? != data_len || data_blocks == 0 {
        return None;
    }
    let per_block = hash_block / digest.next_power_of_two();
    // The superblock takes the first hash block; each level holds the digests of the one below.
    let mut total = hash_block;
    let mut level = data_blocks;
    loop {
        level = level.div_ceil(per_block);
        total = total.checked_add(level.checked_mul(hash_block)?)?;
        if level == 1 {
            return Some(total);
        }
    }
}

/// How many bytes of `slot` the delta index should cut: the file system's length (with its
/// dm-verity hash tree when one follows it) when the slot starts with one, else (or when the
/// header cannot be read) the whole slot.
pub fn index_len(slot: &mut dyn SlotStorage) -> std::io::Result<u64> {
    let capacity = slot.capacity()?;
    let mut header = vec![0u8; HEADER.min(usize::try_from(capacity).unwrap_or(HEADER))];
    if slot.read_at(0, &mut header).is_err() {
        return Ok(capacity);
    }
    let Some(len) = image_len(&header) else {
        return Ok(capacity);
    };
    let mut sb = [0u8; VERITY_SB];
    let tree = match len.checked_add(VERITY_SB as u64) {
        Some(end) if end <= capacity && slot.read_at(len, &mut sb).is_ok() => {
            verity_tree_len(&sb, len).unwrap_or(0)
        }
        _ => 0,
    };
    Ok(len.saturating_add(tree).min(capacity))
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

    /// A superblock as `veritysetup format` writes it (sha256, 4 KiB blocks).
    fn verity_sb(data_blocks: u64) -> Vec<u8> {
        let mut sb = vec![0u8; VERITY_SB];
        sb[..8].copy_from_slice(VERITY_MAGIC);
        sb[8..12].copy_from_slice(&1u32.to_le_bytes());
        sb[12..16].copy_from_slice(&1u32.to_le_bytes());
        sb[32..38].copy_from_slice(b"sha256");
        sb[64..68].copy_from_slice(&4096u32.to_le_bytes());
        sb[68..72].copy_from_slice(&4096u32.to_le_bytes());
        sb[72..80].copy_from_slice(&data_blocks.to_le_bytes());
        sb[80..82].copy_from_slice(&32u16.to_le_bytes());
        sb
    }

    #[test]
    fn a_verity_tree_is_measured_level_by_level() {
        // A 221 MB squashfs of qemu-x86_64 (veritysetup 2.6): 55 248 data blocks → levels of
        // 432, 4 and 1 blocks after the superblock's: 438 blocks, 1 794 048 bytes.
        assert_eq!(
            verity_tree_len(&verity_sb(55_248), 55_248 * 4096),
            Some(438 * 4096)
        );
        // One level only (up to 128 digests of 32 bytes in a block).
        assert_eq!(verity_tree_len(&verity_sb(128), 128 * 4096), Some(2 * 4096));
        assert_eq!(verity_tree_len(&verity_sb(129), 129 * 4096), Some(4 * 4096));
    }

    #[test]
    fn a_verity_superblock_that_does_not_describe_the_image_is_ignored() {
        assert_eq!(
            verity_tree_len(&verity_sb(10), 11 * 4096),
            None,
            "another size"
        );
        assert_eq!(verity_tree_len(&verity_sb(0), 0), None);
        let mut chrome = verity_sb(10);
        chrome[12..16].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            verity_tree_len(&chrome, 10 * 4096),
            None,
            "Chrome OS format"
        );
        let mut odd = verity_sb(10);
        odd[68..72].copy_from_slice(&3000u32.to_le_bytes());
        assert_eq!(verity_tree_len(&odd, 10 * 4096), None, "block size");
        let mut md5 = verity_sb(10);
        md5[32..38].copy_from_slice(b"md5\0\0\0");
        assert_eq!(verity_tree_len(&md5, 10 * 4096), None, "unknown digest");
        assert_eq!(verity_tree_len(&[0u8; VERITY_SB], 0), None);
        assert_eq!(verity_tree_len(b"verity", 0), None, "short");
    }

    #[test]
    fn a_slot_with_a_verity_tree_after_its_image_is_indexed_through_the_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("slot");
        // 12 288 bytes of squashfs (3 blocks), its tree (superblock + one level), zeros after.
        let mut bytes = squashfs(10_000);
        bytes.resize(12_288, 0);
        bytes.extend_from_slice(&verity_sb(3));
        bytes.resize(1 << 20, 0);
        std::fs::write(&path, &bytes).expect("write");
        let mut slot = crate::storage::FileSlot::open_read_only(&path).expect("open");
        assert_eq!(index_len(&mut slot).expect("len"), 12_288 + 2 * 4096);
        // A tree reaching past the slot's end is cut at capacity.
        let mut bytes = squashfs(10_000);
        bytes.resize(12_288, 0);
        bytes.extend_from_slice(&verity_sb(3));
        bytes.resize(12_288 + 4096, 0);
        std::fs::write(&path, &bytes).expect("write");
        let mut slot = crate::storage::FileSlot::open_read_only(&path).expect("open");
        assert_eq!(index_len(&mut slot).expect("len"), 12_288 + 4096);
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
