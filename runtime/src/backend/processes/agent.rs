//! The host agent: this executable on another machine, started once per
//! host over ssh (or srun), starting that host's workers and carrying their
//! frames over its one connection (protocol in `protocol::agent`).
//!
//! The agent starts workers with the [`LocalLauncher`] a local pool uses, so
//! a remote worker is started, captured and reported exactly as a local
//! one. It parses none of the workers' frames: their bytes travel as they
//! are, both ways. When its connection is a pipe, the workers write their
//! frames into it themselves, in pieces (`protocol::shared_connection`),
//! and the agent forwards only what else they print on stdout.
//!
//! Invariant: when the leader's connection ends (the leader exited, was
//! killed, or the network dropped), the agent kills every worker it started
//! and exits, so nothing is left on the host.

use super::link::{Launcher, LocalLauncher, WorkerProcess};
use super::stash::Stashes;
use crate::Error;
use crate::protocol::agent::{
    AGENT_ENV, AGENT_FD_ENV, AGENT_READY, CONNECTION_ENV, FromAgent, ToAgent, WRONG_BUILD_EXIT,
    connection_frame_limit,
};
use crate::protocol::shared_connection::{ATOMIC_WRITE, is_pipe};
use crate::protocol::{self, hex, identity, wire};
use crate::sync::lock;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The build id this process was asked to be, when it was started as a host
/// agent; removes the marker from the environment.
///
/// # Safety
/// Must run while the process has a single thread (before `main`).
pub(crate) unsafe fn take_agent_environment() -> Option<String> {
    let wanted = std::env::var(AGENT_ENV).ok()?;
    let fd = std::env::var(AGENT_FD_ENV).ok();
    // SAFETY: by the caller's promise no other thread reads the environment.
    unsafe {
        std::env::remove_var(AGENT_ENV);
        std::env::remove_var(AGENT_FD_ENV);
    }
    // The start-up script ran this executable through a descriptor it
    // checked; the workers need not inherit it.
    if let Some(fd) = fd.and_then(|f| f.parse::<i32>().ok()).filter(|&f| f > 2) {
        // SAFETY: before `main` nothing of this process owns that inherited
        // descriptor; closing it affects no other handle.
        unsafe { libc::close(fd) };
    }
    Some(wanted)
}

/// Serves as a host agent when this executable is the build `wanted`; else
/// says so and exits with [`WRONG_BUILD_EXIT`] without reading a byte, so
/// that the start-up script can look further.
pub(crate) fn run_agent(wanted: &str) -> ! {
    let own = hex(identity::build_id());
    if own != wanted {
        eprintln!("futurize agent: this executable is build {own}, not {wanted}");
        std::process::exit(WRONG_BUILD_EXIT);
    }
    match serve() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("futurize agent {}: {e}", std::process::id());
            std::process::exit(70);
        }
    }
}

/// The connection to the leader: frames out under one lock.
struct ToLeader {
    out: Mutex<File>,
    /// The connection is a pipe that the workers write into too (their
    /// inherited descriptor): every frame is then one write of at most
    /// [`ATOMIC_WRITE`] bytes.
    shared: Option<std::os::fd::RawFd>,
}

impl ToLeader {
    fn send(&self, message: &FromAgent, payload: &[u8]) -> Result<(), Error> {
        let mut out = lock(&self.out);
        if self.shared.is_none() {
            return wire::write_message(&mut *out, message, payload, connection_frame_limit());
        }
        let mut frame = Vec::with_capacity(64 + payload.len());
        wire::write_message(&mut frame, message, payload, ATOMIC_WRITE as u64)?;
        // One write: `write_all` of at most a pipe's atomic size is one.
        out.write_all(&frame)
            .map_err(|e| Error::Protocol(format!("the connection to the leader closed: {e}")))
    }

    /// The most bytes of a worker's output one `Output` frame carries.
    fn output_piece(&self) -> usize {
        match self.shared {
            Some(_) => ATOMIC_WRITE - 64,
            None => 64 << 10,
        }
    }

