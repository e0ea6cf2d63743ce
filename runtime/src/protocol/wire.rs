//! Frames and messages between a leader and its worker processes.
//!
//! A frame is `u32 LE length | u32 LE header length | header | payload`,
//! where the length counts everything after its own four bytes, the header
//! is a [`ToWorker`] or [`FromWorker`] message encoded by the codec, and the
//! payload is raw bytes (encoded captures, elements or a value), never
//! encoded a second time, so large captures are not copied into the header.
//!
//! Invariant: [`read_message`] never panics and never allocates more than
//! its limit, whatever bytes it is given; a frame larger than the limit is
//! refused before its body is read, and truncated or corrupt frames are
//! [`Error::Protocol`].

use super::{Output, codec};
use crate::settings::Settings;
use crate::{Error, Panic};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::io::{ErrorKind, Read, Write};

/// The protocol version; leader and worker refuse each other when it differs.
pub const PROTOCOL_VERSION: u32 = 8;

/// Frames up to this size are written with a single `write` (one wake-up of
/// the reader); larger ones as header and payload.
const ONE_WRITE: usize = 64 << 10;

/// What a leader says to a worker.
// A message is made, written and read one at a time: the size of its
// largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ToWorker {
    /// The handshake: the worker checks version and build, and takes
    /// `nested_plan` as the plan its futures see.
    Hello {
        /// The leader's [`PROTOCOL_VERSION`].
        version: u32,
        /// The leader's build id.
        build_id: Vec<u8>,
        /// The text form of the next plan level.
        nested_plan: String,
    },
    /// Run one unit of work: a future (the payload is its encoded
    /// captures) or a chunk of a `foreach!` call (the payload is its encoded
    /// elements; version 7 made both one message).
    Run {
        /// The leader's id of this task.
        id: u64,
        /// The entry function's offset from the anchor: a future's entry, or
        /// a chunk entry for a chunk.
        entry_offset: i64,
        /// For a chunk: its call and its first element.
        chunk: Option<ChunkOf>,
        /// How it runs, as the macro's options made it.
        settings: Settings,
    },
    /// Keep the payload as the captures of `foreach!` call `call`, for its
    /// chunks.
    KeepCaptures {
        /// The call the captures belong to.
        call: u64,
    },
    /// End the worker.
    Shutdown,
    /// The next message's payload is in the worker's shared inbox, not in
    /// its own frame (a local worker, a payload of 1 MiB or more; version 6).
    InInbox(InboxPlace),
    /// The worker is on the leader's machine: it may answer with a payload
    /// of 1 MiB or more through its shared outbox ([`FromWorker::InOutbox`];
    /// version 8). Sent once, after the handshake.
    UseOutbox,
}

impl ToWorker {
    /// The handshake a leader of this build sends, passing `nested_plan`
    /// (the text form of the next plan level) on to its worker.
    pub(crate) fn hello(nested_plan: String) -> ToWorker {
        ToWorker::Hello {
            version: PROTOCOL_VERSION,
            build_id: super::identity::build_id().to_vec(),
            nested_plan,
        }
    }
}

/// Where a payload waits in shared memory: bytes `offset..offset + len` of
/// the leader's memfd (a local worker's inbox) or of the worker's (its
/// outbox).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct InboxPlace {
    /// Where the payload starts.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// The inbox to open first, the first time it is used (or after it was
    /// replaced by a larger one).
    pub open: Option<InboxFile>,
}

/// A memfd of one side, which the other opens as `/proc/<pid>/fd/<fd>`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct InboxFile {
    /// The process id of the side that wrote it.
    pub pid: u32,
    /// The descriptor number in that process.
    pub fd: i32,
    /// The memfd's size.
    pub size: u64,
}

