//! The one-shot meeting point of a running task and whoever waits for it.
//!
//! Invariant: a slot is filled once (later fills are ignored), its output is
//! set before its value, and a waiter that sees it ready sees both.

use crate::Error;
use crate::protocol::Output;
use crate::sync::lock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A task's answer as its slot holds it: the value's bytes, or a value
/// that a worker lent from its own memory until it is read (a local
/// worker's outbox, `processes/outbox.rs`).
pub(crate) enum Payload {
    /// The bytes, owned.
    Bytes(Vec<u8>),
    /// Bytes read where they are.
    Lent(Box<dyn LentBytes>),
}

/// Bytes read where another process left them.
pub(crate) trait LentBytes: Send + Sync {
    /// Calls `read` with the bytes.
    fn read(&self, read: &mut dyn FnMut(&[u8]));
}

impl Payload {
    /// Calls `f` with the bytes, wherever they are.
    pub(crate) fn with_bytes<T>(&self, f: impl FnOnce(&[u8]) -> T) -> T {
        match self {
            Payload::Bytes(bytes) => f(bytes),
            Payload::Lent(lent) => {
                let (mut f, mut out) = (Some(f), None);
                lent.read(&mut |bytes| out = f.take().map(|f| f(bytes)));
                out.expect("a lent value is read once per call")
            }
        }
    }

    /// Done with: an owned buffer serves a later frame
    /// (`protocol::bulk::reuse`); a lent value is given back.
    pub(crate) fn done(self) {
        if let Payload::Bytes(bytes) = self {
            crate::protocol::bulk::reuse(bytes);
        }
    }
}

/// How long a waiter spins for a local worker's answer (a round trip
/// through a pipe is 20–30 µs).
const LOCAL_SPIN_MICROS: u32 = 50;

/// How long a waiter spins for an answer from another machine (an ssh round
/// trip on a LAN or loopback is 100–300 µs).
const REMOTE_SPIN_MICROS: u32 = 400;

/// The one-shot meeting point of a running future and its owner.
pub(crate) struct ResultSlot {
    value: Mutex<Option<Result<Payload, Error>>>,
    /// What the body printed, set before `value`.
    output: Mutex<Output>,
    /// Set once `value` holds the result, for waiters that spin.
    ready: AtomicBool,
    /// How long a waiter spins before it sleeps, in microseconds
    /// ([`ResultSlot::spin_for_remote_answer`]).
    spin_micros: AtomicU32,
    filled: Condvar,
    cancelled: AtomicBool,
    on_cancel: Mutex<Option<CancelHook>>,
    /// Who filled it, when a worker or a job did.
    answerer: Mutex<Option<Arc<dyn Answerer>>>,
    /// The `log` records its task sent (logged as they came; kept for a
    /// cached call's entries).
    logs: Mutex<Vec<crate::protocol::wire::LogRecord>>,
}

/// Who answered a slot (a worker process, a Slurm job): named in an error
/// about what it answered.
pub(crate) trait Answerer: Send + Sync {
    /// Its answer is not believed: who gave it, with what it came from
    /// kept for a look by hand.
    fn refused(&self) -> String {
        self.distrusted();
        self.describe()
    }

    /// Such as "process 123 on node2", "Slurm job 12_3 (its answer …)".
    fn describe(&self) -> String;
    /// Its answer was not believed: keep what it came from for a look by
    /// hand.
    fn distrusted(&self) {}
}

/// What a backend does to stop a running future when it is cancelled.
pub(crate) type CancelHook = Box<dyn FnOnce() + Send>;

/// A slot's result and who gave it.
pub(crate) type Answer = (Result<Payload, Error>, Option<Arc<dyn Answerer>>);

impl ResultSlot {
    pub(crate) fn new() -> Arc<ResultSlot> {
        Arc::new(ResultSlot {
            value: Mutex::new(None),
            output: Mutex::new(Output::default()),
            ready: AtomicBool::new(false),
            spin_micros: AtomicU32::new(LOCAL_SPIN_MICROS),
            filled: Condvar::new(),
            cancelled: AtomicBool::new(false),
            on_cancel: Mutex::new(None),
            answerer: Mutex::new(None),
            logs: Mutex::new(Vec::new()),
        })
    }

    /// Keeps a `log` record the task sent.
    pub(crate) fn keep_log(&self, record: crate::protocol::wire::LogRecord) {
        lock(&self.logs).push(record);
    }

