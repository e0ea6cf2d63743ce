//! A remote worker's frames taken where they arrive: the connection's
//! demultiplexing thread joins each worker's bytes into frames and hands
//! them to the pool's [`FrameSink`] itself, instead of writing them into a
//! pipe for a reader thread to read (one thread fewer to wake per answer).
//!
//! Invariant: a worker's sink ends exactly once, on the connection's ending
//! thread, never on the demultiplexing thread (ending waits for the worker
//! process, whose end that thread reports) nor under a caller's lock.

use super::link::FrameSink;
use crate::protocol::codec;
use crate::protocol::shared_connection::FrameAssembler;
use crate::protocol::wire::FromWorker;
use crate::sync::lock;
use std::sync::{Arc, Mutex, mpsc};

/// One worker's frames on their way to its sink.
pub(super) struct Delivery {
    assembler: FrameAssembler,
    /// `None` once the channel has ended for the pool.
    sink: Option<Box<dyn FrameSink>>,
    ends: mpsc::Sender<Ending>,
}

/// A worker's channel that ended, for the ending thread.
pub(super) enum Ending {
    /// It ended cleanly, or mid-frame (then a truncated frame is its
    /// problem).
    Closed(Arc<Mutex<Delivery>>),
    /// It broke the protocol.
    Broken(Box<dyn FrameSink>, String),
}

impl Delivery {
    pub(super) fn new(sink: Box<dyn FrameSink>, ends: mpsc::Sender<Ending>) -> Delivery {
        Delivery {
            assembler: FrameAssembler::new(codec::max_frame_bytes()),
            sink: Some(sink),
            ends,
        }
    }

    /// Takes bytes of the worker's channel; the frames they complete go to
    /// the sink. A broken frame ends the channel.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        let Some(sink) = self.sink.as_mut() else {
            return;
        };
        let pushed = self
            .assembler
            .push::<FromWorker>(bytes, |message, payload| sink.frame(message, payload));
        if let Err(problem) = pushed
            && let Some(sink) = self.sink.take()
        {
            let _ = self.ends.send(Ending::Broken(sink, problem));
        }
    }

    /// Gives the sink back, for a reader thread to take over (nothing was
    /// pushed yet).
    pub(super) fn take_sink(&mut self) -> Option<Box<dyn FrameSink>> {
        self.sink.take()
    }
}

/// The channel of `delivery` ended: its sink ends on the ending thread
/// (`ends`). Does not lock `delivery`: its caller may hold the lock that
/// `RemoteProcess::deliver` takes next.
pub(super) fn close(ends: &Mutex<mpsc::Sender<Ending>>, delivery: Arc<Mutex<Delivery>>) {
    let _ = lock(ends).send(Ending::Closed(delivery));
}

/// Starts a connection's ending thread: it ends the sinks of the workers
/// whose channels end, one after another, until the connection is gone.
pub(super) fn start_ending_thread(host: &str) -> std::io::Result<mpsc::Sender<Ending>> {
    let (ends, endings) = mpsc::channel::<Ending>();
    std::thread::Builder::new()
        .name(format!("futurize-ends-{host}"))
        .spawn(move || {
            for ending in endings {
                match ending {
                    Ending::Broken(sink, problem) => sink.end(Some(problem)),
                    Ending::Closed(delivery) => {
                        let (sink, mid_frame) = {
                            let mut d = lock(&delivery);
                            (d.sink.take(), d.assembler.is_mid_frame())
                        };
                        let problem = mid_frame.then(|| "a frame was truncated".to_string());
                        if let Some(sink) = sink {
                            sink.end(problem);
                        }
                    }
                }
            }
        })?;
    Ok(ends)
}
