"""Image GANs (the MLP GAN of seed 004 and the DCGANs of seeds 000-002): scored by classifier
features (FID, KID, precision/recall, class statistics) under the dataset's extractor ensemble."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_models import config as config_lib
from gen_models import loop
from gen_models import metric_specs as specs
from gen_models import models
from gen_models import plots
from gen_models import rundir
from gen_models.config import ConfigError
from gen_models.families import gan
from gen_models.families.base import Family
from gen_models.families.base import Report, refuse_denoising, eval_key, first_seed_files
from gen_models.metrics import features
from gen_models.metrics import fid

MIN_EVAL_SAMPLES = config_lib.MIN_EVAL_SAMPLES_IMAGES
GRID_SAMPLES = 64  # fixed-noise samples drawn at every evaluation


def validate_images(cfg):
  """What every family trained on images checks (the VAE's too)."""

  if cfg.data.name == "gaussian1d":
    raise ConfigError(
        f"model.arch={cfg.model.arch} does not fit data.name=gaussian1d: the image models "
        "need mnist, fashion_mnist or synthetic (mlp1d is the 1-D GAN)."
    )
  if 0 < cfg.eval.num_samples < MIN_EVAL_SAMPLES:
    raise ConfigError(
        f"'eval.num_samples'={cfg.eval.num_samples} is too few for the image metrics: use at least "
        f"{MIN_EVAL_SAMPLES} (FID's 128-d feature covariance needs more samples than "
        "dimensions; the default is 10000), or 0 for no sample-based metrics."
    )
  if 0 < cfg.eval.early_samples < MIN_EVAL_SAMPLES:
    raise ConfigError(
        f"'eval.early_samples'={cfg.eval.early_samples} is too few for the image metrics: use at"
        f" least {MIN_EVAL_SAMPLES}, or 0 for eval.num_samples at every evaluation."
    )
  want = models.arch(cfg.model.arch).output_range
  if want and cfg.data.range != want:
    raise ConfigError(
        f"model.arch={cfg.model.arch} outputs"
        f" {'[-1, 1] (tanh)' if want == 'tanh' else '[0, 1] (sigmoid)'}, so data.range must be"
        f" {want}, not {cfg.data.range}."
    )


def validate(cfg):
  validate_images(cfg)
  refuse_denoising(cfg)
  gan.validate_loss(cfg)


def fixed_samples(cfg, g, key, n=GRID_SAMPLES):
  """G's images for the run's fixed evaluation noise, as uint8 (n, 28, 28)."""
  m = cfg.model
  images = gan.generate(
      g, jax.random.fold_in(eval_key(key), 2), n=n, latent_dim=m.latent_dim, noise=m.noise
  )
  return plots.to_uint8(images, cfg.data.range)


def generate_u8(cfg, g, key, n: int, batch: int = 500) -> np.ndarray:
  """n generated images as uint8 (n, 28, 28), in fixed-size jitted batches, on the host."""
  return np.asarray(generate_u8_device(cfg, g, key, n, batch))


def generate_u8_device(cfg, g, key, n: int, batch: int = 500):
  """n generated images as uint8 (n, 28, 28) on the device (plots.to_uint8's rounding)."""
  m = cfg.model
  out = []
  for i in range(0, n, batch):
    x = gan.generate(g, jax.random.fold_in(key, i), n=batch, latent_dim=m.latent_dim, noise=m.noise)
    x = x[..., 0]
    if cfg.data.range == "tanh":
      x = (x + 1.0) / 2.0
    out.append(jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.uint8))
  return jnp.concatenate(out)[:n]


def _score_group(cfg, data, images_u8) -> list:
  """The image metrics of a group's runs, (R, n, 28, 28) on the device, in one program per
  extractor; one record per run (class_hist dropped, as the loop logs scalars)."""
  out = features.get(cfg.data.name, data).group_metrics(images_u8)
  for m in out:
    m.pop("class_hist")
  return out