    /// The `log` records the task sent, in order.
    pub(crate) fn take_logs(&self) -> Vec<crate::protocol::wire::LogRecord> {
        std::mem::take(&mut *lock(&self.logs))
    }

    /// Says who fills the slot; call before [`ResultSlot::fill`].
    pub(crate) fn set_answerer(&self, answerer: Arc<dyn Answerer>) {
        *lock(&self.answerer) = Some(answerer);
    }

    pub(crate) fn fill(&self, result: Result<Vec<u8>, Error>) {
        self.fill_payload(result.map(Payload::Bytes));
    }

    /// Fills the slot with an answer that may be lent ([`Payload`]).
    pub(crate) fn fill_payload(&self, result: Result<Payload, Error>) {
        {
            let mut v = lock(&self.value);
            if v.is_none() {
                *v = Some(result);
            }
            self.ready.store(true, Ordering::Release);
            self.filled.notify_all();
        }
        // Nothing runs any more to be stopped; the hook may hold this slot.
        drop(lock(&self.on_cancel).take());
    }

    /// Spins briefly for the result before a waiter goes to sleep: a round
    /// trip to a worker often ends within microseconds, and waking a sleeping
    /// thread costs more than that on small machines (and on virtual ones,
    /// where a halted CPU is woken through the hypervisor).
    fn spin_until_ready(&self) {
        let spin = Duration::from_micros(u64::from(self.spin_micros.load(Ordering::Relaxed)));
        let start = std::time::Instant::now();
        while !self.ready.load(Ordering::Acquire) {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if start.elapsed() > spin {
                return;
            }
        }
    }

    /// The answer comes from another machine: a waiter spins for about one
    /// network round trip before it sleeps, as an MPI rank polls its
    /// network. Measured on the test sshd: a cluster round trip of 160 µs
    /// with the local budget, 54 µs with this one, where most of the
    /// difference is the idle CPUs the answer's many hops had to wake
    /// (docs/benchmarks.md). Costs at most this much CPU per wait on the
    /// leader, whose remote workers do not share its cores. For a future's
    /// value only: a map's chunks keep the short spin, leaving the leader's
    /// cores to the threads that read its connections.
    pub(crate) fn spin_for_remote_answer(&self) {
        self.spin_micros
            .store(REMOTE_SPIN_MICROS, Ordering::Relaxed);
    }

    /// Keeps what the body printed; call before [`ResultSlot::fill`].
    pub(crate) fn set_output(&self, output: Output) {
        *lock(&self.output) = output;
    }

    /// Takes what the body printed (after the value).
    pub(crate) fn take_output(&self) -> Output {
        std::mem::take(&mut *lock(&self.output))
    }

    pub(crate) fn is_filled(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Blocks until filled, then takes the result and who gave it (held
    /// while the answer is checked: a job's registry stays as long).
    pub(crate) fn take_answer(&self) -> Answer {
        let result = self.take_value();
        (result, lock(&self.answerer).take())
    }

    /// Blocks until filled, then takes the result.
    pub(crate) fn take(&self) -> Result<Payload, Error> {
        let result = self.take_value();
        drop(lock(&self.answerer).take());
        result
    }

    fn take_value(&self) -> Result<Payload, Error> {
        self.spin_until_ready();
        let mut v = lock(&self.value);
        loop {
            if let Some(result) = v.take() {
                return result;
            }
            v = self.filled.wait(v).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until filled, leaving the result in place.
    pub(crate) fn resolve_wait(&self) {
        self.spin_until_ready();
        let v = lock(&self.value);
        let _filled = self
            .filled
            .wait_while(v, |_| !self.ready.load(Ordering::Acquire))
            .unwrap_or_else(|p| p.into_inner());
    }

    /// Blocks until filled or until `deadline`; true when filled.
    pub(crate) fn wait_until(&self, deadline: std::time::Instant) -> bool {
        self.spin_until_ready();
        let mut v = lock(&self.value);
        while !self.ready.load(Ordering::Acquire) {
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            v = self
                .filled
                .wait_timeout(v, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Marks the future cancelled and runs the backend's hook, if any.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        let hook = lock(&self.on_cancel).take();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Sets what `cancel` does to stop the running body.
    pub(crate) fn on_cancel(&self, hook: CancelHook) {
        *lock(&self.on_cancel) = Some(hook);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}
