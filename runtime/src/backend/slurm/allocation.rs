//! The Slurm side of a worker pool (`slurm-pool`): batch jobs that only
//! hold an allocation while the leader's host agent runs inside it as a
//! step (`srun --jobid=<job> --overlap`, started by the pool's launcher in
//! `processes/allocations.rs`).
//!
//! A holding job runs a short shell loop, no futurize code: it waits for the
//! agent's step to write its pid into the allocation's file, and ends once
//! that process is gone, or when none came within its first-contact time.
//! So an allocation whose leader was killed (its srun's stdin closes, the
//! agent ends) is given back within a second or two, and one that started
//! after its leader died within the first-contact time.

use super::registry::{self, CallDir};
use super::scheduler;
use crate::Error;
use crate::plan::{Resources, SlurmPool};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn launch_error(reason: impl Into<String>) -> Error {
    Error::Launch {
        what: "an allocation of the Slurm worker pool".into(),
        reason: reason.into(),
    }
}

/// Submits the jobs that hold a pool's allocations.
pub(crate) struct Holders {
    dir: CallDir,
    /// The leader's heartbeat: touched while it lives.
    alive: PathBuf,
    last_beat: std::sync::Mutex<Option<std::time::Instant>>,
    template: Option<String>,
    resources: Resources,
    cwd: PathBuf,
    next: AtomicU64,
}

/// A submitted holding job.
pub(crate) struct Held {
    pub(crate) job: String,
    /// Where the agent's step writes its pid.
    pub(crate) pid_file: PathBuf,
}

/// What squeue says of a pool's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) state: String,
    /// The node it runs on (its first, for a multi-node job).
    pub(crate) node: Option<String>,
    /// Its time left, where limited.
    pub(crate) left: Option<Duration>,
}

impl Holders {
    /// Checks the registry and template for `spec`; each allocation asks
    /// for `cpus` cpus on one node unless the plan's resources say
    /// otherwise.
    pub(crate) fn new(spec: &SlurmPool, cpus: u32) -> Result<Holders, Error> {
        if !scheduler::on_path("sbatch") || !scheduler::on_path("srun") {
            return Err(launch_error(
                "`sbatch` and `srun` must be on the PATH: run on a Slurm login node, or load \
                 Slurm's module",
            ));
        }
        let registry::Placed {
            cwd,
            root,
            template,
        } = registry::placed(&spec.jobs, launch_error)?;
        let mut resources = spec.jobs.resources.clone();
        if resources.cpus.is_none() {
            resources.cpus = Some(cpus);
        }
        if resources.nodes.is_none() {
            resources.nodes = Some(1);
        }
        resources.check().map_err(|why| Error::Resources {
            asked: resources.to_string(),
            why,
        })?;
        let dir = CallDir::create(&root, "pool")?;
        let alive = dir.path.join("leader-alive");
        crate::protocol::job::create_private(&alive, 0o600)
            .map_err(|e| registry::registry_error(&alive, e))?;
        Ok(Holders {
            dir,
            alive,
            last_beat: std::sync::Mutex::new(None),
            template,
            resources,
            cwd,
            next: AtomicU64::new(1),
        })
    }

    /// Submits one holding job, which ends by itself when no agent has
    /// written its pid within `first_contact`, and once that agent is gone.
    pub(crate) fn submit(&self, first_contact: Duration) -> Result<Held, Error> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let pid_file = self.dir.path.join(format!("agent-{n}.pid"));
        let command = hold_loop(&pid_file, &self.alive, first_contact);
        let script = match &self.template {
            None => format!("#!/bin/sh\n{command}\n"),
            Some(t) => t.replace(registry::COMMAND_PLACEHOLDER, &command),
        };
        let script = registry::write_script(&self.dir.path, &format!("hold-{n}.sh"), &script)?;
        let mut options = vec![
            "--job-name=futurize-pool".to_string(),
            format!("--chdir={}", self.cwd.display()),
            format!("--output={}/log-%j.txt", self.dir.path.display()),
            // A preempted allocation is lost to the pool, which asks for
            // another; Slurm must not run the holding loop again.
            "--no-requeue".into(),
        ];
        options.extend(scheduler::resource_options(&self.resources));
        let job = scheduler::sbatch(&script, &options).map_err(launch_error)?;
        log::debug!("futurize: pool allocation {job} asked for");
        Ok(Held { job, pid_file })
    }

    /// Says that the leader lives (at most every 2 s): a holding job
    /// whose agent has not come yet ends once this goes stale.
    pub(crate) fn heartbeat(&self) {
        let mut last = crate::sync::lock(&self.last_beat);
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        if let Ok(f) = std::fs::File::options().write(true).open(&self.alive) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    /// The log of `job`, for messages.
    pub(crate) fn log_tail(&self, job: &str) -> String {
        registry::log_tail(&self.dir.path.join(format!("log-{job}.txt")))
    }
}

