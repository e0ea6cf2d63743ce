//! A worker's replies: turns its messages into filled result slots, relayed
//! log records and progress, and its end into `WorkerDied` (or `Timeout`)
//! for the task it was running. A local worker has a reader thread of its
//! own; a remote worker's frames are taken where they arrive, on its
//! connection's thread (`connection.rs`).
//!
//! Invariant: once the channel has ended the reader marks the worker
//! `ended` under the `running` lock, so dispatch never hands that worker a
//! task that nobody would answer.

use super::link::FrameSink;
use super::{Pool, Running, Worker, silence};
use crate::Error;
use crate::backend::replies::{emit_log, outcome_to_result};
use crate::backend::slot::Payload;
use crate::protocol::Output;
use crate::protocol::codec;
use crate::protocol::wire::{self, FromWorker, InboxPlace, Outcome};
use crate::sync::lock;
use crate::trace;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What the pool does with one worker's frames: fills result slots, relays
/// log records and progress, and answers for the running task when the
/// channel ends. Fed by the worker's reader thread ([`read_replies`]), or,
/// for a remote worker, by its connection's demultiplexing thread.
pub(super) struct Replies {
    shared: Arc<Pool>,
    worker: Arc<Worker>,
    /// Where the next answer's value waits in the worker's outbox.
    in_outbox: Option<InboxPlace>,
}

impl Replies {
    pub(super) fn new(shared: Arc<Pool>, worker: Arc<Worker>) -> Replies {
        Replies {
            shared,
            worker,
            in_outbox: None,
        }
    }
}

impl FrameSink for Replies {
    fn frame(&mut self, message: FromWorker, piped: Vec<u8>) -> Result<(), String> {
        let worker = &self.worker;
        silence::heard(worker);
        match message {
            FromWorker::Alive => {}
            FromWorker::InOutbox(place) => self.in_outbox = Some(place),
            FromWorker::Done {
                id,
                outcome,
                output,
            } => {
                let value = match self.in_outbox.take() {
                    None => Payload::Bytes(piped),
                    Some(place) => worker.outbox.lend(&place).map_err(|e| e.to_string())?,
                };
                done(&self.shared, worker, id, outcome, output, value)?;
            }
            FromWorker::Log { id, record } => {
                let (label, slot) = lock(&worker.running)
                    .as_ref()
                    .filter(|r| r.id == id)
                    .map_or((None, None), |r| {
                        (r.settings.label.clone(), Some(r.slot.clone()))
                    });
                if let Some(slot) = slot {
                    slot.keep_log(record.clone());
                }
                emit_log(record, label.as_deref());
            }
            FromWorker::Progress {
                id,
                elements,
                steps,
                message,
            } => progress(worker, id, elements, steps, message),
            FromWorker::TimedOut { id, index } => {
                *lock(&worker.timed_out) = Some((id, index));
            }
            other => return Err(format!("an unexpected message {other:?}")),
        }
        Ok(())
    }

    /// The channel ended: from now on no task may be given to this worker;
    /// it is forgotten, and the task it was running is answered for.
    fn end(self: Box<Self>, problem: Option<String>) {
        let (shared, worker) = (self.shared, self.worker);
        // From now on no task may be given to this worker (see `dispatch`).
        {
            let _running = lock(&worker.running);
            worker.ended.store(true, Ordering::Release);
        }
        lock(&worker.input).take();
        if problem.is_some() {
            // It broke the protocol: it may still be running; end it.
            lock(&worker.process).kill();
        }
        let status = lock(&worker.process).wait();
        let running = lock(&worker.running).take();
        // Forget the worker first: whoever collects the error then sees the
        // pool without it.
        shared.forget(&worker);
        if let Some(r) = running {
            answer_lost(&worker, r, status, problem);
        }
    }
}

