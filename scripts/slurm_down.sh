#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by scripts/slurm_up.sh:
#   slurmd -> slurmctld -> slurmdbd -> mariadbd -> munged
# Usage: sudo bash scripts/slurm_down.sh [--purge]
#   --purge  also cancel every job first and delete the controller state and the accounting
#            database, so that the next slurm_up.sh starts from job id 1 with an empty history.
# Running job steps (slurmstepd) are left alone unless --purge; a restarted slurmd re-attaches.
set -uo pipefail
export PATH="/usr/sbin:/usr/bin:$PATH"
PURGE=0
[ "${1:-}" = --purge ] && PURGE=1

[ "$(id -u)" -eq 0 ] || { echo "slurm_down: must run as root" >&2; exit 1; }

if [ "$PURGE" = 1 ] && scontrol ping 2>/dev/null | grep -q 'is UP'; then
  scancel --full --quiet $(squeue -h -o %A 2>/dev/null) 2>/dev/null || true
  sleep 2
fi

stop_pid() { # pid name
  local pid=$1 name=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  echo "slurm_down: stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  echo "slurm_down: $name did not stop in 20s; SIGKILL" >&2
  kill -9 "$pid" 2>/dev/null
}
pidfile() { [ -f "$1" ] && cat "$1" 2>/dev/null; }

stop_pid "$(pidfile /run/slurmd.pid)" slurmd
stop_pid "$(pidfile /run/slurmctld.pid)" slurmctld
stop_pid "$(pidfile /run/slurmdbd.pid)" slurmdbd
if [ "$PURGE" = 1 ]; then
  for p in $(pgrep -x slurmstepd); do stop_pid "$p" slurmstepd; done
  rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*
  mariadb --protocol=socket -S /run/mysqld/mysqld.sock -uroot \
    -e 'DROP DATABASE IF EXISTS slurm_acct_db' 2>/dev/null && echo "slurm_down: dropped slurm_acct_db"
fi
stop_pid "$(pidfile /run/mysqld/mysqld.pid)" mariadbd
stop_pid "$(pidfile /run/munge/munged.pid)" munged
echo "slurm_down: stopped"
