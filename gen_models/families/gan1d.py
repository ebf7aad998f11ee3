"""The 1-D Gaussian GAN (seeds 002/003): G learns N(0, 1) from 1000 draws; scored by W1 and KS to
N(0, 1) itself, the seed's histogram KL, and moments."""

import os

import jax
import numpy as np

from gen_models import config as config_lib
from gen_models import data as data_lib
from gen_models import loop
from gen_models import metric_names as names
from gen_models import metric_specs as specs
from gen_models import plots
from gen_models import rundir
from gen_models.config import ConfigError
from gen_models.families import gan
from gen_models.families.base import Family
from gen_models.families.base import Report, refuse_denoising, eval_key, first_seed_files
from gen_models.metrics import distribution

MIN_EVAL_SAMPLES, MIN_KL_SAMPLES = config_lib.MIN_EVAL_SAMPLES_1D, config_lib.MIN_KL_SAMPLES


def validate(cfg):
  e = cfg.eval
  if cfg.data.name != "gaussian1d":
    raise ConfigError(
        f"model.arch={cfg.model.arch} does not fit data.name={cfg.data.name}: "
        f"{cfg.model.arch} is the 1-D GAN and needs data.name=gaussian1d."
    )
  if e.num_samples < MIN_EVAL_SAMPLES:
    raise ConfigError(
        f"'eval.num_samples'={e.num_samples} is too few for the 1-D GAN's metrics (W1, KS, "
        f"moments): use at least {MIN_EVAL_SAMPLES} (the default is 100000)."
    )
  if e.kl_samples < MIN_KL_SAMPLES:
    raise ConfigError(
        f"'eval.kl_samples'={e.kl_samples} is too few for the seed's 100-bin histogram KL: "
        f"use at least {MIN_KL_SAMPLES} (the seed uses 1000)."
    )
  refuse_denoising(cfg)
  if cfg.train.g_ema > 0:
    raise ConfigError("train.g_ema is implemented for the image GANs only.")
  gan.validate_loss(cfg)


def floors(cfg) -> dict:
  """Sampling floors: what a perfect generator scores at these sample counts."""
  kl = distribution.kl_floor(cfg.eval.kl_samples)
  precise = distribution.precise_floor(cfg.eval.num_samples)
  return {"kl_floor": kl["median"], "w1_floor": precise["w1"], "ks_floor": precise["ks"]}


def eval_fn(cfg, real, key):
  """The evaluation. Its noise is the same at every evaluation, so the latents (100,000 x 16
  threefry draws cost ~3x the G forward on CPU) are drawn once per run, at the first call."""
  m = cfg.model
  cache = {}

  def evaluate(state, step):
    del step
    if not cache:
      # pylint: disable-next=protected-access
      cache["small"] = gan._latent(
          jax.random.fold_in(key, 0), (cfg.eval.kl_samples, m.latent_dim), m.noise
      )
      # pylint: disable-next=protected-access
      cache["large"] = gan._latent(
          jax.random.fold_in(key, 1), (cfg.eval.num_samples, m.latent_dim), m.noise
      )
      # The training sample itself is only 1000 draws: a G that reproduced it exactly would
      # still be this far from N(0,1).
      cache["real"] = {
          "w1_real": distribution.w1_to_normal(real),
          "ks_real": distribution.ks_to_normal(real),
          **floors(cfg),
      }
    g = gan.generator_of(state)
    small, large = gan.apply_g(g, cache["small"]), gan.apply_g(g, cache["large"])
    out = distribution.evaluate(real, np.asarray(small), np.asarray(large))
    out.update(cache["real"])
    return out

  return evaluate


def make_task(cfg, data, key, run_dir=None):
  del run_dir
  train_x = data["train"]["x"]
  return loop.Task(
      init=gan.init_fn(cfg, train_x.shape[1:]),
      step=gan.step(cfg),
      spec=gan.batch_spec(cfg, train_x.shape[0]),
      hparams=gan.hparams(cfg),
      evaluate=eval_fn(cfg, train_x, eval_key(key)),
      examples_per_step=cfg.train.batch_size,
      cost_per_step=gan.cost_per_step(cfg),
      unit="ex",
  )


def evaluate_saved(cfg, state, data, key):
  return eval_fn(cfg, data["train"]["x"], eval_key(key))(state, -1)


