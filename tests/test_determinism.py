"""Determinism: same seed -> bit-identical parameters (in one process and across processes);
the chunked lax.scan loop == the step-by-step loop; resume == uninterrupted; one trace per run."""

import json
import logging
import os
import subprocess
import sys

import jax
import pytest

from experiments import registry
from gen_models import config as config_lib
from gen_models import loop
from tests import helpers
from tests.helpers import tiny_1d

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_same_seed_same_parameters_in_one_process(tmp_path):
  cfg = tiny_1d()
  a, _ = helpers.train(cfg, tmp_path / "a")
  b, _ = helpers.train(cfg, tmp_path / "b")
  helpers.assert_bit_identical(a, b)
  c, _ = helpers.train(tiny_1d(seed=1), tmp_path / "c")
  assert helpers.fingerprint(c) != helpers.fingerprint(a)


@pytest.mark.slow
def test_same_seed_same_parameters_across_processes(tmp_path):
  cfg = tiny_1d()
  here, _ = helpers.train(cfg, tmp_path / "here")
  script = (
      "import sys; sys.path.insert(0, %r)\n"
      "from tests.helpers import tiny_1d\nfrom tests import helpers\n"
      "s, _ = helpers.train(tiny_1d(), %r)\nprint('FP', helpers.fingerprint(s))\n"
      % (ROOT, str(tmp_path / "there"))
  )
  env = dict(os.environ, WANDB_MODE="disabled", JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
  )
  assert out.returncode == 0, out.stderr[-2000:]
  fp = [l for l in out.stdout.splitlines() if l.startswith("FP ")][0].split()[1]
  assert fp == helpers.fingerprint(here)


@pytest.mark.slow
def test_scan_chunks_equal_single_steps(tmp_path):
  fused, _ = helpers.train(tiny_1d(**{"train.scan_chunk": 10}), tmp_path / "fused")
  single, _ = helpers.train(tiny_1d(**{"train.scan_chunk": 1}), tmp_path / "single")
  helpers.assert_bit_identical(fused, single)


def _rows(run_dir):
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    rows = [json.loads(l) for l in f]
  return [helpers.without_timings(r) for r in rows]


@pytest.mark.slow
def test_resume_from_checkpoint_is_bit_identical_and_compiles_the_step_once(tmp_path, caplog):
  full, _ = helpers.train(tiny_1d(), tmp_path / "full")
  # Stop at step 30 (a checkpoint), then continue the same directory to step 60.
  helpers.train(tiny_1d(**{"train.steps": 30}), tmp_path / "split")
  # A resumed run starts in a new process, with nothing compiled. Its restored state must be
  # placed like a fresh one, or the first chunk's outputs (placed by jit) change the program's
  # signature and the step compiles a second time.
  jax.clear_caches()
  caplog.set_level(logging.DEBUG, logger="jax._src.dispatch")
  resumed, result = helpers.train(tiny_1d(), tmp_path / "split", resume=True)
  assert result["resumed_from"] == 30
  helpers.assert_bit_identical(full, resumed)
  assert _rows(tmp_path / "full") == _rows(tmp_path / "split")  # each step logged once
  compiled = [
      m for m in caplog.messages if m.startswith("Finished XLA compilation of jit(run_chunk)")
  ]
  assert len(compiled) == 1, compiled


@pytest.mark.slow
def test_step_is_traced_once_per_sweep(tmp_path, monkeypatch):
  traces, chunk = [], loop._chunk  # pylint: disable=protected-access
  # run_chunk's body calls loop._chunk only while jit traces it
  monkeypatch.setattr(loop, "_chunk", lambda *a, **k: traces.append(1) or chunk(*a, **k))
  loop.run_chunk.clear_cache()
  helpers.train(tiny_1d(**{"train.scan_chunk": 5}), tmp_path / "a")
  assert len(traces) == 1  # 12 chunks, one trace
  # Another arm with other traced hyperparameters (targets, loss, learning rates, seed):
  # the same compiled program, no new trace.
  helpers.train(
      tiny_1d(**{
          "train.scan_chunk": 5,
          "loss.real_target": 1.0,
          "loss.fake_target": 0.0,
          "loss.generator": "minimax",
          "optim.d_lr": 3e-3,
          "seed": 4,
      }),
      tmp_path / "b",
  )
  assert len(traces) == 1


def test_auto_scan_chunk_depends_on_the_backend():

  want_cpu = {
      "gaussian1d": 30,
      "ae_dense": 50,
      "dcgan": 1,
      "dcgan_atienza": 1,
      "mlp_gan": 1,
      "ae_conv": 1,
      "vae": 1,
  }
  for exp, n in want_cpu.items():
    cfg = registry.get(exp).config
    assert cfg.train.scan_chunk == 0  # the experiments leave it to the backend
    assert loop.scan_chunk(cfg, "cpu") == n, exp
    assert loop.scan_chunk(cfg, "gpu") == loop.scan_chunk(cfg, "tpu") == 50, exp
  explicit = config_lib.set_key(registry.get("dcgan").config, "train.scan_chunk", 7)
  assert loop.scan_chunk(explicit, "gpu") == 7 and loop.scan_chunk(explicit, "cpu") == 7
