"""Models: config -> Flax modules, through the architecture registry (gen_models.models.registry).

Modules are cached per (hashable) model config, so every run with the same architecture gets
the *same* module objects; their `apply` methods then compare equal, train states of different
runs share one pytree structure, and the compiled step is reused across a sweep.
"""

import functools

from gen_models.models import registry

# Each model file registers its architectures on import; a new one is one more line here.
from gen_models.models import mlp  # pylint: disable=unused-import
from gen_models.models import dcgan  # pylint: disable=unused-import
from gen_models.models import autoencoder  # pylint: disable=unused-import

ARCHS = registry.ARCHS


def arch(name: str) -> registry.Arch:
  if name not in ARCHS:
    raise ValueError(f"unknown model.arch {name!r}; registered: {', '.join(ARCHS)}")
  return ARCHS[name]


@functools.lru_cache(maxsize=None)
def build(model_cfg, data_shape: tuple = (28, 28, 1)):
  """The modules of model_cfg.arch: (G, D) for a GAN, one module for an autoencoder."""
  return arch(model_cfg.arch).build(model_cfg, tuple(data_shape))


@functools.lru_cache(maxsize=None)
def gan_modules(model_cfg, data_shape: tuple = (28, 28, 1), d_twice_differentiated: bool = False):
  """(G, D). A D whose input gradient is differentiated again (R1, WGAN-GP) runs its convs as patch
  matmuls where its architecture allows (impl="patches"): the same function, and on XLA CPU ~9x
  faster to differentiate twice. Cached like build, so a sweep's runs share the modules."""
  g, d = build(model_cfg, data_shape)
  if d_twice_differentiated and model_cfg.impl == "fast" and arch(model_cfg.arch).patch_d:
    d = d.clone(impl="patches")
  return g, d
