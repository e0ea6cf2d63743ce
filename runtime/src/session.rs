//! What [`session_info()`] reports: this build, this machine, the plan in
//! force and the places it runs work, in one value that prints like R's
//! `sessionInfo()` next to parallelly's `availableCores(which = "all")`
//! and future's `plan()`, for a bug report or a first look at a new machine.
//!
//! Gathering it reads files and the environment and never connects
//! anywhere: the hosts of a cluster plan and Slurm's controller are asked
//! only by [`SessionInfo::check_hosts`], which may wait seconds on a network.

use crate::plan::{Cluster, Host, Level, human_bytes};
use crate::{Error, Plan};
use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one check may take in all (connecting, logging in, `true`).
const CHECK_LIMIT: Duration = Duration::from_secs(15);

/// Everything [`session_info()`] found; `Display` prints it as a report,
/// the fields hold each part.
///
/// ```
/// use futurize_runtime::{Multithread, session_info, with_plan};
/// let _g = with_plan(Multithread::workers(2));
/// let info = session_info();
/// assert_eq!(info.plan.as_ref().unwrap().to_string(), "multithread:2");
/// assert_eq!(info.workers.as_ref().ok(), Some(&2));
/// assert!(info.to_string().contains("multithread:2"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionInfo {
    /// futurize's version.
    pub version: &'static str,
    /// This executable's build id in hex (40 digits for a GNU build id):
    /// what a worker's handshake compares, and the name of the cache
    /// directory hosts keep the executable in.
    pub build_id: String,
    /// `rustc -V` of the compiler that built futurize.
    pub rustc: &'static str,
    /// The operating system (`PRETTY_NAME` of `/etc/os-release`).
    pub os: String,
    /// The kernel and its release (`Linux 6.1.0-18-amd64`).
    pub kernel: String,
    /// The CPU architecture (`x86_64`, `aarch64`, …).
    pub arch: &'static str,
    /// This machine's host name.
    pub hostname: String,
    /// What [`available_cores`](crate::available_cores) answers.
    pub cores: usize,
    /// The method that decided [`SessionInfo::cores`].
    pub cores_method: &'static str,
    /// What each method of [`available_cores`](crate::available_cores)
    /// says, `None` where it sets no limit.
    pub cores_by_method: Vec<(&'static str, Option<usize>)>,
    /// What [`available_memory`](crate::cores::available_memory) answers, in bytes.
    pub memory: u64,
    /// What [`available_workers`](crate::available_workers) answers.
    pub available_workers: Vec<String>,
    /// The plan in force, or why `FUTURIZE_PLAN` cannot be used.
    pub plan: Result<Plan, Error>,
    /// Where that plan comes from: `"set in code: plan()"`, `"from
    /// FUTURIZE_PLAN"`, …
    pub plan_source: &'static str,
    /// The `FUTURIZE_*` variables of this process's environment, by name.
    pub environment: Vec<(String, String)>,
    /// What [`nbr_of_workers`](crate::nbr_of_workers) answers.
    pub workers: Result<usize, Error>,
    /// What [`nbr_of_free_workers`](crate::nbr_of_free_workers) answers.
    pub free_workers: Result<usize, Error>,
    /// Each distinct host of a cluster plan (empty for other plans).
    pub hosts: Vec<HostInfo>,
    /// For a Slurm plan, whether `sinfo` answered (else `None`).
    pub slurm: Option<HostState>,
    /// Slurm's partitions as `sinfo -h -o "%P %a %D %t"` lists them
    /// (name, availability, nodes, state), once checked.
    pub partitions: Vec<String>,
}

/// A distinct host of a cluster plan.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostInfo {
    /// The host, with the plan-wide user and port filled in.
    pub host: Host,
    /// How many workers the plan runs there.
    pub workers: usize,
    /// Whether it answered [`SessionInfo::check_hosts`].
    pub state: HostState,
}

/// Whether a host (or Slurm's controller) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostState {
    /// Not asked yet: [`SessionInfo::check_hosts`] asks.
    NotChecked,
    /// It answered, after this long.
    Reachable {
        /// From starting ssh (or `sinfo`) to its successful end.
        after: Duration,
    },
    /// It did not answer.
    Unreachable {
        /// What ssh (or `sinfo`) said.
        reason: String,
    },
}

