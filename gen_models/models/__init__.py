"""Model registry: config -> Flax modules.

Modules are cached per (hashable) model config, so every run with the same architecture gets
the *same* module objects; their `apply` methods then compare equal, train states of different
runs share one pytree structure, and the compiled step is reused across a sweep.
"""

import functools

import jax.numpy as jnp

from gen_models.models import mlp

GAN_ARCHS = ("mlp1d", "mlp_gan", "dcgan", "dcgan_transpose", "dcgan_atienza")
AE_ARCHS = ("ae_dense", "ae_conv", "vae")


def _dtype(name):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


@functools.lru_cache(maxsize=None)
def gan_modules(model_cfg, data_shape: tuple):
  """(generator, discriminator) for a GAN architecture."""
  arch, dtype = model_cfg.arch, _dtype(model_cfg.dtype)
  if arch == "mlp1d":
    return mlp.Generator1D(model_cfg.hidden, dtype), mlp.Discriminator1D(model_cfg.hidden, dtype)
  if arch == "mlp_gan":
    return (mlp.MLPGenerator(model_cfg.hidden, data_shape, dtype),
            mlp.MLPDiscriminator(model_cfg.hidden, dtype))
  from gen_models.models import dcgan  # pylint: disable=g-import-not-at-top
  if arch in dcgan.ARCHS:
    return dcgan.ARCHS[arch](dtype, model_cfg.impl)
  raise ValueError(f"{arch} is not a GAN architecture; choose one of {GAN_ARCHS}")


@functools.lru_cache(maxsize=None)
def ae_module(model_cfg):
  """The autoencoder of model_cfg.arch (ae_dense, ae_conv, vae)."""
  from gen_models.models import autoencoder  # pylint: disable=g-import-not-at-top
  dtype = _dtype(model_cfg.dtype)
  if model_cfg.arch == "ae_dense":
    return autoencoder.DenseAE(model_cfg.latent_dim, dtype)
  if model_cfg.arch == "ae_conv":
    return autoencoder.ConvAE(dtype)
  if model_cfg.arch == "vae":
    return autoencoder.VAE(model_cfg.latent_dim, dtype)
  raise ValueError(f"{model_cfg.arch} is not an autoencoder; choose one of {AE_ARCHS}")
