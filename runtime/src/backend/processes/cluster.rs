//! Workers on other machines: one connection per host (ssh, or srun inside
//! a Slurm allocation) to a host agent that starts the host's workers and
//! carries their frames (`agent.rs`, `protocol::agent`).
//!
//! The [`ClusterLauncher`] is a [`Launcher`]: the pool, its readers and
//! dispatch treat a remote worker as a local one. A remote worker's link is
//! virtual: what the pool writes becomes `Input` frames on the host's
//! connection, and a demultiplexing thread per connection writes each
//! worker's `Output` into a pipe the worker's reader reads.
//!
//! Starting a host: the connection runs a short `sh` script that looks for
//! the leader's executable (its own path where it holds the same build, a
//! shared file system; else the per-user cache `~/.cache/futurize/<build
//! id>`), and when it finds none asks for a copy, which the leader streams
//! over the same connection (stored atomically, mode 0700, checked by size
//! and by the agent's own build check before use). All hosts start in
//! parallel on the first need; a host that cannot be reached then is an
//! `Error::Launch` naming it and quoting ssh's stderr.
//!
//! Invariant: when a connection ends, every worker on it ends with it for
//! the pool (their links close, their readers report `WorkerDied` naming
//! the host); and when the leader ends, the connection's stdin closes, so
//! the agent kills its workers and exits.

use super::connection::{Connection, RemoteProcess, handshake_watchdog};
use super::link::{Launcher, Link};
use crate::Error;
use crate::plan::{Cluster, Host, Via};
use crate::protocol::agent::SEND_EXECUTABLE;
use crate::protocol::{hex, identity};
use crate::sync::lock;
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Starts workers on a cluster's hosts.
pub(crate) struct ClusterLauncher {
    spec: Cluster,
    hosts: Vec<Arc<HostState>>,
    /// Set once every host has been reached (they are reached together).
    reached: OnceLock<()>,
    next_worker: AtomicU32,
}

/// One distinct host of the plan.
pub(super) struct HostState {
    host: Host,
    /// How many workers the plan puts here.
    capacity: usize,
    live: AtomicUsize,
    connection: Mutex<Option<Arc<Connection>>>,
}

impl ClusterLauncher {
    pub(crate) fn new(spec: &Cluster) -> ClusterLauncher {
        let mut hosts: Vec<Arc<HostState>> = Vec::new();
        for h in spec.host_list() {
            let host = spec.resolved(h);
            match hosts.iter().position(|s| s.host == host) {
                Some(i) => {
                    let s = Arc::get_mut(&mut hosts[i]).expect("not shared yet");
                    s.capacity += 1;
                }
                None => hosts.push(Arc::new(HostState {
                    host,
                    capacity: 1,
                    live: AtomicUsize::new(0),
                    connection: Mutex::new(None),
                })),
            }
        }
        ClusterLauncher {
            spec: spec.clone(),
            hosts,
            reached: OnceLock::new(),
            next_worker: AtomicU32::new(1),
        }
    }

    /// Reaches every host at once; an error names each host that failed.
    fn reach_all(&self) -> Result<(), Error> {
        let failures: Vec<String> = std::thread::scope(|s| {
            let tries: Vec<_> = self
                .hosts
                .iter()
                .map(|h| s.spawn(|| self.connection(h).err()))
                .collect();
            tries
                .into_iter()
                .filter_map(|t| t.join().unwrap_or_else(|_| Some("panicked".into())))
                .collect()
        });
        if failures.is_empty() {
            let _ = self.reached.set(());
            Ok(())
        } else {
            Err(Error::Launch {
                what: format!("the workers of {}", self.spec),
                reason: failures.join("; "),
            })
        }
    }

