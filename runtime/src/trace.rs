//! `FUTURIZE_TRACE=path`: a Chrome trace of what ran where, written when the
//! program exits (JSON with `traceEvents`; open it in Perfetto or
//! chrome://tracing).
//!
//! One lane per worker (its host and pid; a thread of this process for
//! in-process plans; a Slurm job), and on the leader's lane the life of
//! each future and chunk: created, queued until a worker took it, result
//! received, collected. A span on a worker's lane is the time from sending
//! the task to receiving its answer, labelled with the call's label and the
//! element range. At exit an efficiency summary (busy time ÷ workers × wall
//! time) goes into the file, and to stderr with `FUTURIZE_TRACE_SUMMARY=1`.
//!
//! Invariant: with `FUTURIZE_TRACE` unset, recording costs one relaxed
//! atomic load per event site.

use crate::sync::lock;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The variable that names the trace file.
pub(crate) const TRACE_ENV: &str = "FUTURIZE_TRACE";

/// With `1`, the summary also goes to stderr at exit.
pub(crate) const TRACE_SUMMARY_ENV: &str = "FUTURIZE_TRACE_SUMMARY";

/// Where a span ran.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Lane {
    /// The leader: futures and calls as the program sees them.
    Leader,
    /// A worker process: `process 123` or `process 123 on node2`.
    Worker(String),
    /// A thread of this process running bodies.
    Thread(String),
}

impl Lane {
    fn is_worker(&self) -> bool {
        !matches!(self, Lane::Leader)
    }
}

struct Event {
    name: String,
    lane: Lane,
    start: Instant,
    /// `None`: an instant event.
    end: Option<Instant>,
    args: Vec<(&'static str, String)>,
}

struct Recorder {
    path: String,
    epoch: Instant,
    events: Vec<Event>,
}

static ON: AtomicBool = AtomicBool::new(false);
static RECORDER: OnceLock<Option<Mutex<Recorder>>> = OnceLock::new();

fn recorder() -> Option<&'static Mutex<Recorder>> {
    RECORDER
        .get_or_init(|| {
            let path = std::env::var(TRACE_ENV).ok().filter(|p| !p.is_empty())?;
            // SAFETY: registers a plain extern "C" function.
            unsafe { libc::atexit(write_at_exit) };
            ON.store(true, Ordering::Relaxed);
            Some(Mutex::new(Recorder {
                path,
                epoch: Instant::now(),
                events: Vec::new(),
            }))
        })
        .as_ref()
}

/// Whether spans are recorded.
pub(crate) fn on() -> bool {
    ON.load(Ordering::Relaxed) || recorder().is_some()
}

