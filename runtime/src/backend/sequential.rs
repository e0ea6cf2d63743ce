//! Sequential: each future is evaluated in the calling thread, at creation,
//! as R's `sequential` does, and a `foreach!` runs its chunks there too. A
//! future still goes through the codec, so it has its own copy of its
//! captures and behaves as it would on a worker.

use super::{Backend, ChunkWorkers, Entry, LendThreads, Submitted, Work, in_process_only};
use crate::body::{self, NestedPlan};

pub(crate) struct SequentialBackend {
    nested: NestedPlan,
}

impl SequentialBackend {
    pub(crate) fn new(nested: NestedPlan) -> Self {
        SequentialBackend { nested }
    }
}

impl Backend for SequentialBackend {
    fn submit(&self, work: Work) -> Submitted {
        let Entry::Future(entry) = work.entry else {
            return Submitted::Ready(Err(in_process_only()), Default::default());
        };
        let (result, output) = body::run(entry, &work.payload, &self.nested, &work.settings, true);
        Submitted::Ready(result, output)
    }

    fn chunk_workers(&self) -> ChunkWorkers<'_> {
        ChunkWorkers::Threads(self)
    }

    fn free_workers(&self) -> usize {
        1
    }

    fn capacity(&self) -> crate::plan::Capacity {
        super::this_machine("sequential (this machine)".into())
    }
}

impl LendThreads for SequentialBackend {
    fn lend(&self, plan: &mut dyn FnMut(usize) -> usize, work: &(dyn Fn() + Sync)) {
        plan(1);
        self.nested.run(work);
    }
}
