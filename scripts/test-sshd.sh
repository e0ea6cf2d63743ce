#!/usr/bin/env bash
# scripts/test-sshd.sh {start|stop|restart|status|env}
#
# A private OpenSSH server on loopback for futurize's cluster tests: one sshd listening on
# 127.0.0.1, 127.0.0.2 and 127.0.0.3 (port $SSHD_PORT), reached through a generated ssh_config
# whose host aliases node1..node3 stand for three "machines". Nothing in /etc/ssh or ~/.ssh is
# touched; no systemd. Everything lives in $SSHD_DIR.
#
#   eval "$(scripts/test-sshd.sh start)"     # idempotent; prints the export lines of `env`
#   ssh -F "$FUTURIZE_TEST_SSH_CONFIG" node2 'echo $FUTURIZE_TEST_NODE'   # -> node2
#   scripts/test-sshd.sh stop                # kill by pid, wait until really gone
#
# Host aliases in $SSHD_DIR/ssh_config:
#   node1 node2 node3  127.0.0.1/.2/.3:$SSHD_PORT; the remote side sees FUTURIZE_TEST_NODE=nodeN
#   badhost            127.0.0.9:$SSHD_PORT, nothing listens -> rc 255 "Connection refused"
#   nokey              node1 with an identity that is not authorized -> rc 255 "Permission denied (publickey)"
#   unknownkey         node1 with an empty known_hosts -> rc 255 "Host key verification failed."
#
# Login user: run as root, the script creates (idempotently) the unprivileged user $SSHD_USER
# (default futurize-test, shell /bin/sh, home /home/futurize-test, no password) and the tests,
# running as root, log in as that user. Why: ssh runs the remote command through the login
# user's shell, and a bash login sources ~/.bashrc for every `ssh host cmd` (Debian's bash does
# so when it sees SSH_CLIENT); root's .bashrc here runs `pyenv init`: ~255 ms per `ssh node true`
# as root against ~135 ms as futurize-test. dash (/bin/sh) reads no rc file for `sh -c cmd`.
# SSHD_USER=root logs in as root instead (then the remote side is root, at the cost of root's rc
# files). Run as non-root, the script logs in as the calling user (no user is created; sshd then
# runs unprivileged).
# The remote user must be able to reach the binaries the tests launch remotely (the repo and
# its target dir must be world-traversable, as a normal clone under /work or /tmp is); `start`
# warns when the repo is not reachable for it.
#
# Env knobs: SSHD_DIR (/tmp/futurize-sshd), SSHD_PORT (2222), SSHD_USER (see above).
set -euo pipefail
D=${SSHD_DIR:-/tmp/futurize-sshd}
PORT=${SSHD_PORT:-2222}
ADDRS=(127.0.0.1 127.0.0.2 127.0.0.3)
BAD_ADDR=127.0.0.9
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$(id -u)" = 0 ]; then LOGIN=${SSHD_USER:-futurize-test}; else LOGIN=$(id -un); fi
LOGIN_HOME=/home/$LOGIN

# running and not a zombie: daemons orphaned to PID 1 are reaped lazily on some machines
# (~2 s here), so `kill -0` alone would report a dead sshd as alive.
alive_pid() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_alive() { local p; [ -f "$D/sshd.pid" ] && p=$(cat "$D/sshd.pid") && [ -n "$p" ] && alive_pid "$p"; }

print_env() {
  cat <<EOF
# futurize test sshd: dir=$D port=$PORT user=$LOGIN pid=$(cat "$D/sshd.pid" 2>/dev/null || echo -)
export FUTURIZE_TEST_SSH_DIR=$D
export FUTURIZE_TEST_SSH_CONFIG=$D/ssh_config
export FUTURIZE_TEST_SSH_USER=$LOGIN
export FUTURIZE_SSH_COMMAND="ssh -F $D/ssh_config"
# hosts: node1 node2 node3 (remote \$FUTURIZE_TEST_NODE=nodeN), badhost, nokey, unknownkey
EOF
}

lock() {   # serialize start/stop of concurrent test processes
  exec 9>"$D.lock"
  flock -w 60 9 || { echo "test-sshd: could not lock $D.lock within 60 s" >&2; exit 1; }
}

