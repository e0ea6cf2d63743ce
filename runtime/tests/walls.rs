//! The walls between the runtime's sides, kept by a test rather than by a
//! comment: the worker side never reaches into the leader side, the wire
//! protocol into either, and what both sides share into neither.
//!
//! The sides are those of the module docs of `runtime/src/lib.rs` and of
//! docs/design.md ("The rooms"). The rules:
//!
//! * a file of the worker side may use only shared modules (and its own side);
//! * a file under `protocol/` may use only [`PROTOCOL_MAY_USE`];
//! * a file of a shared module may use only shared modules;
//! * a file of the leader side may not use the worker side;
//! * `startup.rs` is the joint, where the two sides meet: it may use any.
//!
//! "Uses" means a path through `crate::` (or `$crate::`), or a `super::`
//! path that climbs out of the file's module, in a `use` (grouped or spread
//! over lines: `use crate::{a, b::{c, d}}`) or anywhere in the code; comments
//! and string literals do not count. A name that `lib.rs` re-exports at the
//! root (`crate::Error`) counts as its module (`error`), and a
//! `#[macro_export]` macro as the module that defines it. Every module that
//! `lib.rs` declares must be placed on a side below, so a new module is
//! placed before it can be used.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The leader side: the process that runs `main` and hands work out.
const LEADER: &[&str] = &[
    "active",
    "attr_errors",
    "future",
    "many_futures",
    "collect",
    "session",
    "trace",
    "map",
    "backend",
    "progress",
    "cache",
];

/// The worker side: a worker process's serve loop, and a Slurm job's.
const WORKER: &[&str] = &["worker"];

/// What both sides use. `settings` is listed ahead of its file.
const SHARED: &[&str] = &[
    "error", "plan", "cores", "rng", "sync", "protocol", "body", "relay", "settings",
];

/// Where the sides meet: the take-over before `main`.
const JOINT: &[&str] = &["startup"];

/// What the wire protocol may use besides itself: the error type, the plain
/// data of a random stream (`Streams`), the poison-tolerant lock (for
/// `protocol/bulk.rs`'s spare buffers), and `Settings`, the plain data of how
/// a task runs, which the run message carries.
const PROTOCOL_MAY_USE: &[&str] = &["error", "rng", "sync", "settings"];

/// Uses that break a rule today and are known: (file from `runtime/src`,
/// module used, why it is allowed for now). Empty: every rule holds. An
/// entry here is a debt to pay, not a rule.
const KNOWN_EXCEPTIONS: &[(&str, &str, &str)] = &[];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Leader,
    Worker,
    Shared,
    Joint,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Leader => "the leader side",
            Side::Worker => "the worker side",
            Side::Shared => "shared",
            Side::Joint => "the joint",
        })
    }
}

fn side_of(module: &str) -> Option<Side> {
    let sides = [
        (LEADER, Side::Leader),
        (WORKER, Side::Worker),
        (SHARED, Side::Shared),
        (JOINT, Side::Joint),
    ];
    sides
        .iter()
        .find(|(modules, _)| modules.contains(&module))
        .map(|&(_, side)| side)
}

// ---------------------------------------------------------------------------
// Tokens: identifiers, `::` and single punctuation, with their line;
// comments, strings, characters, lifetimes and numbers left out.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

