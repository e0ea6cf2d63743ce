//! Taking over a worker process before `main`.
//!
//! A function in `.init_array` runs (by the dynamic loader, before `main`)
//! in every executable that links futurize: binaries, examples, test
//! harnesses, doctests, benches. In a process the leader started as a worker
//! it serves tasks until the leader closes the channel, then exits; the
//! program's own `main` never runs there. Users write no line for it.
//!
//! A process started as a host agent (over ssh, on another machine) serves
//! as one instead, and a process started as a Slurm job runs its task from
//! the registry.
//!
//! This is the one place that joins the two sides: it hands the worker side
//! ([`worker`](crate::worker)) the leader side's way of putting a plan in
//! force, so that a worker's bodies see the plan the leader passed on.

use crate::{active, backend, worker};

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TAKE_OVER_BEFORE_MAIN: extern "C" fn() = take_over_before_main;

/// Removes what only the leader acts on from a worker's, agent's or job's
/// environment: its trace would overwrite the leader's file.
///
/// # Safety
/// As for the environment changes below: before `main`, single-threaded.
unsafe fn forget_leader_settings() {
    // SAFETY: by the caller's promise no other thread reads the environment.
    unsafe {
        std::env::remove_var(crate::trace::TRACE_ENV);
        std::env::remove_var(crate::trace::TRACE_SUMMARY_ENV);
    }
}

/// True when this process runs with more privileges than whoever started
/// it (setuid, setgid, file capabilities): the kernel's `AT_SECURE`. Such a
/// process is never a worker, agent or job, whatever its environment says.
fn runs_privileged() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

extern "C" fn take_over_before_main() {
    if runs_privileged() {
        return;
    }
    // SAFETY: this runs before `main`, while the process has a single thread.
    if let Some(wanted) = unsafe { backend::take_agent_environment() } {
        // SAFETY: as above.
        unsafe { forget_leader_settings() };
        backend::run_agent(&wanted);
    }
    // SAFETY: as above.
    if let Some((dir, task)) = unsafe { worker::take_job_environment() } {
        // SAFETY: as above.
        unsafe { forget_leader_settings() };
        let code = match worker::run_job(&dir, &task, active::nested_plan) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("futurize job {task} in {}: {e}", dir.display());
                70
            }
        };
        std::process::exit(code);
    }
    // SAFETY: as above.
    if !unsafe { worker::take_worker_environment() } {
        return;
    }
    // SAFETY: as above.
    unsafe { forget_leader_settings() };
    let code = match worker::serve(active::nested_plan) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("futurize worker {}: {e}", std::process::id());
            70
        }
    };
    std::process::exit(code);
}
