//! Workers that die or hang inside `foreach!` and `future!`: the error
//! names what was lost, `retries` runs a lost chunk again with the same
//! random streams, `timeout` stops a stuck worker, and the pool recovers.

use futurize::prelude::*;
use futurize::{Error, Plan};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::alive;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futurize-failures-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Remote workers log in as another user (see scripts/test-sshd.sh).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// Two worker processes here, and two on other hosts when this machine has
/// an sshd to test with.
fn process_plans() -> Vec<Plan> {
    std::iter::once(Multiprocess::workers(2).into())
        .chain(common::sshd::cluster(&["node1", "node2"]).map(Into::into))
        .collect()
}

/// Kills the calling process the first time it is called with `marker`
/// (the marker file remembers), so a retried element then succeeds.
fn die_once(marker: &Path) {
    if std::fs::create_dir(marker).is_ok() {
        std::process::abort();
    }
}

#[test]
fn a_lost_chunk_names_its_elements_and_the_pool_recovers() {
    for p in process_plans() {
        let _g = with_plan(p);
        a_lost_chunk_names_its_elements();
    }
}

fn a_lost_chunk_names_its_elements() {
    let r: Result<Vec<u32>, Error> = foreach!(i in 0..8u32 => {
        if i == 5 {
            std::process::abort();
        }
        i
    } %dofuture% chunk_size = 4, label = "lost");
    let e = r.unwrap_err();
    match &e {
        Error::WorkerDied {
            elements,
            index,
            label,
            cause,
            ..
        } => {
            assert_eq!(elements.clone(), Some(4..8));
            assert_eq!(*index, Some(4));
            assert_eq!(label.as_deref(), Some("lost"));
            assert!(cause.contains("SIGABRT"), "{cause}");
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(e.to_string().contains("elements 4..=7 of \"lost\""), "{e}");
    // Under `pass`, every element of the lost chunk says so; the others are values.
    let r: Vec<Result<u32, Error>> = foreach!(i in 0..8u32 => {
        if i == 5 {
            std::process::abort();
        }
        i
    } %dofuture% chunk_size = 4, errors = "pass")
    .unwrap();
    for (i, r) in r.iter().enumerate() {
        match (i < 4, r) {
            (true, Ok(v)) => assert_eq!(*v as usize, i),
            (false, Err(Error::WorkerDied { index, .. })) => assert_eq!(*index, Some(i)),
            (_, other) => panic!("element {i}: {other:?}"),
        }
    }
    let again: Vec<u32> = foreach!(i in 0..6u32 => i * 2 %dofuture%).unwrap();
    assert_eq!(again, vec![0, 2, 4, 6, 8, 10]);
}

#[test]
fn retries_run_a_lost_chunk_again_with_the_same_random_streams() {
    for p in process_plans() {
        let _g = with_plan(p);
        retries_keep_streams();
    }
}

fn retries_keep_streams() {
    let undisturbed: Vec<u64> =
        foreach!(i in 0..12u32 => { let _ = i; rng().next_u64() } %dofuture% seed = 9, chunk_size = 3)
            .unwrap();
    let dir = scratch("retry");
    let marker = dir.join("died");
    let retried: Vec<u64> = foreach!(i in 0..12u32 => {
        let first = rng().next_u64();
        if i == 7 {
            die_once(&marker);
        }
        first
    } %dofuture% seed = 9, chunk_size = 3, retries = 1)
    .unwrap();
    assert!(marker.exists(), "the element did die once");
    assert_eq!(retried, undisturbed);
    // Without enough retries the loss is reported.
    let marker2 = dir.join("always");
    let r: Result<Vec<u32>, Error> = foreach!(i in 0..4u32 => {
        if i == 1 {
            let _ = std::fs::create_dir(&marker2);
            std::process::abort();
        }
        i
    } %dofuture% chunk_size = 2, retries = 2);
    assert!(matches!(r, Err(Error::WorkerDied { .. })), "{r:?}");
}

#[test]
fn a_hundred_consecutive_kill_trials_never_hang() {
    let _g = with_plan(Multiprocess::workers(2));
    let dir = scratch("soak");
    let started = Instant::now();
    let expected: Vec<u32> = (0..16).map(|i| i * i).collect();
    for trial in 0..100u32 {
        let marker = dir.join(format!("trial-{trial}"));
        let victim = trial % 16;
        let chunk = 1 + (trial % 5) as usize;
        let squares: Vec<u32> = foreach!(i in 0..16u32 => {
            if i == victim {
                die_once(&marker);
            }
            i * i
        } %dofuture% chunk_size = chunk, retries = 1)
        .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        assert_eq!(squares, expected, "trial {trial}");
        assert!(marker.exists(), "trial {trial} killed a worker");
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "trial {trial}: too slow"
        );
    }
}

#[test]
fn a_stuck_element_times_out_its_worker_is_killed_and_the_rest_still_run() {
    let _g = with_plan(Multiprocess::workers(2));
    let dir = scratch("timeout");
    let pid_file = dir.join("pid");
    let started = Instant::now();
    let r: Vec<Result<u32, Error>> = foreach!(i in 0..6u32 => {
        if i == 4 {
            std::fs::write(&pid_file, std::process::id().to_string()).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        i + 100
    } %dofuture% chunk_size = 3, timeout = "400ms", errors = "pass", label = "stuck")
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    for (i, r) in r.iter().enumerate() {
        match (i, r) {
            (
                4,
                Err(Error::Timeout {
                    after,
                    label,
                    index,
                }),
            ) => {
                assert_eq!(after, "400ms");
                assert_eq!(label.as_deref(), Some("stuck"));
                assert_eq!(*index, Some(4));
            }
            (i, Ok(v)) if i != 4 => assert_eq!(*v, i as u32 + 100),
            (_, other) => panic!("element {i}: {other:?}"),
        }
    }
    let stuck: u32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(stuck) {
        assert!(
            Instant::now() < deadline,
            "the stuck worker {stuck} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next call succeeds, on a replacement.
    let next: Vec<u32> = foreach!(i in 0..4u32 => std::process::id() + i * 0 %dofuture%).unwrap();
    assert!(next.iter().all(|p| *p != stuck));
    // Under `stop` the call returns the timeout.
    let e = foreach!(i in 0..4u32 => {
        if i == 2 {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
        i
    } %dofuture% timeout = "300ms")
    .map(|v: Vec<u32>| v)
    .unwrap_err();
    assert_eq!(e.to_string(), "element 2 did not finish within 300ms");
}

#[test]
fn a_future_times_out_on_a_worker_and_the_next_one_succeeds() {
    let _g = with_plan(Multiprocess::workers(1));
    let started = Instant::now();
    let f = future!(
        {
            std::thread::sleep(std::time::Duration::from_secs(60));
            1
        },
        timeout = "300ms",
        label = "sleepy"
    );
    let e = f.value().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        e.to_string(),
        "future \"sleepy\" did not finish within 300ms"
    );
    assert_eq!(future!(2 + 2).value().unwrap(), 4);
    // A future that finishes in time is not affected.
    let quick = future!(5, timeout = std::time::Duration::from_secs(30));
    assert_eq!(quick.value().unwrap(), 5);
}

#[test]
fn in_process_an_element_over_its_limit_fails_when_it_returns() {
    for plan in [Plan::from(Sequential), Multithread::workers(2).into()] {
        let _g = with_plan(plan.clone());
        let r: Vec<Result<u32, Error>> = foreach!(i in 0..4u32 => {
            if i == 1 {
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
            i
        } %dofuture% timeout = "50ms", errors = "pass")
        .unwrap();
        assert!(
            matches!(&r[1], Err(Error::Timeout { index: Some(1), .. })),
            "{plan}: {r:?}"
        );
        assert!(r.iter().enumerate().all(|(i, r)| i == 1 || r.is_ok()));
        let f = future!(
            {
                std::thread::sleep(std::time::Duration::from_millis(150));
                1
            },
            timeout = "50ms"
        );
        assert!(matches!(f.value(), Err(Error::Timeout { .. })), "{plan}");
    }
}

/// This process's children: its worker processes.
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 1 && fields[1] == me && fields[0] != "Z" {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn child_external_kill_soak() {
    if std::env::var_os("FUTURIZE_TEST_KILL_SOAK").is_none() {
        return;
    }
    // The calls run on another thread, so the plan is the process's.
    plan(Multiprocess::workers(2));
    let expected: Vec<u64> = (0..40u64).map(|i| i * 3).collect();
    let mut killed = 0;
    for trial in 0..100u64 {
        let call = std::thread::spawn(|| {
            foreach!(i in 0..40u64 => {
                std::thread::sleep(std::time::Duration::from_micros(500));
                i * 3
            } %dofuture% chunk_size = 4, retries = 3)
        });
        // Kill at a different moment each trial: before, during or after chunks.
        std::thread::sleep(Duration::from_micros(trial * 137 % 12_000));
        if let Some(victim) = children().first() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &victim.to_string()])
                .status();
            killed += 1;
        }
        let values: Vec<u64> = call
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        assert_eq!(values, expected, "trial {trial}");
    }
    println!("KILLED {killed}");
}

#[test]
fn a_hundred_workers_killed_from_outside_at_random_moments_never_hang_a_call() {
    let started = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_external_kill_soak",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FUTURIZE_TEST_KILL_SOAK", "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let killed: u32 = stdout
        .split("KILLED ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no report in {stdout}"))
        .parse()
        .unwrap();
    assert!(
        killed >= 90,
        "only {killed} of 100 trials found a worker to kill"
    );
    assert!(started.elapsed() < Duration::from_secs(240));
}

#[test]
fn on_threads_a_timed_out_future_returns_at_its_deadline_and_its_thread_is_replaced() {
    let _g = with_plan(Multithread::workers(1));
    let started = Instant::now();
    let f = future!(
        {
            std::thread::sleep(std::time::Duration::from_secs(4));
            1
        },
        timeout = "200ms",
        label = "stuck thread"
    );
    f.resolve();
    assert!(f.resolved(), "past its deadline a future is resolved");
    let e = f.value().unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        e.to_string(),
        "future \"stuck thread\" did not finish within 200ms"
    );
    // The one worker is free again at once: a new thread took the stuck one's place.
    assert_eq!(nbr_of_free_workers().unwrap(), 1);
    let quick = Instant::now();
    assert_eq!(future!(6 * 7).value().unwrap(), 42);
    assert!(
        quick.elapsed() < Duration::from_secs(2),
        "{:?}",
        quick.elapsed()
    );
}

#[test]
fn the_end_of_a_dead_workers_stderr_is_in_the_error() {
    let _g = with_plan(Multiprocess::workers(1));
    let f: Future<usize> = future!({
        // The allocator cannot give a petabyte: std prints why and aborts.
        let v: Vec<u8> = Vec::with_capacity(1 << 50);
        v.capacity()
    });
    let e = f.value().unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::WorkerDied { .. }), "{text}");
    assert!(text.contains("SIGABRT"), "{text}");
    assert!(
        text.contains("the end of its stderr: memory allocation of 1125899906842624 bytes failed"),
        "{text}"
    );
    let r: Result<Vec<u32>, Error> = foreach!(i in 0..4u32 => {
        if i == 2 {
            eprintln!("element {i} gives up");
            eprintln!("404: not found");
            std::process::exit(9);
        }
        i
    } %dofuture% chunk_size = 2);
    let text = r.unwrap_err().to_string();
    assert!(text.contains("exit status 9"), "{text}");
    assert!(
        text.contains("the end of its stderr: element 2 gives up"),
        "{text}"
    );
}

