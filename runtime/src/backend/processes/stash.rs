//! A host agent's copies of calls' captures (`ToAgent::Stash`), kept for
//! all of the host's workers, and how each worker gets them
//! (`ToAgent::Replay`).
//!
//! Captures of [`SHARED_FROM`] bytes or more go into shared memory of the
//! agent's, once per host: a worker is told where they are (an `InInbox`
//! frame naming the agent's memfd, as a local leader names a worker's
//! inbox) and maps them, instead of reading 100 MB from a pipe that the
//! agent wrote them into once more for each worker. The agent writes the
//! memfd from the connection with `pwrite` and never maps it ([`write_from`]
//! says why). Smaller ones are kept as the frame the worker reads, and
//! written into its stdin.
//!
//! Invariant: a stash is never written after it was made, so a worker may
//! map it for as long as it needs (until its first chunk has decoded the
//! captures). A stash forgotten (beyond [`STASHED_CALLS`]) keeps its
//! descriptor for [`KEEP_FORGOTTEN_FOR`], so that the
//! number is not reused under a worker that has not yet read its replay;
//! and a worker checks the memfd's name (it names the call) before it
//! trusts what it maps. Its pages go with the descriptor and the last
//! worker's mapping.

use crate::Error;
use crate::protocol::agent::{STASHED_CALLS, stash_name};
use crate::protocol::codec;
use crate::protocol::shared_memory::{SHARED_FROM, others_may_open_our_fds, sized_memfd};
use crate::protocol::wire::{self, InboxFile, InboxPlace, ToWorker};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// How long the descriptor of a forgotten stash stays open.
pub(super) const KEEP_FORGOTTEN_FOR: Duration = Duration::from_secs(5);

/// The calls' captures one agent keeps.
#[derive(Default)]
pub(super) struct Stashes {
    kept: VecDeque<Stash>,
    /// Descriptors of forgotten stashes, and when they were forgotten.
    forgotten: Vec<(OwnedFd, Instant)>,
}

struct Stash {
    call: u64,
    form: Form,
}

enum Form {
    /// The frame (`KeepCaptures` and the captures) as a worker reads it.
    Frame(Vec<u8>),
    /// The captures in a memfd of this agent's, and where (the place
    /// names the descriptor, which workers open through `/proc`).
    Shared { file: OwnedFd, place: InboxPlace },
}

impl Stashes {
    /// Reads call `call`'s captures, a `KeepCaptures` frame of `len` bytes,
    /// from the connection and keeps them: large ones straight into shared
    /// memory. An error is a broken connection.
    pub(super) fn receive(
        &mut self,
        call: u64,
        len: usize,
        from: &mut impl Read,
    ) -> Result<(), Error> {
        let form = if len >= SHARED_FROM {
            read_shared(call, len, from)?
        } else {
            Err(wire::read_payload(from, len)?)
        };
        let form = form.unwrap_or_else(Form::Frame);
        self.kept.push_back(Stash { call, form });
        self.forget_beyond_kept();
        Ok(())
    }

    /// Keeps `frame`, a `KeepCaptures` frame, as call `call`'s captures;
    /// forgets the oldest beyond [`STASHED_CALLS`].
    #[cfg(test)]
    fn keep(&mut self, call: u64, frame: Vec<u8>) {
        self.receive(call, frame.len(), &mut &frame[..]).unwrap();
    }

    fn forget_beyond_kept(&mut self) {
        while self.kept.len() > STASHED_CALLS {
            let Some(old) = self.kept.pop_front() else {
                break;
            };
            if let Form::Shared { file, .. } = old.form {
                self.forgotten.push((file, Instant::now()));
            }
        }
        self.forgotten
            .retain(|(_, when)| when.elapsed() < KEEP_FORGOTTEN_FOR);
    }

    /// Gives worker `input` the captures of `call`, if kept (a worker that
    /// cannot take them is reported by its own end).
    pub(super) fn replay(&self, call: u64, input: &mut dyn Write) {
        let Some(stash) = self.kept.iter().find(|s| s.call == call) else {
            return;
        };
        let written = match &stash.form {
            Form::Frame(frame) => input.write_all(frame),
            Form::Shared { place, .. } => {
                let mut frames = Vec::with_capacity(128);
                let limit = crate::protocol::codec::max_frame_bytes();
                let made =
                    wire::write_message(&mut frames, &ToWorker::InInbox(place.clone()), &[], limit)
                        .and_then(|()| {
                            wire::write_message(
                                &mut frames,
                                &ToWorker::KeepCaptures { call },
                                &[],
                                limit,
                            )
                        });
                match made {
                    Ok(()) => input.write_all(&frames),
                    Err(_) => return,
                }
            }
        };
        let _ = written.and_then(|()| input.flush());
    }
}

