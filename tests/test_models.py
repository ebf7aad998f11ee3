"""Every seed architecture: shapes, parameter counts (the seeds' Keras/PyTorch summaries),
output ranges, BatchNorm statistics owned by G's step, dropout on its own RNG stream."""

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_models import config as config_lib
from gen_models import families
from gen_models import models
from gen_models import state as state_lib
from gen_models.families import gan
from gen_models.metrics import features
from gen_models.models import initializers
from gen_models.models.classifier import LeNet
from tests import helpers

# (arch, latent, data range, G params, G BatchNorm statistics, D params)
ARCHS = [
    ("dcgan", 100, "tanh", 852_609, 12_672, 212_865),  # Keras summary: 865,281 = 852,609 + 12,672
    ("dcgan_transpose", 32, "sigmoid", 174_305, 6_368, 1_030_145),
    ("dcgan_atienza", 100, "sigmoid", 1_300_801, 704, 1_080_577),  # the book: 1,301,505 / 1,080,577
    ("mlp_gan", 10, "sigmoid", 1_498_768, 3_840, 566_273),  # the PyTorch course's generator
]


def _cfg(arch, latent, rng):
  return families.validate(
      config_lib.apply_overrides(
          config_lib.Config(),
          {
              "data.name": "synthetic",
              "data.range": rng,
              "model.arch": arch,
              "model.latent_dim": latent,
              "model.hidden": 128,
              "train.batch_size": 4,
          },
      )
  )


@pytest.mark.slow
@pytest.mark.parametrize("arch,latent,rng,g_params,g_stats,d_params", ARCHS)
def test_shapes_counts_and_ranges(arch, latent, rng, g_params, g_stats, d_params):
  cfg = _cfg(arch, latent, rng)
  st = state_lib.create_gan_state(cfg, jax.random.key(0), (28, 28, 1))
  assert state_lib.param_count(st["g"].params) == g_params
  assert state_lib.param_count(st["g"].batch_stats) == g_stats
  assert state_lib.param_count(st["d"].params) == d_params
  assert st["d"].batch_stats == {}  # no D has BatchNorm
  z = jax.random.normal(jax.random.key(1), (5, latent)) * 3
  x = gan.apply_g(st["g"], z)  # G in inference mode, compiled, as evaluation runs it
  assert x.shape == (5, 28, 28, 1)
  lo = -1.0 if rng == "tanh" else 0.0
  assert float(x.min()) >= lo and float(x.max()) <= 1.0
  apply_d = jax.jit(st["d"].apply_fn, static_argnames="train")
  logits = apply_d({"params": st["d"].params}, x, train=False)
  assert logits.shape == (5,)


@pytest.mark.slow
@pytest.mark.parametrize("exp", ["dcgan_transpose", "vae", "lenet"])
def test_the_compiled_init_is_flaxs_eager_init_bit_for_bit(exp):
  """state.init_variables (one jitted program) against flax's own module.init run eagerly, on a
  conv GAN (dense, conv, transposed conv, BatchNorm and dropout layers), the VAE (which takes a
  noise stream too) and the feature extractors' LeNet at their seeds: a run starts from the
  parameters it started from before init was compiled, and shipped extractors keep their hashes."""
  key, shape = jax.random.key(7), (28, 28, 1)
  if exp == "lenet":
    x = jnp.zeros((1,) + shape)
    cases = [(LeNet(), {"params": jax.random.key(s)}, x) for s in features.ENSEMBLE_SEEDS]
  elif exp == "vae":
    cfg = helpers.tiny_ae(exp)
    rngs = {"params": key, "noise": jax.random.key(8)}
    cases = [(models.build(cfg.model, shape), rngs, jnp.ones((2,) + shape))]
  else:
    cfg = helpers.tiny_image(exp)
    g, d = models.gan_modules(cfg.model, shape)
    z = jnp.ones((2, cfg.model.latent_dim))
    cases = [(g, {"params": key}, z), (d, {"params": key}, jnp.ones((2,) + shape))]
  for module, rngs, x in cases:
    got = state_lib.init_variables(module, rngs, x)
    want = module.init(rngs, x, train=False)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    helpers.assert_bit_identical(got, want)


@pytest.mark.parametrize(
    "name,flax_init",
    [
        ("glorot_uniform", flax.linen.initializers.glorot_uniform()),
        ("lecun_normal", flax.linen.initializers.lecun_normal()),
        ("torch_linear", flax.linen.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")),
    ],
)
def test_the_flat_initialisers_draw_flaxs_bits(name, flax_init):
  """gen_models.models.initializers draw a kernel as one flat vector (faster to compile): the same
  bits as flax's initialiser drawing it whole, for every initialiser the models use."""
  mine = getattr(initializers, name)
  key = jax.random.key(11)
  # a dense kernel and a DCGAN's conv kernel (receptive field 25, fans 1,600 and 3,200: every mode
  # differs)
  for shape, dtype in (
      ((3, 7), jnp.float32),
      ((5, 5, 64, 128), jnp.float32),
      ((5, 5, 64, 128), jnp.bfloat16),
  ):
    got, want = mine(key, shape, dtype), flax_init(key, shape, dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    helpers.assert_bit_identical(got, want)
  with pytest.raises(ValueError, match="2\\+ dimensions"):
    mine(key, (5,))


@pytest.mark.slow
def test_batchnorm_statistics_change_only_in_the_g_step_and_dropout_uses_its_rng():
  cfg = _cfg("dcgan_transpose", 32, "sigmoid")  # BN and dropout in G, dropout in D
  st = state_lib.create_gan_state(cfg, jax.random.key(0), (28, 28, 1))
  g, d = models.gan_modules(cfg.model, (28, 28, 1))
  z = jax.random.uniform(jax.random.key(1), (4, 32), minval=-1, maxval=1)
  x = jax.random.uniform(jax.random.key(2), (4, 28, 28, 1))
  batch = {"x": x, "z": z, "w": jnp.ones(4)}
  hp = {"real_target": 1.0, "fake_target": 0.0, "gen_target": 1.0, "minimax": 0.0}
  new, _ = helpers.jit_for_values(helpers.gan_step)(st, batch, jax.random.key(3), hp)
  changed = [
      not np.array_equal(a, b)
      for a, b in zip(jax.tree.leaves(st["g"].batch_stats), jax.tree.leaves(new["g"].batch_stats))
  ]
  assert all(changed)
  # Evaluation (train=False) reads the running statistics and does not update them.
  # compiled applies: one program each (eagerly, one per layer op)
  apply_g, apply_d = (jax.jit(m.apply, static_argnames=("train", "mutable")) for m in (g, d))
  out, mutated = apply_g(
      {"params": new["g"].params, "batch_stats": new["g"].batch_stats},
      z,
      train=False,
      mutable=("batch_stats",),
  )
  for a, b in zip(jax.tree.leaves(mutated), jax.tree.leaves(new["g"].batch_stats)):
    np.testing.assert_array_equal(a, b)
  # Dropout: train-mode outputs depend on the dropout key, eval-mode outputs do not.
  d_train = lambda k: apply_d(
      {"params": st["d"].params}, x, train=True, rngs={"dropout": jax.random.key(k)}
  )
  assert not np.allclose(d_train(0), d_train(1))
  d_eval = lambda k: apply_d(
      {"params": st["d"].params}, x, train=False, rngs={"dropout": jax.random.key(k)}
  )
  np.testing.assert_array_equal(d_eval(0), d_eval(1))
