//! `FUTURIZE_TRACE=path` writes a Chrome trace at exit: one lane per worker,
//! spans per future and chunk with their label and elements, and an
//! efficiency summary (in the file, and on stderr with
//! `FUTURIZE_TRACE_SUMMARY=1`). The trace is read back with a JSON parser.

use futurize::prelude::*;
use std::process::Command;

fn traced(plan: &str, path: &std::path::Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_traced", "--exact", "--nocapture", "--test-threads=1"])
        .env("FUTURIZE_TEST_CHILD", "1")
        .env("FUTURIZE_PLAN", plan)
        .env("FUTURIZE_TRACE", path)
        .env("FUTURIZE_TRACE_SUMMARY", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_trace_has_a_lane_per_worker_spans_and_a_summary() {
    for (plan, lane) in [
        ("multiprocess:2", "worker process "),
        ("multithread:2", "thread "),
    ] {
        let path = std::env::temp_dir().join(format!(
            "futurize-trace-{}-{}.json",
            std::process::id(),
            plan.replace(':', "")
        ));
        let stderr = traced(plan, &path);
        assert!(
            stderr.contains("futurize trace: 2 workers busy"),
            "{plan}: {stderr}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let json: serde_json::Value = serde_json::from_str(&text).expect("the trace is JSON");
        let events = json["traceEvents"].as_array().expect("traceEvents");
        let lanes: Vec<&str> = events
            .iter()
            .filter(|e| e["ph"] == "M")
            .filter_map(|e| e["args"]["name"].as_str())
            .collect();
        assert!(lanes.contains(&"leader"), "{lanes:?}");
        // Two workers (on threads the calling thread runs chunks too).
        let workers = lanes.iter().filter(|l| l.starts_with(lane)).count();
        assert!((2..=3).contains(&workers), "{plan}: {lanes:?}");
        let spans = |name: &str| {
            events
                .iter()
                .filter(|e| e["ph"] == "X" && e["name"] == name)
                .collect::<Vec<_>>()
        };
        let chunks = spans("chunk");
        assert!(!chunks.is_empty(), "{plan}");
        assert!(
            chunks.iter().all(|c| (c["args"]["label"] == "squares"
                || c["args"]["label"] == "fails")
                && c["args"]["elements"]
                    .as_str()
                    .is_some_and(|e| e.contains("..="))),
            "{plan}: {chunks:?}"
        );
        // The chunk whose element panicked is marked, with the element.
        let failed: Vec<_> = events
            .iter()
            .filter(|e| e["name"] == "chunk failed")
            .collect();
        assert_eq!(failed.len(), 1, "{plan}: {failed:?}");
        assert_eq!(failed[0]["args"]["label"], "fails", "{plan}");
        assert_eq!(failed[0]["args"]["failed element"], "3", "{plan}");
        assert_eq!(failed[0]["args"]["elements"], "2..=3", "{plan}");
        assert!(
            failed[0]["args"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("element three")),
            "{plan}: {failed:?}"
        );
        // Chunks queued for worker processes carry their call's label.
        let queued = spans("chunk queued");
        assert!(
            queued.iter().all(|q| q["args"]["label"].is_string()),
            "{plan}: {queued:?}"
        );
        assert_eq!(spans("future").len(), 3, "{plan}");
        assert_eq!(spans("future queued").len(), 3, "{plan}");
        for instant in ["future created", "future collected"] {
            assert_eq!(
                events.iter().filter(|e| e["name"] == instant).count(),
                3,
                "{plan}: {instant}"
            );
        }
        let efficiency = json["otherData"]["efficiency"].as_f64().unwrap();
        assert!(
            efficiency > 0.0 && efficiency <= 1.0,
            "{plan}: {efficiency}"
        );
    }
}

/// The traced program (does nothing in a normal run).
#[test]
fn child_traced() {
    if std::env::var_os("FUTURIZE_TEST_CHILD").is_none() {
        return;
    }
    let fs: Vec<_> = (0..3u64)
        .map(|i| {
            future!(
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    i
                },
                label = "sleepy"
            )
        })
        .collect();
    assert_eq!(value(fs).unwrap(), vec![0, 1, 2]);
    let squares: Vec<u64> = foreach!(i in 0..40u64 => {
        std::thread::sleep(std::time::Duration::from_millis(5));
        i * i
    } %dofuture% label = "squares", chunk_size = 5)
    .unwrap();
    assert_eq!(squares[39], 39 * 39);
    let failed: Result<Vec<u64>, futurize::Error> = foreach!(i in 0..4u64 => {
        if i == 3 {
            panic!("element three");
        }
        i
    } %dofuture% label = "fails", chunk_size = 2);
    assert!(failed.is_err());
}

#[test]
fn the_summary_counts_one_worker_in_the_singular() {
    let path = std::env::temp_dir().join(format!("futurize-trace-{}-one.json", std::process::id()));
    let stderr = traced("multiprocess:1", &path);
    let _ = std::fs::remove_file(&path);
    assert!(stderr.contains("futurize trace: 1 worker busy"), "{stderr}");
}
