"""Hinge loss (Lim & Ye 2017; Miyato et al. 2018, as in compare_gan's `hinge` and StudioGAN's):
D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimises -E[D(G(z))]."""

import jax
import jax.numpy as jnp

from gen_models.gan_losses.base import GanLoss, register, wmean


def d_loss(logits_real, logits_fake, hp, w):
  del hp
  return wmean(jax.nn.relu(1.0 - logits_real), w) + wmean(jax.nn.relu(1.0 + logits_fake), w)


def g_loss(logits_fake, hp, w):
  del hp
  return -wmean(logits_fake, w)


def metrics(logits_real, logits_fake, w):
  return {
      "d_score_real": wmean(logits_real, w),
      "d_score_fake": wmean(logits_fake, w),
      "d_acc_real": wmean((logits_real > 0).astype(jnp.float32), w),
      "d_acc_fake": wmean((logits_fake < 0).astype(jnp.float32), w),
  }


register(
    GanLoss(
        name="hinge",
        d_loss=d_loss,
        g_loss=g_loss,
        metrics=metrics,
        curves=(
            ("D scores (margin ±1)", ["train/d_score_real", "train/d_score_fake"]),
            ("D accuracy", ["train/d_acc_real", "train/d_acc_fake"]),
        ),
        columns=(("d_acc_real", "D acc. real"), ("d_acc_fake", "D acc. fake")),
    )
)
