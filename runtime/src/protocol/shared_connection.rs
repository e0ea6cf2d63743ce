//! A host's connection shared by its agent and its workers, and the
//! leader's reassembly of a worker's frames from what arrives on it.
//!
//! When a host agent's stdout is a pipe (it is under sshd), each of its
//! workers writes its frames into that pipe itself instead of through the
//! agent: one process fewer to wake per answer. Writers share the pipe
//! without a lock because every write is one whole [`FromAgent::Output`]
//! frame of at most [`ATOMIC_WRITE`] bytes, made by one `write(2)`, which a
//! pipe never interleaves with another writer's and never cuts in two, even
//! when the writer is killed. A worker frame larger than a piece travels as
//! several pieces, in order; the leader joins a worker's pieces again
//! ([`FrameAssembler`]), exactly as it joined the chunks the agent used to
//! forward.
//!
//! Invariant: on a shared connection no writer ever writes more than
//! [`ATOMIC_WRITE`] bytes in one call, nor a partial agent frame.

use super::agent::FromAgent;
use super::codec;
use crate::Error;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;

/// The most bytes a pipe writes at once, never interleaved with other
/// writers (POSIX `PIPE_BUF`; 4096 on Linux).
pub(crate) const ATOMIC_WRITE: usize = libc::PIPE_BUF;

/// Whether `file` is a pipe, where writes of up to [`ATOMIC_WRITE`] bytes
/// are atomic.
pub(crate) fn is_pipe(file: &impl AsRawFd) -> bool {
    // SAFETY: an all-zero `stat` is a valid value for fstat to overwrite.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a descriptor the caller holds open, and a valid out pointer.
    let done = unsafe { libc::fstat(file.as_raw_fd(), &mut stat) } == 0;
    done && (stat.st_mode & libc::S_IFMT) == libc::S_IFIFO
}

/// Writes one worker's frames into a connection shared with other writers,
/// as `FromAgent::Output` pieces of at most [`ATOMIC_WRITE`] bytes.
pub(crate) struct PieceWriter {
    file: File,
    /// The length of the encoded `FromAgent::Output { worker }` header that
    /// follows the two lengths at the start of every piece.
    header_len: usize,
    /// The piece being filled: lengths, header, then the bytes so far.
    piece: Vec<u8>,
}

impl PieceWriter {
    /// Writes for worker `worker` on `file` (a pipe shared with the agent).
    pub(crate) fn new(file: File, worker: u32) -> Result<PieceWriter, Error> {
        let header = codec::encode(&FromAgent::Output { worker }, "a message")?;
        let mut piece = Vec::with_capacity(ATOMIC_WRITE);
        piece.extend_from_slice(&[0; 8]);
        piece.extend_from_slice(&header);
        Ok(PieceWriter {
            file,
            header_len: header.len(),
            piece,
        })
    }

    /// Writes the piece made so far, if it holds any bytes, with one
    /// `write(2)`: a pipe writes it all or nothing.
    fn emit(&mut self) -> std::io::Result<()> {
        let empty = 8 + self.header_len;
        if self.piece.len() == empty {
            return Ok(());
        }
        let total = (self.piece.len() - 4) as u32;
        self.piece[..4].copy_from_slice(&total.to_le_bytes());
        self.piece[4..8].copy_from_slice(&(self.header_len as u32).to_le_bytes());
        let written = loop {
            match self.file.write(&self.piece) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        let len = self.piece.len();
        self.piece.truncate(empty);
        match written? {
            n if n == len => Ok(()),
            n => Err(std::io::Error::other(format!(
                "the connection took {n} of a piece's {len} bytes"
            ))),
        }
    }
}

/// Bytes written go out in pieces as they fill; `flush` sends the last,
/// partial one (a worker flushes after each frame).
impl Write for PieceWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let take = bytes.len().min(ATOMIC_WRITE - self.piece.len());
        self.piece.extend_from_slice(&bytes[..take]);
        if self.piece.len() == ATOMIC_WRITE {
            self.emit()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.emit()
    }
}