ensure_user() {
  [ "$(id -u)" = 0 ] && [ "$LOGIN" != root ] || return 0
  if ! getent passwd "$LOGIN" >/dev/null; then
    # -p '*': no password, but not "locked" ('!'), which sshd (UsePAM no) would refuse even for keys
    useradd --no-create-home --home-dir "$LOGIN_HOME" --shell /bin/sh --comment 'futurize test ssh login' \
            --password '*' --user-group "$LOGIN" \
      || getent passwd "$LOGIN" >/dev/null      # lost a race with a start for another SSHD_DIR
  fi
  # an account of that name made otherwise: unlock it ('!' in shadow) and give it /bin/sh
  case "$(getent shadow "$LOGIN" | cut -d: -f2)" in '!'*) usermod -p '*' "$LOGIN" ;; esac
  [ "$(getent passwd "$LOGIN" | cut -d: -f7)" = /bin/sh ] || usermod -s /bin/sh "$LOGIN"
  LOGIN_HOME=$(getent passwd "$LOGIN" | cut -d: -f6)
  mkdir -p "$LOGIN_HOME"                  # sshd chdirs there; a missing home is a stderr line per ssh
  chown "$LOGIN:" "$LOGIN_HOME"; chmod 755 "$LOGIN_HOME"
  # shellcheck disable=SC2016  # $1 is expanded by the inner sh
  if ! runuser -u "$LOGIN" -- sh -c 'cd "$1" && test -r Cargo.toml' _ "$REPO" 2>/dev/null; then
    echo "test-sshd: warning: user $LOGIN cannot read $REPO; binaries launched from there over ssh will fail" \
         "(make the path world-traversable, or use SSHD_USER=root)" >&2
  fi
}

write_configs() {
  local a i hk
  {
    echo "Port $PORT"
    for a in "${ADDRS[@]}"; do echo "ListenAddress $a:$PORT"; done
    cat <<EOF
HostKey $D/ssh_host_ed25519_key
PidFile $D/sshd.pid
AuthorizedKeysFile $D/authorized_keys
AllowUsers $LOGIN
# the files live under /tmp (mode 1777): StrictModes would reject them
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
MaxSessions 64
LogLevel ERROR
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
    # the remote process learns which "machine" it is on (SetEnv in Match needs OpenSSH >= 8.7)
    i=1; for a in "${ADDRS[@]}"; do printf 'Match LocalAddress %s\n  SetEnv FUTURIZE_TEST_NODE=node%d\n' "$a" "$i"; i=$((i+1)); done
  } > "$D/sshd_config"

  hk=$(cut -d' ' -f1,2 "$D/ssh_host_ed25519_key.pub")
  : > "$D/known_hosts"
  for a in "${ADDRS[@]}" "$BAD_ADDR"; do echo "[$a]:$PORT $hk" >> "$D/known_hosts"; done
  : > "$D/known_hosts_empty"

  # ssh_config: first obtained value wins, except IdentityFile, which accumulates -> no IdentityFile
  # under `Host *` (else nokey would still offer the good key).
  {
    i=1; for a in "${ADDRS[@]}"; do printf 'Host node%d\n  HostName %s\n  IdentityFile %s\n' "$i" "$a" "$D/id_ed25519"; i=$((i+1)); done
    cat <<EOF
Host badhost
  HostName $BAD_ADDR
  IdentityFile $D/id_ed25519
Host nokey
  HostName ${ADDRS[0]}
  IdentityFile $D/id_unauthorized
Host unknownkey
  HostName ${ADDRS[0]}
  IdentityFile $D/id_ed25519
  UserKnownHostsFile $D/known_hosts_empty
Host *
  Port $PORT
  User $LOGIN
  IdentitiesOnly yes
  UserKnownHostsFile $D/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
  # ~100 ms cheaper handshake than the default post-quantum kex (sntrup761) on a small box
  KexAlgorithms curve25519-sha256
  Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com
  # No ControlPath here: with one set, every ssh would silently reuse a live master. Opt-in
  # multiplexing (~10 ms per ssh instead of ~130 ms): -o ControlPath=$D/cm-%C -o ControlMaster=auto
  # -o ControlPersist=60; test-sshd.sh stop ends masters whose socket is $D/cm-*.
EOF
  } > "$D/ssh_config"
}

