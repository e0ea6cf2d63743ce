#!/usr/bin/env bash
# scripts/test-slurm.sh {start|stop|restart|status|env}            single node
#                       {start-cluster|stop-cluster|restart-cluster|status-cluster|env-cluster}
#                       {start-adapt|stop-adapt|restart-adapt|status-adapt|env-adapt}
#                       stop-all
#
# A real Slurm (Debian's slurm-wlm: slurmctld + slurmd + client tools) and a real, private munged
# on this host for futurize's Slurm tests: no systemd, no cgroups, nothing in /etc/slurm,
# /etc/munge or /var touched. Every daemon runs as root in the foreground (-D / -F), is
# backgrounded here (stdio to log files, so `$(... start)` returns) and tracked by the pid file
# written from $!. Needs root.
#
#   eval "$(scripts/test-slurm.sh start)"          # idempotent; prints `export SLURM_CONF=...`
#   srun -n1 hostname; sbatch -o OUT --wrap CMD; squeue; scancel ID
#   scripts/test-slurm.sh stop                     # scancel everything, then kill daemons by pid
#
# Three layouts, each with its own directory, ports and munged, so all can run at once:
#   single node   (start)          node `hostname -s`,  dir /tmp/futurize-slurm,      ports 6817/6818
#   fake cluster  (start-cluster,  nodes n1..nN (N=3): N slurmd processes on this host (slurmd -N nI),
#    or SLURM_TEST_NODES=N start)  dir /tmp/futurize-slurm-nN, ports 6917, 6929..
#   adaptive      (start-adapt)    node `hostname -s`,  dir /tmp/futurize-slurm-adapt, ports 7017/7018,
#                                  with SLURM_TEST_MEMKILL=1 and SLURM_TEST_PREEMPT=1 (below)
# All: partition `debug` (default), OverSubscribe=FORCE:8 (8 jobs may share a CPU: trivial-job
# throughput ~2 -> ~25 jobs/s), SchedulerParameters tuned to a ~1 s scheduling tick (default is
# 3 s), ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, MinJobAge=300, RealMemory = this
# host's memory (divided among the nodes of a fake cluster).
# Finished jobs: one line each in $dir/log/jobcomp.txt (JobCompType=jobcomp/filetxt; `sacct` is
# NOT available, there is no slurmdbd); `scontrol show job ID` works for MinJobAge seconds.
#
# Env knobs:
#   SLURM_TEST_NODES        1 (start) / 3 (start-cluster)   number of (fake) nodes
#   SLURM_TEST_DIR          /tmp/futurize-slurm (1 node), /tmp/futurize-slurm-nN (N nodes),
#                           /tmp/futurize-slurm-adapt (start-adapt)
#   SLURM_TEST_CTLD_PORT    6817 (1 node) / 6917 (N nodes) / 7017 (adapt)
#   SLURM_TEST_SLURMD_PORT  6818 (1 node) / 6918 (N nodes; node i listens on PORT+10+i, i.e. 6929..)
#                           / 7018 (adapt)
#   SLURM_TEST_CPUS         nproc   CPUs per node (more than the real cores is allowed: config_overrides)
#   SLURM_TEST_OVERSUB      FORCE:8 partition OverSubscribe (NO to turn off)
#   SLURM_TEST_CLEAN        0       1 -> slurmctld -c (forget the jobs of a previous run)
#   SLURM_TEST_MEMKILL      0 (1 for adapt)  1 -> memory is a consumable resource
#                           (CR_CPU_Memory) and `--mem` is enforced: jobacct_gather/linux samples
#                           every job's processes every 1 s and, with OverMemoryKill, kills a job
#                           over its `--mem`; it ends FAILED, exit code 0:9, and its log holds
#                           "Exceeded job memory limit" (the OUT_OF_MEMORY state needs cgroups,
#                           absent here). A job without `--mem` gets DefMemPerCPU=SLURM_TEST_DEFMEM.
#   SLURM_TEST_DEFMEM       RealMemory/(CPUs*8)  MiB per CPU of a job without --mem (MEMKILL=1
#                           only): 8 such jobs fit per CPU, as OverSubscribe=FORCE:8 allows; without
#                           it such a job would hold all the node's memory and run alone
#   SLURM_TEST_PREEMPT      0 (1 for adapt)  1 -> a second partition `high` (PriorityTier=2,
#                           OverSubscribe=NO) preempts `debug` (PriorityTier=1) with
#                           PreemptType=preempt/partition_prio, PreemptMode=REQUEUE: the preempted
#                           job's line in jobcomp.txt says JobState=PREEMPTED, it is requeued under
#                           the same id (Restarts=1) and runs again from the start. Slurm holds a
#                           requeued job ~120 s (Reason=BeginTime);
#                           `scontrol update JobId=ID StartTime=now` releases it at once.
set -euo pipefail