/// This build, this machine, the plan in force and its workers, in one
/// value whose `Display` is a report to paste into a bug report (R's
/// `sessionInfo()`). It never connects anywhere:
/// [`SessionInfo::check_hosts`] adds whether a cluster's hosts answer.
///
/// ```
/// let info = futurize_runtime::session_info();
/// assert!(info.cores >= 1);
/// println!("{info}");
/// ```
pub fn session_info() -> SessionInfo {
    let cores_by_method = crate::cores::cores_by_method();
    let (cores_method, cores) = crate::cores::deciding_method(&cores_by_method);
    let plan = crate::current_plan();
    let hosts = plan.as_ref().map_or_else(|_| Vec::new(), host_specs);
    let hosts = (hosts.into_iter())
        .map(|(_, host, workers)| HostInfo {
            host,
            workers,
            state: HostState::NotChecked,
        })
        .collect();
    let slurm = plan
        .as_ref()
        .is_ok_and(|p| first_levels(p).any(|l| matches!(l, Level::Slurm(_) | Level::SlurmPool(_))))
        .then_some(HostState::NotChecked);
    SessionInfo {
        version: env!("CARGO_PKG_VERSION"),
        build_id: crate::protocol::hex(crate::protocol::identity::build_id()),
        rustc: env!("FUTURIZE_RUSTC_VERSION"),
        os: os_name(),
        kernel: kernel(),
        arch: std::env::consts::ARCH,
        hostname: kernel_file("hostname").unwrap_or_else(|| "unknown".into()),
        cores,
        cores_method,
        cores_by_method,
        memory: crate::cores::available_memory(),
        available_workers: crate::available_workers(),
        workers: crate::nbr_of_workers(),
        free_workers: crate::active::free_workers_without_starting(),
        plan,
        plan_source: crate::active::plan_source(),
        environment: futurize_variables(),
        hosts,
        slurm,
        partitions: Vec::new(),
    }
}

/// The `FUTURIZE_*` variables of the environment, sorted by name.
fn futurize_variables() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            k.starts_with("FUTURIZE_")
                .then(|| (k, v.to_string_lossy().into_owned()))
        })
        .collect();
    vars.sort();
    vars
}

impl SessionInfo {
    /// Asks every host of a cluster plan, all at once, whether it answers:
    /// `ssh -o BatchMode=yes -o ConnectTimeout=5 host true`, run as the
    /// workers' connections run (the plan's `ssh_command`, else
    /// `FUTURIZE_SSH_COMMAND`, its ssh options, port and identity file;
    /// `srun` where the plan starts workers through srun). For a Slurm plan
    /// it asks `sinfo` for the partitions. Takes at most 15 seconds.
    ///
    /// ```
    /// use futurize_runtime::{Sequential, session_info, with_plan};
    /// let _g = with_plan(Sequential);
    /// let mut info = session_info();
    /// info.check_hosts(); // nothing to ask under a local plan
    /// assert!(info.hosts.is_empty() && info.slurm.is_none());
    /// ```
    pub fn check_hosts(&mut self) -> &mut SessionInfo {
        let Ok(plan) = &self.plan else {
            return self;
        };
        let specs = host_specs(plan);
        std::thread::scope(|s| {
            let slurm = self.slurm.is_some().then(|| s.spawn(ask_sinfo));
            let checks: Vec<_> = specs
                .iter()
                .map(|(spec, host, _)| s.spawn(move || reach(spec, host)))
                .collect();
            for (info, check) in self.hosts.iter_mut().zip(checks) {
                info.state = check.join().expect("a host check does not panic");
            }
            if let Some(slurm) = slurm {
                let (state, partitions) = slurm.join().expect("sinfo's check does not panic");
                self.slurm = Some(state);
                self.partitions = partitions;
            }
        });
        self
    }
}

/// The levels that run the program's futures: the first, or each of its
/// alternatives.
fn first_levels(plan: &Plan) -> impl Iterator<Item = &Level> {
    match plan.first() {
        Level::FirstFit(alternatives) => alternatives.iter().collect::<Vec<_>>(),
        level => vec![level],
    }
    .into_iter()
}

/// Each distinct host of the plan's clusters (user and port filled in),
/// the cluster that reaches it, and how many workers run there.
fn host_specs(plan: &Plan) -> Vec<(&Cluster, Host, usize)> {
    let mut out: Vec<(&Cluster, Host, usize)> = Vec::new();
    for level in first_levels(plan) {
        let Level::Cluster(spec) = level else {
            continue;
        };
        for host in spec.host_list().iter().map(|h| spec.resolved(h)) {
            match out.iter_mut().find(|(_, seen, _)| *seen == host) {
                Some((_, _, workers)) => *workers += 1,
                None => out.push((spec, host, 1)),
            }
        }
    }
    out
}

fn reach(spec: &Cluster, host: &Host) -> HostState {
    let started = Instant::now();
    match finish_within(&mut reach_command(spec, host), CHECK_LIMIT) {
        Ok(out) if out.status.success() => HostState::Reachable {
            after: started.elapsed(),
        },
        Ok(out) => HostState::Unreachable {
            reason: what_it_said(&out),
        },
        Err(reason) => HostState::Unreachable { reason },
    }
}

/// `true` on `host`, started the way the cluster's workers are.
fn reach_command(spec: &Cluster, host: &Host) -> Command {
    crate::backend::host_command(spec, host, "true")
}

