//! Plans: scoped plans, nesting, worker counts, blocking admission and
//! FUTURIZE_PLAN (read in a child process, since it is read once per process).

use futurize::prelude::*;
use futurize::{Error, Plan};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn with_plan_restores_the_previous_plan_on_drop_and_on_panic() {
    let outer = current_plan().unwrap();
    {
        let _a = with_plan(Multithread::workers(2));
        assert_eq!(current_plan().unwrap().to_string(), "multithread:2");
        {
            let _b = with_plan(Multithread::workers(3));
            assert_eq!(nbr_of_workers().unwrap(), 3);
        }
        assert_eq!(nbr_of_workers().unwrap(), 2);
    }
    assert_eq!(current_plan().unwrap(), outer);
    let result = std::panic::catch_unwind(|| {
        let _g = with_plan(Multithread::workers(4));
        panic!("leaving the scope by panicking");
    });
    assert!(result.is_err());
    assert_eq!(current_plan().unwrap(), outer);
}

#[test]
fn a_future_sees_the_next_level_and_sequential_below_the_last() {
    let _g = with_plan(Plan::from([
        Multithread::workers(2).into(),
        Multithread::workers(3).into(),
    ]));
    let f = future!({
        let here = futurize::current_plan().unwrap().to_string();
        let below = futurize::future!(futurize::current_plan().unwrap().to_string())
            .value()
            .unwrap();
        (here, futurize::nbr_of_workers().unwrap(), below)
    });
    assert_eq!(
        f.value().unwrap(),
        ("multithread:3".to_string(), 3, "sequential".to_string())
    );
    assert_eq!(nbr_of_workers().unwrap(), 2);
}

static GATE_OPEN: AtomicBool = AtomicBool::new(false);
static RUNNING: AtomicUsize = AtomicUsize::new(0);

fn wait_for_gate() -> u32 {
    RUNNING.fetch_add(1, Ordering::SeqCst);
    while !GATE_OPEN.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(2));
    }
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    7
}

#[test]
fn creating_a_future_blocks_while_every_worker_is_busy() {
    let _g = with_plan(Multithread::workers(2));
    let a = future!(wait_for_gate());
    let b = future!(wait_for_gate());
    let deadline = Instant::now() + Duration::from_secs(30);
    while RUNNING.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "the two futures never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(nbr_of_free_workers().unwrap(), 0);
    // The third future is created on this thread: it must block until the gate opens.
    let opener = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        GATE_OPEN.store(true, Ordering::SeqCst);
    });
    let started = Instant::now();
    let c = future!(wait_for_gate() + 1);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "creating the third future returned after {waited:?}, while both workers were busy"
    );
    assert_eq!(value(vec![a, b]).unwrap(), vec![7, 7]);
    assert_eq!(c.value().unwrap(), 8);
    opener.join().unwrap();
    assert_eq!(nbr_of_free_workers().unwrap(), 2);
}

/// Runs this test binary again with `FUTURIZE_PLAN` set, executing only
/// `child_reports_its_plan`, and returns what it printed.
fn child_with_plan(text: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_reports_its_plan",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FUTURIZE_TEST_CHILD", "1")
        .env("FUTURIZE_PLAN", text)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn child_reports_its_plan() {
    if std::env::var_os("FUTURIZE_TEST_CHILD").is_none() {
        return;
    }
    match current_plan() {
        Ok(p) => {
            let v = future!(6 * 7).value().unwrap();
            println!(
                "REPORT plan={p} workers={} value={v}",
                nbr_of_workers().unwrap()
            );
        }
        Err(e) => {
            let from_future = future!(1).value().unwrap_err();
            assert_eq!(from_future, e);
            assert!(matches!(e, Error::Plan { .. }));
            println!("REPORT error={e}");
        }
    }
}

fn report(text: &str) -> String {
    let out = child_with_plan(text);
    out.lines()
        .find_map(|l| l.split_once("REPORT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report in {out}"))
        .to_string()
}

#[test]
fn futurize_plan_selects_the_plan_when_the_code_sets_none() {
    assert_eq!(
        report("multithread:3"),
        "plan=multithread:3 workers=3 value=42"
    );
    assert_eq!(report("sequential"), "plan=sequential workers=1 value=42");
    assert_eq!(
        report("multithread:2/multithread:2"),
        "plan=multithread:2/multithread:2 workers=2 value=42"
    );
}

#[test]
fn a_malformed_futurize_plan_is_an_error_naming_the_variable() {
    for (text, why) in [
        ("multithread:0", "at least 1"),
        ("multithread:x", "not a number of workers"),
        ("nosuch", "not a known plan"),
    ] {
        let r = report(text);
        assert!(r.starts_with("error=invalid plan in FUTURIZE_PLAN"), "{r}");
        assert!(r.contains(&format!("`{text}`")), "{r}");
        assert!(r.contains(why), "{r}");
        assert!(r.contains("Valid forms"), "{r}");
    }
}

#[test]
fn a_request_this_machine_cannot_meet_is_an_instant_error_saying_what_it_has() {
    let _g = with_plan(Multiprocess::workers(2));
    let e = future!(1u8, resources = (mem = "100T"))
        .value()
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Resources { .. }), "{msg}");
    let have = futurize::plan::human_bytes(futurize_runtime::cores::available_memory());
    assert!(msg.contains(&have), "{msg} names {have}");
    let r: Result<Vec<u8>, Error> = foreach!(i in 0..3u8 => i %dofuture% resources = (cpus = 4096));
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("cpus = 4096"), "{msg}");
    // What fits runs as usual.
    assert_eq!(future!(2u8, resources = (cpus = 1)).value().unwrap(), 2);
}

#[test]
fn futurize_disable_runs_everything_in_place_whatever_the_plan() {
    // The child sets multiprocess:2 in code; FUTURIZE_DISABLE=1 wins.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_under_disable",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FUTURIZE_TEST_CHILD", "1")
        .env("FUTURIZE_DISABLE", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("REPORT plan=sequential same_process=true same_thread=true"),
        "{text}"
    );
}

#[test]
fn child_under_disable() {
    if std::env::var_os("FUTURIZE_TEST_CHILD").is_none() {
        return;
    }
    plan(Multiprocess::workers(2));
    let here = (
        std::process::id(),
        format!("{:?}", std::thread::current().id()),
    );
    let there = future!((
        std::process::id(),
        format!("{:?}", std::thread::current().id())
    ))
    .value()
    .unwrap();
    let threads: Vec<String> =
        foreach!(_i in 0..4u8 => format!("{:?}", std::thread::current().id()) %dofuture%).unwrap();
    println!(
        "REPORT plan={} same_process={} same_thread={}",
        current_plan().unwrap(),
        here.0 == there.0,
        here.1 == there.1 && threads.iter().all(|t| *t == here.1)
    );
}
