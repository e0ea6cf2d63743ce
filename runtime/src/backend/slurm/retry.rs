//! Jobs that adapt to why they failed: a job that ran out of memory runs
//! again with more memory, one that ran out of time with more time (by the
//! factors of `escalate`, default double, capped by what the cluster's
//! largest node and longest partition offer); a job preempted or lost with
//! its node runs again unchanged without counting against `retries`; any
//! other failure runs again unchanged while `retries` last. The error after
//! the last try names every attempt: its resources, state, exit code and
//! the end of its log.
//!
//! Invariant: the Slurm backend retries its own jobs (a retry is a new job
//! of the same task files, whose answer is taken under the same task name),
//! so the map engine does not retry a Slurm chunk a second time
//! (`Backend::retries_itself`).

use crate::Error;
use crate::plan::{Capacity, Resources};
use crate::settings::Escalation;
use std::time::Duration;

/// Why a job ended without an answer, as far as what to do next goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// Over its memory: `OUT_OF_MEMORY`, or a log that says so.
    OutOfMemory,
    /// Over its time limit.
    OutOfTime,
    /// Preempted, or lost with its node: nothing about the work.
    NotItsFault,
    /// Cancelled (scancel, by the user or an administrator): not run again.
    Cancelled,
    /// Anything else.
    Other,
}

/// Reads the cause from the job's final `state`, and the end of its `log`.
pub(super) fn cause(state: &str, log: &str) -> Cause {
    let log = log.to_ascii_lowercase();
    if state.starts_with("OUT_OF_MEMORY")
        || log.contains("exceeded job memory limit")
        || log.contains("oom-kill")
        || log.contains("out of memory")
    {
        Cause::OutOfMemory
    } else if state.starts_with("TIMEOUT") || log.contains("due to time limit") {
        Cause::OutOfTime
    } else if log.contains("due to preemption") || log.contains("due to node failure") {
        // Preempted where the site cancels rather than requeues: the log
        // says so even when the state says CANCELLED or FAILED.
        Cause::NotItsFault
    } else if state.starts_with("CANCELLED") {
        Cause::Cancelled
    } else if ["PREEMPTED", "NODE_FAIL", "BOOT_FAIL"]
        .iter()
        .any(|s| state.starts_with(s))
    {
        Cause::NotItsFault
    } else {
        Cause::Other
    }
}

/// How often a job may run again for causes that are not its own, at most
/// (a cluster that preempts it forever must not hold the call forever).
const NOT_ITS_FAULT_AT_MOST: u32 = 5;

/// Submits a job's task again with these resources: the new job's id.
pub(super) type Again = Box<dyn Fn(&Resources) -> Result<String, Error> + Send>;

/// What it takes to run a job's task again, and what happened so far.
pub(super) struct Retry {
    /// What the last job asked for.
    pub(super) resources: Resources,
    /// Retries left that count (`retries`).
    pub(super) left: u32,
    /// Reruns left for preemption and lost nodes.
    pub(super) not_its_fault: u32,
    pub(super) escalate: Option<Escalation>,
    /// What the cluster offers one job, for the caps (asked only when a
    /// retry escalates).
    pub(super) capacity: Box<dyn Fn() -> Capacity + Send>,
    /// Every attempt that ended without an answer, as the error names them.
    pub(super) attempts: Vec<String>,
    /// Submits the task again with these resources: the new job's id.
    pub(super) again: Again,
}

impl Retry {
    /// A job's retry plan: `retries` that count, escalating by `escalate`.
    pub(super) fn new(
        resources: Resources,
        retries: u32,
        escalate: Option<Escalation>,
        capacity: Box<dyn Fn() -> Capacity + Send>,
        again: Again,
    ) -> Retry {
        Retry {
            resources,
            left: retries,
            not_its_fault: NOT_ITS_FAULT_AT_MOST,
            escalate,
            capacity,
            attempts: Vec::new(),
            again,
        }
    }