/// Slurm's answer to `sinfo`, and its partitions.
fn ask_sinfo() -> (HostState, Vec<String>) {
    let started = Instant::now();
    let mut sinfo = Command::new("sinfo");
    sinfo.args(["-h", "-o", "%P %a %D %t"]);
    match finish_within(&mut sinfo, CHECK_LIMIT) {
        Ok(out) if out.status.success() => {
            let after = started.elapsed();
            let lines = out.stdout.lines().map(str::to_string).collect();
            (HostState::Reachable { after }, lines)
        }
        Ok(out) => (
            HostState::Unreachable {
                reason: what_it_said(&out),
            },
            Vec::new(),
        ),
        Err(reason) => (HostState::Unreachable { reason }, Vec::new()),
    }
}

/// What a finished command left.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// The non-empty lines of a failed command's stderr, else its exit status.
fn what_it_said(out: &Finished) -> String {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        format!("it ended with {}", out.status)
    } else {
        lines.join("; ")
    }
}

/// Runs `command` to its end, killing it (and what it started) past `limit`.
fn finish_within(command: &mut Command, limit: Duration) -> Result<Finished, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{program} is not on the PATH"),
            _ => format!("could not run {program}: {e}"),
        })?;
    // Read on threads of their own: a process that ssh leaves behind (a
    // ControlPersist master) may hold the pipes open past ssh's end.
    let stdout = read_to_end(child.stdout.take().expect("piped"));
    let stderr = read_to_end(child.stderr.take().expect("piped"));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                // SAFETY: signals the process group of our own child, which
                // is reaped just below.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(format!("{program} had no answer within {limit:?}"));
            }
        }
    };
    let left =
        |r: mpsc::Receiver<String>| r.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    Ok(Finished {
        status,
        stdout: left(stdout),
        stderr: left(stderr),
    })
}

fn read_to_end(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = send.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    receive
}

fn os_name() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| std::env::consts::OS.to_string())
}

/// `Linux 6.1.0-18-amd64`.
fn kernel() -> String {
    let kind = kernel_file("ostype").unwrap_or_else(|| std::env::consts::OS.to_string());
    let release = kernel_file("osrelease").unwrap_or_else(|| "(release unknown)".into());
    format!("{kind} {release}")
}

fn kernel_file(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/sys/kernel/{name}")).ok()?;
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// Keys and values line up after this many columns, as in R's `sessionInfo()`.
const KEY_WIDTH: usize = 16;

fn workers_word(n: usize) -> &'static str {
    if n == 1 { "worker" } else { "workers" }
}

/// `n1 ×2, n2`: each run of one name with its length.
fn runs(names: &[String]) -> String {
    let mut out: Vec<(String, usize)> = Vec::new();
    for name in names {
        match out.last_mut() {
            Some((last, n)) if last == name => *n += 1,
            _ => out.push((name.clone(), 1)),
        }
    }
    let parts: Vec<String> = out
        .into_iter()
        .map(|(name, n)| {
            if n == 1 {
                name
            } else {
                format!("{name} ×{n}")
            }
        })
        .collect();
    parts.join(", ")
}

impl fmt::Display for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostState::NotChecked => f.write_str("not checked (SessionInfo::check_hosts asks)"),
            HostState::Reachable { after } => write!(f, "reachable in {} ms", after.as_millis()),
            HostState::Unreachable { reason } => write!(f, "unreachable: {reason}"),
        }
    }
}

impl SessionInfo {
    fn fmt_machine(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = KEY_WIDTH;
        writeln!(f, "futurize {}", self.version)?;
        writeln!(f, "{:w$}{}", "Build id:", self.build_id)?;
        writeln!(f, "{:w$}{}", "Compiler:", self.rustc)?;
        writeln!(f, "{:w$}{}", "Running under:", self.os)?;
        writeln!(f, "{:w$}{} ({})", "Kernel:", self.kernel, self.arch)?;
        writeln!(f, "{:w$}{}", "Host name:", self.hostname)?;
        writeln!(f)?;
        let cores = (self.cores, self.cores_method);
        writeln!(f, "{:w$}{} (by {})", "Cores:", cores.0, cores.1)?;
        let name_width = self.cores_by_method.iter().map(|(m, _)| m.len()).max();
        for (method, n) in &self.cores_by_method {
            let n = n.map_or_else(|| "-".to_string(), |n| n.to_string());
            let chosen = if *method == self.cores_method {
                "  <- available_cores()"
            } else {
                ""
            };
            writeln!(
                f,
                "  {method:nw$}  {n:>4}{chosen}",
                nw = name_width.unwrap_or(0)
            )?;
        }
        let memory = match self.memory {
            u64::MAX => "unknown".to_string(),
            bytes => human_bytes(bytes),
        };
        writeln!(f, "{:w$}{memory}", "Memory:")?;
        writeln!(f, "{:w$}{}", "Worker hosts:", runs(&self.available_workers))
    }

