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

use super::link::{Launcher, Link, WorkerProcess};
use crate::Error;
use crate::plan::{Cluster, Host, Via};
use crate::protocol::agent::{AGENT_READY, FromAgent, SEND_EXECUTABLE, ToAgent};
use crate::protocol::{codec, hex, identity, wire};
use crate::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, PipeWriter, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, mpsc};
use std::time::Duration;

/// Variables every remote worker gets from the leader when they are set.
const ALWAYS_PASSED: [&str; 3] = ["RUST_LOG", "RUST_BACKTRACE", "FUTURIZE_MAX_FRAME_BYTES"];

/// Lines of a connection's stderr kept for error messages.
const STDERR_LINES: usize = 12;

/// Starts workers on a cluster's hosts.
pub(crate) struct ClusterLauncher {
    spec: Cluster,
    hosts: Vec<Arc<HostState>>,
    /// Set once every host has been reached (they are reached together).
    reached: OnceLock<()>,
    next_worker: AtomicU32,
}

/// One distinct host of the plan.
struct HostState {
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
                        last_words: None,
                        seat: Seat(state.clone()),
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
struct Seat(Arc<HostState>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connection to one host's agent.
struct Connection {
    host: String,
    to_agent: Mutex<ChildStdin>,
    routes: Arc<Routes>,
}

/// Where each worker's bytes go, and what the demultiplexer learned.
struct Routes {
    map: Mutex<RouteMap>,
    changed: Condvar,
    /// The last lines ssh (or the agent, or a worker outside its tasks)
    /// wrote to stderr.
    stderr: Arc<Mutex<VecDeque<String>>>,
}

#[derive(Default)]
struct RouteMap {
    routes: HashMap<u32, Route>,
    /// Why the connection ended, once it has.
    ended: Option<String>,
}

#[derive(Default)]
struct Route {
    output: Option<PipeWriter>,
    started: Option<Result<u32, String>>,
    exited: Option<(String, Option<String>)>,
}

/// Runs `program` with its stderr lines kept (the last few) and passed on to
/// this process's stderr once the connection is up.
fn keep_stderr(from: impl Read + Send + 'static, host: String) -> Arc<Mutex<VecDeque<String>>> {
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    let tail = kept.clone();
    let _ = std::thread::Builder::new()
        .name(format!("futurize-stderr-{host}"))
        .spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{host}] {line}");
                let mut tail = lock(&tail);
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    kept
}

fn tail_of(stderr: &Mutex<VecDeque<String>>) -> String {
    let lines: Vec<String> = lock(stderr).iter().cloned().collect();
    if lines.is_empty() {
        "nothing on stderr".into()
    } else {
        format!("its stderr: {}", lines.join(" | "))
    }
}

/// Quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The script that finds (or receives) this executable on the host and
/// starts it as the host's agent.
fn start_script(always_copy: bool) -> Result<String, String> {
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

impl Connection {
    /// Starts the host's agent: runs the start-up script, sends the
    /// executable when asked, and waits for the agent, within the plan's
    /// launch timeout.
    fn open(spec: &Cluster, host: &Host) -> Result<Connection, String> {
        let name = host.to_string();
        let fail = |why: String| format!("{name}: {why}");
        let script = start_script(spec.always_ship).map_err(fail)?;
        let mut command = command_for(spec, host, &script);
        // Its own process group, so that ending it ends an ssh started
        // through `sh -c` too.
        let mut child = command
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("could not run {:?}: {e}", command.get_program())))?;
        let stderr = keep_stderr(child.stderr.take().expect("piped"), name.clone());
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let pid = child.id();
        // Past the limit the connection is ended, which ends the wait below.
        let (cancel, cancelled) = mpsc::channel::<()>();
        let limit = spec.launch_timeout;
        let timer = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = cancelled.recv_timeout(limit) {
                // SAFETY: signals the process group of our own child, which
                // is reaped only below.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                return true;
            }
            false
        });
        let started = bootstrap(&mut stdin, &mut stdout);
        let _ = cancel.send(());
        let timed_out = timer.join().unwrap_or(false);
        let agent_pid = match started {
            Ok(pid) => pid,
            Err(why) => {
                // SAFETY: as above.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                let status = child
                    .wait()
                    .map(super::link::describe_exit)
                    .unwrap_or_default();
                // Let the stderr thread take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                let why = if timed_out {
                    format!("it did not start within {limit:?}")
                } else {
                    why
                };
                return Err(fail(format!(
                    "{why} (the connection ended with {status}; {})",
                    tail_of(&stderr)
                )));
            }
        };
        let routes = Arc::new(Routes {
            map: Mutex::new(RouteMap::default()),
            changed: Condvar::new(),
            stderr,
        });
        let for_thread = routes.clone();
        std::thread::Builder::new()
            .name(format!("futurize-host-{name}"))
            .spawn(move || demultiplex(stdout, child, &for_thread))
            .map_err(|e| fail(e.to_string()))?;
        log::debug!("futurize: agent {agent_pid} serves on {name}");
        Ok(Connection {
            host: name,
            to_agent: Mutex::new(stdin),
            routes,
        })
    }

    fn is_alive(&self) -> bool {
        lock(&self.routes.map).ended.is_none()
    }

    fn send(&self, message: &ToAgent, payload: &[u8]) -> std::io::Result<()> {
        let mut to = lock(&self.to_agent);
        wire::write_message(&mut *to, message, payload, codec::max_frame_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string()))
    }

    /// Asks the agent for worker `worker`; its link once it runs.
    fn start_worker(
        self: &Arc<Self>,
        worker: u32,
        spec: &Cluster,
    ) -> Result<(Link, u32, Arc<Connection>), String> {
        let (reader, writer) = std::io::pipe().map_err(|e| format!("{}: {e}", self.host))?;
        lock(&self.routes.map).routes.insert(
            worker,
            Route {
                output: Some(writer),
                ..Route::default()
            },
        );
        let env: Vec<(String, String)> = ALWAYS_PASSED
            .iter()
            .map(|s| s.to_string())
            .chain(spec.env.iter().cloned())
            .filter_map(|k| std::env::var(&k).ok().map(|v| (k, v)))
            .collect();
        let cwd = std::env::current_dir()
            .ok()
            .map(|d| d.to_string_lossy().into_owned());
        let asked = self.send(&ToAgent::Start { worker, env, cwd }, &[]);
        let answer = {
            let map = lock(&self.routes.map);
            let (map, _) = self
                .routes
                .changed
                .wait_timeout_while(map, spec.launch_timeout, |m| {
                    asked.is_ok() && m.ended.is_none() && m.routes[&worker].started.is_none()
                })
                .unwrap_or_else(|p| p.into_inner());
            match (&asked, &map.ended, &map.routes[&worker].started) {
                (_, _, Some(started)) => started.clone(),
                (Err(e), _, _) => Err(e.to_string()),
                (_, Some(why), _) => Err(why.clone()),
                _ => Err(format!(
                    "the agent did not start a worker within {:?}",
                    spec.launch_timeout
                )),
            }
        };
        if let Err(why) = answer {
            lock(&self.routes.map).routes.remove(&worker);
            return Err(format!("{}: {why}", self.host));
        }
        let link = Link {
            input: Box::new(RemoteInput {
                connection: self.clone(),
                worker,
            }),
            output: BufReader::new(Box::new(reader)),
            // Replaced by the launcher, which knows the worker's seat.
            process: Box::new(Unseated),
        };
        Ok((link, worker, self.clone()))
    }
}