    /// The host's live connection, connecting when there is none.
    fn connection(&self, state: &HostState) -> Result<Arc<Connection>, String> {
        let mut slot = lock(&state.connection);
        if let Some(c) = slot.as_ref().filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        let c = Arc::new(Connection::open(&self.spec, &state.host)?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The host with the most room left, relative to its share.
    fn pick(&self, skip: &[usize]) -> Option<usize> {
        (0..self.hosts.len())
            .filter(|i| !skip.contains(i))
            .filter(|&i| self.hosts[i].live.load(Ordering::Acquire) < self.hosts[i].capacity)
            .min_by(|&a, &b| {
                let load = |i: usize| {
                    self.hosts[i].live.load(Ordering::Acquire) as f64
                        / self.hosts[i].capacity as f64
                };
                load(a).total_cmp(&load(b))
            })
    }
}

impl Launcher for ClusterLauncher {
    /// Unknown: the hosts are not asked, so any request is let through.
    fn capacity(&self) -> crate::plan::Capacity {
        crate::plan::Capacity {
            name: self.spec.to_string(),
            ..Default::default()
        }
    }

    fn launch(&self) -> Result<Link, Error> {
        if self.reached.get().is_none() {
            self.reach_all()?;
        }
        let mut tried = Vec::new();
        let mut reasons = Vec::new();
        while let Some(i) = self.pick(&tried) {
            tried.push(i);
            let state = &self.hosts[i];
            let started = self.connection(state).and_then(|c| {
                let worker = self.next_worker.fetch_add(1, Ordering::Relaxed);
                c.start_worker(worker, &self.spec)
            });
            match started {
                Ok((link, worker, connection)) => {
                    state.live.fetch_add(1, Ordering::AcqRel);
                    let process = RemoteProcess {
                        watchdog: Some(handshake_watchdog(
                            &connection,
                            worker,
                            self.spec.launch_timeout,
                        )),
                        connection,
                        worker,
                        host: state.host.to_string(),
                        stderr_tail: None,
                        seat: Some(Seat(state.clone())),
                    };
                    return Ok(Link {
                        process: Box::new(process),
                        ..link
                    });
                }
                Err(why) => reasons.push(why),
            }
        }
        Err(Error::Launch {
            what: format!("a worker of {}", self.spec),
            reason: if reasons.is_empty() {
                "every host runs as many workers as the plan gives it".into()
            } else {
                reasons.join("; ")
            },
        })
    }
}

/// A worker's place on its host, given back when the worker is gone.
pub(super) struct Seat(Arc<HostState>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The script that finds (or receives) this executable on the host and
/// starts it as the host's agent.
pub(super) fn start_script(always_copy: bool) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the leader's executable: {e}"))?;
    let size = std::fs::metadata("/proc/self/exe")
        .map_err(|e| format!("the leader's executable: {e}"))?
        .len();
    let id = hex(identity::build_id());
    Ok(format!(
        r#"exe={exe}; id={id}; size={size}
dir="${{XDG_CACHE_HOME:-$HOME/.cache}}/futurize"; cached="$dir/$id"
try() {{
  [ -f "$1" ] && [ -x "$1" ] && [ "$(($(wc -c < "$1")))" -eq "$size" ] || return 1
  FUTURIZE_AGENT="$id" "$1"; rc=$?
  [ "$rc" -eq 75 ] && return 1
  exit "$rc"
}}
{try_exe}try "$cached"
mkdir -p "$dir" && chmod 700 "$dir" || exit 1
tmp="$dir/.$id.$$"
printf '%s\n' {send}
head -c "$size" > "$tmp"
if [ "$(($(wc -c < "$tmp")))" -ne "$size" ]; then rm -f "$tmp"; echo "futurize: the copy of the executable in $dir is incomplete" >&2; exit 1; fi
chmod 700 "$tmp" && mv -f "$tmp" "$cached" || {{ rm -f "$tmp"; exit 1; }}
try "$cached"
echo "futurize: $cached does not start as a futurize agent of build $id" >&2
exit 1
"#,
        exe = shell_quote(&exe.to_string_lossy()),
        try_exe = if always_copy { "" } else { "try \"$exe\"\n" },
        send = SEND_EXECUTABLE,
    ))
}

/// Whether srun starts the agents: inside a Slurm allocation whose nodes
/// include every host, unless the plan says otherwise.
fn via_srun(spec: &Cluster) -> bool {
    match spec.via {
        Via::Ssh => false,
        Via::Srun => true,
        Via::Auto => {
            let nodes = std::env::var("SLURM_JOB_NODELIST")
                .ok()
                .and_then(|l| crate::cores::parse_hostlist(&l).ok());
            std::env::var_os("SLURM_JOB_ID").is_some()
                && nodes.is_some_and(|n| spec.host_list().iter().all(|h| n.contains(&h.name)))
        }
    }
}

/// The command that starts `script` on `host`: over srun inside an
/// allocation, else over ssh as the plan and `FUTURIZE_SSH_COMMAND` say.
pub(crate) fn command_for(spec: &Cluster, host: &Host, script: &str) -> Command {
    if via_srun(spec) {
        let mut c = Command::new("srun");
        c.args([
            "--overlap",
            // Frames must not wait in srun's line buffer.
            "--unbuffered",
            "--nodes=1",
            "--ntasks=1",
            "--quiet",
            "--nodelist",
        ])
        .arg(&host.name)
        .args(["sh", "-c", script]);
        return c;
    }
    let ssh = spec
        .ssh_command
        .clone()
        .or_else(|| std::env::var("FUTURIZE_SSH_COMMAND").ok());
    let mut c = match ssh {
        Some(ssh) if !ssh.trim().is_empty() => {
            // As git runs GIT_SSH_COMMAND: through the shell, arguments after.
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("{ssh} \"$@\"")).arg("futurize-ssh");
            c
        }
        _ => Command::new("ssh"),
    };
    // The user's options first: for ssh the first value of an option wins.
    c.args(&spec.ssh_options)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-T"]);
    if let Some(port) = host.port {
        c.arg("-p").arg(port.to_string());
    }
    if let Some(key) = &spec.identity_file {
        c.arg("-i").arg(key);
    }
    c.arg("--")
        .arg(host.destination())
        .arg(format!("sh -c {}", shell_quote(script)));
    c
}
