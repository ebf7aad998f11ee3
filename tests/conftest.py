"""Test settings: CPU, wandb off, tiny configs."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
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

import dataclasses  # pylint: disable=g-import-not-at-top

import pytest  # pylint: disable=g-import-not-at-top

from gen_models import config as config_lib  # pylint: disable=g-import-not-at-top
from gen_models import families  # pylint: disable=g-import-not-at-top


def tiny_1d(**overrides):
  """The seed's 1-D GAN protocol at a few steps, with cheap evaluation."""
  from experiments import gaussian1d  # pylint: disable=g-import-not-at-top

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


@pytest.fixture
def cfg_1d():
  return tiny_1d()


def tiny_image(exp="dcgan", **overrides):
  """An image GAN experiment's config on a small synthetic dataset, a few steps."""
  from experiments import registry  # pylint: disable=g-import-not-at-top

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
  from experiments import registry  # pylint: disable=g-import-not-at-top

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
