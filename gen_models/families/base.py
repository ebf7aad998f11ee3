"""What every model family shares: the Family record and the helpers its modules use.

Each family module (gan1d, image_gan, autoencoder, vae) imports this module, never the package,
so the package's registry (gen_models.families) can import the family modules at its top.
"""

import dataclasses
import os
from typing import Callable, Optional

import jax

from gen_models import config as config_lib
from gen_models import rundir
from gen_models import state as state_lib
from gen_models.config import ConfigError


@dataclasses.dataclass(frozen=True, eq=False)
class Report:
  """A family's presentation: how its sweeps are reported and compared."""

  table: Callable  # cfgs -> columns [(metric, label, lower is better? / None)] (metric_specs)
  verdict_metrics: dict  # the metrics every arm is compared on {metric: lower is better?}
  rank_by: str  # the primary metric: rows ranked by it; the verdict's and the design's metric
  notes: Callable  # (cfgs, summary) -> markdown template ("" for none)
  extra_rows: Callable  # (summary, columns) -> [[cells]] under the metric table (real data, floors)
  sweep_figures: Callable  # (exp_dir, summary, curves, arm_cfgs) -> {name: path}
  floors: tuple = ()  # the <metric>_floor names its notes may use (gen_models.notes)
  # The smallest difference in the primary metric (rank_by) worth finding: seeds on demand stop
  # with "equivalent within +-sesoi" once an interval lies inside it (--delta overrides).
  sesoi: Optional[float] = None


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
  name: str
  make_task: Callable  # (cfg, data, key, run_dir=None) -> loop.Task
  step: Callable  # cfg -> the step function (a cached object: equal steps share a compiled program)
  # cfg -> config keys that are traced values of the step (arms differing only in them vmap
  # together)
  traced_keys: Callable
  validate: Callable  # cfg -> None; raises config.ConfigError for what only this family knows
  evaluate_saved: Callable  # (cfg, state, data, key) -> metrics of a restored state
  # (cfg, state, data, rows, run_dir, key, title) -> paths of a finished run's figures
  artifacts: Callable
  # (cfg, data) -> the feature-extractor ensemble that scores its images, or None
  extractor_info: Callable
  needs_test: Callable  # cfg -> whether its evaluation needs the dataset's test split
  scores_images: Callable  # cfg -> whether its evaluation uses the classifier ensemble
  report: Report  # how its sweeps are reported and compared
  sample: Optional[Callable] = None  # (cfg, state, key, n) -> uint8 images (n, 28, 28)
  cannot_sample: str = ""  # why `sample` is None, for the CLI's error
  # state -> the TrainState images are drawn from (EMA when on)
  generator_of: Optional[Callable] = None


def describe(state) -> str:
  """'g: 852,609 parameters (+12,672 BatchNorm statistics), d: 212,865 parameters'."""
  parts = []
  for name in sorted(state, key=lambda n: n != "g"):
    sub = state[name]
    if not hasattr(sub, "params"):  # e.g. G's EMA weights
      continue
    text = f"{name}: {state_lib.param_count(sub.params):,} parameters"
    stats = state_lib.param_count(sub.batch_stats) if sub.batch_stats else 0
    parts.append(text + (f" (+{stats:,} statistics)" if stats else ""))
  return ", ".join(parts)


def first_seed_files(exp_dir, summary, arm_cfgs, *names):
  """(arm, cfg, seed, path) of the first of `names` that exists under each arm's first finished
  seed's samples/ directory, for the sweep figures."""
  for (arm, _, cfg, _), arm_summary in zip(arm_cfgs, summary["arms"]):
    if not arm_summary["seeds"]:
      continue
    seed = arm_summary["seeds"][0]
    paths = [os.path.join(rundir.ExpPaths(exp_dir).run(arm, seed).samples, n) for n in names]
    found = [p for p in paths if os.path.exists(p)]
    if found:
      yield arm, cfg, seed, found[0]


def refuse_denoising(cfg):
  """Input noise (data.noise_std) is for the denoising autoencoders only."""
  if cfg.data.noise_std > 0:
    raise ConfigError(
        "'data.noise_std' (denoising) applies to the autoencoders ae_dense and ae_conv, "
        f"not to model.arch={cfg.model.arch}. Set data.noise_std=0."
    )


# Options only the GANs read: on another family a non-default value would train bit-identically
# to a plain run while config.json records it.
GAN_KEYS = (
    "loss.generator",
    "loss.real_target",
    "loss.fake_target",
    "loss.gen_target",
    "loss.n_critic",
    "loss.gp_weight",
    "loss.r1_gamma",
    "train.g_ema",
    "model.spectral_norm",
    "optim.d_lr",
    "optim.d_decay",
)


def refuse_unused(cfg, family: str, keys, why: str = "") -> None:
  """Refuses keys set away from their defaults that `family` never reads."""
  default = config_lib.Config()
  bad = [k for k in keys if config_lib.get(cfg, k) != config_lib.get(default, k)]
  if bad:
    given = ", ".join(f"{k}={config_lib.short(config_lib.get(cfg, k))}" for k in bad)
    defaults = ", ".join(f"{k}={config_lib.get(default, k)}" for k in bad)
    raise ConfigError(
        f"{given}: the {family} family (model.arch={cfg.model.arch}) does not use"
        f" {'this option' if len(bad) == 1 else 'these options'}{why}, so the run would train"
        f" exactly like one without {'it' if len(bad) == 1 else 'them'}. Remove it (the default is"
        f" {defaults})."
    )


def eval_key(key):
  """The same evaluation noise at every evaluation of a run, so curves and grids are comparable."""
  return jax.random.fold_in(key, 3)
