"""Pure loss functions. Every GAN loss takes D's *logits*, so no sigmoid is ever saturated in
float32.

Targets implement label smoothing: none (real 1 / fake 0), one-sided (0.9 / 0), two-sided (0.9 /
0.1).
`weights` (optional, shape (B,)) give a weighted mean, used where a batch is padded to a fixed
shape (the 1-D seed protocol's 333/333/334 minibatches).
"""

import jax
import jax.numpy as jnp


def _mean(x, weights=None):
  x = x.reshape(x.shape[0], -1).mean(axis=1) if x.ndim > 1 else x
  if weights is None:
    return x.mean()
  return jnp.sum(x * weights) / jnp.sum(weights)


def bce_with_logits(logits, targets):
  """Elementwise binary cross-entropy -[t log s(l) + (1 - t) log(1 - s(l))], stable for any l."""
  # log s(l) = -softplus(-l), log(1 - s(l)) = -softplus(l)
  return targets * jax.nn.softplus(-logits) + (1.0 - targets) * jax.nn.softplus(logits)


def discriminator_loss(logits_real, logits_fake, real_target=1.0, fake_target=0.0, weights=None):
  """BCE of D on real and fake, as the mean over the concatenated batch (what Keras'
  train_on_batch on [real; fake] reports: about log 2 = 0.693 at equilibrium)."""
  loss_real = _mean(bce_with_logits(logits_real, real_target), weights)
  loss_fake = _mean(bce_with_logits(logits_fake, fake_target), weights)
  return 0.5 * (loss_real + loss_fake)


def generator_loss_ns(logits_fake, target=1.0, weights=None):
  """Non-saturating heuristic: BCE(D(G(z)), target), i.e. -log D(G(z)) for target 1.
  Its gradient w.r.t. the logit is -(1 - D) -> -1 when D(G(z)) -> 0: strong early signal."""
  return _mean(bce_with_logits(logits_fake, target), weights)


def generator_loss_minimax(logits_fake, fake_target=0.0, weights=None):
  """The minimax objective: G minimises D's loss on fakes negated, -BCE(D(G(z)), fake_target),
  i.e. log(1 - D(G(z))) for fake_target 0. Its gradient -D -> 0 when D(G(z)) -> 0: it saturates."""
  return -_mean(bce_with_logits(logits_fake, fake_target), weights)


def generator_loss(logits_fake, minimax, gen_target=1.0, fake_target=0.0, weights=None):
  """`minimax` is a traced 0/1 number, so both losses live in one compiled program (sweep arms
  differing only in the loss run as one vectorised program)."""
  ns = generator_loss_ns(logits_fake, gen_target, weights)
  mm = generator_loss_minimax(logits_fake, fake_target, weights)
  return jnp.where(minimax > 0.5, mm, ns)


def mse(pred, target):
  """Mean squared error per example (mean over pixels), shape (B,)."""
  return jnp.mean(jnp.square(pred - target).reshape(pred.shape[0], -1), axis=1)


def bce_logits_per_example(logits, target):
  return jnp.mean(bce_with_logits(logits, target).reshape(logits.shape[0], -1), axis=1)


def gaussian_kl(mean, logvar):
  """KL(N(mean, exp(logvar)) || N(0, I)) per example, summed over latent dims."""
  return 0.5 * jnp.sum(jnp.exp(logvar) + jnp.square(mean) - 1.0 - logvar, axis=-1)
