"""Least-squares GAN (Mao et al. 2017, the a-b-c form as in compare_gan's `lsgan`): D minimises
1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2], G minimises 1/2 E[(D(G(z)) - c)^2], with a, b, c =
loss.fake_target, loss.real_target and G's target (defaults 0, 1, 1), so label smoothing applies."""

import jax.numpy as jnp

from gen_models.gan_losses.base import GanLoss, register, wmean


def d_loss(logits_real, logits_fake, hp, w):
  return 0.5 * (
      wmean(jnp.square(logits_real - hp["real_target"]), w)
      + wmean(jnp.square(logits_fake - hp["fake_target"]), w)
  )


def g_loss(logits_fake, hp, w):
  return 0.5 * wmean(jnp.square(logits_fake - hp["gen_target"]), w)


def metrics(logits_real, logits_fake, w):
  return {
      "d_real": wmean(logits_real, w),
      "d_fake": wmean(logits_fake, w),
      "d_acc_real": wmean((logits_real > 0.5).astype(jnp.float32), w),
      "d_acc_fake": wmean((logits_fake < 0.5).astype(jnp.float32), w),
  }


register(
    GanLoss(
        name="lsgan",
        d_loss=d_loss,
        g_loss=g_loss,
        metrics=metrics,
        smoothing=True,
        hparams={
            "real_target": (("loss.real_target",), float),
            "fake_target": (("loss.fake_target",), float),
            "gen_target": (
                ("loss.gen_target", "loss.real_target"),
                lambda g, r: r if g is None else g,
            ),
        },
        curves=(
            ("D outputs (targets 1 / 0)", ["train/d_real", "train/d_fake"]),
            ("D accuracy (threshold 0.5)", ["train/d_acc_real", "train/d_acc_fake"]),
        ),
        columns=(("d_acc_real", "D acc. real"), ("d_acc_fake", "D acc. fake")),
    )
)
