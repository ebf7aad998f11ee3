"""The three DCGANs of the seed notes, as Flax Linen modules. Discriminators return logits.

Keras defaults the seeds rely on, kept here: glorot-uniform kernels, zero biases, BatchNorm
momentum 0.99 / epsilon 1e-3 unless a seed sets momentum, LeakyReLU slope 0.3 where a seed calls
`LeakyReLU()` without one, TF 'same' padding (XLA's SAME is the same convention).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_models.models import initializers
from gen_models.models import registry
from gen_models.models.registry import dtype as _dtype

glorot = initializers.glorot_uniform


def upsample2(x):
  """Keras UpSampling2D(): nearest neighbour x2."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _phase_matrix(mode: str, phase: int, k: int) -> np.ndarray:
  """For output pixels of parity `phase` along one axis, which of the k kernel taps read which
  low-resolution offset r in {-1, 0, 1} (row r + 1), for a x2 'same' layer of the given mode:
  "upsample": nearest x2 upsampling then a k-tap 'same' conv: tap u reads low-res (phase + u) // 2;
  "transpose": a stride-2 'SAME' transposed conv (lax.conv_transpose: the input dilated by 2 with
  zeros, padded (pad_lo, pad_hi), then a k-tap conv): tap u reads a real input pixel only when
  phase + u - pad_lo is even, at offset (phase + u - pad_lo) / 2."""
  m = np.zeros((3, k), np.float32)
  p = k // 2
  pad_lo = (k + 2 - 2 + 1) // 2  # jax's conv_transpose 'SAME' padding: ceil((k + s - 2) / 2), s = 2
  for u in range(k):
    if mode == "upsample":
      m[(phase + u - p) // 2 + 1, u] = 1.0
    elif (phase + u - pad_lo) % 2 == 0:
      m[(phase + u - pad_lo) // 2 + 1, u] = 1.0
  return m


def subpixel_kernel(kernel, mode: str = "upsample"):
  """(k, k, Cin, F) kernel of a x2 layer (see _phase_matrix) -> the (3, 3, Cin, 4F) kernel of the
  equivalent stride-1 conv on the low-resolution input, output channels ordered (row parity,
  column parity, F) for depth_to_space."""
  k = kernel.shape[0]
  m = jnp.asarray(np.stack([_phase_matrix(mode, 0, k), _phase_matrix(mode, 1, k)]))  # (2, 3, k)
  w = jnp.einsum("aru,bcv,uvio->rciabo", m, m, kernel)  # (3, 3, Cin, 2, 2, F)
  return w.reshape(3, 3, kernel.shape[2], 4 * kernel.shape[3])


def _transpose_taps(phase: int, k: int):
  """Stride-2 'SAME' transposed conv: the taps that feed output parity `phase` along one axis and
  the input offsets they read (see _phase_matrix)."""
  pad_lo = (k + 2 - 2 + 1) // 2
  taps = [u for u in range(k) if (phase + u - pad_lo) % 2 == 0]
  return taps, [(phase + u - pad_lo) // 2 for u in taps]


def transpose_conv_phases(x, kernel):
  """A stride-2 'SAME' transposed conv as four stride-1 convs, one per output parity, each with
  exactly the taps that reach it (2x2, 2x3, 3x2, 3x3 of a 5x5 kernel: 25 in all, no zero taps),
  interleaved into the x2 output."""
  dn = ("NHWC", "HWIO", "NHWC")
  k = kernel.shape[0]
  rows = []
  for a in (0, 1):
    taps_a, off_a = _transpose_taps(a, k)
    cols = []
    for b in (0, 1):
      taps_b, off_b = _transpose_taps(b, k)
      w = kernel[np.array(taps_a)][:, np.array(taps_b)]
      pads = ((-min(off_a), max(off_a)), (-min(off_b), max(off_b)))
      cols.append(jax.lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=dn))
    rows.append(jnp.stack(cols, axis=3))  # (B, H, W, column parity, F)
  y = jnp.stack(rows, axis=3)  # (B, H, W, row parity, column parity, F)
  b, h, w_, _, _, f = y.shape
  return y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w_, f)


def depth_to_space(y):
  """(B, H, W, 4F) with channels (row parity, column parity, F) -> (B, 2H, 2W, F)."""
  b, h, w, c = y.shape
  y = y.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(b, 2 * h, 2 * w, c // 4)


class UpConv(nn.Module):
  """A x2 upsampling layer with a k x k kernel, in one of two forms the seeds use:
  mode="upsample": Keras UpSampling2D() then a 'same' Conv2D, or a stride-1 'same'
    Conv2DTranspose (flax's ConvTranspose at stride 1 is exactly that conv; Keras' flips the
    kernel, a reparametrisation of the same function family);
  mode="transpose": a stride-2 'same' Conv2DTranspose (flax's ConvTranspose semantics).

  impl="fast" computes exactly the same function on the low-resolution input, with no dilated
  convolution (whose weight gradient XLA CPU computes ~50x slower): for "upsample" one stride-1
  3x3 sub-pixel conv with 4x the output channels then depth_to_space (taps that read the same
  upsampled pixel are pre-added: 36/100 of the multiply-adds for k = 5); for "transpose" four
  stride-1 convs, one per output parity, with exactly the taps that reach it.
  impl="reference" runs the layer literally."""

  features: int
  kernel_size: int = 5
  mode: str = "upsample"
  impl: str = "fast"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", glorot, (k, k, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x = x.astype(self.dtype)
    dn = ("NHWC", "HWIO", "NHWC")
    if self.impl == "reference":
      if self.mode == "upsample":
        y = jax.lax.conv_general_dilated(
            upsample2(x), kernel.astype(self.dtype), (1, 1), "SAME", dimension_numbers=dn
        )
      else:
        y = jax.lax.conv_transpose(
            x, kernel.astype(self.dtype), (2, 2), "SAME", dimension_numbers=dn
        )
    elif self.mode == "transpose":
      y = transpose_conv_phases(x, kernel.astype(self.dtype))
    else:
      w = subpixel_kernel(kernel, self.mode).astype(self.dtype)
      y = depth_to_space(
          jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
      )
    return y + bias.astype(self.dtype)


def _lowbias32(x):
  """A 32-bit integer hash with good avalanche (C. Wellons' lowbias32)."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def hash_uniform_bits(key, shape):
  """Uniform uint32 bits for `shape` from one threefry call: two rounds of an integer hash of the
  element index, keyed by two 32-bit words of the key. ~20x cheaper on CPU than threefry bits
  per element, which dominated the DCGAN step's dropout."""
  s1, s2 = jax.random.bits(key, (2,), jnp.uint32)
  idx = jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape)
  return _lowbias32(_lowbias32(idx * jnp.uint32(0x9E3779B1) + s1) ^ s2)


class Dropout(nn.Module):
  """Inverted dropout: zeroes each unit with probability `rate`, scales the rest by 1/(1 - rate).
  impl="fast" draws the Bernoulli mask from hash_uniform_bits (threshold exact to 2^-32);
  impl="reference" is flax's nn.Dropout (threefry bits per element). Same distribution, different
  random streams."""

  rate: float
  impl: str = "fast"

  @nn.compact
  def __call__(self, x, deterministic: bool):
    if self.impl == "reference":
      return nn.Dropout(self.rate, deterministic=deterministic)(x)
    if deterministic or self.rate == 0.0:
      return x
    bits = hash_uniform_bits(self.make_rng("dropout"), x.shape)
    keep = bits >= jnp.uint32(round(self.rate * 2**32))
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


def _bn(train, momentum=0.99, dtype=jnp.float32):
  return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=1e-3, dtype=dtype)


