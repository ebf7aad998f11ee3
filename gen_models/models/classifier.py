"""A small LeNet-style classifier, the feature extractor of the image metrics (no Inception
weights can be downloaded here). Input: (B, 28, 28, 1) in [0, 1]."""

import flax.linen as nn
import jax.numpy as jnp

from gen_models.models.initializers import lecun_normal  # flax's default, drawn flat


class LeNet(nn.Module):
  """Conv 32 3x3 -> Conv 64 3x3 s2 -> Conv 128 3x3 s2 -> Dense 128 (the features) -> Dense 10."""

  num_classes: int = 10
  features: int = 128

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Conv(32, (3, 3), kernel_init=lecun_normal)(x))
    x = nn.relu(nn.Conv(64, (3, 3), strides=(2, 2), kernel_init=lecun_normal)(x))
    x = nn.relu(nn.Conv(128, (3, 3), strides=(2, 2), kernel_init=lecun_normal)(x))
    x = nn.Dropout(0.25, deterministic=not train)(x.reshape(x.shape[0], -1))
    feats = nn.relu(nn.Dense(self.features, kernel_init=lecun_normal)(x))
    logits = nn.Dense(self.num_classes, kernel_init=lecun_normal)(
        nn.Dropout(0.25, deterministic=not train)(feats)
    )
    return logits, feats


def as_input(images_u8):
  """uint8 (B, 28, 28[, 1]) -> float32 (B, 28, 28, 1) in [0, 1]."""
  x = jnp.asarray(images_u8)
  if x.ndim == 3:
    x = x[..., None]
  return x.astype(jnp.float32) / 255.0
