"""The GAN step updates D with G frozen, then G through the updated, frozen D: each update
touches exactly the parameters it owns (the Keras `trainable=False` pitfall cannot happen)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import losses
from gen_models import steps
from gen_models import tasks
from tests.conftest import tiny_1d


def _setup(**overrides):
  cfg = tiny_1d(**overrides)
  data = data_lib.load(cfg)
  task = tasks.make_task(cfg, data, jax.random.key(0))
  state = task.init(jax.random.key(1))
  batch = data_lib.sample_batch(task.spec, jax.device_put(data["train"]), jax.random.key(2), 0)
  hp = jax.tree.map(jnp.asarray, task.hparams)
  return cfg, state, batch, hp


def _changed(a, b):
  return [not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


def test_d_update_changes_only_d_and_g_update_only_g():
  # G frozen (lr 0): D must still train (the Keras-3 bug: D silently stops training).
  _, state, batch, hp = _setup(**{"optim.g_lr": 1e-30})
  new, _ = jax.jit(steps.gan_step)(state, batch, jax.random.key(3), hp)
  assert all(_changed(state["d"].params, new["d"].params))
  assert np.allclose(jax.tree.leaves(new["g"].params)[0], jax.tree.leaves(state["g"].params)[0], atol=1e-20)
  # D frozen: G trains.
  _, state, batch, hp = _setup(**{"optim.d_lr": 1e-30})
  new, _ = jax.jit(steps.gan_step)(state, batch, jax.random.key(3), hp)
  assert all(_changed(state["g"].params, new["g"].params))
  for a, b in zip(jax.tree.leaves(new["d"].params), jax.tree.leaves(state["d"].params)):
    np.testing.assert_allclose(a, b, atol=1e-20)


def test_step_equals_hand_written_alternating_updates():
  cfg, state, batch, hp = _setup()
  rng = jax.random.key(3)
  new, metrics = jax.jit(steps.gan_step)(state, batch, rng, hp)
  g, d = state["g"], state["d"]
  x, z, w = batch["x"], batch["z"], batch["w"]
  g_fn = lambda p: g.apply_fn({"params": p}, z)
  d_fn = lambda p, v: d.apply_fn({"params": p}, v)
  fake = g_fn(g.params)

  # D: gradient w.r.t. D's parameters only, G's output a constant.
  d_loss = lambda p: losses.discriminator_loss(d_fn(p, x), d_fn(p, fake), 0.9, 0.1, w)
  d_grads = jax.grad(d_loss)(d.params)
  upd, _ = d.tx.update(d_grads, d.opt_state, d.params)
  d_params = optax.apply_updates(d.params, upd)
  # G: through the updated D, whose parameters are constants; ns loss with target 0.9.
  g_loss = lambda p: losses.generator_loss_ns(d_fn(d_params, g_fn(p)), 0.9, w)
  g_grads = jax.grad(g_loss)(g.params)
  upd, _ = g.tx.update(g_grads, g.opt_state, g.params)
  g_params = optax.apply_updates(g.params, upd)

  for got, want in [(new["d"].params, d_params), (new["g"].params, g_params)]:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(metrics["d_loss"], d_loss(d.params), rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], g_loss(g.params), rtol=1e-5)
  assert int(new["g"].step) == int(new["d"].step) == 1


def test_padded_rows_do_not_affect_the_update():
  # The seed's 3rd minibatch has 334 rows, the first two 333 padded to 334 with weight 0.
  cfg, state, batch, hp = _setup()
  assert batch["x"].shape[0] == 334 and float(batch["w"].sum()) == 333.0
  pad = int(np.argmin(np.asarray(batch["w"])))
  other = dict(batch, x=batch["x"].at[pad].set(1e3), z=batch["z"].at[pad].set(0.5))
  a, _ = jax.jit(steps.gan_step)(state, batch, jax.random.key(3), hp)
  b, _ = jax.jit(steps.gan_step)(state, other, jax.random.key(3), hp)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_sequential_batches_follow_the_seed_protocol():
  cfg = tiny_1d()
  data = jax.device_put(data_lib.load(cfg)["train"])
  spec = data_lib.batch_spec(cfg, 1000)
  real = np.asarray(data["x"])[:, 0]
  seen = []
  for step in range(3):
    b = data_lib.sample_batch(spec, data, jax.random.key(0), step)
    rows = np.asarray(b["x"])[np.asarray(b["w"]) > 0, 0]
    seen.append(rows)
  assert [len(r) for r in seen] == [333, 333, 334]
  np.testing.assert_array_equal(np.concatenate(seen), real)  # each epoch covers the data in order
  b3 = data_lib.sample_batch(spec, data, jax.random.key(0), 3)  # epoch 2 starts over
  np.testing.assert_array_equal(np.asarray(b3["x"])[:333, 0], real[:333])
  assert float(jnp.abs(b3["z"]).max()) <= 1.0  # z ~ U(-1, 1)
