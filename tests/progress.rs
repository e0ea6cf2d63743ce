//! `progress = true`: the bar moves while chunks run (elements finishing on
//! workers, `progress!()` steps), before the call ends; it stays off when
//! stderr is not a terminal unless `FUTURIZE_PROGRESS=1` forces it.

use futurize::prelude::*;
use std::process::Command;

#[test]
fn child_long_call() {
    if std::env::var_os("FUTURIZE_TEST_PROGRESS").is_none() {
        return;
    }
    // One chunk of 20 elements: a bar moved only at chunk ends would jump
    // from 0 to 20.
    let values: Vec<u32> = foreach!(i in 0..20u32 => {
        std::thread::sleep(std::time::Duration::from_millis(50));
        progress!("halfway through {i}");
        std::thread::sleep(std::time::Duration::from_millis(50));
        i
    } %dofuture% progress = true, chunk_size = 20, label = "long")
    .unwrap();
    assert_eq!(values, (0..20).collect::<Vec<_>>());
    eprintln!("CALL ENDED");
}

/// The child's stderr, up to the end of its call.
fn stderr_of_child(plan: &str, progress: Option<&str>) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_long_call",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FUTURIZE_TEST_PROGRESS", "1")
        .env("FUTURIZE_PLAN", plan)
        .env_remove("FUTURIZE_PROGRESS");
    if let Some(p) = progress {
        command.env("FUTURIZE_PROGRESS", p);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let end = stderr.find("CALL ENDED").expect("the call ended");
    stderr[..end].to_string()
}

/// The positions the bar showed, in order.
fn positions(stderr: &str) -> Vec<u32> {
    stderr
        .lines()
        .filter_map(|l| {
            let (before, _) = l.split_once("/20 elements")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn forced_progress_moves_within_a_chunk_before_the_call_ends() {
    for plan in ["multiprocess:2", "multithread:2", "sequential"] {
        let stderr = stderr_of_child(plan, Some("1"));
        let seen = positions(&stderr);
        assert!(
            seen.iter().any(|p| *p > 0 && *p < 20),
            "{plan}: no update inside the chunk: {stderr}"
        );
        assert_eq!(seen.last(), Some(&20), "{plan}: {stderr}");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{plan}: {seen:?}");
        assert!(
            stderr.contains("long "),
            "{plan}: the label prefixes the bar"
        );
        assert!(
            stderr.contains("steps · halfway through"),
            "{plan}: progress!() steps and their message show: {stderr}"
        );
    }
}

#[test]
fn without_a_terminal_the_bar_is_off_unless_forced() {
    let stderr = stderr_of_child("multiprocess:2", None);
    assert!(positions(&stderr).is_empty(), "{stderr}");
    let stderr = stderr_of_child("multiprocess:2", Some("0"));
    assert!(positions(&stderr).is_empty(), "{stderr}");
}

/// `examples/progress.rs`, built by `cargo test` with the other examples (or
/// here, when only this test was built).
fn progress_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let example = profile_dir.join("examples").join("progress");
    if !example.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "progress", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    example
}

#[test]
fn the_progress_example_shows_updates_before_its_call_ends() {
    let out = Command::new(progress_example())
        .arg("16")
        .env("FUTURIZE_PROGRESS", "1")
        .env("FUTURIZE_PLAN", "multiprocess:2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let end = stderr.find("the call has ended").expect("the call ended");
    let seen: Vec<u32> = stderr[..end]
        .lines()
        .filter_map(|l| {
            let (before, _) = l.split_once("/16 elements")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    assert!(seen.iter().any(|p| *p > 0 && *p < 16), "{stderr}");
    assert_eq!(seen.last(), Some(&16), "{stderr}");
    assert!(stderr[..end].contains("steps · replicate"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("16 replicates on multiprocess:2"),
        "{stdout}"
    );
}
