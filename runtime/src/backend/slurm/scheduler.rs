//! Talking to Slurm through its commands: `sbatch` to submit, `squeue` and
//! `scontrol` (or `sacct` where accounting runs) for states, `scancel` to
//! stop. No accounting database is needed.

use crate::plan::{Capacity, Resources};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The states in which a job will not run again.
const ENDED: [&str; 10] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
];

/// Whether `state` (as squeue or scontrol print it) is final.
pub(super) fn has_ended(state: &str) -> bool {
    ENDED.iter().any(|s| state.starts_with(s))
}

/// Whether a program is on the PATH.
pub(super) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Runs a Slurm command; its stdout, or what it said when it failed.
fn run(command: &mut Command) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let out = command
        .output()
        .map_err(|e| format!("could not run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(format!("{program} failed ({}): {said}", out.status))
    }
}

/// `sbatch` options for `r`.
pub(super) fn resource_options(r: &Resources) -> Vec<String> {
    let mut options = Vec::new();
    if let Some(c) = r.cpus {
        options.push(format!("--cpus-per-task={c}"));
    }
    if let Some(bytes) = r.mem_bytes() {
        options.push(format!("--mem={}M", bytes.div_ceil(1 << 20)));
    }
    if let Some(t) = r.wall_time() {
        options.push(format!("--time={}", slurm_time(t)));
    }
    if let Some(p) = &r.partition {
        options.push(format!("--partition={p}"));
    }
    if let Some(g) = r.gpus.filter(|&g| g > 0) {
        options.push(format!("--gpus={g}"));
    }
    if let Some(n) = r.nodes {
        options.push(format!("--nodes={n}"));
    }
    if let Some(n) = r.ntasks {
        options.push(format!("--ntasks={n}"));
    }
    options.extend(r.sbatch.iter().cloned());
    options
}

/// A time limit as Slurm reads it, rounded up to whole minutes (Slurm's own
/// resolution): `hours:minutes:00`.
pub(super) fn slurm_time(limit: Duration) -> String {
    let minutes = limit.as_secs().div_ceil(60).max(1);
    format!("{}:{:02}:00", minutes / 60, minutes % 60)
}

/// Submits `script`; the job id.
pub(super) fn sbatch(script: &Path, options: &[String]) -> Result<String, String> {
    let out = run(Command::new("sbatch")
        .arg("--parsable")
        .args(options)
        .arg(script))?;
    // `--parsable` prints `id` or `id;cluster`.
    let id = out.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("sbatch answered `{}`, not a job id", out.trim()));
    }
    Ok(id)
}

/// The states of this user's jobs that Slurm still knows, array tasks one
/// by one: `123` or `123_4` → `RUNNING`.
pub(super) fn states() -> Result<HashMap<String, String>, String> {
    let out = run(Command::new("squeue").args(["--me", "-h", "-r", "-t", "all", "-o", "%i %T"]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, state)| (id.trim().to_string(), state.trim().to_string()))
        .collect())
}

/// What Slurm remembers of an ended job: its state and exit code
/// (`FAILED`, `1:0`), from scontrol, else from sacct where it runs.
pub(super) fn final_state(job: &str) -> Option<(String, String)> {
    if let Ok(text) = run(Command::new("scontrol").args(["show", "job", "-o", job])) {
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
        };
        if let (Some(state), Some(code)) = (field("JobState"), field("ExitCode")) {
            return Some((state, code));
        }
    }
    if on_path("sacct") {
        let text =
            run(Command::new("sacct").args(["-n", "-P", "-X", "-o", "State,ExitCode", "-j", job]))
                .ok()?;
        let line = text.lines().next()?;
        let (state, code) = line.split_once('|')?;
        return Some((state.to_string(), code.to_string()));
    }
    None
}

/// Whether a job that squeue shows as `state` (preempted, its node lost) is
/// requeued: Slurm runs it again under the same id, and scontrol says it
/// waits or runs.
pub(super) fn requeued(job: &str, state: &str) -> bool {
    ["PREEMPTED", "NODE_FAIL", "REQUEUE"]
        .iter()
        .any(|s| state.starts_with(s))
        && final_state(job).is_some_and(|(now, _)| {
            ["PENDING", "REQUEUE", "RUNNING", "CONFIGURING", "SUSPENDED"]
                .iter()
                .any(|s| now.starts_with(s))
        })
}

