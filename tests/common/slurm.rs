//! A private Slurm (slurmctld, slurmd, munged) for the Slurm tests, started
//! by the project's own script (scripts/test-slurm.sh) once per test binary
//! and stopped at the binary's exit (jobs cancelled, daemons killed by pid).
//!
//! Without Slurm's packages the Slurm cases are skipped with a message
//! saying why (`.ci/run` installs slurm-wlm and munge).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Says which cases are skipped and why, past `cargo test`'s capture of
/// `eprintln!` (which would hide the line for a passing test).
fn skipped(why: String) {
    let _ = writeln!(std::io::stderr(), "{why}");
}

/// A running private Slurm.
pub(crate) struct Slurm {
    /// Its `slurm.conf`, for `SLURM_CONF`.
    pub conf: PathBuf,
    /// Its directory (logs, state, jobcomp.txt).
    pub dir: PathBuf,
}

static SINGLE: OnceLock<Option<Slurm>> = OnceLock::new();
static CLUSTER: OnceLock<Option<Slurm>> = OnceLock::new();
static ADAPTIVE: OnceLock<Option<Slurm>> = OnceLock::new();

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-slurm.sh")
}

extern "C" fn stop_at_exit() {
    for (started, verb) in [
        (&SINGLE, "stop"),
        (&CLUSTER, "stop-cluster"),
        (&ADAPTIVE, "stop-adapt"),
    ] {
        if let Some(Some(_)) = started.get() {
            let _ = Command::new("bash").arg(script()).arg(verb).output();
        }
    }
}

/// Says that the Slurm cases are skipped, and why, when one of Slurm's
/// daemons is not installed; true when they are all there.
pub(crate) fn installed() -> bool {
    for tool in [
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/sbin/munged",
    ] {
        if !std::path::Path::new(tool).exists() {
            skipped(format!(
                "SKIPPED: the Slurm cases need {tool}: apt-get install slurm-wlm munge \
                 (.ci/run does)"
            ));
            return false;
        }
    }
    true
}

/// The job id of the first job of this user that squeue shows as running
/// with `name` in its job name, waiting up to `within` for one.
pub(crate) fn running_job(name: &str, within: std::time::Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let out = Command::new("squeue")
            .args(["--me", "-h", "-t", "RUNNING", "-o", "%i %j"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = text.lines().find(|l| l.contains(name)) {
            return line.split_whitespace().next().map(str::to_string);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

fn start(verb: &str) -> Option<Slurm> {
    if !installed() {
        return None;
    }
    let out = Command::new("bash")
        .arg(script())
        .arg(verb)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/test-slurm.sh {verb} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::atexit(stop_at_exit) };
    });
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .map(|v| PathBuf::from(v.trim().trim_matches('"')))
    };
    let conf = value("SLURM_CONF").expect("the script prints SLURM_CONF");
    // The Slurm commands the backend runs find this cluster through it.
    // SAFETY: set once, before any job is submitted; the tests of one binary
    // all use the same value.
    unsafe { std::env::set_var("SLURM_CONF", &conf) };
    Some(Slurm {
        conf,
        dir: value("FUTURIZE_TEST_SLURM_DIR").expect("the script prints its directory"),
    })
}

/// A single-node Slurm, or `None` (skipped).
pub(crate) fn single() -> Option<&'static Slurm> {
    SINGLE.get_or_init(|| start("start")).as_ref()
}

/// A fake three-node Slurm (n1, n2, n3 on this host), or `None` (skipped).
pub(crate) fn three_nodes() -> Option<&'static Slurm> {
    CLUSTER.get_or_init(|| start("start-cluster")).as_ref()
}

/// A single-node Slurm whose `--mem` is enforced (a job over it ends
/// `FAILED`, exit code 0:9, "Exceeded job memory limit" in its log) and
/// whose partition `high` preempts `debug` by requeueing its jobs, or `None`
/// (skipped). Its own directory and ports, so it runs beside `single()` and
/// `three_nodes()`; it sets `SLURM_CONF` like them, so a test binary uses
/// one of the three.
pub(crate) fn adaptive() -> Option<&'static Slurm> {
    ADAPTIVE.get_or_init(|| start("start-adapt")).as_ref()
}

/// A worker pool on the fake three-node Slurm for the conformance tests (2
/// allocations given back after 1 s idle, a registry of this process's own),
/// or `None` (skipped).
pub(crate) fn pool() -> Option<futurize::SlurmPool> {
    three_nodes()?;
    let registry =
        std::env::temp_dir().join(format!("futurize-pool-conformance-{}", std::process::id()));
    Some(
        futurize::Slurm::pool()
            .allocations(2)
            .idle(std::time::Duration::from_secs(1))
            .registry(registry),
    )
}
