"""The workloads of benches/compare/run.sh in the Python peers of futurize.

    python workloads_py.py loky|dask|ray
    python workloads_py.py submitit      (SLURM_CONF set to a running Slurm)

Prints one line per workload, `name seconds` (the median of several runs), the
same lines as workloads.R and workloads.rs, so run.sh can put them side by
side. A peer that cannot be imported or started prints `SKIPPED: <peer>: <why>`
and nothing else; a workload that fails prints `FAILED: <peer> <name>: <why>`
on stderr and the others still run. Each peer runs on this machine with two
worker processes, in a fresh interpreter (run.sh starts one per peer).
"""

import statistics
import sys
import time

N_ELEMENTS = 100_000
N_PER_TASK = 10_000
BIG_BYTES = 100_000_000
WORKERS = 2


def one(x):
    return x


def double(i):
    return i * 2


def checksum(a):
    return int(a.sum(dtype="uint64"))


def busy(seed):
    """The same loop as busy() in workloads.R: only speed-ups compare."""
    x = 0.0
    for k in range(1, 2_000_001):
        x += k
    return x + seed


def median_time(n, f):
    f()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(name, seconds):
    print(f"{name} {seconds:.9f}", flush=True)


def big_array():
    import numpy as np

    a = (np.arange(BIG_BYTES, dtype=np.uint32) % 251).astype(np.uint8)
    return a, checksum(a)


def check_len(n):
    def check(v):
        v = list(v)
        assert len(v) == n and v[-1] == 2 * (n - 1), (len(v), v[-1:])

    return check


class Peer:
    """One peer's way of doing each workload; subclasses fill in the verbs."""

    name = "?"

    def run(self):
        check = check_len(N_ELEMENTS)
        self.measure("round_trip_multiprocess_2", 300, lambda: self.round_trip())
        self.measure(
            "foreach_1e5_trivial_multiprocess_2",
            5,
            lambda: check(self.map_chunked(double, range(N_ELEMENTS))),
        )
        check_tasks = check_len(N_PER_TASK)
        self.measure(
            "foreach_1e4_dopar_2",
            3,
            lambda: check_tasks(self.map_per_element(double, range(N_PER_TASK))),
        )
        a, expected = big_array()

        def transfer():
            got = self.send_big(a)
            assert got == expected, (got, expected)

        self.measure("transfer_100mb_checksum_multiprocess_2", 5, transfer)
        del a
        self.measure(
            "cpu_bound_8_sequential", 3, lambda: [busy(i) for i in range(8)]
        )
        self.measure(
            "cpu_bound_8_multiprocess_2",
            3,
            lambda: list(self.map_per_element(busy, range(8))),
        )

    def measure(self, name, n, f):
        try:
            report(name, median_time(n, f))
        except Exception as e:  # a failed workload must not hide the others
            print(f"FAILED: {self.name} {name}: {e!r}", file=sys.stderr, flush=True)


