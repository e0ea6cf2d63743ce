//! Cluster plans against a real OpenSSH server on 127.0.0.1–3 (the project's
//! own scripts/test-sshd.sh, started once for this binary and ended by pid
//! at its exit): hosts node1..node3, each telling its workers which node
//! they are on through `FUTURIZE_TEST_NODE`. The login user is the
//! unprivileged `futurize-test` when the tests run as root.
//!
//! Tests that count connections or kill one use a host no other test here
//! uses at the same time (node3 for counting, node2 for killing, inside one
//! test each).

mod common;

use common::process_tree::sshd_above;
use common::{alive, sshd};
use futurize::Error;
use futurize::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn node() -> String {
    std::env::var("FUTURIZE_TEST_NODE").unwrap_or_else(|_| "none".into())
}

/// Processes below this one (children, grandchildren …).
fn descendants() -> Vec<(u32, String)> {
    descendants_of(std::process::id())
}

/// Processes below `me`, with their command lines.
fn descendants_of(me: u32) -> Vec<(u32, String)> {
    let mut all: Vec<(u32, u32, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after) = stat.rsplit(')').next() else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let ppid: u32 = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        all.push((pid, ppid, cmdline));
    }
    let mut found = vec![me];
    let mut out = Vec::new();
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid, cmd) in &all {
            if found.contains(ppid) && !found.contains(pid) {
                found.push(*pid);
                out.push((*pid, cmd.clone()));
                grew = true;
            }
        }
    }
    out
}

/// The ssh client processes of this process that reach `host`.
fn ssh_clients_to(host: &str) -> Vec<u32> {
    descendants()
        .into_iter()
        .filter(|(_, cmd)| cmd.starts_with("ssh ") && cmd.split_whitespace().any(|w| w == host))
        .map(|(pid, _)| pid)
        .collect()
}

#[test]
fn futures_and_loops_run_on_every_host() {
    let Some(c) = sshd::cluster(&["node1", "node2", "node3"]) else {
        return;
    };
    let _g = with_plan(c);
    assert_eq!(nbr_of_workers().unwrap(), 3);
    let f = future!(node());
    assert!(f.value().unwrap().starts_with("node"));
    let nodes: Vec<String> = foreach!(i in 0..30u32 => {
        std::thread::sleep(Duration::from_millis(20));
        let _ = i;
        node()
    } %dofuture% chunk_size = 1)
    .unwrap();
    let mut seen = nodes.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec!["node1", "node2", "node3"], "{nodes:?}");
}

#[test]
fn eight_workers_on_one_host_share_one_connection() {
    let Some(c) = sshd::cluster(&["node3"; 8]) else {
        return;
    };
    let _g = with_plan(c);
    // Eight elements of 1.5 s, one per chunk: all eight workers run at once
    // (long enough for the pool to start them all, even on a busy machine).
    let started = Instant::now();
    let pids: Vec<u32> = foreach!(_i in 0..8u32 => {
        std::thread::sleep(Duration::from_millis(1500));
        std::process::id()
    } %dofuture% chunk_size = 1)
    .unwrap();
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "eight workers served: {pids:?}");
    assert!(
        started.elapsed() < Duration::from_millis(8 * 1500 / 2),
        "the workers ran side by side: {:?}",
        started.elapsed()
    );
    assert_eq!(
        ssh_clients_to("node3").len(),
        1,
        "one ssh connection to node3 carries all eight workers"
    );
}

#[test]
fn workers_get_the_named_variables_and_the_leaders_directory() {
    let Some(c) = sshd::cluster(&["node1"]) else {
        return;
    };
    // cargo sets these for the test process; ssh forwards none of them.
    let c = c.env(["CARGO_PKG_NAME"]);
    let _g = with_plan(c);
    let (named, unnamed, cwd) = future!((
        std::env::var("CARGO_PKG_NAME").ok(),
        std::env::var("CARGO_PKG_VERSION").ok(),
        std::env::current_dir().unwrap()
    ))
    .value()
    .unwrap();
    assert_eq!(named.as_deref(), Some("futurize"));
    assert_eq!(unnamed, None, "a variable not named is not passed on");
    assert_eq!(cwd, std::env::current_dir().unwrap());
}

