"""Test settings: CPU, wandb off, tiny configs."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "GEN_MODELS_CACHE" not in os.environ:  # the classifier cache of tests lives in a temp dir
  import tempfile  # pylint: disable=g-import-not-at-top

  os.environ["GEN_MODELS_CACHE"] = tempfile.mkdtemp(prefix="gen_models_test_cache_")

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
