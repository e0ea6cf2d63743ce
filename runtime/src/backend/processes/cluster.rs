//! Workers on other machines: one connection per host (ssh, or srun inside
//! a Slurm allocation) to a host agent that starts the host's workers and
//! carries their frames (`agent.rs`, `protocol::agent`).
//!
//! The [`ClusterLauncher`] is a [`Launcher`]: the pool, its readers and
//! dispatch treat a remote worker as a local one. A remote worker's link is
//! virtual: what the pool writes becomes `Input` frames on the host's
//! connection, and a demultiplexing thread per connection writes each
//! worker's `Output` into a pipe the worker's reader reads.
//!
//! Starting a host: the connection runs a short `sh` script that looks for
//! the leader's executable (its own path where it holds the same build, a
//! shared file system; else the per-user cache `~/.cache/futurize/<build
//! id>`), and when it finds none asks for a copy, which the leader streams
//! over the same connection (stored atomically, mode 0700). Whatever it
//! finds runs only when it is the user's, writable by no one else, and its
//! SHA-256 is the leader's, checked on the descriptor it then runs
//! (`host_command::start_script`). All hosts start in
//! parallel on the first need; a host that cannot be reached then is an
//! `Error::Launch` naming it and quoting ssh's stderr.
//!
//! Invariant: when a connection ends, every worker on it ends with it for
//! the pool (their links close, their readers report `WorkerDied` naming
//! the host); and when the leader ends, the connection's stdin closes, so
//! the agent kills its workers and exits.

use super::connection::{Connection, RemoteProcess};
use super::link::{Launcher, Link};
use crate::Error;
use crate::plan::{Cluster, Host};
use crate::sync::lock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Starts workers on a cluster's hosts.
pub(crate) struct ClusterLauncher {
    spec: Cluster,
    hosts: Vec<Arc<HostState>>,
    /// Set once every host has been reached (they are reached together).
    reached: OnceLock<()>,
    next_worker: AtomicU32,
}

/// One distinct host of the plan.
pub(super) struct HostState {
    host: Host,
    /// How many workers the plan puts here.
    capacity: usize,
    /// Its workers now (each holds a [`Seat`]).
    live: Arc<AtomicUsize>,
    connection: Mutex<Option<Arc<Connection>>>,
}

impl ClusterLauncher {
    pub(crate) fn new(spec: &Cluster) -> ClusterLauncher {
        let mut hosts: Vec<Arc<HostState>> = Vec::new();
        for h in spec.host_list() {
            let host = spec.resolved(h);
            match hosts.iter().position(|s| s.host == host) {
                Some(i) => {
                    let s = Arc::get_mut(&mut hosts[i]).expect("not shared yet");
                    s.capacity += 1;
                }
                None => hosts.push(Arc::new(HostState {
                    host,
                    capacity: 1,
                    live: Arc::new(AtomicUsize::new(0)),
                    connection: Mutex::new(None),
                })),
            }
        }
        ClusterLauncher {
            spec: spec.clone(),
            hosts,
            reached: OnceLock::new(),
            next_worker: AtomicU32::new(1),
        }
    }

    /// Reaches every host at once; an error names each host that failed.
    fn reach_all(&self) -> Result<(), Error> {
        let failures: Vec<String> = std::thread::scope(|s| {
            let tries: Vec<_> = self
                .hosts
                .iter()
                .map(|h| s.spawn(|| self.connection(h).err()))
                .collect();
            tries
                .into_iter()
                .filter_map(|t| t.join().unwrap_or_else(|_| Some("panicked".into())))
                .collect()
        });
        if failures.is_empty() {
            let _ = self.reached.set(());
            Ok(())
        } else {
            Err(Error::Launch {
                what: format!("the workers of {}", self.spec),
                reason: failures.join("; "),
            })
        }
    }

    /// The host's live connection, connecting when there is none.
    fn connection(&self, state: &HostState) -> Result<Arc<Connection>, String> {
        let mut slot = lock(&state.connection);
        if let Some(c) = slot.as_ref().filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        let c = Arc::new(Connection::open(&self.spec, &state.host)?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The host with the most room left, relative to its share.
    fn pick(&self, skip: &[usize]) -> Option<usize> {
        (0..self.hosts.len())
            .filter(|i| !skip.contains(i))
            .filter(|&i| self.hosts[i].live.load(Ordering::Acquire) < self.hosts[i].capacity)
            .min_by(|&a, &b| {
                let load = |i: usize| {
                    self.hosts[i].live.load(Ordering::Acquire) as f64
                        / self.hosts[i].capacity as f64
                };
                load(a).total_cmp(&load(b))
            })
    }
}

impl Launcher for ClusterLauncher {
    /// Every host reached so far gets the call's captures at once, in
    /// parallel, rather than one after the other as its first worker needs
    /// them.
    /// One thread per host sends the captures; a chunk for a host's worker
    /// waits for its host's (`Connection::stash` holds the host's list of
    /// kept calls while it sends), not for every host's.
    fn prepare_call(&self, call: &Arc<crate::backend::CallCaptures>) {
        let connections: Vec<Arc<Connection>> = self
            .hosts
            .iter()
            .filter_map(|h| lock(&h.connection).clone())
            .filter(|c| c.is_alive())
            .collect();
        if connections.len() < 2 {
            return;
        }
        for connection in connections {
            let call = call.clone();
            // A failure shows where a chunk needs the captures.
            let send = move || {
                let _ = connection.stash(call.id, &call.bytes);
            };
            // Without a thread, the first chunk for the host sends them.
            let _ = std::thread::Builder::new()
                .name("futurize-stash".into())
                .spawn(send);
        }
    }

    /// Unknown: the hosts are not asked, so any request is let through.
    fn capacity(&self) -> crate::plan::Capacity {
        crate::plan::Capacity {
            name: self.spec.to_string(),
            ..Default::default()
        }
    }

    fn launch(&self) -> Result<Link, Error> {
        if self.reached.get().is_none() {
            self.reach_all()?;
        }
        let mut tried = Vec::new();
        let mut reasons = Vec::new();
        while let Some(i) = self.pick(&tried) {
            tried.push(i);
            let state = &self.hosts[i];
            let started = self.connection(state).and_then(|c| {
                let worker = self.next_worker.fetch_add(1, Ordering::Relaxed);
                c.start_worker(worker, &self.spec)
            });
            match started {
                Ok((link, worker, connection)) => {
                    state.live.fetch_add(1, Ordering::AcqRel);
                    return Ok(RemoteProcess::seated(
                        link,
                        connection,
                        worker,
                        state.host.to_string(),
                        Seat(state.live.clone()),
                        None,
                        self.spec.launch_timeout,
                    ));
                }
                Err(why) => reasons.push(why),
            }
        }
        Err(Error::Launch {
            what: format!("a worker of {}", self.spec),
            reason: if reasons.is_empty() {
                "every host runs as many workers as the plan gives it".into()
            } else {
                reasons.join("; ")
            },
        })
    }
}

/// A worker's place on its host, given back when the worker is gone: it
/// holds the host's count of live workers up by one.
pub(super) struct Seat(pub(super) Arc<AtomicUsize>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
