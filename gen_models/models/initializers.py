"""Kernel initialisers: flax's variance-scaling ones, bit for bit, drawn as one flat vector.

jax's threefry (`jax_threefry_partitionable`, the default) numbers the elements of a draw by their
flat index, so the draw of a (3, 3, 16, 8) kernel is the draw of (1152, 1) reshaped. XLA CPU
compiles the flat draw 4-7x faster (1.1 -> 0.16 s for that kernel: the 4-D counter becomes a nest
of loops over tiny dimensions that LLVM unrolls), which is most of the time to create a conv
model's state (all five conv architectures' states 17.0 -> 6.5 s, compiled). tests/test_models.py
checks each initialiser against flax's with `==` on a dense and a conv kernel, in float32 and
bfloat16; every experiment's initial parameters hashed the same before and after the change.
"""

import math

import flax.linen as nn
import jax.numpy as jnp


def variance_scaling(scale: float, mode: str, distribution: str):
  """nn.initializers.variance_scaling(scale, mode, distribution) with its default axes (fans from
  the last two dimensions times the receptive field): flax's own initialiser on the (n, 1) view,
  whose fan_out is 1, with the fans folded into its scale (the same float it computes)."""

  def init(key, shape, dtype=jnp.float32):
    if len(shape) < 2:  # as flax's: fans need an input and an output axis
      raise ValueError(
          f"a variance-scaling initialiser needs a kernel of 2+ dimensions, got {shape}"
      )
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    denominator = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    flat = nn.initializers.variance_scaling(scale / denominator, "fan_out", distribution)
    return flat(key, (math.prod(shape), 1), dtype).reshape(shape)

  return init


glorot_uniform = variance_scaling(1.0, "fan_avg", "uniform")  # Keras' default kernel init
lecun_normal = variance_scaling(1.0, "fan_in", "truncated_normal")  # flax's default kernel init
# PyTorch's nn.Linear default kernel init, kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).
torch_linear = variance_scaling(1.0 / 3.0, "fan_in", "uniform")
