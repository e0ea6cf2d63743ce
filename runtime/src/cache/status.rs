//! What the cache holds, for reports from inside the program and from
//! another session (`futurize status`): each call's description
//! ([`CALL_INFO`]), its kept values and size; and removing entries.

use super::key::Key;
use super::{DEFAULT_ROOT, cache_error, from_environment, store};
use crate::Error;
use std::path::{Path, PathBuf};

/// The description of a call in its cache directory: `name value` lines
/// (`site`, `module`, `crate`, `label`, `elements`, `durable`, `updated`,
/// `leader`), rewritten by each run.
pub const CALL_INFO: &str = "call.info";

/// One call as the cache holds it, for a status report.
#[derive(Debug, Clone, Default)]
pub struct CachedCall {
    /// Its key (the name of its directory).
    pub key: String,
    /// Where it is: `file:line`, and its label if it has one.
    pub site: String,
    /// Its `label`, if any.
    pub label: Option<String>,
    /// How many elements its last run had.
    pub elements: Option<usize>,
    /// How many of them have a value kept.
    pub done: usize,
    /// The key under which its Slurm jobs are recorded in a registry
    /// (`cached-<durable>/`).
    pub durable: Option<String>,
    /// Its entry files, and their bytes.
    pub files: usize,
    /// Bytes of its entries.
    pub bytes: u64,
    /// When a run last opened it.
    pub updated: Option<std::time::SystemTime>,
}

/// The calls the cache at `root` holds (`None`: the cache in force), read
/// from their directories: what a status report from another session
/// shows.
///
/// ```
/// for call in futurize::cache::calls(None).unwrap() {
///     println!("{} {} {}/{:?}", call.key, call.site, call.done, call.elements);
/// }
/// ```
pub fn calls(root: Option<&Path>) -> Result<Vec<CachedCall>, Error> {
    let root = root.map_or_else(root_in_force, Path::to_path_buf);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    let mut calls = Vec::new();
    for entry in entries.flatten().filter(|e| e.path().is_dir()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(call) = u128::from_str_radix(&name, 16)
            .ok()
            .filter(|_| name.len() == 32)
        else {
            continue;
        };
        calls.push(read_call(&entry.path(), call, name));
    }
    calls.sort_by_key(|c| std::cmp::Reverse(c.updated));
    Ok(calls)
}

fn read_call(dir: &Path, call: Key, name: String) -> CachedCall {
    let info = std::fs::read_to_string(dir.join(CALL_INFO)).unwrap_or_default();
    let field = |n: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(n)?.strip_prefix(' '))
            .map(str::to_string)
    };
    let loaded = store::load_quietly(dir, call);
    let files: Vec<u64> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|f| f.path().extension().is_some_and(|x| x == "chunk"))
                .filter_map(|f| f.metadata().ok().map(|m| m.len()))
                .collect()
        })
        .unwrap_or_default();
    CachedCall {
        key: name,
        site: field("site").unwrap_or_else(|| "?".into()),
        label: field("label").filter(|l| l != "-"),
        elements: field("elements").and_then(|e| e.parse().ok()),
        done: loaded.by_key.len(),
        durable: field("durable"),
        files: files.len(),
        bytes: files.iter().sum(),
        updated: field("updated")
            .and_then(|u| u.parse().ok())
            .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)),
    }
}

/// Removes the entries of the call whose key starts with `key` from the
/// cache at `root` (`None`: the cache in force); the call's key.
///
/// ```
/// let e = futurize::cache::remove(None, "no-such-call").unwrap_err();
/// assert!(e.to_string().contains("no call"));
/// ```
pub fn remove(root: Option<&Path>, key: &str) -> Result<String, Error> {
    let root = root.map_or_else(root_in_force, Path::to_path_buf);
    let found: Vec<CachedCall> = calls(Some(&root))?
        .into_iter()
        .filter(|c| !key.is_empty() && c.key.starts_with(key))
        .collect();
    match &found[..] {
        [call] => {
            let dir = root.join(&call.key);
            std::fs::remove_dir_all(&dir).map_err(|e| cache_error(&dir, &e.to_string()))?;
            Ok(call.key.clone())
        }
        [] => Err(cache_error(
            &root,
            &format!("holds no call whose key starts with `{key}`"),
        )),
        _ => Err(cache_error(
            &root,
            &format!(
                "holds {} calls whose keys start with `{key}`: give more of it",
                found.len()
            ),
        )),
    }
}

/// What the cache holds: calls, entry files and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheSize {
    /// Calls with entries.
    pub calls: usize,
    /// Entry files (one per finished chunk).
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// The cache root in force: the directory `FUTURIZE_CACHE` names, else
/// `.futurize/cache` of the working directory.
fn root_in_force() -> PathBuf {
    match from_environment() {
        Some(Some(root)) => root,
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// How much the cache in force holds (`FUTURIZE_CACHE`'s directory, else
/// `.futurize/cache`).
///
/// ```
/// let size = futurize::cache::size().unwrap();
/// assert!(size.files >= size.calls);
/// ```
pub fn size() -> Result<CacheSize, Error> {
    let root = root_in_force();
    let mut size = CacheSize::default();
    let Ok(calls) = std::fs::read_dir(&root) else {
        return Ok(size);
    };
    for call in calls.flatten().filter(|e| e.path().is_dir()) {
        let files: Vec<_> = std::fs::read_dir(call.path())
            .map_err(|e| cache_error(&call.path(), &e.to_string()))?
            .flatten()
            .filter(|f| f.path().extension().is_some_and(|x| x == "chunk"))
            .collect();
        if !files.is_empty() {
            size.calls += 1;
        }
        size.files += files.len();
        size.bytes += files
            .iter()
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum::<u64>();
    }
    Ok(size)
}

/// Removes every entry of the cache in force (`FUTURIZE_CACHE`'s
/// directory, else `.futurize/cache`); the next run of every call runs all
/// its elements again.
///
/// ```
/// futurize::cache::clear().unwrap();
/// assert_eq!(futurize::cache::size().unwrap().files, 0);
/// ```
pub fn clear() -> Result<(), Error> {
    let root = root_in_force();
    let Ok(calls) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    for call in calls.flatten() {
        let path = call.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(|e| cache_error(&path, &e.to_string()))?;
        }
    }
    Ok(())
}
