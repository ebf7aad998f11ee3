"""Autoencoders of the seed notes (dense, seed 001; convolutional, seed 000) and a convolutional
VAE. Inputs and outputs are (B, 28, 28, 1) images in [0, 1]; every model returns a dict with
"logits" (pre-sigmoid reconstruction) and "z" (the code), plus "mean" / "logvar" for the VAE.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_models.models import initializers
from gen_models.models import registry
from gen_models.models.registry import dtype as _dtype

glorot = initializers.glorot_uniform  # Keras' default, which the seeds use
lecun = initializers.lecun_normal  # flax's default, which the VAE (not a seed) keeps


class DenseAE(nn.Module):
  """Seed 001: 784 -> Dense(encoding_dim, relu) -> Dense(784, sigmoid)."""

  latent_dim: int = 32
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    z = nn.relu(
        nn.Dense(self.latent_dim, kernel_init=glorot, dtype=self.dtype)(x.reshape(x.shape[0], -1))
    )
    logits = nn.Dense(784, kernel_init=glorot, dtype=self.dtype)(z).reshape(-1, 28, 28, 1)
    return {"logits": logits.astype(jnp.float32), "z": z}


def _maxpool_same(x):
  """Keras MaxPooling2D(2, padding='same'): pads odd sizes at the end."""
  pad_h, pad_w = x.shape[1] % 2, x.shape[2] % 2
  if pad_h or pad_w:
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=-jnp.inf)
  return nn.max_pool(x, (2, 2), (2, 2))


def _up(x):
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ConvAE(nn.Module):
  """Seed 000: Conv16 3x3 relu, MaxPool2, Conv8 relu, MaxPool2, Conv8 s2 relu (code 4x4x8) |
  Conv8 relu, Up2, Conv8 relu, Up2, Conv16 3x3 *valid* relu, Up2, Conv1 3x3 sigmoid.
  The one valid conv turns 16x16 into 14x14, which is what makes the decoder end at 28x28."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    conv = lambda f, s=1, pad="SAME": nn.Conv(
        f, (3, 3), strides=(s, s), padding=pad, kernel_init=glorot, dtype=self.dtype
    )
    h = _maxpool_same(nn.relu(conv(16)(x)))  # 14x14
    h = _maxpool_same(nn.relu(conv(8)(h)))  # 7x7
    z = nn.relu(conv(8, 2)(h))  # 4x4x8
    h = _up(nn.relu(conv(8)(z)))  # 8x8
    h = _up(nn.relu(conv(8)(h)))  # 16x16
    h = _up(nn.relu(conv(16, pad="VALID")(h)))  # 14x14 -> 28x28
    return {"logits": conv(1)(h).astype(jnp.float32), "z": z.reshape(z.shape[0], -1)}


class VAE(nn.Module):
  """Convolutional VAE: Conv32 s2 -> Conv64 s2 -> Dense(2 * latent) (mean, log-variance) |
  z = mean + exp(logvar / 2) * eps | Dense 7*7*64 -> ConvT 32 s2 -> ConvT 1 s2 (logits)."""

  latent_dim: int = 16
  dtype: Any = jnp.float32

  def setup(self):
    self.enc_conv0 = nn.Conv(32, (3, 3), strides=(2, 2), kernel_init=lecun, dtype=self.dtype)
    self.enc_conv1 = nn.Conv(64, (3, 3), strides=(2, 2), kernel_init=lecun, dtype=self.dtype)
    self.enc_out = nn.Dense(2 * self.latent_dim, kernel_init=lecun, dtype=self.dtype)
    self.dec_in = nn.Dense(7 * 7 * 64, kernel_init=lecun, dtype=self.dtype)
    self.dec_conv0 = nn.ConvTranspose(
        32, (3, 3), strides=(2, 2), kernel_init=lecun, dtype=self.dtype
    )
    self.dec_conv1 = nn.ConvTranspose(
        1, (3, 3), strides=(2, 2), kernel_init=lecun, dtype=self.dtype
    )

  def encode(self, x):
    h = nn.relu(self.enc_conv1(nn.relu(self.enc_conv0(x))))
    stats = self.enc_out(h.reshape(h.shape[0], -1)).astype(jnp.float32)
    mean, logvar = jnp.split(stats, 2, axis=-1)
    return mean, logvar

  def decode(self, z):
    h = nn.relu(self.dec_in(z)).reshape(-1, 7, 7, 64)
    return self.dec_conv1(nn.relu(self.dec_conv0(h))).astype(jnp.float32)

  def __call__(self, x, train: bool = True):
    mean, logvar = self.encode(x)
    if train:
      z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(self.make_rng("noise"), mean.shape)
    else:
      z = mean
    return {"logits": self.decode(z), "z": z, "mean": mean, "logvar": logvar}

  def generate(self, z):
    """Decoder means for latent codes z: images in [0, 1]."""
    return nn.sigmoid(self.decode(z))


# cpu_chunk 50: dense steps gain from lax.scan on XLA CPU; conv nets run slower inside it (1).
registry.register("ae_dense", "autoencoder", "sigmoid", cpu_chunk=50)(
    lambda m, data_shape: DenseAE(m.latent_dim, _dtype(m.dtype))
)
registry.register("ae_conv", "autoencoder", "sigmoid")(
    lambda m, data_shape: ConvAE(_dtype(m.dtype))
)
registry.register("vae", "vae", "sigmoid")(lambda m, data_shape: VAE(m.latent_dim, _dtype(m.dtype)))
