//! Keeps the room list of `docs/design.md` true: every source file of the
//! runtime and the macros is named there, and every file named there exists.
//!
//! The convention the page follows:
//!
//! * A room list is the text between a line `<!-- rooms: DIR -->` and the
//!   next line `<!-- end rooms -->`, `DIR` a directory from the workspace
//!   root (`runtime/src`, `macros/src`). Both are required; another crate
//!   may add a list of its own.
//! * Inside a list, a file is named as a code span holding its path from
//!   `DIR`, with `/` between folders and the `.rs` ending: `lib.rs`,
//!   `plan/mod.rs`, `backend/processes/outbox.rs`. A `mod.rs` is named as such
//!   (`plan/` names the folder, not the file). Any other code span (`Error`,
//!   `expand_*`, `<task>.in`) is not a path and is ignored.
//! * Every `.rs` file under `DIR` must be named at least once in its list,
//!   and every path named in a list must be a file under `DIR`. Fenced code
//!   blocks inside a list are skipped.
//!
//! When this test fails, add the missing file to its list with one line
//! saying what it holds, or drop the line of a file that is gone.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The source directories that must have a room list.
const REQUIRED: [&str; 2] = ["runtime/src", "macros/src"];

const OPEN: &str = "<!-- rooms: ";
const CLOSE: &str = "<!-- end rooms -->";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runtime crate sits in the workspace")
        .to_path_buf()
}

/// The room lists of a page: each directory with the text of its list.
fn room_lists(page: &str) -> Result<Vec<(String, String)>, String> {
    let mut lists = Vec::new();
    let mut open: Option<(String, String)> = None;
    for (n, line) in page.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix(OPEN) {
            let dir = rest
                .strip_suffix("-->")
                .ok_or_else(|| format!("line {}: `{trimmed}` does not end in `-->`", n + 1))?
                .trim();
            if let Some((dir, _)) = &open {
                return Err(format!(
                    "line {}: the room list of {dir} is not closed",
                    n + 1
                ));
            }
            open = Some((dir.to_string(), String::new()));
        } else if trimmed == CLOSE {
            let list = open
                .take()
                .ok_or_else(|| format!("line {}: `{CLOSE}` without a list open", n + 1))?;
            lists.push(list);
        } else if let Some((_, text)) = &mut open {
            text.push_str(line);
            text.push('\n');
        }
    }
    if let Some((dir, _)) = open {
        return Err(format!("the room list of {dir} is not closed by `{CLOSE}`"));
    }
    Ok(lists)
}

/// The paths of `.rs` files that a list names, as written.
fn named_files(list: &str) -> BTreeSet<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in list.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| is_source_path(span))
        .map(str::to_string)
        .collect()
}

/// `a/b/c.rs`: segments of letters, digits and `_`, ending in `.rs`.
fn is_source_path(span: &str) -> bool {
    span.strip_suffix(".rs").is_some_and(|stem| {
        stem.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

/// Every `.rs` file under `dir`, as a path from `dir` with `/` separators.
fn source_files(dir: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, prefix: &str, found: &mut BTreeSet<String>) {
        let entries =
            fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("a directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = format!("{prefix}{name}");
            let kind = entry.file_type().expect("a file type");
            if kind.is_dir() {
                walk(&entry.path(), &format!("{path}/"), found);
            } else if name.ends_with(".rs") {
                found.insert(path);
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(dir, "", &mut found);
    found
}

/// What is wrong with the lists of `page` against the files under `root`.
fn problems(page: &str, root: &Path) -> Vec<String> {
    let lists = match room_lists(page) {
        Ok(lists) => lists,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for dir in REQUIRED {
        if !lists.iter().any(|(d, _)| d == dir) {
            problems.push(format!(
                "no room list for {dir} (`{OPEN}{dir} -->` … `{CLOSE}`)"
            ));
        }
    }
    for (dir, list) in &lists {
        let on_disk = source_files(&root.join(dir));
        let named = named_files(list);
        let missing: Vec<_> = on_disk.difference(&named).collect();
        let gone: Vec<_> = named.difference(&on_disk).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "the room list of {dir} does not name these files: {}",
                join(&missing)
            ));
        }
        if !gone.is_empty() {
            problems.push(format!(
                "the room list of {dir} names files that do not exist there: {}",
                join(&gone)
            ));
        }
    }
    problems
}

fn join(paths: &[&String]) -> String {
    paths
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn design_names_every_source_file_and_no_other() {
    let root = workspace_root();
    let page_path = root.join("docs/design.md");
    let page = fs::read_to_string(&page_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", page_path.display()));
    let problems = problems(&page, &root);
    assert!(
        problems.is_empty(),
        "docs/design.md is out of date with the sources:\n- {}\n(convention: runtime/tests/design_rooms.rs)",
        problems.join("\n- ")
    );
}

#[test]
fn the_convention_reads_paths_and_nothing_else() {
    let page = "intro `lib.rs` outside\n\
                <!-- rooms: runtime/src -->\n\
                - `lib.rs`: root. `plan/`: a folder, `plan/mod.rs` its file.\n\
                - `expand_*`, `<task>.in`, `Error`, `a b.rs`, `x.rs.bak` are not paths;\n\
                  a span may `end\nacross` a line.\n\
                ```\n`fenced.rs`\n```\n\
                <!-- end rooms -->\n";
    let lists = room_lists(page).unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].0, "runtime/src");
    let named: Vec<_> = named_files(&lists[0].1).into_iter().collect();
    assert_eq!(named, ["lib.rs", "plan/mod.rs"]);
    assert!(room_lists("<!-- rooms: x -->\n").is_err());
    assert!(room_lists("<!-- end rooms -->\n").is_err());
}
