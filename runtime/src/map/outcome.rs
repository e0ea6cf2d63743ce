//! What a finished chunk of a remote call came to: its values, decoded and
//! checked before they are believed; a chunk lost with its worker, run again
//! within `retries` or reported with how often it was tried; an element
//! that ran out of time (the rest of the chunk runs again); the rest of a
//! chunk a job handed back before its time limit.

use super::chunks::ChunkPlanner;
use super::remote::{Again, InFlight};
use crate::Error;
use crate::backend::ResultSlot;
use crate::backend::slot::Answerer;
use crate::body::chunk::ChunkOutput;
use crate::protocol::codec;
use serde::de::DeserializeOwned;
use std::ops::Range;
use std::sync::atomic::Ordering;

/// What became of a finished chunk.
pub(super) enum Ended<R> {
    /// Its output, or why the whole chunk was lost.
    Output(Range<usize>, Result<ChunkOutput<R>, Error>),
    /// It runs again (queued in `again`).
    Again,
    /// Element `t` ran out of time (the rest of the chunk runs again).
    TimedOut(usize, Error),
}

/// How a chunk's worker ended, and, when the chunk ran more than once, that
/// every attempt lost its worker.
fn after_retries(cause: String, retried: u32) -> String {
    match retried {
        0 => cause,
        n => format!(
            "{cause}; the chunk was run {} times (`retries = {n}`) and each time its worker died",
            n + 1
        ),
    }
}

/// Reads a finished chunk's slot: its values, a loss to run again (within
/// `retries`), or the element that ran out of time; moves its bar.
pub(super) fn chunk_outcome<R: DeserializeOwned>(
    f: InFlight,
    planner: &mut ChunkPlanner,
    again: &mut Again,
    retries: u32,
) -> Ended<R> {
    let reported = f
        .progress
        .as_ref()
        .map_or(0, |p| p.reported.load(Ordering::Relaxed));
    let cancelled = f.slot.is_cancelled();
    let (result, answerer) = f.slot.take_answer();
    let range = f.range;
    let output: Result<ChunkOutput<R>, Error> = match result {
        _ if cancelled => Err(Error::Cancelled { label: None }),
        Err(Error::WorkerDied { .. }) if f.attempt < retries => {
            // Run it again, on whichever worker is free next (a new process:
            // this one is gone), with the same streams.
            if let Some(p) = &f.progress {
                p.bar.lost(reported);
            }
            again.push_back((range, f.attempt + 1));
            return Ended::Again;
        }
        Err(Error::WorkerDied {
            worker,
            cause,
            label,
            ..
        }) => Err(Error::WorkerDied {
            worker,
            cause: after_retries(cause, f.attempt),
            label,
            index: Some(range.start),
            elements: Some(range.clone()),
        }),
        Err(e @ Error::Timeout { index: Some(t), .. }) if range.contains(&t) => {
            // The worker is gone with the values of the elements before `t`:
            // run the rest of the chunk again, without `t`.
            if let Some(p) = &f.progress {
                p.bar.lost(reported);
                p.bar.elements(1);
            }
            for rest in [range.start..t, t + 1..range.end] {
                if !rest.is_empty() {
                    again.push_back((rest, f.attempt));
                }
            }
            return Ended::TimedOut(t, e);
        }
        Err(Error::TooLarge { size, limit, .. }) => Err(Error::TooLarge {
            what: format!(
                "the values and the printed output of elements {}..={}",
                range.start,
                range.end - 1
            ),
            size,
            limit,
        }),
        Err(e) => Err(e),
        Ok(bytes) => {
            planner.record(range.len(), f.started.elapsed());
            let output = bytes.with_bytes(|b| believed(b, &range, answerer.as_deref(), &f.slot));
            // Decoded: the buffer serves the next chunk's answer.
            bytes.done();
            output
        }
    };
    let range = handed_back(&output, range, again, f.attempt);
    if let Some(p) = &f.progress
        && output.is_ok()
    {
        p.bar
            .elements((range.len() as u64).saturating_sub(reported));
    }
    Ended::Output(range, output)
}

/// A chunk's answer `bytes` for the elements `range`, decoded and checked
/// (`ChunkOutput::check`) before it is believed, with what the slot holds
/// besides: what its elements printed and the records they logged.
fn believed<R: DeserializeOwned>(
    bytes: &[u8],
    range: &Range<usize>,
    answerer: Option<&dyn Answerer>,
    slot: &ResultSlot,
) -> Result<ChunkOutput<R>, Error> {
    let mut out = codec::decode::<ChunkOutput<R>>(bytes, "the values of a chunk")?;
    if let Err(why) = out.check(range.len()) {
        return Err(Error::Protocol(format!(
            "{} answered elements {}..={} with {why}: the answer was refused",
            answerer.map_or("its worker".into(), |a| a.refused()),
            range.start,
            range.end - 1
        )));
    }
    out.output = slot.take_output();
    out.logs = slot.take_logs();
    Ok(out)
}

/// The elements a chunk's `output` is for: all of `range`, unless a job
/// told its time was nearly up handed back the rest, which then runs in a
/// new job (queued in `again`).
fn handed_back<R>(
    output: &Result<ChunkOutput<R>, Error>,
    range: Range<usize>,
    again: &mut Again,
    attempt: u32,
) -> Range<usize> {
    match output {
        Ok(ChunkOutput {
            handed_back: Some(ran),
            ..
        }) if (*ran as usize) < range.len() => {
            let end = range.start + *ran as usize;
            again.push_back((end..range.end, attempt));
            range.start..end
        }
        _ => range,
    }
}
