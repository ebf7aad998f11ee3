"""gen_models/models/dcgan.py: every speed rewrite computes the same function as the plain layer
it replaces (values and gradients), and whole models / whole GAN steps agree between impl=fast
and impl=reference."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models import config as config_lib
from gen_models import families
from gen_models import models
from gen_models import state as state_lib
from gen_models.families import gan
from gen_models.models import dcgan
from tests.helpers import jit_for_values, tiny_image


def _close(a, b, tol=2e-5):
  a, b = np.asarray(a), np.asarray(b)
  assert np.max(np.abs(a - b)) <= tol * (np.max(np.abs(b)) + 1e-12), (
      np.max(np.abs(a - b)),
      np.max(np.abs(b)),
  )


def _normal(shape):
  """Test inputs drawn by numpy: jax.random compiles a program per shape (0.5-2 s each here)."""
  return np.random.default_rng(1).normal(size=shape).astype(np.float32)


def _check_layer(fast, literal, x, variables):
  # Compiled, as a step runs them (eagerly, every op of the rewrites compiled a program of its own)
  _close(jit_for_values(fast)(variables, x), jit_for_values(literal)(variables, x))
  loss = lambda f: (lambda v, x: jnp.sum(jnp.sin(f(v, x))))
  gf = jit_for_values(jax.grad(loss(fast), argnums=(0, 1)))(variables, x)
  gl = jit_for_values(jax.grad(loss(literal), argnums=(0, 1)))(variables, x)
  for a, b in zip(jax.tree.leaves(gf), jax.tree.leaves(gl)):
    _close(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("cin,features,size", [(128, 64, 7), (64, 1, 14), (3, 5, 4)])
def test_subpixel_upsample_conv_equals_upsample_then_conv(cin, features, size):
  x = _normal((2, size, size, cin))
  layer = dcgan.UpConv(features, mode="upsample")
  v = jax.jit(layer.init)(jax.random.key(0), x)
  literal = lambda v, x: nn.Conv(features, (5, 5), padding="SAME").apply(v, dcgan.upsample2(x))
  _check_layer(layer.apply, literal, x, v)


@pytest.mark.slow
@pytest.mark.parametrize("cin,features,size", [(128, 64, 7), (64, 1, 14), (3, 5, 4)])
def test_phase_transposed_conv_equals_strided_conv_transpose(cin, features, size):
  x = _normal((2, size, size, cin))
  layer = dcgan.UpConv(features, mode="transpose")
  v = jax.jit(layer.init)(jax.random.key(0), x)
  literal = lambda v, x: nn.ConvTranspose(features, (5, 5), strides=(2, 2), padding="SAME").apply(
      v, x
  )
  _check_layer(layer.apply, literal, x, v)


@pytest.mark.slow
@pytest.mark.parametrize(
    "cin,features,size,stride", [(128, 256, 4, 1), (64, 128, 7, 2), (16, 8, 5, 2)]
)
def test_im2col_conv_equals_xla_conv_on_small_maps(cin, features, size, stride):
  x = _normal((2, size, size, cin))
  layer = dcgan.Conv(features, stride)
  v = jax.jit(layer.init)(jax.random.key(0), x)
  literal = lambda v, x: nn.Conv(features, (5, 5), strides=(stride, stride), padding="SAME").apply(
      v, x
  )
  _check_layer(layer.apply, literal, x, v)


@pytest.mark.slow
def test_im2col_conv_equals_xla_same_conv_for_every_size_stride_and_kernel():
  """Odd and even sizes, strides 1-3, kernels 2-5, non-square maps: every case where 'SAME'
  pads asymmetrically (the extra pixel goes last) is covered."""
  conv = jit_for_values(dcgan.im2col_conv, static_argnums=2)
  for k in (2, 3, 5):
    for stride in (1, 2, 3):
      # total padding 0, odd, even; non-square
      for h, w in [(1, 1), (2, 3), (5, 5), (8, 8), (9, 4)]:
        # numpy draws: jax.random compiles a program per shape
        x = np.random.default_rng(h * 100 + w).normal(size=(2, h, w, 3)).astype(np.float32)
        kernel = np.random.default_rng(k * 10 + stride).normal(size=(k, k, 3, 4))
        kernel = kernel.astype(np.float32)
        want = jax.lax.conv_general_dilated(
            x, kernel, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        got = conv(x, kernel, stride)
        assert got.shape == want.shape, (k, stride, h, w)
        _close(got, want)


def _cfg(arch, latent, rng, impl, dtype="float32"):
  return families.validate(
      config_lib.apply_overrides(
          config_lib.Config(),
          {
              "data.name": "synthetic",
              "data.range": rng,
              "model.arch": arch,
              "model.latent_dim": latent,
              "model.impl": impl,
              "model.dtype": dtype,
              "train.batch_size": 4,
          },
      )
  )


ARCHS = [
    ("dcgan", 100, "tanh"),
    ("dcgan_transpose", 32, "sigmoid"),
    ("dcgan_atienza", 100, "sigmoid"),
]


@pytest.mark.slow
@pytest.mark.parametrize("arch,latent,rng", ARCHS)
def test_fast_and_reference_models_agree_in_values_and_gradients(arch, latent, rng, monkeypatch):
  # The fast dropout draws its mask from another random stream (tested on its own below); use
  # flax's dropout in both models here so the two graphs must agree elementwise.
  reference_dropout = dcgan.Dropout
  monkeypatch.setattr(
      dcgan, "Dropout", lambda rate, impl="fast": reference_dropout(rate, "reference")
  )
  fast, ref = _cfg(arch, latent, rng, "fast"), _cfg(arch, latent, rng, "reference")
  st = state_lib.create_gan_state(fast, jax.random.key(0), (28, 28, 1))
  st_ref = state_lib.create_gan_state(ref, jax.random.key(0), (28, 28, 1))
  for a, b in zip(jax.tree.leaves(st), jax.tree.leaves(st_ref)):  # identical parameter trees
    np.testing.assert_array_equal(a, b)
  z = jax.random.uniform(jax.random.key(1), (4, latent), minval=-1, maxval=1)
  x = jax.random.uniform(
      jax.random.key(2), (4, 28, 28, 1), minval=-1 if rng == "tanh" else 0, maxval=1
  )
  rngs = {"dropout": jax.random.key(4)}

  def losses_for(cfg, g_params, d_params, stats):
    g, d = models.gan_modules(cfg.model, (28, 28, 1))

    def gen(gp):
      return g.apply(
          {"params": gp, "batch_stats": stats}, z, train=True, rngs=rngs, mutable=["batch_stats"]
      )[0]

    def d_loss(dp):
      logits = d.apply({"params": dp}, jnp.concatenate([x, gen(g_params)]), train=True, rngs=rngs)
      return jnp.mean(jax.nn.softplus(-logits[:4])) + jnp.mean(jax.nn.softplus(logits[4:]))

    def g_loss(gp):
      return jnp.mean(
          jax.nn.softplus(-d.apply({"params": d_params}, gen(gp), train=True, rngs=rngs))
      )

    return gen(g_params), jax.value_and_grad(d_loss)(d_params), jax.value_and_grad(g_loss)(g_params)

  # the parameters are arguments, not constants folded into the program (that compiled 3x slower)
  args = (st["g"].params, st["d"].params, st["g"].batch_stats)
  out_f = jit_for_values(functools.partial(losses_for, fast))(*args)
  out_r = jit_for_values(functools.partial(losses_for, ref), level=1)(*args)
  for part_f, part_r in zip(
      jax.tree.leaves(out_f, is_leaf=lambda t: isinstance(t, dict)),
      jax.tree.leaves(out_r, is_leaf=lambda t: isinstance(t, dict)),
  ):
    # Per leaf, relative to that leaf; plus a floor of 1e-6 of the group's largest value for the
    # gradients that are exactly zero in theory (a bias right before BatchNorm) and only
    # rounding noise in practice.
    scale = max(float(np.max(np.abs(leaf))) for leaf in jax.tree.leaves(part_r))
    for a, b in zip(jax.tree.leaves(part_f), jax.tree.leaves(part_r)):
      a, b = np.asarray(a), np.asarray(b)
      assert np.max(np.abs(a - b)) <= 1e-4 * np.max(np.abs(b)) + 1e-6 * scale, (
          np.max(np.abs(a - b)),
          np.max(np.abs(b)),
      )


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_hash_dropout_is_inverted_bernoulli_dropout(rate):
  x = jnp.ones((64, 14, 14, 64))
  layer = dcgan.Dropout(rate)
  drop = jax.jit(lambda key: layer.apply({}, x, deterministic=False, rngs={"dropout": key}))
  y0, y0_again, y1 = drop(jax.random.key(0)), drop(jax.random.key(0)), drop(jax.random.key(1))
  np.testing.assert_array_equal(y0, y0_again)  # a pure function of the key
  kept0, kept1 = np.asarray(y0) > 0, np.asarray(y1) > 0
  n = kept0.size
  assert abs(kept0.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
  np.testing.assert_allclose(np.asarray(y0)[kept0], 1 / (1 - rate), rtol=1e-6)  # inverted scaling
  # Masks from different keys, and neighbouring units of one mask, are uncorrelated.
  assert abs(np.corrcoef(kept0.ravel(), kept1.ravel())[0, 1]) < 5 / np.sqrt(n)
  assert abs(np.corrcoef(kept0.ravel()[:-1], kept0.ravel()[1:])[0, 1]) < 5 / np.sqrt(n)
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)


def test_hash_bits_are_uniform():
  bits = np.asarray(dcgan.hash_uniform_bits(jax.random.key(3), (1 << 20,)))
  counts = np.bincount(bits >> 28, minlength=16)  # top 4 bits
  chi2 = np.sum((counts - bits.size / 16) ** 2 / (bits.size / 16))
  assert chi2 < 50  # 15 degrees of freedom: P(chi2 > 50) < 1e-5
  low = np.bincount(bits & 15, minlength=16)  # and the low bits
  assert np.sum((low - bits.size / 16) ** 2 / (bits.size / 16)) < 50


@pytest.mark.slow
def test_bfloat16_compute_stays_close_to_float32():
  f32, bf16 = _cfg("dcgan", 100, "tanh", "fast"), _cfg("dcgan", 100, "tanh", "fast", "bfloat16")
  st = state_lib.create_gan_state(f32, jax.random.key(0), (28, 28, 1))
  z = jax.random.normal(jax.random.key(1), (8, 100))
  out = {}
  for name, cfg in (("f32", f32), ("bf16", bf16)):
    g, d = models.gan_modules(cfg.model, (28, 28, 1))
    apply_g, apply_d = (jit_for_values(m.apply, static_argnames="train") for m in (g, d))
    img = apply_g({"params": st["g"].params, "batch_stats": st["g"].batch_stats}, z, train=False)
    out[name] = (img, apply_d({"params": st["d"].params}, img, train=False))
  assert out["bf16"][0].dtype == jnp.float32  # outputs are float32 whatever the compute dtype
  np.testing.assert_allclose(out["bf16"][0], out["f32"][0], atol=3e-2)
  np.testing.assert_allclose(out["bf16"][1], out["f32"][1], atol=5e-2)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dcgan", "dcgan_transpose", "dcgan_atienza"])
def test_a_d_differentiated_twice_takes_patch_convs_with_the_same_second_derivatives(arch):
  """R1 / WGAN-GP arms get impl="patches" Ds; D, its input gradient and that gradient's squared norm
  differentiated w.r.t. D's parameters (the R1 term) equal XLA's convolutions (impl=reference)."""

  def d_of(**overrides):
    cfg = tiny_image(arch, **overrides)
    return models.gan_modules(cfg.model, (28, 28, 1), gan.differentiates_d_twice(cfg))[1]

  assert d_of().impl == "fast" and d_of(**{"loss.generator": "hinge"}).impl == "fast"
  assert d_of(**{"loss.r1_gamma": 10.0}).impl == "patches"
  assert d_of(**{"loss.generator": "wgan_gp"}).impl == "patches"
  # as the user asked
  assert d_of(**{"loss.r1_gamma": 10.0, "model.impl": "reference"}).impl == "reference"
  patches, ref = d_of(**{"loss.r1_gamma": 10.0}), d_of(**{"model.impl": "reference"})
  x = jax.random.uniform(jax.random.key(2), (4, 28, 28, 1), minval=-1, maxval=1)
  params = ref.init(jax.random.key(0), x, train=False)["params"]

  def r1_parts(d, p):
    logits = d.apply({"params": p}, x, train=False)
    grad_x = jax.grad(lambda x_: jnp.sum(d.apply({"params": p}, x_, train=False)))(x)
    return logits, grad_x

  # jitted, with the parameters as an argument: one compiled program per D, as in training
  r1_of = lambda d, p: jax.grad(lambda p_: jnp.sum(jnp.square(r1_parts(d, p_)[1])))(p)
  r1, r1_ref = (jit_for_values(r1_of, level, static_argnums=0) for level in (0, 1))
  parts, parts_ref = (jit_for_values(r1_parts, level, static_argnums=0) for level in (0, 1))
  for a, b in zip(
      jax.tree.leaves((parts(patches, params), r1(patches, params))),
      jax.tree.leaves((parts_ref(ref, params), r1_ref(ref, params))),
  ):
    _close(a, b, tol=1e-4)
  # ... and without a convolution left for XLA to differentiate twice (the ~10x slower path)
  assert "convolution" not in r1.lower(patches, params).as_text()
  assert "convolution" in r1_ref.lower(ref, params).as_text()
