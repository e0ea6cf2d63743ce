//! Slurm: every future a batch job, every `foreach!` call one job array
//! whose tasks each run a chunk (R's future.batchtools).
//!
//! A job is a worker whose channel is a pair of files in the registry
//! (`registry`, `protocol::job`): the leader writes the handshake and the
//! task in the wire format of worker processes, submits a script that runs
//! this same executable on them (its build checked in the handshake, as for
//! any worker), and a watching thread (`watch`) turns the answer files, or
//! Slurm's word that a job ended without one, into filled result slots.
//! Everything above (the map engine, retries, relay, seeds) is the same as
//! for worker processes.
//!
//! At most `N` jobs are in flight (`slurm:N`, default 100): creating one more
//! future waits, as on any plan whose workers are all busy; a call becomes
//! at most `N` array tasks, and an array of more (a `chunk_size` given)
//! runs `N` at a time (`--array=0-K%N`).

pub(crate) mod allocation;
mod durable;
mod registry;
mod retry;
mod scheduler;
mod site;
mod watch;

use super::{Backend, Chunk, ChunkWorkers, Entry, ResultSlot, Submitted, Work};
use crate::Error;
use crate::body::capture::entry_offset;
use crate::body::chunk::chunk_entry_offset;
use crate::plan::{Plan, Resources, Slurm};
use crate::protocol::Output;
use crate::protocol::wire::{ChunkOf, ToWorker};
use crate::settings::Settings;
use crate::sync::lock;
use registry::CallDir;
use site::Limits;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use watch::{Pending, Watch};

/// The environment variable that moves the registry.
const REGISTRY_ENV: &str = "FUTURIZE_REGISTRY";

/// The environment variable that names a job template.
const TEMPLATE_ENV: &str = "FUTURIZE_SLURM_TEMPLATE";

pub(crate) struct SlurmBackend {
    shared: Arc<Jobs>,
}

struct Jobs {
    spec: Slurm,
    nested: Plan,
    root: PathBuf,
    template: Option<String>,
    cwd: PathBuf,
    /// Futures in flight, against `spec.max_jobs()`.
    in_flight: Mutex<usize>,
    freed: Condvar,
    watch: Arc<Watch>,
    /// The directories of the calls whose chunks run, by call id.
    calls: Mutex<HashMap<u64, Weak<CallDir>>>,
    next_task: AtomicU64,
    /// What the cluster offers, asked of sinfo once.
    capacity: std::sync::OnceLock<crate::plan::Capacity>,
    /// The site's caps on escalated retries, and the time signal's margin.
    limits: Limits,
}

fn launch_error(reason: impl Into<String>) -> Error {
    Error::Launch {
        what: "a Slurm job".into(),
        reason: reason.into(),
    }
}

impl SlurmBackend {
    pub(crate) fn start(spec: &Slurm, nested: &Plan) -> Result<SlurmBackend, Error> {
        if !scheduler::on_path("sbatch") {
            return Err(launch_error(
                "`sbatch` is not on the PATH: run on a Slurm login node, or load Slurm's module",
            ));
        }
        let registry::Placed {
            cwd,
            root,
            template,
        } = registry::placed(spec, launch_error)?;
        let limits = Limits::read(spec, template.as_deref())?;
        Ok(SlurmBackend {
            shared: Arc::new(Jobs {
                spec: spec.clone(),
                nested: nested.clone(),
                root,
                template,
                cwd,
                in_flight: Mutex::new(0),
                freed: Condvar::new(),
                watch: Arc::new(Watch::default()),
                calls: Mutex::new(HashMap::new()),
                next_task: AtomicU64::new(1),
                capacity: std::sync::OnceLock::new(),
                limits,
            }),
        })
    }
}

impl Jobs {
    /// The resources a job asks for: its own, the plan's defaults, and its
    /// `timeout` as the time limit when no time is given; checked.
    ///
    /// A job runs no timer of its own: for a chunk of `elements`, each with
    /// `timeout`, the job may take that many times the limit.
    fn resources_for(&self, settings: &Settings, elements: usize) -> Result<Resources, Error> {
        let mut r = match settings.resources() {
            Some(own) => own.or(&self.spec.resources),
            None => self.spec.resources.clone(),
        };
        if r.time.is_none()
            && let Some(t) = &settings.timeout
        {
            let millis = t.limit.as_millis().max(1) * elements.max(1) as u128;
            r.time = Some(format!("{millis}ms"));
        }
        r.check().map_err(|why| Error::Resources {
            asked: r.to_string(),
            why,
        })?;
        Ok(r)
    }

