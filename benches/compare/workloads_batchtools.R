# The Slurm workloads of benches/compare/run.sh in future.batchtools
# (plan(batchtools_slurm) with its own slurm.tmpl), against the Slurm that
# SLURM_CONF points at. Prints `name seconds` lines like workloads.R: each
# figure is the mean over `phases` runs, the k-th started k/phases s after
# squeue lists nothing (as slurm_workloads.rs does for futurize), so that the
# runs spread over slurmctld's ~1 s scheduling pass.
suppressPackageStartupMessages(library(future.batchtools))
phases <- 5
jobs <- 50
report <- function(name, seconds) cat(sprintf("%s %.9f\n", name, seconds))
settle <- function(k) {
  deadline <- Sys.time() + 120
  while (length(system2("squeue", "-h", stdout = TRUE)) > 0) {
    stopifnot(Sys.time() < deadline)
    Sys.sleep(0.02)
  }
  Sys.sleep(k / phases)
}
mean_over_phases <- function(f) {
  mean(vapply(seq_len(phases) - 1, function(k) {
    settle(k)
    t0 <- Sys.time(); f(); as.numeric(Sys.time() - t0, units = "secs")
  }, numeric(1)))
}
plan(batchtools_slurm, workers = jobs)
cat(sprintf("# future.batchtools %s, batchtools %s, %s\n", packageVersion("future.batchtools"),
            packageVersion("batchtools"), R.version.string))
report("slurm_first_value", mean_over_phases(function() stopifnot(value(future(1L)) == 1L)))
report("slurm_50_jobs", mean_over_phases(function() {
  fs <- lapply(seq_len(jobs) - 1L, function(i) future(i * 2L))
  stopifnot(identical(unlist(value(fs)), (seq_len(jobs) - 1L) * 2L))
}))
