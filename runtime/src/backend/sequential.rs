//! Sequential: each future is evaluated in the calling thread, at creation,
//! as R's `sequential` does, and a `foreach!` runs its chunks there too. A
//! future still goes through the codec, so it has its own copy of its
//! captures and behaves as it would on a worker.

use super::{Backend, MapCall, Submitted, Task};
use crate::Error;
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
    fn submit(&self, task: Task) -> Submitted {
        let (result, output) = body::run(
            task.entry,
            &task.captures,
            &self.nested,
            task.stream,
            Some(task.capture_output),
            task.timeout.as_ref(),
        );
        Submitted::Ready(result, output)
    }

    fn run_map(&self, call: &dyn MapCall) -> Result<(), Error> {
        call.plan_here(1);
        self.nested.run(|| call.work_here());
        Ok(())
    }

    fn free_workers(&self) -> usize {
        1
    }

    fn capacity(&self) -> crate::plan::Capacity {
        super::this_machine("sequential (this machine)".into())
    }
}
