# Sourced by run.sh: the Slurm workloads on a private single-node Slurm
# (scripts/test-slurm.sh with a directory and ports of its own, like
# benches/slurm.rs), so this run neither disturbs nor is disturbed by the
# tests' cluster; it is stopped on exit. Uses run.sh's $out, $repo, $venv,
# $futurize, skip, note and run_side.

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_private_slurm() {
    if [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/slurmd ] || [ ! -x /usr/sbin/munged ]; then
        skip "Slurm peers: slurmctld, slurmd or munged missing (apt-get install slurm-wlm munge)"
        return 1
    fi
    if [ "$(id -u)" != 0 ]; then
        skip "Slurm peers: scripts/test-slurm.sh needs root"
        return 1
    fi
    export SLURM_TEST_DIR=/tmp/futurize-slurm-compare-$$
    export SLURM_TEST_CTLD_PORT SLURM_TEST_SLURMD_PORT
    SLURM_TEST_CTLD_PORT=$(free_port)
    SLURM_TEST_SLURMD_PORT=$(free_port)
    trap stop_private_slurm EXIT
    local env
    if ! env=$(bash scripts/test-slurm.sh start 2>"$out/slurm-start.err"); then
        skip "Slurm peers: scripts/test-slurm.sh start failed: $(tail -1 "$out/slurm-start.err")"
        return 1
    fi
    eval "$(grep '^export SLURM_CONF=' <<<"$env")"
}

stop_private_slurm() {
    bash "$repo/scripts/test-slurm.sh" stop >/dev/null 2>&1 || true
    rm -rf "$SLURM_TEST_DIR" "$SLURM_TEST_DIR.lock"
}

run_slurm_sides() {
    start_private_slurm || return 0
    run_side futurize-slurm "$futurize" slurm
    cat "$out/futurize-slurm.txt" >>"$out/futurize.txt"
    if grep -qx submitit "$out/py-slurm-peers" 2>/dev/null; then
        run_side submitit "$venv/bin/python" benches/compare/workloads_py.py submitit
    fi
    if command -v Rscript >/dev/null && Rscript -e 'library(future.batchtools)' >/dev/null 2>&1; then
        # future.batchtools keeps its registries in ./.future: a scratch directory.
        mkdir -p "$out/batchtools"
        (cd "$out/batchtools" && run_side future.batchtools Rscript "$repo/benches/compare/workloads_batchtools.R")
    else
        skip "future.batchtools: Rscript or r-cran-future.batchtools missing"
    fi
    stop_private_slurm
    trap - EXIT
}
