//! A bench's private single-node Slurm (scripts/test-slurm.sh with a
//! directory and ports of its own), stopped when dropped or at exit.
//!
//! Shared by benches/slurm.rs and benches/slurm_pool.rs (`#[path]`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The running cluster's directory, for the exit hook.
static RUNNING: Mutex<Option<PathBuf>> = Mutex::new(None);

/// A running private Slurm.
pub(crate) struct Slurm {
    /// Its `slurm.conf` (`SLURM_CONF` is set to it in this process).
    pub conf: PathBuf,
}

impl Drop for Slurm {
    fn drop(&mut self) {
        stop();
    }
}

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-slurm.sh")
}

/// Cancels the cluster's jobs, ends its daemons (by pid, as the script
/// does) and removes its directory.
pub(crate) fn stop() {
    let Some(dir) = RUNNING.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let out = Command::new("bash")
        .arg(script())
        .arg("stop")
        .env("SLURM_TEST_DIR", &dir)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(lock_file(&dir));
        }
        Ok(o) => eprintln!(
            "warning: scripts/test-slurm.sh stop failed for {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("warning: could not run scripts/test-slurm.sh stop: {e}"),
    }
}

extern "C" fn stop_at_exit() {
    stop();
}

/// The script's lock file beside `dir` (`$S.lock`).
fn lock_file(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("a bound address").port()
}

/// Starts the cluster and points this process's `SLURM_CONF` at it;
/// `None` (with a SKIPPED line) when this machine cannot run it.
///
/// Call before any other thread runs (it sets an environment variable).
pub(crate) fn start() -> Option<Slurm> {
    for tool in [
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/sbin/munged",
    ] {
        if !Path::new(tool).exists() {
            println!(
                "SKIPPED: the Slurm benchmarks need {tool}: apt-get install slurm-wlm munge \
                 (.ci/run does)"
            );
            return None;
        }
    }
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        println!(
            "SKIPPED: the Slurm benchmarks need root (scripts/test-slurm.sh runs SlurmUser=root)"
        );
        return None;
    }
    let dir = std::env::temp_dir().join(format!("futurize-slurm-bench-{}", std::process::id()));
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir.clone());
    // SAFETY: registers a plain extern "C" function.
    unsafe { libc::atexit(stop_at_exit) };
    // A free port can be taken between the probe and the daemons' bind:
    // try a few pairs.
    let mut failures = Vec::new();
    for _ in 0..3 {
        let ctld = free_port();
        let mut slurmd = free_port();
        while slurmd == ctld {
            slurmd = free_port();
        }
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .env("SLURM_TEST_DIR", &dir)
            .env("SLURM_TEST_CTLD_PORT", ctld.to_string())
            .env("SLURM_TEST_SLURMD_PORT", slurmd.to_string())
            .output()
            .expect("bash runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            let conf = text
                .lines()
                .find_map(|l| l.strip_prefix("export SLURM_CONF="))
                .map(|v| PathBuf::from(v.trim().trim_matches('"')))
                .expect("the script prints SLURM_CONF");
            // The Slurm commands (the backend's and the floor's) find this
            // cluster through it.
            // SAFETY: called first thing in `main`, before other threads.
            unsafe { std::env::set_var("SLURM_CONF", &conf) };
            return Some(Slurm { conf });
        }
        // Clean up what half started before trying other ports.
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .env("SLURM_TEST_DIR", &dir)
            .output();
        let port_taken = text.contains("in use") || text.contains("bind");
        failures.push(text);
        if !port_taken {
            break;
        }
    }
    panic!(
        "scripts/test-slurm.sh start failed: {}",
        failures.join("\n")
    );
}
