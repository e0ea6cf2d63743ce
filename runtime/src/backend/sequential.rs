//! Sequential: each future is evaluated in the calling thread, at creation,
//! as R's `sequential` does. It still goes through the codec, so a future has
//! its own copy of its captures and behaves as it would on a worker.

use super::{Backend, Submitted, Task};
use crate::active::ActivePlan;
use crate::execute;
use std::sync::Arc;

pub(crate) struct SequentialBackend {
    nested: Arc<ActivePlan>,
}

impl SequentialBackend {
    pub(crate) fn new(nested: Arc<ActivePlan>) -> Self {
        SequentialBackend { nested }
    }
}

impl Backend for SequentialBackend {
    fn submit(&self, task: Task) -> Submitted {
        let (result, output) = execute::run(
            task.entry,
            &task.captures,
            &self.nested,
            task.stream,
            Some(task.capture_output),
            task.timeout.as_ref(),
        );
        Submitted::Ready(result, output)
    }

    fn free_workers(&self) -> usize {
        1
    }
}
