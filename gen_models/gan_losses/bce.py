"""The seeds' loss: binary cross-entropy for D, with label smoothing through its targets, and G's
non-saturating (ns) or minimax objective. Both G objectives are one registry entry with a traced
0/1 flag, so ns and minimax arms share one compiled program."""

import jax
import jax.numpy as jnp

from gen_models import losses
from gen_models.gan_losses.base import GanLoss, register


def d_loss(logits_real, logits_fake, hp, w):
  return losses.discriminator_loss(
      logits_real, logits_fake, hp["real_target"], hp["fake_target"], w
  )


def g_loss(logits_fake, hp, w):
  return losses.generator_loss(logits_fake, hp["minimax"], hp["gen_target"], hp["fake_target"], w)


def metrics(logits_real, logits_fake, w):
  wsum = jnp.sum(w)
  mean = lambda v: jnp.sum(v * w) / wsum
  return {
      "d_real": mean(jax.nn.sigmoid(logits_real)),  # mean D(x)
      "d_fake": mean(jax.nn.sigmoid(logits_fake)),  # mean D(G(z)) before D's update
      "d_acc_real": mean((logits_real > 0).astype(jnp.float32)),
      "d_acc_fake": mean((logits_fake < 0).astype(jnp.float32)),
  }


BCE = register(
    GanLoss(
        name="bce",
        d_loss=d_loss,
        g_loss=g_loss,
        metrics=metrics,
        smoothing=True,
        hparams={
            "real_target": (("loss.real_target",), float),
            "fake_target": (("loss.fake_target",), float),
            # G's target for ns: loss.gen_target, or the real target as the seeds do
            "gen_target": (
                ("loss.gen_target", "loss.real_target"),
                lambda g, r: r if g is None else g,
            ),
            "minimax": (("loss.generator",), lambda name: name == "minimax"),
        },
        curves=(
            ("D outputs", ["train/d_real", "train/d_fake"]),
            ("D accuracy", ["train/d_acc_real", "train/d_acc_fake"]),
        ),
        columns=(("d_acc_real", "D acc. real"), ("d_acc_fake", "D acc. fake")),
    ),
    "ns",
    "minimax",
)
