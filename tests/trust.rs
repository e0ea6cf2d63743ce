//! What another user on a shared cluster can and cannot do to a futurize
//! run, played for real: root is the victim, `nobody` the other user
//! (`setpriv --reuid=nobody --regid=nogroup --clear-groups`), against a real
//! single-node Slurm and a real sshd on loopback (the project's scripts).
//! Each attack is refused with a clear error, and nothing of the victim's is
//! touched. Cases that need root (to play two users) or Slurm/sshd say
//! SKIPPED when they cannot run.

mod common;

use common::{slurm, sshd};
use futurize::prelude::*;
use futurize::{Error, Slurm};
use std::io::{BufRead, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// True when this test can play a second user (it runs as root and has
/// setpriv); else says why the case is skipped.
fn two_users() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = Path::new("/usr/bin/setpriv").exists();
    if !(root && setpriv) {
        skipped("playing a second user needs root and setpriv (util-linux)");
    }
    root && setpriv
}

/// Runs `script` with sh as `nobody`: whether it succeeded, and its stderr.
fn as_nobody(script: &str) -> (bool, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("setpriv runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futurize-trust-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A template that holds each job for `seconds` before its command runs,
/// so that a test can act while the job waits.
fn holding_template(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.with_extension("template.sh");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nsleep {seconds}\n{{{{command}}}}\n"),
    )
    .unwrap();
    path
}

/// The one call directory that appears in `registry` within a while.
fn call_dir_in(registry: &Path, holding: &str) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(registry).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.join(holding).exists())
        });
        if let Some(dir) = found {
            return dir;
        }
        assert!(
            Instant::now() < deadline,
            "no call directory in {registry:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Cancels the test's jobs still queued or running (they hold a template's
/// sleep).
fn cancel_jobs(name: &str) {
    let _ = Command::new("scancel")
        .args(["--me", "-n", &format!("futurize-{name}")])
        .output();
}

#[test]
fn a_shared_registry_root_is_refused_and_nothing_is_written_there() {
    if !slurm::installed() || !two_users() || slurm::single().is_none() {
        return;
    }
    // A scratch directory every user can write to, as on a cluster.
    let shared = scratch("shared-root");
    std::fs::create_dir_all(&shared).unwrap();
    set_mode(&shared, 0o1777);
    // The other user prepares the names the victim's calls used to get.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let planted = shared.join(format!("{}-{}-future-0", host.trim(), std::process::id()));
    let (ok, err) = as_nobody(&format!("mkdir -m 777 '{}'", planted.display()));
    assert!(ok, "nobody can write to the scratch directory: {err}");
    let _g = with_plan(Slurm::jobs().registry(&shared));
    let e = future!(1 + 1).value().unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Launch { .. }), "{e:?}");
    assert!(
        text.contains("is writable by other users (mode 1777)"),
        "{text}"
    );
    assert!(text.contains("mkdir -m 700"), "{text}");
    // Nothing of the victim's went there, and the planted directory is
    // still empty.
    let entries: Vec<_> = std::fs::read_dir(&shared).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(std::fs::read_dir(&planted).unwrap().count(), 0);
    std::fs::remove_dir_all(&shared).unwrap();
}