cmd=${1:-start}
case "$cmd" in
  *-cluster) SLURM_TEST_NODES=${SLURM_TEST_NODES:-3}; cmd=${cmd%-cluster} ;;
  *-adapt) SLURM_TEST_NODES=1; cmd=${cmd%-adapt}
    SLURM_TEST_DIR=${SLURM_TEST_DIR:-/tmp/futurize-slurm-adapt}
    SLURM_TEST_CTLD_PORT=${SLURM_TEST_CTLD_PORT:-7017}
    SLURM_TEST_SLURMD_PORT=${SLURM_TEST_SLURMD_PORT:-7018}
    SLURM_TEST_MEMKILL=${SLURM_TEST_MEMKILL:-1}
    SLURM_TEST_PREEMPT=${SLURM_TEST_PREEMPT:-1} ;;
esac
NNODES=${SLURM_TEST_NODES:-1}
case "$NNODES" in ''|*[!0-9]*|0) echo "test-slurm: SLURM_TEST_NODES must be a positive integer" >&2; exit 2 ;; esac
MEMKILL=${SLURM_TEST_MEMKILL:-0}
PREEMPT=${SLURM_TEST_PREEMPT:-0}
case "$MEMKILL$PREEMPT" in [01][01]) ;; *) echo "test-slurm: SLURM_TEST_MEMKILL and SLURM_TEST_PREEMPT are 0 or 1" >&2; exit 2 ;; esac
if [ "$NNODES" -gt 1 ]; then
  S=${SLURM_TEST_DIR:-/tmp/futurize-slurm-n$NNODES}
  CPORT=${SLURM_TEST_CTLD_PORT:-6917}
  DPORT=${SLURM_TEST_SLURMD_PORT:-6918}
else
  S=${SLURM_TEST_DIR:-/tmp/futurize-slurm}
  CPORT=${SLURM_TEST_CTLD_PORT:-6817}
  DPORT=${SLURM_TEST_SLURMD_PORT:-6818}
fi
CPUS=${SLURM_TEST_CPUS:-$(nproc)}
OVERSUB=${SLURM_TEST_OVERSUB:-FORCE:8}
export SLURM_CONF=$S/etc/slurm.conf
HOST=$(hostname -s)            # single node: NodeName must be this, and it must resolve
if [ "$NNODES" -gt 1 ]; then NODES=$(seq -f 'n%g' 1 "$NNODES" | tr '\n' ' '); else NODES=$HOST; fi
# what start was asked for; a running setup with other settings is an error, not silently reused
SIG="nodes=$NNODES cpus=$CPUS oversub=$OVERSUB ctld=$CPORT slurmd=$DPORT host=$HOST"
# unchanged when both are off, so a Slurm started by an older copy of this script is recognized
[ "$MEMKILL$PREEMPT" = 00 ] || SIG="$SIG memkill=$MEMKILL preempt=$PREEMPT"

# alive PIDFILE: process exists and is not a zombie. Daemons orphaned to PID 1 are reaped lazily
# on some machines (~2 s here), so `kill -0` alone would report a dead daemon as alive.
alive_pid() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
alive() { local p; [ -f "$1" ] && p=$(cat "$1") && [ -n "$p" ] && alive_pid "$p"; }
# the nodes of the setup in $S as started (from its record, whatever the environment says now)
started_nodes() { cat "$S/run/nodes" 2>/dev/null || echo "$NODES"; }
all_alive() { local n; alive "$S/run/munged.pid" && alive "$S/run/slurmctld.pid" || return 1
  for n in $(started_nodes); do alive "$S/run/slurmd-$n.pid" || return 1; done; }