/// A placeholder until the launcher seats the worker.
struct Unseated;

impl WorkerProcess for Unseated {
    fn kill(&mut self) {}
    fn wait(&mut self) -> String {
        String::new()
    }
}

/// Reads the start-up script's lines until the agent is ready, sending the
/// executable when asked; the agent's pid.
fn bootstrap(stdin: &mut ChildStdin, stdout: &mut BufReader<ChildStdout>) -> Result<u32, String> {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) => return Err("the host ended the connection before the agent started".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("reading from the connection: {e}")),
        }
        match line.trim_end() {
            AGENT_READY => break,
            SEND_EXECUTABLE => {
                let mut exe = std::fs::File::open("/proc/self/exe")
                    .map_err(|e| format!("the leader's executable: {e}"))?;
                std::io::copy(&mut exe, stdin)
                    .and_then(|_| stdin.flush())
                    .map_err(|e| format!("copying the executable to the host: {e}"))?;
            }
            // Text from the user's login files: not ours.
            _ => {}
        }
    }
    match wire::read_message::<_, FromAgent>(stdout, codec::max_frame_bytes()) {
        Ok(Some((FromAgent::Ready { pid }, _))) => Ok(pid),
        Ok(other) => Err(format!("the agent said {other:?} instead of hello")),
        Err(e) => Err(e.to_string()),
    }
}