/// Records a span of `lane` from `start` to now.
pub(crate) fn span(name: &str, lane: Lane, start: Instant, args: Vec<(&'static str, String)>) {
    if !on() {
        return;
    }
    if let Some(r) = recorder() {
        lock(r).events.push(Event {
            name: name.to_string(),
            lane,
            start,
            end: Some(Instant::now()),
            args,
        });
    }
}

/// Records an instant on the leader's lane.
pub(crate) fn instant(name: &str, args: Vec<(&'static str, String)>) {
    if !on() {
        return;
    }
    if let Some(r) = recorder() {
        lock(r).events.push(Event {
            name: name.to_string(),
            lane: Lane::Leader,
            start: Instant::now(),
            end: None,
            args,
        });
    }
}

/// Marks on the leader's lane a chunk that failed: an element panicked or
/// ran out of time (`first` is the first such element), or its worker was
/// lost. Recorded when the call collects its chunks, whichever backend ran
/// them, so the worker lane's span and this mark together say what happened.
pub(crate) fn chunk_failed(
    elements: &std::ops::Range<usize>,
    first: usize,
    label: Option<&str>,
    what: String,
) {
    if !on() {
        return;
    }
    let mut args = vec![
        (
            "elements",
            format!("{}..={}", elements.start, elements.end.saturating_sub(1)),
        ),
        ("failed element", first.to_string()),
        ("error", what),
    ];
    if let Some(l) = label {
        args.push(("label", l.to_string()));
    }
    instant("chunk failed", args);
}

/// The lane of the calling thread, for bodies run in this process.
pub(crate) fn this_thread() -> Lane {
    let t = std::thread::current();
    Lane::Thread(match t.name() {
        Some(n) => n.to_string(),
        None => format!("{:?}", t.id()),
    })
}

/// The efficiency of a trace: busy time on worker lanes, the most of them
/// busy at once, and the wall time from the first event to the last.
struct Summary {
    busy: f64,
    workers: usize,
    wall: f64,
}

impl Summary {
    fn efficiency(&self) -> f64 {
        if self.workers == 0 || self.wall <= 0.0 {
            0.0
        } else {
            self.busy / (self.workers as f64 * self.wall)
        }
    }
}

fn summarize(events: &[Event]) -> Summary {
    let first = events.iter().map(|e| e.start).min();
    let last = events.iter().map(|e| e.end.unwrap_or(e.start)).max();
    let wall = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    // Workers: the most spans on worker lanes at one time (a thread pool's
    // caller runs chunks too, so lanes alone would count one too many).
    let mut edges: Vec<(Instant, i32)> = Vec::new();
    let mut busy = 0.0;
    for e in events.iter().filter(|e| e.lane.is_worker()) {
        if let Some(end) = e.end {
            busy += end.duration_since(e.start).as_secs_f64();
            edges.push((e.start, 1));
            edges.push((end, -1));
        }
    }
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    Summary {
        busy,
        workers: most as usize,
        wall,
    }
}

fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The trace as Chrome's JSON.
fn render(r: &Recorder) -> (String, Summary) {
    let summary = summarize(&r.events);
    let mut lanes: HashMap<Lane, usize> = HashMap::new();
    let mut out = String::from("{\"traceEvents\":[\n");
    let mut first = true;
    let mut lane_id = |lane: &Lane, out: &mut String, first: &mut bool| -> usize {
        let next = lanes.len();
        *lanes.entry(lane.clone()).or_insert_with(|| {
            let name = match lane {
                Lane::Leader => "leader".to_string(),
                Lane::Worker(w) => format!("worker {w}"),
                Lane::Thread(t) => format!("thread {t}"),
            };
            if !*first {
                out.push_str(",\n");
            }
            *first = false;
            let _ = write!(out, "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{next},\"tid\":0,\"args\":{{\"name\":");
            json_string(out, &name);
            out.push_str("}}");
            next
        })
    };
    for e in &r.events {
        let pid = lane_id(&e.lane, &mut out, &mut first);
        if !first {
            out.push_str(",\n");
        }
        first = false;
        let ts = e.start.duration_since(r.epoch).as_secs_f64() * 1e6;
        out.push_str("{\"name\":");
        json_string(&mut out, &e.name);
        let _ = write!(
            out,
            ",\"cat\":\"futurize\",\"pid\":{pid},\"tid\":0,\"ts\":{ts:.1}"
        );
        match e.end {
            Some(end) => {
                let dur = end.duration_since(e.start).as_secs_f64() * 1e6;
                let _ = write!(out, ",\"ph\":\"X\",\"dur\":{dur:.1}");
            }
            None => out.push_str(",\"ph\":\"i\",\"s\":\"p\""),
        }
        out.push_str(",\"args\":{");
        for (i, (k, v)) in e.args.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(&mut out, k);
            out.push(':');
            json_string(&mut out, v);
        }
        out.push_str("}}");
    }
    let _ = write!(
        out,
        "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{{\"efficiency\":{:.4},\"busy_seconds\":{:.6},\"workers\":{},\"wall_seconds\":{:.6}}}}}\n",
        summary.efficiency(),
        summary.busy,
        summary.workers,
        summary.wall
    );
    (out, summary)
}

extern "C" fn write_at_exit() {
    let Some(r) = RECORDER.get().and_then(Option::as_ref) else {
        return;
    };
    let r = lock(r);
    let (json, summary) = render(&r);
    if let Err(e) = std::fs::write(&r.path, json) {
        eprintln!("futurize: could not write the trace {}: {e}", r.path);
    }
    if std::env::var(TRACE_SUMMARY_ENV).is_ok_and(|v| v.trim() == "1") {
        eprintln!(
            "futurize trace: {} {} busy {:.3} s of {:.3} s wall time: efficiency {:.1} % ({})",
            summary.workers,
            if summary.workers == 1 {
                "worker"
            } else {
                "workers"
            },
            summary.busy,
            summary.wall,
            summary.efficiency() * 100.0,
            r.path
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn render_gives_lanes_spans_and_the_summary() {
        let epoch = Instant::now();
        let at = |ms: u64| epoch + Duration::from_millis(ms);
        let r = Recorder {
            path: String::new(),
            epoch,
            events: vec![
                Event {
                    name: "created".into(),
                    lane: Lane::Leader,
                    start: at(0),
                    end: None,
                    args: vec![],
                },
                Event {
                    name: "chunk".into(),
                    lane: Lane::Worker("process 7".into()),
                    start: at(0),
                    end: Some(at(100)),
                    args: vec![("label", "a \"b\"".into())],
                },
                Event {
                    name: "chunk".into(),
                    lane: Lane::Worker("process 8".into()),
                    start: at(0),
                    end: Some(at(50)),
                    args: vec![],
                },
            ],
        };
        let (json, s) = render(&r);
        assert_eq!(s.workers, 2);
        assert!((s.efficiency() - 0.75).abs() < 1e-6, "{}", s.efficiency());
        assert!(json.starts_with("{\"traceEvents\":["));
        assert!(json.contains("\"name\":\"worker process 7\""));
        assert!(json.contains("\"label\":\"a \\\"b\\\"\""));
        assert!(json.contains("\"efficiency\":0.7500"));
    }
}
