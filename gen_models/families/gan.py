"""What the two GAN families share: the step and its traced inputs, G's EMA, drawing samples."""

import dataclasses
import functools

import jax

from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import gan_losses
from gen_models import models
from gen_models import state as state_lib
from gen_models import steps
from gen_models.config import ConfigError
from gen_models.families.base import refuse_unused


def loss_of(cfg) -> gan_losses.GanLoss:
  return gan_losses.get(cfg.loss.generator)


def n_critic(cfg) -> int:
  return cfg.loss.n_critic or loss_of(cfg).n_critic


def cost_per_step(cfg) -> dict:
  """What one training step costs: n_critic D updates, each on its own B real and B generated
  images (the last generated batch is shared with the one G update)."""
  k, b = n_critic(cfg), cfg.train.batch_size
  return {"g_updates": 1, "d_updates": k, "real_images": k * b, "fake_images": k * b}


def step(cfg):
  return steps.gan_step_for(loss_of(cfg), n_critic(cfg), cfg.loss.r1_gamma > 0, cfg.train.g_ema > 0)


# Traced inputs of the step beyond the loss's own (gen_models.gan_losses), as {hp name: (config
# keys, function)}, present when their option is on.
OPTION_HPARAMS = {"r1_gamma": (("loss.r1_gamma",), float), "g_ema": (("train.g_ema",), float)}


def hparams(cfg) -> dict:
  table = dict(loss_of(cfg).hparams)
  for name, entry in OPTION_HPARAMS.items():
    if config_lib.get(cfg, entry[0][0]) > 0:  # the option is on
      table[name] = entry
  return gan_losses.hparams(table, cfg)


def traced_keys(cfg) -> tuple:
  keys = gan_losses.traced_keys(loss_of(cfg).hparams) + tuple(
      k for keys, _ in OPTION_HPARAMS.values() for k in keys
  )
  return ("seed",) + keys + state_lib.TRACED_KEYS


def validate_loss(cfg):
  """Options that only some losses or architectures support."""

  loss, l = loss_of(cfg), cfg.loss
  if not loss.smoothing and (l.real_target, l.fake_target, l.gen_target) != (1.0, 0.0, None):
    raise ConfigError(
        f"loss.generator={l.generator} has no label targets: leave loss.real_target=1,"
        " loss.fake_target=0 and loss.gen_target=none (label smoothing applies to ns, minimax and"
        " lsgan)."
    )
  if cfg.model.spectral_norm and not models.arch(cfg.model.arch).spectral_norm:
    supported = [a.name for a in models.ARCHS.values() if a.spectral_norm]
    raise ConfigError(
        f"model.spectral_norm is not implemented for model.arch={cfg.model.arch}; "
        f"it is for {', '.join(supported)}."
    )
  refuse_unused(
      cfg, "GAN", ("loss.recon", "loss.beta", "data.noise"), " (autoencoder and VAE options)"
  )
  if loss.penalty is None:
    refuse_unused(
        cfg,
        "GAN",
        ("loss.gp_weight",),
        f" with loss.generator={l.generator} (only wgan_gp has a gradient penalty)",
    )
  if n_critic(cfg) > 1 and cfg.data.sampling == "sequential":
    raise ConfigError(
        "loss.n_critic > 1 draws n_critic minibatches per step, which needs data.sampling=random."
    )


def batch_spec(cfg, num_examples: int):
  """n_critic minibatches per step (one per D update)."""
  spec = data_lib.batch_spec(cfg, num_examples)
  k = n_critic(cfg)
  return spec if k == 1 else dataclasses.replace(spec, batch_size=spec.batch_size * k)


def differentiates_d_twice(cfg) -> bool:
  """R1 and a loss's gradient penalty differentiate D's input gradient again."""
  return cfg.loss.r1_gamma > 0 or loss_of(cfg).penalty is not None


def init_fn(cfg, data_shape):
  return functools.partial(
      state_lib.create_gan_state,
      cfg,
      data_shape=tuple(data_shape),
      d_twice_differentiated=differentiates_d_twice(cfg),
  )


def generator_of(state):
  """G's TrainState with the EMA weights and their own BatchNorm statistics when the run keeps them
  (evaluation and samples use them)."""
  g, ema = state["g"], state.get("g_ema")
  return g if ema is None else g.replace(params=ema["params"], batch_stats=ema["batch_stats"])


@jax.jit
def apply_g(g, z):
  """G(z) in inference mode (BatchNorm uses its running statistics)."""
  return g.apply_fn({"params": g.params, "batch_stats": g.batch_stats}, z, train=False)


_latent = jax.jit(data_lib.sample_latent, static_argnums=(1, 2))


def generate(g, key, *, n, latent_dim, noise):
  """n samples from G in inference mode, for the latents drawn from `key`."""
  return apply_g(g, _latent(key, (n, latent_dim), noise))
