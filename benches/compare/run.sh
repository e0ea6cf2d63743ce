#!/usr/bin/env bash
# Runs the same workloads in futurize and in the peers a user would pick
# instead, on this machine, in one go, and prints one table (a column per
# peer) and the ratios peer / futurize:
#   R's future (workloads.R), loky, Dask distributed and Ray (workloads_py.py),
#   and on a private single-node Slurm: submitit (workloads_py.py submitit),
#   future.batchtools (workloads_batchtools.R) and bare sbatch (the floor).
# Installs what is missing: R, future, future.apply, foreach, doParallel and
# future.batchtools from Debian; loky, dask[distributed], ray, numpy and
# submitit with pip into a venv under the target directory. A peer that
# cannot be installed or started is skipped with a line saying so.
# Not part of CI (it takes about 15 minutes); run it by hand:
#   bash benches/compare/run.sh [--no-slurm]
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
venv=$target/peers-venv
out=$(mktemp -d)
slurm=1
[ "${1:-}" = --no-slurm ] && slurm=0
skip() { echo "SKIPPED: $*" | tee -a "$out/skipped.txt" >&2; }
note() { echo "$*" >&2; }

install_r() {
    local pkgs=(r-base-core r-cran-future r-cran-future.apply r-cran-foreach r-cran-doparallel
        r-cran-future.batchtools)
    if command -v Rscript >/dev/null && Rscript -e 'library(future.apply); library(doParallel);
        library(future.batchtools)' >/dev/null 2>&1; then return; fi
    note "installing R, future, future.apply and future.batchtools from Debian ..."
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${pkgs[@]}"; } >"$out/apt.log" 2>&1 \
        || note "apt-get failed (see $out/apt.log); the R peers that need it are skipped"
}

# pip_peer NAME MODULE PACKAGE...: PACKAGE importable as MODULE in the venv, or a SKIPPED line.
pip_peer() {
    local name=$1 module=$2; shift 2
    "$venv/bin/python" -c "import $module" 2>/dev/null && return 0
    note "installing $* with pip ..."
    if ! "$venv/bin/python" -m pip install -q "$@" >"$out/pip-$name.log" 2>&1; then
        skip "$name: pip install $* failed: $(tail -1 "$out/pip-$name.log")"
        return 1
    fi
}

install_python() {
    if [ ! -x "$venv/bin/python" ] && ! python3 -m venv "$venv" >"$out/venv.log" 2>&1; then
        skip "loky, dask, ray, submitit: python3 -m venv failed: $(tail -1 "$out/venv.log")"
        return
    fi
    pip_peer numpy numpy numpy || true
    pip_peer loky loky loky && echo loky >>"$out/py-peers"
    pip_peer dask distributed "dask[distributed]" && echo dask >>"$out/py-peers"
    pip_peer ray ray ray && echo ray >>"$out/py-peers"
    pip_peer submitit submitit submitit && echo submitit >>"$out/py-slurm-peers"
    true
}

# run_side FILE CMD...: CMD's `name seconds` lines into $out/FILE.txt; SKIPPED lines go to the list.
run_side() {
    local file=$1; shift
    note "running $file ..."
    if ! "$@" >"$out/$file.txt" 2>"$out/$file.err"; then
        skip "$file: failed: $(tail -1 "$out/$file.err")"
    fi
    grep '^SKIPPED: ' "$out/$file.txt" >>"$out/skipped.txt" || true
    grep '^FAILED: ' "$out/$file.err" >>"$out/skipped.txt" || true
}

install_r
install_python
cargo build -q --release --example compare_workloads
futurize=$target/release/examples/compare_workloads

run_side futurize "$futurize"
if command -v Rscript >/dev/null && Rscript -e 'library(future.apply); library(doParallel)' >/dev/null 2>&1; then
    run_side R Rscript benches/compare/workloads.R
else
    skip "R (future): Rscript, future.apply or doParallel missing"
fi
for p in $(cat "$out/py-peers" 2>/dev/null); do
    run_side "$p" "$venv/bin/python" benches/compare/workloads_py.py "$p"
done

if [ "$slurm" = 1 ]; then
    source benches/compare/slurm_side.sh
    run_slurm_sides
fi

source benches/compare/table.sh
print_table
