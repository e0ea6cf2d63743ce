//! Results that outlive the leader: `cache = true` on a `foreach!`, or
//! `FUTURIZE_CACHE` for every call, stores each element's value as its chunk
//! finishes; a later run of the same call (after a crash, a killed leader, a
//! closed laptop) takes those values instead of running their elements
//! again, so a rerun resumes where the last one stopped.
//!
//! An element's value is found again under a key made of:
//! * the call site (crate, module, file, line) and a hash of the call's
//!   tokens (its bindings, body and options), computed by the macro;
//! * the captures' bytes, and for a seeded call its random streams;
//! * the element's bytes, and for a seeded call its index (its stream);
//! * with `cache = "build"`, this executable's build id too.
//!
//! So a changed body, capture, element or seed misses, and only the changed
//! elements run again. What does not miss: a function the body calls whose
//! code changed (its tokens are not the body's): use `cache = "build"` to
//! make any change of the program a miss.
//!
//! Entries live under the cache root (`.futurize/cache` of the working
//! directory, or the directory `FUTURIZE_CACHE` names), which must be the
//! user's own as the Slurm registry must: one directory per call key, one
//! file per finished chunk (`store`).

mod key;
mod status;
mod store;

pub use status::{CALL_INFO, CacheSize, CachedCall, calls, clear, remove, size};

use crate::Error;
use crate::protocol::Output;
use crate::protocol::job::prepare_own_root;
use crate::protocol::wire::LogRecord;
use crate::rng::Streams;
use key::{Key, KeyHasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub(crate) use store::StoredChunk;

/// The environment variable that turns the cache on for every call
/// (`1`, or a directory), or off for every call (`0`).
pub const CACHE_ENV: &str = "FUTURIZE_CACHE";

/// Where the cache lives unless `FUTURIZE_CACHE` names a directory.
const DEFAULT_ROOT: &str = ".futurize/cache";

/// What a call asked for with `cache = ...`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// No `cache` option (`FUTURIZE_CACHE` may still turn it on).
    Unasked,
    /// `cache = false`: never, whatever `FUTURIZE_CACHE` says.
    Off,
    /// `cache = true`.
    On,
    /// `cache = "build"`: entries are also keyed by this build.
    Build,
}

/// Where a call is in the source, and its tokens' hash: written by the
/// macro, the same in every build of the same source.
#[doc(hidden)]
#[derive(Debug)]
pub struct CallSite {
    /// `CARGO_PKG_NAME` of the crate.
    pub crate_name: &'static str,
    /// `module_path!()`.
    pub module: &'static str,
    /// `file!()`.
    pub file: &'static str,
    /// `line!()`.
    pub line: u32,
    /// A hash of the call's tokens.
    pub tokens: u64,
}

/// A call's cache option and site, as the macro writes them.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct CacheSpec {
    /// The call.
    pub site: &'static CallSite,
    /// Its `cache = ...`.
    pub asked: CacheMode,
}

/// `FUTURIZE_CACHE` as read once: `None` unset or empty, `Some(None)` for
/// off, `Some(Some(root))` for on.
fn from_environment() -> Option<Option<PathBuf>> {
    static READ: OnceLock<Option<Option<PathBuf>>> = OnceLock::new();
    READ.get_or_init(|| {
        let value = std::env::var_os(CACHE_ENV)?;
        match value.to_str().map(str::trim) {
            Some("") => None,
            Some("0") | Some("false") => Some(None),
            Some("1") | Some("true") => Some(Some(PathBuf::from(DEFAULT_ROOT))),
            _ => Some(Some(PathBuf::from(value))),
        }
    })
    .clone()
}

/// The cache root in force for a call that asked `asked`, if caching is on.
fn root_for(asked: CacheMode) -> Option<PathBuf> {
    match (asked, from_environment()) {
        (CacheMode::Off, _) => None,
        (_, Some(None)) => None,
        (_, Some(Some(root))) => Some(root),
        (CacheMode::Unasked, None) => None,
        (CacheMode::On | CacheMode::Build, None) => Some(PathBuf::from(DEFAULT_ROOT)),
    }
}

/// Whether caching is on for a call that asked `spec` (before any element
/// is encoded for a key).
pub(crate) fn wanted(spec: Option<&CacheSpec>) -> bool {
    spec.is_some_and(|s| root_for(s.asked).is_some())
}

/// The root as an absolute path, checked (the user's own, closed to
/// others' writes).
fn prepared_root(root: &Path) -> Result<PathBuf, Error> {
    let root = if root.is_absolute() {
        root.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| cache_error(root, &format!("has no working directory: {e}")))?
            .join(root)
    };
    prepare_own_root(&root).map_err(|why| root_refused(&root, &why))?;
    Ok(root)
}

