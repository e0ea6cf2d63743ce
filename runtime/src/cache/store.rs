//! A call's entries on disk: one file per chunk that finished, never one
//! per element, each written under a temporary name and renamed, so that a
//! reader sees a whole file or none and two leaders never write the same
//! file. A file that does not read back whole (truncated, garbled, of
//! another call) is skipped with a warning: its elements run again.
//!
//! A file: the line `futurize-cache-1 <call key>`, the length of the body
//! (8 bytes, little-endian), the body (a [`StoredChunk`] in the codec's
//! bytes), and the body's key (16 bytes), which a reader recomputes.

use super::key::{Key, KeyHasher, hex};
use crate::Error;
use crate::protocol::Output;
use crate::protocol::codec;
use crate::protocol::job::create_private;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &str = "futurize-cache-1";

/// What one chunk stored: each element's key and value bytes, and what the
/// chunk printed.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct StoredChunk {
    pub(crate) keys: Vec<Key>,
    /// Each value's length in `values`.
    pub(crate) lengths: Vec<u32>,
    pub(crate) values: Vec<u8>,
    pub(crate) output: Output,
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
    pub(crate) by_key: HashMap<Key, Found>,
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
    let body = codec::encode(chunk, "a cache entry")?;
    let name = format!("{:016x}", super::random_u64());
    let temporary = dir.join(format!(".{name}.tmp"));
    let failed = |e: std::io::Error| Error::Protocol(format!("the cache {}: {e}", dir.display()));
    let mut file = create_private(&temporary, 0o600).map_err(failed)?;
    writeln!(file, "{MAGIC} {}", hex(call)).map_err(failed)?;
    file.write_all(&(body.len() as u64).to_le_bytes())
        .and_then(|()| file.write_all(&body))
        .and_then(|()| file.write_all(&body_key(&body).to_le_bytes()))
        .map_err(failed)?;
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
    let chunk: StoredChunk = codec::decode(body, "a cache entry").map_err(|e| e.to_string())?;
    let sum: u64 = chunk.lengths.iter().map(|&l| u64::from(l)).sum();
    if chunk.keys.len() != chunk.lengths.len() || sum != chunk.values.len() as u64 {
        return Err("its values do not match their keys".into());
    }
    Ok(chunk)
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
            Ok(chunk) => {
                let index = loaded.chunks.len() as u32;
                let mut start = 0usize;
                for (&key, &length) in chunk.keys.iter().zip(&chunk.lengths) {
                    loaded.by_key.insert(
                        key,
                        Found {
                            chunk: index,
                            start,
                            length,
                        },
                    );
                    start += length as usize;
                }
                loaded.chunks.push(chunk);
            }
            Err(why) => warn(&format!(
                "the cache entry {} is skipped and its elements run again: {why}",
                path.display()
            )),
        }
    }
    loaded
}