/// Reads a `KeepCaptures` frame of `len` bytes for call `call`: its
/// captures straight into new shared memory named for the call, or, when
/// the frame is another or no shared memory can be had, the frame's bytes
/// (`Err`, to keep as they are).
fn read_shared(
    call: u64,
    len: usize,
    from: &mut impl Read,
) -> Result<Result<Form, Vec<u8>>, Error> {
    let mut head = vec![0u8; 8];
    from.read_exact(&mut head)
        .map_err(|e| wire::truncated(len, e))?;
    let header_len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
    let total = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    if total + 4 != len || header_len > total.saturating_sub(4) {
        return Err(Error::Protocol(format!(
            "a stash of {len} bytes holds a frame of {total} (header {header_len})"
        )));
    }
    head.resize(8 + header_len, 0);
    from.read_exact(&mut head[8..])
        .map_err(|e| wire::truncated(len, e))?;
    let captures = len - head.len();
    let keep = codec::decode::<ToWorker>(&head[8..], "a message")
        .is_ok_and(|m| m == ToWorker::KeepCaptures { call });
    let name = std::ffi::CString::new(stash_name(call)).expect("no NUL in the name");
    let file = (keep && others_may_open_our_fds())
        .then(|| sized_memfd(&name, captures).ok())
        .flatten()
        .map(std::fs::File::from);
    if let Some(file) = file {
        match write_from(&file, from, captures) {
            Ok(()) => {
                let place = InboxPlace {
                    offset: 0,
                    len: captures as u64,
                    open: Some(InboxFile {
                        pid: std::process::id(),
                        fd: file.as_raw_fd(),
                        size: captures as u64,
                    }),
                };
                let file = OwnedFd::from(file);
                return Ok(Ok(Form::Shared { file, place }));
            }
            // What the memfd took is read back: the frame is kept as it came.
            Err(Unwritten::Memfd { written, taken }) => {
                let mut frame = head;
                let at = frame.len();
                frame.resize(at + written, 0);
                file.read_exact_at(&mut frame[at..], 0)
                    .map_err(|e| Error::Protocol(format!("a stash could not be read back: {e}")))?;
                frame.extend_from_slice(&taken);
                let rest = captures - written - taken.len();
                frame.extend_from_slice(&wire::read_payload(from, rest)?);
                return Ok(Err(frame));
            }
            Err(Unwritten::Connection(e)) => return Err(wire::truncated(len, e)),
        }
    }
    // As it came: the head, then the rest read after it.
    let mut frame = head;
    frame.extend_from_slice(&wire::read_payload(from, captures)?);
    Ok(Err(frame))
}

/// Why [`write_from`] stopped.
enum Unwritten {
    /// The connection broke (or ended) before `len` bytes came.
    Connection(std::io::Error),
    /// The memfd holds the first `written` bytes and took no more (out of
    /// memory); `taken` followed them on the connection and was read, the
    /// rest is still there.
    Memfd { written: usize, taken: Vec<u8> },
}

/// Bytes read at a time from the connection into the memfd: small enough
/// to stay in the cache between the two copies.
const STASH_PIECE: usize = 256 << 10;