/// Routes the agent's frames to the workers until the connection ends, then
/// closes every worker's link and reaps the connection's process.
fn demultiplex(mut from: BufReader<ChildStdout>, mut child: Child, routes: &Routes) {
    let limit = codec::max_frame_bytes();
    let why = loop {
        let (message, payload) = match wire::read_message::<_, FromAgent>(&mut from, limit) {
            Ok(Some(m)) => m,
            Ok(None) => break "the connection ended".to_string(),
            Err(e) => break e.to_string(),
        };
        let mut map = lock(&routes.map);
        match message {
            FromAgent::Output { worker } => {
                let Some(mut out) = map.routes.get_mut(&worker).and_then(|r| r.output.take())
                else {
                    continue;
                };
                drop(map);
                let delivered = out.write_all(&payload).is_ok();
                let mut map = lock(&routes.map);
                if let Some(route) = map.routes.get_mut(&worker)
                    && delivered
                    && route.exited.is_none()
                {
                    route.output = Some(out);
                }
                continue;
            }
            FromAgent::Started { worker, pid } => {
                if let Some(r) = map.routes.get_mut(&worker) {
                    r.started = Some(Ok(pid));
                }
            }
            FromAgent::Failed { worker, reason } => {
                if let Some(r) = map.routes.get_mut(&worker) {
                    r.started = Some(Err(reason));
                }
            }
            FromAgent::Exited {
                worker,
                how,
                last_words,
            } => {
                if let Some(r) = map.routes.get_mut(&worker) {
                    r.output = None;
                    r.exited = Some((how, last_words));
                }
            }
            FromAgent::Ready { .. } => {}
        }
        routes.changed.notify_all();
    };
    let status = child
        .wait()
        .map(super::link::describe_exit)
        .unwrap_or_default();
    // Let the stderr thread take the last lines.
    std::thread::sleep(Duration::from_millis(20));
    let mut map = lock(&routes.map);
    map.ended = Some(format!("{why} ({status}; {})", tail_of(&routes.stderr)));
    for r in map.routes.values_mut() {
        r.output = None;
    }
    routes.changed.notify_all();
}

/// What the pool writes to a remote worker: `Input` frames on its host's
/// connection.
struct RemoteInput {
    connection: Arc<Connection>,
    worker: u32,
}

impl Write for RemoteInput {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.connection.send(
            &ToAgent::Input {
                worker: self.worker,
            },
            bytes,
        )?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RemoteInput {
    fn drop(&mut self) {
        let _ = self.connection.send(
            &ToAgent::Close {
                worker: self.worker,
            },
            &[],
        );
    }
}

/// Ends a remote worker that has not finished its handshake within
/// `limit` (its link then closes, and the handshake fails). Dropping the
/// returned sender disarms it.
fn handshake_watchdog(
    connection: &Arc<Connection>,
    worker: u32,
    limit: Duration,
) -> mpsc::Sender<()> {
    let (disarm, disarmed) = mpsc::channel::<()>();
    let connection = Arc::downgrade(connection);
    let _ = std::thread::Builder::new()
        .name("futurize-handshake".into())
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit)
                && let Some(c) = connection.upgrade()
            {
                let _ = c.send(&ToAgent::Kill { worker }, &[]);
            }
        });
    disarm
}

/// A worker on another host, as the pool controls it.
struct RemoteProcess {
    /// Armed until the handshake is over.
    watchdog: Option<mpsc::Sender<()>>,
    connection: Arc<Connection>,
    worker: u32,
    host: String,
    last_words: Option<String>,
    #[allow(dead_code)] // held for its `Drop`
    seat: Seat,
}

impl WorkerProcess for RemoteProcess {
    fn kill(&mut self) {
        let _ = self.connection.send(
            &ToAgent::Kill {
                worker: self.worker,
            },
            &[],
        );
    }

    fn wait(&mut self) -> String {
        let routes = &self.connection.routes;
        let mut map = routes
            .changed
            .wait_while(lock(&routes.map), |m| {
                m.ended.is_none()
                    && m.routes
                        .get(&self.worker)
                        .is_some_and(|r| r.exited.is_none())
            })
            .unwrap_or_else(|p| p.into_inner());
        let route = map.routes.remove(&self.worker).unwrap_or_default();
        match (route.exited, &map.ended) {
            (Some((how, words)), _) => {
                self.last_words = words;
                how
            }
            (None, Some(why)) => format!("the connection to {} was lost: {why}", self.host),
            (None, None) => "it ended".into(),
        }
    }

    fn last_words(&self) -> Option<String> {
        self.last_words.clone()
    }

    fn host(&self) -> Option<&str> {
        Some(&self.host)
    }

    fn handshake_done(&mut self) {
        if let Some(disarm) = self.watchdog.take() {
            let _ = disarm.send(());
        }
    }
}