    /// `text` cut to fit a frame of the connection (with another text).
    fn fit(&self, mut text: String) -> String {
        const ROOM: usize = 1500;
        if self.shared.is_some() && text.len() > ROOM {
            let mut end = ROOM;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    }
}

/// A worker this agent started.
struct Started {
    input: Option<Box<dyn Write + Send>>,
    process: Arc<Mutex<Box<dyn WorkerProcess>>>,
}

fn serve() -> Result<(), Error> {
    let (input, mut output) =
        protocol::take_stdio().map_err(|e| Error::Protocol(format!("agent fds: {e}")))?;
    output
        .write_all(format!("{AGENT_READY}\n").as_bytes())
        .map_err(|e| Error::Protocol(format!("the connection to the leader closed: {e}")))?;
    // A pipe (as under sshd) is shared with the workers: each writes its
    // frames into it on a descriptor it inherits (`dup` leaves it so).
    let shared = is_pipe(&output)
        // SAFETY: dup of a descriptor this process holds open.
        .then(|| unsafe { libc::dup(output.as_raw_fd()) })
        .filter(|&fd| fd > 2);
    let leader = Arc::new(ToLeader {
        out: Mutex::new(output),
        shared,
    });
    leader.send(
        &FromAgent::Ready {
            pid: std::process::id(),
        },
        &[],
    )?;
    let mut input = BufReader::new(input);
    let mut workers: HashMap<u32, Started> = HashMap::new();
    // Calls' captures sent once for every worker of this host.
    let mut stashes = Stashes::default();
    let limit = connection_frame_limit();
    let ended = loop {
        let (message, len) = match wire::read_head::<_, ToAgent>(&mut input, limit) {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        // A stash goes from the connection straight to where it is kept.
        if let ToAgent::Stash { call } = message {
            match stashes.receive(call, len, &mut input) {
                Ok(()) => continue,
                Err(e) => break Err(e),
            }
        }
        let payload = match wire::read_payload(&mut input, len) {
            Ok(payload) => payload,
            Err(e) => break Err(e),
        };
        match message {
            ToAgent::Start { worker, env, cwd } => {
                start(&leader, &mut workers, worker, env, cwd)?;
            }
            ToAgent::Input { worker } => {
                if let Some(input) = workers.get_mut(&worker).and_then(|w| w.input.as_mut()) {
                    // A worker that died cannot take it; its end is reported
                    // by its forwarding thread.
                    let _ = input.write_all(&payload).and_then(|()| input.flush());
                }
            }
            ToAgent::Close { worker } => {
                if let Some(w) = workers.get_mut(&worker) {
                    w.input = None;
                }
            }
            ToAgent::Kill { worker } => {
                if let Some(w) = workers.get(&worker) {
                    lock(&w.process).kill();
                }
            }
            ToAgent::Stash { .. } => {}
            ToAgent::Replay { worker, call } => {
                // As for `Input`: a worker that died is reported by its
                // forwarding thread.
                if let Some(input) = workers.get_mut(&worker).and_then(|w| w.input.as_mut()) {
                    stashes.replay(call, input);
                }
            }
        }
    };
    // The leader is gone: so are its workers.
    for w in workers.values_mut() {
        w.input = None;
        lock(&w.process).kill();
    }
    ended
}

/// Starts worker `worker` on this host, with `env`, in `cwd` when this user
/// can enter it (else in the home directory), and a thread that forwards
/// its frames; tells the leader its pid, or why it could not start.
fn start(
    leader: &Arc<ToLeader>,
    workers: &mut HashMap<u32, Started>,
    worker: u32,
    env: Vec<(String, String)>,
    cwd: Option<String>,
) -> Result<(), Error> {
    let cwd = cwd
        .map(PathBuf::from)
        .filter(|d| can_enter(d))
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from));
    let mut env = env;
    if let Some(fd) = leader.shared {
        env.push((CONNECTION_ENV.into(), format!("{fd} {worker}")));
    }
    match (LocalLauncher { env, cwd }).launch() {
        Ok(link) => {
            let pid = link.process.os_pid().unwrap_or(0);
            let process = Arc::new(Mutex::new(link.process));
            let (to, from) = (leader.clone(), process.clone());
            std::thread::Builder::new()
                .name(format!("futurize-agent-{worker}"))
                .spawn(move || forward(worker, link.output, from, &to))
                .map_err(|e| Error::Protocol(format!("agent thread: {e}")))?;
            workers.insert(
                worker,
                Started {
                    input: Some(link.input),
                    process,
                },
            );
            leader.send(&FromAgent::Started { worker, pid }, &[])
        }
        Err(e) => leader.send(
            &FromAgent::Failed {
                worker,
                reason: leader.fit(e.to_string()),
            },
            &[],
        ),
    }
}

/// Whether this user can make `dir` its working directory.
fn can_enter(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string; access(2) only reads it.
    dir.is_dir() && unsafe { libc::access(path.as_ptr(), libc::X_OK) } == 0
}

/// Carries a worker's stdout to the leader until it ends, then reports how
/// it ended.
fn forward(
    worker: u32,
    mut from: BufReader<Box<dyn Read + Send>>,
    process: Arc<Mutex<Box<dyn WorkerProcess>>>,
    leader: &ToLeader,
) {
    let mut buffer = vec![0u8; leader.output_piece()];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if leader
                    .send(&FromAgent::Output { worker }, &buffer[..n])
                    .is_err()
                {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let how = leader.fit(lock(&process).wait());
    let stderr_tail = lock(&process).stderr_tail().map(|t| leader.fit(t));
    let _ = leader.send(
        &FromAgent::Exited {
            worker,
            how,
            stderr_tail,
        },
        &[],
    );
}
