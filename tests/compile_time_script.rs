//! Smoke run of `scripts/compile-time/measure.sh` (compile time and binary
//! size of `foreach!` loops next to plain and rayon loops): two loops, debug
//! only, one timed build. The generated workspace and its target directory
//! live under this build's `CARGO_TARGET_TMPDIR`, so the dependencies
//! (futurize's, rayon's) are compiled once, on the first run, and a later
//! run takes a few seconds. That first run costs 1–3 minutes on two cores
//! (a second target directory: the one `cargo test` holds cannot be shared),
//! so the test is ignored by default:
//! `cargo test --test compile_time_script -- --ignored`.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "builds futurize's dependencies in a target directory of its own (1-3 min on first run)"]
fn measure_script_builds_three_crates_and_prints_a_table() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-time-smoke");
    let out = Command::new("bash")
        .arg(repo.join("scripts/compile-time/measure.sh"))
        .args(["--loops", "2", "--quick", "--dir"])
        .arg(&dir)
        .output()
        .expect("bash runs the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script failed ({}):\n{stderr}\n{stdout}",
        out.status
    );

    // One row per crate, each with a time and two sizes.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(" | debug | "))
        .collect();
    assert_eq!(rows.len(), 3, "three rows in:\n{stdout}");
    for (row, kind) in rows.iter().zip(["plain", "rayon", "futurize"]) {
        assert!(row.starts_with(&format!("| {kind} | debug | ")), "{row}");
        assert_eq!(row.matches(" s |").count(), 3, "median, best, cpu: {row}");
        assert_eq!(row.matches(" MB |").count(), 2, "two sizes: {row}");
    }

    // The three binaries exist and compute the same thing.
    let totals: Vec<String> = ["plain", "rayon", "futurize"]
        .iter()
        .map(|kind| {
            let bin = dir.join("target/debug").join(format!("ct-{kind}"));
            let run = Command::new(&bin)
                .env_remove("FUTURIZE_PLAN")
                .output()
                .unwrap_or_else(|e| panic!("{} runs: {e}", bin.display()));
            assert!(run.status.success(), "{} failed", bin.display());
            String::from_utf8_lossy(&run.stdout).trim().to_string()
        })
        .collect();
    assert!(!totals[0].is_empty());
    assert_eq!(totals[0], totals[1], "plain and rayon agree");
    assert_eq!(totals[0], totals[2], "plain and futurize agree");
}
