//! A plan level of several backends (`multiprocess:2|slurm`): each future
//! or call runs on the first whose capacity meets its `resources`; work
//! that asks for nothing goes to the first. An alternative's backend starts
//! only when work is given to it, so a plan may name a Slurm that only
//! some work needs.

use super::{Backend, ChunkWorkers, Submitted, Work, slurm, start, this_machine};
use crate::Error;
use crate::body::NestedPlan;
use crate::plan::{Capacity, Level, Resources};
use crate::protocol::Output;
use std::sync::{Arc, OnceLock};

/// What `level` offers one future, known without starting its backend.
fn capacity_of(level: &Level) -> Capacity {
    match level {
        Level::Sequential | Level::Multithread { .. } => {
            this_machine(format!("{level} (this machine)"))
        }
        Level::Multiprocess { .. } => this_machine("worker processes on this machine".into()),
        // The hosts are not asked: any request is let through.
        Level::Cluster(c) => Capacity {
            name: c.to_string(),
            ..Capacity::default()
        },
        Level::Slurm(spec) => slurm::capacity(spec),
        Level::SlurmPool(pool) => slurm::capacity(&pool.jobs),
        Level::FirstFit(levels) => levels.first().map(capacity_of).unwrap_or_default(),
    }
}

/// One alternative of a first-fit plan: started on first use.
struct Alternative {
    level: Level,
    capacity: OnceLock<Capacity>,
    backend: OnceLock<Result<Arc<dyn Backend>, Error>>,
}

/// Several backends; work goes to the first that can meet its resources.
/// Each starts only when work is given to it.
pub(super) struct FirstFit {
    alternatives: Vec<Alternative>,
    nested: NestedPlan,
}

impl FirstFit {
    pub(super) fn new(levels: &[Level], nested: NestedPlan) -> FirstFit {
        FirstFit {
            alternatives: levels
                .iter()
                .map(|level| Alternative {
                    level: level.clone(),
                    capacity: OnceLock::new(),
                    backend: OnceLock::new(),
                })
                .collect(),
            nested,
        }
    }

    fn started(&self, a: &Alternative) -> Result<Arc<dyn Backend>, Error> {
        self.started_ref(a).clone()
    }

    fn started_ref<'s>(&'s self, a: &'s Alternative) -> &'s Result<Arc<dyn Backend>, Error> {
        a.backend
            .get_or_init(|| start(&a.level, self.nested.clone()))
    }

    fn first(&self) -> Result<Arc<dyn Backend>, Error> {
        self.started(&self.alternatives[0])
    }
}

impl Backend for FirstFit {
    fn submit(&self, task: Work) -> Submitted {
        let backend = self
            .first()
            .and_then(|first| match task.settings.resources() {
                None => Ok(first),
                Some(r) => self.choose(r).map(|b| b.unwrap_or(first)),
            });
        match backend {
            Ok(b) => b.submit(task),
            Err(e) => Submitted::Ready(Err(e), Output::default()),
        }
    }

    fn chunk_workers(&self) -> ChunkWorkers<'_> {
        // The map engine chose already (`plain`, `choose`); this is only
        // reached by work asking for nothing, which goes to the first.
        match self.started_ref(&self.alternatives[0]) {
            Ok(first) => first.chunk_workers(),
            // Each chunk submitted here is then refused with the reason.
            Err(_) => ChunkWorkers::Remote {
                workers: 1,
                all_at_once: false,
                chunk_per_worker: false,
            },
        }
    }

    fn plain(&self) -> Option<Result<Arc<dyn Backend>, Error>> {
        Some(self.first())
    }

    fn free_workers(&self) -> usize {
        self.first().map_or(0, |b| b.free_workers())
    }

    fn capacity(&self) -> Capacity {
        capacity_of(&self.alternatives[0].level)
    }

    fn keeps_time_limits(&self) -> bool {
        self.first().is_ok_and(|b| b.keeps_time_limits())
    }

    fn choose(&self, r: &Resources) -> Result<Option<Arc<dyn Backend>>, Error> {
        let mut refusals = Vec::new();
        for a in &self.alternatives {
            match a.capacity.get_or_init(|| capacity_of(&a.level)).refuses(r) {
                None => return self.started(a).map(Some),
                Some(why) => refusals.push(why),
            }
        }
        Err(Error::Resources {
            asked: r.to_string(),
            why: format!(
                "no backend of the plan can give it: {}",
                refusals.join("; ")
            ),
        })
    }
}
