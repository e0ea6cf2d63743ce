//! Waiting for jobs: one thread per Slurm backend polls the registry for
//! answer files (NFS has no inotify), every tenth of the youngest waiting
//! job's age (20 ms to 1 s; a new job wakes it), and
//! asks Slurm now and then for the states of the jobs still waited for, so
//! that a job that ended without an answer (failed, cancelled, out of time
//! or memory, its node lost) becomes an error with its id, state, exit code
//! and the end of its log. When Slurm itself stops answering (squeue
//! fails, as when slurmctld is down) for longer than
//! `FUTURIZE_SLURM_SILENCE_LIMIT` (default 5 minutes), the jobs still waited
//! for are given up with an error quoting squeue, rather than waited for
//! forever.

use super::registry::{self, CallDir};
use super::retry::{self, Retry};
use super::scheduler;
use crate::Error;
use crate::backend::replies::{emit_log, outcome_to_result};
use crate::backend::{ChunkProgress, ResultSlot};
use crate::protocol::wire::FromWorker;
use crate::sync::lock;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// A job whose answer is awaited.
pub(super) struct Pending {
    /// `123`, or `123_4` for an array task.
    pub(super) job: String,
    pub(super) result: PathBuf,
    /// Its task in the call's directory (what its answer must say it is).
    pub(super) task: String,
    pub(super) log: PathBuf,
    pub(super) dir: Arc<CallDir>,
    pub(super) slot: Arc<ResultSlot>,
    pub(super) label: Option<String>,
    pub(super) progress: Option<Arc<ChunkProgress>>,
    /// When Slurm was first seen to have ended it without an answer (the
    /// file may still be on its way through a shared file system).
    pub(super) ended: Option<(Instant, String)>,
    /// Called once the job is answered or given up (frees its place).
    pub(super) done: Option<Box<dyn FnOnce() + Send>>,
    /// When it was submitted, for the trace.
    pub(super) submitted: Instant,
    /// How it runs again when it ends without an answer (`retries`,
    /// `escalate`; `retry.rs`).
    pub(super) retry: Option<Box<Retry>>,
}

/// The jobs waited for, and the wake-up of the thread that waits.
#[derive(Default)]
pub(super) struct Watch {
    pending: Mutex<Vec<Pending>>,
    added: Condvar,
    started: Mutex<bool>,
    /// Since when squeue has failed, and its last complaint.
    unanswered: Mutex<Option<(Instant, String)>>,
}

/// How long Slurm may fail to answer before the jobs waited for are given
/// up: checked where the plan's backend started (`protocol/environment.rs`).
fn silence_limit() -> Duration {
    crate::protocol::environment::SLURM_SILENCE_LIMIT.value()
}

/// How long an answer may lag behind its job's end on a shared file system.
const ANSWER_LAG: Duration = Duration::from_secs(5);

/// How often Slurm is asked for states.
const ASK_EVERY: Duration = Duration::from_millis(1000);

impl Watch {
    /// Waits for `job`'s answer from now on.
    pub(super) fn add(self: &Arc<Self>, job: Pending) {
        lock(&self.pending).push(job);
        self.added.notify_all();
        let mut started = lock(&self.started);
        if !*started {
            *started = true;
            let weak = Arc::downgrade(self);
            let _ = std::thread::Builder::new()
                .name("futurize-slurm-watch".into())
                .spawn(move || watch(weak));
        }
    }

    /// Stops waiting for `job` (it was cancelled).
    pub(super) fn forget(&self, job: &str) -> Option<Pending> {
        let mut pending = lock(&self.pending);
        let i = pending.iter().position(|p| p.job == job)?;
        Some(pending.swap_remove(i))
    }
}

