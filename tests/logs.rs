//! `log` records emitted in bodies on worker processes reach the leader's
//! logger with level, target and message intact, tagged with the label and
//! the element index.

use futurize::prelude::*;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    level: log::Level,
    target: String,
    message: String,
    label: Option<String>,
    index: Option<String>,
    pid: u32,
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let kv = |key: &str| {
            record
                .key_values()
                .get(log::kv::Key::from_str(key))
                .map(|v| v.to_string())
        };
        SEEN.lock().unwrap().push(Seen {
            level: record.level(),
            target: record.target().to_string(),
            message: record.args().to_string(),
            label: kv("label"),
            index: kv("index"),
            pid: std::process::id(),
        });
    }
    fn flush(&self) {}
}

#[test]
fn records_from_workers_reach_the_leaders_logger_tagged_with_label_and_index() {
    log::set_logger(&Recorder).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let _g = with_plan(Multiprocess::workers(2));
    let pids: Vec<u32> = foreach!(i in 0..6u32 => {
        log::info!(target: "simulation", "element {i} starts");
        if i == 3 {
            log::warn!("three is odd");
        }
        log::debug!("filtered out by the leader's level");
        std::process::id()
    } %dofuture% chunk_size = 2, label = "sim")
    .unwrap();
    assert!(
        pids.iter().all(|p| *p != std::process::id()),
        "ran on workers"
    );
    let f = future!(
        {
            log::error!(target: "single", "from a future");
            1
        },
        label = "one"
    );
    assert_eq!(f.value().unwrap(), 1);

    let seen = SEEN.lock().unwrap().clone();
    for i in 0..6u32 {
        let info: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.message == format!("element {i} starts"))
            .collect();
        assert_eq!(info.len(), 1, "{seen:#?}");
        assert_eq!(info[0].level, log::Level::Info);
        assert_eq!(info[0].target, "simulation");
        assert_eq!(info[0].label.as_deref(), Some("sim"));
        assert_eq!(info[0].index, Some(i.to_string()));
        assert_eq!(info[0].pid, std::process::id());
    }
    let warn = seen.iter().find(|s| s.message == "three is odd").unwrap();
    assert_eq!(warn.level, log::Level::Warn);
    assert_eq!(warn.target, module_path!());
    assert_eq!(warn.index.as_deref(), Some("3"));
    assert!(!seen.iter().any(|s| s.message.contains("filtered out")));
    let single = seen.iter().find(|s| s.message == "from a future").unwrap();
    assert_eq!(single.level, log::Level::Error);
    assert_eq!(single.target, "single");
    assert_eq!(single.label.as_deref(), Some("one"));
    assert_eq!(single.index, None);
}
