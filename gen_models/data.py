"""Datasets as arrays held once in device memory, and mini-batch sampling inside jit.

Sampling is a pure function of (data, key, step), so the loop needs no host input pipeline and
a resumed run draws exactly the batches an uninterrupted run would have drawn.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class BatchSpec:
  """Everything about a batch that fixes shapes (static under jit)."""
  batch_size: int
  num_examples: int
  sampling: str = "random"  # random | sequential
  latent_dim: int = 0  # 0: no latent noise in the batch (autoencoders)
  noise: str = "uniform"

  @property
  def padded_size(self) -> int:
    """Largest batch: the seed's last sequential minibatch takes the remainder (333/333/334)."""
    if self.sampling == "sequential":
      return self.batch_size + self.num_examples % self.batch_size
    return self.batch_size

  @property
  def steps_per_epoch(self) -> int:
    return max(1, self.num_examples // self.batch_size)


def batch_spec(cfg, num_examples: int, with_latent: bool = True) -> BatchSpec:
  return BatchSpec(cfg.train.batch_size, num_examples, cfg.data.sampling,
                   cfg.model.latent_dim if with_latent else 0, cfg.model.noise)


def sample_latent(key, shape, noise: str):
  if noise == "uniform":
    return jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
  return jax.random.normal(key, shape, jnp.float32)


def sample_batch(spec: BatchSpec, data: dict, key, step):
  """Returns {"x", "w", ["z"], ["y"]} for `step`. `w` weights the rows (all ones except padding)."""
  key_x, key_z = jax.random.split(key)
  size = spec.padded_size
  if spec.sampling == "sequential":
    # The seed: the fixed real sample cut into n // bs consecutive minibatches, the last one
    # taking the remainder; padded to one static size with zero weights.
    nb = spec.steps_per_epoch
    i = step % nb
    start = i * spec.batch_size
    rows = jnp.where(i == nb - 1, spec.num_examples - (nb - 1) * spec.batch_size, spec.batch_size)
    take = lambda a: jax.lax.dynamic_slice_in_dim(a, start, size, axis=0)
    w = (jnp.arange(size) < rows).astype(jnp.float32)
  else:
    idx = jax.random.randint(key_x, (size,), 0, spec.num_examples)
    take = lambda a: jnp.take(a, idx, axis=0)
    w = jnp.ones((size,), jnp.float32)
  batch = {"x": take(data["x"]), "w": w}
  if "y" in data:
    batch["y"] = take(data["y"])
  if spec.latent_dim:
    batch["z"] = sample_latent(key_z, (size, spec.latent_dim), spec.noise)
  return batch


def gaussian1d(seed: int, num: int) -> np.ndarray:
  """The seed's real data: `num` draws of N(0, 1), shape (num, 1), fixed by `seed`."""
  key = jax.random.fold_in(jax.random.key(seed), 0xDA7A)
  return np.asarray(jax.random.normal(key, (num, 1), jnp.float32))


def load(cfg) -> dict:
  """Loads the dataset named by cfg.data as host arrays: {"train": {"x", ["y"]}, ["test": ...]}."""
  name = cfg.data.name
  if name == "gaussian1d":
    return {"train": {"x": gaussian1d(cfg.seed, cfg.data.num_real)}}
  from gen_models import images  # pylint: disable=g-import-not-at-top
  return images.load(cfg)


class DataError(RuntimeError):
  """The dataset cannot be found or read; the message lists the ways to get it."""