/// Dead workers leave no names of capture files behind: checked in a child
/// process of its own, where no other test's workers are starting (their
/// files have names for a moment).
#[test]
fn dead_workers_leave_no_capture_file_names() {
    let stdout = run_child(
        "child_capture_names",
        &[("FUTURIZE_TEST_CAPTURE_NAMES", "1")],
    );
    assert!(stdout.contains("no names left"), "{stdout}");
}

/// Runs the test `name` of this binary alone in a child process with `env`
/// set; its stdout, once it has passed.
fn run_child(name: &str, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The child side of [`dead_workers_leave_no_capture_file_names`].
#[test]
fn child_capture_names() {
    if std::env::var_os("FUTURIZE_TEST_CAPTURE_NAMES").is_none() {
        return;
    }
    let started = std::time::SystemTime::now();
    {
        let _g = with_plan(Multiprocess::workers(2));
        let f: Future<usize> = future!({
            let v: Vec<u8> = Vec::with_capacity(1 << 50);
            v.capacity()
        });
        assert!(matches!(f.value(), Err(Error::WorkerDied { .. })));
        let r: Result<Vec<u32>, Error> = foreach!(i in 0..8u32 => {
            if i % 3 == 2 {
                std::process::exit(9);
            }
            i
        } %dofuture% chunk_size = 1);
        assert!(r.is_err());
        assert_eq!(future!(7u32).value().unwrap(), 7, "the pool goes on");
    }
    // Names this process made: its pid in them, made since it started (an
    // earlier process with the same pid may have left some: host agents
    // did, see `capture_files` in the worker).
    let mine = format!("futurize-{}-", std::process::id());
    let names_left = || -> Vec<String> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t + Duration::from_secs(1) >= started)
            })
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(&mine) && (n.ends_with("-stdout") || n.ends_with("-stderr")))
            .collect()
    };
    // The pool is gone; a replacement it started may finish its handshake.
    let mut left = names_left();
    for _ in 0..250 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        left = names_left();
    }
    assert!(left.is_empty(), "{left:?}");
    println!("no names left");
}

