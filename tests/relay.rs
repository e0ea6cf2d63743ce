//! What bodies print reaches the leader in element order, the same text on
//! every local backend; panics carry their facts. Each scenario runs in a
//! child process (this test binary again) so its real stdout and stderr can
//! be read and compared.

mod common;

use futurize::prelude::*;
use futurize::{Error, Panic};
use std::process::Command;

/// The plans every scenario runs under, as `FUTURIZE_PLAN` text: the local
/// ones, and a cluster of three hosts when this machine has an sshd.
fn plans() -> Vec<&'static str> {
    let mut plans = vec!["sequential", "multithread:2", "multiprocess:2"];
    if common::sshd::sshd().is_some() {
        plans.push("cluster:node1,node2,node3");
    }
    plans
}

/// Runs `scenario` in a child under `plan`; returns its stdout and stderr
/// between the BEGIN and END markers.
fn child(scenario: &str, plan: &str, env: &[(&str, &str)]) -> (String, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_scenario",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FUTURIZE_TEST_SCENARIO", scenario)
        .env("FUTURIZE_PLAN", plan)
        .env("RUST_BACKTRACE", "0");
    if plan.starts_with("cluster") {
        let sshd = common::sshd::sshd().expect("a cluster plan only with an sshd");
        command.env("FUTURIZE_SSH_COMMAND", &sshd.ssh_command);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "child {scenario} under {plan} failed:\n{stdout}\n{stderr}"
    );
    (between_markers(&stdout), between_markers(&stderr))
}

fn between_markers(text: &str) -> String {
    let start = text.find("BEGIN\n").expect("a BEGIN marker") + "BEGIN\n".len();
    let end = text.find("END\n").expect("an END marker");
    text[start..end].to_string()
}

fn helper_that_prints(i: u32) -> u32 {
    println!("helper sees {i}");
    i
}

#[test]
fn child_scenario() {
    let Ok(scenario) = std::env::var("FUTURIZE_TEST_SCENARIO") else {
        return;
    };
    println!("BEGIN");
    eprintln!("BEGIN");
    match scenario.as_str() {
        "foreach" => {
            let xs: Vec<u32> = (0..20).collect();
            let scale = 3u32;
            let ys: Vec<u32> = foreach!(x in &xs => {
                print!("element {x}: ");
                println!("{} times {scale}", x);
                if x % 4 == 0 {
                    eprintln!("warning from {x}");
                }
                x * scale
            } %dofuture% chunk_size = 3)
            .unwrap();
            println!("values {ys:?}");
            // Futures relay when collected, in the order they are collected.
            let a = future!({
                println!("future a");
                1
            });
            let b = future!({
                println!("future b");
                eprint!("b to stderr\n");
                2
            });
            let (vb, va) = (b.value().unwrap(), a.value().unwrap());
            println!("collected {vb} {va}");
            let quiet = future!(
                {
                    println!("not captured");
                    3
                },
                stdout = false
            );
            let _ = quiet.value().unwrap();
        }
        "stop" => {
            let r: Result<Vec<u32>, Error> = foreach!(x in 0..12u32 => {
                println!("ran {x}");
                if x == 5 {
                    panic!("five");
                }
                x
            } %dofuture% chunk_size = 2);
            println!("error at {:?}", r.unwrap_err().to_string());
        }
        "helpers" => {
            let ys: Vec<u32> = foreach!(x in 0..6u32 => {
                println!("body {x}");
                helper_that_prints(x)
            } %dofuture% chunk_size = 2)
            .unwrap();
            println!("values {ys:?}");
        }
        "dbg" => {
            let ys: Vec<u32> = foreach!(x in 1..4u32 => dbg!(x * 2) %dofuture%).unwrap();
            println!("values {ys:?}");
        }
        "reentrant" => {
            let ys: Vec<u32> = foreach!(x in 0..2u32 => {
                struct Loud(u32);
                impl std::fmt::Debug for Loud {
                    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        eprintln!("formatting {}", self.0);
                        write!(f, "Loud({})", self.0)
                    }
                }
                println!("{:?}", Loud(x));
                x
            } %dofuture%)
            .unwrap();
            println!("values {ys:?}");
        }
        "too_much_output" => {
            let r: Result<Vec<u32>, Error> = foreach!(x in 0..2u32 => {
                if x == 1 {
                    println!("{}", "y".repeat(10_000));
                }
                std::process::id()
            } %dofuture% chunk_size = 1);
            println!("too much: {}", r.unwrap_err());
            // The worker is still there.
            let again: Vec<u32> =
                foreach!(x in 0..2u32 => std::process::id() + x * 0 %dofuture%).unwrap();
            println!("same worker: {}", again[0] == again[1]);
        }
        "panic" => {
            let e = foreach!(x in 0..6u32 => {
                if x == 4 {
                    panic!("element four broke");
                }
                x
            } %dofuture% label = "sim")
            .map(|v: Vec<u32>| v)
            .unwrap_err();
            match e {
                Error::Panicked {
                    panic:
                        Panic {
                            message,
                            location,
                            backtrace,
                        },
                    label,
                    index,
                } => {
                    println!("message={message}");
                    println!("location={}", location.unwrap_or_default());
                    println!("label={label:?} index={index:?}");
                    println!(
                        "backtrace={}",
                        match backtrace {
                            Some(bt) if !bt.trim().is_empty() => "some",
                            Some(_) => "empty",
                            None => "none",
                        }
                    );
                }
                other => println!("unexpected {other}"),
            }
        }
        other => panic!("unknown scenario {other}"),
    }
    println!("END");
    eprintln!("END");
}

