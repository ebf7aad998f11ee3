"""Pure training steps: (state, batch, rng, hparams) -> (state, metrics).

Hyperparameters that do not change shapes (label targets, the loss choice, learning rates)
are traced values, so one compiled program serves every arm of a sweep.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from gen_models import gan_losses
from gen_models import losses


def _d_apply(d, params, inputs, key):
  """D's logits in training mode, and its updated spectral-norm vectors (None without them)."""
  if d.batch_stats:  # static: only spectrally normalised Ds carry statistics
    logits, updates = d.apply_fn(
        {"params": params, "batch_stats": d.batch_stats},
        inputs,
        train=True,
        rngs={"dropout": key},
        mutable=["batch_stats"],
    )
    return logits, updates["batch_stats"]
  return d.apply_fn({"params": params}, inputs, train=True, rngs={"dropout": key}), None


def _d_update(loss, r1, d, x, fake, w, key, hp):
  """One D update on [real; stop_gradient(fake)] (gradients w.r.t. D's parameters only), with the
  loss's penalty and the optional R1 penalty gamma/2 E||grad_x D(x)||^2 on real data."""
  key_pen, key_r1 = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)

  def d_loss_fn(params):
    logits, stats = _d_apply(d, params, jnp.concatenate([x, jax.lax.stop_gradient(fake)]), key)
    logits_real, logits_fake = jnp.split(logits, 2)
    total = loss.d_loss(logits_real, logits_fake, hp, w)
    extra = {}
    d_fn = lambda inputs, k: _d_apply(d, params, inputs, k)[0]
    if loss.penalty is not None:
      value, extra = loss.penalty(
          lambda inputs: d_fn(inputs, key_pen),
          x,
          jax.lax.stop_gradient(fake),
          jax.random.fold_in(key, 3),
          hp,
          w,
      )
      total = total + value
    if r1:
      grads = jax.grad(lambda inputs: jnp.sum(d_fn(inputs, key_r1)))(x)
      r1_value = gan_losses.wmean(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1), w)
      total = total + 0.5 * hp["r1_gamma"] * r1_value
      extra = {**extra, "r1": r1_value}
    return total, (logits_real, logits_fake, stats, extra)

  (d_loss, (logits_real, logits_fake, stats, extra)), grads = jax.value_and_grad(
      d_loss_fn, has_aux=True
  )(d.params)
  d = d.apply_gradients(grads=grads)
  if stats is not None:
    d = d.replace(batch_stats=stats)
  return d, d_loss, logits_real, logits_fake, extra


def _ema_update(ema, g, z, key, decay):
  """G's averaged weights and their own BatchNorm statistics after G's update t.

  Weights: optax.ema's debiased average, step size (1 - d) / (1 - d^t), so G's initial weights get
  no
  share (a plain EMA from them keeps d^t of them: 5% at t = 3000, d = 0.999). Statistics: G's
  running
  statistics belong to G's weights (the averaged weights' activations have other means and scales),
  so
  the averaged G keeps its own, updated by a train-mode forward of this step's latents; G's training
  is
  unchanged."""
  rate = (1.0 - decay) / (1.0 - decay ** g.step.astype(jnp.float32))
  params = optax.incremental_update(g.params, ema["params"], rate)
  stats = ema["batch_stats"]
  if stats:  # static: only Gs with BatchNorm
    stats = g.apply_fn(
        {"params": params, "batch_stats": stats},
        z,
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": key},
    )[1]["batch_stats"]
  return {"params": params, "batch_stats": stats}


