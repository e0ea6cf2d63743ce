//! One reader thread per worker: turns the worker's messages into filled
//! result slots, relayed log records and progress, and its end into
//! `WorkerDied` (or `Timeout`) for the task it was running.
//!
//! Invariant: once the reader has seen the channel end it marks the worker
//! `ended` under the `running` lock, so dispatch never hands that worker a
//! task that nobody would answer.

use super::{Running, Shared, Worker, silence};
use crate::Error;
use crate::backend::replies::{emit_log, outcome_to_result};
use crate::protocol::codec;
use crate::protocol::wire::{self, FromWorker};
use crate::sync::lock;
use crate::trace;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Turns one worker's replies into results until its channel ends.
pub(super) fn read_replies(
    shared: Arc<Shared>,
    worker: Arc<Worker>,
    mut output: std::io::BufReader<Box<dyn std::io::Read + Send>>,
) {
    let limit = codec::max_frame_bytes();
    let ended = loop {
        let message = wire::read_message::<_, FromWorker>(&mut output, limit);
        silence::heard(&worker);
        match message {
            Ok(Some((FromWorker::Alive, _))) => {}
            Ok(Some((
                FromWorker::Done {
                    id,
                    outcome,
                    output,
                },
                value,
            ))) => {
                // The worker has opened its inbox, if it was offered one.
                if let Some(inbox) = lock(&worker.inbox).as_mut() {
                    inbox.answered();
                }
                let running = lock(&worker.running).take();
                match running {
                    Some(r) if r.id == id => {
                        if trace::on() {
                            trace_task(&worker, &r);
                        }
                        // Free the worker first: whoever collects the value
                        // then already sees it free.
                        shared.release(&worker);
                        r.slot.set_output(output);
                        r.slot.fill(outcome_to_result(outcome, value));
                    }
                    other => {
                        // Put the task back: the end of the channel below
                        // answers for it.
                        *lock(&worker.running) = other;
                        break Some(format!(
                            "an answer for future {id}, which it was not running"
                        ));
                    }
                }
            }
            Ok(Some((FromWorker::Log { id, record }, _))) => {
                let label = lock(&worker.running)
                    .as_ref()
                    .filter(|r| r.id == id)
                    .and_then(|r| r.task.label.clone());
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
            ))) => {
                let progress = lock(&worker.running)
                    .as_ref()
                    .filter(|r| r.id == id)
                    .and_then(|r| r.task.progress.clone());
                if let Some(p) = progress {
                    p.reported.fetch_add(elements, Ordering::Relaxed);
                    p.bar.elements(elements);
                    if steps > 0 || message.is_some() {
                        p.bar.steps(steps, message);
                    }
                }
            }
            Ok(Some((FromWorker::TimedOut { id, index }, _))) => {
                *lock(&worker.timed_out) = Some((id, index));
            }
            Ok(Some((other, _))) => break Some(format!("an unexpected message {other:?}")),
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        }
    };
    // From now on no task may be given to this worker (see `dispatch`).
    {
        let _running = lock(&worker.running);
        worker.ended.store(true, Ordering::Release);
    }
    lock(&worker.input).take();
    if ended.is_some() {
        // It broke the protocol: it may still be running; end it.
        lock(&worker.process).kill();
    }
    let status = lock(&worker.process).wait();
    let running = lock(&worker.running).take();
    // Forget the worker first: whoever collects the error then sees the pool
    // without it.
    shared.forget(&worker);
    if let Some(r) = running {
        let timed_out = lock(&worker.timed_out).take().filter(|(id, _)| *id == r.id);
        if let (Some((_, index)), Some(after)) = (timed_out, r.task.timeout) {
            r.slot.fill(Err(Error::Timeout {
                after,
                label: r.task.label,
                index: index.map(|i| i as usize),
            }));
            return;
        }
        let mut cause = match lock(&worker.unresponsive).take() {
            Some(why) => format!("{why} ({status})"),
            None => status,
        };
        if let Some(problem) = ended {
            cause = format!("{cause}; the channel carried {problem}");
        }
        if let Some(words) = lock(&worker.process).last_words() {
            cause = format!("{cause}; its last words on stderr: {words}");
        }
        r.slot.fill(Err(Error::WorkerDied {
            worker: worker.describe(),
            cause,
            label: r.task.label,
            index: None,
            elements: None,
        }));
    }
}

/// The span of a task on its worker's lane: from sending it to its answer.
fn trace_task(worker: &Worker, r: &Running) {
    let mut args = Vec::new();
    if let Some(label) = &r.task.label {
        args.push(("label", label.clone()));
    }
    let name = match &r.task.elements {
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