/// Runs `foreach!` over 8 elements in chunks of 2 on `Multiprocess(2)`; the
/// first time element 5 runs, the test stops its worker with SIGSTOP.
fn stopped_worker_call(
    dir: &Path,
    retries: u32,
    timeout: Option<&str>,
) -> (Result<Vec<u32>, Error>, Duration, u32) {
    let pid_file = dir.join("pid");
    let stopper = {
        let pid_file = pid_file.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(text) = std::fs::read_to_string(&pid_file)
                    && let Ok(pid) = text.trim().parse::<u32>()
                {
                    // SAFETY: a plain signal to a worker of this test.
                    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
                    return pid;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            0
        })
    };
    let started = Instant::now();
    let r: Result<Vec<u32>, Error> = match timeout {
        Some(_) => foreach!(i in 0..8u32 => {
            if i == 5 && std::fs::create_dir(pid_file.with_extension("once")).is_ok() {
                let tmp = pid_file.with_extension("tmp");
                std::fs::write(&tmp, std::process::id().to_string()).unwrap();
                std::fs::rename(&tmp, &pid_file).unwrap();
                std::thread::sleep(Duration::from_secs(30));
            }
            i * 10
        } %dofuture% chunk_size = 2, retries = retries, timeout = "3s"),
        None => foreach!(i in 0..8u32 => {
            if i == 5 && std::fs::create_dir(pid_file.with_extension("once")).is_ok() {
                let tmp = pid_file.with_extension("tmp");
                std::fs::write(&tmp, std::process::id().to_string()).unwrap();
                std::fs::rename(&tmp, &pid_file).unwrap();
                std::thread::sleep(Duration::from_secs(30));
            }
            i * 10
        } %dofuture% chunk_size = 2, retries = retries),
    };
    (r, started.elapsed(), stopper.join().unwrap())
}