#[test]
fn a_missing_directory_means_the_remote_home() {
    if sshd::sshd().is_none() {
        return;
    }
    let Some(user) = sshd::login_user() else {
        return;
    };
    // The leader runs in a directory the remote user cannot reach.
    let private = std::env::temp_dir().join(format!("futurize-private-{}", std::process::id()));
    std::fs::create_dir_all(&private).unwrap();
    set_mode(&private, 0o700);
    let out = child("cwd", &private, &[]);
    let _ = std::fs::remove_dir_all(&private);
    assert_eq!(out.trim(), format!("/home/{user}"));
}

#[test]
fn the_executable_is_copied_where_the_host_lacks_it() {
    let Some(c) = sshd::cluster(&["node1", "node1"]) else {
        return;
    };
    let Some(user) = sshd::login_user() else {
        return;
    };
    // No copy from an earlier run: this one must send it. (One host only:
    // the test hosts share a file system, and two copies arriving at once
    // would replace each other's file.)
    let _ = std::fs::remove_dir_all(format!("/home/{user}/.cache/futurize"));
    let _g = with_plan(c.always_copy_executable());
    let exes: Vec<PathBuf> =
        foreach!(_i in 0..4u32 => std::env::current_exe().unwrap() %dofuture% chunk_size = 1)
            .unwrap();
    let cache = PathBuf::from(format!("/home/{user}/.cache/futurize"));
    // Another test's host may have put its own copy in place since (the
    // test hosts share this cache): a worker then names its file
    // "… (deleted)"; the path is what counts.
    let exes: Vec<PathBuf> = exes
        .iter()
        .map(|e| PathBuf::from(e.to_string_lossy().trim_end_matches(" (deleted)")))
        .collect();
    for exe in &exes {
        assert!(exe.starts_with(&cache), "{exe:?} is not in {cache:?}");
        let mode = std::fs::metadata(exe).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
    }
    // The copy is the leader's executable, byte for byte.
    let copy = std::fs::read(&exes[0]).unwrap();
    assert_eq!(copy, std::fs::read("/proc/self/exe").unwrap());
}