/// Joins the bytes of one worker's channel, as they arrive in pieces of any
/// size, into its frames (`u32 length | u32 header length | header |
/// payload`, as `wire::read_message` reads them).
pub(crate) struct FrameAssembler {
    limit: u64,
    /// The length, header length and header of the frame being read.
    head: Vec<u8>,
    /// Once the head is complete: its decoded length, header end and the
    /// payload so far.
    body: Option<Body>,
}

struct Body {
    payload_len: usize,
    header: std::ops::Range<usize>,
    payload: Vec<u8>,
}

impl FrameAssembler {
    /// Refuses frames over `limit` bytes, as `wire::read_message` does.
    pub(crate) fn new(limit: u64) -> FrameAssembler {
        FrameAssembler {
            limit,
            head: Vec::new(),
            body: None,
        }
    }

    /// Whether a frame has begun and not ended.
    pub(crate) fn is_mid_frame(&self) -> bool {
        !self.head.is_empty()
    }

    /// Takes `bytes` and hands each frame they complete to `frame`, in
    /// order. A malformed frame, or an error from `frame`, stops it.
    pub(crate) fn push<H: DeserializeOwned>(
        &mut self,
        mut bytes: &[u8],
        mut frame: impl FnMut(H, Vec<u8>) -> Result<(), String>,
    ) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.body.is_none() {
                let used = self.take_head(bytes).map_err(|e| e.to_string())?;
                bytes = &bytes[used..];
                if self.body.is_none() {
                    continue;
                }
            }
            let body = self.body.as_mut().expect("the head is complete");
            let take = (body.payload_len - body.payload.len()).min(bytes.len());
            body.payload.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if body.payload.len() == body.payload_len {
                let body = self.body.take().expect("just used");
                let header: H = codec::decode(&self.head[body.header], "a message")
                    .map_err(|e| e.to_string())?;
                self.head.clear();
                frame(header, body.payload)?;
            }
        }
        Ok(())
    }

    /// Takes what the head of the frame still needs from `bytes`; the bytes
    /// used. Sets `body` once the head is complete.
    fn take_head(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        let want = if self.head.len() < 8 {
            8
        } else {
            8 + u32::from_le_bytes(self.head[4..8].try_into().expect("4 bytes")) as usize
        };
        let take = (want - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        if self.head.len() < want {
            return Ok(take);
        }
        let total = u64::from(u32::from_le_bytes(self.head[..4].try_into().expect("4")));
        if want == 8 {
            if total > self.limit {
                return Err(Error::TooLarge {
                    what: "an incoming frame".into(),
                    size: total,
                    limit: self.limit,
                });
            }
            let header_len = u64::from(u32::from_le_bytes(self.head[4..8].try_into().expect("4")));
            if total < 4 || header_len > total - 4 {
                return Err(Error::Protocol(format!(
                    "a frame of {total} bytes claims a header of {header_len} bytes"
                )));
            }
            // The header follows: read it before the payload.
            return Ok(take + self.take_head(&bytes[take..])?);
        }
        let header_end = self.head.len();
        let payload_len = (total + 4) as usize - header_end;
        self.body = Some(Body {
            payload_len,
            header: 8..header_end,
            payload: super::bulk::encode_buffer(payload_len),
        });
        Ok(take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::wire::{self, FromWorker};

    fn frame(message: &FromWorker, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        wire::write_message(&mut bytes, message, payload, 1 << 30).unwrap();
        bytes
    }

    fn frames() -> Vec<(FromWorker, Vec<u8>)> {
        vec![
            (FromWorker::Alive, Vec::new()),
            (
                FromWorker::TimedOut {
                    id: 9,
                    index: Some(3),
                },
                b"x".to_vec(),
            ),
            (FromWorker::Alive, (0..20_000u32).map(|i| i as u8).collect()),
            (FromWorker::Alive, vec![7; 4096]),
        ]
    }

    /// Whatever the cut of the stream, the same frames come out in order.
    #[test]
    fn frames_come_out_whole_from_pieces_of_any_size() {
        let stream: Vec<u8> = frames().iter().flat_map(|(m, p)| frame(m, p)).collect();
        for cut in [1, 2, 3, 7, 8, 9, 100, 4096, 5000, stream.len()] {
            let mut assembler = FrameAssembler::new(1 << 20);
            let mut out = Vec::new();
            for piece in stream.chunks(cut) {
                assembler
                    .push::<FromWorker>(piece, |m, p| {
                        out.push((m, p));
                        Ok(())
                    })
                    .unwrap();
            }
            assert_eq!(out, frames(), "cut into pieces of {cut}");
            assert!(!assembler.is_mid_frame());
        }
    }

    #[test]
    fn a_partial_frame_is_seen_and_a_bad_one_refused() {
        let bytes = frame(&FromWorker::Alive, b"abc");
        let mut assembler = FrameAssembler::new(1 << 20);
        let none = |_: FromWorker, _: Vec<u8>| -> Result<(), String> { panic!("no frame yet") };
        assembler.push(&bytes[..bytes.len() - 1], none).unwrap();
        assert!(assembler.is_mid_frame());

        let mut too_big = FrameAssembler::new(16);
        let mut huge = (1u32 << 20).to_le_bytes().to_vec();
        huge.extend_from_slice(&0u32.to_le_bytes());
        let err = too_big
            .push::<FromWorker>(&huge, |_, _| Ok(()))
            .unwrap_err();
        assert!(err.contains("1048576") && err.contains("16"), "{err}");
        let mut bad_header = FrameAssembler::new(1 << 20);
        let mut lie = 8u32.to_le_bytes().to_vec();
        lie.extend_from_slice(&100u32.to_le_bytes());
        let err = bad_header
            .push::<FromWorker>(&lie, |_, _| Ok(()))
            .unwrap_err();
        assert!(err.contains("claims a header of 100 bytes"), "{err}");
    }

    /// The pieces a writer makes are agent frames of at most one atomic
    /// write, and join into the worker's frame.
    #[test]
    fn pieces_fit_one_atomic_write_and_join_again() {
        let (reader, writer) = std::io::pipe().unwrap();
        let mut pieces =
            PieceWriter::new(File::from(std::os::fd::OwnedFd::from(writer)), 3).unwrap();
        let payload: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
        let whole = frame(&FromWorker::Alive, &payload);
        let t = std::thread::spawn(move || {
            let (head, rest) = whole.split_at(5);
            pieces.write_all(head).unwrap();
            pieces.write_all(rest).unwrap();
            pieces.flush().unwrap();
        });
        let mut reader = std::io::BufReader::new(reader);
        let mut assembler = FrameAssembler::new(1 << 20);
        let mut joined = Vec::new();
        while joined.is_empty() {
            let (agent, piece) = wire::read_message::<_, FromAgent>(&mut reader, 1 << 20)
                .unwrap()
                .unwrap();
            assert_eq!(agent, FromAgent::Output { worker: 3 });
            let encoded = frame_len(&piece);
            assert!(encoded <= ATOMIC_WRITE, "a piece of {encoded} bytes");
            assembler
                .push::<FromWorker>(&piece, |m, p| {
                    joined.push((m, p));
                    Ok(())
                })
                .unwrap();
        }
        t.join().unwrap();
        assert_eq!(joined, vec![(FromWorker::Alive, payload)]);
    }

    /// The size of the agent frame that carried `piece`.
    fn frame_len(piece: &[u8]) -> usize {
        let header = codec::encode(&FromAgent::Output { worker: 3 }, "x").unwrap();
        8 + header.len() + piece.len()
    }
}
