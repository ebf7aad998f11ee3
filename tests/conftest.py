"""Test settings: CPU, wandb off, the shared caches; the tiny configs live in tests/helpers.py."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# matplotlib figures are built but not rendered (gen_models.plots.rendering), except in the tests
# about figures, which take the `figures` fixture
os.environ.setdefault("GEN_MODELS_FIGURES", "0")
# numpy's and scipy's OpenBLAS in one thread (before numpy is imported; inherited by the commands
# tests start): the test processes share the cores, and OpenBLAS's idle threads spin on them
# (tests/test_sequential.py: 44.5 -> 24.2 CPU-s at the same wall time; docs/testing.md).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# One temp dir per test run, shared by its xdist workers and every process they start: the
# classifier cache (feature extractors trained on the synthetic data once per run, not per worker)
# and XLA's persistent compilation cache (a tiny config's programs compiled once per run, not once
# per subprocess; a loaded executable computes the same bits as a fresh compile).
if "GEN_MODELS_TEST_DIR" not in os.environ:
  import tempfile  # pylint: disable=g-import-not-at-top

  run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
  shared = os.path.join(tempfile.gettempdir(), f"gen_models_test_{run_id}") if run_id else ""
  if shared:
    os.makedirs(shared, exist_ok=True)
  os.environ["GEN_MODELS_TEST_DIR"] = shared or tempfile.mkdtemp(prefix="gen_models_test_")
_shared = os.environ["GEN_MODELS_TEST_DIR"]
os.environ.setdefault("GEN_MODELS_CACHE", os.path.join(_shared, "cache"))
if os.environ.get("GEN_MODELS_TEST_XLA_CACHE", "1") != "0":
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(_shared, "xla"))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

from gen_models import runtime  # pylint: disable=g-import-not-at-top

runtime.configure()  # the XLA CPU flags the entry points use, set before any test imports jax

import pytest  # pylint: disable=g-import-not-at-top

from tests.helpers import tiny_1d  # pylint: disable=g-import-not-at-top

# The files that take longest (10 s or more), longest first: ./launch.sh test hands whole files to
# its processes in collection order (--dist loadfile --no-loadscope-reorder), and longest-first
# leaves short files for the end, so the processes finish together. xdist's own order (most tests
# first) left one-test files of ~40 s for last. From one run's per-file times (docs/testing.md);
# every other file follows, as found.
LONGEST_FIRST = (
    "test_gan_losses.py",
    "system/test_kill_and_resume.py",
    "test_dcgan.py",
    "test_metrics_device.py",
    "test_multihost.py",
    "test_workers.py",
    "test_metrics_fid.py",
    "test_steps.py",
    "test_image_gan.py",
    "system/test_fault_injection.py",
    "system/test_hostile_use.py",
    "test_vmap.py",
    "system/test_hostile_results.py",
    "system/test_damaged_state.py",
    "test_autoencoders.py",
    "test_cost.py",
    "test_accelerator_check.py",
    "test_data_parallel.py",
    "test_models.py",
    "test_sequential.py",
    "test_cli.py",
    "test_slurm.py",
    "test_determinism.py",
    "test_stats.py",
)


def pytest_collection_modifyitems(items):
  here = os.path.dirname(os.path.abspath(__file__))
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  where = lambda item: os.path.relpath(str(item.path), here).replace(os.sep, "/")
  items.sort(key=lambda item: rank.get(where(item), len(rank)))  # stable: a file keeps its order


@pytest.fixture
def figures(monkeypatch):
  """Figures rendered into their PNGs, in this process and the commands it starts."""
  monkeypatch.setenv("GEN_MODELS_FIGURES", "1")


@pytest.fixture
def cfg_1d():
  return tiny_1d()
