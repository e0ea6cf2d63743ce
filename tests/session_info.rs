//! `session_info()`: the report on this build, this machine and the plan
//! in force, and the host check of a cluster plan against the private sshd
//! of tests/common/sshd.rs.

mod common;

use common::sshd;
use futurize::prelude::*;
use futurize::{Error, HostState};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `child_prints_session_info` in a process of its own with `env`,
/// where `FUTURIZE_PLAN` can be anything.
fn child_report(env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "child_prints_session_info", "--nocapture"])
        .env("FUTURIZE_TEST_SESSION_CHILD", "1");
    for (k, v) in env {
        child.env(k, v);
    }
    child.output().unwrap()
}

/// The child's side of [`child_report`]; does nothing in a plain run.
#[test]
fn child_prints_session_info() {
    if std::env::var_os("FUTURIZE_TEST_SESSION_CHILD").is_none() {
        return;
    }
    let mut info = session_info();
    info.check_hosts();
    println!("{info}");
}

/// Whether `text` holds a run of exactly 40 hex digits.
fn has_hex_40(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .any(|word| word.len() == 40)
}

#[test]
fn the_report_names_the_build_the_machine_and_the_plan() {
    let _g = with_plan(Multiprocess::workers(2));
    let info = session_info();
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.build_id.len(), 40, "{}", info.build_id);
    assert_eq!(info.plan.as_ref().unwrap().to_string(), "multiprocess:2");
    assert_eq!(
        (info.workers.clone(), info.free_workers.clone()),
        (Ok(2), Ok(2))
    );
    assert_eq!(info.cores, available_cores());
    assert_eq!(info.available_workers, available_workers());
    let text = info.to_string();
    for part in [
        &format!("futurize {}", env!("CARGO_PKG_VERSION")),
        "rustc 1.",
        "Plan:           multiprocess:2 (set in code: with_plan(), on this thread)",
        "  level 1       multiprocess:2 (2 workers)",
        "Workers:        2 (2 free)",
        "affinity",
        "SLURM_CPUS_PER_TASK",
        "<- available_cores()",
    ] {
        assert!(text.contains(part), "no {part:?} in\n{text}");
    }
    assert!(has_hex_40(&text), "no build id in\n{text}");
    // One line says how many workers the plan has; the machine's own list
    // of workers is named otherwise.
    assert_eq!(text.matches("Workers:").count(), 1, "{text}");
    assert!(text.contains("Worker hosts:"), "{text}");
    assert_eq!(info.plan_source, "set in code: with_plan(), on this thread");
    assert!(format!("{info:?}").contains("build_id"));
}

static RELEASE: AtomicBool = AtomicBool::new(false);

#[test]
fn free_workers_count_down_while_futures_run() {
    let _g = with_plan(Multithread::workers(2));
    let f = future!({
        while !RELEASE.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let text = session_info().to_string();
    RELEASE.store(true, Ordering::SeqCst);
    f.value().unwrap();
    assert!(text.contains("Workers:        2 (1 free)"), "{text}");
}

#[test]
fn a_malformed_plan_is_reported_not_raised() {
    let out = child_report(&[("FUTURIZE_PLAN", "multithread:0")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Plan:           error: invalid plan in FUTURIZE_PLAN: `multithread:0`"),
        "{stdout}"
    );
    assert!(stdout.contains("rustc 1."), "{stdout}");
}

#[test]
fn the_report_says_where_the_plan_comes_from_and_shows_futurize_variables() {
    let out = child_report(&[
        ("FUTURIZE_PLAN", "multithread:2"),
        ("FUTURIZE_SILENCE_LIMIT", "40s"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Plan:           multithread:2 (from FUTURIZE_PLAN)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Environment:    FUTURIZE_PLAN=multithread:2\n                FUTURIZE_SILENCE_LIMIT=40s\n"),
        "{stdout}"
    );
}

#[test]
fn the_plan_error_is_kept_as_a_value() {
    let out = child_report(&[("FUTURIZE_PLAN", "nosuch")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("`nosuch` is not a known plan"), "{stdout}");
    // In this process the plan is fine: the field holds what current_plan() says.
    let _g = with_plan(Sequential);
    assert!(!matches!(session_info().plan, Err(Error::Plan { .. })));
}

#[test]
fn the_example_prints_the_report() {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "session_info"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FUTURIZE_PLAN", "multithread:3")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Plan:           multithread:3"), "{stdout}");
    assert!(stdout.contains("Workers:        3 (3 free)"), "{stdout}");
}

#[test]
fn hosts_are_checked_only_when_asked() {
    let Some(c) = sshd::cluster(&["node1", "node1", "badhost"]) else {
        return;
    };
    let _g = with_plan(c);
    let mut info = session_info();
    assert!(info.hosts.iter().all(|h| h.state == HostState::NotChecked));
    assert!(info.to_string().contains("not checked"));
    info.check_hosts();
    let (node1, badhost) = (&info.hosts[0], &info.hosts[1]);
    assert_eq!((node1.host.to_string(), node1.workers), ("node1".into(), 2));
    assert!(
        matches!(node1.state, HostState::Reachable { .. }),
        "{:?}",
        node1.state
    );
    match &badhost.state {
        HostState::Unreachable { reason } => {
            assert!(reason.contains("Connection refused"), "{reason}")
        }
        other => panic!("badhost: {other:?}"),
    }
    let text = info.to_string();
    assert!(text.contains("reachable in "), "{text}");
    assert!(
        text.contains("  badhost  1 worker   unreachable: ssh: "),
        "{text}"
    );
}

#[test]
fn hosts_are_reached_through_futurize_ssh_command() {
    let Some(s) = sshd::sshd() else {
        return;
    };
    let out = child_report(&[
        ("FUTURIZE_PLAN", "cluster:node2,nokey"),
        ("FUTURIZE_SSH_COMMAND", &s.ssh_command),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  node2  1 worker  reachable in "),
        "{stdout}"
    );
    assert!(stdout.contains("Permission denied"), "{stdout}");
}
