//! The README read by a newcomer: a crate made only of what its "Use it in
//! your crate" section says (the `Cargo.toml` lines and `src/main.rs`, taken
//! from the README itself) compiles and prints what the README says it
//! prints.
//!
//! The crate is built offline into this workspace's target directory, with
//! this workspace's `Cargo.lock`, so the dependencies already built for the
//! tests are reused and the check takes seconds, not a fresh build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fenced block that follows `<!-- readme-crate: name -->` in the README.
fn block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- readme-crate: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("the README has no {marker}"))
        .1;
    let fence_start = after.find("```").expect("a fenced block after the marker");
    let body = &after[fence_start..];
    let first_line_end = body.find('\n').expect("a fence line");
    let rest = &body[first_line_end + 1..];
    let end = rest.find("\n```").expect("the end of the fenced block");
    rest[..end + 1].to_string()
}

/// This test binary's target directory (`target/debug/deps/this` → `target`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_crate_made_from_the_readme_compiles_and_runs() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(workspace.join("README.md")).unwrap();
    let dependencies = block(&readme, "Cargo.toml");
    assert!(
        dependencies.contains("futurize = { path = \"../futurize\" }"),
        "{dependencies}"
    );
    let dependencies = dependencies.replace(
        "path = \"../futurize\"",
        &format!("path = {:?}", workspace.display().to_string()),
    );
    let dir = std::env::temp_dir().join(format!("futurize-readme-crate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"readme-crate\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [workspace]\n\n{dependencies}"
        ),
    );
    write(&dir.join("src/main.rs"), &block(&readme, "src/main.rs"));
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let out = Command::new(env!("CARGO"))
        .args(["run", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("FUTURIZE_PLAN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]"),
        "{stdout}"
    );
    let dice: Vec<u32> = lines
        .next()
        .and_then(|l| l.strip_prefix('[')?.strip_suffix(']').map(str::to_string))
        .expect("a line of dice")
        .split(", ")
        .map(|d| d.parse().unwrap())
        .collect();
    assert_eq!(dice.len(), 4, "{stdout}");
    assert!(dice.iter().all(|d| (1..=6).contains(d)), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
