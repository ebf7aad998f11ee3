"""Shared test helpers: train a config into a directory, run a command as a user would, write
small IDX datasets, and fingerprint parameters."""

import dataclasses
import fcntl
import gzip
import json
import hashlib
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np

from experiments import gaussian1d
from experiments import registry
from experiments import runner
from gen_models import config as config_lib
from gen_models import families
from gen_models import gan_losses
from gen_models import metric_names as names
from gen_models import rundir
from gen_models import steps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
# A small GAN that compiles in seconds, with enough steps (one per dispatch) to be interrupted.
# One step per dispatch, frequent logs and checkpoints, no evaluations during training.
_INTERRUPTIBLE = [
    "--set",
    "train.scan_chunk=1",
    "--set",
    "train.log_every=10",
    "--set",
    "eval.every=0",
    "--set",
    "eval.num_samples=2000",
    "--set",
    "ckpt.every=500",
    "--set",
    "ckpt.keep=20",
]
GAN = ["--exp=gaussian1d", "--set", "train.steps=8000", *_INTERRUPTIBLE]


def env() -> dict:
  """The environment of a command run in a subprocess: CPU, wandb off, unbuffered output."""
  return dict(os.environ, WANDB_MODE="disabled", JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")


def run_cmd(args, out, *extra) -> list:
  """The argv of `python -m experiments.run ARGS` with one seed into `out`, wandb disabled."""
  return [
      sys.executable,
      "-m",
      "experiments.run",
      *args,
      "--seeds",
      "1",
      "--out",
      str(out),
      "--wandb",
      "disabled",
      *extra,
  ]


def write_idx(path, array, magic_type=0x08, truncate=0):
  """An IDX .gz file (the MNIST format) holding `array`, optionally cut short."""
  header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
      int(d).to_bytes(4, "big") for d in array.shape
  )
  raw = header + array.astype(np.uint8).tobytes()
  with gzip.open(path, "wb") as f:
    f.write(raw[: len(raw) - truncate])


def write_idx_dataset(directory, n_train=12, n_test=5, seed=0):
  """A directory of the four IDX files of an MNIST-like dataset with random images."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  for split, n in (("train", n_train), ("t10k", n_test)):
    write_idx(
        os.path.join(directory, f"{split}-images-idx3-ubyte.gz"), rng.integers(0, 256, (n, 28, 28))
    )
    write_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"), rng.integers(0, 10, n))


def run_one(exp, arm, cfg, run_dir, mode, *, resume, quiet=False, describe=False):
  """Trains one (arm, seed) into run_dir with the real runner. Returns (final state or None,
  result)."""
  return runner.run_group(exp, [(arm, cfg, run_dir, resume)], mode, quiet=quiet, describe=describe)[
      0
  ]


def train(cfg, run_dir, resume=False, exp_name="gaussian1d", arm="base"):
  """Trains cfg with the real runner (wandb disabled). Returns (state, result)."""
  return run_one(
      registry.get(exp_name), arm, cfg, str(run_dir), "disabled", resume=resume, quiet=True
  )


def fingerprint(tree) -> str:
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(tree)):
    a = np.asarray(leaf)
    h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
  return h.hexdigest()


# XLA's backend (LLVM) optimisation level for the programs a test compiles only to compare their
# values with a tolerance or to read a structure (a model rewrite against the layers as written, a
# step against a plainly written reference step): the same HLO, generated code that differs only in
# rounding. Level 0 compiles the Atienza DCGAN's step in 3.8 s where level 1 takes 5.2 and the
# default (3) 5.6, and runs it in about the same time; the layers as written (XLA's convolutions,
# differentiated) run slower at level 0 than they compile faster and take level 1
# (docs/testing.md). Tests about bits (determinism, resume, vmapped runs, the compiled init),
# training runs and every command keep the default.
def jit_for_values(fn, level=0, **jit_kwargs):
  """jax.jit(fn) at XLA backend optimisation `level`: for comparisons within a tolerance, never of
  bits."""
  return jax.jit(fn, compiler_options={"xla_backend_optimization_level": level}, **jit_kwargs)


def assert_bit_identical(a, b):
  la, lb = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def leaves_close(a, b, rtol=1e-4, floor=1e-6):
  """Every leaf of a close to b's, relative to that leaf's own largest magnitude (plus a tiny
  absolute floor for leaves that are zero in theory and rounding noise in practice)."""
  la, lb = jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))
  assert len(la) == len(lb)
  for i, (x, y) in enumerate(zip(la, lb)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    assert x.shape == y.shape, (i, x.shape, y.shape)
    err = np.max(np.abs(x - y)) if x.size else 0.0
    assert err <= rtol * (np.max(np.abs(y)) if y.size else 0.0) + floor, (i, err, np.max(np.abs(y)))


# The sweep two workers share in test_workers.py and test_slurm.py.
WORKER_SWEEP = [
    "--exp=gaussian1d_loss",
    "--seeds",
    "2",
    "--set",
    "train.vmap_runs=false",  # one run per claim (a vectorised group is claimed whole)
    *_INTERRUPTIBLE,
    "--wandb",
    "disabled",
    "--quiet",
]
WORKER_RUNS = {"ns/seed0", "ns/seed1", "minimax/seed0", "minimax/seed1"}


def worker_cmd(out, steps, *extra):
  """One worker's command for the shared 2-seed gaussian1d_loss sweep (workers, SLURM tests)."""
  return [
      sys.executable,
      "-m",
      "experiments.run",
      *WORKER_SWEEP,
      "--set",
      f"train.steps={steps}",
      "--out",
      str(out),
      *extra,
  ]