def image_metrics(cfg, data, images_u8, log=print) -> dict:
  """Classifier-feature metrics of generated images against the test split under each extractor
  of the dataset's ensemble (<name>_e<k>) and their mean (<name>), with the real-data floors
  (the same metrics between as many training and test images) as <name>_floor."""

  return features.get(cfg.data.name, data, log).metrics(images_u8)


def extractor_info(cfg, data):
  """The identity of the ensemble that scores this run's images (None if nothing is scored)."""
  if cfg.eval.num_samples == 0:
    return None

  return features.get(cfg.data.name, data, lambda s: None).info()


def _eval_images(cfg, state, key, step):
  """The images an evaluation at `step` scores, uint8 on the device: pure in (state, key), so a
  vmapped group draws them for all its runs in one program (loop.Task.eval_images)."""
  n = config_lib.eval_samples(cfg, step)  # fewer outside the headline window when set
  g = gan.generator_of(state)
  return generate_u8_device(cfg, g, jax.random.fold_in(eval_key(key), 3), n)


def _evaluate(cfg, run_dir, key, data, state, step, images=None):
  out = {}
  g = gan.generator_of(state)
  if run_dir:
    path = os.path.join(rundir.RunPaths(run_dir).samples, f"step_{step:07d}.png")
    out["_images"] = {"samples": plots.save_grid(fixed_samples(cfg, g, key), path)}
  if cfg.eval.num_samples > 0 and "test" in data:
    n = config_lib.eval_samples(cfg, step)
    images = _eval_images(cfg, state, key, step) if images is None else images
    # scored with the group's other runs at this step (loop.evaluate), in one program
    out["_score"] = ((cfg.data.name, n), images, functools.partial(_score_group, cfg, data))
    ens = features.get(cfg.data.name, data)
    out["_label"] = f"(mean of {len(ens)} extractors {ens.ident})"
  return out


def make_task(cfg, data, key, run_dir=None):
  train_x = data["train"]["x"]
  return loop.Task(
      init=gan.init_fn(cfg, train_x.shape[1:]),
      step=gan.step(cfg),
      spec=gan.batch_spec(cfg, train_x.shape[0]),
      hparams=gan.hparams(cfg),
      evaluate=functools.partial(_evaluate, cfg, run_dir, key, data),
      eval_images=(
          functools.partial(_eval_images, cfg)
          if cfg.eval.num_samples > 0 and "test" in data
          else None
      ),
      examples_per_step=cfg.train.batch_size,
      cost_per_step=gan.cost_per_step(cfg),
      unit="img",
  )


def evaluate_saved(cfg, state, data, key):
  if cfg.eval.num_samples == 0:
    return {}
  images = generate_u8(
      cfg, gan.generator_of(state), jax.random.fold_in(eval_key(key), 3), cfg.eval.num_samples
  )
  return image_metrics(cfg, data, images, log=lambda s: None)


def sample(cfg, state, key, n):
  return generate_u8(cfg, gan.generator_of(state), key, n)


def latent_walk(cfg, g, n=12):
  """For a 2-D latent: G over an n x n grid of z (the prior's range: [-1, 1]^2 for uniform,
  normal quantiles 2.5%..97.5% for normal) as an (n*n, 28, 28) uint8 batch, rows = z[0]."""
  if cfg.model.noise == "uniform":
    axis = np.linspace(-1.0, 1.0, n)
  else:
    from scipy import special  # pylint: disable=g-import-not-at-top

    axis = special.ndtri(np.linspace(0.025, 0.975, n))
  z = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
  return plots.to_uint8(gan.apply_g(g, z), cfg.data.range)