/// Copies `len` bytes from the connection into `file` with `pwrite`. Not
/// through a mapping: the kernel zeroes each new page of a memfd that a
/// mapping faults in, but not one that a write covers whole (3 × 100 MB
/// stashes cost the agents 13 % of a benchmark's CPU in page zeroing;
/// docs/benchmarks.md).
fn write_from(file: &std::fs::File, from: &mut impl Read, len: usize) -> Result<(), Unwritten> {
    let mut piece = vec![0u8; STASH_PIECE.min(len)];
    let mut written = 0;
    while written < len {
        let n = (len - written).min(piece.len());
        from.read_exact(&mut piece[..n])
            .map_err(Unwritten::Connection)?;
        if let Err(why) = file.write_all_at(&piece[..n], written as u64) {
            log::debug!("futurize agent: a stash's memfd took no more bytes: {why}");
            return Err(Unwritten::Memfd {
                written,
                taken: piece[..n].to_vec(),
            });
        }
        written += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::agent::check_captures_file;
    use crate::protocol::shared_memory::PeerPages;
    use std::os::fd::AsRawFd;

    fn keep_frame(call: u64, captures: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        wire::write_message(
            &mut frame,
            &ToWorker::KeepCaptures { call },
            captures,
            1 << 30,
        )
        .unwrap();
        frame
    }

    fn frames(mut bytes: &[u8]) -> Vec<(ToWorker, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(m) = wire::read_message::<_, ToWorker>(&mut bytes, 1 << 30).unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn small_captures_are_replayed_as_the_frame_itself() {
        let mut stashes = Stashes::default();
        let frame = keep_frame(4, b"small");
        stashes.keep(4, frame.clone());
        let mut written = Vec::new();
        stashes.replay(4, &mut written);
        assert_eq!(written, frame);
        let mut nothing = Vec::new();
        stashes.replay(5, &mut nothing);
        assert!(nothing.is_empty(), "a call not kept is not replayed");
    }

    #[test]
    fn large_captures_are_mapped_from_the_agents_memory_named_for_their_call() {
        let captures: Vec<u8> = (0..(SHARED_FROM + 12_345))
            .map(|i| (i % 253) as u8)
            .collect();
        let mut stashes = Stashes::default();
        stashes.keep(9, keep_frame(9, &captures));
        let mut written = Vec::new();
        stashes.replay(9, &mut written);
        let frames = frames(&written);
        let [
            (ToWorker::InInbox(place), p1),
            (ToWorker::KeepCaptures { call: 9 }, p2),
        ] = &frames[..]
        else {
            panic!("an InInbox and an empty KeepCaptures: {frames:?}");
        };
        assert!(p1.is_empty() && p2.is_empty());
        let file = place.open.clone().expect("names the memfd");
        assert_eq!(file.pid, std::process::id());
        let path = format!("/proc/{}/fd/{}", file.pid, file.fd);
        assert!(
            check_captures_file(&path, 9).unwrap(),
            "the stash of call 9"
        );
        let wrong = check_captures_file(&path, 10).unwrap_err().to_string();
        assert!(wrong.contains("not the stash of call 10"), "{wrong}");
        let mut mapped = None;
        let bytes = PeerPages::payload(&mut mapped, place, false).unwrap();
        assert_eq!(bytes, &captures[..]);
    }

    #[test]
    fn a_stash_is_written_whole_and_a_refusing_memfd_loses_no_byte() {
        let bytes: Vec<u8> = (0..STASH_PIECE * 2 + 999)
            .map(|i| (i % 251) as u8)
            .collect();
        let memfd = |len| std::fs::File::from(sized_memfd(c"futurize-stash-test", len).unwrap());
        let file = memfd(bytes.len());
        let mut from = &bytes[..];
        assert!(write_from(&file, &mut from, bytes.len()).is_ok());
        assert!(from.is_empty(), "read exactly the stash");
        let mut back = vec![0u8; bytes.len()];
        file.read_exact_at(&mut back, 0).unwrap();
        assert!(back == bytes, "the memfd holds the bytes");

        // A descriptor that takes no write: what was read and not written
        // comes back, the rest stays on the connection.
        let read_only = std::fs::File::open("/proc/self/stat").unwrap();
        let mut from = &bytes[..];
        match write_from(&read_only, &mut from, bytes.len()) {
            Err(Unwritten::Memfd { written, taken }) => {
                assert_eq!(written, 0);
                assert_eq!(taken, &bytes[..STASH_PIECE]);
                assert_eq!(from, &bytes[STASH_PIECE..]);
            }
            _ => panic!("a refused write is reported with what was read"),
        }

        // A connection that ends early is the connection's problem.
        let file = memfd(bytes.len());
        let mut short = &bytes[..1000];
        assert!(matches!(
            write_from(&file, &mut short, bytes.len()),
            Err(Unwritten::Connection(_))
        ));
    }

    #[test]
    fn a_forgotten_stash_keeps_its_descriptor_for_a_while() {
        let captures = vec![1u8; SHARED_FROM];
        let mut stashes = Stashes::default();
        for call in 1..=3u64 {
            stashes.keep(call, keep_frame(call, &captures));
        }
        let mut written = Vec::new();
        stashes.replay(1, &mut written);
        assert!(written.is_empty(), "call 1 is forgotten");
        assert_eq!(stashes.forgotten.len(), 1);
        let fd = &stashes.forgotten[0].0;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert!(
            link.to_string_lossy().contains("futurize-stash-1"),
            "{link:?}"
        );
        stashes.replay(3, &mut written);
        assert_eq!(frames(&written).len(), 2, "the newest calls are kept");
    }
}
