//! A host agent's copies of calls' captures (`ToAgent::Stash`), kept for
//! all of the host's workers, and how each worker gets them
//! (`ToAgent::Replay`).
//!
//! Captures of [`SHARED_FROM`] bytes or more go into shared memory of the
//! agent's, once per host: a worker is told where they are (an `InInbox`
//! frame naming the agent's memfd, as a local leader names a worker's
//! inbox) and maps them, instead of reading 100 MB from a pipe that the
//! agent wrote them into once more for each worker. Smaller ones are kept
//! as the frame the worker reads, and written into its stdin.
//!
//! Invariant: a stash is never written after it was made, so a worker may
//! map it for as long as it needs (until its first chunk has decoded the
//! captures). A stash forgotten (beyond [`STASHED_CALLS`]) is unmapped here
//! at once but keeps its descriptor for [`KEEP_FORGOTTEN_FOR`], so that the
//! number is not reused under a worker that has not yet read its replay;
//! and a worker checks the memfd's name (it names the call) before it
//! trusts what it maps. Its pages go with the descriptor and the last
//! worker's mapping.

use crate::protocol::agent::{STASHED_CALLS, stash_name};
use crate::protocol::shared_memory::{SHARED_FROM, SharedPages};
use crate::protocol::wire::{self, InboxPlace, ToWorker};
use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::OwnedFd;
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
    /// The captures in shared memory, and where.
    Shared {
        pages: SharedPages,
        place: InboxPlace,
    },
}

impl Stashes {
    /// Keeps `frame`, a `KeepCaptures` frame, as call `call`'s captures;
    /// forgets the oldest beyond [`STASHED_CALLS`].
    pub(super) fn keep(&mut self, call: u64, frame: Vec<u8>) {
        let form = shared(call, &frame).unwrap_or(Form::Frame(frame));
        self.kept.push_back(Stash { call, form });
        while self.kept.len() > STASHED_CALLS {
            let Some(old) = self.kept.pop_front() else {
                break;
            };
            if let Form::Shared { pages, .. } = old.form
                && let Some(fd) = pages.retire()
            {
                self.forgotten.push((fd, Instant::now()));
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

/// The captures of a `KeepCaptures` frame placed in new shared memory named
/// for the call, when they are large and shared memory can be had.
fn shared(call: u64, frame: &[u8]) -> Option<Form> {
    let (message, captures) =
        wire::split_frame::<ToWorker>(frame, crate::protocol::codec::max_frame_bytes()).ok()?;
    if message != (ToWorker::KeepCaptures { call }) || captures.len() < SHARED_FROM {
        return None;
    }
    let name = std::ffi::CString::new(stash_name(call)).ok()?;
    let mut pages = None;
    let room = SharedPages::with_room(&mut pages, captures.len(), &name)?;
    let place = room.place(&[captures]).pop()?;
    place.open.as_ref()?;
    Some(Form::Shared {
        pages: pages?,
        place,
    })
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
