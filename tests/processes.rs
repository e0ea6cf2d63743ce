//! Worker processes: real re-executions of this test binary, killed from
//! outside where the test needs it.

use futurize::prelude::*;
use futurize::{Error, Panic};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::alive;

fn pid() -> u32 {
    std::process::id()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futurize-test-{}-{name}", pid()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A body that announces its pid in `dir` and then sleeps.
fn announce_and_sleep(dir: &std::path::Path, seconds: u64) -> u32 {
    std::fs::write(dir.join("pid"), std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(seconds));
    std::process::id()
}

fn announced_pid(dir: &std::path::Path) -> u32 {
    let mut pid = 0;
    wait_until("the body announced its pid", || {
        pid = std::fs::read_to_string(dir.join("pid"))
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        pid != 0
    });
    pid
}

#[test]
fn futures_run_in_other_processes_and_workers_are_reused() {
    let _g = with_plan(Multiprocess::workers(2));
    let fs: Vec<_> = (0..6).map(|_| future!(std::process::id())).collect();
    let pids = value(fs).unwrap();
    assert!(pids.iter().all(|&p| p != pid()), "{pids:?}");
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() <= 2, "persistent workers: {pids:?}");
}

#[test]
fn fresh_workers_are_new_processes_for_every_future() {
    let _g = with_plan(Multiprocess::workers(2).fresh());
    let fs: Vec<_> = (0..4).map(|_| future!(std::process::id())).collect();
    let mut pids = value(fs).unwrap();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 4, "{pids:?}");
}

/// Each chunk on fresh workers starts a process: a call cuts one chunk per
/// worker (it once cut thousands of tiny ones, a process each, after a call
/// on persistent workers had taught the site that elements are cheap), and
/// `chunk_size` still decides when the call says.
#[test]
fn a_call_on_fresh_workers_starts_one_process_per_worker() {
    let xs: Vec<f64> = (0..20_000).map(|i| f64::from(i) * 0.5).collect();
    for plan in [
        futurize::Plan::from(Multiprocess::workers(2)),
        Multiprocess::workers(2).fresh().into(),
    ] {
        let _g = with_plan(plan.clone());
        let pids: Vec<u32> =
            foreach!(x in &xs => { let _ = x.to_bits(); std::process::id() } %dofuture%).unwrap();
        let mut distinct = pids.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() <= 2, "{plan}: {} processes", distinct.len());
    }
    let _g = with_plan(Multiprocess::workers(2).fresh());
    let mut pids: Vec<u32> =
        foreach!(_i in 0..6u32 => std::process::id() %dofuture% chunk_size = 2).unwrap();
    pids.dedup();
    assert_eq!(pids.len(), 3, "a process per chunk of 2: {pids:?}");
}