def _same_pads(size: int, k: int, stride: int):
  out = -(-size // stride)
  total = max((out - 1) * stride + k - size, 0)
  return out, (total // 2, total - total // 2)  # TF/XLA 'SAME': the extra pixel goes last


def im2col_conv(x, kernel, stride: int):
  """A k x k 'SAME' conv as one matmul over extracted patches. For tiny feature maps (4x4 outputs
  here) XLA CPU swaps the roles of image and kernel and runs the conv (and its gradients) in a
  layout up to 50x slower; the patch matmul is the same sum of products."""
  b, h, w, c = x.shape
  k, f = kernel.shape[0], kernel.shape[-1]
  oh, ph = _same_pads(h, k, stride)
  ow, pw = _same_pads(w, k, stride)
  xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
  cols = [
      xp[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
      for i in range(k)
      for j in range(k)
  ]
  patches = jnp.concatenate(cols, axis=-1).reshape(b * oh * ow, k * k * c)
  return jnp.dot(patches, kernel.reshape(k * k * c, f)).reshape(b, oh, ow, f)


class Conv(nn.Module):
  """A k x k 'SAME' Conv2D (parameters named as flax's nn.Conv). impl="fast" uses im2col_conv
  where the output is at most 4x4 pixels, XLA's convolution elsewhere; impl="patches" im2col_conv
  everywhere (a D whose input gradient is differentiated again, for R1 or WGAN-GP: XLA CPU's second
  derivative of a strided convolution is ~10x slower than the patch matmul's); impl="reference"
  always XLA's convolution."""

  features: int
  stride: int = 1
  kernel_size: int = 5
  impl: str = "fast"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param("kernel", glorot, (k, k, x.shape[-1], self.features)).astype(self.dtype)
    bias = self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    x = x.astype(self.dtype)
    out_pixels = -(-x.shape[1] // self.stride) * -(-x.shape[2] // self.stride)
    if self.impl == "patches" or (self.impl == "fast" and out_pixels <= 16):
      y = im2col_conv(x, kernel, self.stride)
    else:
      y = jax.lax.conv_general_dilated(
          x, kernel, (self.stride, self.stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
      )
    return y + bias


def _conv(features, stride=1, dtype=jnp.float32, impl="fast"):
  return Conv(features, stride, impl=impl, dtype=dtype)


def _sn(layer, x, sn: bool, train: bool):
  """layer(x), or with D's kernels spectrally normalised (Miyato et al. 2018):
  flax.linen.SpectralNorm,
  one power iteration per training call, its vectors in the "batch_stats" collection."""
  if not sn:
    return layer(x)
  return nn.SpectralNorm(layer)(x, update_stats=train)


def _convT(features, stride, dtype=jnp.float32):
  return nn.ConvTranspose(
      features, (5, 5), strides=(stride, stride), padding="SAME", kernel_init=glorot, dtype=dtype
  )


class Generator(nn.Module):
  """Seed 000: z(100) -> Dense 7*7*128 + LeakyReLU 0.2 -> BN -> 7x7x128 -> up x2 -> Conv 64 5x5
  -> BN -> LeakyReLU 0.2 -> up x2 -> Conv 1 5x5 -> tanh. Output in [-1, 1]."""

  dtype: Any = jnp.float32
  impl: str = "fast"

  @nn.compact
  def __call__(self, z, train: bool = True):
    x = nn.leaky_relu(nn.Dense(7 * 7 * 128, kernel_init=glorot, dtype=self.dtype)(z), 0.2)
    x = _bn(train, dtype=self.dtype)(x).reshape(-1, 7, 7, 128)
    x = UpConv(64, impl=self.impl, dtype=self.dtype)(x)
    x = nn.leaky_relu(_bn(train, dtype=self.dtype)(x), 0.2)
    x = UpConv(1, impl=self.impl, dtype=self.dtype)(x)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """Seed 000: Conv 64 5x5 s2 -> LeakyReLU 0.2 -> Dropout 0.2 -> Conv 128 5x5 s2 -> LeakyReLU 0.2
  -> Dropout 0.3 -> Flatten -> Dense 1."""

  dtype: Any = jnp.float32
  impl: str = "fast"
  sn: bool = False  # spectral normalisation of every kernel (model.spectral_norm)

  @nn.compact
  def __call__(self, x, train: bool = True):
    x = nn.leaky_relu(_sn(_conv(64, 2, self.dtype, self.impl), x, self.sn, train), 0.2)
    x = Dropout(0.2, self.impl)(x, deterministic=not train)
    x = nn.leaky_relu(_sn(_conv(128, 2, self.dtype, self.impl), x, self.sn, train), 0.2)
    x = Dropout(0.3, self.impl)(x, deterministic=not train)
    x = _sn(
        nn.Dense(1, kernel_init=glorot, dtype=self.dtype), x.reshape(x.shape[0], -1), self.sn, train
    )
    return x.astype(jnp.float32)[:, 0]


class GeneratorTranspose(nn.Module):
  """Seed 001: z(32) -> Dense 7*7*64 -> BN(.9) -> LeakyReLU -> 7x7x64 -> Dropout 0.4 -> up x2 ->
  ConvT 32 5x5 -> BN(.9) -> LeakyReLU -> up x2 -> ConvT 16 5x5 -> BN(.9) -> LeakyReLU -> Conv 1 5x5
  -> sigmoid. Output in [0, 1]. (Keras' LeakyReLU() default slope is 0.3.)"""

  dtype: Any = jnp.float32
  impl: str = "fast"

  @nn.compact
  def __call__(self, z, train: bool = True):
    x = nn.Dense(7 * 7 * 64, kernel_init=glorot, dtype=self.dtype)(z)
    x = nn.leaky_relu(_bn(train, 0.9, self.dtype)(x), 0.3).reshape(-1, 7, 7, 64)
    x = Dropout(0.4, self.impl)(x, deterministic=not train)
    x = UpConv(32, impl=self.impl, dtype=self.dtype)(x)
    x = nn.leaky_relu(_bn(train, 0.9, self.dtype)(x), 0.3)
    x = UpConv(16, impl=self.impl, dtype=self.dtype)(x)
    x = nn.leaky_relu(_bn(train, 0.9, self.dtype)(x), 0.3)
    x = _conv(1, dtype=self.dtype, impl=self.impl)(x)
    return nn.sigmoid(x.astype(jnp.float32))


class DiscriminatorTranspose(nn.Module):
  """Seed 001: [Conv 5x5 s2 relu, Dropout 0.4] x (64, 128, 256) -> Flatten -> Dense 1."""

  dtype: Any = jnp.float32
  impl: str = "fast"
  sn: bool = False  # spectral normalisation of every kernel (model.spectral_norm)

  @nn.compact
  def __call__(self, x, train: bool = True):
    for features in (64, 128, 256):
      x = nn.relu(_sn(_conv(features, 2, self.dtype, self.impl), x, self.sn, train))
      x = Dropout(0.4, self.impl)(x, deterministic=not train)
    x = _sn(
        nn.Dense(1, kernel_init=glorot, dtype=self.dtype), x.reshape(x.shape[0], -1), self.sn, train
    )
    return x.astype(jnp.float32)[:, 0]


class GeneratorAtienza(nn.Module):
  """Seed 002 (Atienza, Advanced Deep Learning with Keras): z(100) -> Dense 7*7*128 -> 7x7x128 ->
  [BN, ReLU, ConvT 5x5] with (filters, stride) (128, 2), (64, 2), (32, 1), (1, 1) -> sigmoid."""

  dtype: Any = jnp.float32
  impl: str = "fast"

  @nn.compact
  def __call__(self, z, train: bool = True):
    x = nn.Dense(7 * 7 * 128, kernel_init=glorot, dtype=self.dtype)(z).reshape(-1, 7, 7, 128)
    for features, stride in ((128, 2), (64, 2), (32, 1), (1, 1)):
      x = nn.relu(_bn(train, dtype=self.dtype)(x))
      if stride == 2:
        x = UpConv(features, mode="transpose", impl=self.impl, dtype=self.dtype)(x)
      else:
        x = _convT(features, stride, self.dtype)(x)
    return nn.sigmoid(x.astype(jnp.float32))


class DiscriminatorAtienza(nn.Module):
  """Seed 002: [LeakyReLU 0.2, Conv 5x5] with (filters, stride) (32, 2), (64, 2), (128, 2), (256, 1)
  -> Flatten -> Dense 1. (The first LeakyReLU acts on the input image, as in the book.)"""

  dtype: Any = jnp.float32
  impl: str = "fast"
  sn: bool = False  # spectral normalisation of every kernel (model.spectral_norm)

  @nn.compact
  def __call__(self, x, train: bool = True):
    for features, stride in ((32, 2), (64, 2), (128, 2), (256, 1)):
      x = _sn(_conv(features, stride, self.dtype, self.impl), nn.leaky_relu(x, 0.2), self.sn, train)
    x = _sn(
        nn.Dense(1, kernel_init=glorot, dtype=self.dtype), x.reshape(x.shape[0], -1), self.sn, train
    )
    return x.astype(jnp.float32)[:, 0]


def _build(generator, discriminator):
  return lambda m, data_shape: (
      generator(_dtype(m.dtype), m.impl),
      discriminator(_dtype(m.dtype), m.impl, m.spectral_norm),
  )


# Every DCGAN: spectral norm and patch convs in D, vectorised sweeps on accelerators.
CONV_GAN = dict(spectral_norm=True, patch_d=True, vmap_on_accelerators=True, worker_per_core=True)
registry.register("dcgan", "image_gan", "tanh", **CONV_GAN)(_build(Generator, Discriminator))
registry.register("dcgan_transpose", "image_gan", "sigmoid", **CONV_GAN)(
    _build(GeneratorTranspose, DiscriminatorTranspose)
)
registry.register("dcgan_atienza", "image_gan", "sigmoid", **CONV_GAN)(
    _build(GeneratorAtienza, DiscriminatorAtienza)
)
