"""Autoencoders of the seed notes: dense (seed 001), denoising (seed 001, input + noise, clean
target), convolutional (seed 000). Scored on the whole test split: MSE, BCE, PSNR."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import config as config_lib
from gen_models import metric_specs as specs
from gen_models import data as data_lib
from gen_models import loop
from gen_models import plots
from gen_models import rundir
from gen_models import state as state_lib
from gen_models import steps
from gen_models.families import image_gan
from gen_models.families.base import GAN_KEYS
from gen_models.families.base import Family
from gen_models.families.base import Report
from gen_models.families.base import eval_key
from gen_models.families.base import first_seed_files
from gen_models.families.base import refuse_unused
from gen_models.metrics import recon


def validate(cfg):
  image_gan.validate_images(cfg)
  refuse_unused(
      cfg, "autoencoder", GAN_KEYS + ("loss.beta", "model.noise"), " (GAN and VAE options)"
  )
  if cfg.data.noise_std == 0:
    refuse_unused(cfg, "autoencoder", ("data.noise",), " without input noise (data.noise_std=0)")


def step(cfg):
  return (
      steps.ae_step_fixed_noise
      if cfg.data.noise == "fixed" and cfg.data.noise_std > 0
      else steps.ae_step
  )


HPARAMS = {
    "noise_std": ("data.noise_std", np.float32),
    "bce": ("loss.recon", lambda r: np.float32(r == "bce")),
    "beta": ("loss.beta", np.float32),
    "noise_seed": ("seed", np.uint32),
}


def hparams(cfg) -> dict:

  return {name: fn(config_lib.get(cfg, key)) for name, (key, fn) in HPARAMS.items()}


def traced_keys(cfg) -> tuple:
  del cfg
  return tuple(key for key, _ in HPARAMS.values()) + state_lib.TRACED_KEYS


def make_task(cfg, data, key, run_dir=None, step_fn=None, evaluate=None):
  del run_dir
  train_x = data["train"]["x"]
  return loop.Task(
      init=functools.partial(state_lib.create_ae_state, cfg, data_shape=tuple(train_x.shape[1:])),
      step=step_fn or step(cfg),
      spec=data_lib.batch_spec(cfg, train_x.shape[0], with_latent=False),
      hparams=hparams(cfg),
      evaluate=evaluate or functools.partial(evaluate_saved, cfg, data=data, key=key),
      examples_per_step=cfg.train.batch_size,
      cost_per_step={"updates": 1, "images": cfg.train.batch_size},
      unit="img",
  )


def recon_metrics(cfg, state, data, key, vae=False):

  out = recon.evaluate(
      state["ae"],
      data["test"]["x"],
      noise_std=cfg.data.noise_std,
      key=jax.random.fold_in(eval_key(key), 4),
      vae=vae,
      bce=cfg.loss.recon == "bce",
  )
  out["test_images"] = len(data["test"]["x"])
  return out


def evaluate_saved(cfg, state, step=-1, *, data, key):
  del step
  return recon_metrics(cfg, state, data, key)


@jax.jit
def _reconstruct(ae, x):
  return jax.nn.sigmoid(ae.apply_fn({"params": ae.params}, x, train=False)["logits"])


@jax.jit
def _encode(ae, x):
  return ae.apply_fn({"params": ae.params}, x, train=False)["z"]


def artifacts(cfg, state, data, rows, run_dir, key, title):
  sample_dir = rundir.RunPaths(run_dir).samples
  ae = state["ae"]
  test_x, test_y = data["test"]["x"], data["test"]["y"]
  x = jnp.asarray(test_x[:10], jnp.float32) / 255.0
  out = []
  if cfg.data.noise_std > 0:  # the seed's 3-row figure: noisy / denoised / clean
    noisy = x + cfg.data.noise_std * jax.random.normal(
        jax.random.fold_in(eval_key(key), 5), x.shape
    )
    rows_u8 = [
        plots.to_uint8(jnp.clip(noisy, 0, 1), "sigmoid"),
        plots.to_uint8(_reconstruct(ae, noisy), "sigmoid"),
        plots.to_uint8(x, "sigmoid"),
    ]
    out.append(
        plots.image_rows(
            rows_u8,
            ["noisy", "denoised", "clean"],
            os.path.join(sample_dir, "denoise.png"),
            f"{title}: noise std {cfg.data.noise_std}",
        )
    )
  else:  # the seed's 2-row figure: originals over reconstructions
    rows_u8 = [plots.to_uint8(x, "sigmoid"), plots.to_uint8(_reconstruct(ae, x), "sigmoid")]
    out.append(
        plots.image_rows(
            rows_u8, ["original", "reconstruction"], os.path.join(sample_dir, "recon.png"), title
        )
    )
  codes = np.concatenate([
      np.asarray(_encode(ae, jnp.asarray(test_x[i : i + 1000], jnp.float32) / 255.0))
      for i in range(0, min(5000, len(test_x)), 1000)
  ])
  if codes.shape[1] == 2:
    out.append(
        plots.latent_scatter(
            codes,
            test_y[: len(codes)],
            os.path.join(sample_dir, "latent.png"),
            f"{title}: test codes coloured by label",
        )
    )
  out.append(
      plots.training_curves(
          rows,
          os.path.join(sample_dir, "curves.png"),
          [
              ("training loss", ["train/loss"], True),
              ("test reconstruction MSE", ["eval/mse"], True),
              ("test PSNR (dB)", ["eval/psnr", "eval/noisy_psnr"], False),
          ],
          title,
      )
  )
  return out


TABLE = specs.columns(specs.AUTOENCODER)

NOTES = """\
- Rows are ranked by test MSE (best first).
""" + specs.notes(specs.AUTOENCODER)
DENOISING_NOTE = """\
- Denoising: the noisy input's PSNR is that of the input clipped to [0, 1] (the do-nothing
  denoiser); the gain is the denoised PSNR minus it. Noise is drawn once per evaluation with a fixed
  key.