impl Drop for Holders {
    /// The pool is done: its directory goes, which also ends any holding
    /// loop still waiting (its heartbeat file is gone).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir.path);
    }
}

/// How stale the leader's heartbeat file may grow before a holding job
/// with no agent in it ends.
pub(crate) const LEADER_SILENT_FOR: Duration = Duration::from_secs(15);

/// The holding loop: while an agent's pid is in the pid file, wait for its
/// end (an agent that wrote its pid and is gone ends the job, even if it was
/// gone before the loop first looked); with no agent yet, wait while the
/// leader's heartbeat file is fresh, and at most `first_contact`.
fn hold_loop(pid_file: &Path, alive: &Path, first_contact: Duration) -> String {
    let quote = |p: &Path| format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"));
    format!(
        "# futurize worker pool: holds this allocation while the leader's agent runs in it\n\
         pidfile={file}; alive={alive}; first={first}; stale={stale}; waited=0\n\
         while :; do\n\
         \x20 if [ -s \"$pidfile\" ]; then kill -0 \"$(cat \"$pidfile\")\" 2>/dev/null || exit 0\n\
         \x20 elif [ \"$waited\" -ge \"$first\" ]; then exit 0\n\
         \x20 elif [ $(( $(date +%s) - $(stat -c %Y \"$alive\" 2>/dev/null || echo 0) )) -gt \"$stale\" ]; then exit 0\n\
         \x20 fi\n\
         \x20 sleep 1; waited=$((waited + 1))\n\
         done",
        file = quote(pid_file),
        alive = quote(alive),
        first = first_contact.as_secs().max(1),
        stale = LEADER_SILENT_FOR.as_secs(),
    )
}

/// What squeue says of `jobs` now; a job it no longer shows is absent.
pub(crate) fn seen(jobs: &[String]) -> Result<std::collections::HashMap<String, Seen>, String> {
    if jobs.is_empty() {
        return Ok(Default::default());
    }
    let out = std::process::Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%i|%T|%N|%L", "-j"])
        .arg(jobs.join(","))
        .output()
        .map_err(|e| format!("could not run squeue: {e}"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        // A job Slurm forgot makes squeue fail when it is the only one.
        if said.contains("Invalid job id") {
            return Ok(Default::default());
        }
        return Err(format!("squeue failed: {}", said.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let [id, state, nodes, left] = f.as_slice() else {
                return None;
            };
            let node = crate::cores::parse_hostlist(nodes.trim())
                .ok()
                .and_then(|n| n.into_iter().next())
                .filter(|n| !n.is_empty());
            Some((
                id.trim().to_string(),
                Seen {
                    state: state.trim().to_string(),
                    node,
                    left: scheduler::slurm_duration(left.trim()),
                },
            ))
        })
        .collect())
}

/// Whether a job in `state` will not run (again).
pub(crate) fn has_ended(state: &str) -> bool {
    scheduler::has_ended(state)
}

/// Cancels `jobs`.
pub(crate) fn cancel(jobs: &[String]) {
    scheduler::scancel(jobs);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the holding loop to its end: how long it held.
    fn hold(pid_file: &Path, alive: &Path, first_contact: Duration) -> Duration {
        let t = std::time::Instant::now();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(hold_loop(pid_file, alive, first_contact))
            .status()
            .unwrap();
        assert!(status.success());
        t.elapsed()
    }

    #[test]
    fn the_hold_loop_waits_for_the_agent_then_ends() {
        let dir = std::env::temp_dir().join(format!("futurize-hold-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("agent.pid");
        let alive = dir.join("alive");
        std::fs::write(&alive, "").unwrap();
        // No agent within 1 s: it ends by itself.
        let held = hold(&pid_file, &alive, Duration::from_secs(1));
        assert!(held < Duration::from_secs(5), "{held:?}");
        // No agent yet and a leader silent for an hour: it ends at once,
        // long before its first-contact time.
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&alive)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let held = hold(&pid_file, &alive, Duration::from_secs(60));
        assert!(held < Duration::from_secs(30), "{held:?}");
        // An agent that runs holds it; once the agent is gone it ends.
        let mut agent = std::process::Command::new("sleep")
            .arg("3")
            .spawn()
            .unwrap();
        std::fs::write(&pid_file, agent.id().to_string()).unwrap();
        // Reaped as soon as it ends (a zombie would still answer `kill -0`).
        let reaper = std::thread::spawn(move || agent.wait());
        let held = hold(&pid_file, &alive, Duration::from_secs(1));
        reaper.join().unwrap().unwrap();
        assert!(held >= Duration::from_millis(2500), "{held:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
