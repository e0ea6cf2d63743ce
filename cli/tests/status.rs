//! `futurize status` and `futurize remove` on a cache a program just
//! filled, with a Slurm jobs record beside it, read from another process.

use futurize::prelude::*;
use std::process::Command;

fn futurize_command(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_futurize"))
        .args(args)
        .env_remove("FUTURIZE_CACHE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn status_shows_a_calls_elements_and_jobs_and_remove_deletes_them() {
    let dir = std::env::temp_dir().join(format!("futurize-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (cache, registry) = (dir.join("cache"), dir.join("registry"));
    // SAFETY: the only test of this binary, before anything reads the
    // environment (futurize reads FUTURIZE_CACHE once, at its first call).
    unsafe { std::env::set_var("FUTURIZE_CACHE", &cache) };
    // Six elements succeed (their values are kept), four fail.
    let results: Vec<Result<u64, futurize::Error>> = foreach!(i in 0..10u64 => {
        assert!(i < 6, "element {i} fails");
        i * i
    } %dofuture% cache = true, errors = "pass", label = "fits")
    .unwrap();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 6);
    let calls = futurize::cache::calls(Some(&cache)).unwrap();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!((call.done, call.elements), (6, Some(10)));
    // The four failed elements' job, as a Slurm run records it (its id is
    // unknown to any squeue: gone without an answer).
    let jobs = registry.join(format!("cached-{}", call.durable.as_ref().unwrap()));
    std::fs::create_dir_all(&jobs).unwrap();
    std::fs::write(jobs.join("jobs"), "call0 00 chunk-1 999999_1 6 10\n").unwrap();
    let (c, r) = (cache.to_str().unwrap(), registry.to_str().unwrap());
    let (ok, out) = futurize_command(&["status", "--cache", c, "--registry", r]);
    assert!(ok, "{out}");
    assert!(out.contains("1 call"), "{out}");
    let line = out.lines().find(|l| l.contains("fits")).expect(&out);
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words[1].starts_with("cli/tests/status.rs:"), "{line}");
    assert_eq!(&words[3..8], ["10", "6", "0", "4", "0"], "{line}");
    assert!(line.contains("999999_1 GONE"), "{line}");
    let prefix = &call.key[..10];
    let (ok, out) = futurize_command(&["remove", prefix, "--cache", c, "--registry", r]);
    assert!(ok, "{out}");
    assert!(out.contains(&call.key), "{out}");
    assert!(!jobs.exists());
    let (ok, out) = futurize_command(&["status", "--cache", c, "--registry", r]);
    assert!(ok && out.contains("0 calls"), "{out}");
    let (ok, out) = futurize_command(&["remove", "ffff", "--cache", c]);
    assert!(
        !ok && out.contains("holds no call whose key starts with `ffff`"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