    /// Submits the script for `task` of `dir` (an array of `count` tasks
    /// when given); the job id.
    fn submit(
        &self,
        dir: &CallDir,
        task: &str,
        array: Option<usize>,
        resources: &Resources,
        label: Option<&str>,
    ) -> Result<String, Error> {
        // What Slurm will give it: what it asks, else the partition's
        // default, which this does not know (time_left() is then None).
        let limit = resources
            .wall_time()
            .map(|t| std::time::Duration::from_secs(t.as_secs().div_ceil(60).max(1) * 60));
        let script = registry::job_script(self.template.as_deref(), &dir.path, task, limit)?;
        let name = format!(
            "{}-{}.sh",
            task.replace("$SLURM_ARRAY_TASK_ID", "array"),
            self.next_task.fetch_add(1, Ordering::Relaxed)
        );
        let script = registry::write_script(&dir.path, &name, &script)?;
        let mut options = vec![
            format!("--job-name=futurize-{}", label.unwrap_or("future")),
            format!("--chdir={}", self.cwd.display()),
        ];
        match array {
            Some(count) => {
                options.push(format!("--output={}/log-%A_%a.txt", dir.path.display()));
                options.push(format!("--array=0-{}%{}", count - 1, self.spec.max_jobs()));
            }
            None => options.push(format!("--output={}/log-%j.txt", dir.path.display())),
        }
        // Slurm may requeue it (preemption, a lost node) where the site allows.
        options.push("--requeue".into());
        // Told (SIGUSR1 to the batch shell, which is this executable) a
        // margin before its time limit, a chunk's job starts no new element
        // and answers with those that ran; the rest go to a new job.
        options.push(format!(
            "--signal=B:USR1@{}",
            self.limits.time_signal.as_secs().clamp(1, 65_535)
        ));
        options.extend(scheduler::resource_options(resources));
        scheduler::sbatch(&script, &options).map_err(launch_error)
    }

    /// The directory of call `call`, created (with its shared input) when
    /// none is in use.
    fn call_dir(&self, chunk: &Chunk) -> Result<Arc<CallDir>, Error> {
        let mut calls = lock(&self.calls);
        calls.retain(|_, d| d.strong_count() > 0);
        if let Some(dir) = calls.get(&chunk.call.id).and_then(Weak::upgrade) {
            return Ok(dir);
        }
        let what = format!("call{}", chunk.call.id);
        let dir = Arc::new(match chunk.call.durable {
            Some(key) => {
                let durable = self.durable_root(key)?;
                CallDir::create(&durable, &what)?.recorded_in(durable)
            }
            None => CallDir::create(&self.root, &what)?,
        });
        registry::write_frames(
            &registry::call_input(&dir.path),
            &dir.key,
            crate::protocol::job::CALL_TASK,
            &[
                (ToWorker::hello(self.nested.to_string()), &[]),
                (
                    ToWorker::KeepCaptures {
                        call: chunk.call.id,
                    },
                    &chunk.call.bytes,
                ),
            ],
        )?;
        calls.insert(chunk.call.id, Arc::downgrade(&dir));
        Ok(dir)
    }

    /// How `task` of `dir` (the elements `elements` of a call, or a future)
    /// runs again when its job ends without an answer: `settings.retries`
    /// that count, escalating by `settings.escalate` from `resources`.
    fn retry_for(
        self: &Arc<Self>,
        dir: &Arc<CallDir>,
        task: &str,
        elements: Option<std::ops::Range<usize>>,
        resources: &Resources,
        settings: &Settings,
    ) -> Box<retry::Retry> {
        let jobs = Arc::downgrade(self);
        let (dir, task, label) = (dir.clone(), task.to_string(), settings.label.clone());
        let asked = Arc::downgrade(self);
        // What sinfo says the cluster offers, within the site's caps.
        let capacity = move || {
            asked
                .upgrade()
                .map(|jobs| {
                    let mut c = jobs
                        .capacity
                        .get_or_init(|| scheduler::capacity(&jobs.spec.to_string()))
                        .clone();
                    let (mem, time) = (jobs.limits.most_memory, jobs.limits.longest_time);
                    c.mem = match (c.mem, mem) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    c.time = match (c.time, time) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    c
                })
                .unwrap_or_default()
        };
        let again = move |r: &Resources| {
            let jobs = jobs
                .upgrade()
                .ok_or_else(|| launch_error("the Slurm plan ended before a retry"))?;
            let job = jobs.submit(&dir, &task, None, r, label.as_deref())?;
            if let Some(e) = &elements {
                dir.record(&[(task.clone(), job.clone(), e.clone())])?;
            }
            Ok(job)
        };
        Box::new(retry::Retry::new(
            resources.clone(),
            settings.retries,
            settings.escalate,
            Box::new(capacity),
            Box::new(again),
        ))
    }

