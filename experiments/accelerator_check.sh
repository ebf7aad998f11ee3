#!/usr/bin/env bash
# What one GPU (or TPU) does for the card's sweeps, in under 10 minutes: dcgan img/s at batch 32 for
# 1 run vs vmapped groups of 11 and 33, one group evaluation at 2,000 and 10,000 samples, and the
# projected wall time of the card sweep's first look (experiments/accelerator_check.py).
#   experiments/accelerator_check.sh [--json] [--toy] [--groups 1,11,33] [--samples 2000,10000]
# Needs jax (with its CUDA or TPU build), flax, optax, numpy, scipy; no network, no dataset.
# Uses ./.venv if there is one, else $PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] && py=.venv/bin/python
export WANDB_MODE=disabled
exec "$py" -m experiments.accelerator_check "$@"
