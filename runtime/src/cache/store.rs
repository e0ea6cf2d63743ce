//! A call's entries on disk: one file per chunk that finished, never one
//! per element, each written under a temporary name and renamed, so that a
//! reader sees a whole file or none and two leaders never write the same
//! file. A file that does not read back whole (truncated, garbled, of
//! another call) is skipped with a warning: its elements run again.
//!
//! A file: the line `futurize-cache-1 <call key>`, the length of the body
//! (8 bytes, little-endian), the body, and the body's key (16 bytes), which
//! a reader recomputes. The body, little-endian throughout: the number of
//! values `n` (8 bytes), their keys (`n` × 16 bytes), their lengths (`n` ×
//! 4 bytes), the values' bytes one after the other, then what the chunk
//! printed: stdout's length (8 bytes) and bytes, stderr's likewise. Read
//! with slices and no decoder: a cached rerun of 1e5 elements reads them
//! in a few milliseconds.

use super::key::{Key, KeyHasher, hex};
use crate::Error;
use crate::protocol::job::create_private;
use crate::protocol::wire::LogRecord;
use crate::protocol::{Output, codec};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &str = "futurize-cache-1";

/// What one or more finished chunks stored: each element's key and value
/// bytes, and what each chunk printed.
#[derive(Default)]
pub(crate) struct StoredChunk {
    pub(crate) keys: Vec<Key>,
    /// Each value's length in `values`.
    pub(crate) lengths: Vec<u32>,
    pub(crate) values: Vec<u8>,
    /// What a chunk printed, with the keys of its values: `keys[at..at + n]`.
    pub(crate) outputs: Vec<Printed>,
}

/// What one finished chunk printed and logged, and which stored values are
/// its.
#[derive(Clone, Default, Debug, PartialEq)]
pub(crate) struct Printed {
    pub(crate) at: usize,
    pub(crate) n: usize,
    pub(crate) output: Output,
    pub(crate) logs: Vec<LogRecord>,
}

impl StoredChunk {
    /// Adds an element's value.
    pub(crate) fn push(&mut self, key: Key, value: &[u8]) -> Result<(), Error> {
        let length = u32::try_from(value.len())
            .map_err(|_| Error::Protocol("a cached value of 4 GiB or more".into()))?;
        self.keys.push(key);
        self.lengths.push(length);
        self.values.extend_from_slice(value);
        Ok(())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let printed: usize = self
            .outputs
            .iter()
            .map(|p| 40 + p.output.stdout.len() + p.output.stderr.len())
            .sum();
        let mut body = Vec::with_capacity(16 + self.keys.len() * 20 + self.values.len() + printed);
        body.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        for k in &self.keys {
            body.extend_from_slice(&k.to_le_bytes());
        }
        for l in &self.lengths {
            body.extend_from_slice(&l.to_le_bytes());
        }
        body.extend_from_slice(&self.values);
        body.extend_from_slice(&(self.outputs.len() as u64).to_le_bytes());
        for p in &self.outputs {
            body.extend_from_slice(&(p.at as u64).to_le_bytes());
            body.extend_from_slice(&(p.n as u64).to_le_bytes());
            let logs = if p.logs.is_empty() {
                Vec::new()
            } else {
                codec::encode(&p.logs, "log records").unwrap_or_default()
            };
            for stream in [&p.output.stdout, &p.output.stderr, &logs] {
                body.extend_from_slice(&(stream.len() as u64).to_le_bytes());
                body.extend_from_slice(stream);
            }
        }
        body
    }

    fn from_bytes(body: &[u8]) -> Option<StoredChunk> {
        let mut r = Reader(body);
        let count = r.number()?;
        let keys: Vec<Key> = r
            .take(count.checked_mul(16)?)?
            .chunks_exact(16)
            .map(|k| u128::from_le_bytes(k.try_into().expect("16 bytes")))
            .collect();
        let lengths: Vec<u32> = r
            .take(count.checked_mul(4)?)?
            .chunks_exact(4)
            .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")))
            .collect();
        let total: usize = lengths.iter().map(|&l| l as usize).sum();
        let values = r.take(total)?.to_vec();
        let mut outputs = Vec::new();
        for _ in 0..r.number()? {
            let (at, n) = (r.number()?, r.number()?);
            let out = r.number()?;
            let stdout = r.take(out)?.to_vec();
            let err = r.number()?;
            let stderr = r.take(err)?.to_vec();
            let logged = r.number()?;
            let logs = match r.take(logged)? {
                [] => Vec::new(),
                bytes => codec::decode(bytes, "log records").ok()?,
            };
            if at.checked_add(n)? > count {
                return None;
            }
            outputs.push(Printed {
                at,
                n,
                output: Output { stdout, stderr },
                logs,
            });
        }
        r.0.is_empty().then_some(StoredChunk {
            keys,
            lengths,
            values,
            outputs,
        })
    }
}

/// Bytes read from the front.
struct Reader<'b>(&'b [u8]);

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Option<&'b [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn number(&mut self) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().ok()?)).ok()
    }
}

/// Keys are hashes already: the map uses their low bits as they are.
#[derive(Default)]
pub(crate) struct KeyBits(u64);

