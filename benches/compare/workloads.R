# The workloads of benches/compare/run.sh, in R's future framework.
# Prints one line per workload: name, median seconds.
suppressPackageStartupMessages({
  library(future)
  library(future.apply)
  library(foreach)
  library(doParallel)
})
median_time <- function(n, expr_fun) {
  times <- vapply(seq_len(n), function(i) {
    t0 <- Sys.time(); expr_fun(); as.numeric(Sys.time() - t0, units = "secs")
  }, numeric(1))
  median(times)
}
report <- function(name, seconds) cat(sprintf("%s %.9f\n", name, seconds))

plan(multisession, workers = 2)
invisible(value(future(1)))
report("round_trip_multiprocess_2", median_time(30, function() value(future(1L))))
report("foreach_1e5_trivial_multiprocess_2",
       median_time(5, function() future_lapply(1:1e5, function(i) i * 2)))
report("seeded_1e5_no_draw_multiprocess_2",
       median_time(5, function() future_lapply(1:1e5, function(i) i * 2, future.seed = 1L)))
cl <- makeCluster(2)
registerDoParallel(cl)
invisible(foreach(i = 1:2) %dopar% i)
report("foreach_1e4_dopar_2",
       median_time(3, function() foreach(i = 1:1e4) %dopar% (i * 2)))
stopCluster(cl)
busy <- function(seed) { x <- 0; for (k in 1:2e6) x <- x + k; x + seed }
plan(sequential)
report("cpu_bound_8_sequential", median_time(3, function() lapply(1:8, busy)))
plan(multisession, workers = 2)
invisible(future_lapply(1:2, function(i) i))
report("cpu_bound_8_multiprocess_2", median_time(3, function() future_lapply(1:8, busy)))
plan(sequential)