#[test]
fn a_stopped_worker_is_noticed_within_seconds_of_its_limit() {
    let _g = with_plan(Multiprocess::workers(2));
    // With a timeout the leader enforces it, whatever the worker does.
    let dir = scratch("sigstop-retry");
    let (r, took, pid) = stopped_worker_call(&dir, 1, Some("3s"));
    assert!(pid > 0, "the worker was stopped");
    assert_eq!(r.unwrap(), (0..8).map(|i| i * 10).collect::<Vec<u32>>());
    assert!(took < Duration::from_secs(8), "{took:?}");
    let gone = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the stopped worker was killed");
    // Without retries: a clear error naming the elements.
    let dir = scratch("sigstop-error");
    let (r, took, _) = stopped_worker_call(&dir, 0, Some("3s"));
    match r {
        Err(Error::WorkerDied {
            cause, elements, ..
        }) => {
            assert!(cause.contains("not responding"), "{cause}");
            assert_eq!(elements, Some(4..6));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn without_a_timeout_the_silence_limit_applies() {
    // The limit is read once per process: a child with a short one.
    let stdout = run_child(
        "child_silence",
        &[
            ("FUTURIZE_TEST_SILENCE", "1"),
            ("FUTURIZE_SILENCE_LIMIT", "2s"),
        ],
    );
    assert!(stdout.contains("values ok"), "{stdout}");
}

/// The child side of the silence-limit test.
#[test]
fn child_silence() {
    if std::env::var_os("FUTURIZE_TEST_SILENCE").is_none() {
        return;
    }
    let _g = with_plan(Multiprocess::workers(2));
    let dir = scratch("silence");
    let (r, took, pid) = stopped_worker_call(&dir, 1, None);
    assert!(pid > 0);
    assert_eq!(r.unwrap(), (0..8).map(|i| i * 10).collect::<Vec<u32>>());
    assert!(took < Duration::from_secs(7), "{took:?}");
    println!("values ok in {took:?}");
}
