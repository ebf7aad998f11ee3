"""Wasserstein loss with gradient penalty (Gulrajani et al. 2017, as in compare_gan's `wgan` +
`wgangp_penalty`): the critic minimises E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)|| - 1)^2]
at x_hat uniformly between paired real and fake images; G minimises -E[D(G(z))]; n_critic (5)
critic updates per G update. D's outputs are scores, not probabilities: no D(x) or accuracy."""

import jax
import jax.numpy as jnp

from gen_models.gan_losses.base import GanLoss, register, wmean


def d_loss(logits_real, logits_fake, hp, w):
  del hp
  return wmean(logits_fake, w) - wmean(logits_real, w)


def g_loss(logits_fake, hp, w):
  del hp
  return -wmean(logits_fake, w)


def metrics(logits_real, logits_fake, w):
  # The critic's estimate of W1 between the data and G's distribution (up to its Lipschitz scale).
  return {
      "critic_real": wmean(logits_real, w),
      "critic_fake": wmean(logits_fake, w),
      "w_estimate": wmean(logits_real, w) - wmean(logits_fake, w),
  }


def gradient_penalty(d_fn, real, fake, key, hp, w):
  t = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  x_hat = t * real + (1.0 - t) * fake
  # D scores examples independently (no BatchNorm)
  grads = jax.grad(lambda x: jnp.sum(d_fn(x)))(x_hat)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1) + 1e-12)
  gp = wmean(jnp.square(norms - 1.0), w)
  return hp["gp_weight"] * gp, {"gp": gp}


register(
    GanLoss(
        name="wgan_gp",
        d_loss=d_loss,
        g_loss=g_loss,
        metrics=metrics,
        penalty=gradient_penalty,
        n_critic=5,
        hparams={"gp_weight": (("loss.gp_weight",), float)},
        curves=(
            ("critic scores", ["train/critic_real", "train/critic_fake"]),
            ("critic's W1 estimate, gradient penalty", ["train/w_estimate", "train/gp"]),
        ),
        columns=(("w_estimate", "W1 estimate"),),
    )
)
