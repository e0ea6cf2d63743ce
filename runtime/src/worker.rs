//! The worker side of a worker process: take over before `main`, then serve.
//!
//! The leader starts a worker by running its own executable again with
//! `FUTURIZE_WORKER` set. A function in `.init_array` (run by the dynamic
//! loader before `main`, in every executable that links futurize: binaries,
//! examples, test harnesses, doctests, benches) sees the marker, serves
//! futures until the leader closes the channel, and exits; the program's own
//! `main` never runs in a worker. Users write no line for it.
//!
//! The protocol travels on private copies of stdin and stdout. Fd 0 is then
//! pointed at `/dev/null` and fd 1 at stderr, so a body that reads stdin or
//! prints cannot corrupt frames. A worker exits when its channel closes, and
//! a watchdog thread ends it if its leader dies while a body runs, so no
//! worker outlives its leader.

use crate::active::{self, ActivePlan};
use crate::each::CaptureCache;
use crate::wire::{self, FromWorker, Outcome, ToWorker};
use crate::{Error, Plan, codec, execute, identity};
use std::fs::File;
use std::io::{BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

/// The environment marker that turns a process into a worker.
pub(crate) const WORKER_ENV: &str = "FUTURIZE_WORKER";

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TAKE_OVER_BEFORE_MAIN: extern "C" fn() = take_over_before_main;

extern "C" fn take_over_before_main() {
    if std::env::var_os(WORKER_ENV).is_none() {
        return;
    }
    // SAFETY: this runs before `main`, while the process has a single thread,
    // so nothing can read the environment concurrently.
    unsafe { std::env::remove_var(WORKER_ENV) };
    let code = match serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("futurize worker {}: {e}", std::process::id());
            70
        }
    };
    std::process::exit(code);
}

unsafe extern "C" {
    fn dup2(old: i32, new: i32) -> i32;
}

/// Moves the protocol off fds 0 and 1.
fn take_protocol_fds() -> std::io::Result<(File, File)> {
    let input: OwnedFd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let output: OwnedFd = std::io::stdout().as_fd().try_clone_to_owned()?;
    let null = File::open("/dev/null")?;
    // SAFETY: dup2 on descriptors this process owns; fds 0 and 1 stay open
    // (now /dev/null and stderr) for anything in the process that uses them.
    let (a, b) = unsafe { (dup2(null.as_raw_fd(), 0), dup2(2, 1)) };
    if a < 0 || b < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((File::from(input), File::from(output)))
}

fn watch_parent() {
    let parent = std::os::unix::process::parent_id();
    let _ = std::thread::Builder::new()
        .name("futurize-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(71);
                }
            }
        });
}

fn serve() -> Result<(), Error> {
    let (input, mut output) =
        take_protocol_fds().map_err(|e| Error::Protocol(format!("worker fds: {e}")))?;
    watch_parent();
    let limit = codec::max_frame_bytes();
    let mut input = BufReader::new(input);
    let nested = match wire::read_message::<_, ToWorker>(&mut input, limit)? {
        Some((
            ToWorker::Hello {
                version,
                build_id,
                nested_plan,
            },
            _,
        )) => {
            let refusal = if version != wire::PROTOCOL_VERSION {
                Some(format!(
                    "the leader speaks protocol version {version}, this worker {}",
                    wire::PROTOCOL_VERSION
                ))
            } else if build_id != identity::build_id() {
                Some(format!(
                    "the leader's executable (build {}) differs from this worker's (build {})",
                    hex(&build_id),
                    hex(identity::build_id())
                ))
            } else {
                None
            };
            if let Some(reason) = refusal {
                reply(
                    &mut output,
                    &FromWorker::Refused {
                        reason: reason.clone(),
                    },
                    &[],
                )?;
                return Err(Error::Protocol(reason));
            }
            Plan::parse_from(&nested_plan, "the plan the leader passed on")?
        }
        Some((other, _)) => {
            return Err(Error::Protocol(format!(
                "expected a handshake, got {other:?}"
            )));
        }
        None => return Ok(()),
    };
    let ready = FromWorker::Ready {
        version: wire::PROTOCOL_VERSION,
        build_id: identity::build_id().to_vec(),
        pid: std::process::id(),
    };
    reply(&mut output, &ready, &[])?;
    let nested = ActivePlan::new(nested);
    let mut cache: Option<CaptureCache> = None;
    while let Some((message, payload)) = wire::read_message::<_, ToWorker>(&mut input, limit)? {
        let (id, result) = match message {
            ToWorker::Run {
                id,
                entry_offset,
                stream,
                ..
            } => {
                // SAFETY: the handshake established that the leader runs this
                // very executable (same build id), and offsets come from
                // `identity::offset_of` in the leader.
                let entry = unsafe { identity::entry_at(entry_offset) };
                (id, execute::run(entry, &payload, &nested, stream))
            }
            ToWorker::Stash { call } => {
                cache = Some(CaptureCache {
                    call,
                    bytes: payload,
                    decoded: None,
                });
                continue;
            }
            ToWorker::RunChunk {
                id,
                call,
                entry_offset,
                stop_at_failure,
                streams,
                ..
            } => {
                // SAFETY: as for `Run`, with an offset from `chunk_offset_of`.
                let entry = unsafe { identity::chunk_entry_at(entry_offset) };
                let result = match cache.as_mut().filter(|c| c.call == call) {
                    None => Err(Error::Protocol(format!(
                        "the captures of call {call} never reached this worker"
                    ))),
                    Some(c) => active::within(&nested, || {
                        execute::catch(|| entry(c, &payload, stop_at_failure, streams))
                            .and_then(|r| r)
                    }),
                };
                (id, result)
            }
            ToWorker::Shutdown => break,
            ToWorker::Hello { .. } => {
                return Err(Error::Protocol("a second handshake".into()));
            }
        };
        let (outcome, value) = match result {
            Ok(value) => (Outcome::Value, value),
            Err(Error::Panicked {
                message,
                location,
                backtrace,
                ..
            }) => (
                Outcome::Panicked {
                    message,
                    location,
                    backtrace,
                },
                Vec::new(),
            ),
            Err(e) => (
                Outcome::Failed {
                    message: e.to_string(),
                },
                Vec::new(),
            ),
        };
        reply(&mut output, &FromWorker::Done { id, outcome }, &value)?;
    }
    Ok(())
}

fn reply(output: &mut File, message: &FromWorker, payload: &[u8]) -> Result<(), Error> {
    wire::write_message(output, message, payload, codec::max_frame_bytes())?;
    output
        .flush()
        .map_err(|e| Error::Protocol(format!("the channel to the leader closed: {e}")))
}

/// Hex text of a build id, for messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