/// The cache's root cannot be used.
fn root_refused(root: &Path, why: &str) -> Error {
    cache_error(
        root,
        &format!(
            "{why}; give a directory of your own (`mkdir -m 700 DIR`, then FUTURIZE_CACHE=DIR)"
        ),
    )
}

fn cache_error(root: &Path, why: &str) -> Error {
    Error::Setting {
        variable: CACHE_ENV.into(),
        value: root.display().to_string(),
        reason: format!("the cache {} {why}", root.display()),
    }
}

/// A random number from the system, for file names no one else picks.
pub(crate) fn random_u64() -> u64 {
    match crate::protocol::job::random_bytes() {
        Ok(bytes) => u64::from_le_bytes(bytes),
        Err(_) => {
            // Unique enough within this machine: the pid and the time.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            now ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

/// Says something went wrong with the cache that costs only a recompute.
fn warn(text: &str) {
    log::warn!("futurize: {text}");
    eprintln!("futurize: {text}");
}

/// One call's cache: its key, its directory and what earlier runs stored.
pub(crate) struct CallCache {
    call: Key,
    dir: PathBuf,
    /// Each element's key, by index.
    keys: Vec<Key>,
    loaded: store::Loaded,
    writer: std::sync::Arc<Writer>,
}

/// A call's elements: how many, and what writes element `i`'s bytes.
pub(crate) type Elements<'a> = (
    usize,
    &'a mut dyn FnMut(usize, &mut Vec<u8>) -> Result<(), Error>,
);

impl CallCache {
    /// The cache of a call at `spec` with `captures` (their bytes), the
    /// random `streams` of a seeded call, and its elements' bytes; `None`
    /// when caching is off for it.
    pub(crate) fn open(
        spec: Option<&CacheSpec>,
        captures: &[u8],
        streams: Option<&Streams>,
        elements: Elements<'_>,
        label: Option<&str>,
    ) -> Result<Option<CallCache>, Error> {
        let Some(spec) = spec else { return Ok(None) };
        let Some(root) = root_for(spec.asked) else {
            return Ok(None);
        };
        let root = prepared_root(&root)?;
        let site = spec.site;
        let mut h = KeyHasher::new("futurize foreach call");
        h.field(site.crate_name.as_bytes())
            .field(site.module.as_bytes())
            .field(site.file.as_bytes())
            .number(u64::from(site.line))
            .number(site.tokens)
            .field(captures);
        match streams {
            Some(s) => h.field(&crate::protocol::codec::encode(s, "the random streams")?),
            None => h.field(b"unseeded"),
        };
        if spec.asked == CacheMode::Build {
            h.field(crate::protocol::identity::build_id());
        }
        let call = h.finish();
        let (count, write) = elements;
        let mut keys = Vec::with_capacity(count);
        let mut bytes = Vec::new();
        let mut element = KeyHasher::new("futurize element");
        element.number(call as u64).number((call >> 64) as u64);
        for i in 0..count {
            bytes.clear();
            write(i, &mut bytes)?;
            let mut e = element.clone();
            e.field(&bytes);
            if streams.is_some() {
                e.number(i as u64);
            }
            keys.push(e.finish());
        }
        let dir = root.join(key::hex(call));
        prepare_own_root(&dir).map_err(|why| root_refused(&dir, &why))?;
        let loaded = store::load(&dir, call);
        let writer = std::sync::Arc::new(Writer {
            call,
            dir: dir.clone(),
            batch: std::sync::Mutex::new(Batch {
                chunk: StoredChunk::default(),
                written: std::time::Instant::now()
                    .checked_sub(WRITE_EVERY)
                    .unwrap_or_else(std::time::Instant::now),
                thread: false,
                open: true,
            }),
            wake: std::sync::Condvar::new(),
        });
        let cache = CallCache {
            call,
            dir,
            keys,
            loaded,
            writer,
        };
        cache.describe(site, label);
        Ok(Some(cache))
    }

    /// Writes the call's description ([`CALL_INFO`]) for status reports
    /// from outside the program; a failure costs only the report.
    fn describe(&self, site: &CallSite, label: Option<&str>) {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let text = format!(
            "site {}:{}\nmodule {}\ncrate {}\nlabel {}\nelements {}\ndurable {}\nupdated {now}\n\
             leader {}:{}\n",
            site.file,
            site.line,
            site.module,
            site.crate_name,
            label.unwrap_or("-").replace('\n', " "),
            self.keys.len(),
            key::hex(self.durable_key()),
            host.trim(),
            std::process::id()
        );
        let temporary = self.dir.join(format!(".{:016x}.info", random_u64()));
        let written = store::create_new(&temporary)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .and_then(|()| std::fs::rename(&temporary, self.dir.join(CALL_INFO)));
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
    }

    /// The call's key together with every element's: what a rerun of the
    /// very same call (same elements too) shares, for work that outlives
    /// the leader to be found again (`Backend::resume`).
    pub(crate) fn durable_key(&self) -> Key {
        KeyHasher::new("futurize durable call")
            .keys(&[self.call])
            .keys(&self.keys)
            .finish()
    }

    /// The stored value of element `i`, if the cache holds it.
    pub(crate) fn lookup(&self, i: usize) -> Option<&[u8]> {
        let found = self.loaded.by_key.get(&self.keys[i])?;
        Some(self.loaded.value(*found))
    }

    /// What stored chunks printed and logged, at the index of their first
    /// element: only for chunks all of whose values are this call's, in
    /// order.
    pub(crate) fn outputs(&self) -> Vec<(usize, Output, Vec<LogRecord>)> {
        let mut outputs = Vec::new();
        if self.loaded.chunks.iter().all(|c| c.outputs.is_empty()) {
            return outputs;
        }
        let index: std::collections::HashMap<Key, usize> =
            self.keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
        for chunk in &self.loaded.chunks {
            for p in &chunk.outputs {
                let at: Option<Vec<usize>> = chunk.keys[p.at..p.at + p.n]
                    .iter()
                    .map(|k| index.get(k).copied())
                    .collect();
                if let Some(first) = at.and_then(|a| a.into_iter().min()) {
                    outputs.push((first, p.output.clone(), p.logs.clone()));
                }
            }
        }
        outputs.sort_by_key(|(i, _, _)| *i);
        outputs
    }

    /// Keeps the values of the elements `values` (index, bytes) of a
    /// finished chunk, with what it printed. They are written with the
    /// values kept since the last write: at once when nothing was written
    /// for [`WRITE_EVERY`], else by the call's writer thread that long after
    /// the last write (many small chunks make few files; a killed leader
    /// loses at most what finished in that time). A failure to write is a
    /// warning: the values are still returned, only not kept.
    pub(crate) fn store(&self, values: &[(usize, Vec<u8>)], output: &Output, logs: &[LogRecord]) {
        if values.is_empty() {
            return;
        }
        let mut batch = crate::sync::lock(&self.writer.batch);
        let at = batch.chunk.keys.len();
        for (i, bytes) in values {
            if let Err(e) = batch.chunk.push(self.keys[*i], bytes) {
                warn(&format!("a value is not cached: {e}"));
                return;
            }
        }
        if !output.is_empty() || !logs.is_empty() {
            batch.chunk.outputs.push(store::Printed {
                at,
                n: values.len(),
                output: output.clone(),
                logs: logs.to_vec(),
            });
        }
        if batch.written.elapsed() >= WRITE_EVERY || batch.chunk.keys.len() >= WRITE_AT {
            self.writer.write(&mut batch);
        } else {
            self.writer.wake.notify_one();
            if !batch.thread {
                batch.thread = true;
                let writer = self.writer.clone();
                let _ = std::thread::Builder::new()
                    .name("futurize-cache".into())
                    .spawn(move || writer.run());
            }
        }
    }
}

impl Drop for CallCache {
    fn drop(&mut self) {
        let mut batch = crate::sync::lock(&self.writer.batch);
        batch.open = false;
        self.writer.write(&mut batch);
        self.writer.wake.notify_one();
    }
}

/// Writes a call's kept values: now, or from its thread once they waited
/// [`WRITE_EVERY`].
struct Writer {
    call: Key,
    dir: PathBuf,
    batch: std::sync::Mutex<Batch>,
    wake: std::sync::Condvar,
}

/// Values kept and not yet written, and when the last write was.
struct Batch {
    chunk: StoredChunk,
    written: std::time::Instant,
    /// The writer thread runs.
    thread: bool,
    /// The call still runs (its cache is not dropped).
    open: bool,
}

impl Writer {
    fn write(&self, batch: &mut Batch) {
        batch.written = std::time::Instant::now();
        if batch.chunk.keys.is_empty() {
            return;
        }
        let chunk = std::mem::take(&mut batch.chunk);
        if let Err(e) = store::write_chunk(&self.dir, self.call, &chunk) {
            warn(&format!("a chunk's values are not cached: {e}"));
        }
    }

    /// The writer thread: writes what waited [`WRITE_EVERY`], until the
    /// call's cache is dropped.
    fn run(&self) {
        let mut batch = crate::sync::lock(&self.batch);
        while batch.open {
            let waited = batch.written.elapsed();
            if !batch.chunk.keys.is_empty() && waited >= WRITE_EVERY {
                self.write(&mut batch);
                continue;
            }
            let pause = if batch.chunk.keys.is_empty() {
                WRITE_EVERY
            } else {
                WRITE_EVERY - waited
            };
            batch = self
                .wake
                .wait_timeout(batch, pause)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Values finished within this of the last write wait for the next one (so
/// that many small chunks make few files); a killed leader loses at most
/// what finished in this time.
const WRITE_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// A batch of this many values is written at once.
const WRITE_AT: usize = 1 << 16;