#[test]
fn hosts_that_cannot_be_reached_are_launch_errors_quoting_ssh() {
    let Some(s) = sshd::sshd() else { return };
    let cases: [(&str, futurize::Cluster, &str); 4] = [
        (
            "badhost",
            sshd::cluster(&["badhost"]).unwrap(),
            "Connection refused",
        ),
        (
            "nokey",
            sshd::cluster(&["nokey"]).unwrap(),
            "Permission denied",
        ),
        (
            "unknownkey",
            sshd::cluster(&["unknownkey"]).unwrap(),
            "Host key verification failed",
        ),
        (
            "node1",
            futurize::Cluster::hosts(["node1"]).ssh_command("/nonexistent/ssh"),
            "not found",
        ),
    ];
    let _ = s;
    for (host, c, says) in cases {
        let started = Instant::now();
        let _g = with_plan(c);
        let e = future!(1u8).value().unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Launch { .. }), "{host}: {msg}");
        assert!(msg.contains(host), "{host}: {msg}");
        assert!(msg.contains(says), "{host}: {msg}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{host}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_host_that_never_answers_is_a_launch_error_at_the_time_limit() {
    let Some(s) = sshd::sshd() else { return };
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let c = futurize::Cluster::hosts([format!("127.0.0.1:{port}")])
        .ssh_command(s.ssh_command.clone())
        .launch_timeout(Duration::from_secs(2));
    let _g = with_plan(c);
    let started = Instant::now();
    let e = future!(1u8).value().unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Launch { .. }), "{msg}");
    assert!(msg.contains("did not start within 2s"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

#[test]
fn a_host_that_drops_mid_call_loses_its_chunks_and_retries_run_them_elsewhere() {
    let Some(c) = sshd::cluster(&["node1", "node2", "node2"]) else {
        return;
    };
    let _g = with_plan(c);
    let dir = std::env::temp_dir().join(format!("futurize-drop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let marker = dir.join("node2-runs");
    let killer = || {
        let marker = marker.clone();
        let _ = std::fs::remove_file(&marker);
        std::thread::spawn(move || {
            // Once a body runs on node2, cut node2's connection.
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                if !marker.exists() {
                    continue;
                }
                if let Some(pid) = ssh_clients_to("node2").first() {
                    // SAFETY: a signal to our own ssh child.
                    unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                    return true;
                }
            }
            false
        })
    };
    let cut = killer();
    let r: Result<Vec<u32>, Error> = foreach!(i in 0..24u32 => {
        if node() == "node2" {
            let _ = std::fs::write(&marker, b"");
        }
        std::thread::sleep(Duration::from_millis(100));
        i * 2
    } %dofuture% chunk_size = 1);
    assert!(cut.join().unwrap(), "node2's connection was found and cut");
    match r {
        Err(Error::WorkerDied {
            worker, elements, ..
        }) => {
            assert!(worker.ends_with("on node2"), "{worker}");
            assert!(elements.is_some());
        }
        other => panic!("expected WorkerDied on node2, got {other:?}"),
    }
    // With retries the same call gives every value.
    let cut = killer();
    let values: Vec<u32> = foreach!(i in 0..24u32 => {
        if node() == "node2" {
            let _ = std::fs::write(&marker, b"");
        }
        std::thread::sleep(Duration::from_millis(100));
        i * 2
    } %dofuture% chunk_size = 1, retries = 3)
    .unwrap();
    assert!(cut.join().unwrap());
    assert_eq!(values, (0..24).map(|i| i * 2).collect::<Vec<u32>>());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_remote_worker_killed_is_reported_with_its_host() {
    let Some(c) = sshd::cluster(&["node1"]) else {
        return;
    };
    let _g = with_plan(c);
    let r: Result<Vec<u32>, Error> = foreach!(i in 0..6u32 => {
        if i == 3 {
            // SAFETY: the worker ends itself, as a crash would.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        i
    } %dofuture% chunk_size = 2);
    match r {
        Err(Error::WorkerDied {
            worker,
            cause,
            elements,
            ..
        }) => {
            assert!(worker.ends_with("on node1"), "{worker}");
            assert!(cause.contains("SIGKILL"), "{cause}");
            assert_eq!(elements, Some(2..4));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    // The pool starts a new worker on the host.
    assert_eq!(future!(7u32).value().unwrap(), 7);
}

#[test]
fn when_the_leader_is_killed_no_remote_process_is_left() {
    if sshd::sshd().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("futurize-orphans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let mut leader = child_command(
        "orphans",
        &std::env::current_dir().unwrap(),
        &[("FUTURIZE_TEST_PID_DIR", dir.to_str().unwrap())],
    )
    .spawn()
    .unwrap();
    // Each remote worker writes its pid and its agent's pid.
    let deadline = Instant::now() + Duration::from_secs(30);
    let pids = loop {
        let pids: Vec<u32> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .flat_map(|t| {
                t.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        if pids.len() >= 6 {
            break pids;
        }
        assert!(
            Instant::now() < deadline,
            "the remote workers never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(pids.iter().all(|&p| alive(p)), "{pids:?}");
    // The leader's connections (ssh, in process groups of their own) go too.
    let connections: Vec<u32> = descendants_of(leader.id())
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("ssh"))
        .map(|(pid, _)| pid)
        .collect();
    assert!(
        !connections.is_empty(),
        "the leader's ssh processes are found"
    );
    let pids: Vec<u32> = pids.into_iter().chain(connections).collect();
    leader.kill().unwrap();
    leader.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        left.is_empty(),
        "still running after the leader died: {left:?}"
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn child_command(scenario: &str, cwd: &Path, env: &[(&str, &str)]) -> Command {
    let s = sshd::sshd().expect("sshd runs");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_scenario",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .current_dir(cwd)
        .env("FUTURIZE_TEST_SCENARIO", scenario)
        .env("FUTURIZE_SSH_COMMAND", &s.ssh_command);
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// Runs a scenario in a child process; what it printed between markers.
fn child(scenario: &str, cwd: &Path, env: &[(&str, &str)]) -> String {
    let out = child_command(scenario, cwd, env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "child {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = stdout.find("BEGIN\n").expect("BEGIN") + "BEGIN\n".len();
    let end = stdout.find("END\n").expect("END");
    stdout[start..end].to_string()
}

/// The child side of the scenarios (does nothing in a normal run).
#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("FUTURIZE_TEST_SCENARIO") else {
        return;
    };
    println!("BEGIN");
    match scenario.as_str() {
        "cwd" => {
            plan(futurize::Cluster::hosts(["node1"]));
            let cwd = future!(std::env::current_dir().unwrap()).value().unwrap();
            println!("{}", cwd.display());
        }
        "orphans" => {
            plan(futurize::Cluster::hosts(["node1", "node1", "node2"]));
            let dir = std::env::var("FUTURIZE_TEST_PID_DIR").unwrap();
            let _: Vec<()> = foreach!(i in 0..3u32 => {
                let me = std::process::id();
                let agent = std::os::unix::process::parent_id();
                std::fs::write(format!("{dir}/{i}"), format!("{me} {agent}")).unwrap();
                std::thread::sleep(Duration::from_secs(60));
            } %dofuture% chunk_size = 1)
            .unwrap();
        }
        "capture_once" => {
            let user = std::env::var("LOGIN_USER").unwrap();
            let other = format!("{user}@node1");
            plan(futurize::Cluster::hosts([
                "node1", "node1", "node1", &other, &other, &other,
            ]));
            let big: Vec<u8> = vec![7; 8 << 20];
            let before = futurize::__private::__bytes_sent_to_workers();
            // Slow elements, a chunk each: every worker takes some.
            let answers: Vec<(u64, u32)> = foreach!(i in 0..24u64 => {
                std::thread::sleep(Duration::from_millis(150));
                (big.iter().map(|&b| u64::from(b)).sum::<u64>() + i, std::process::id())
            } %dofuture% chunk_size = 1)
            .unwrap();
            let sent = futurize::__private::__bytes_sent_to_workers() - before;
            let (sums, mut pids): (Vec<u64>, Vec<u32>) = answers.into_iter().unzip();
            assert_eq!(sums[5], (7u64 << 23) + 5);
            pids.sort_unstable();
            pids.dedup();
            println!("{sent} {} {}", pids.len(), big.len());
        }
        "frame_limit" => {
            plan(futurize::Cluster::hosts(["node1"]));
            for n in (900..1100usize).step_by(4) {
                let v = vec![7u8; n];
                let sent = future!(v.len()).value();
                let back = future!(vec![7u8; n]).value();
                // A value or an error naming the limit; never a hang.
                let over = |e: &Error| e.to_string().contains("frame limit");
                assert!(
                    matches!(&sent, Ok(m) if *m == n) || sent.as_ref().is_err_and(over),
                    "{n}: {sent:?}"
                );
                assert!(
                    matches!(&back, Ok(w) if w.len() == n) || back.as_ref().is_err_and(over),
                    "{n}: {:?}",
                    back.as_ref().map(Vec::len)
                );
            }
            println!("all answered");
        }
        other => panic!("no scenario {other}"),
    }
    println!("END");
}

#[test]
fn frames_near_the_limit_are_answered_on_a_cluster_too() {
    if sshd::sshd().is_none() {
        return;
    }
    let mut child = child_command(
        "frame_limit",
        &std::env::current_dir().unwrap(),
        &[("FUTURIZE_MAX_FRAME_BYTES", "1000")],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            use std::io::Read;
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert!(status.success() && out.contains("all answered"), "{out}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a future near the frame limit hung on the cluster");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_remote_worker_that_stops_answering_is_noticed_and_its_chunk_rerun() {
    let Some(c) = sshd::cluster(&["node1", "node1"]) else {
        return;
    };
    let _g = with_plan(c);
    let dir = std::env::temp_dir().join(format!("futurize-stop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let pid_file = dir.join("pid");
    let stopper = {
        let pid_file = pid_file.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Some(pid) = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok())
                {
                    // SAFETY: a plain signal to a worker of this test.
                    unsafe { libc::kill(pid, libc::SIGSTOP) };
                    return pid as u32;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            0
        })
    };
    let started = Instant::now();
    let values: Vec<u32> = foreach!(i in 0..8u32 => {
        if i == 5 && std::fs::create_dir(pid_file.with_extension("once")).is_ok() {
            let tmp = pid_file.with_extension("tmp");
            std::fs::write(&tmp, std::process::id().to_string()).unwrap();
            std::fs::rename(&tmp, &pid_file).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        i * 10
    } %dofuture% chunk_size = 2, retries = 1, timeout = "3s")
    .unwrap();
    let pid = stopper.join().unwrap();
    assert!(pid > 0, "the remote worker was stopped");
    assert_eq!(values, (0..8).map(|i| i * 10).collect::<Vec<u32>>());
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    let gone = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the agent ended the stopped worker");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_capture_crosses_each_hosts_connection_once_for_all_its_workers() {
    if sshd::sshd().is_none() {
        return;
    }
    let Some(user) = sshd::login_user() else {
        return;
    };
    // In a child: the byte count is the whole process's. Two connections
    // to node1 (as itself and as user@node1: two hosts to the plan, and no
    // host another test here kills or counts), three workers each.
    let out = child("capture_once", Path::new("/tmp"), &[("LOGIN_USER", &user)]);
    let f: Vec<u64> = out.split_whitespace().map(|w| w.parse().unwrap()).collect();
    let (sent, workers, capture) = (f[0], f[1], f[2]);
    assert!(
        workers >= 4,
        "the chunks spread over the workers: {workers}"
    );
    // Twice the capture (two hosts), not once per worker.
    assert!(
        sent < capture * 2 + capture / 5,
        "{sent} bytes for a capture of {capture} to {workers} workers on 2 hosts"
    );
}

/// The state letter of process `pid` (`T` when stopped).
fn state_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit(')').next()?.split_whitespace().next()?.to_string()))
        .unwrap_or_default()
}

/// Continues a process when dropped (a stopped process must not outlive a
/// failed assertion).
struct ContinueOnDrop(u32);

impl Drop for ContinueOnDrop {
    fn drop(&mut self) {
        // SAFETY: signals a process this test stopped.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// Where sshd gives the agent a pipe, each worker writes its answers into
/// the connection itself: an answer reaches the leader while the host agent
/// is stopped.
#[test]
fn a_remote_workers_answer_reaches_the_leader_without_its_agent() {
    let Some(c) = sshd::cluster(&["node1"]) else {
        return;
    };
    let _g = with_plan(c);
    let agent: u32 = future!(std::os::unix::process::parent_id())
        .value()
        .unwrap();
    // If the answer needed the agent, the agent would be continued after
    // 20 s and the state check below would fail instead of hanging.
    let (finished, wait) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if wait.recv_timeout(Duration::from_secs(20)).is_err() {
            drop(ContinueOnDrop(agent));
        }
    });
    let stopped: u32 = future!({
        let agent = std::os::unix::process::parent_id();
        // SAFETY: stops this worker's parent, the host agent; the test
        // continues it.
        unsafe { libc::kill(agent as i32, libc::SIGSTOP) };
        agent
    })
    .value()
    .unwrap();
    let state = state_of(agent);
    let resume = ContinueOnDrop(agent);
    let _ = finished.send(());
    guard.join().unwrap();
    assert_eq!(stopped, agent);
    assert_eq!(state, "T", "the agent was stopped when the answer arrived");
    drop(resume);
    // Continued, the agent carries the next task as before.
    assert_eq!(future!(5u32 + 1).value().unwrap(), 6);
}

/// A worker killed halfway through writing its answer into the shared
/// connection loses only its own task: its host's other worker and the
/// connection carry on.
#[test]
fn a_worker_killed_while_it_answers_leaves_the_connection_whole() {
    let Some(c) = sshd::cluster(&["node1", "node1"]) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("futurize-midframe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    set_mode(&dir, 0o777);
    let _g = with_plan(c);
    // The agent, and the sshd session that reads its stdout.
    let (agent, session): (u32, u32) = future!({
        let agent = std::os::unix::process::parent_id();
        (agent, sshd_above(agent))
    })
    .value()
    .unwrap();
    assert!(session > 1, "an sshd session serves the agent");
    let pid_file = dir.join("worker");
    let file = pid_file.to_string_lossy().into_owned();
    let big = future!({
        std::fs::write(&file, std::process::id().to_string()).unwrap();
        // The test stops the session meanwhile: the answer fills the pipe
        // and the worker waits in the middle of its frame.
        std::thread::sleep(Duration::from_millis(300));
        vec![7u8; 16 << 20]
    });
    let started = Instant::now();
    let worker: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the body never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    // SAFETY: stops the sshd session process serving this test's connection.
    unsafe { libc::kill(session as i32, libc::SIGSTOP) };
    let resume = ContinueOnDrop(session);
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: ends the worker that is halfway through its answer.
    unsafe { libc::kill(worker, libc::SIGKILL) };
    drop(resume);
    match big.value() {
        Err(Error::WorkerDied { cause, .. }) => {
            assert!(cause.contains("SIGKILL"), "{cause}");
            assert!(cause.contains("truncated"), "killed mid-frame: {cause}");
        }
        other => panic!("expected WorkerDied, got {:?}", other.map(|v| v.len())),
    }
    // The same connection (the same agent) serves both workers' places.
    let agents: Vec<u32> = foreach!(_i in 0..4u32 => {
        std::thread::sleep(Duration::from_millis(200));
        std::os::unix::process::parent_id()
    } %dofuture% chunk_size = 1)
    .unwrap();
    assert_eq!(agents, vec![agent; 4]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether this worker's host agent keeps a call's captures in shared
/// memory (a memfd named for the call among its descriptors).
fn agent_shares_a_stash() -> bool {
    let agent = std::os::unix::process::parent_id();
    std::fs::read_dir(format!("/proc/{agent}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|link| link.to_string_lossy().starts_with("/memfd:futurize-stash-"))
}

/// A large capture reaches a host's workers through the agent's shared
/// memory, a small one through their pipes; the values are the same.
#[test]
fn a_large_capture_reaches_a_hosts_workers_through_shared_memory() {
    let Some(c) = sshd::cluster(&["node1", "node1"]) else {
        return;
    };
    let _g = with_plan(c);
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let small: Vec<u8> = vec![3; 1000];
    let sum: u64 = large.iter().map(|&b| u64::from(b)).sum();
    // Elements long enough that both workers take some.
    let seen: Vec<(u64, bool, u32)> = foreach!(_i in 0..6u32 => {
        std::thread::sleep(Duration::from_millis(100));
        let s: u64 = large.iter().map(|&b| u64::from(b)).sum();
        (s, agent_shares_a_stash(), std::process::id())
    } %dofuture% chunk_size = 1)
    .unwrap();
    assert!(
        seen.iter().all(|&(s, _, _)| s == sum),
        "every worker decoded the capture"
    );
    assert!(
        seen.iter().all(|&(_, mapped, _)| mapped),
        "the agent shared its copy with every worker: {seen:?}"
    );
    let mut pids: Vec<u32> = seen.iter().map(|s| s.2).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 2, "both workers took elements");
    // Small captures travel in the pipe: a fresh plan's agent shares none.
    drop(_g);
    let _g = with_plan(sshd::cluster(&["node1"]).unwrap());
    let seen: Vec<(usize, bool)> =
        foreach!(_i in 0..2u32 => (small.len(), agent_shares_a_stash()) %dofuture%).unwrap();
    assert_eq!(seen, vec![(1000, false); 2]);
}
