#!/usr/bin/env bash
# Wall time of one small sweep at the card's protocol, three ways: one process on every core,
# `--workers 2` (one pinned core each) and a 2-task SLURM array on a local single-node cluster
# (local_cluster.sh; needs root and Debian's slurm-wlm + munge). docs/speed.md has the numbers.
#   experiments/slurm/time_layouts.sh DIR [EXP] [FLAGS...]    (default: dcgan_loss, 1 seed x 2 arms)
# Run it on an otherwise idle machine: the three layouts run back to back, not at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:?usage: $0 DIR [EXP] [FLAGS...]}"
exp="${2:-dcgan_loss}"
shift $(( $# >= 2 ? 2 : 1 ))
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--set data.name=fashion_mnist --seeds 1)
[ ! -e "$dir" ] || { echo "error: $dir exists; give a new directory (nothing is overwritten)" >&2; exit 2; }
mkdir -p "$dir"
now() { date +%s.%N; }
took() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

t0=$(now)
.venv/bin/python -m experiments.run --exp="$exp" "${flags[@]}" --workers 1 --out "$dir/one" >"$dir/one.log" 2>&1
echo "one process: $(took "$t0") s"
sleep 5
t0=$(now)
.venv/bin/python -m experiments.run --exp="$exp" "${flags[@]}" --workers 2 --out "$dir/workers2" >"$dir/workers2.log" 2>&1
echo "--workers 2: $(took "$t0") s"
sleep 5
experiments/slurm/local_cluster.sh start "$dir/slurm" >"$dir/slurm_start.log"
trap 'experiments/slurm/local_cluster.sh stop "$dir/slurm"' EXIT
t0=$(now)
SLURM_CONF="$dir/slurm/slurm.conf" sbatch --wait --array=0-1 --output="$dir/slurm/task-%A_%a.out" \
  experiments/slurm/sweep.sbatch "$exp" "${flags[@]}" --out "$dir/slurm_runs" >"$dir/slurm.log" 2>&1
echo "SLURM 2-task array: $(took "$t0") s"
grep -h "\] .*/seed[0-9]*: fid=" "$dir"/one.log "$dir"/workers2.log "$dir"/slurm/task-*.out || true