fn tokenize(source: &str) -> Vec<(Tok, usize)> {
    let s: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips from `i` (just past an opening quote) to past the closing `"`.
    let skip_string = |mut i: usize, line: &mut usize| {
        while i < s.len() && s[i] != '"' {
            if s[i] == '\\' {
                i += 1;
            }
            if i < s.len() && s[i] == '\n' {
                *line += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < s.len() {
        let c = s[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && s.get(i + 1) == Some(&'/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && s.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if s[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(i + 1, &mut line);
        } else if c == '\'' {
            if s.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if s.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1; // a lifetime: its name follows as an identifier
            }
        } else if c.is_ascii_digit() {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '_') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let raw_prefix = matches!(word.as_str(), "r" | "br" | "cr");
            let quoted_prefix = matches!(word.as_str(), "b" | "c");
            let raw_ident = word == "r"
                && s.get(i) == Some(&'#')
                && s.get(i + 1).is_some_and(|c| c.is_alphabetic() || *c == '_');
            if raw_ident {
                i += 1; // `r#type`: the identifier follows
            } else if raw_prefix && matches!(s.get(i), Some('"') | Some('#')) {
                let mut hashes = 0;
                while s.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                i += 1; // the opening quote
                loop {
                    if i >= s.len() {
                        break;
                    }
                    if s[i] == '\n' {
                        line += 1;
                    }
                    if s[i] == '"' && (0..hashes).all(|k| s.get(i + 1 + k) == Some(&'#')) {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
            } else if quoted_prefix && s.get(i) == Some(&'"') {
                i = skip_string(i + 1, &mut line);
            } else if word == "b" && s.get(i) == Some(&'\'') {
                // b'x' or b'\n': the quote arm below does the rest
            } else {
                out.push((Tok::Ident(word), line));
            }
        } else if c == ':' && s.get(i + 1) == Some(&':') {
            out.push((Tok::PathSep, line));
            i += 2;
        } else if c == '$' {
            i += 1; // `$crate` in a macro is `crate`
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(w), _)) => Some(w),
        _ => None,
    }
}

fn is(t: Option<&(Tok, usize)>, want: &Tok) -> bool {
    t.is_some_and(|(tok, _)| tok == want)
}

// ---------------------------------------------------------------------------
// Paths: the leaves of each `use` tree, and `crate::`/`super::` paths in code.

/// A path as written, with the module it was written in and its line.
#[derive(Debug, Clone)]
struct UsePath {
    /// The module the path is written in, from the crate root.
    within: Vec<String>,
    /// The segments as written (`crate`, `super`, `self` included).
    segments: Vec<String>,
    /// What the leaf is called where it is imported (its alias, or its
    /// last segment).
    name: String,
    line: usize,
}

/// Reads the use tree at `i`, under `prefix`; returns where it ends.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    mut prefix: Vec<String>,
    within: &[String],
    out: &mut Vec<UsePath>,
) -> usize {
    let line = toks.get(i).map_or(0, |t| t.1);
    if is(toks.get(i), &Tok::PathSep) {
        i += 1; // `use ::std::…`
    }
    loop {
        match toks.get(i) {
            Some((Tok::Punct('{'), _)) => {
                i += 1;
                while i < toks.len() && !is(toks.get(i), &Tok::Punct('}')) {
                    i = use_tree(toks, i, prefix.clone(), within, out);
                    if is(toks.get(i), &Tok::Punct(',')) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some((Tok::Punct('*'), _)) => {
                prefix.push("*".into());
                out.push(UsePath {
                    within: within.to_vec(),
                    name: "*".into(),
                    segments: prefix,
                    line,
                });
                return i + 1;
            }
            Some((Tok::Ident(word), _)) => {
                prefix.push(word.clone());
                i += 1;
                if is(toks.get(i), &Tok::PathSep) {
                    i += 1;
                    continue;
                }
                if word == "self" {
                    prefix.pop(); // `{self, …}` names the prefix itself
                }
                let mut name = prefix.last().cloned().unwrap_or_default();
                if ident(toks.get(i)) == Some("as") {
                    name = ident(toks.get(i + 1)).unwrap_or("_").to_string();
                    i += 2;
                }
                out.push(UsePath {
                    within: within.to_vec(),
                    segments: prefix,
                    name,
                    line,
                });
                return i;
            }
            _ => return i + 1,
        }
    }
}

/// Every path a file's code names: `use` leaves, and `crate::…` or
/// `super::…` paths anywhere else. `module` is the file's module.
fn paths_in(source: &str, module: &[String]) -> Vec<UsePath> {
    let toks = tokenize(source);
    let mut out = Vec::new();
    // Inline modules: (name, brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        let within: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(m, _)| m.clone()))
            .collect();
        match &toks[i].0 {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
                i += 1;
            }
            Tok::Ident(w) if w == "mod" => match (ident(toks.get(i + 1)), toks.get(i + 2)) {
                (Some(name), Some((Tok::Punct('{'), _))) => {
                    inline.push((name.to_string(), depth + 1));
                    depth += 1;
                    i += 3;
                }
                _ => i += 1,
            },
            Tok::Ident(w) if w == "use" => {
                let mut leaves = Vec::new();
                i = use_tree(&toks, i + 1, Vec::new(), &within, &mut leaves);
                out.extend(leaves);
            }
            Tok::Ident(w)
                if (w == "crate" || w == "super") && is(toks.get(i + 1), &Tok::PathSep) =>
            {
                let line = toks[i].1;
                let mut segments = vec![w.clone()];
                i += 1;
                while is(toks.get(i), &Tok::PathSep) {
                    match ident(toks.get(i + 1)) {
                        Some(next) => {
                            segments.push(next.to_string());
                            i += 2;
                        }
                        None => break,
                    }
                }
                let name = segments.last().cloned().unwrap_or_default();
                out.push(UsePath {
                    within,
                    segments,
                    name,
                    line,
                });
            }
            _ => i += 1,
        }
    }
    out
}

/// The path from the crate root that `path` names, when it starts with
/// `crate` or climbs with `super`; `None` for other paths (a dependency, a
/// name in scope, `self::…`).
fn absolute(path: &UsePath) -> Option<Vec<String>> {
    let first = path.segments.first()?;
    if first == "crate" {
        return Some(path.segments[1..].to_vec());
    }
    if first != "super" {
        return None;
    }
    let mut base = path.within.clone();
    let mut rest = &path.segments[..];
    while rest.first().is_some_and(|s| s == "super") {
        base.pop()?;
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

// ---------------------------------------------------------------------------
// The crate: its modules, and what its root re-exports.

struct Crate {
    src: PathBuf,
    /// The modules `lib.rs` declares.
    modules: Vec<String>,
    /// Names at the crate root that come from a module: `pub use` in
    /// `lib.rs`, and `#[macro_export]` macros.
    root_names: BTreeMap<String, String>,
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `runtime/src/worker/task.rs` → `worker::task`; `plan/mod.rs` → `plan`.
fn module_of(relative: &str) -> Vec<String> {
    let stem = relative.strip_suffix(".rs").unwrap_or(relative);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn source_files(dir: &Path, prefix: &str, found: &mut Vec<String>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().expect("a file type").is_dir() {
            source_files(&entry.path(), &format!("{prefix}{name}/"), found);
        } else if name.ends_with(".rs") {
            found.push(format!("{prefix}{name}"));
        }
    }
}

fn load_crate() -> (Crate, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, "", &mut files);
    files.sort();

    let lib = read(&src.join("lib.rs"));
    let toks = tokenize(&lib);
    let mut modules = Vec::new();
    let mut depth = 0;
    for (k, (tok, _)) in toks.iter().enumerate() {
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth -= 1,
            Tok::Ident(w) if w == "mod" && depth == 0 => {
                if let (Some(name), true) = (
                    ident(toks.get(k + 1)),
                    is(toks.get(k + 2), &Tok::Punct(';')),
                ) {
                    modules.push(name.to_string());
                }
            }
            _ => {}
        }
    }
    let mut root_names = BTreeMap::new();
    for path in paths_in(&lib, &[]) {
        if path.within.is_empty()
            && let Some(first) = path.segments.first()
            && modules.contains(first)
        {
            root_names.insert(path.name.clone(), first.clone());
        }
    }
    for file in &files {
        let toks = tokenize(&read(&src.join(file)));
        for k in 0..toks.len() {
            let exported = ident(toks.get(k)) == Some("macro_export")
                && ident(toks.get(k + 2)) == Some("macro_rules");
            if exported && let Some(name) = ident(toks.get(k + 4)) {
                let owner = module_of(file).first().cloned().unwrap_or_default();
                root_names.insert(name.to_string(), owner);
            }
        }
    }
    (
        Crate {
            src,
            modules,
            root_names,
        },
        files,
    )
}

impl Crate {
    /// The module at the top of an absolute path: `protocol` for
    /// `protocol::wire::X`, `error` for `Error`; `Err` when the first
    /// segment is neither a module nor a re-exported name.
    fn top_module(&self, absolute: &[String]) -> Result<Option<String>, String> {
        let Some(first) = absolute.first() else {
            return Ok(None);
        };
        if self.modules.contains(first) {
            return Ok(Some(first.clone()));
        }
        match self.root_names.get(first) {
            Some(module) => Ok(Some(module.clone())),
            None => Err(first.clone()),
        }
    }
}

// ---------------------------------------------------------------------------
// The rules.

/// Why `user` (a file's top module) may not use `used`, if it may not.
fn forbidden(user: &str, used: &str) -> Option<String> {
    if user == used {
        return None;
    }
    let (Some(user_side), Some(used_side)) = (side_of(user), side_of(used)) else {
        return Some(format!("`{used}` is on no side"));
    };
    if user == "protocol" {
        return (!PROTOCOL_MAY_USE.contains(&used)).then(|| {
            format!(
                "the protocol may use only {} (`{used}` is {used_side})",
                PROTOCOL_MAY_USE.join(", ")
            )
        });
    }
    match (user_side, used_side) {
        (Side::Joint, _) => None,
        (Side::Worker, Side::Leader | Side::Joint) => {
            Some(format!("the worker side uses `{used}` ({used_side})"))
        }
        (Side::Shared, Side::Leader | Side::Worker | Side::Joint) => {
            Some(format!("a shared module uses `{used}` ({used_side})"))
        }
        (Side::Leader, Side::Worker | Side::Joint) => {
            Some(format!("the leader side uses `{used}` ({used_side})"))
        }
        _ => None,
    }
}

/// Every broken rule, as `file:line: why`.
fn breaches(krate: &Crate, files: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files {
        if file == "lib.rs" {
            continue;
        }
        let module = module_of(file);
        let user = &module[0];
        let source = read(&krate.src.join(file));
        for path in paths_in(&source, &module) {
            let Some(absolute) = absolute(&path) else {
                continue;
            };
            let used = match krate.top_module(&absolute) {
                Ok(Some(used)) => used,
                Ok(None) => continue,
                Err(name) => {
                    found.push(format!(
                        "{file}:{}: `{}`: `{name}` is neither a module of lib.rs nor a name \
                         it re-exports",
                        path.line,
                        path.segments.join("::"),
                    ));
                    continue;
                }
            };
            let excepted = KNOWN_EXCEPTIONS
                .iter()
                .any(|(f, m, _)| *f == file && *m == used);
            if let Some(why) = forbidden(user, &used)
                && !excepted
            {
                found.push(format!(
                    "{file}:{}: {why}: `{}`",
                    path.line,
                    path.segments.join("::")
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_module_is_on_a_side() {
    let (krate, _) = load_crate();
    let unplaced: Vec<_> = krate
        .modules
        .iter()
        .filter(|m| side_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules of runtime/src/lib.rs on no side (place them in runtime/tests/walls.rs): {unplaced:?}"
    );
}

#[test]
fn no_side_reaches_through_a_wall() {
    let (krate, files) = load_crate();
    let found = breaches(&krate, &files);
    assert!(
        found.is_empty(),
        "uses through a wall (runtime/tests/walls.rs says which side may use what):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn known_exceptions_still_happen() {
    // An exception whose use is gone is dropped from the list, so the list
    // shows the debt as it is.
    let (krate, files) = load_crate();
    for (file, used, _) in KNOWN_EXCEPTIONS {
        assert!(files.iter().any(|f| f == file), "{file} no longer exists");
        let module = module_of(file);
        let source = read(&krate.src.join(file));
        let still = paths_in(&source, &module).iter().any(|p| {
            absolute(p)
                .is_some_and(|a| krate.top_module(&a).ok().flatten().as_deref() == Some(used))
        });
        assert!(
            still,
            "{file} no longer uses `{used}`: drop it from KNOWN_EXCEPTIONS"
        );
    }
}

#[test]
fn the_scan_reads_uses_as_rust_does() {
    let source = r##"
        //! `crate::map` in a doc comment does not count.
        use crate::{
            error::Error,
            protocol::{wire, codec::{self as c}},
        };
        use super::inbox::InboxMap;
        /* crate::active in a block /* nested */ comment */
        fn f<'a>(x: &'a str) -> char {
            let _ = "crate::session in a string";
            let _ = r#"crate::trace in a raw "string""#;
            let _ = crate::rng::Streams::from_seed(1);
            let _ = super::super::Plan::default();
            pub(crate) struct S;
            '{'
        }
        mod tests {
            use super::super::task::send;
        }
    "##;
    let module = vec!["worker".to_string(), "mem".to_string()];
    let found: Vec<String> = paths_in(source, &module)
        .iter()
        .filter_map(absolute)
        .map(|a| a.join("::"))
        .collect();
    assert_eq!(
        found,
        [
            "error::Error",
            "protocol::wire",
            "protocol::codec",
            "worker::inbox::InboxMap",
            "rng::Streams::from_seed",
            "Plan::default",
            "worker::task::send",
        ]
    );
    assert!(forbidden("worker", "map").is_some());
    assert!(forbidden("worker", "body").is_none());
    assert!(forbidden("protocol", "body").is_some());
    assert!(forbidden("protocol", "sync").is_none());
    assert!(forbidden("body", "progress").is_some());
    assert!(forbidden("backend", "worker").is_some());
    assert!(forbidden("startup", "worker").is_none());
}
