"""Fully connected GANs: the 1-D Gaussian GAN (seed 002/003) and the MLP GAN on images (seed
004)."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from gen_models.models import initializers
from gen_models.models import registry
from gen_models.models.registry import dtype as _dtype

# Keras' default kernel initialiser (the Keras seeds use it); biases start at zero in both.
glorot = initializers.glorot_uniform
torch_linear = initializers.torch_linear  # PyTorch's nn.Linear default kernel init


class Generator1D(nn.Module):
  """z (16, U(-1,1)) -> Dense 32 relu -> Dense 1 linear."""

  hidden: int = 32
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    h = nn.relu(nn.Dense(self.hidden, kernel_init=glorot, dtype=self.dtype)(z))
    return nn.Dense(1, kernel_init=glorot, dtype=self.dtype)(h).astype(jnp.float32)


class Discriminator1D(nn.Module):
  """x (1) -> Dense 32 relu -> Dense 1; returns the logit (the seed's sigmoid lives in the loss)."""

  hidden: int = 32
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    h = nn.relu(nn.Dense(self.hidden, kernel_init=glorot, dtype=self.dtype)(x))
    return nn.Dense(1, kernel_init=glorot, dtype=self.dtype)(h).astype(jnp.float32)[:, 0]


class MLPGenerator(nn.Module):
  """Seed 004: 4 x [Linear, BatchNorm1d, ReLU] with widths h, 2h, 4h, 8h (h = 128), Linear 784,
  sigmoid."""

  hidden: int = 128
  out_shape: tuple = (28, 28, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    x = z
    for mult in (1, 2, 4, 8):
      x = nn.Dense(self.hidden * mult, kernel_init=torch_linear, dtype=self.dtype)(x)
      # PyTorch BatchNorm1d: momentum 0.1 (flax 0.9), eps 1e-5.
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype)(
          x
      )
      x = nn.relu(x)
    size = 1
    for s in self.out_shape:
      size *= s
    x = nn.Dense(size, kernel_init=torch_linear, dtype=self.dtype)(x)
    return nn.sigmoid(x.astype(jnp.float32)).reshape((z.shape[0],) + tuple(self.out_shape))


class MLPDiscriminator(nn.Module):
  """Seed 004: 3 x [Linear, LeakyReLU 0.2] with widths 4h, 2h, h (h = 128), then Linear 1
  (logit)."""

  hidden: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = x.reshape(x.shape[0], -1)
    for mult in (4, 2, 1):
      x = nn.leaky_relu(
          nn.Dense(self.hidden * mult, kernel_init=torch_linear, dtype=self.dtype)(x), 0.2
      )
    return nn.Dense(1, kernel_init=torch_linear, dtype=self.dtype)(x).astype(jnp.float32)[:, 0]


# cpu_chunk 30: the tiny 1-D step is ~300x faster fused 30 steps to a lax.scan on XLA CPU.
registry.register("mlp1d", "gan1d", cpu_chunk=30)(
    lambda m, data_shape: (
        Generator1D(m.hidden, _dtype(m.dtype)),
        Discriminator1D(m.hidden, _dtype(m.dtype)),
    )
)
registry.register("mlp_gan", "image_gan", "sigmoid")(
    lambda m, data_shape: (
        MLPGenerator(m.hidden, data_shape, _dtype(m.dtype)),
        MLPDiscriminator(m.hidden, _dtype(m.dtype)),
    )
)