def artifacts(cfg, state, data, rows, run_dir, key, title):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  sample_dir = rundir.RunPaths(run_dir).samples
  g = gan.generator_of(state)
  out = [plots.save_grid(fixed_samples(cfg, g, key), os.path.join(sample_dir, "final.png"))]
  steps_png = sorted(
      f for f in os.listdir(sample_dir) if f.startswith("step_") and f.endswith(".png")
  )
  if steps_png:
    frames = [np.asarray(Image.open(os.path.join(sample_dir, f))) for f in steps_png]
    plots.save_gif(frames, os.path.join(sample_dir, "progress.gif"))
    pick = np.unique(
        np.linspace(0, len(steps_png) - 1, min(len(steps_png), 10)).round().astype(int)
    )
    out.append(
        plots.progress_strip(
            [(int(steps_png[i][5:12]), frames[i]) for i in pick],
            os.path.join(sample_dir, "progress.png"),
            title + ": the same 8 latent vectors over training",
        )
    )
  if cfg.model.latent_dim == 2:
    out.append(
        plots.save_grid(latent_walk(cfg, g), os.path.join(sample_dir, "latent_walk.png"), cols=12)
    )
  if cfg.eval.num_samples > 0 and "test" in data:

    images = generate_u8(cfg, g, jax.random.fold_in(eval_key(key), 3), cfg.eval.num_samples)
    ensemble = features.get(cfg.data.name, data)
    probs, _ = ensemble.members[0](images)
    real_probs, _ = ensemble.real(0, min(len(images), len(data["test"]["x"])))
    out.append(
        plots.class_histogram(
            fid.class_stats(probs)["class_hist"],
            fid.class_stats(real_probs)["class_hist"],
            os.path.join(sample_dir, "classes.png"),
            f"{title}: classes of {len(images):,} generated images",
        )
    )
  out.append(
      plots.training_curves(
          rows,
          os.path.join(sample_dir, "curves.png"),
          [
              ("losses", ["train/d_loss", "train/g_loss"], False),
              *[(t, keys, False) for t, keys in gan.loss_of(cfg).curves],
              ("classifier FID", ["eval/fid", "eval/fid_floor"], True),
          ],
          title,
      )
  )
  return out


IMAGE_COLUMNS = specs.columns(specs.IMAGE)
FLOOR_KEYS = specs.floors(specs.IMAGE)


def table(cfgs):
  """The image metrics, the losses, and each arm's loss's own D metrics (accuracy only where D's
  output is a classification)."""
  d_cols = []
  for cfg in cfgs:
    d_cols += [c for c in gan.loss_of(cfg).columns if c not in d_cols]
  return IMAGE_COLUMNS + specs.columns(specs.GAN_LOSSES) + [(k, l, None) for k, l in d_cols]


NOTES = (
    """\
- Rows are ranked by FID (best first). Image metrics use {n:,} generated images against the first
  {n:,} images of the test split, in the feature spaces of an ensemble of small LeNet classifiers
  trained on the same dataset (one recipe, different seeds): {extractors}. Each metric is computed
  under every extractor (`<metric>_e<k>` in summary.json, the per-extractor FID table below) and the
  table shows their mean. The *floor* row gives each metric between {n:,} real training images and
  the same test images: what real data scores.
"""
    + specs.notes(specs.IMAGE)
    + """\
- These numbers are **not comparable to Inception-FID values in papers** (e.g. Lucic et al. 2018):
  the features come from a different, much smaller network trained on this dataset, so the scale
  differs; compare them only within this repository and dataset.
- D loss, G loss and D's own outputs (for BCE: D(x), D(G(z)) and its accuracy on real and on fake
  images; a WGAN critic's scores are not probabilities, so it shows its W1 estimate instead): means
  over the last {log} training steps of each run (D's accuracy near 0.5 on both is where the seed
  notes stop training; it is logged, not used to stop).
- ± is the sample standard deviation over seeds.
"""
)
EMA_NOTE = (
    "- Arms with `train.g_ema` > 0 are evaluated and sampled with G's exponential moving average"
    " weights (debiased, as `optax.ema(debias=True)`: G's initial weights get no share) and those"
    " weights' own BatchNorm statistics (a train-mode forward of each step's latents through the"
    " averaged weights); G and D train exactly as without EMA.\n"
)


