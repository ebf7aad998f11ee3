"""What every GAN loss shares: the GanLoss record, the registry it joins, weighted means.

Each loss module imports this module (never the package), so the package can import the loss
modules at its top and export the full registry.
"""

import dataclasses
from typing import Callable, Optional

import jax.numpy as jnp
import numpy as np

from gen_models import config as config_lib


def wmean(v, w):
  """Weighted mean over the batch of per-example values (B,) or of (B, ...) means."""
  v = v.reshape(v.shape[0], -1).mean(axis=1) if v.ndim > 1 else v
  return jnp.sum(v * w) / jnp.sum(w)


# compared and hashed by identity: one object per loss
@dataclasses.dataclass(frozen=True, eq=False)
class GanLoss:
  name: str
  d_loss: Callable  # (logits_real, logits_fake, hp, w) -> D's loss
  g_loss: Callable  # (logits_fake, hp, w) -> G's loss
  # (logits_real, logits_fake, w) -> {name: value}: what D's outputs mean for this loss
  metrics: Callable
  # Traced step inputs: {hp name: (config keys, function of their values)}. Arms that differ only in
  # these share one compiled program (and can train as one vmapped program).
  hparams: dict = dataclasses.field(default_factory=dict)
  # Optional penalty on D: (d_fn, real, fake, key, hp, w) -> (value, {metric: value}), where
  # d_fn(inputs) is D's logits with the parameters being differentiated.
  penalty: Optional[Callable] = None
  n_critic: int = 1  # D updates per G update when loss.n_critic = 0
  smoothing: bool = False  # whether loss.real_target / fake_target / gen_target mean something
  # Per-run figure panels of D's outputs: (title, [train/ metric keys]).
  curves: tuple = ()
  # Report columns of D's metrics: (key, label).
  columns: tuple = ()


LOSSES: dict[str, GanLoss] = {}


def register(loss: GanLoss, *names: str) -> GanLoss:
  """Registers `loss` under its name and any aliases (loss.generator values)."""
  for name in names or (loss.name,):
    if name in LOSSES:
      raise ValueError(f"GAN loss {name!r} is registered twice")
    LOSSES[name] = loss
  return loss


def get(name: str) -> GanLoss:
  if name not in LOSSES:
    raise ValueError(f"unknown loss.generator {name!r}; registered: {', '.join(LOSSES)}")
  return LOSSES[name]


def hparams(table: dict, cfg) -> dict:
  """The traced inputs of a table {hp name: (config keys, function)} for cfg, as float32 scalars."""
  return {
      name: np.float32(fn(*(config_lib.get(cfg, k) for k in keys)))
      for name, (keys, fn) in table.items()
  }


def traced_keys(table: dict) -> tuple:
  return tuple(k for keys, _ in table.values() for k in keys)