/// What Slurm gave a job (still known to scontrol): its memory and time
/// limit, for a retry that asks for more of what was not asked.
pub(super) fn given(job: &str) -> (Option<u64>, Option<Duration>) {
    let Ok(text) = run(Command::new("scontrol").args(["show", "job", "-o", job])) else {
        return (None, None);
    };
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let mem = field("MinMemoryNode")
        .and_then(|m| futurize_units::parse_memory(&m).ok())
        .filter(|&m| m > 0);
    let time = field("TimeLimit").and_then(|t| slurm_duration(&t));
    (mem, time)
}

/// What the cluster offers one job: its largest node's cores, memory and
/// GPUs, its longest partition time limit; unknown where sinfo cannot tell.
pub(super) fn capacity(name: &str) -> Capacity {
    let mut c = Capacity {
        name: format!("{name} (the largest node of this Slurm cluster)"),
        slurm: true,
        ..Capacity::default()
    };
    if let Ok(text) = run(Command::new("sinfo").args(["-h", "-N", "-o", "%N|%c|%m|%G"])) {
        let mut nodes = std::collections::HashSet::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split('|').collect();
            if f.len() < 4 {
                continue;
            }
            nodes.insert(f[0].to_string());
            if let Ok(cpus) = f[1].trim().parse::<u32>() {
                c.cpus = Some(c.cpus.unwrap_or(0).max(cpus));
            }
            if let Ok(mb) = f[2].trim().parse::<u64>() {
                c.mem = Some(c.mem.unwrap_or(0).max(mb << 20));
            }
            let gpus: u32 = f[3]
                .split(',')
                .filter(|g| g.starts_with("gpu"))
                .filter_map(|g| {
                    g.split(':')
                        .next_back()?
                        .split('(')
                        .next()?
                        .parse::<u32>()
                        .ok()
                })
                .sum();
            c.gpus = Some(c.gpus.unwrap_or(0).max(gpus));
        }
        if !nodes.is_empty() {
            c.nodes = Some(nodes.len() as u32);
        }
    }
    if let Ok(text) = run(Command::new("sinfo").args(["-h", "-o", "%l"])) {
        let limits: Vec<Option<Duration>> =
            text.lines().map(|l| slurm_duration(l.trim())).collect();
        if !limits.is_empty() && limits.iter().all(Option::is_some) {
            c.time = limits.into_iter().flatten().max();
        }
    }
    c
}

/// A time limit as sinfo prints it (`infinite`, `1-00:00:00`, `30:00`).
pub(super) fn slurm_duration(text: &str) -> Option<Duration> {
    if text == "infinite" || text == "UNLIMITED" {
        return None;
    }
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, text),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let seconds = match parts.as_slice() {
        [m] => m * 60,
        [m, s] => m * 60 + s,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86400 + seconds))
}

/// Stops jobs (`123`, `123_4`); errors are of no use to the caller.
pub(super) fn scancel(jobs: &[String]) {
    if !jobs.is_empty() {
        let _ = Command::new("scancel").args(jobs).output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_become_sbatch_options() {
        let r = Resources::new()
            .cpus(4)
            .mem("1.5G")
            .time("90s")
            .partition("short")
            .gpus(1)
            .sbatch("--qos=low");
        assert_eq!(
            resource_options(&r),
            vec![
                "--cpus-per-task=4",
                "--mem=1536M",
                "--time=0:02:00",
                "--partition=short",
                "--gpus=1",
                "--qos=low"
            ]
        );
        assert_eq!(slurm_time(Duration::from_secs(3 * 3600)), "3:00:00");
    }

    #[test]
    fn sinfo_time_limits() {
        assert_eq!(slurm_duration("infinite"), None);
        assert_eq!(slurm_duration("30:00"), Some(Duration::from_secs(1800)));
        assert_eq!(
            slurm_duration("1-02:00:00"),
            Some(Duration::from_secs(93600))
        );
    }

    #[test]
    fn ended_states() {
        assert!(has_ended("CANCELLED+") && has_ended("OUT_OF_MEMORY") && has_ended("TIMEOUT"));
        assert!(!has_ended("RUNNING") && !has_ended("PENDING") && !has_ended("COMPLETING"));
    }
}
