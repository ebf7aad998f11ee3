"""The three DCGANs of the seed notes, as Flax Linen modules. Discriminators return logits.

Keras defaults the seeds rely on, kept here: glorot-uniform kernels, zero biases, BatchNorm
momentum 0.99 / epsilon 1e-3 unless a seed sets momentum, LeakyReLU slope 0.3 where a seed calls
`LeakyReLU()` without one, TF 'same' padding (XLA's SAME is the same convention).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

glorot = nn.initializers.glorot_uniform()


def upsample2(x):
  """Keras UpSampling2D(): nearest neighbour x2."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _bn(train, momentum=0.99, dtype=jnp.float32):
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=1e-3, dtype=dtype)


def _conv(features, stride=1, dtype=jnp.float32):
  return nn.Conv(features, (5, 5), strides=(stride, stride), padding="SAME", kernel_init=glorot, dtype=dtype)


def _convT(features, stride=1, dtype=jnp.float32):
  return nn.ConvTranspose(features, (5, 5), strides=(stride, stride), padding="SAME",
                          kernel_init=glorot, dtype=dtype)


class Generator(nn.Module):
  """Seed 000: z(100) -> Dense 7*7*128 + LeakyReLU 0.2 -> BN -> 7x7x128 -> up x2 -> Conv 64 5x5
  -> BN -> LeakyReLU 0.2 -> up x2 -> Conv 1 5x5 -> tanh. Output in [-1, 1]."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    x = nn.leaky_relu(nn.Dense(7 * 7 * 128, kernel_init=glorot, dtype=self.dtype)(z), 0.2)
    x = _bn(train, dtype=self.dtype)(x).reshape(-1, 7, 7, 128)
    x = _conv(64, dtype=self.dtype)(upsample2(x))
    x = nn.leaky_relu(_bn(train, dtype=self.dtype)(x), 0.2)
    x = _conv(1, dtype=self.dtype)(upsample2(x))
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """Seed 000: Conv 64 5x5 s2 -> LeakyReLU 0.2 -> Dropout 0.2 -> Conv 128 5x5 s2 -> LeakyReLU 0.2
  -> Dropout 0.3 -> Flatten -> Dense 1."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.leaky_relu(_conv(64, 2, self.dtype)(x), 0.2)
    x = nn.Dropout(0.2, deterministic=not train)(x)
    x = nn.leaky_relu(_conv(128, 2, self.dtype)(x), 0.2)
    x = nn.Dropout(0.3, deterministic=not train)(x)
    x = nn.Dense(1, kernel_init=glorot, dtype=self.dtype)(x.reshape(x.shape[0], -1))
    return x.astype(jnp.float32)[:, 0]


class GeneratorTranspose(nn.Module):
  """Seed 001: z(32) -> Dense 7*7*64 -> BN(.9) -> LeakyReLU -> 7x7x64 -> Dropout 0.4 -> up x2 ->
  ConvT 32 5x5 -> BN(.9) -> LeakyReLU -> up x2 -> ConvT 16 5x5 -> BN(.9) -> LeakyReLU -> Conv 1 5x5
  -> sigmoid. Output in [0, 1]. (Keras' LeakyReLU() default slope is 0.3.)"""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    x = nn.Dense(7 * 7 * 64, kernel_init=glorot, dtype=self.dtype)(z)
    x = nn.leaky_relu(_bn(train, 0.9, self.dtype)(x), 0.3).reshape(-1, 7, 7, 64)
    x = nn.Dropout(0.4, deterministic=not train)(x)
    x = _convT(32, dtype=self.dtype)(upsample2(x))
    x = nn.leaky_relu(_bn(train, 0.9, self.dtype)(x), 0.3)
    x = _convT(16, dtype=self.dtype)(upsample2(x))
    x = nn.leaky_relu(_bn(train, 0.9, self.dtype)(x), 0.3)
    x = _conv(1, dtype=self.dtype)(x)
    return nn.sigmoid(x.astype(jnp.float32))


class DiscriminatorTranspose(nn.Module):
  """Seed 001: [Conv 5x5 s2 relu, Dropout 0.4] x (64, 128, 256) -> Flatten -> Dense 1."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    for features in (64, 128, 256):
      x = nn.relu(_conv(features, 2, self.dtype)(x))
      x = nn.Dropout(0.4, deterministic=not train)(x)
    x = nn.Dense(1, kernel_init=glorot, dtype=self.dtype)(x.reshape(x.shape[0], -1))
    return x.astype(jnp.float32)[:, 0]


class GeneratorAtienza(nn.Module):
  """Seed 002 (Atienza, Advanced Deep Learning with Keras): z(100) -> Dense 7*7*128 -> 7x7x128 ->
  [BN, ReLU, ConvT 5x5] with (filters, stride) (128, 2), (64, 2), (32, 1), (1, 1) -> sigmoid."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    x = nn.Dense(7 * 7 * 128, kernel_init=glorot, dtype=self.dtype)(z).reshape(-1, 7, 7, 128)
    for features, stride in ((128, 2), (64, 2), (32, 1), (1, 1)):
      x = nn.relu(_bn(train, dtype=self.dtype)(x))
      x = _convT(features, stride, self.dtype)(x)
    return nn.sigmoid(x.astype(jnp.float32))


class DiscriminatorAtienza(nn.Module):
  """Seed 002: [LeakyReLU 0.2, Conv 5x5] with (filters, stride) (32, 2), (64, 2), (128, 2), (256, 1)
  -> Flatten -> Dense 1. (The first LeakyReLU acts on the input image, as in the book.)"""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    for features, stride in ((32, 2), (64, 2), (128, 2), (256, 1)):
      x = _conv(features, stride, self.dtype)(nn.leaky_relu(x, 0.2))
    x = nn.Dense(1, kernel_init=glorot, dtype=self.dtype)(x.reshape(x.shape[0], -1))
    return x.astype(jnp.float32)[:, 0]


ARCHS = {
    "dcgan": lambda dtype: (Generator(dtype), Discriminator(dtype)),
    "dcgan_transpose": lambda dtype: (GeneratorTranspose(dtype), DiscriminatorTranspose(dtype)),
    "dcgan_atienza": lambda dtype: (GeneratorAtienza(dtype), DiscriminatorAtienza(dtype)),
}