def per_seed(out):
  """{(arm, metric): per-seed values} of a sweep's summary.json."""
  summary = json.loads((out / "gaussian1d_loss" / "summary.json").read_text())
  return {
      (a["name"], m): v["per_seed"]
      for a in summary["arms"]
      for m, v in a["metrics"].items()
      if m.startswith(("w1", "ks", "d_loss", "g_loss"))
  }


def lone_sweep(steps=3000) -> dict:
  """per_seed() of the workers' sweep trained by one process alone: trained once per test run
  (in its shared directory, under a lock) for test_workers.py and test_slurm.py."""
  shared = os.environ["GEN_MODELS_TEST_DIR"]
  path = os.path.join(shared, f"lone_sweep_{steps}.json")
  with open(path + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not os.path.exists(path):
      out = pathlib.Path(shared) / f"lone_sweep_{steps}"
      done = subprocess.run(
          worker_cmd(out, steps), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600
      )
      assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
      assert sorted(trained_runs(done.stdout)) == sorted(WORKER_RUNS)
      values = [[arm, metric, v] for (arm, metric), v in per_seed(out).items()]
      rundir.write_atomic(path, json.dumps(values))
  with open(path) as f:
    return {(arm, metric): v for arm, metric, v in json.load(f)}


def trained_runs(text):
  """The runs a worker's output says it trained ("[k] arm/seedN: ...")."""
  return [
      line.split("] ", 1)[1].split(":", 1)[0]
      for line in text.splitlines()
      if line.startswith("[") and "/seed" in line.split(":", 1)[0] and "] " in line
  ]


# --- tiny configs: a few steps on small data, cheap evaluation ----------------------------


def tiny_1d(**overrides):
  """The seed's 1-D GAN protocol at a few steps, with cheap evaluation."""

  cfg = dataclasses.replace(gaussian1d.BASE, seeds=1)
  base = {
      "train.steps": 60,
      "train.scan_chunk": 10,
      "train.log_every": 10,
      "eval.every": 30,
      "eval.num_samples": 2000,
      "eval.kl_samples": 500,
      "ckpt.every": 30,
  }
  base.update(overrides)
  return families.validate(config_lib.apply_overrides(cfg, base))


def tiny_image(exp="dcgan", **overrides):
  """An image GAN experiment's config on a small synthetic dataset, a few steps."""

  cfg = dataclasses.replace(registry.get(exp).config, seeds=1)
  base = {
      "data.name": "synthetic",
      "data.num_train": 256,
      "train.batch_size": 8,
      "train.steps": 6,
      "train.log_every": 2,
      "eval.every": 3,
      "eval.num_samples": 200,
      "ckpt.every": 2,
  }
  base.update(overrides)
  return families.validate(config_lib.apply_overrides(cfg, base))


def tiny_ae(exp="ae_dense", **overrides):
  """An autoencoder experiment's config on a small synthetic dataset, a few steps."""

  cfg = dataclasses.replace(registry.get(exp).config, seeds=1)
  base = {
      "data.name": "synthetic",
      "data.num_train": 256,
      "train.batch_size": 16,
      "train.steps": 8,
      "train.scan_chunk": 1,
      "train.log_every": 4,
      "eval.every": 4,
      "ckpt.every": 4,
  }
  if registry.get(exp).config.eval.num_samples:
    base["eval.num_samples"] = 200
  base.update(overrides)
  return families.validate(config_lib.apply_overrides(cfg, base))


def without_timings(row: dict) -> dict:
  """A log row without its wall-clock columns (what must be bit-identical across runs)."""
  return {k: v for k, v in row.items() if k not in names.TIMINGS}


def gan_step(state, batch, key, hp):
  """The seeds' step: BCE, ns or minimax by hp["minimax"]."""
  return steps.gan_step_for(gan_losses.get("ns"))(state, batch, key, hp)