/// What a worker says to its leader.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum FromWorker {
    /// The handshake succeeded.
    Ready {
        /// The worker's [`PROTOCOL_VERSION`].
        version: u32,
        /// The worker's build id.
        build_id: Vec<u8>,
        /// The worker's process id.
        pid: u32,
    },
    /// The handshake failed; the worker exits.
    Refused {
        /// Why, naming both sides.
        reason: String,
    },
    /// A task ended; with [`Outcome::Value`] the payload is the encoded value.
    Done {
        /// The task's id.
        id: u64,
        /// How it ended.
        outcome: Outcome,
        /// What the task printed.
        output: Output,
    },
    /// A `log` record emitted by a task's body.
    Log {
        /// The task's id.
        id: u64,
        /// The record.
        record: LogRecord,
    },
    /// Elements of the running chunk finished, or its body called
    /// `progress!()`, since the last report.
    Progress {
        /// The task's id.
        id: u64,
        /// Elements finished since the last report.
        elements: u64,
        /// `progress!()` steps since the last report.
        steps: u64,
        /// The latest `progress!("...")` message, if any since the last report.
        message: Option<String>,
    },
    /// The worker is alive, idle or busy: sent every
    /// [`HEARTBEAT_EVERY`](crate::protocol::HEARTBEAT_EVERY), so that a
    /// worker (or a host) that stops answering is noticed.
    Alive,
    /// A task ran past its time limit; the worker ends right after this.
    TimedOut {
        /// The task's id.
        id: u64,
        /// The element that ran too long, for a chunk.
        index: Option<u64>,
    },
    /// The next message's payload is in this worker's shared outbox, not in
    /// its own frame (after [`ToWorker::UseOutbox`]; version 8).
    InOutbox(InboxPlace),
}

/// Which chunk of which call a [`ToWorker::Run`] is.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOf {
    /// The call whose kept captures ([`ToWorker::KeepCaptures`]) the chunk uses.
    pub call: u64,
    /// The element index of the chunk's first element.
    pub first: u64,
}

/// A `log` record as it travels to the leader.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// 1 = error … 5 = trace.
    pub level: u8,
    /// The record's target.
    pub target: String,
    /// The formatted message.
    pub message: String,
    /// The module that logged.
    pub module_path: Option<String>,
    /// The source file that logged.
    pub file: Option<String>,
    /// The line that logged.
    pub line: Option<u32>,
    /// The element index, inside a `foreach!`.
    pub index: Option<u64>,
}

/// How a task ended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It produced a value (the payload).
    Value,
    /// Its body panicked.
    Panicked(Panic),
    /// Its value and what it printed did not fit in a frame.
    TooLarge {
        /// Their size in bytes.
        size: u64,
        /// The frame limit.
        limit: u64,
    },
    /// It could not run (bytes that do not decode, …).
    Failed {
        /// Why.
        message: String,
    },
}

fn closed(e: std::io::Error) -> Error {
    Error::Protocol(format!("the channel between leader and worker closed: {e}"))
}

/// Writes one frame. A frame over `limit` (or over 4 GiB) is
/// [`Error::TooLarge`], refused before anything is written.
///
/// ```
/// use futurize_runtime::wire::{read_message, write_message, ToWorker};
/// let mut bytes = Vec::new();
/// write_message(&mut bytes, &ToWorker::Shutdown, b"payload", 1 << 20).unwrap();
/// let (message, payload) = read_message::<_, ToWorker>(&mut &bytes[..], 1 << 20).unwrap().unwrap();
/// assert_eq!((message, payload), (ToWorker::Shutdown, b"payload".to_vec()));
/// ```
pub fn write_message<W: Write, H: Serialize>(
    w: &mut W,
    header: &H,
    payload: &[u8],
    limit: u64,
) -> Result<(), Error> {
    write_message_parts(w, header, &[payload], limit)
}

/// Writes one frame whose payload is `parts` one after another (not
/// copied into one buffer first).
pub(crate) fn write_message_parts<W: Write, H: Serialize>(
    w: &mut W,
    header: &H,
    parts: &[&[u8]],
    limit: u64,
) -> Result<(), Error> {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    let mut frame = frame_head(header, payload_len, limit)?;
    if payload_len <= ONE_WRITE {
        frame.reserve(payload_len);
        for part in parts {
            frame.extend_from_slice(part);
        }
        w.write_all(&frame).map_err(closed)?;
    } else {
        w.write_all(&frame).map_err(closed)?;
        for part in parts {
            w.write_all(part).map_err(closed)?;
        }
    }
    w.flush().map_err(closed)
}

/// The bytes of a frame before its payload of `payload_len` bytes: its
/// length, its header's length and its header. A frame over `limit` (or
/// over 4 GiB) is [`Error::TooLarge`].
pub(crate) fn frame_head<H: Serialize>(
    header: &H,
    payload_len: usize,
    limit: u64,
) -> Result<Vec<u8>, Error> {
    let header = codec::encode(header, "a message")?;
    let total = 4 + header.len() as u64 + payload_len as u64;
    let limit = limit.min(u64::from(u32::MAX));
    if total > limit {
        return Err(Error::TooLarge {
            what: "a frame".into(),
            size: total,
            limit,
        });
    }
    let mut frame = Vec::with_capacity(8 + header.len() + payload_len.min(ONE_WRITE));
    frame.extend_from_slice(&(total as u32).to_le_bytes());
    frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
    frame.extend_from_slice(&header);
    Ok(frame)
}

