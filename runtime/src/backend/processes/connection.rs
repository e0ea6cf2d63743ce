//! One host's connection: the ssh (or srun) process that runs the host's
//! agent, its start-up (finding or receiving the executable), the thread
//! that routes the agent's frames to each worker's link, and the remote
//! worker as the pool controls it.
//!
//! Invariant: when a connection ends, every worker on it ends with it for
//! the pool (their links close, their readers report `WorkerDied` naming the
//! host).

use super::cluster::Seat;
use super::delivery::{Delivery, Ending, close, start_ending_thread};
use super::host_command::{bootstrap, command_for, keep_stderr, start_script, tail_of};
use super::link::{FrameSink, Link, NotDelivered, WorkerProcess};
use crate::plan::{Cluster, Host};
use crate::protocol::agent::{FromAgent, ToAgent, connection_frame_limit};
use crate::protocol::wire;
use crate::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, PipeWriter, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

/// Variables every remote worker gets from the leader when they are set.
const ALWAYS_PASSED: [&str; 3] = ["RUST_LOG", "RUST_BACKTRACE", "FUTURIZE_MAX_FRAME_BYTES"];

/// The connection to one host's agent.
pub(super) struct Connection {
    host: String,
    to_agent: Mutex<ChildStdin>,
    routes: Arc<Routes>,
    /// The calls whose captures the agent keeps, oldest first (as it keeps
    /// them: at most `STASHED_CALLS`).
    stashed: Mutex<VecDeque<u64>>,
}

/// Where each worker's bytes go, and what the demultiplexer learned.
struct Routes {
    map: Mutex<RouteMap>,
    changed: Condvar,
    /// To the thread that ends the sinks of workers whose channels ended.
    ends: Mutex<mpsc::Sender<Ending>>,
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
    /// Until the handshake is over: the pipe its link reads.
    output: Option<PipeWriter>,
    /// After it: its frames, taken where they arrive.
    delivery: Option<Arc<Mutex<Delivery>>>,
    started: Option<Result<u32, String>>,
    exited: Option<(String, Option<String>)>,
    /// The leader gave it up: its link is closed whatever its host does.
    killed: bool,
}

impl Connection {
    /// Starts the host's agent: runs the start-up script, sends the
    /// executable when asked, and waits for the agent, within the plan's
    /// launch timeout.
    pub(super) fn open(spec: &Cluster, host: &Host) -> Result<Connection, String> {
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
        let ends = start_ending_thread(&name).map_err(|e| fail(e.to_string()))?;
        let routes = Arc::new(Routes {
            map: Mutex::new(RouteMap::default()),
            changed: Condvar::new(),
            ends: Mutex::new(ends),
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
            stashed: Mutex::new(VecDeque::new()),
        })
    }

    pub(super) fn is_alive(&self) -> bool {
        lock(&self.routes.map).ended.is_none()
    }

    /// Gives worker `worker` the captures of `call` through the agent: the
    /// bytes cross the connection once per host (`ToAgent::Stash`, the frame
    /// `KeepCaptures` as the worker reads it), then each worker gets them
    /// from the agent (`ToAgent::Replay`). The bytes of the captures are
    /// counted by `stash` (0 here).
    pub(super) fn replay_captures(
        &self,
        worker: u32,
        call: u64,
        captures: &[u8],
    ) -> Result<u64, crate::Error> {
        self.stash(call, captures)?;
        self.send(&ToAgent::Replay { worker, call }, &[])
            .map_err(|e| crate::Error::Protocol(e.to_string()))?;
        Ok(0)
    }

