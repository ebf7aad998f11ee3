#!/usr/bin/env bash
# gen-models launcher.
#   ./launch.sh setup            create .venv and install the project with its dev extras (idempotent)
#   ./launch.sh test [ARGS]      run the test suite (pytest ARGS); -m "not slow" is the fast tier;
#                                test files run in min(cores, 4) processes (TEST_WORKERS=N to change)
#   ./launch.sh format [ARGS]    format the code with pyink (the settings in pyproject.toml)
#   ./launch.sh EXP [FLAGS]      set up if needed, then: python -m experiments.run --exp=EXP --workers auto [FLAGS]
# Environment: PYTHON (interpreter for the venv, default python3); JAX_EXTRA=cuda|tpu installs the
# accelerator build of jax (pyproject extras `cuda` / `tpu`); PEERS=1 also installs the `peers` extra
# (TensorFlow + PyTorch, for `python -m experiments.bench --peers`).
# Multi-host: GEN_MODELS_DISTRIBUTED=1 makes every process call jax.distributed.initialize() and
# train one data-parallel run together (only process 0 writes logs and reports). On SLURM:
#   srun --ntasks=N env GEN_MODELS_DISTRIBUTED=1 ./launch.sh dcgan ...
# On Cloud TPU pods: GEN_MODELS_DISTRIBUTED=1 ./launch.sh dcgan ... on every worker. Elsewhere also
# set GEN_MODELS_COORDINATOR=host:port GEN_MODELS_NUM_PROCESSES=N GEN_MODELS_PROCESS_ID=i.
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY="$VENV/bin/python"

stamp() {  # what the current install was made from
  cat pyproject.toml
  echo "JAX_EXTRA=${JAX_EXTRA:-} PEERS=${PEERS:-}"
}

setup() {
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: $python is missing or older than 3.10; set PYTHON=/path/to/python3.10+" >&2
    exit 2
  fi
  [ -x "$PY" ] || "$python" -m venv "$VENV"
  local extras="dev"
  [ -n "${JAX_EXTRA:-}" ] && extras="$extras,$JAX_EXTRA"
  [ -n "${PEERS:-}" ] && extras="$extras,peers"
  "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  # pip's own exit status decides; its harmless 'Location ... is ignored' warnings are dropped.
  set -o pipefail
  "$PY" -m pip install --quiet --disable-pip-version-check -e ".[$extras]" 2>&1 | { grep -v "^WARNING: Location" || true; }
  stamp > "$VENV/.gen_models_stamp"
  echo "setup done: $("$PY" -c 'import jax, flax, optax; print(f"jax {jax.__version__}, flax {flax.__version__}, optax {optax.__version__}, devices {jax.devices()}")')"
  echo "allocator: $("$PY" -c 'from gen_models import runtime as r; a = r.choose_allocator(); print(a + " (GEN_MODELS_ALLOCATOR=auto picks the first available of " + ", ".join(r.ALLOCATOR_ORDER) + "; the entry points re-exec themselves with it)")')"
}

needs_setup() {
  [ ! -x "$PY" ] || [ ! -f "$VENV/.gen_models_stamp" ] || ! diff -q <(stamp) "$VENV/.gen_models_stamp" >/dev/null
}

case "${1:-}" in
  setup)
    setup
    ;;
  test)
    shift
    needs_setup && setup
    # Test files run in parallel processes (pytest-xdist), whole files per process so that module
    # fixtures are built once, in the order tests/conftest.py gives them (longest first);
    # TEST_WORKERS=0 runs everything in this process.
    workers="${TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}"
    exec "$PY" -m pytest tests -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
    ;;
  format)
    shift
    needs_setup && setup
    exec "$PY" -m pyink gen_models experiments tests "$@"
    ;;
  ""|-h|--help)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    echo
    needs_setup && echo "(not set up yet: run ./launch.sh setup)" || "$PY" -m experiments.run --list
    ;;
  *)
    exp="$1"
    shift
    needs_setup && setup
    # --workers auto: one worker per core for the conv GANs on a CPU, one per GPU (docs/speed.md);
    # a --workers N among the flags wins
    exec "$PY" -m experiments.run --exp="$exp" --workers auto "$@"
    ;;
esac
