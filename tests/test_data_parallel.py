"""Data parallelism with jax.sharding, on 4 forced host CPU devices in a subprocess: the batch is
split over devices, parameters stay replicated, and the step computes what one device computes."""

import json
import os
import subprocess
import sys

import pytest

import numpy as np

from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_four_devices_compute_the_one_device_step(tmp_path):
  env = dict(
      os.environ,
      WANDB_MODE="disabled",
      JAX_PLATFORMS="cpu",
      XLA_FLAGS=(
          os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
      ).strip(),
  )
  out = subprocess.run(
      [sys.executable, "-m", "tests.dp_check", str(tmp_path)],
      capture_output=True,
      text=True,
      env=env,
      cwd=ROOT,
      timeout=600,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  res = json.loads((tmp_path / "dp.json").read_text())
  assert res["all_reduce"]  # gradients are reduced across devices
  assert "PartitionSpec()" in res["param_sharding"] or "P()" in res["param_sharding"]  # replicated
  for k, v in res["one"]["metrics"].items():
    np.testing.assert_allclose(res["four"]["metrics"][k], v, rtol=1e-5, atol=1e-6)
  saved = np.load(tmp_path / "dp.npz")
  arrays = lambda prefix: [
      saved[k] for k in sorted(saved.files, key=_index) if k.startswith(prefix)
  ]
  assert arrays("mu_one_") and arrays("run_one_")
  helpers.leaves_close(arrays("mu_four_"), arrays("mu_one_"), rtol=1e-4, floor=1e-8)
  assert res["run_status"] == "finished"
  # 4 training steps (BatchNorm, dropout, Adam) on 4 devices end where one device ends. The
  # absolute floor is for the biases right before BatchNorm: their gradient is zero in theory,
  # rounding noise in practice, and Adam turns noise into steps of up to the learning rate.
  helpers.leaves_close(arrays("run_four_"), arrays("run_one_"), rtol=1e-4, floor=1e-4)


def _index(name):
  return int(name.rsplit("_", 1)[1])