    /// Waits for `chunk` of `work` as `task` of `dir`, run by `job` with
    /// `resources`, from now on; runs it again by its retry plan.
    fn wait_for_chunk(
        self: &Arc<Self>,
        job: String,
        (dir, task): (&Arc<CallDir>, &str),
        (work, chunk): (&Work, &Chunk),
        resources: &Resources,
    ) -> Arc<ResultSlot> {
        let elements = Some(chunk.elements.clone());
        self.wait_for(Pending {
            progress: chunk.progress.clone(),
            retry: Some(self.retry_for(dir, task, elements, resources, &work.settings)),
            ..pending(job, dir, task, work.settings.label.clone())
        })
    }

    /// Writes a chunk's own input as `task`.
    fn write_chunk(
        &self,
        dir: &CallDir,
        task: &str,
        work: &Work,
        chunk: &Chunk,
    ) -> Result<(), Error> {
        let id = self.next_task.fetch_add(1, Ordering::Relaxed);
        let message = ToWorker::Run {
            id,
            entry_offset: chunk_entry_offset(chunk.entry),
            chunk: Some(ChunkOf {
                call: chunk.call.id,
                first: chunk.elements.start as u64,
            }),
            settings: work.settings.clone(),
        };
        registry::write_frames(
            &registry::task_input(&dir.path, task),
            &dir.key,
            task,
            &[(message, &work.payload)],
        )
    }

    /// Waits for `pending`'s job from now on; cancelling its slot stops the
    /// job.
    fn wait_for(self: &Arc<Self>, pending: Pending) -> Arc<ResultSlot> {
        let slot = pending.slot.clone();
        let (watch, cancelled, canceller) = (
            Arc::downgrade(&self.watch),
            pending.job.clone(),
            slot.clone(),
        );
        slot.on_cancel(Box::new(move || {
            scheduler::scancel(std::slice::from_ref(&cancelled));
            if let Some(mut p) = watch.upgrade().and_then(|w| w.forget(&cancelled))
                && let Some(done) = p.done.take()
            {
                done();
            }
            canceller.fill(Err(Error::Cancelled { label: None }));
        }));
        self.watch.add(pending);
        slot
    }
}

/// A job to wait for: `task` of `dir`, run by `job`.
fn pending(job: String, dir: &Arc<CallDir>, task: &str, label: Option<String>) -> Pending {
    let log = match job.split_once('_') {
        Some((array, index)) => format!("log-{array}_{index}.txt"),
        None => format!("log-{job}.txt"),
    };
    Pending {
        result: registry::task_result(&dir.path, task),
        task: task.to_string(),
        log: dir.path.join(log),
        job,
        dir: dir.clone(),
        slot: ResultSlot::new(),
        label,
        progress: None,
        ended: None,
        done: None,
        submitted: std::time::Instant::now(),
        retry: None,
    }
}

/// What a Slurm plan offers one job (asks sinfo).
pub(crate) fn capacity(spec: &Slurm) -> crate::plan::Capacity {
    scheduler::capacity(&spec.to_string())
}

fn refused(e: Error) -> Submitted {
    Submitted::Ready(Err(e), Output::default())
}

impl Backend for SlurmBackend {
    fn submit(&self, work: Work) -> Submitted {
        match &work.entry {
            Entry::Future(entry) => self.submit_future(*entry, &work.payload, &work.settings),
            Entry::Chunk(chunk) => self.submit_chunk(&work, chunk),
        }
    }

    /// A call's chunks: one job array, a task per chunk.
    fn submit_all(&self, works: Vec<Work>) -> Vec<Submitted> {
        self.submit_array(works)
    }

    fn chunk_workers(&self) -> ChunkWorkers<'_> {
        ChunkWorkers::Remote {
            workers: self.shared.spec.max_jobs(),
            all_at_once: true,
            chunk_per_worker: true,
        }
    }

    fn free_workers(&self) -> usize {
        self.shared.spec.max_jobs() - *lock(&self.shared.in_flight)
    }

    fn capacity(&self) -> crate::plan::Capacity {
        self.shared
            .capacity
            .get_or_init(|| scheduler::capacity(&self.shared.spec.to_string()))
            .clone()
    }

    fn keeps_time_limits(&self) -> bool {
        true
    }

    /// A failed job runs again here (`retry.rs`), escalating by its cause.
    fn retries_itself(&self) -> bool {
        true
    }

    fn resume(&self, call: &super::CallCaptures) -> Vec<super::Resumed> {
        match call.durable {
            Some(key) => self.shared.resume(key),
            None => Vec::new(),
        }
    }
}