    /// Sends the agent the captures of `call` unless it keeps them, and
    /// counts the bytes in `BYTES_SENT` before anyone may replay them.
    pub(super) fn stash(&self, call: u64, captures: &[u8]) -> Result<(), crate::Error> {
        let mut stashed = lock(&self.stashed);
        if stashed.contains(&call) {
            return Ok(());
        }
        // The frame the workers read, sent without copying the captures.
        let head = wire::frame_head(
            &crate::protocol::wire::ToWorker::KeepCaptures { call },
            captures.len(),
            crate::protocol::codec::max_frame_bytes(),
        )?;
        let mut to = lock(&self.to_agent);
        wire::write_message_parts(
            &mut *to,
            &ToAgent::Stash { call },
            &[&head, captures],
            connection_frame_limit(),
        )
        .map_err(|e| crate::Error::Protocol(e.to_string()))?;
        drop(to);
        stashed.push_back(call);
        while stashed.len() > crate::protocol::agent::STASHED_CALLS {
            stashed.pop_front();
        }
        let sent = (head.len() + captures.len()) as u64;
        super::BYTES_SENT.fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn send(&self, message: &ToAgent, payload: &[u8]) -> std::io::Result<()> {
        let mut to = lock(&self.to_agent);
        wire::write_message(&mut *to, message, payload, connection_frame_limit())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::BrokenPipe, e.to_string()))
    }

    /// Asks the agent for worker `worker`; its link once it runs.
    pub(super) fn start_worker(
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

/// Routes the agent's frames to the workers until the connection ends, then
/// closes every worker's link and reaps the connection's process.
fn demultiplex(mut from: BufReader<ChildStdout>, mut child: Child, routes: &Routes) {
    ROUTING.set(true);
    let limit = connection_frame_limit();
    let why = loop {
        let (message, payload) = match wire::read_message::<_, FromAgent>(&mut from, limit) {
            Ok(Some(m)) => m,
            Ok(None) => break "the connection ended".to_string(),
            Err(e) => break e.to_string(),
        };
        let mut map = lock(&routes.map);
        match message {
            FromAgent::Output { worker } => {
                let Some(route) = map.routes.get_mut(&worker) else {
                    continue;
                };
                if let Some(delivery) = route.delivery.clone() {
                    drop(map);
                    lock(&delivery).push(&payload);
                    continue;
                }
                let Some(mut out) = route.output.take() else {
                    continue;
                };
                drop(map);
                let delivered = out.write_all(&payload).is_ok();
                let mut map = lock(&routes.map);
                // Not when its frames are now delivered: dropping the pipe
                // lets `deliver` read it to its end.
                if let Some(route) = map.routes.get_mut(&worker)
                    && delivered
                    && route.exited.is_none()
                    && !route.killed
                    && route.delivery.is_none()
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
                stderr_tail,
            } => {
                if let Some(r) = map.routes.get_mut(&worker) {
                    r.output = None;
                    r.exited = Some((how, stderr_tail));
                    if let Some(delivery) = r.delivery.take() {
                        close(&routes.ends, delivery);
                    }
                }
            }
            FromAgent::Ready { .. } => {}
        }
        routes.changed.notify_all();
    };
    // The connection is over for us, whatever ssh thinks: end it (it would
    // wait for the stdin we still hold).
    // SAFETY: signals the process group of our own child, reaped just below.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
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
        if let Some(delivery) = r.delivery.take() {
            close(&routes.ends, delivery);
        }
    }
    routes.changed.notify_all();
}