#[test]
fn printed_output_is_the_same_on_every_backend_and_in_element_order() {
    let mut expected = String::new();
    for x in 0..20u32 {
        expected += &format!("element {x}: {x} times 3\n");
    }
    let values: Vec<u32> = (0..20).map(|x| x * 3).collect();
    expected += &format!("values {values:?}\nfuture b\nfuture a\ncollected 2 1\n");
    let mut expected_err = String::new();
    for x in (0..20u32).filter(|x| x % 4 == 0) {
        expected_err += &format!("warning from {x}\n");
    }
    expected_err += "b to stderr\n";
    for plan in plans() {
        let (out, err) = child("foreach", plan, &[]);
        // `stdout = false` silences the body, as R's `stdout = FALSE` does.
        assert!(
            !out.contains("not captured") && !err.contains("not captured"),
            "under {plan}: {out}{err}"
        );
        assert_eq!(out, expected, "stdout under {plan}");
        assert_eq!(err, expected_err, "stderr under {plan}");
    }
}

#[test]
fn under_stop_output_ends_at_the_failed_element() {
    let mut expected = String::new();
    for x in 0..=5 {
        expected += &format!("ran {x}\n");
    }
    let mut outputs = Vec::new();
    for plan in plans() {
        let (out, _) = child("stop", plan, &[]);
        assert!(out.starts_with(&expected), "under {plan}: {out}");
        assert!(!out.contains("ran 6"), "under {plan}: {out}");
        assert!(out.contains("element 5 panicked"), "under {plan}: {out}");
        outputs.push(out);
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:#?}");
}

#[test]
fn on_processes_output_of_called_functions_is_captured_in_order() {
    let (out, _) = child("helpers", "multiprocess:2", &[]);
    let mut expected = String::new();
    for x in 0..6 {
        expected += &format!("body {x}\nhelper sees {x}\n");
    }
    expected += "values [0, 1, 2, 3, 4, 5]\n";
    assert_eq!(out, expected);
}

#[test]
fn a_panic_carries_message_location_label_index_and_a_backtrace_when_asked() {
    for plan in plans() {
        let (out, _) = child("panic", plan, &[("RUST_BACKTRACE", "1")]);
        assert!(
            out.contains("message=element four broke\n"),
            "{plan}: {out}"
        );
        assert!(out.contains("location=tests/relay.rs:"), "{plan}: {out}");
        assert!(
            out.contains("label=Some(\"sim\") index=Some(4)"),
            "{plan}: {out}"
        );
        assert!(out.contains("backtrace=some"), "{plan}: {out}");
        let (out, _) = child("panic", plan, &[("RUST_BACKTRACE", "0")]);
        assert!(out.contains("backtrace=none"), "{plan}: {out}");
    }
}

#[test]
fn dbg_in_a_body_is_relayed_like_eprintln() {
    let mut errs = Vec::new();
    for plan in plans() {
        let (out, err) = child("dbg", plan, &[]);
        assert_eq!(out, "values [2, 4, 6]\n", "{plan}");
        for v in [2, 4, 6] {
            assert!(err.contains(&format!("] x * 2 = {v}\n")), "{plan}: {err}");
        }
        assert!(err.starts_with("[tests/relay.rs:"), "{plan}: {err}");
        errs.push(err);
    }
    assert!(errs.windows(2).all(|w| w[0] == w[1]), "{errs:#?}");
}

#[test]
fn a_display_that_prints_does_not_trip_the_capture() {
    for plan in plans() {
        let (out, err) = child("reentrant", plan, &[]);
        assert_eq!(out, "Loud(0)\nLoud(1)\nvalues [0, 1]\n", "{plan}");
        assert_eq!(err, "formatting 0\nformatting 1\n", "{plan}");
    }
}

#[test]
fn output_too_large_for_a_frame_is_an_error_and_the_worker_serves_on() {
    let (out, _) = child(
        "too_much_output",
        "multiprocess:1",
        &[("FUTURIZE_MAX_FRAME_BYTES", "4096")],
    );
    assert!(out.contains("too much: "), "{out}");
    assert!(
        out.contains("the values and the printed output of elements 1..=1 is 100"),
        "{out}"
    );
    assert!(out.contains("frame limit of 4096 bytes"), "{out}");
    assert!(out.contains("same worker: true"), "{out}");
}
