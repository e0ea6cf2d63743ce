//! `futurize`: what a program's cache and Slurm registry hold, seen from
//! another session (batchtools' `getStatus`, HyperQueue's `hq job list`).
//!
//! ```text
//! futurize status [--cache DIR] [--registry DIR]
//! futurize remove CALL [--cache DIR] [--registry DIR]
//! ```
//!
//! `status` lists each cached call: where it is, its elements done (values
//! kept), running and failed (its Slurm jobs, from the registry's jobs
//! record and squeue) and pending, its jobs with their states, its size and
//! when a run last opened it. `remove` deletes a call's entries (given by
//! the start of its key) and its jobs' directories.

use clap::{Parser, Subcommand};
use futurize_runtime::cache::{self, CachedCall};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "futurize",
    version,
    about = "What futurize's cache and Slurm registry hold"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the cached calls: elements done, running, failed, pending; their jobs.
    Status {
        #[command(flatten)]
        places: Places,
    },
    /// Removes a call's kept values and its jobs' directories.
    Remove {
        /// The call: its key, or enough of its start to tell it apart.
        call: String,
        #[command(flatten)]
        places: Places,
    },
}

#[derive(clap::Args)]
struct Places {
    /// The cache (else FUTURIZE_CACHE's directory, else .futurize/cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// The Slurm registry (else FUTURIZE_REGISTRY, else .futurize).
    #[arg(long)]
    registry: Option<PathBuf>,
}

impl Places {
    fn cache(&self) -> Option<PathBuf> {
        self.cache.clone().or_else(|| {
            std::env::var_os(cache::CACHE_ENV)
                .filter(|v| !v.is_empty() && v != "0" && v != "1")
                .map(PathBuf::from)
        })
    }

    fn registry(&self) -> PathBuf {
        self.registry
            .clone()
            .or_else(|| std::env::var_os("FUTURIZE_REGISTRY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(".futurize"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match &cli.command {
        Command::Status { places } => status(places),
        Command::Remove { call, places } => remove(call, places),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("futurize: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line of a cached call's jobs record in the registry.
struct Job {
    dir: String,
    task: String,
    id: String,
    elements: usize,
}

/// The jobs recorded for `call` in `registry`.
fn jobs_of(registry: &Path, call: &CachedCall) -> Vec<Job> {
    let Some(durable) = &call.durable else {
        return Vec::new();
    };
    let record = registry.join(format!("cached-{durable}")).join("jobs");
    let text = std::fs::read_to_string(record).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let [dir, _key, task, id, start, end] = f[..] else {
                return None;
            };
            let (start, end): (usize, usize) = (start.parse().ok()?, end.parse().ok()?);
            Some(Job {
                dir: dir.into(),
                task: task.into(),
                id: id.into(),
                elements: end.saturating_sub(start),
            })
        })
        .collect()
}

/// This user's Slurm jobs and their states (none without squeue).
fn job_states() -> HashMap<String, String> {
    let out = std::process::Command::new("squeue")
        .args(["--me", "-h", "-r", "-t", "all", "-o", "%i %T"])
        .output();
    let Ok(out) = out else {
        return HashMap::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, state)| (id.trim().to_string(), state.trim().to_string()))
        .collect()
}

/// A job's state as the report shows it, and whether it still runs.
fn state_of(job: &Job, registry_dir: &Path, states: &HashMap<String, String>) -> (String, bool) {
    if registry_dir
        .join(&job.dir)
        .join(format!("{}.out", job.task))
        .exists()
    {
        return ("ANSWERED".into(), false);
    }
    match states.get(&job.id) {
        Some(s)
            if matches!(
                s.as_str(),
                "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "REQUEUED" | "SUSPENDED"
            ) =>
        {
            (s.clone(), true)
        }
        Some(s) => (s.clone(), false),
        None => ("GONE".into(), false),
    }
}

fn status(places: &Places) -> Result<(), String> {
    let root = places.cache();
    let calls = cache::calls(root.as_deref()).map_err(|e| e.to_string())?;
    let shown = root
        .clone()
        .unwrap_or_else(|| PathBuf::from(".futurize/cache"));
    let registry = places.registry();
    println!(
        "cache {}: {} call{}",
        shown.display(),
        calls.len(),
        if calls.len() == 1 { "" } else { "s" }
    );
    if calls.is_empty() {
        return Ok(());
    }
    let states = job_states();
    println!(
        "{:<14} {:<28} {:<12} {:>6} {:>6} {:>7} {:>6} {:>7} {:>9}  {:<8} JOBS",
        "CALL", "SITE", "LABEL", "ALL", "DONE", "RUNNING", "FAILED", "PENDING", "SIZE", "UPDATED"
    );
    for call in &calls {
        let jobs = jobs_of(&registry, call);
        let durable_dir = registry.join(format!(
            "cached-{}",
            call.durable.clone().unwrap_or_default()
        ));
        let (mut running, mut failed, mut listed) = (0, 0, Vec::new());
        for job in &jobs {
            let (state, active) = state_of(job, &durable_dir, &states);
            if active {
                running += job.elements;
            } else if state != "ANSWERED" && state != "COMPLETED" {
                failed += job.elements;
            }
            listed.push(format!("{} {state}", job.id));
        }
        let all = call.elements.unwrap_or(call.done);
        let left = all.saturating_sub(call.done);
        let (running, failed) = (running.min(left), failed.min(left.saturating_sub(running)));
        println!(
            "{:<14} {:<28} {:<12} {:>6} {:>6} {:>7} {:>6} {:>7} {:>9}  {:<8} {}",
            &call.key[..12.min(call.key.len())],
            call.site,
            call.label.as_deref().unwrap_or("-"),
            all,
            call.done,
            running,
            failed,
            left - running - failed,
            size(call.bytes),
            age(call.updated),
            if listed.is_empty() {
                "-".into()
            } else {
                listed.join(", ")
            }
        );
    }
    Ok(())
}

fn remove(key: &str, places: &Places) -> Result<(), String> {
    let root = places.cache();
    let calls = cache::calls(root.as_deref()).map_err(|e| e.to_string())?;
    let durable = calls
        .iter()
        .find(|c| !key.is_empty() && c.key.starts_with(key))
        .and_then(|c| c.durable.clone());
    let removed = cache::remove(root.as_deref(), key).map_err(|e| e.to_string())?;
    println!("removed the kept values of call {removed}");
    if let Some(durable) = durable {
        let dir = places.registry().join(format!("cached-{durable}"));
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            println!("removed its jobs' directories {}", dir.display());
        }
    }
    Ok(())
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn age(when: Option<std::time::SystemTime>) -> String {
    let Some(secs) = when.and_then(|w| w.elapsed().ok()).map(|d| d.as_secs()) else {
        return "?".into();
    };
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}
