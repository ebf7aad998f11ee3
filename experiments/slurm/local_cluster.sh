#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine, for trying (and testing) sweep.sbatch:
#   experiments/slurm/local_cluster.sh start DIR    munged + slurmctld + slurmd, all state in DIR
#   experiments/slurm/local_cluster.sh stop DIR
# Then `export SLURM_CONF=DIR/slurm.conf` and use sbatch / squeue as on a cluster. Needs Debian's
# slurm-wlm and munge (apt-get install -y slurm-wlm munge) and root (the daemons run as root
# here); nothing outside DIR is written, the machine's own munge/slurm setup is left alone.
set -euo pipefail
cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

stop() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  sleep 1
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
    [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  return 0
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }

case "$cmd" in
  stop)
    stop
    ;;
  start)
    for b in munged mungekey slurmctld slurmd sbatch; do
      command -v "$b" >/dev/null || { echo "error: $b not found: apt-get install -y slurm-wlm munge" >&2; exit 2; }
    done
    [ "$(id -u)" = 0 ] || { echo "error: the local cluster's daemons run as root here" >&2; exit 2; }
    dir="$(mkdir -p "$dir" && cd "$dir" && pwd)"
    mkdir -p "$dir/state" "$dir/spool"
    chmod 700 "$dir"
    mungekey --create --keyfile="$dir/munge.key" --force
    munged --force --socket="$dir/munge.sock" --key-file="$dir/munge.key" \
      --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
    host="$(hostname -s)"
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
    cat > "$dir/slurm.conf" <<EOF
ClusterName=gen-models-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# sbatch --wait polls a job every 2 s only while MinJobAge/2 <= 2 (its sleep grows 2, 8, 32 s
# otherwise: a job done in 14 s was waited on for 42 s); a completed job's record is kept 4 s.
MinJobAge=4
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -c
    slurmd
    for _ in $(seq 60); do
      if sinfo -h -o %T 2>/dev/null | grep -q idle; then
        echo "local SLURM cluster up: export SLURM_CONF=$dir/slurm.conf"
        exit 0
      fi
      sleep 0.5
    done
    echo "error: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    stop
    exit 1
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
