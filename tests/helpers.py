"""Shared test helpers: train a config into a directory and fingerprint parameters."""

import hashlib
import os

import jax
import numpy as np

from experiments import registry
from experiments import runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository


def train(cfg, run_dir, resume=False, exp_name="gaussian1d", arm="base"):
  """Trains cfg with the real runner (wandb disabled). Returns (state, result)."""
  return runner.run_one(registry.get(exp_name), arm, cfg, str(run_dir), "disabled",
                        resume=resume, quiet=True)


def fingerprint(tree) -> str:
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(tree)):
    a = np.asarray(leaf)
    h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
  return h.hexdigest()


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