impl SlurmBackend {
    /// A future: a job of its own.
    fn submit_future(
        &self,
        entry: crate::body::capture::EntryFn,
        captures: &[u8],
        settings: &Settings,
    ) -> Submitted {
        let shared = &self.shared;
        let resources = match shared.resources_for(settings, 1) {
            Ok(r) => r,
            Err(e) => return refused(e),
        };
        // At most N futures in flight (R semantics: creating one more waits).
        {
            let mut n = lock(&shared.in_flight);
            while *n >= shared.spec.max_jobs() {
                n = shared.freed.wait(n).unwrap_or_else(|p| p.into_inner());
            }
            *n += 1;
        }
        let free = {
            let shared = Arc::downgrade(shared);
            move || {
                if let Some(s) = shared.upgrade() {
                    *lock(&s.in_flight) -= 1;
                    s.freed.notify_one();
                }
            }
        };
        let submitted = (|| {
            let dir = Arc::new(CallDir::create(&shared.root, "future")?);
            let id = shared.next_task.fetch_add(1, Ordering::Relaxed);
            let run = ToWorker::Run {
                id,
                entry_offset: entry_offset(entry),
                chunk: None,
                settings: settings.clone(),
            };
            registry::write_frames(
                &registry::task_input(&dir.path, "future"),
                &dir.key,
                "future",
                &[
                    (ToWorker::hello(shared.nested.to_string()), &[]),
                    (run, captures),
                ],
            )?;
            let job = shared.submit(&dir, "future", None, &resources, settings.label.as_deref())?;
            Ok::<_, Error>((job, dir))
        })();
        match submitted {
            Ok((job, dir)) => Submitted::Running(shared.wait_for(Pending {
                done: Some(Box::new(free)),
                retry: Some(shared.retry_for(&dir, "future", None, &resources, settings)),
                ..pending(job, &dir, "future", settings.label.clone())
            })),
            Err(e) => {
                free();
                refused(e)
            }
        }
    }

    /// One chunk alone (run again after its job was lost), the `chunk` of
    /// `work`: a job of its own.
    fn submit_chunk(&self, work: &Work, chunk: &Chunk) -> Submitted {
        let shared = &self.shared;
        let submitted = (|| {
            let resources = shared.resources_for(&work.settings, chunk.elements.len())?;
            let dir = shared.call_dir(chunk)?;
            let task = format!("again-{}", shared.next_task.fetch_add(1, Ordering::Relaxed));
            shared.write_chunk(&dir, &task, work, chunk)?;
            let label = work.settings.label.as_deref();
            let job = shared.submit(&dir, &task, None, &resources, label)?;
            dir.record(&[(task.clone(), job.clone(), chunk.elements.clone())])?;
            Ok::<_, Error>((job, dir, task, resources))
        })();
        match submitted {
            Ok((job, dir, task, resources)) => Submitted::Running(shared.wait_for_chunk(
                job,
                (&dir, &task),
                (work, chunk),
                &resources,
            )),
            Err(e) => refused(e),
        }
    }

    /// A call's chunks: one job array, a task per chunk.
    fn submit_array(&self, works: Vec<Work>) -> Vec<Submitted> {
        let shared = &self.shared;
        let count = works.len();
        let chunks = match works
            .iter()
            .map(Work::chunk)
            .collect::<Option<Vec<&Chunk>>>()
        {
            Some(chunks) if !chunks.is_empty() => chunks,
            _ => {
                let e = Error::Protocol("a job array is made of chunks only".into());
                return (0..count).map(|_| refused(e.clone())).collect();
            }
        };
        let submitted = (|| {
            let first = &works[0];
            // The largest chunk sets the array's limit.
            let longest = chunks.iter().map(|c| c.elements.len()).max().unwrap_or(1);
            let resources = shared.resources_for(&first.settings, longest)?;
            let dir = shared.call_dir(chunks[0])?;
            for (i, (work, chunk)) in works.iter().zip(&chunks).enumerate() {
                shared.write_chunk(&dir, &format!("chunk-{i}"), work, chunk)?;
            }
            let job = shared.submit(
                &dir,
                "chunk-$SLURM_ARRAY_TASK_ID",
                Some(count),
                &resources,
                first.settings.label.as_deref(),
            )?;
            let tasks: Vec<(String, String, std::ops::Range<usize>)> = chunks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        format!("chunk-{i}"),
                        format!("{job}_{i}"),
                        c.elements.clone(),
                    )
                })
                .collect();
            dir.record(&tasks)?;
            Ok::<_, Error>((job, dir, resources))
        })();
        match submitted {
            Ok((job, dir, resources)) => works
                .iter()
                .zip(&chunks)
                .enumerate()
                .map(|(i, (work, chunk))| {
                    let task = format!("chunk-{i}");
                    Submitted::Running(shared.wait_for_chunk(
                        format!("{job}_{i}"),
                        (&dir, &task),
                        (work, chunk),
                        &resources,
                    ))
                })
                .collect(),
            Err(e) => (0..count).map(|_| refused(e.clone())).collect(),
        }
    }
}