    /// What the next job asks for after one ended for `cause` (the job's
    /// own memory and time limit, as Slurm gave them, stand in for what was
    /// not asked): `None` when there is no next job, with why not.
    pub(super) fn next(
        &mut self,
        cause: Cause,
        given: (Option<u64>, Option<Duration>),
    ) -> Result<Resources, String> {
        if cause == Cause::Cancelled {
            return Err("it was cancelled (scancel), which is not retried".into());
        }
        if cause == Cause::NotItsFault {
            if self.not_its_fault == 0 {
                return Err(format!(
                    "it was preempted or lost its node {NOT_ITS_FAULT_AT_MOST} times"
                ));
            }
            self.not_its_fault -= 1;
            return Ok(self.resources.clone());
        }
        if self.left == 0 {
            return Err(match self.attempts.len() {
                1 => "no retries were asked (`retries = n`)".into(),
                n => format!("it was tried {n} times (`retries = {}`)", n - 1),
            });
        }
        self.left -= 1;
        let Some(factors) = self.escalate.filter(|_| cause != Cause::Other) else {
            return Ok(self.resources.clone());
        };
        match cause {
            Cause::OutOfMemory => {
                let now = self.resources.mem_bytes().or(given.0).ok_or(
                    "it ran out of memory, and neither its `mem` nor what Slurm gave it is known",
                )?;
                let wanted = (now as f64 * factors.mem) as u64;
                let capped = (self.capacity)().mem.map_or(wanted, |cap| wanted.min(cap));
                if capped <= now {
                    return Err(format!(
                        "it ran out of memory with {} MiB, the most a node here has",
                        now >> 20
                    ));
                }
                Ok(self
                    .resources
                    .clone()
                    .mem(format!("{}M", capped.div_ceil(1 << 20))))
            }
            Cause::OutOfTime => {
                let now = self.resources.wall_time().or(given.1).ok_or(
                    "it ran out of time, and neither its `time` nor its Slurm limit is known",
                )?;
                let wanted = now.mul_f64(factors.time);
                let capped = (self.capacity)().time.map_or(wanted, |cap| wanted.min(cap));
                if capped <= now {
                    return Err(format!(
                        "it ran out of time with {}, the longest a partition here allows",
                        super::scheduler::slurm_time(now)
                    ));
                }
                Ok(self
                    .resources
                    .clone()
                    .time(format!("{}s", capped.as_secs().max(60))))
            }
            Cause::NotItsFault | Cause::Cancelled | Cause::Other => Ok(self.resources.clone()),
        }
    }
}

/// One attempt as the error names it: the job, what it asked for, how it
/// ended and the end of its log.
pub(super) fn attempt(job: &str, resources: &Resources, ended: &str, log: &str) -> String {
    let asked = if resources.is_empty() {
        "the plan's defaults".to_string()
    } else {
        resources.to_string()
    };
    format!("job {job} ({asked}) {ended}; {log}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(retries: u32) -> Retry {
        Retry::new(
            Resources::new().mem("100M").time("1m"),
            retries,
            Some(Escalation::default()),
            Box::new(|| Capacity {
                mem: Some(300 << 20),
                time: Some(Duration::from_secs(600)),
                ..Capacity::default()
            }),
            Box::new(|_| Ok("1".into())),
        )
    }

    #[test]
    fn causes_come_from_the_state_or_the_log() {
        assert_eq!(cause("OUT_OF_MEMORY", ""), Cause::OutOfMemory);
        assert_eq!(
            cause("FAILED", "slurmstepd: error: Exceeded job memory limit"),
            Cause::OutOfMemory
        );
        assert_eq!(cause("TIMEOUT", ""), Cause::OutOfTime);
        assert_eq!(cause("PREEMPTED", ""), Cause::NotItsFault);
        assert_eq!(cause("NODE_FAIL", ""), Cause::NotItsFault);
        assert_eq!(cause("FAILED", "panicked at src/main.rs"), Cause::Other);
        assert_eq!(cause("CANCELLED by 0", ""), Cause::Cancelled);
        let preempted =
            "slurmstepd: error: *** JOB 67 ON vm CANCELLED AT 2026 DUE TO PREEMPTION ***";
        assert_eq!(cause("CANCELLED", preempted), Cause::NotItsFault);
        assert_eq!(cause("FAILED", preempted), Cause::NotItsFault);
        assert!(retry(3).next(Cause::Cancelled, (None, None)).is_err());
    }

    #[test]
    fn memory_and_time_grow_by_their_factors_up_to_the_caps() {
        let mut r = retry(3);
        let next = r.next(Cause::OutOfMemory, (None, None)).unwrap();
        assert_eq!(next.mem_bytes(), Some(200 << 20));
        r.resources = next;
        let next = r.next(Cause::OutOfMemory, (None, None)).unwrap();
        assert_eq!(
            next.mem_bytes(),
            Some(300 << 20),
            "capped by the largest node"
        );
        r.resources = next;
        let e = r.next(Cause::OutOfMemory, (None, None)).unwrap_err();
        assert!(e.contains("the most a node here has"), "{e}");
        let mut r = retry(1);
        let next = r.next(Cause::OutOfTime, (None, None)).unwrap();
        assert_eq!(next.wall_time(), Some(Duration::from_secs(120)));
    }

    #[test]
    fn preemption_does_not_count_and_other_failures_retry_unchanged() {
        let mut r = retry(0);
        for _ in 0..NOT_ITS_FAULT_AT_MOST {
            let next = r.next(Cause::NotItsFault, (None, None)).unwrap();
            assert_eq!(next, r.resources);
        }
        assert!(r.next(Cause::NotItsFault, (None, None)).is_err());
        let mut r = retry(1);
        assert_eq!(r.next(Cause::Other, (None, None)).unwrap(), r.resources);
        r.attempts = vec!["a".into(), "b".into()];
        let e = r.next(Cause::Other, (None, None)).unwrap_err();
        assert!(e.contains("tried 2 times (`retries = 1`)"), "{e}");
        let mut off = retry(1);
        off.escalate = None;
        assert_eq!(
            off.next(Cause::OutOfMemory, (None, None)).unwrap(),
            off.resources
        );
    }
}
