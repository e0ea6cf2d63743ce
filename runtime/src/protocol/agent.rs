//! What a leader and a host agent say to each other.
//!
//! A host agent is this same executable started on another machine (over
//! ssh or srun) with [`AGENT_ENV`] set to the leader's build id. It starts
//! that host's worker processes and carries their frames over its one
//! connection: the leader sends [`ToAgent`] frames on the agent's stdin, the
//! agent answers with [`FromAgent`] frames on its stdout. A worker's own
//! protocol travels inside as raw bytes ([`ToAgent::Input`],
//! [`FromAgent::Output`]), so the leader talks to a remote worker exactly
//! as to a local one.
//!
//! Before the frames, the agent writes the line [`AGENT_READY`]; the start-up
//! script that looks for the executable writes [`SEND_EXECUTABLE`] when it
//! needs a copy (the leader then sends its executable's bytes, nothing
//! else, and waits for the agent's line).

use serde::{Deserialize, Serialize};

/// The environment variable that turns a process into a host agent; its
/// value is the build id (hex) the leader expects.
pub(crate) const AGENT_ENV: &str = "FUTURIZE_AGENT";

/// The frame limit between a leader and an agent: room for a worker's whole
/// frame (up to the frame limit) inside an `Input`, or for 64 KiB of its
/// output inside an `Output`, plus the wrapping.
pub(crate) fn connection_frame_limit() -> u64 {
    crate::protocol::codec::max_frame_bytes().max(64 << 10) + 4096
}

/// The exit status of an agent whose build is not the one asked for.
pub(crate) const WRONG_BUILD_EXIT: i32 = 75;

/// The descriptor the start-up script ran the agent from (it checked the
/// file open on it, then ran what it checked); the agent closes it.
pub(crate) const AGENT_FD_ENV: &str = "FUTURIZE_AGENT_FD";

/// Set by an agent whose connection is a pipe, for each worker it starts:
/// `<fd> <worker>`, the connection inherited on descriptor `fd` and the
/// worker's number. The worker then writes its frames into the connection
/// itself, in pieces (`protocol::shared_connection`).
pub(crate) const CONNECTION_ENV: &str = "FUTURIZE_CONNECTION";

/// The line an agent writes before its first frame.
pub(crate) const AGENT_READY: &str = "futurize-agent-ready";

/// The line the start-up script writes when the host has no copy of the
/// leader's executable.
pub(crate) const SEND_EXECUTABLE: &str = "futurize-send-executable";

/// What a leader says to a host agent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToAgent {
    /// Start worker `worker` with these variables, in `cwd` where it exists
    /// on this host (else in the home directory).
    Start {
        /// The leader's number for the worker.
        worker: u32,
        /// Variables the worker gets.
        env: Vec<(String, String)>,
        /// The leader's working directory.
        cwd: Option<String>,
    },
    /// The payload goes to the worker's stdin.
    Input {
        /// Which worker.
        worker: u32,
    },
    /// Close the worker's stdin (it ends when its tasks are done).
    Close {
        /// Which worker.
        worker: u32,
    },
    /// End the worker now.
    Kill {
        /// Which worker.
        worker: u32,
    },
    /// Keep the payload: a call's captures as the frame a worker reads
    /// (`KeepCaptures` and its bytes), sent once per host. The agent keeps
    /// the last [`STASHED_CALLS`] calls' and forgets the oldest beyond them,
    /// as the leader counts on.
    Stash {
        /// The call.
        call: u64,
    },
    /// Write the stashed frame of `call` into worker `worker`'s stdin.
    Replay {
        /// Which worker.
        worker: u32,
        /// Which call's captures.
        call: u64,
    },
}

/// How many calls' captures a host agent keeps (`ToAgent::Stash`).
pub(crate) const STASHED_CALLS: usize = 2;

/// The memfd name of the shared memory in which a host agent keeps call
/// `call`'s captures for its workers, as `/proc/<pid>/fd/<n>` shows it
/// (`/memfd:futurize-stash-<call> (deleted)`).
pub(crate) fn stash_name(call: u64) -> String {
    format!("futurize-stash-{call}")
}

/// Refuses shared memory offered for call `call`'s captures that is
/// neither a local leader's inbox nor the agent's stash of that very call
/// (a worker's check of `/proc/<pid>/fd/<n>` before it maps it: a
/// descriptor number reused for another call's stash must not be read as
/// this one's). True for the agent's stash.
pub(crate) fn check_captures_file(path: &str, call: u64) -> Result<bool, crate::Error> {
    let target = std::fs::read_link(path)
        .map_err(|e| crate::Error::Protocol(format!("the captures' shared memory {path}: {e}")))?;
    let target = target.to_string_lossy();
    let inbox = format!(
        "/memfd:{}",
        super::shared_memory::INBOX_NAME.to_string_lossy()
    );
    let stash = format!("/memfd:{}", stash_name(call));
    let is = |name: &str| target == name || target.starts_with(&format!("{name} "));
    if is(&inbox) || is(&stash) {
        Ok(is(&stash))
    } else {
        Err(crate::Error::Protocol(format!(
            "the captures' shared memory {path} is {target}, not the stash of call {call}"
        )))
    }
}

/// What a host agent says to its leader.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromAgent {
    /// The agent serves: its process id.
    Ready {
        /// The agent's pid on its host.
        pid: u32,
    },
    /// Worker `worker` runs (its handshake comes through `Output`).
    Started {
        /// Which worker.
        worker: u32,
        /// Its pid on the host.
        pid: u32,
    },
    /// Worker `worker` could not be started.
    Failed {
        /// Which worker.
        worker: u32,
        /// Why.
        reason: String,
    },
    /// The payload came from the worker's stdout.
    Output {
        /// Which worker.
        worker: u32,
    },
    /// Worker `worker` ended.
    Exited {
        /// Which worker.
        worker: u32,
        /// How: `exit status 3`, `killed by signal 9 (SIGKILL)`.
        how: String,
        /// The end of what it wrote to stderr during its last task.
        stderr_tail: Option<String>,
    },
}