#[test]
fn another_user_can_neither_read_nor_plant_in_a_running_calls_directory() {
    if !slurm::installed() || !two_users() || slurm::single().is_none() {
        return;
    }
    // The victim's own directory inside a shared scratch directory.
    let shared = scratch("shared-scratch");
    std::fs::create_dir_all(&shared).unwrap();
    set_mode(&shared, 0o1777);
    let registry = shared.join("victim");
    let template = holding_template(&shared, 3);
    let _g = with_plan(Slurm::jobs().registry(&registry).template(&template));
    let secret = String::from("the victim's capture");
    let f = future!(secret.len(), label = "trust-read");
    let dir = call_dir_in(&registry, "future.in");
    // Created 0700 by futurize, files 0600 (the script 0700).
    assert_eq!(std::fs::metadata(&registry).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    let input = dir.join("future.in");
    assert_eq!(std::fs::metadata(&input).unwrap().mode() & 0o777, 0o600);
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    for attack in [
        format!("cat '{}'", input.display()),
        format!("ls '{}'", dir.display()),
        format!("ls '{}'", registry.display()),
        format!("mkdir '{}/{name}-x'", registry.display()),
        format!("ln -s /etc/passwd '{}/future.out'", dir.display()),
        format!("echo forged > '{}/future.out'", dir.display()),
    ] {
        let (ok, err) = as_nobody(&attack);
        assert!(!ok, "nobody could `{attack}`");
        assert!(err.contains("Permission denied"), "{attack}: {err}");
    }
    assert_eq!(f.value().unwrap(), secret.len());
    assert_eq!(std::fs::read_dir(&registry).unwrap().count(), 0);
    std::fs::remove_dir_all(&shared).unwrap();
}

#[test]
fn a_stale_answer_is_refused_naming_the_job_and_file_and_the_registry_is_kept() {
    let Some(_) = slurm::single() else { return };
    let registry = scratch("stale");
    let template = holding_template(&registry, 4);
    let _g = with_plan(Slurm::jobs().registry(&registry).template(&template));
    let f = future!(55u64, label = "trust-stale");
    let dir = call_dir_in(&registry, "future.in");
    // An answer of another call (an earlier run's, a copy, a forgery),
    // put in place before the job has run: its key is not this call's.
    let answer = dir.join("future.out");
    std::fs::write(
        &answer,
        "futurize-registry-file-1 00112233445566778899aabbccddeeff future\n",
    )
    .unwrap();
    let e = f.value().unwrap_err();
    cancel_jobs("trust-stale");
    let text = e.to_string();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert!(text.contains("the answer of Slurm job"), "{text}");
    assert!(text.contains(&answer.display().to_string()), "{text}");
    assert!(text.contains("another call"), "{text}");
    assert!(dir.exists(), "the registry is kept for a look by hand");
    std::fs::remove_dir_all(&registry).unwrap();
}

#[test]
fn a_garbage_answer_is_refused_without_a_hint_about_frame_limits() {
    let Some(_) = slurm::single() else { return };
    let registry = scratch("garbage");
    let template = holding_template(&registry, 4);
    let _g = with_plan(Slurm::jobs().registry(&registry).template(&template));
    let f = future!(55u64, label = "trust-garbage");
    let dir = call_dir_in(&registry, "future.in");
    let answer = dir.join("future.out");
    std::fs::write(&answer, [0x8fu8, 0x12, 0x0c, 0x7e, 0, 1, 2, 3, 4, 5]).unwrap();
    let e = f.value().unwrap_err();
    cancel_jobs("trust-garbage");
    let text = e.to_string();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert!(text.contains("Slurm job"), "{text}");
    assert!(text.contains(&answer.display().to_string()), "{text}");
    assert!(text.contains("not a futurize registry file"), "{text}");
    assert!(!text.contains("FUTURIZE_MAX_FRAME_BYTES"), "{text}");
    assert!(dir.exists(), "the registry is kept");
    std::fs::remove_dir_all(&registry).unwrap();
}

#[test]
fn a_chunk_answer_with_too_many_values_is_refused_and_the_leader_does_not_panic() {
    use futurize_runtime::codec;
    use futurize_runtime::relay::Output;
    use futurize_runtime::wire::{self, FromWorker, Outcome};
    let Some(_) = slurm::single() else { return };
    let registry = scratch("too-many");
    let template = holding_template(&registry, 4);
    let _g = with_plan(Slurm::jobs().registry(&registry).template(&template));
    // The forger writes the chunk's answer with the call's own key (read
    // from the task's header, as only this user could): 30 values for 6
    // elements.
    let forger = {
        let registry = registry.clone();
        std::thread::spawn(move || {
            let dir = call_dir_in(&registry, "chunk-0.in");
            let input = std::fs::File::open(dir.join("chunk-0.in")).unwrap();
            let mut header = String::new();
            std::io::BufReader::new(input)
                .read_line(&mut header)
                .unwrap();
            // A chunk's answer as the codec writes it: values (plain
            // numbers travel as their bytes, as bincode writes a `[u8]`),
            // combined value, failures, hand-back.
            let raw: Vec<u8> = [7i32; 30].iter().flat_map(|v| v.to_le_bytes()).collect();
            let forged = (raw, None::<i32>, Vec::<(u32, u8)>::new(), None::<u32>);
            let values = codec::encode(&forged, "x").unwrap();
            let mut answer = header.into_bytes();
            let done = FromWorker::Done {
                id: 1,
                outcome: Outcome::Value,
                output: Output::default(),
            };
            wire::write_message(&mut answer, &done, &values, 1 << 20).unwrap();
            let path = dir.join("chunk-0.out");
            std::fs::write(&path, answer).unwrap();
            (dir, path)
        })
    };
    let result: Result<Vec<i32>, Error> =
        foreach!(i in 0..6i32 => i %dofuture% chunk_size = 6, label = "trust-many");
    let (dir, path) = forger.join().unwrap();
    cancel_jobs("trust-many");
    let e = result.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Protocol(_)), "{e:?}");
    assert!(
        text.contains("30 values and 0 failures for 6 elements"),
        "{text}"
    );
    assert!(text.contains("Slurm job"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(dir.exists(), "the registry is kept");
    std::fs::remove_dir_all(&registry).unwrap();
}

#[test]
fn a_planted_executable_never_runs_and_the_leaders_copy_replaces_it() {
    let Some(c) = sshd::cluster(&["node1"]) else {
        return;
    };
    let Some(user) = sshd::login_user() else {
        return;
    };
    let id = futurize::session_info().build_id;
    let cache = PathBuf::from(format!("/home/{user}/.cache/futurize"));
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(&cache).unwrap();
    // Where the host looks first for this build: a script of exactly the
    // executable's size that leaves a mark when it runs.
    let marker = scratch("planted-ran");
    let size = std::fs::metadata("/proc/self/exe").unwrap().len() as usize;
    let mut planted = format!("#!/bin/sh\ntouch '{}'\nexit 0\n", marker.display()).into_bytes();
    planted.resize(size, b'#');
    let cached = cache.join(&id);
    std::fs::write(&cached, &planted).unwrap();
    set_mode(&cached, 0o700);
    for path in [cache.parent().unwrap(), &cache, &cached] {
        Command::new("chown")
            .arg(format!("{user}:"))
            .arg(path)
            .status()
            .unwrap();
    }
    let _g = with_plan(c.always_copy_executable());
    let exe = future!(std::env::current_exe().unwrap()).value().unwrap();
    assert!(!marker.exists(), "the planted executable ran");
    assert_eq!(exe, cached);
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        std::fs::read("/proc/self/exe").unwrap(),
        "the leader's copy replaced it"
    );
}

