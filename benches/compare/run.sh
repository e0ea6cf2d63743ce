#!/usr/bin/env bash
# Runs the same workloads in R's future framework and in futurize on this
# machine, in one go, and prints a table: workload, R, futurize, ratio.
# Installs R, future, future.apply, foreach and doParallel from Debian if
# they are missing.
# Not part of CI (it takes minutes); run it by hand: bash benches/compare/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v Rscript >/dev/null \
    || ! Rscript -e 'library(future.apply); library(doParallel)' >/dev/null 2>&1; then
    echo "installing R, future and future.apply from Debian ..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        r-base-core r-cran-future r-cran-future.apply r-cran-foreach r-cran-doparallel >/dev/null
fi

cargo build -q --release --example compare_workloads
out=$(mktemp -d)
echo "running the R side ..." >&2
Rscript benches/compare/workloads.R >"$out/r.txt"
echo "running the futurize side ..." >&2
./target/release/examples/compare_workloads >"$out/futurize.txt"

echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB;" \
     "$(R --version | head -1); futurize $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)"
printf '%-38s %14s %14s %10s\n' workload "R (s)" "futurize (s)" "R / futurize"
while read -r name r; do
    f=$(awk -v n="$name" '$1 == n {print $2}' "$out/futurize.txt")
    [ -n "$f" ] || continue
    printf '%-38s %14.6f %14.6f %10.1f\n' "$name" "$r" "$f" "$(echo "$r / $f" | bc -l)"
done <"$out/r.txt"
floor=$(awk '$1 == "floor_unix_socket_ping_pong" {print $2}' "$out/futurize.txt")
printf '%-38s %14s %14.6f\n' floor_unix_socket_ping_pong - "$floor"
speedup() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
for side in r futurize; do
    s=$(awk '$1 == "cpu_bound_8_sequential" {print $2}' "$out/$side.txt")
    m=$(awk '$1 == "cpu_bound_8_multiprocess_2" {print $2}' "$out/$side.txt")
    echo "cpu-bound speed-up on 2 workers ($side): $(speedup "$s" "$m")"
done
