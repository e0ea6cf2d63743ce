//! A cached call's jobs outlive its leader, and a rerun finds them: the
//! call's directories live in `cached-<durable key>/` of the registry with
//! a jobs record (`registry::record_jobs`), and a rerun waits for the
//! recorded chunks that are answered or still running instead of
//! submitting them again (`Backend::resume`).

use super::registry::{self, CallDir};
use super::{Jobs, pending, scheduler};
use crate::Error;
use crate::backend::Resumed;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

impl Jobs {
    /// Where a cached call's directories and jobs record are: the same for
    /// every run of the same call (`CallCaptures::durable`).
    pub(super) fn durable_root(&self, key: u128) -> Result<PathBuf, Error> {
        let durable = self.root.join(format!("cached-{key:032x}"));
        crate::protocol::job::prepare_own_root(&durable)
            .map_err(|why| registry::registry_error(&durable, std::io::Error::other(why)))?;
        Ok(durable)
    }

    /// The chunks of an earlier run of the cached call `key` whose jobs
    /// answered since or still run, each waited for from now on.
    pub(super) fn resume(self: &Arc<Self>, key: u128) -> Vec<Resumed> {
        let durable = self.root.join(format!("cached-{key:032x}"));
        let mut recorded = registry::recorded_jobs(&durable);
        if recorded.is_empty() {
            return Vec::new();
        }
        let states = scheduler::states().unwrap_or_default();
        let answered =
            |r: &registry::Recorded| registry::task_result(&durable.join(&r.dir), &r.task).exists();
        // Answered first: of two runs of the same elements, the one done.
        recorded.sort_by_key(|r| !answered(r));
        let mut dirs: HashMap<String, Arc<CallDir>> = HashMap::new();
        let mut resumed = Vec::new();
        for r in recorded {
            let path = durable.join(&r.dir);
            let running = states
                .get(&r.job)
                .is_some_and(|state| !scheduler::has_ended(state));
            if !path.is_dir() || !(answered(&r) || running) {
                continue;
            }
            let dir = dirs
                .entry(r.dir.clone())
                .or_insert_with(|| Arc::new(CallDir::adopt(path, r.key)))
                .clone();
            let slot = self.wait_for(pending(r.job, &dir, &r.task, None));
            resumed.push((r.elements, slot));
        }
        resumed
    }
}