"""
SPREAD_NOTE = """\
- ± is the sample standard deviation over seeds; **bold** marks the best arm's mean only where the
  paired verdicts below back it.
"""


def notes(cfgs, summary):
  del summary
  return NOTES + (DENOISING_NOTE if any(c.data.noise_std > 0 for c in cfgs) else "") + SPREAD_NOTE


def sweep_figures(exp_dir, summary, curves, arm_cfgs):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  out = {
      "curves": plots.sweep_curves(
          curves,
          [
              ("training loss", "train/loss", True),
              ("test MSE", "eval/mse", True),
              ("test PSNR (dB)", "eval/psnr", False),
          ],
          os.path.join(exp_dir, "curves.png"),
          summary["experiment"] + ": mean over seeds, bands = ±1 std and min-max",
      )
  }
  panels = [
      (arm, path)
      for arm, _, _, path in first_seed_files(
          exp_dir, summary, arm_cfgs, "denoise.png", "recon.png"
      )
  ]
  if panels:
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.2 * len(panels) + 0.3), squeeze=False)
    for ax, (arm, path) in zip(axes[:, 0], panels):
      ax.imshow(np.asarray(Image.open(path)))
      ax.set_title(arm, fontsize=9)
      ax.axis("off")
    # pylint: disable-next=protected-access
    out["samples"] = plots._save(fig, os.path.join(exp_dir, "samples.png"))
  return out


FAMILY = Family(
    name="autoencoder",
    make_task=make_task,
    step=step,
    traced_keys=traced_keys,
    validate=validate,
    evaluate_saved=lambda cfg, state, data, key: evaluate_saved(cfg, state, data=data, key=key),
    artifacts=artifacts,
    extractor_info=lambda cfg, data: None,
    needs_test=lambda cfg: True,
    scores_images=lambda cfg: False,
    cannot_sample=(
        "it is a plain autoencoder: it has no prior to sample from (sample a GAN run or the VAE)"
    ),
    report=Report(
        sesoi=0.0005,
        table=lambda cfgs: TABLE,
        verdict_metrics=specs.compared(specs.AUTOENCODER),
        rank_by="mse",
        notes=notes,
        extra_rows=lambda summary, cols: [],
        sweep_figures=sweep_figures,
    ),
)