start() {
  mkdir -p "$D"
  lock
  # 0711: the login user reads authorized_keys with its own uid; it cannot list the dir
  chmod 711 "$D"
  if pid_alive; then print_env; return 0; fi
  ensure_user
  if [ "$(id -u)" = 0 ]; then mkdir -p /run/sshd; chmod 755 /run/sshd; fi   # privsep dir, must exist
  [ -f "$D/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C futurize-test-host -f "$D/ssh_host_ed25519_key"
  [ -f "$D/id_ed25519" ]           || ssh-keygen -q -t ed25519 -N '' -C futurize-test-client -f "$D/id_ed25519"
  [ -f "$D/id_unauthorized" ]      || ssh-keygen -q -t ed25519 -N '' -C futurize-test-unauthorized -f "$D/id_unauthorized"
  cp "$D/id_ed25519.pub" "$D/authorized_keys"; chmod 644 "$D/authorized_keys"
  write_configs
  /usr/sbin/sshd -t -f "$D/sshd_config"                # config check
  # refuse to start if something already listens there: a stale sshd would answer the readiness
  # probe (it re-execs per connection and reads the new key files at the same paths -> looks healthy)
  local a lp
  for a in "${ADDRS[@]}"; do
    if (exec 3<>"/dev/tcp/$a/$PORT") 2>/dev/null; then
      echo "test-sshd: $a:$PORT already in use; stop the old sshd or set SSHD_PORT" >&2; return 1
    fi
  done
  # -D: no daemonizing, so $! is sshd itself; absolute path required (sshd re-execs itself).
  # No inherited stdio (nor the lock fd): a caller reading our stdout to EOF, e.g. eval "$(... start)"
  # or Rust's Command::output(), would otherwise wait for as long as sshd runs.
  /usr/sbin/sshd -D -f "$D/sshd_config" -E "$D/sshd.log" </dev/null >>"$D/sshd.out" 2>&1 9>&- &
  lp=$!
  echo "$lp" > "$D/sshd.pid"      # sshd rewrites the same pid (PidFile); written here so stop works at once
  for _ in $(seq 100); do
    alive_pid "$lp" || break                           # died (bind error...)
    ssh -n -F "$D/ssh_config" -o ConnectTimeout=1 node1 true 2>/dev/null 9>&- && break
    sleep 0.05
  done
  if ! alive_pid "$lp" || ! ssh -n -F "$D/ssh_config" node1 true 9>&- >&2; then
    echo "test-sshd: sshd did not come up; log:" >&2; cat "$D/sshd.log" "$D/sshd.out" >&2
    kill "$lp" 2>/dev/null || true; rm -f "$D/sshd.pid"; return 1
  fi
  print_env
}

stop() {
  local p s
  mkdir -p "$D"
  lock
  # ControlMaster sockets, if a test used them (the masters are client-side processes)
  for s in "$D"/cm-*; do
    if [ -S "$s" ]; then ssh -o ControlPath="$s" -O exit x </dev/null >/dev/null 2>&1 || true; fi
  done
  if pid_alive; then
    p=$(cat "$D/sshd.pid"); kill -TERM "$p"
    for _ in $(seq 100); do alive_pid "$p" || break; sleep 0.05; done
    if alive_pid "$p"; then kill -KILL "$p" 2>/dev/null || true; sleep 0.1; fi
    if alive_pid "$p"; then echo "test-sshd: sshd pid $p still alive" >&2; return 1; fi
  fi
  rm -f "$D/sshd.pid"
  echo "# test sshd stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  restart) stop >/dev/null; start ;;
  status) if pid_alive; then echo "running pid $(cat "$D/sshd.pid")"; else echo stopped; exit 1; fi ;;
  env) print_env ;;
  *) echo "usage: $0 {start|stop|restart|status|env}" >&2; exit 2 ;;
esac
