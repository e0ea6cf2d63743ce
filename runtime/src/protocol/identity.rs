//! Which binary this is, and where its entry functions are.
//!
//! A worker runs the same executable as its leader, so a future's entry
//! function is named by its distance from [`anchor`], a function that exists
//! once in every image: PIE loading moves the whole image, never the distance
//! between two of its functions. The handshake compares [`build_id`]s first,
//! so an offset is only ever applied to a byte-identical image.

use std::sync::OnceLock;

/// The fixed point that entry offsets are measured from.
#[inline(never)]
fn anchor() -> usize {
    anchor as fn() -> usize as usize
}

/// The distance of the function at `address` from the anchor, valid in
/// every process of this binary.
pub(crate) fn offset_of(address: usize) -> i64 {
    address as i64 - anchor() as i64
}

/// The address at `offset` from the anchor in this process.
///
/// Turning it back into a function is the caller's business, and is sound
/// only for an offset that [`offset_of`] gave for a function of that type in
/// a process whose [`build_id`] equals this one's: the image is then laid
/// out the same relative to the anchor.
pub(crate) fn address_at(offset: i64) -> usize {
    (anchor() as i64).wrapping_add(offset) as usize
}

/// The identity of this executable: its GNU build id when the ELF file has
/// one (linkers write it by default), else a hash of the whole file.
pub(crate) fn build_id() -> &'static [u8] {
    static ID: OnceLock<Vec<u8>> = OnceLock::new();
    ID.get_or_init(|| {
        // The note sits right after the program headers: the first 64 KiB
        // hold it in every binary seen so far, so the whole file is read only
        // when they do not.
        if let Some(id) = elf_build_id(&read_head(EXE, 64 << 10)) {
            return id;
        }
        let bytes = std::fs::read(EXE).unwrap_or_default();
        match elf_build_id(&bytes) {
            Some(id) => id,
            None => {
                use std::hash::{DefaultHasher, Hasher};
                let mut h = DefaultHasher::new();
                h.write(&bytes);
                let mut id = b"hash:".to_vec();
                id.extend_from_slice(&h.finish().to_le_bytes());
                id
            }
        }
    })
}

/// Reads `NT_GNU_BUILD_ID` from the `PT_NOTE` segments of a 64-bit
/// little-endian ELF file.
fn elf_build_id(file: &[u8]) -> Option<Vec<u8>> {
    let u16_at = |o: usize| file.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        file.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| {
        file.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    if file.get(0..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(ph)? != 4 {
            continue; // not PT_NOTE
        }
        let start = u64_at(ph + 8)? as usize;
        let size = u64_at(ph + 32)? as usize;
        let mut at = start;
        let end = start.checked_add(size)?;
        while at + 12 <= end {
            let namesz = u32_at(at)? as usize;
            let descsz = u32_at(at + 4)? as usize;
            let kind = u32_at(at + 8)?;
            let name_at = at + 12;
            let desc_at = name_at + namesz.next_multiple_of(4);
            if kind == 3 && file.get(name_at..name_at + namesz)? == b"GNU\0" {
                return file.get(desc_at..desc_at + descsz).map(<[u8]>::to_vec);
            }
            at = desc_at + descsz.next_multiple_of(4);
        }
    }
    None
}

/// The running executable, even if its file was replaced since it started.
const EXE: &str = "/proc/self/exe";

/// Reads up to `limit` bytes from the start of a file; empty if unreadable.
fn read_head(path: &str, limit: u64) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(limit).read_to_end(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_binary_has_a_gnu_build_id_matching_readelf_layout() {
        let id = build_id();
        let whole = elf_build_id(&std::fs::read(EXE).unwrap()).unwrap();
        assert_eq!(
            id,
            &whole[..],
            "the head holds the same note as the whole file"
        );
        assert!(!id.is_empty());
        assert!(!id.starts_with(b"hash:"), "expected an ELF build id");
        assert_eq!(id.len(), 20, "GNU build ids are SHA-1 sized here");
    }

    #[test]
    fn non_elf_bytes_have_no_build_id() {
        assert_eq!(elf_build_id(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(elf_build_id(&read_head(EXE, 6)), None);
    }

    #[test]
    fn offsets_round_trip_to_the_same_address() {
        fn probe(_: &[u8]) -> Result<Vec<u8>, crate::Error> {
            Ok(vec![42])
        }
        type Probe = fn(&[u8]) -> Result<Vec<u8>, crate::Error>;
        let offset = offset_of(probe as Probe as usize);
        // SAFETY: the address was taken from a `Probe` in this very process.
        let back = unsafe { std::mem::transmute::<usize, Probe>(address_at(offset)) };
        assert_eq!(back(&[]).unwrap(), vec![42]);
    }
}
