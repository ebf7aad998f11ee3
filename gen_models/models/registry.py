"""The architecture registry: model.arch -> how to build it and which family trains it.

A new architecture is one module that calls `register(...)` on its builder, plus one import line
in gen_models/models/__init__.py.
"""

import dataclasses
from typing import Callable

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Arch:
  name: str
  family: str  # the gen_models.families entry that trains, evaluates and reports it
  build: Callable  # (model_cfg, data_shape) -> (G, D) for a GAN, the module for an autoencoder
  output_range: str = ""  # "tanh" ([-1, 1]) / "sigmoid" ([0, 1]): the data range its images need
  spectral_norm: bool = False  # whether its D accepts model.spectral_norm
  cpu_chunk: int = 1  # train.scan_chunk=0 on CPU: steps per lax.scan dispatch (gen_models.loop)
  # whether its D takes impl="patches" (convs as patch matmuls), used when D is differentiated twice
  patch_d: bool = False
  # train.vmap_runs=auto on GPU/TPU: whether a sweep's runs train as one vmapped program there (a
  # small conv step is far below one accelerator's capacity; on CPU vmapped convs measured 0.55x)
  vmap_on_accelerators: bool = False
  # --workers auto on a CPU: one worker per core (two one-core workers measured faster than one
  # two-core process for the conv GANs, docs/speed.md); else one
  worker_per_core: bool = False


ARCHS: dict[str, Arch] = {}


def register(
    name: str,
    family: str,
    output_range: str = "",
    spectral_norm: bool = False,
    cpu_chunk: int = 1,
    patch_d: bool = False,
    vmap_on_accelerators: bool = False,
    worker_per_core: bool = False,
):
  """Decorator: registers `build(model_cfg, data_shape)` as architecture `name`."""

  def wrap(build):
    if name in ARCHS:
      raise ValueError(f"architecture {name!r} is registered twice")
    ARCHS[name] = Arch(
        name,
        family,
        build,
        output_range,
        spectral_norm,
        cpu_chunk,
        patch_d,
        vmap_on_accelerators,
        worker_per_core,
    )
    return build

  return wrap


def dtype(name: str):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]