/// `examples/NAME` of this build (built here: `cargo test --test trust`
/// alone does not build the examples, and an old one would not test this
/// code).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let status = Command::new(env!("CARGO"))
        .args(["build", "--example", name, "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    profile_dir.join("examples").join(name)
}

#[test]
fn a_setuid_program_is_never_taken_over_as_a_worker() {
    if !two_users() {
        return;
    }
    // A program linking futurize, installed setuid root: run by another
    // user with the worker's markers and files of the owner's named as its
    // capture files.
    let dir = scratch("setuid");
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o755);
    let program = dir.join("quickstart");
    std::fs::copy(example("quickstart"), &program).unwrap();
    set_mode(&program, 0o4755);
    let (out, err) = (dir.join("owners-out"), dir.join("owners-err"));
    std::fs::write(&out, "the owner's").unwrap();
    std::fs::write(&err, "the owner's").unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&program)
        .env("FUTURIZE_WORKER", "1")
        .env(
            "FUTURIZE_WORKER_CAPTURE",
            format!("{}\n{}", out.display(), err.display()),
        )
        .env_remove("FUTURIZE_PLAN")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // It ran as the program it is, not as a worker.
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("55"), "{stdout}");
    for file in [&out, &err] {
        assert_eq!(std::fs::read_to_string(file).unwrap(), "the owner's");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