impl Hasher for KeyBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// Where an element's value lies among the loaded chunks.
#[derive(Clone, Copy)]
pub(crate) struct Found {
    /// Which chunk.
    pub(crate) chunk: u32,
    /// The value's bytes in that chunk's `values`.
    pub(crate) start: usize,
    pub(crate) length: u32,
}

/// Everything a call's directory holds.
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) chunks: Vec<StoredChunk>,
    pub(crate) by_key: HashMap<Key, Found, BuildHasherDefault<KeyBits>>,
}

impl Loaded {
    /// The value bytes of `found`.
    pub(crate) fn value(&self, found: Found) -> &[u8] {
        let start = found.start;
        &self.chunks[found.chunk as usize].values[start..start + found.length as usize]
    }
}

fn body_key(body: &[u8]) -> Key {
    KeyHasher::new("cache file body").field(body).finish()
}

/// Creates `path` new, for this user only.
pub(crate) fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    create_private(path, 0o600)
}

/// Writes `chunk` as a new file of the call keyed `call` in `dir`.
pub(crate) fn write_chunk(dir: &Path, call: Key, chunk: &StoredChunk) -> Result<(), Error> {
    let body = chunk.to_bytes();
    let name = format!("{:016x}", super::random_u64());
    let temporary = dir.join(format!(".{name}.tmp"));
    let failed = |e: std::io::Error| Error::Protocol(format!("the cache {}: {e}", dir.display()));
    let mut file = create_new(&temporary).map_err(failed)?;
    let mut bytes = format!("{MAGIC} {}\n", hex(call)).into_bytes();
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&body_key(&body).to_le_bytes());
    file.write_all(&bytes).map_err(failed)?;
    drop(file);
    std::fs::rename(&temporary, dir.join(format!("{name}.chunk"))).map_err(failed)
}

/// Reads one file; what is wrong with it otherwise.
fn read_chunk(path: &Path, call: Key) -> Result<StoredChunk, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let header = format!("{MAGIC} {}\n", hex(call));
    let rest = bytes
        .strip_prefix(header.as_bytes())
        .ok_or("it is not an entry of this call")?;
    let (length, rest) = rest.split_at_checked(8).ok_or("it is truncated")?;
    let length = u64::from_le_bytes(length.try_into().expect("8 bytes"));
    let length = usize::try_from(length).map_err(|_| "its length is garbled")?;
    if rest.len() != length.saturating_add(16) {
        return Err("it is truncated or garbled (its length does not match)".into());
    }
    let (body, key) = rest.split_at(length);
    if body_key(body).to_le_bytes() != key {
        return Err("its bytes do not match their key (garbled)".into());
    }
    StoredChunk::from_bytes(body).ok_or_else(|| "its values do not match their keys".into())
}

/// Reads every entry file of the call keyed `call` in `dir`; a file that
/// does not read back whole is a warning, and its elements run again.
pub(crate) fn load(dir: &Path, call: Key) -> Loaded {
    load_with(dir, call, &|why| super::warn(why))
}

/// As [`load`], silent about files that do not read back (for reports).
pub(crate) fn load_quietly(dir: &Path, call: Key) -> Loaded {
    load_with(dir, call, &|_| {})
}

fn load_with(dir: &Path, call: Key, warn: &dyn Fn(&str)) -> Loaded {
    let mut loaded = Loaded::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return loaded;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "chunk"))
        .collect();
    files.sort();
    for path in files {
        match read_chunk(&path, call) {
            Ok(chunk) => loaded.chunks.push(chunk),
            Err(why) => warn(&format!(
                "the cache entry {} is skipped and its elements run again: {why}",
                path.display()
            )),
        }
    }
    let total = loaded.chunks.iter().map(|c| c.keys.len()).sum();
    loaded.by_key.reserve(total);
    for (index, chunk) in loaded.chunks.iter().enumerate() {
        let mut start = 0usize;
        for (&key, &length) in chunk.keys.iter().zip(&chunk.lengths) {
            loaded.by_key.insert(
                key,
                Found {
                    chunk: index as u32,
                    start,
                    length,
                },
            );
            start += length as usize;
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_reads_back_as_written_and_not_when_cut() {
        let mut chunk = StoredChunk::default();
        chunk.push(7, b"seven").unwrap();
        chunk.push(9, b"").unwrap();
        chunk.outputs.push(Printed {
            at: 0,
            n: 2,
            output: Output {
                stdout: b"out".to_vec(),
                stderr: b"err!".to_vec(),
            },
            logs: vec![LogRecord {
                level: 3,
                target: "t".into(),
                message: "logged".into(),
                module_path: None,
                file: None,
                line: Some(7),
                index: Some(1),
            }],
        });
        let body = chunk.to_bytes();
        let back = StoredChunk::from_bytes(&body).unwrap();
        assert_eq!(back.keys, vec![7, 9]);
        assert_eq!(back.lengths, vec![5, 0]);
        assert_eq!(back.values, b"seven");
        assert_eq!(back.outputs, chunk.outputs);
        for cut in 0..body.len() {
            assert!(
                StoredChunk::from_bytes(&body[..cut]).is_none(),
                "cut at {cut}"
            );
        }
    }
}
