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


def _recon_losses(logits, x, w, bce_flag):
  """Per-example pixel-mean MSE (of sigmoid(logits)) and BCE, and the chosen one (Keras' losses)."""
  mse = losses.mse(jax.nn.sigmoid(logits), x)
  bce = losses.bce_logits_per_example(logits, x)
  chosen = jnp.where(bce_flag > 0.5, bce, mse)
  wmean = lambda v: jnp.sum(v * w) / jnp.sum(w)
  return wmean(chosen), {"mse": wmean(mse), "bce": wmean(bce)}


def _ae_update(state, batch, x_in, hp):
  ae = state["ae"]
  x, w = batch["x"], batch["w"]

  def loss_fn(params):
    out = ae.apply_fn({"params": params}, x_in, train=True)
    return _recon_losses(out["logits"], x, w, hp["bce"])

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(ae.params)
  return {"ae": ae.apply_gradients(grads=grads)}, {"loss": loss, **metrics}


def ae_step(state, batch, rng, hp):
  """One autoencoder step: reconstruct the clean image from the input plus hp["noise_std"] *
  N(0, 1) noise drawn afresh at every step (0 for a plain autoencoder), unclipped.
  hp: {"noise_std", "bce"}: the loss is pixel-mean BCE if bce else MSE."""
  x = batch["x"]
  return _ae_update(state, batch, x + hp["noise_std"] * jax.random.normal(rng, x.shape), hp)


def fixed_noise(seed, index, shape):
  """The seed's denoising protocol: one noisy copy of the training set, drawn once. Example i's
  noise is N(0, 1) from a key of (seed, i), so every epoch sees the same noisy copy without
  holding 60,000 noisy images in memory."""
  base = jax.random.fold_in(jax.random.key(seed), 0x0D15E)
  return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(base, i), shape))(index)


def ae_step_fixed_noise(state, batch, rng, hp):
  """ae_step with the seed's fixed noisy copy (noisy_train = train + 0.55 * noise, drawn once)."""
  del rng
  x = batch["x"]
  noise = fixed_noise(hp["noise_seed"], batch["i"], x.shape[1:])
  return _ae_update(state, batch, x + hp["noise_std"] * noise, hp)


def vae_step(state, batch, rng, hp):
  """One VAE step on the negative ELBO: per example, the reconstruction negative log-likelihood
  summed over pixels (Bernoulli: BCE; Gaussian with unit variance: SSE / 2, up to a constant) plus
  hp["beta"] * KL(q(z|x) || N(0, I))."""
  vae = state["ae"]
  x, w = batch["x"], batch["w"]

  def loss_fn(params):
    out = vae.apply_fn({"params": params}, x, train=True, rngs={"noise": rng})
    n_pix = x[0].size
    mean_loss, metrics = _recon_losses(out["logits"], x, w, hp["bce"])
    nll = jnp.where(hp["bce"] > 0.5, losses.bce_logits_per_example(out["logits"], x) * n_pix,
                    0.5 * losses.mse(jax.nn.sigmoid(out["logits"]), x) * n_pix)
    kl = losses.gaussian_kl(out["mean"], out["logvar"])
    wmean = lambda v: jnp.sum(v * w) / jnp.sum(w)
    loss = wmean(nll + hp["beta"] * kl)
    return loss, {**metrics, "recon_nll": wmean(nll), "kl": wmean(kl), "elbo": -wmean(nll + kl)}

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(vae.params)
  return {"ae": vae.apply_gradients(grads=grads)}, {"loss": loss, **metrics}