def _gan_step(loss, n_critic, r1, ema, state, batch, rng, hp):
  """One GAN step: n_critic D updates, then one G update, sharing G's last forward.

  1. G forward once (train mode; BatchNorm statistics are updated by this forward only).
  2. D update(s) on [real; stop_gradient(fake)]: gradients w.r.t. D's parameters only. With
     n_critic > 1 the batch holds n_critic minibatches; the first n_critic - 1 updates use fakes
     from their own latents, the last one the shared forward's.
  3. G update through the *updated* D: the gradient w.r.t. the fakes is pulled back through
     the saved G forward (jax.vjp), w.r.t. G's parameters only; D's parameters are constants.
  4. With EMA: G's averaged weights (used for evaluation and samples) follow G's new weights, and
     their BatchNorm statistics follow the averaged weights (_ema_update).

  batch: {"x": real (n_critic * B, ...), "z": latent (n_critic * B, Z), "w": example weights}.
  hp: the loss's traced inputs (gen_models.gan_losses), plus "r1_gamma" and "g_ema" when used.
  """
  g, d = state["g"], state["d"]
  x, z, w = batch["x"], batch["z"], batch["w"]
  rng_g, rng_d, rng_dg = jax.random.split(rng, 3)
  if n_critic > 1:
    split = lambda a: a.reshape((n_critic, -1) + a.shape[1:])
    xs, zs, ws = split(x), split(z), split(w)
    for k in range(n_critic - 1):  # earlier critic updates: their own fakes, no G update
      fake_k = g.apply_fn(
          {"params": g.params, "batch_stats": g.batch_stats},
          zs[k],
          train=True,
          mutable=["batch_stats"],
          rngs={"dropout": jax.random.fold_in(rng_g, k + 1)},
      )[0]
      d, *_ = _d_update(loss, r1, d, xs[k], fake_k, ws[k], jax.random.fold_in(rng_d, k + 1), hp)
    x, z, w = xs[-1], zs[-1], ws[-1]

  def g_forward(params):
    fake, updates = g.apply_fn(
        {"params": params, "batch_stats": g.batch_stats},
        z,
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": rng_g},
    )
    return fake, updates

  fake, g_vjp, g_updates = jax.vjp(g_forward, g.params, has_aux=True)
  d, d_loss, logits_real, logits_fake, extra = _d_update(loss, r1, d, x, fake, w, rng_d, hp)

  def g_loss_fn(fake_images):
    # D's statistics are D's update's to change
    logits, _ = _d_apply(d, d.params, fake_images, rng_dg)
    return loss.g_loss(logits, hp, w)

  g_loss, dfake = jax.value_and_grad(g_loss_fn)(fake)
  (g_grads,) = g_vjp(dfake)
  g = g.apply_gradients(grads=g_grads, batch_stats=g_updates.get("batch_stats", g.batch_stats))
  new = {"g": g, "d": d}
  if ema:
    new["g_ema"] = _ema_update(state["g_ema"], g, z, jax.random.fold_in(rng, 4), hp["g_ema"])
  metrics = {
      "d_loss": d_loss,
      "g_loss": g_loss,
      **loss.metrics(logits_real, logits_fake, w),
      **extra,
  }
  return new, metrics


@functools.lru_cache(maxsize=None)
def gan_step_for(loss: gan_losses.GanLoss, n_critic: int = 1, r1: bool = False, ema: bool = False):
  """The step for a loss and its static options. Cached: one function object per combination, so
  the runs of a sweep that agree on them share one compiled program."""
  return functools.partial(_gan_step, loss, n_critic, r1, ema)


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
    nll = jnp.where(
        hp["bce"] > 0.5,
        losses.bce_logits_per_example(out["logits"], x) * n_pix,
        0.5 * losses.mse(jax.nn.sigmoid(out["logits"]), x) * n_pix,
    )
    kl = losses.gaussian_kl(out["mean"], out["logvar"])
    wmean = lambda v: jnp.sum(v * w) / jnp.sum(w)
    loss = wmean(nll + hp["beta"] * kl)
    return loss, {**metrics, "recon_nll": wmean(nll), "kl": wmean(kl), "elbo": -wmean(nll + kl)}

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(vae.params)
  return {"ae": vae.apply_gradients(grads=grads)}, {"loss": loss, **metrics}