/// Reads one frame: `Ok(None)` at a clean end of the channel (before the
/// first byte of a frame).
pub fn read_message<R: Read, H: DeserializeOwned>(
    r: &mut R,
    limit: u64,
) -> Result<Option<(H, Vec<u8>)>, Error> {
    let Some((header, len)) = read_head(r, limit)? else {
        return Ok(None);
    };
    Ok(Some((header, read_payload(r, len)?)))
}

/// Reads a payload of `len` bytes (after [`read_head`]) straight into a
/// buffer of its size (a spare one when large, see `bulk::reuse`).
pub(crate) fn read_payload<R: Read>(r: &mut R, len: usize) -> Result<Vec<u8>, Error> {
    let mut payload = super::bulk::encode_buffer(len);
    r.take(len as u64)
        .read_to_end(&mut payload)
        .map_err(|e| truncated(len, e))?;
    if payload.len() != len {
        return Err(Error::Protocol(format!(
            "a frame's payload of {len} bytes was truncated"
        )));
    }
    Ok(payload)
}

/// A payload of `len` bytes that ended early, or a channel that failed.
pub(crate) fn truncated(len: usize, e: std::io::Error) -> Error {
    match e.kind() {
        ErrorKind::UnexpectedEof => {
            Error::Protocol(format!("a frame's payload of {len} bytes was truncated"))
        }
        _ => closed(e),
    }
}

