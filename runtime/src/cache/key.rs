//! Keys of cached results: a 128-bit hash that is the same on every machine,
//! in every build and with every Rust release (the standard library's
//! hasher promises none of that), of fields written one after the other.

/// A 128-bit key.
pub(crate) type Key = u128;

/// Hashes fields into a [`Key`]: two 64-bit lanes of multiply-rotate mixing
/// over 8-byte words, each field closed by its length (so that `"ab", "c"`
/// and `"a", "bc"` differ), finished with murmur3's avalanche. Not a
/// cryptographic hash: the cache is the user's own, and the keys only need
/// to differ when the inputs do.
#[derive(Clone)]
pub(crate) struct KeyHasher {
    a: u64,
    b: u64,
}

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;

impl KeyHasher {
    /// A hasher for keys of one kind (`domain` keeps kinds apart).
    pub(crate) fn new(domain: &str) -> KeyHasher {
        let mut h = KeyHasher {
            a: 0x243f_6a88_85a3_08d3,
            b: 0x1319_8a2e_0370_7344,
        };
        h.field(domain.as_bytes());
        h
    }

    fn word(&mut self, w: u64) {
        self.a = (self.a ^ w).wrapping_mul(K1).rotate_left(31);
        self.b = (self.b ^ w.rotate_left(17))
            .wrapping_mul(K2)
            .rotate_left(29);
    }

    /// Adds one field.
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last));
        }
        self.word(bytes.len() as u64 ^ K2);
        self
    }

    /// Adds keys as one field, two words each (cheaper than a field each).
    pub(crate) fn keys(&mut self, keys: &[Key]) -> &mut Self {
        for k in keys {
            self.word(*k as u64);
            self.word((*k >> 64) as u64);
        }
        self.word(keys.len() as u64 ^ K1);
        self
    }

    /// Adds a number as one field.
    pub(crate) fn number(&mut self, n: u64) -> &mut Self {
        self.field(&n.to_le_bytes())
    }

    /// The key.
    pub(crate) fn finish(&self) -> Key {
        let a = avalanche(self.a ^ self.b.rotate_left(23));
        let b = avalanche(self.b ^ a);
        (u128::from(a) << 64) | u128::from(b)
    }
}

fn avalanche(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A key in hex, as directory names and status reports show it.
pub(crate) fn hex(key: Key) -> String {
    format!("{key:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[&[u8]]) -> Key {
        let mut h = KeyHasher::new("test");
        for f in fields {
            h.field(f);
        }
        h.finish()
    }

    /// The key of the one field `futurize`: a change here is a change of
    /// every stored key (every cache then misses once).
    const KNOWN: &str = "13b588a646ad6dd90907740afad6c241";

    #[test]
    fn keys_are_fixed_and_tell_fields_apart() {
        // The same on every machine and build: a stored cache stays valid.
        assert_eq!(hex(key(&[b"abc"])), hex(key(&[b"abc"])));
        assert_eq!(hex(key(&[b"futurize"])), KNOWN);
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert_ne!(key(&[b"a"]), key(&[b"a", b""]));
        assert_ne!(key(&[&[0u8; 8]]), key(&[&[0u8; 7]]));
        assert_ne!(KeyHasher::new("x").finish(), KeyHasher::new("y").finish());
        let mut distinct: Vec<Key> = (0u64..10_000).map(|i| key(&[&i.to_le_bytes()])).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 10_000);
    }
}