class Loky(Peer):
    """loky's reusable process executor, 2 workers."""

    name = "loky"

    def __init__(self):
        import loky

        self.version = loky.__version__
        self.ex = loky.get_reusable_executor(max_workers=WORKERS)
        list(self.ex.map(one, range(WORKERS)))

    def round_trip(self):
        return self.ex.submit(one, 1).result()

    def map_chunked(self, f, xs):
        return self.ex.map(f, xs, chunksize=len(xs) // WORKERS)

    def map_per_element(self, f, xs):
        return self.ex.map(f, xs)

    def send_big(self, a):
        return self.ex.submit(checksum, a).result()

    def close(self):
        self.ex.shutdown(wait=True)


class Dask(Peer):
    """Dask distributed: a LocalCluster of 2 worker processes, 1 thread each."""

    name = "dask"

    def __init__(self):
        import dask
        import dask.bag
        from dask.distributed import Client, LocalCluster

        self.version = dask.__version__
        self.bag = dask.bag
        self.cluster = LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        self.client = Client(self.cluster)
        self.client.gather(self.client.map(one, range(WORKERS), pure=False))

    def round_trip(self):
        return self.client.submit(one, 1, pure=False).result()

    def map_chunked(self, f, xs):
        return self.bag.from_sequence(xs, npartitions=WORKERS).map(f).compute()

    def map_per_element(self, f, xs):
        return self.client.gather(self.client.map(f, xs, pure=False))

    def send_big(self, a):
        # Dask warns about large objects in a task graph and tells users to
        # scatter them first: that is the idiomatic way, so it is timed here.
        data = self.client.scatter(a, hash=False)
        sum_ = self.client.submit(checksum, data, pure=False).result()
        self.client.cancel(data)
        return sum_

    def close(self):
        self.client.close()
        self.cluster.close()


class Ray(Peer):
    """Ray on this machine: ray.init(num_cpus=2), tasks and its Pool."""

    name = "ray"

    def __init__(self):
        import ray

        self.version = ray.__version__
        self.ray = ray
        ray.init(
            num_cpus=WORKERS,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        self.remote = {f: ray.remote(f) for f in (one, double, checksum, busy)}
        ray.get([self.remote[one].remote(i) for i in range(4 * WORKERS)])

    def round_trip(self):
        return self.ray.get(self.remote[one].remote(1))

    def map_chunked(self, f, xs):
        from ray.util.multiprocessing import Pool

        # The Pool's actors are started once; each actor holds a CPU, so the
        # pool is closed before the per-task workloads.
        if not hasattr(self, "pool"):
            self.pool = Pool(processes=WORKERS)
        return self.pool.map(f, xs, chunksize=len(xs) // WORKERS)

    def map_per_element(self, f, xs):
        if hasattr(self, "pool"):
            self.pool.terminate()
            del self.pool
        return self.ray.get([self.remote[f].remote(x) for x in xs])

    def send_big(self, a):
        return self.ray.get(self.remote[checksum].remote(a))

    def close(self):
        self.ray.shutdown()


class Submitit:
    """submitit's Slurm executor: one job per submit, results from its pickles.

    As slurm_workloads.rs does for futurize: each figure is the mean over
    PHASES runs, the k-th started k/PHASES s after squeue lists nothing, so
    that the runs spread over slurmctld's ~1 s scheduling pass.
    """

    name = "submitit"
    PHASES = 5
    JOBS = 50

    def __init__(self):
        import logging
        import os
        import shutil
        import tempfile

        import submitit

        # Without sacct (no slurmdbd) submitit warns at each of its checks;
        # it then goes by its result files, which is what is measured.
        logging.getLogger("submitit").setLevel(logging.ERROR)

        if not os.environ.get("SLURM_CONF") or shutil.which("sbatch") is None:
            raise RuntimeError("no Slurm here (SLURM_CONF unset or sbatch missing)")
        self.version = submitit.__version__
        self.folder = tempfile.mkdtemp(prefix="submitit-compare-")
        self.ex = submitit.AutoExecutor(folder=self.folder, cluster="slurm")
        self.ex.update_parameters(timeout_min=5)

    def settle(self, k):
        import subprocess

        deadline = time.monotonic() + 120
        while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
            assert time.monotonic() < deadline, "jobs still listed after 120 s"
            time.sleep(0.02)
        time.sleep(k / self.PHASES)

    def mean_over_phases(self, f):
        total = 0.0
        for k in range(self.PHASES):
            self.settle(k)
            t0 = time.perf_counter()
            f()
            total += time.perf_counter() - t0
        return total / self.PHASES

    def measure(self, name, f):
        try:
            report(name, self.mean_over_phases(f))
        except Exception as e:
            print(f"FAILED: submitit {name}: {e!r}", file=sys.stderr, flush=True)

    def run(self):
        self.measure("slurm_first_value", lambda: self.check([self.ex.submit(one, 1)], [1]))
        expected = [2 * i for i in range(self.JOBS)]
        self.measure(
            "slurm_50_jobs",
            lambda: self.check([self.ex.submit(double, i) for i in range(self.JOBS)], expected),
        )
        # submitit's own way to many jobs: one array (a single sbatch).
        self.measure(
            "slurm_50_jobs_array",
            lambda: self.check(self.ex.map_array(double, range(self.JOBS)), expected),
        )

    @staticmethod
    def check(jobs, expected):
        got = [j.result() for j in jobs]
        assert got == expected, (got[:5], expected[:5])

    def close(self):
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


PEERS = {"loky": Loky, "dask": Dask, "ray": Ray, "submitit": Submitit}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in PEERS:
        print(f"usage: {sys.argv[0]} {'|'.join(PEERS)}", file=sys.stderr)
        sys.exit(2)
    name = sys.argv[1]
    try:
        peer = PEERS[name]()
    except Exception as e:  # not installed, or cannot start here
        print(f"SKIPPED: {name}: {type(e).__name__}: {e}", flush=True)
        return
    print(f"# {name} {peer.version}, Python {sys.version.split()[0]}", flush=True)
    try:
        peer.run()
    finally:
        peer.close()


if __name__ == "__main__":
    main()
