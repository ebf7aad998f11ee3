"""The convolutional VAE: scored like an autoencoder on the test split (plus the ELBO), and its
prior samples like the image GANs (classifier FID etc.), so both kinds share one table."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import config as config_lib
from gen_models import metric_specs as specs
from gen_models import plots
from gen_models import rundir
from gen_models import steps
from gen_models.families import autoencoder
from gen_models.families import image_gan
from gen_models.families.base import GAN_KEYS
from gen_models.families.base import Family
from gen_models.families.base import Report
from gen_models.families.base import refuse_denoising
from gen_models.families.base import refuse_unused
from gen_models.families.base import eval_key
from gen_models.models import autoencoder as models_ae


def validate(cfg):
  image_gan.validate_images(cfg)
  refuse_denoising(cfg)
  refuse_unused(
      cfg, "vae", GAN_KEYS + ("data.noise", "model.noise"), " (GAN and denoising options)"
  )


@functools.partial(jax.jit, static_argnames=("n", "latent_dim"))
def _decode_prior(ae, key, *, n, latent_dim):
  z = jax.random.normal(key, (n, latent_dim))
  return ae.apply_fn({"params": ae.params}, z, method=models_ae.VAE.generate)


def prior_samples(cfg, state, key, n: int, batch: int = 500) -> np.ndarray:
  """n images decoded from z ~ N(0, I) (decoder means), uint8 (n, 28, 28)."""
  out = []
  for i in range(0, n, batch):
    images = _decode_prior(
        state["ae"], jax.random.fold_in(key, i), n=batch, latent_dim=cfg.model.latent_dim
    )
    out.append(plots.to_uint8(images, "sigmoid"))
  return np.concatenate(out)[:n]


def interpolation(state, test_x, pairs: int = 6, steps_: int = 10) -> np.ndarray:
  """Rows of decoder outputs along straight lines between the posterior means of test pairs."""
  ae = state["ae"]
  x = jnp.asarray(test_x[: 2 * pairs], jnp.float32) / 255.0
  z = ae.apply_fn({"params": ae.params}, x, train=False)["mean"]
  t = jnp.linspace(0.0, 1.0, steps_)[None, :, None]
  path = (z[0::2, None] * (1 - t) + z[1::2, None] * t).reshape(-1, z.shape[1])
  images = ae.apply_fn({"params": ae.params}, path, method=models_ae.VAE.generate)
  return plots.to_uint8(images, "sigmoid")


def evaluate_saved(cfg, state, step=-1, *, data, key):
  out = autoencoder.recon_metrics(cfg, state, data, key, vae=True)
  if cfg.eval.num_samples > 0:
    n = cfg.eval.num_samples if step < 0 else config_lib.eval_samples(cfg, step)
    images = prior_samples(cfg, state, jax.random.fold_in(eval_key(key), 3), n)
    metrics = image_gan.image_metrics(cfg, data, images)
    metrics.pop("class_hist")
    out.update(metrics)
  return out


def make_task(cfg, data, key, run_dir=None):
  return autoencoder.make_task(
      cfg,
      data,
      key,
      run_dir,
      step_fn=steps.vae_step,
      evaluate=functools.partial(evaluate_saved, cfg, data=data, key=key),
  )


def artifacts(cfg, state, data, rows, run_dir, key, title):
  sample_dir = rundir.RunPaths(run_dir).samples
  out = autoencoder.artifacts(cfg, state, data, rows, run_dir, key, title)
  prior = prior_samples(cfg, state, jax.random.fold_in(eval_key(key), 6), 64)
  out.insert(-1, plots.save_grid(prior, os.path.join(sample_dir, "prior_samples.png")))
  out.insert(
      -1,
      plots.save_grid(
          interpolation(state, data["test"]["x"]),
          os.path.join(sample_dir, "interpolation.png"),
          cols=10,
      ),
  )
  return out


TABLE = specs.columns(specs.VAE)

NOTES = """\
- Rows are ranked by test MSE (best first). Reconstruction metrics are on the whole test split; the
  VAE's prior samples get the GANs' classifier metrics.
""" + specs.notes(specs.VAE)


def notes(cfgs, summary):
  del cfgs, summary
  return NOTES + autoencoder.SPREAD_NOTE


FAMILY = Family(
    name="vae",
    make_task=make_task,
    step=lambda cfg: steps.vae_step,
    traced_keys=autoencoder.traced_keys,
    validate=validate,
    evaluate_saved=lambda cfg, state, data, key: evaluate_saved(cfg, state, data=data, key=key),
    artifacts=artifacts,
    extractor_info=image_gan.extractor_info,
    needs_test=lambda cfg: True,
    scores_images=lambda cfg: cfg.eval.num_samples > 0,
    sample=prior_samples,
    report=Report(
        floors=tuple(image_gan.FLOOR_KEYS.values()),
        sesoi=0.0005,
        table=lambda cfgs: TABLE,
        verdict_metrics=specs.compared(specs.VAE),
        rank_by="mse",
        notes=notes,
        extra_rows=lambda summary, cols: image_gan.floor_row(summary, cols),
        sweep_figures=autoencoder.sweep_figures,
    ),
)