    fn fmt_plan(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = KEY_WIDTH;
        let plan = match &self.plan {
            Ok(plan) => plan,
            Err(e) => {
                writeln!(f, "{:w$}error: {e}", "Plan:")?;
                return self.fmt_environment(f);
            }
        };
        writeln!(f, "{:w$}{plan} ({})", "Plan:", self.plan_source)?;
        for (i, level) in plan.levels().iter().enumerate() {
            let n = level.workers();
            let key = format!("  level {}", i + 1);
            writeln!(f, "{key:w$}{level} ({n} {})", workers_word(n))?;
        }
        let count = |r: &Result<usize, Error>| match r {
            Ok(n) => n.to_string(),
            Err(e) => format!("error: {e}"),
        };
        let (all, free) = (count(&self.workers), count(&self.free_workers));
        writeln!(f, "{:w$}{all} ({free} free)", "Workers:")?;
        if !self.hosts.is_empty() {
            writeln!(f, "Hosts:")?;
            let rows: Vec<(String, String, &HostState)> = (self.hosts.iter())
                .map(|h| {
                    (
                        h.host.to_string(),
                        format!("{} {}", h.workers, workers_word(h.workers)),
                        &h.state,
                    )
                })
                .collect();
            let hw = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            let ww = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
            for (host, workers, state) in rows {
                writeln!(f, "  {host:hw$}  {workers:ww$}  {state}")?;
            }
        }
        if let Some(slurm) = &self.slurm {
            writeln!(f, "{:w$}{slurm}", "Slurm (sinfo):")?;
            if !self.partitions.is_empty() {
                writeln!(f, "  PARTITION AVAIL NODES STATE")?;
            }
            for p in &self.partitions {
                writeln!(f, "  {p}")?;
            }
        }
        self.fmt_environment(f)
    }

    /// The `FUTURIZE_*` variables, one per line.
    fn fmt_environment(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = KEY_WIDTH;
        if self.environment.is_empty() {
            return writeln!(f, "{:w$}no FUTURIZE_* variables set", "Environment:");
        }
        for (i, (name, value)) in self.environment.iter().enumerate() {
            let key = if i == 0 { "Environment:" } else { "" };
            writeln!(f, "{key:w$}{name}={value}")?;
        }
        Ok(())
    }
}

/// The report: build and machine, cores by method, then the plan, its
/// workers and, for a cluster or Slurm plan, the hosts' state.
impl fmt::Display for SessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_machine(f)?;
        writeln!(f)?;
        self.fmt_plan(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cluster, with_plan};

    #[test]
    fn a_cluster_lists_each_distinct_host_with_its_workers() {
        let _g = with_plan(Cluster::hosts(["n1", "n1", "me@n2:2222", "n1"]).port(22));
        let info = session_info();
        let hosts: Vec<(String, usize)> = info
            .hosts
            .iter()
            .map(|h| (h.host.to_string(), h.workers))
            .collect();
        assert_eq!(hosts, [("n1:22".into(), 3), ("me@n2:2222".into(), 1)]);
        assert!(info.hosts.iter().all(|h| h.state == HostState::NotChecked));
        let text = info.to_string();
        assert!(
            text.contains("  n1:22       3 workers  not checked"),
            "{text}"
        );
    }

    #[test]
    fn alternatives_count_their_clusters_and_slurm() {
        let p = Plan::first_fit([Cluster::hosts(["a"]).into(), crate::Slurm::jobs().into()]);
        let _g = with_plan(p);
        let info = session_info();
        assert_eq!(info.hosts.len(), 1);
        assert_eq!(info.slurm, Some(HostState::NotChecked));
    }

    #[test]
    fn a_missing_program_is_named() {
        let mut c = Command::new("futurize-no-such-program");
        let why = finish_within(&mut c, CHECK_LIMIT).err().unwrap();
        assert_eq!(why, "futurize-no-such-program is not on the PATH");
    }

    #[test]
    fn a_command_past_its_limit_is_ended() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let started = Instant::now();
        let why = finish_within(&mut c, Duration::from_millis(200))
            .err()
            .unwrap();
        assert!(why.contains("no answer within"), "{why}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_failure_quotes_stderr() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo 'first' >&2; echo >&2; echo 'second' >&2; exit 3",
        ]);
        let out = finish_within(&mut c, CHECK_LIMIT).unwrap();
        assert_eq!(what_it_said(&out), "first; second");
    }

    #[test]
    fn runs_of_names() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(runs(&names(&["a", "a", "b", "a"])), "a ×2, b, a");
        assert_eq!(runs(&names(&["localhost"])), "localhost");
    }
}