any_alive() { local f; for f in "$S"/run/*.pid; do [ -f "$f" ] && alive "$f" && return 0; done; return 1; }

print_env() {
  cat <<EOF
# futurize test slurm: dir=$S nodes=$(started_nodes | tr -s ' ' ',' | sed 's/,$//') cpus/node=$CPUS oversubscribe=$OVERSUB memkill=$MEMKILL preempt=$PREEMPT
export SLURM_CONF=$SLURM_CONF
export FUTURIZE_TEST_SLURM_DIR=$S
# finished jobs: $S/log/jobcomp.txt (no sacct); logs: $S/log/
EOF
}

lock() {   # serialize start/stop of concurrent test processes
  exec 9>"$S.lock"
  flock -w 120 9 || { echo "test-slurm: could not lock $S.lock within 120 s" >&2; exit 1; }
}

start_munge() {
  alive "$S/run/munged.pid" && return 0
  [ -f "$S/munge/munge.key" ] || dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$S/munge/munge.key"   # readable by munged's user (root) only
  chmod 0755 "$S/munge"             # munged insists the socket dir is o+x
  rm -f "$S/munge/munge.sock" "$S/munge/munge.sock.lock"
  munged -F --key-file="$S/munge/munge.key" --socket="$S/munge/munge.sock" \
         --pid-file="$S/munge/munged.pid" --log-file="$S/log/munged.log" \
         --seed-file="$S/munge/munged.seed" </dev/null >>"$S/log/munged.out" 2>&1 9>&- &
  echo $! > "$S/run/munged.pid"
  for _ in $(seq 100); do [ -S "$S/munge/munge.sock" ] && break; sleep 0.05; done
  munge -S "$S/munge/munge.sock" -n | unmunge -S "$S/munge/munge.sock" >/dev/null \
    || { echo "test-slurm: munged failed:" >&2; cat "$S/log/munged.out" "$S/log/munged.log" >&2; return 1; }
}

write_conf() {
  local mem hwcpus layout nodeline extra=""
  mem=$(free -m | awk '/^Mem:/{print $2}')
  hwcpus=$(nproc)
  if [ "$CPUS" = "$hwcpus" ]; then
    # exactly what slurmd detects (avoids "Node reconfigured socket/core boundaries")
    layout=$(slurmd -C 2>/dev/null | head -1 | grep -o 'Boards=[^ ]* SocketsPerBoard=[^ ]* CoresPerSocket=[^ ]* ThreadsPerCore=[^ ]*' || true)
  else
    layout="Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1"
  fi
  if [ "$NNODES" -gt 1 ]; then
    mem=$(( mem / NNODES ))
    nodeline="NodeName=n[1-$NNODES] NodeHostname=$HOST NodeAddr=127.0.0.1 Port=[$((DPORT+11))-$((DPORT+10+NNODES))]"
  else
    nodeline="NodeName=$HOST NodeAddr=127.0.0.1"
  fi
  # lets configured CPUs/nodes exceed what slurmd detects without the node being drained
  if [ "$CPUS" -gt "$hwcpus" ] || [ "$NNODES" -gt 1 ]; then extra="SlurmdParameters=config_overrides"; fi
  local select="SelectTypeParameters=CR_CPU" gather="JobAcctGatherType=jobacct_gather/none"
  local tier="" high=""
  if [ "$MEMKILL" = 1 ]; then
    # memory becomes a resource jobs ask for (--mem), and the gatherer kills those over it
    select="SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=${SLURM_TEST_DEFMEM:-$(( mem / (CPUS * 8) ))}"
    gather="JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill"
  fi
  if [ "$PREEMPT" = 1 ]; then
    select="$select
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE"
    tier=" PriorityTier=1"
    high="PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2 OverSubscribe=NO"
  fi
  cat > "$SLURM_CONF" <<EOF
# generated by scripts/test-slurm.sh ($SIG)
ClusterName=futurizetest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CPORT
SlurmdPort=$DPORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/munge.sock
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/run/slurmctld.daemon-pid
SlurmdPidFile=$S/run/slurmd-%n.daemon-pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
$select
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1,default_queue_depth=1000
MpiDefault=none
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/none
$gather
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.txt
$extra
$nodeline CPUs=$CPUS $layout RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=$OVERSUB$tier
EOF
  if [ -n "$high" ]; then echo "$high" >> "$SLURM_CONF"; fi
}

start() {
  mkdir -p "$S"/{etc,state,spool,log,run,munge}
  lock
  if alive "$S/run/slurmctld.pid" && [ "$(cat "$S/run/config" 2>/dev/null)" != "$SIG" ]; then
    echo "test-slurm: the Slurm in $S runs with other settings ($(cat "$S/run/config" 2>/dev/null)); stop it first" >&2
    return 1
  fi
  if all_alive; then print_env; return 0; fi
  if [ "$(id -u)" != 0 ]; then echo "test-slurm: needs root (SlurmUser=root)" >&2; return 1; fi
  getent hosts "$HOST" >/dev/null || echo "test-slurm: warning: hostname $HOST does not resolve (add it to /etc/hosts)" >&2
  local t0 n st="" want port ports; t0=$(date +%s%N)
  if ! any_alive; then
    ports="$CPORT $DPORT"
    [ "$NNODES" -gt 1 ] && ports="$CPORT $(seq -s ' ' $((DPORT+11)) $((DPORT+10+NNODES)))"
    for port in $ports; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "test-slurm: port $port already in use (another Slurm?): stop it or set SLURM_TEST_*_PORT" >&2; return 1
      fi
    done
    echo "$NODES" > "$S/run/nodes"
    echo "$SIG" > "$S/run/config"
  fi
  start_munge
  alive "$S/run/slurmctld.pid" || write_conf
  local cflag=-i; [ "${SLURM_TEST_CLEAN:-0}" = 1 ] && cflag=-c
  if ! alive "$S/run/slurmctld.pid"; then
    slurmctld -D "$cflag" </dev/null >>"$S/log/slurmctld.out" 2>&1 9>&- &
    echo $! > "$S/run/slurmctld.pid"
  fi
  for n in $NODES; do
    alive "$S/run/slurmd-$n.pid" && continue
    if [ "$NNODES" -gt 1 ]; then slurmd -D -N "$n" </dev/null >>"$S/log/slurmd-$n.out" 2>&1 9>&- &
    else slurmd -D </dev/null >>"$S/log/slurmd-$n.out" 2>&1 9>&- &
    fi
    echo $! > "$S/run/slurmd-$n.pid"
  done
  want="$NNODES idle"
  for _ in $(seq 300); do
    st=$(sinfo -h -o '%D %t' 2>/dev/null | tr '\n' ' ' | sed 's/ $//' || true)
    [ "$st" = "$want" ] && break
    all_alive || break                             # a daemon died (e.g. bind failure): don't wait 30 s
    sleep 0.1
  done
  if [ "$st" != "$want" ] || ! all_alive; then
    echo "test-slurm: nodes not idle after 30 s (sinfo: '$st'); logs:" >&2
    tail -n 20 "$S"/log/*.out "$S"/log/*.log >&2 || true
    return 1
  fi
  echo "# slurm ready in $(( ($(date +%s%N)-t0)/1000000 )) ms"
  print_env
}

wait_gone() {   # until exited (a zombie counts as exited); SIGKILL after 10 s
  for _ in $(seq 200); do alive_pid "$1" || return 0; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null || true
  for _ in $(seq 20); do alive_pid "$1" || return 0; sleep 0.05; done
  echo "test-slurm: pid $1 survived SIGKILL" >&2; return 1
}

stop() {
  local f p n nodes rc=0
  mkdir -p "$S/run"
  lock
  nodes=$(started_nodes)
  if alive "$S/run/slurmctld.pid"; then
    # running batch steps (slurmstepd double-forks away from slurmd) would outlive slurmd
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  for n in $nodes; do   # leftover step processes
    alive "$S/run/slurmd-$n.pid" || continue
    for p in $( (if [ "$(wc -w < "$S/run/nodes" 2>/dev/null || echo 1)" -gt 1 ]; then SLURMD_NODENAME=$n scontrol listpids; else scontrol listpids; fi) 2>/dev/null \
                | awk 'NR>1 && $1 ~ /^[0-9]+$/ {print $1}'); do kill -KILL "$p" 2>/dev/null || true; done
  done
  for f in "$S"/run/slurmd-*.pid "$S/run/slurmctld.pid" "$S/run/munged.pid"; do
    [ -f "$f" ] || continue
    if alive "$f"; then p=$(cat "$f"); kill -TERM "$p" 2>/dev/null || true; wait_gone "$p" || rc=1; fi
    rm -f "$f"
  done
  rm -f "$S/run/nodes" "$S/run/config"
  echo "# test slurm in $S stopped"
  return $rc
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  restart) stop >/dev/null; start ;;
  status) if all_alive; then print_env; sinfo; else echo stopped; exit 1; fi ;;
  env) print_env ;;
  stop-all)
    for d in "${SLURM_TEST_DIR:-/tmp/futurize-slurm}" /tmp/futurize-slurm-n* /tmp/futurize-slurm-adapt; do
      [ -d "$d/run" ] || continue
      SLURM_TEST_DIR=$d "$0" stop
    done ;;
  *) echo "usage: $0 {start|stop|restart|status|env}[-cluster|-adapt] | stop-all" >&2; exit 2 ;;
esac
