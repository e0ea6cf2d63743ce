# Sourced by run.sh: prints the table of $out/*.txt (one column per side
# that measured something) and the ratios side / futurize.

# The rows, in order; a row no side measured is left out.
rows="round_trip_multiprocess_2 foreach_1e5_trivial_multiprocess_2 seeded_1e5_no_draw_multiprocess_2
foreach_1e4_dopar_2 transfer_100mb_checksum_multiprocess_2 cpu_bound_8_sequential
cpu_bound_8_multiprocess_2 floor_unix_socket_ping_pong slurm_first_value slurm_first_value_floor_sbatch
slurm_50_jobs slurm_50_jobs_array slurm_50_jobs_floor_sbatch"

value_of() { awk -v n="$2" '$1 == n && $2 ~ /^[0-9.]+$/ {print $2}' "$out/$1.txt" 2>/dev/null; }

print_table() {
    local sides=() s r v f
    for s in futurize R loky dask ray submitit future.batchtools; do
        [ -s "$out/$s.txt" ] && grep -qE '^[a-z0-9_]+ [0-9.]+$' "$out/$s.txt" && sides+=("$s")
    done
    echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB," \
        "load $(cut -d' ' -f1-3 /proc/loadavg); futurize $(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)"
    cat "$out"/*.txt | grep '^# ' | sort -u || true
    echo "## seconds (medians; Slurm rows: means over 5 phases of the scheduling pass)"
    printf '%-40s' workload; printf ' %12s' "${sides[@]}"; echo
    for r in $rows; do
        local line cells=0
        line=$(printf '%-40s' "$r")
        for s in "${sides[@]}"; do
            v=$(value_of "$s" "$r")
            [ -n "$v" ] && cells=$((cells + 1))
            line+=$(printf ' %12s' "${v:--}")
        done
        [ "$cells" -gt 0 ] && echo "$line"
    done
    echo "## peer / futurize (above 1: futurize is faster)"
    printf '%-40s' workload; printf ' %12s' "${sides[@]:1}"; echo
    for r in $rows; do
        f=$(value_of futurize "$r")
        # The CPU-bound rows run different code in each language: only their
        # speed-ups (below) compare.
        case $r in cpu_bound_*) continue ;; esac
        [ -n "$f" ] || continue
        local line cells=0
        line=$(printf '%-40s' "$r")
        for s in "${sides[@]:1}"; do
            v=$(value_of "$s" "$r")
            if [ -n "$v" ]; then
                cells=$((cells + 1))
                line+=$(awk -v a="$v" -v b="$f" 'BEGIN {q = a / b; printf " %12s", sprintf(q >= 10 ? "%.0f" : "%.2f", q)}')
            else
                line+=$(printf ' %12s' -)
            fi
        done
        [ "$cells" -gt 0 ] && echo "$line"
    done
    for s in "${sides[@]}"; do
        local seq par jobs
        seq=$(value_of "$s" cpu_bound_8_sequential)
        par=$(value_of "$s" cpu_bound_8_multiprocess_2)
        [ -n "$seq" ] && [ -n "$par" ] &&
            awk -v a="$seq" -v b="$par" -v s="$s" 'BEGIN {printf "cpu-bound speed-up on 2 workers (%s): %.2f\n", s, a / b}'
    done
    for s in "${sides[@]}"; do
        for r in slurm_50_jobs slurm_50_jobs_array slurm_50_jobs_floor_sbatch; do
            v=$(value_of "$s" "$r")
            [ -n "$v" ] && awk -v t="$v" -v s="$s" -v r="$r" 'BEGIN {printf "jobs per second (%s, %s): %.1f\n", s, r, 50 / t}'
        done
    done
    cat "$out/skipped.txt" 2>/dev/null || true
}
