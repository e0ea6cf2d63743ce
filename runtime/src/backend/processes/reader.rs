//! One reader thread per worker: turns the worker's messages into filled
//! result slots, relayed log records and progress, and its end into
//! `WorkerDied` (or `Timeout`) for the task it was running.
//!
//! Invariant: once the reader has seen the channel end it marks the worker
//! `ended` under the `running` lock, so dispatch never hands that worker a
//! task that nobody would answer.

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

/// Turns one worker's replies into results until its channel ends, then
/// answers for the task it was running.
pub(super) fn read_replies(
    shared: Arc<Pool>,
    worker: Arc<Worker>,
    mut output: std::io::BufReader<Box<dyn std::io::Read + Send>>,
) {
    let problem = read_until_end(&shared, &worker, &mut output);
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
    // Forget the worker first: whoever collects the error then sees the pool
    // without it.
    shared.forget(&worker);
    if let Some(r) = running {
        answer_lost(&worker, r, status, problem);
    }
}

/// Reads the worker's messages until its channel ends: `None` when it
/// closed cleanly, else what was wrong with it.
fn read_until_end(
    shared: &Pool,
    worker: &Arc<Worker>,
    output: &mut std::io::BufReader<Box<dyn std::io::Read + Send>>,
) -> Option<String> {
    let limit = codec::max_frame_bytes();
    // Where the next answer's value waits in the worker's outbox.
    let mut in_outbox: Option<InboxPlace> = None;
    loop {
        let message = wire::read_message::<_, FromWorker>(output, limit);
        silence::heard(worker);
        match message {
            Ok(Some((FromWorker::Alive, _))) => {}
            Ok(Some((FromWorker::InOutbox(place), _))) => in_outbox = Some(place),
            Ok(Some((
                FromWorker::Done {
                    id,
                    outcome,
                    output,
                },
                piped,
            ))) => {
                let value = match in_outbox.take() {
                    None => Payload::Bytes(piped),
                    Some(place) => match worker.outbox.lend(&place) {
                        Ok(value) => value,
                        Err(e) => return Some(e.to_string()),
                    },
                };
                if let Err(problem) = done(shared, worker, id, outcome, output, value) {
                    return Some(problem);
                }
            }
            Ok(Some((FromWorker::Log { id, record }, _))) => {
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
            Ok(Some((
                FromWorker::Progress {
                    id,
                    elements,
                    steps,
                    message,
                },
                _,
            ))) => progress(worker, id, elements, steps, message),
            Ok(Some((FromWorker::TimedOut { id, index }, _))) => {
                *lock(&worker.timed_out) = Some((id, index));
            }
            Ok(Some((other, _))) => return Some(format!("an unexpected message {other:?}")),
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        }
    }
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