thread_local! {
    /// Set on a connection's demultiplexing thread, which must never wait
    /// for the connection to take bytes (it is what empties it).
    static ROUTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
    /// Closes the worker's stdin: from another thread when dropped on the
    /// demultiplexing thread (a frame it delivered freed the worker), which
    /// must not wait for the connection.
    fn drop(&mut self) {
        let (connection, worker) = (self.connection.clone(), self.worker);
        let close = move || {
            let _ = connection.send(&ToAgent::Close { worker }, &[]);
        };
        if !ROUTING.get() {
            close();
        } else if let Err(e) = std::thread::Builder::new()
            .name("futurize-close".into())
            .spawn(close)
        {
            log::warn!("futurize: could not close a remote worker's input: {e}");
        }
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
pub(super) struct RemoteProcess {
    /// Armed until the handshake is over.
    watchdog: Option<mpsc::Sender<()>>,
    connection: Arc<Connection>,
    worker: u32,
    host: String,
    stderr_tail: Option<String>,
    /// Its place on the host, given back once it has ended.
    seat: Option<Seat>,
    /// Set when its host takes no more work (a pool's allocation that
    /// drains or is given back): it ends instead of waiting for work.
    retired: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl RemoteProcess {
    /// `link` (from `Connection::start_worker`) with its worker seated on
    /// its host: named `host` in messages, holding `seat`, retired with
    /// `retired`, and killed if its handshake is not over within
    /// `handshake_limit`.
    pub(super) fn seated(
        link: Link,
        connection: Arc<Connection>,
        worker: u32,
        host: String,
        seat: Seat,
        retired: Option<Arc<std::sync::atomic::AtomicBool>>,
        handshake_limit: Duration,
    ) -> Link {
        let process = RemoteProcess {
            watchdog: Some(handshake_watchdog(&connection, worker, handshake_limit)),
            connection,
            worker,
            host,
            stderr_tail: None,
            seat: Some(seat),
            retired,
        };
        Link {
            process: Box::new(process),
            ..link
        }
    }
}

impl WorkerProcess for RemoteProcess {
    fn captures_through_host(&self) -> Option<super::link::HostCaptures> {
        let (connection, worker) = (self.connection.clone(), self.worker);
        Some(Arc::new(move |call, captures| {
            connection.replay_captures(worker, call, captures)
        }))
    }

    /// Closes the worker's link at once (so that its reader ends even when
    /// the host no longer answers), and asks the agent to end the process,
    /// from a thread of its own: a frozen connection must not hold the
    /// caller.
    fn kill(&mut self) {
        {
            let mut map = lock(&self.connection.routes.map);
            if let Some(route) = map.routes.get_mut(&self.worker) {
                route.killed = true;
                route.output = None;
                if let Some(delivery) = route.delivery.take() {
                    close(&self.connection.routes.ends, delivery);
                }
            }
            self.connection.routes.changed.notify_all();
        }
        let (connection, worker) = (self.connection.clone(), self.worker);
        let _ = std::thread::Builder::new()
            .name("futurize-kill".into())
            .spawn(move || {
                let _ = connection.send(&ToAgent::Kill { worker }, &[]);
            });
    }

    fn wait(&mut self) -> String {
        let routes = &self.connection.routes;
        let mut map = routes
            .changed
            .wait_while(lock(&routes.map), |m| {
                m.ended.is_none()
                    && m.routes
                        .get(&self.worker)
                        .is_some_and(|r| r.exited.is_none() && !r.killed)
            })
            .unwrap_or_else(|p| p.into_inner());
        let route = map.routes.remove(&self.worker).unwrap_or_default();
        // Ended: its place is free for a replacement before the pool looks.
        self.seat = None;
        match (route.exited, &map.ended) {
            (Some((how, words)), _) => {
                self.stderr_tail = words;
                how
            }
            (None, _) if route.killed => format!("ended by the leader on {}", self.host),
            (None, Some(why)) => format!("the connection to {} was lost: {why}", self.host),
            (None, None) => "it ended".into(),
        }
    }

    fn stderr_tail(&self) -> Option<String> {
        self.stderr_tail.clone()
    }

    fn host(&self) -> Option<&str> {
        Some(&self.host)
    }

    fn retired(&self) -> bool {
        self.retired
            .as_ref()
            .is_some_and(|r| r.load(Ordering::Acquire))
    }

    fn handshake_done(&mut self) {
        if let Some(disarm) = self.watchdog.take() {
            let _ = disarm.send(());
        }
    }

    /// From now on the demultiplexing thread hands the worker's frames to
    /// `sink`. What reached the link's pipe before goes first: the pipe is
    /// read to its end, which comes once the thread has let go of it.
    fn deliver(
        &mut self,
        output: BufReader<Box<dyn Read + Send>>,
        sink: Box<dyn FrameSink>,
    ) -> Result<(), NotDelivered> {
        let routes = &self.connection.routes;
        let delivery = Arc::new(Mutex::new(Delivery::new(sink, lock(&routes.ends).clone())));
        // Held until the earlier bytes are in: frames stay in order.
        let mut first = lock(&delivery);
        {
            let mut map = lock(&routes.map);
            let live = map.ended.is_none();
            match map.routes.get_mut(&self.worker) {
                Some(route) if live && route.exited.is_none() && !route.killed => {
                    route.delivery = Some(delivery.clone());
                    route.output = None;
                }
                _ => {
                    let sink = first.take_sink().expect("nothing pushed yet");
                    return Err((output, sink));
                }
            }
        }
        let mut earlier = output.buffer().to_vec();
        let mut pipe = output.into_inner();
        if let Err(e) = pipe.read_to_end(&mut earlier) {
            log::warn!("futurize: reading a remote worker's first bytes: {e}");
        }
        first.push(&earlier);
        Ok(())
    }
}
