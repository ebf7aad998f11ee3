"""The GAN step updates D with G frozen, then G through the updated, frozen D: each update
touches exactly the parameters it owns (the Keras `trainable=False` pitfall cannot happen)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_models import data as data_lib
from gen_models import families
from gen_models import losses
from tests import helpers
from tests.helpers import tiny_1d
from tests.helpers import tiny_image


def _setup(**overrides):
  cfg = tiny_1d(**overrides)
  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(0))
  state = task.init(jax.random.key(1))
  batch = data_lib.sample_batch(task.spec, jax.device_put(data["train"]), jax.random.key(2), 0)
  hp = jax.tree.map(jnp.asarray, task.hparams)
  return cfg, state, batch, hp


def _changed(a, b):
  return [not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]


def _bce(logits, target):
  """Textbook binary cross-entropy -[t log s(l) + (1 - t) log(1 - s(l))] per element."""
  return -(target * jax.nn.log_sigmoid(logits) + (1 - target) * jax.nn.log_sigmoid(-logits))


def _wmean(v, w):
  v = v.reshape(v.shape[0], -1).mean(axis=1)
  return jnp.sum(v * w) / jnp.sum(w)


def reference_step(state, batch, rng, hp):
  """The alternating GAN update written out plainly: D's gradient w.r.t. D's parameters only on
  [real; G(z)], then G's gradient w.r.t. G's parameters only, through the *updated* D. The G
  forward runs twice (train mode, the same dropout key): no vjp sharing, no stop_gradient trick."""
  g, d = state["g"], state["d"]
  x, z, w = batch["x"], batch["z"], batch["w"]
  rng_g, rng_d, rng_dg = jax.random.split(rng, 3)  # the step's documented key use

  def gen(params):
    return g.apply_fn(
        {"params": params, "batch_stats": g.batch_stats},
        z,
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": rng_g},
    )

  fake, g_updates = gen(g.params)

  def d_loss(params):
    logits = d.apply_fn(
        {"params": params}, jnp.concatenate([x, fake]), train=True, rngs={"dropout": rng_d}
    )
    real_l, fake_l = logits[: len(x)], logits[len(x) :]
    return 0.5 * (
        _wmean(_bce(real_l, hp["real_target"]), w) + _wmean(_bce(fake_l, hp["fake_target"]), w)
    )

  d_grads = jax.grad(d_loss)(d.params)
  updates, d_opt = d.tx.update(d_grads, d.opt_state, d.params)
  d_params = optax.apply_updates(d.params, updates)

  def g_loss(params):
    logits = d.apply_fn({"params": d_params}, gen(params)[0], train=True, rngs={"dropout": rng_dg})
    ns = _wmean(_bce(logits, hp["gen_target"]), w)
    minimax = -_wmean(_bce(logits, hp["fake_target"]), w)
    return jnp.where(hp["minimax"] > 0.5, minimax, ns)

  g_grads = jax.grad(g_loss)(g.params)
  updates, g_opt = g.tx.update(g_grads, g.opt_state, g.params)
  g_params = optax.apply_updates(g.params, updates)
  return {
      "g": (g_params, g_updates.get("batch_stats", g.batch_stats), g_opt),
      "d": (d_params, d.batch_stats, d_opt),
  }


def _family_setup(exp, generator):

  over = {
      "loss.generator": generator,
      "loss.real_target": 0.9,
      "loss.fake_target": 0.1,
      "loss.gen_target": 1.0,
  }
  cfg = tiny_1d(**over) if exp == "gaussian1d" else tiny_image(exp, **over)
  data = data_lib.load(cfg)
  task = families.make_task(cfg, data, jax.random.key(0))
  state = task.init(jax.random.key(1))
  batch = data_lib.sample_batch(task.spec, jax.device_put(data["train"]), jax.random.key(2), 0)
  return state, batch, jax.tree.map(jnp.asarray, task.hparams)


@pytest.mark.slow
@pytest.mark.parametrize(
    "exp,generator",
    [
        ("gaussian1d", "ns"),
        ("gaussian1d", "minimax"),
        ("mlp_gan", "ns"),
        ("dcgan", "ns"),
        ("dcgan_transpose", "ns"),
        ("dcgan_atienza", "ns"),
    ],
)
def test_each_update_changes_exactly_what_it_owns_in_every_family(exp, generator):
  """With the seeds' real learning rates, every family (BatchNorm statistics and dropout keys
  included): the step's new G and D (parameters, BatchNorm statistics, optimizer states) equal
  the plain reference update. A D update leaking into G, a second D update in the G phase, or G's
  gradient taken through the old D all move some leaf by about a learning rate."""
  state, batch, hp = _family_setup(exp, generator)
  new, _ = helpers.jit_for_values(helpers.gan_step)(state, batch, jax.random.key(3), hp)
  want = helpers.jit_for_values(reference_step)(state, batch, jax.random.key(3), hp)
  for net in ("g", "d"):
    got = (new[net].params, new[net].batch_stats, new[net].opt_state)
    for part, a_tree, b_tree in zip(("params", "batch_stats", "opt_state"), got, want[net]):
      a_leaves, b_leaves = jax.tree.leaves(a_tree), jax.tree.leaves(b_tree)
      assert len(a_leaves) == len(b_leaves)
      for a, b in zip(a_leaves, b_leaves):
        np.testing.assert_allclose(
            np.asarray(a),
            np.asarray(b),
            rtol=2e-4,
            atol=1e-6,
            err_msg=f"{exp}/{generator}: {net} {part}",
        )
    # and each network moved: neither update is a no-op (the Keras 3 `trainable` bug)
    assert any(_changed(state[net].params, new[net].params))
  assert int(new["g"].step) == int(new["d"].step) == 1


@pytest.mark.slow
def test_step_equals_hand_written_alternating_updates():
  cfg, state, batch, hp = _setup()
  rng = jax.random.key(3)
  new, metrics = jax.jit(helpers.gan_step)(state, batch, rng, hp)
  g, d = state["g"], state["d"]

  def hand_written(x, z, w):
    g_fn = lambda p: g.apply_fn({"params": p}, z)
    d_fn = lambda p, v: d.apply_fn({"params": p}, v)
    fake = g_fn(g.params)
    # D: gradient w.r.t. D's parameters only, G's output a constant.
    d_loss = lambda p: losses.discriminator_loss(d_fn(p, x), d_fn(p, fake), 0.9, 0.1, w)
    upd, _ = d.tx.update(jax.grad(d_loss)(d.params), d.opt_state, d.params)
    d_params = optax.apply_updates(d.params, upd)
    # G: through the updated D, whose parameters are constants; ns loss with target 0.9.
    g_loss = lambda p: losses.generator_loss_ns(d_fn(d_params, g_fn(p)), 0.9, w)
    upd, _ = g.tx.update(jax.grad(g_loss)(g.params), g.opt_state, g.params)
    g_params = optax.apply_updates(g.params, upd)
    return d_params, g_params, d_loss(d.params), g_loss(g.params)

  # one program (100 eager ops compiled one by one took 6 s)
  d_params, g_params, d_loss, g_loss = helpers.jit_for_values(hand_written)(
      batch["x"], batch["z"], batch["w"]
  )
  for got, want in [(new["d"].params, d_params), (new["g"].params, g_params)]:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(metrics["d_loss"], d_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], g_loss, rtol=1e-5)
  assert int(new["g"].step) == int(new["d"].step) == 1


def test_padded_rows_do_not_affect_the_update():
  # The seed's 3rd minibatch has 334 rows, the first two 333 padded to 334 with weight 0.
  cfg, state, batch, hp = _setup()
  assert batch["x"].shape[0] == 334 and float(batch["w"].sum()) == 333.0
  pad = int(np.argmin(np.asarray(batch["w"])))
  other = dict(batch, x=batch["x"].at[pad].set(1e3), z=batch["z"].at[pad].set(0.5))
  a, _ = jax.jit(helpers.gan_step)(state, batch, jax.random.key(3), hp)
  b, _ = jax.jit(helpers.gan_step)(state, other, jax.random.key(3), hp)
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
