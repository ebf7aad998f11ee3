"""experiments/accelerator_check.sh at toy size on the CPU, where wandb, tensorflow-datasets, orbax,
matplotlib and pillow cannot be imported (a bare accelerator box has only jax, flax and optax)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = """
import sys
for m in ("wandb", "tensorflow_datasets", "orbax", "orbax.checkpoint", "matplotlib", "PIL",
          "array_record", "tensorflow"):
  sys.modules[m] = None  # any import of them fails
from experiments import accelerator_check
sys.exit(accelerator_check.main(["--toy", "--json"]))
"""


@pytest.mark.slow
def test_the_accelerator_check_runs_at_toy_size_without_the_other_dependencies(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", GEN_MODELS_CACHE=str(tmp_path / "cache"))
  p = subprocess.run(
      [sys.executable, "-c", BLOCK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
  )
  assert p.returncode == 0, p.stderr[-3000:]
  report = json.loads(p.stdout)
  assert [t["runs"] for t in report["train"]] == [1, 2]
  assert all(t["img_per_s"] > 0 for t in report["train"])
  assert [(e["runs"], e["samples"]) for e in report["evaluation"]] == [(2, 200), (2, 400)]
  look = report["first_look"]
  assert look["runs"] == 33 and look["steps"] == 4000 and look["evaluations_per_run"] == 9
  assert look["samples"].count(10000) == 3 and look["samples"].count(2000) == 6
  assert look["total_s"] == pytest.approx(look["train_s"] + look["eval_s"])


def test_the_shell_script_is_executable_and_runs_the_module():
  path = os.path.join(ROOT, "experiments", "accelerator_check.sh")
  assert os.access(path, os.X_OK)
  p = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
  assert p.returncode == 0 and "accelerator_check" in p.stdout