#[test]
fn a_panic_keeps_the_worker_and_reports_message_and_location() {
    let _g = with_plan(Multiprocess::workers(1));
    let before = future!(std::process::id()).value().unwrap();
    let k = 3;
    let f: Future<u8> = future!(panic!("bad input {k}"), label = "parse");
    match f.value() {
        Err(Error::Panicked {
            panic: Panic {
                message, location, ..
            },
            label,
            ..
        }) => {
            assert_eq!(message, "bad input 3");
            assert!(location.unwrap().starts_with("tests/processes.rs:"));
            assert_eq!(label.as_deref(), Some("parse"));
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(future!(std::process::id()).value().unwrap(), before);
}

#[test]
fn a_worker_killed_from_outside_is_reported_and_replaced() {
    let _g = with_plan(Multiprocess::workers(1));
    let dir = scratch("kill");
    let f = future!(announce_and_sleep(&dir, 60), label = "victim");
    let victim = announced_pid(&dir);
    let status = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    match f.value() {
        Err(Error::WorkerDied {
            worker,
            cause,
            label,
            ..
        }) => {
            assert_eq!(worker, format!("process {victim}"));
            assert!(cause.contains("signal 9 (SIGKILL)"), "{cause}");
            assert_eq!(label.as_deref(), Some("victim"));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let next = future!(std::process::id()).value().unwrap();
    assert_ne!(next, victim);
    assert!(!alive(victim));
}

#[test]
fn abort_and_exit_inside_a_body_are_worker_deaths() {
    let _g = with_plan(Multiprocess::workers(1));
    let f: Future<u8> = future!(std::process::abort());
    let e = f.value().unwrap_err();
    assert!(e.to_string().contains("signal 6 (SIGABRT)"), "{e}");
    let f: Future<u8> = future!(std::process::exit(3), label = "quitter");
    match f.value() {
        Err(Error::WorkerDied { cause, label, .. }) => {
            assert_eq!(cause, "exit status 3");
            assert_eq!(label.as_deref(), Some("quitter"));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_eq!(future!(40 + 2).value().unwrap(), 42);
}

#[test]
fn cancelling_a_running_future_stops_its_worker() {
    let _g = with_plan(Multiprocess::workers(1));
    let dir = scratch("cancel");
    let f = future!(announce_and_sleep(&dir, 60));
    let worker = announced_pid(&dir);
    assert!(f.cancel());
    assert!(matches!(f.value(), Err(Error::Cancelled { .. })));
    wait_until("the cancelled worker is gone", || !alive(worker));
    assert_eq!(future!(1 + 1).value().unwrap(), 2);
}

#[test]
fn dropping_a_running_future_stops_its_worker() {
    let _g = with_plan(Multiprocess::workers(1));
    let dir = scratch("drop");
    let f = future!(announce_and_sleep(&dir, 60));
    let worker = announced_pid(&dir);
    drop(f);
    wait_until("the worker of the dropped future is gone", || {
        !alive(worker)
    });
    assert_eq!(future!(2 + 2).value().unwrap(), 4);
}

#[test]
fn workers_talk_over_pipes_and_cannot_be_fed_through_stdin_or_stdout() {
    let _g = with_plan(Multiprocess::workers(1));
    let f = future!({
        let link = |fd: &str| {
            std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let mut kinds = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            kinds.push(link(&name));
        }
        (link("0"), kinds)
    });
    let (stdin, kinds) = f.value().unwrap();
    assert_eq!(stdin, "/dev/null");
    assert!(kinds.iter().all(|k| !k.starts_with("socket:")), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| k.starts_with("pipe:")).count() >= 2,
        "{kinds:?}"
    );
}

/// Runs this test binary again as a child executing only `test`.
fn child(test: &str, envs: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("FUTURIZE_TEST_CHILD", "1")
        .stdout(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn is_child() -> bool {
    std::env::var_os("FUTURIZE_TEST_CHILD").is_some()
}

#[test]
fn child_leader_with_a_busy_and_an_idle_worker() {
    if !is_child() {
        return;
    }
    let _g = with_plan(Multiprocess::workers(2));
    let idle = future!(std::process::id()).value().unwrap();
    let dir = PathBuf::from(std::env::var("FUTURIZE_TEST_DIR").unwrap());
    let f = future!(announce_and_sleep(&dir, 120));
    let busy = announced_pid(&dir);
    println!("WORKERS {idle} {busy}");
    std::thread::sleep(Duration::from_secs(120));
    drop(f);
}

#[test]
fn no_worker_outlives_a_leader_killed_with_sigkill() {
    let dir = scratch("orphans");
    let mut leader = child(
        "child_leader_with_a_busy_and_an_idle_worker",
        &[("FUTURIZE_TEST_DIR", dir.to_str().unwrap())],
    );
    let mut out = std::io::BufReader::new(leader.stdout.take().unwrap());
    let mut line = String::new();
    let pids: Vec<u32> = loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert!(n > 0, "the child leader ended without naming its workers");
        if let Some(rest) = line.split("WORKERS ").nth(1) {
            break rest
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
        }
    };
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    leader.kill().unwrap();
    leader.wait().unwrap();
    for p in pids {
        wait_until(&format!("worker {p} of the killed leader exits"), || {
            !alive(p)
        });
    }
}

#[test]
fn child_ships_a_capture_over_the_frame_limit() {
    if !is_child() {
        return;
    }
    let _g = with_plan(Multiprocess::workers(1));
    let big = vec![7u8; 10_000];
    let f = future!(big.len(), label = "big");
    match f.value() {
        Err(Error::TooLarge { what, size, limit }) => {
            println!("TOOLARGE {what}|{size}|{limit}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let small = vec![1u8; 10];
    println!("SMALL {}", future!(small.len()).value().unwrap());
}

#[test]
fn captures_over_the_frame_limit_are_refused_before_sending() {
    let c = child(
        "child_ships_a_capture_over_the_frame_limit",
        &[("FUTURIZE_MAX_FRAME_BYTES", "1000")],
    );
    let out = c.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("TOOLARGE the captures of future \"big\"|10003|1000"),
        "{text}"
    );
    assert!(text.contains("SMALL 10"), "{text}");
}

/// Starts this binary as a worker by hand and speaks the handshake to it.
fn handshake_with_real_worker(hello: futurize_runtime::wire::ToWorker) -> String {
    use futurize_runtime::wire::{self, FromWorker};
    let mut worker = Command::new("/proc/self/exe")
        .env("FUTURIZE_WORKER", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut input = worker.stdin.take().unwrap();
    let mut output = worker.stdout.take().unwrap();
    wire::write_message(&mut input, &hello, &[], 1 << 20).unwrap();
    let reply = wire::read_message::<_, FromWorker>(&mut output, 1 << 20).unwrap();
    let status = worker.wait().unwrap();
    assert!(
        !status.success(),
        "a refusing worker exits with an error status"
    );
    match reply {
        Some((FromWorker::Refused { reason }, _)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_worker_refuses_a_leader_of_another_build_or_protocol() {
    use futurize_runtime::wire::{PROTOCOL_VERSION, ToWorker};
    let reason = handshake_with_real_worker(ToWorker::Hello {
        version: PROTOCOL_VERSION,
        build_id: vec![0xab; 20],
        nested_plan: "sequential".into(),
    });
    assert!(reason.contains("(build abababab"), "{reason}");
    assert!(
        reason.contains("differs from this worker's (build "),
        "{reason}"
    );
    let reason = handshake_with_real_worker(ToWorker::Hello {
        version: PROTOCOL_VERSION + 1,
        build_id: vec![],
        nested_plan: "sequential".into(),
    });
    assert!(
        reason.contains(&format!("protocol version {}", PROTOCOL_VERSION + 1)),
        "{reason}"
    );
}

#[test]
fn a_workers_output_goes_to_private_nameless_files_while_a_task_runs() {
    let _g = with_plan(Multiprocess::workers(1));
    let (mode, target) = future!({
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata("/proc/self/fd/2")
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        let target = std::fs::read_link("/proc/self/fd/2")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        (mode, target)
    })
    .value()
    .unwrap();
    assert_eq!(mode, 0o600, "{target}");
    assert!(target.ends_with("(deleted)"), "{target}");
}

#[test]
fn an_unwritable_temporary_directory_is_an_error_naming_it() {
    let ro = std::env::temp_dir().join(format!("futurize-readonly-{}", std::process::id()));
    std::fs::create_dir_all(&ro).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    for (tmpdir, says) in [
        ("/nonexistent/futurize-tmp".to_string(), "No such file"),
        (ro.display().to_string(), "Permission denied"),
    ] {
        let out = child("child_reports_a_worker_start", &[("TMPDIR", &tmpdir)])
            .wait_with_output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // Root writes into a read-only directory: there only the missing one
        // can fail.
        if says == "Permission denied" && text.contains("value 7") {
            continue;
        }
        assert!(
            text.contains(&format!("temporary directory {tmpdir}")),
            "{text}"
        );
        assert!(text.contains("TMPDIR"), "{text}");
        assert!(text.contains(says), "{text}");
    }
    let _ = std::fs::remove_dir_all(&ro);
}

#[test]
fn child_reports_a_worker_start() {
    if !is_child() {
        return;
    }
    let _g = with_plan(Multiprocess::workers(1));
    match future!(7u8).value() {
        Ok(v) => println!("value {v}"),
        Err(e) => println!("error {e}"),
    }
}

#[test]
fn workers_get_their_share_of_the_cores_for_rayon_and_blas() {
    if is_child() {
        return;
    }
    // Run in a child: its environment decides what the user set.
    let out = child(
        "child_reports_thread_variables",
        &[("FUTURIZE_AVAILABLE_CORES", "8"), ("OMP_NUM_THREADS", "3")],
    )
    .wait_with_output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Eight cores over two workers: four each; OMP_NUM_THREADS was the user's.
    assert!(
        text.contains(
            "vars RAYON_NUM_THREADS=4 OMP_NUM_THREADS=3 OPENBLAS_NUM_THREADS=4 MKL_NUM_THREADS=4"
        ),
        "{text}"
    );
}

#[test]
fn child_reports_thread_variables() {
    if !is_child() || std::env::var_os("OMP_NUM_THREADS").is_none() {
        return;
    }
    let _g = with_plan(Multiprocess::workers(2));
    let vars = future!(
        [
            "RAYON_NUM_THREADS",
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS"
        ]
        .iter()
        .map(|v| format!("{v}={}", std::env::var(v).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(" ")
    )
    .value()
    .unwrap();
    println!("vars {vars}");
}

#[test]
fn a_full_temporary_directory_is_an_error_naming_it() {
    // A file system with no room for another file: a tmpfs of one inode.
    let full = std::env::temp_dir().join(format!("futurize-full-{}", std::process::id()));
    std::fs::create_dir_all(&full).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4k,nr_inodes=1", "tmpfs"])
        .arg(&full)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: mounting a full tmpfs needs root (mount -t tmpfs)"
        );
        let _ = std::fs::remove_dir(&full);
        return;
    }
    let out = child(
        "child_reports_a_worker_start",
        &[("TMPDIR", full.to_str().unwrap())],
    )
    .wait_with_output()
    .unwrap();
    let _ = Command::new("umount").arg(&full).status();
    let _ = std::fs::remove_dir(&full);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("temporary directory {}", full.display())),
        "{text}"
    );
    assert!(text.contains("No space left on device"), "{text}");
    assert!(text.contains("TMPDIR"), "{text}");
}