def artifacts(cfg, state, data, rows, run_dir, key, title):
  sample_dir = rundir.RunPaths(run_dir).samples
  m = cfg.model
  fake = np.asarray(
      gan.generate(
          gan.generator_of(state),
          jax.random.fold_in(eval_key(key), 1),
          n=cfg.eval.num_samples,
          latent_dim=m.latent_dim,
          noise=m.noise,
      )
  )
  os.makedirs(sample_dir, exist_ok=True)
  np.save(os.path.join(sample_dir, "generated.npy"), fake[:20000, 0])  # for the sweep report
  return [
      plots.density_1d(data["train"]["x"], fake, os.path.join(sample_dir, "density.png"), title),
      plots.training_curves(
          rows,
          os.path.join(sample_dir, "curves.png"),
          [
              ("losses", ["train/d_loss", "train/g_loss"], False),
              *[(t, keys, False) for t, keys in gan.loss_of(cfg).curves[:1]],
              ("histogram KL (1000 vs 1000)", ["eval/kl", "eval/kl_floor"], False),
              ("W1 / KS to N(0,1)", ["eval/w1", "eval/ks", "eval/w1_floor"], True),
          ],
          title,
      ),
  ]


TABLE = specs.columns(specs.GAN1D)
TARGETS = {"mean": 0.0, "std": 1.0, "skew": 0.0, "kurtosis": 0.0}
FLOOR_KEYS = specs.floors(specs.GAN1D)

NOTES = (
    specs.notes(specs.GAN1D[:3])
    + """\
- *the real training samples*: W1 and KS of each run's 1000 real training samples to N(0,1) (mean
  over runs). The GAN only ever sees these 1000 points, so a generator that reproduced them exactly
  would score about this; W1 well below it would mean smoothing beyond the data.
"""
    + specs.notes(specs.GAN1D[3:])
    + """\
- ± is the sample standard deviation over seeds; **bold** marks the best arm's mean only where the
  paired verdicts below back it.
"""
)


def notes(cfgs, summary):
  del cfgs
  return NOTES if summary["floors"] else ""


def extra_rows(summary, cols):
  real = ["*the real training samples*", "-"]
  for key, _, _ in cols:
    vals = [
        a["metrics"][names.real(key)]["mean"]
        for a in summary["arms"]
        if names.real(key) in a["metrics"]
    ]
    real.append(f"*{np.mean(vals):.4f}*" if vals else "")
  rows = [real]
  floors_ = summary.get("floors") or {}
  if floors_:
    floor = ["*floor (perfect G)*", "-"]
    for key, _, _ in cols:
      if key in FLOOR_KEYS and FLOOR_KEYS[key] in floors_:
        floor.append(f"*{floors_[FLOOR_KEYS[key]]:.4f}*")
      else:
        floor.append(f"*{TARGETS[key]:g}*" if key in TARGETS else "")
    rows.append(floor)
  return rows


def sweep_figures(exp_dir, summary, curves, arm_cfgs):
  floors_ = summary["floors"]
  out = {}
  out["curves"] = plots.sweep_curves(
      curves,
      [
          ("W1 to N(0,1) (100k samples)", "eval/w1", True),
          ("histogram KL, seed metric (1000 vs 1000)", "eval/kl", False),
          ("D loss", "train/d_loss", False),
          ("G loss", "train/g_loss", False),
      ],
      os.path.join(exp_dir, "curves.png"),
      summary["experiment"] + ": mean over seeds, bands = ±1 std (dark) and min-max (light)",
      floors={"eval/w1": floors_.get("w1_floor"), "eval/kl": floors_.get("kl_floor")},
  )
  out["final"] = plots.final_bars(
      summary["arms"],
      ["w1", "ks", "kl"],
      os.path.join(exp_dir, "final.png"),
      "final metrics (bars: mean, dots: seeds, whiskers: std)",
      floors={k: floors_.get(v) for k, v in FLOOR_KEYS.items()},
  )
  panels = [
      (f"{arm} (seed {seed})", data_lib.gaussian1d(seed, cfg.data.num_real), np.load(path))
      for arm, cfg, seed, path in first_seed_files(exp_dir, summary, arm_cfgs, "generated.npy")
  ]
  if panels:
    out["densities"] = plots.density_grid(
        panels,
        os.path.join(exp_dir, "densities.png"),
        "real (1000 samples) vs generated (20,000 samples)",
    )
  return out


FAMILY = Family(
    name="gan1d",
    make_task=make_task,
    step=gan.step,
    traced_keys=gan.traced_keys,
    validate=validate,
    evaluate_saved=evaluate_saved,
    artifacts=artifacts,
    extractor_info=lambda cfg, data: None,
    needs_test=lambda cfg: False,
    scores_images=lambda cfg: False,
    cannot_sample="it is a 1-D GAN: it generates numbers, not images",
    generator_of=gan.generator_of,
    report=Report(
        floors=tuple(FLOOR_KEYS.values()),
        sesoi=0.01,
        table=lambda cfgs: TABLE,
        verdict_metrics=specs.compared(specs.GAN1D),
        rank_by="w1",
        notes=notes,
        extra_rows=extra_rows,
        sweep_figures=sweep_figures,
    ),
)