def notes(cfgs, summary):
  del summary
  return NOTES + (EMA_NOTE if any(c.train.g_ema > 0 for c in cfgs) else "")


def floor_row(summary, cols, label="*floor: real train vs test*"):
  floors_ = summary.get("floors") or {}
  if not floors_:
    return []
  cells = [label, "-"] + [
      f"*{floors_[FLOOR_KEYS[k]]:.4f}*" if k in FLOOR_KEYS and FLOOR_KEYS[k] in floors_ else ""
      for k, _, _ in cols
  ]
  return [cells]


def sweep_figures(exp_dir, summary, curves, arm_cfgs):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  out = {}
  floors_ = summary["floors"]
  if any("fid" in a["metrics"] for a in summary["arms"]):
    out["fid"] = plots.sweep_curves(
        curves,
        [
            ("classifier FID (lower is better)", "eval/fid", True),
            ("recall", "eval/recall", False),
            ("classes covered", "eval/classes_covered", False),
        ],
        os.path.join(exp_dir, "fid.png"),
        summary["experiment"] + ": evaluation over training (mean over seeds, bands)",
        floors={"eval/fid": floors_.get("fid_floor"), "eval/recall": floors_.get("recall_floor")},
    )
  has_fid = any("fid" in a["metrics"] for a in summary["arms"])
  if has_fid and any("cost/flops" in r for runs in curves.values() for rows in runs for r in rows):
    # Where one arm overtakes another at equal compute (an arm with n_critic 5 costs ~5x a step).
    out["budget"] = plots.sweep_curves(
        curves,
        [("classifier FID (lower is better)", "eval/fid", True)],
        os.path.join(exp_dir, "budget.png"),
        summary["experiment"] + ": FID against training compute (mean over seeds, bands)",
        floors={"eval/fid": floors_.get("fid_floor")},
        x="cost/flops",
        xlabel="training FLOPs (XLA's count of the step x steps)",
    )
  panels = [("D loss", "train/d_loss", False), ("G loss", "train/g_loss", False)]
  for cfg in [c for _, _, c, _ in arm_cfgs]:
    for title, keys in gan.loss_of(cfg).curves:
      panels += [(f"{title}: {k[6:]}", k, False) for k in keys if k not in [p[1] for p in panels]]
  out["curves"] = plots.sweep_curves(
      curves,
      panels[:6],
      os.path.join(exp_dir, "curves.png"),
      summary["experiment"] + ": mean over seeds, bands = ±1 std (dark) and min-max (light)",
  )
  grids = [
      (f"{arm} (seed {seed}, step {cfg.train.steps})", np.asarray(Image.open(path)))
      for arm, cfg, seed, path in first_seed_files(exp_dir, summary, arm_cfgs, "final.png")
  ]
  if grids:
    out["samples"] = plots.labelled_grids(
        grids,
        os.path.join(exp_dir, "samples.png"),
        "final samples, the same fixed latent vectors in every arm",
    )
  return out


FAMILY = Family(
    name="image_gan",
    make_task=make_task,
    step=gan.step,
    traced_keys=gan.traced_keys,
    validate=validate,
    evaluate_saved=evaluate_saved,
    artifacts=artifacts,
    extractor_info=extractor_info,
    needs_test=lambda cfg: cfg.eval.num_samples > 0,
    scores_images=lambda cfg: cfg.eval.num_samples > 0,
    sample=sample,
    generator_of=gan.generator_of,
    report=Report(
        floors=tuple(FLOOR_KEYS.values()),
        sesoi=5.0,
        table=table,
        verdict_metrics=specs.compared(specs.IMAGE),
        rank_by="fid",
        notes=notes,
        extra_rows=floor_row,
        sweep_figures=sweep_figures,
    ),
)