/// Reads one worker's frames into `replies` until its channel ends, then
/// ends them: the reader thread of a worker whose frames arrive on a
/// channel of its own.
pub(super) fn read_replies(
    mut replies: Box<dyn FrameSink>,
    mut output: std::io::BufReader<Box<dyn std::io::Read + Send>>,
) {
    let limit = codec::max_frame_bytes();
    let problem = loop {
        match wire::read_message::<_, FromWorker>(&mut output, limit) {
            Ok(Some((message, payload))) => {
                if let Err(problem) = replies.frame(message, payload) {
                    break Some(problem);
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    replies.end(problem);
}

/// A task ended: its slot is filled and the worker freed. An answer for a
/// task the worker was not running is a broken protocol.
fn done(
    shared: &Pool,
    worker: &Arc<Worker>,
    id: u64,
    outcome: Outcome,
    output: Output,
    value: Payload,
) -> Result<(), String> {
    // The worker has opened its inbox, if it was offered one.
    if let Some(inbox) = lock(&worker.inbox).as_mut() {
        inbox.answered();
    }
    let running = lock(&worker.running).take();
    match running {
        Some(r) if r.id == id => {
            if trace::on() {
                trace_task(worker, &r);
            }
            // Free the worker first: whoever collects the value then already
            // sees it free.
            shared.release(worker);
            r.slot.set_answerer(worker.clone());
            r.slot.set_output(output);
            r.slot.fill_payload(outcome_to_result(outcome, value));
            Ok(())
        }
        other => {
            // Put the task back: the end of the channel answers for it.
            *lock(&worker.running) = other;
            Err(format!("an answer for task {id}, which it was not running"))
        }
    }
}

/// Elements finished or `progress!()` steps on the running chunk.
fn progress(worker: &Worker, id: u64, elements: u64, steps: u64, message: Option<String>) {
    let progress = lock(&worker.running)
        .as_ref()
        .filter(|r| r.id == id)
        .and_then(|r| r.progress.clone());
    if let Some(p) = progress {
        p.reported.fetch_add(elements, Ordering::Relaxed);
        p.bar.elements(elements);
        if steps > 0 || message.is_some() {
            p.bar.steps(steps, message);
        }
    }
}

/// The answer for the task a worker was running when its channel ended:
/// `Timeout` when it said an element ran out of time, else `WorkerDied`
/// with its exit status, what was wrong with the channel and the end of
/// what it wrote to stderr.
fn answer_lost(worker: &Worker, r: Running, status: String, problem: Option<String>) {
    let timed_out = lock(&worker.timed_out).take().filter(|(id, _)| *id == r.id);
    if let (Some((_, index)), Some(limit)) = (timed_out, r.settings.timeout) {
        r.slot.fill(Err(Error::Timeout {
            after: limit.text,
            label: r.settings.label,
            index: index.map(|i| i as usize),
        }));
        return;
    }
    let mut cause = match lock(&worker.unresponsive).take() {
        Some(why) => format!("{why} ({status})"),
        None => status,
    };
    if let Some(problem) = problem {
        cause = format!("{cause}; the channel carried {problem}");
    }
    if let Some(tail) = lock(&worker.process).stderr_tail() {
        cause = format!("{cause}; the end of its stderr: {tail}");
    }
    r.slot.fill(Err(Error::WorkerDied {
        worker: worker.describe(),
        cause,
        label: r.settings.label,
        index: None,
        elements: None,
    }));
}

/// The span of a task on its worker's lane: from sending it to its answer.
fn trace_task(worker: &Worker, r: &Running) {
    let mut args = Vec::new();
    if let Some(label) = &r.settings.label {
        args.push(("label", label.clone()));
    }
    let name = match &r.elements {
        Some(e) => {
            args.push((
                "elements",
                format!("{}..={}", e.start, e.end.saturating_sub(1)),
            ));
            "chunk"
        }
        None => "future",
    };
    trace::span(name, trace::Lane::Worker(worker.describe()), r.sent, args);
}
