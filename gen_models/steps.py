"""Pure training steps: (state, batch, rng, hparams) -> (state, metrics).

Hyperparameters that do not change shapes (label targets, the loss choice, learning rates)
are traced values, so one compiled program serves every arm of a sweep.
"""

import jax
import jax.numpy as jnp

from gen_models import losses


def gan_step(state, batch, rng, hp):
  """One alternating GAN step, sharing a single G forward between the two updates.

  1. G forward once (train mode; BatchNorm statistics are updated by this step only).
  2. D update on [real; stop_gradient(fake)]: gradients w.r.t. D's parameters only.
  3. G update through the *updated* D: the gradient w.r.t. the fakes is pulled back through
     the saved G forward (jax.vjp), w.r.t. G's parameters only; D's parameters are constants.

  batch: {"x": real (B, ...), "z": latent (B, Z), "w": example weights (B,)}.
  hp: {"real_target", "fake_target", "gen_target", "minimax"} as float32 scalars.
  """
  g, d = state["g"], state["d"]
  x, z, w = batch["x"], batch["z"], batch["w"]
  rng_g, rng_d, rng_dg = jax.random.split(rng, 3)

  def g_forward(params):
    fake, updates = g.apply_fn({"params": params, "batch_stats": g.batch_stats}, z, train=True,
                               mutable=["batch_stats"], rngs={"dropout": rng_g})
    return fake, updates

  fake, g_vjp, g_updates = jax.vjp(g_forward, g.params, has_aux=True)

  def d_logits(params, inputs, key):
    return d.apply_fn({"params": params}, inputs, train=True, rngs={"dropout": key})

  def d_loss_fn(params):
    logits = d_logits(params, jnp.concatenate([x, jax.lax.stop_gradient(fake)]), rng_d)
    logits_real, logits_fake = jnp.split(logits, 2)
    loss = losses.discriminator_loss(logits_real, logits_fake, hp["real_target"], hp["fake_target"], w)
    return loss, (logits_real, logits_fake)

  (d_loss, (logits_real, logits_fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d.params)
  d = d.apply_gradients(grads=d_grads)

  def g_loss_fn(fake_images):
    logits = d_logits(d.params, fake_images, rng_dg)
    return losses.generator_loss(logits, hp["minimax"], hp["gen_target"], hp["fake_target"], w)

  g_loss, dfake = jax.value_and_grad(g_loss_fn)(fake)
  (g_grads,) = g_vjp(dfake)
  g = g.apply_gradients(grads=g_grads, batch_stats=g_updates.get("batch_stats", g.batch_stats))

  wsum = jnp.sum(w)
  wmean = lambda v: jnp.sum(v * w) / wsum
  metrics = {
      "d_loss": d_loss,
      "g_loss": g_loss,
      "d_real": wmean(jax.nn.sigmoid(logits_real)),  # mean D(x)
      "d_fake": wmean(jax.nn.sigmoid(logits_fake)),  # mean D(G(z)) before D's update
      "d_acc_real": wmean((logits_real > 0).astype(jnp.float32)),
      "d_acc_fake": wmean((logits_fake < 0).astype(jnp.float32)),
  }
  return {"g": g, "d": d}, metrics