/// Reads one frame up to its payload: its header and the payload's length,
/// for the caller to read next (`Ok(None)` at a clean end of the channel).
pub(crate) fn read_head<R: Read, H: DeserializeOwned>(
    r: &mut R,
    limit: u64,
) -> Result<Option<(H, usize)>, Error> {
    let mut length = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut length[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(Error::Protocol(
                    "a frame was truncated in its length".into(),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(closed(e)),
        }
    }
    let total = u64::from(u32::from_le_bytes(length));
    if total > limit {
        return Err(Error::TooLarge {
            what: "an incoming frame".into(),
            size: total,
            limit,
        });
    }
    if total < 4 {
        return Err(Error::Protocol(format!(
            "a frame of {total} bytes has no header length"
        )));
    }
    let truncated = |e: std::io::Error| match e.kind() {
        ErrorKind::UnexpectedEof => {
            Error::Protocol(format!("a frame of {total} bytes was truncated"))
        }
        _ => closed(e),
    };
    let mut header_len = [0u8; 4];
    r.read_exact(&mut header_len).map_err(truncated)?;
    let header_len = u64::from(u32::from_le_bytes(header_len));
    if header_len > total - 4 {
        return Err(Error::Protocol(format!(
            "a frame of {total} bytes claims a header of {header_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    r.read_exact(&mut header).map_err(truncated)?;
    let header: H = codec::decode(&header, "a message")?;
    Ok(Some((header, (total - 4 - header_len) as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &ToWorker, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_message(&mut bytes, message, payload, 1 << 30).unwrap();
        bytes
    }

    /// Settings with every field away from its default.
    fn every_setting() -> Settings {
        let mut s = Settings {
            label: Some("a".into()),
            streams: Some(crate::rng::Streams::from_seed(1)),
            stdout: false,
            log_level: 3,
            timeout: Some(crate::settings::TimeLimit {
                limit: std::time::Duration::from_millis(600_000),
                text: "10m".into(),
            }),
            progress: true,
            retries: 2,
            errors: crate::settings::ErrorPolicy::Pass,
            ..Settings::default()
        };
        let mut r = crate::settings::Settings::default()
            .resources
            .unwrap_or_default();
        r.mem = Some("2G".into());
        r.cpus = Some(4);
        r.sbatch.push("--qos=low".into());
        s.resources = Some(r);
        s
    }

    fn messages() -> Vec<ToWorker> {
        vec![
            ToWorker::Hello {
                version: PROTOCOL_VERSION,
                build_id: vec![1, 2, 3],
                nested_plan: "multithread:2".into(),
            },
            ToWorker::Run {
                id: 7,
                entry_offset: -4096,
                chunk: None,
                settings: every_setting(),
            },
            ToWorker::KeepCaptures { call: 3 },
            ToWorker::Run {
                id: 8,
                entry_offset: 12,
                chunk: Some(ChunkOf {
                    call: 3,
                    first: 1 << 40,
                }),
                settings: Settings::default(),
            },
            ToWorker::Shutdown,
            ToWorker::InInbox(InboxPlace {
                offset: 64,
                len: 1 << 30,
                open: Some(InboxFile {
                    pid: 4321,
                    fd: 9,
                    size: 2 << 30,
                }),
            }),
            ToWorker::UseOutbox,
        ]
    }

    #[test]
    fn messages_round_trip_with_payloads_of_every_size() {
        for m in messages() {
            for size in [0usize, 1, 100 << 10] {
                let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
                let bytes = frame(&m, &payload);
                let mut reader = &bytes[..];
                let (back, got) = read_message::<_, ToWorker>(&mut reader, 1 << 30)
                    .unwrap()
                    .unwrap();
                assert_eq!((back, got), (m.clone(), payload));
                assert!(
                    read_message::<_, ToWorker>(&mut reader, 1 << 30)
                        .unwrap()
                        .is_none()
                );
            }
        }
    }

    #[test]
    fn through_a_real_pipe() {
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let sender = std::thread::spawn(move || {
            for m in messages() {
                write_message(&mut writer, &m, &[9; 200_000], 1 << 30).unwrap();
            }
        });
        for m in messages() {
            let (back, payload) = read_message::<_, ToWorker>(&mut reader, 1 << 30)
                .unwrap()
                .unwrap();
            assert_eq!(back, m);
            assert_eq!(payload.len(), 200_000);
        }
        sender.join().unwrap();
        assert!(
            read_message::<_, ToWorker>(&mut reader, 1 << 30)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn every_truncation_is_a_protocol_error() {
        let bytes = frame(&messages()[3], b"elements");
        for cut in 1..bytes.len() {
            let r = read_message::<_, ToWorker>(&mut &bytes[..cut], 1 << 30);
            assert!(matches!(r, Err(Error::Protocol(_))), "cut at {cut}: {r:?}");
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_reading_or_writing() {
        let mut bytes = (4u32 << 30).wrapping_sub(1).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        let r = read_message::<_, ToWorker>(&mut &bytes[..], 1 << 20);
        assert!(matches!(r, Err(Error::TooLarge { limit, .. }) if limit == 1 << 20));
        let mut out = Vec::new();
        let r = write_message(&mut out, &ToWorker::Shutdown, &[0; 2000], 1000);
        assert!(matches!(r, Err(Error::TooLarge { size, limit: 1000, .. }) if size > 2000));
        assert!(out.is_empty(), "nothing written");
    }

    #[test]
    fn a_header_longer_than_its_frame_is_refused() {
        let mut bytes = 8u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&100u32.to_le_bytes());
        bytes.extend_from_slice(&[0; 4]);
        let r = read_message::<_, ToWorker>(&mut &bytes[..], 1 << 20);
        assert!(matches!(r, Err(Error::Protocol(m)) if m.contains("claims a header")));
    }

    /// splitmix64: a small, fixed-seed generator for the property tests.
    fn random(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut state = 42;
        let valid: Vec<Vec<u8>> = messages()
            .iter()
            .map(|m| frame(m, b"some payload"))
            .collect();
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                let len = (random(&mut state) % 64) as usize;
                (0..len).map(|_| random(&mut state) as u8).collect()
            } else {
                let mut b = valid[round % valid.len()].clone();
                match random(&mut state) % 3 {
                    0 => {
                        let i = (random(&mut state) as usize) % b.len();
                        b[i] ^= 1 << (random(&mut state) % 8);
                    }
                    1 => b.truncate((random(&mut state) as usize) % b.len()),
                    _ => {
                        let i = (random(&mut state) as usize) % b.len();
                        b.insert(i, random(&mut state) as u8);
                    }
                }
                b
            };
            // Either outcome is fine; a panic or a huge allocation is not.
            let _ = read_message::<_, ToWorker>(&mut &bytes[..], 1 << 16);
            let _ = read_message::<_, FromWorker>(&mut &bytes[..], 1 << 16);
        }
    }
}