fn watch(watch: Weak<Watch>) {
    let mut asked = Instant::now() - ASK_EVERY;
    loop {
        let Some(w) = watch.upgrade() else { return };
        {
            let pending = lock(&w.pending);
            if pending.is_empty() {
                // Sleep until more is submitted (or the backend is gone).
                let _ = w
                    .added
                    .wait_timeout(pending, Duration::from_secs(1))
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
        }
        collect_answers(&w);
        if Instant::now() >= asked + ASK_EVERY {
            asked = Instant::now();
            look_at_states(&w);
        }
        // Look again after a tenth of the youngest job's age (20 ms to 1 s):
        // a short job is answered soon after it ends, a long one costs few
        // looks. A job submitted meanwhile wakes the wait.
        let pending = lock(&w.pending);
        let youngest = pending.iter().map(|p| p.submitted.elapsed()).min();
        let pause = youngest.map_or(Duration::from_secs(1), |age| {
            (age / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
        });
        let _ = w
            .added
            .wait_timeout(pending, pause)
            .unwrap_or_else(|p| p.into_inner());
    }
}

/// Takes the answers that have appeared; true when there was one.
fn collect_answers(w: &Watch) -> bool {
    let ready: Vec<Pending> = {
        let mut pending = lock(&w.pending);
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) =
            pending.drain(..).partition(|p| p.result.exists());
        *pending = waiting;
        ready
    };
    let any = !ready.is_empty();
    for p in ready {
        answer(p);
    }
    any
}

/// Fills a job's slot from its answer file.
fn answer(mut p: Pending) {
    let result = match registry::read_answers(&p.result, &p.dir.key, &p.task, &p.job) {
        Err(e) => Err(e),
        Ok(frames) => {
            let mut result = None;
            for (message, payload) in frames {
                match message {
                    FromWorker::Done {
                        outcome, output, ..
                    } => {
                        p.slot.set_output(output);
                        result = Some(outcome_to_result(outcome, payload));
                    }
                    FromWorker::Log { record, .. } => {
                        p.slot.keep_log(record.clone());
                        emit_log(record, p.label.as_deref());
                    }
                    FromWorker::Progress { elements, .. } => {
                        if let Some(bar) = &p.progress {
                            bar.reported.fetch_add(elements, Ordering::Relaxed);
                            bar.bar.elements(elements);
                        }
                    }
                    FromWorker::Refused { reason } => result = Some(Err(Error::Protocol(reason))),
                    _ => {}
                }
            }
            result.unwrap_or_else(|| {
                Err(Error::Protocol(format!(
                    "the answer of Slurm job {} holds no result ({})",
                    p.job,
                    p.result.display()
                )))
            })
        }
    };
    if matches!(result, Err(Error::Protocol(_))) {
        p.dir.keep();
    }
    let mut args = Vec::new();
    if let Some(l) = &p.label {
        args.push(("label", l.clone()));
    }
    crate::trace::span(
        "job",
        crate::trace::Lane::Worker(format!("Slurm job {}", p.job)),
        p.submitted,
        args,
    );
    if let Some(done) = p.done.take() {
        done();
    }
    // The registry goes (with the job's last hold on it) once the value
    // is taken, or is kept if what it holds is not believed.
    p.slot.set_answerer(Arc::new(JobAnswer {
        job: p.job.clone(),
        file: p.result.clone(),
        dir: p.dir.clone(),
    }));
    let slot = p.slot.clone();
    drop(p);
    slot.fill(result);
}

/// A job that answered: named, and its registry kept, when its answer is
/// not believed.
struct JobAnswer {
    job: String,
    file: PathBuf,
    dir: Arc<CallDir>,
}

impl crate::backend::slot::Answerer for JobAnswer {
    fn describe(&self) -> String {
        format!(
            "Slurm job {} (its answer {}; the registry is kept)",
            self.job,
            self.file.display()
        )
    }

    fn distrusted(&self) {
        self.dir.keep();
    }
}

/// Asks Slurm about the jobs still waited for; those it has ended without
/// an answer fail (after a grace for the file to show up).
fn look_at_states(w: &Watch) {
    let now = Instant::now();
    let states = match scheduler::states() {
        Ok(states) => {
            *lock(&w.unanswered) = None;
            states
        }
        Err(complaint) => {
            let since = {
                let mut unanswered = lock(&w.unanswered);
                let (since, last) = unanswered.get_or_insert((now, String::new()));
                *last = complaint;
                *since
            };
            if now.duration_since(since) >= silence_limit() {
                give_up(w, now.duration_since(since));
            }
            return;
        }
    };
    let mut failed = Vec::new();
    {
        let mut pending = lock(&w.pending);
        let mut i = 0;
        while i < pending.len() {
            let p = &mut pending[i];
            let state = states.get(&p.job).cloned();
            let ended = match state.as_deref() {
                None => Some("no longer known to squeue".to_string()),
                // Preempted or its node lost, and requeued by Slurm: the
                // same job runs again, and is waited for as it is.
                Some(s) if scheduler::has_ended(s) && scheduler::requeued(&p.job, s) => None,
                Some(s) if scheduler::has_ended(s) => Some(s.to_string()),
                Some(_) => None,
            };
            if let Some(state) = ended {
                let since = p.ended.get_or_insert((now, state)).0;
                // A job that completed may have its answer on the way; one
                // that failed has none coming.
                let completed = p
                    .ended
                    .as_ref()
                    .is_some_and(|(_, s)| s == "COMPLETED" || s.starts_with("no longer"));
                if (!completed || now.duration_since(since) >= ANSWER_LAG) && !p.result.exists() {
                    failed.push(pending.swap_remove(i));
                    continue;
                }
            }
            i += 1;
        }
    }
    for p in failed {
        fail(w, p);
    }
}

/// Slurm has not answered for `silent`: every job still waited for fails
/// (it may still run; its registry is kept for a look by hand).
fn give_up(w: &Watch, silent: Duration) {
    let complaint = lock(&w.unanswered)
        .take()
        .map(|(_, c)| c)
        .unwrap_or_default();
    let given_up = std::mem::take(&mut *lock(&w.pending));
    for p in given_up {
        let cause = format!(
            "Slurm has not answered for {} s (squeue: {}), so its job {} was given up; it may \
             still run; the registry is kept at {} (FUTURIZE_SLURM_SILENCE_LIMIT sets how long \
             to wait)",
            silent.as_secs(),
            complaint.trim(),
            p.job,
            p.dir.path.display()
        );
        lost(p, cause);
    }
}

/// A job that ended without an answer: it runs again when its retry plan
/// says so (as a new job waited for in its place), else its slot fails
/// naming every attempt.
fn fail(w: &Watch, mut p: Pending) {
    let (state, code) = scheduler::final_state(&p.job).unwrap_or_else(|| {
        (
            p.ended.as_ref().map(|(_, s)| s.clone()).unwrap_or_default(),
            "unknown".into(),
        )
    });
    let tail = registry::log_tail(&p.log);
    let ended = format!("ended {state} with exit code {code} and no answer");
    let Some(retry) = p.retry.as_mut() else {
        let cause = format!(
            "Slurm job {} {ended}; {tail}; the registry is kept at {}",
            p.job,
            p.dir.path.display()
        );
        return lost(p, cause);
    };
    let why = retry::cause(&state, &registry::log_text(&p.log));
    retry
        .attempts
        .push(retry::attempt(&p.job, &retry.resources, &ended, &tail));
    let next = retry
        .next(why, scheduler::given(&p.job))
        .and_then(|resources| {
            let job = (retry.again)(&resources).map_err(|e| e.to_string())?;
            retry.resources = resources;
            Ok(job)
        });
    match next {
        Ok(job) => {
            p.log = p.dir.path.join(format!("log-{job}.txt"));
            p.job = job;
            p.ended = None;
            p.submitted = Instant::now();
            lock(&w.pending).push(p);
        }
        Err(stop) => {
            let attempts = retry.attempts.join("; then ");
            let cause = format!(
                "{}; not run again: {stop}; the registry is kept at {}",
                attempts,
                p.dir.path.display()
            );
            lost(p, cause);
        }
    }
}

/// A job given up without an answer, for `cause`: its registry is kept, its
/// place freed, its slot filled with `WorkerDied`.
fn lost(mut p: Pending, cause: String) {
    p.dir.keep();
    if let Some(done) = p.done.take() {
        done();
    }
    let error = Error::WorkerDied {
        worker: format!("Slurm job {}", p.job),
        cause,
        label: p.label.clone(),
        index: None,
        elements: None,
    };
    let slot = p.slot.clone();
    drop(p);
    slot.fill(Err(error));
}
