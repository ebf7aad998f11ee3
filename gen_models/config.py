"""Experiment configuration: small frozen dataclasses, dotted overrides, validation.

A config is a tree of frozen dataclasses. `apply_overrides(cfg, {"optim.d_lr": "2e-4"})` parses
each value by the type of the field it targets; `validate(cfg)` checks choices and ranges.
Every problem raises `ConfigError` with a message that names the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any, Optional

CONFIG_VERSION = 2  # 2: optim.eps_form (Keras-exact RMSprop and Adam by default)


class ConfigError(ValueError):
  """A bad experiment name, key or value. The message says what to do."""


def short(value: Any, limit: int = 60, quote: bool = True) -> str:
  """repr(value) (or str with quote=False) cut to `limit` characters for error messages."""
  text = repr(value) if quote else str(value)
  return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


# Sample counts below which a metric means nothing (refused by validate).
MIN_EVAL_SAMPLES_1D = 1000  # W1 / KS / moments of 1-D samples: the W1 floor at 1000 draws is ~0.03
MIN_KL_SAMPLES = 100  # the seed's histogram KL has 100 bins
MIN_EVAL_SAMPLES_IMAGES = 200  # FID's 128-d feature covariance needs more samples than dimensions


@dataclasses.dataclass(frozen=True)
class Data:
  name: str = (
      "gaussian1d"  # gen_models.data.DATASETS: gaussian1d | mnist | fashion_mnist | synthetic
  )
  dir: str = ""  # a directory of IDX .gz files, or a TFDS data_dir
  num_real: int = 1000  # gaussian1d: size of the fixed real sample (seed: 1000 draws of N(0,1))
  num_train: int = 0  # image data: use the first N training images (0 = all)
  # random: uniform with replacement | sequential: the seed's fixed minibatches
  sampling: str = "random"
  range: str = "tanh"  # tanh: images in [-1, 1] | sigmoid: images in [0, 1]
  noise_std: float = 0.0  # autoencoders: std of Gaussian noise added to the input (denoising)
  # denoising: fixed = the seed's one noisy copy drawn once | fresh = new noise every step
  noise: str = "fixed"


@dataclasses.dataclass(frozen=True)
class Model:
  arch: str = "mlp1d"
  latent_dim: int = 16
  hidden: int = 32
  noise: str = "uniform"  # latent prior: uniform U(-1,1) | normal N(0,1)
  dtype: str = "float32"  # compute dtype: float32 | bfloat16
  # fast: exact speed rewrites (sub-pixel convs, ...) | reference: the layers as written
  impl: str = "fast"
  # GANs: spectrally normalise every kernel of D (flax.linen.SpectralNorm)
  spectral_norm: bool = False


@dataclasses.dataclass(frozen=True)
class Loss:
  # the GAN loss (gen_models.gan_losses): ns -log D(G(z)) | minimax log(1 - D(G(z))) | hinge | lsgan
  # | wgan_gp
  generator: str = "ns"
  real_target: float = 1.0  # D's target for real data
  fake_target: float = 0.0  # D's target for generated data
  # G's target for ns (None: same as real_target, as the seeds do)
  gen_target: Optional[float] = None
  n_critic: int = 0  # D updates per G update (0: the loss's own default, 5 for wgan_gp, else 1)
  gp_weight: float = 10.0  # wgan_gp: lambda of the gradient penalty
  r1_gamma: float = 0.0  # R1 penalty gamma/2 E||grad_x D(x)||^2 on real data (0 = off)
  recon: str = "mse"  # autoencoders: mse | bce
  beta: float = 1.0  # VAE: weight of the KL term


@dataclasses.dataclass(frozen=True)
class Optim:
  name: str = "adam"  # adam | rmsprop
  g_lr: float = 1e-3
  d_lr: float = 1e-3
  b1: float = 0.9
  b2: float = 0.999
  rho: float = 0.9  # RMSprop decay of the squared-gradient average
  eps: float = 1e-7  # Keras' default, which the seeds use
  # keras: Keras 2's RMSprop g/(sqrt(v)+eps) and Keras' Adam | optax: optax's (= PyTorch Adam)
  eps_form: str = "keras"
  g_decay: float = 0.0  # Keras' legacy time decay: lr / (1 + decay * step)
  d_decay: float = 0.0


@dataclasses.dataclass(frozen=True)
class Train:
  steps: int = 3000
  batch_size: int = 64
  # steps fused into one lax.scan dispatch (1 = plain jitted step; 0 = auto per model and backend)
  scan_chunk: int = 0
  log_every: int = 50
  # Train a sweep's runs that share shapes as one jax.vmap'ed program; None ("auto"): on for the
  # conv GANs on GPU/TPU, off on CPU (gen_models.loop.vmap_runs).
  vmap_runs: Optional[bool] = None
  # GANs: decay of a (debiased) exponential moving average of G's weights, used for evaluation and
  # samples (0 = off)
  g_ema: float = 0.0
  # What a sweep's arms are matched on: every arm gets the baseline arm's train.steps worth of this
  # unit (g_steps: the same steps; d_updates, real_images, flops: an arm's steps derived from its
  # per-step cost, its evaluations at the same fractions of the budget; experiments.budget).
  budget_unit: str = "g_steps"


@dataclasses.dataclass(frozen=True)
class Eval:
  every: int = 30  # 0 = only at the end
  num_samples: int = 100_000  # generated samples for the precise metrics
  kl_samples: int = 1000  # samples for the seed's histogram KL (it compares 1000 vs 1000)
  last_k: int = 3  # a run's headline value of a metric: the mean of its last k evaluations
  # Image metrics of the evaluations outside the headline window, which only draw curves, use this
  # many samples (0 = num_samples): cheaper, and their count is written on every row and curve.
  early_samples: int = 0


@dataclasses.dataclass(frozen=True)
class Ckpt:
  every: int = 1000  # 0 = only at the end
  keep: int = 3


@dataclasses.dataclass(frozen=True)
class Config:
  seed: int = 0
  seeds: int = 1  # number of seeds per arm: seed, seed + 1, ...
  data: Data = Data()
  model: Model = Model()
  loss: Loss = Loss()
  optim: Optim = Optim()
  train: Train = Train()
  eval: Eval = Eval()
  ckpt: Ckpt = Ckpt()
  version: int = CONFIG_VERSION


# Allowed values of the string keys; numbers get ranges below.
CHOICES = {
    "data.sampling": ("random", "sequential"),
    "data.range": ("tanh", "sigmoid"),
    "data.noise": ("fixed", "fresh"),
    "model.noise": ("uniform", "normal"),
    "model.dtype": ("float32", "bfloat16"),
    "model.impl": ("fast", "reference"),
    "loss.recon": ("mse", "bce"),
    "optim.name": ("adam", "rmsprop"),
    "optim.eps_form": ("keras", "optax"),
    "train.budget_unit": ("g_steps", "d_updates", "real_images", "flops"),
}


# (low, high, low_inclusive[, high_inclusive]) ranges; high None = unbounded.
MAX_SEED = 2**31 - 1
RANGES = {
    "seed": (0, MAX_SEED - 1000, True),  # run directories are seed<k>; seed + seeds - 1 must fit
    "seeds": (1, 1000, True),
    "data.num_real": (2, None, True),
    "data.num_train": (0, None, True),
    "data.noise_std": (0.0, None, True),
    "model.latent_dim": (1, 4096, True),
    "model.hidden": (1, 1 << 16, True),
    "loss.real_target": (0.0, 1.0, True),
    "loss.fake_target": (0.0, 1.0, True),
    "loss.gen_target": (0.0, 1.0, True),
    "loss.beta": (0.0, None, True),
    "loss.n_critic": (0, 100, True),
    "loss.gp_weight": (0.0, None, True),
    "loss.r1_gamma": (0.0, None, True),
    "train.g_ema": (0.0, 1.0, True, False),  # 1 would never move from G's initial weights
    "optim.g_lr": (0.0, None, False),
    "optim.d_lr": (0.0, None, False),
    # 1 is a degenerate average: Adam's bias correction divides by 1 - b^t = 0 (NaN at step 1, or
    # no update at all), RMSprop's rho=1 never leaves v=0.
    "optim.b1": (0.0, 1.0, True, False),
    "optim.b2": (0.0, 1.0, True, False),
    "optim.rho": (0.0, 1.0, True, False),
    "optim.eps": (0.0, None, False),
    "optim.g_decay": (0.0, None, True),
    "optim.d_decay": (0.0, None, True),
    "train.steps": (1, None, True),
    "train.batch_size": (1, None, True),
    "train.scan_chunk": (0, None, True),
    "train.log_every": (1, None, True),
    "eval.every": (0, None, True),
    "eval.num_samples": (0, None, True),  # 0: no sample-based metrics
    "eval.kl_samples": (2, None, True),
    "eval.last_k": (1, None, True),
    "eval.early_samples": (0, None, True),
    "ckpt.every": (0, None, True),
    "ckpt.keep": (1, None, True),
}


LATE_WINDOW = 0.75  # a run's headline value averages only evaluations from its last quarter


def eval_steps(cfg) -> list[int]:
  """The steps a run evaluates at: every eval.every and the last (only the last when 0)."""
  total, every = cfg.train.steps, cfg.eval.every
  return sorted(set(range(0, total + 1, every)) | {total}) if every > 0 else [total]


def headline_steps(cfg) -> list[int]:
  """The evaluations a run's headline value averages: its last eval.last_k in the last quarter of
  training (never an early, untrained one)."""
  late = [s for s in eval_steps(cfg) if s >= LATE_WINDOW * cfg.train.steps]
  return late[-cfg.eval.last_k :]


def eval_samples(cfg, step: int) -> int:
  """Generated samples the evaluation at `step` scores: eval.num_samples in the headline window,
  eval.early_samples (when set and smaller) before it."""
  e = cfg.eval
  if 0 < e.early_samples < e.num_samples and step not in headline_steps(cfg):
    return e.early_samples
  return e.num_samples


def keys(cfg: Any = None, prefix: str = "") -> list[str]:
  """All dotted keys of a config, e.g. ['seed', 'data.name', ...]."""
  return [prefix + k for k in _keys_of(Config if cfg is None else type(cfg))]


# Per class, once per process: reading a saved config sets each of its 51 keys, and resolving the
# string annotations (`from __future__ import annotations`) every time took 4.8 ms a config.json.
@functools.cache
def _hints(cls) -> dict[str, Any]:
  return typing.get_type_hints(cls)


@functools.cache
def _keys_of(cls) -> tuple[str, ...]:
  out, hints = [], _hints(cls)
  for f in dataclasses.fields(cls):
    typ = hints[f.name]
    if dataclasses.is_dataclass(typ):
      out += [f"{f.name}.{k}" for k in _keys_of(typ)]
    else:
      out.append(f.name)
  return tuple(out)


def get(cfg: Config, key: str) -> Any:
  value = cfg
  for part in key.split("."):
    value = getattr(value, part)
  return value


AUTO_KEYS = ("train.vmap_runs",)  # None is spelled "auto" for these


def _field_type(cfg: Config, key: str):
  node, parts = cfg, key.split(".")
  for part in parts[:-1]:
    node = getattr(node, part)
  return _hints(type(node))[parts[-1]]


def _parse(key: str, typ, raw: Any) -> Any:
  """Parses `raw` (a string from the command line, or a Python value) into `typ`."""
  optional = False
  origin = typing.get_origin(typ)
  if origin in (typing.Union, types.UnionType):
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    optional, typ = True, args[0]
  nulls = ("none", "null") + (("auto",) if key in AUTO_KEYS else ())
  if optional and (raw is None or (isinstance(raw, str) and raw.strip().lower() in nulls)):
    return None
  text = raw.strip() if isinstance(raw, str) else raw
  try:
    if typ is bool:
      if isinstance(text, bool):
        return text
      if str(text).lower() in ("1", "true", "yes", "on"):
        return True
      if str(text).lower() in ("0", "false", "no", "off"):
        return False
      raise ValueError
    if typ is int:
      if isinstance(text, bool):
        raise ValueError
      if isinstance(text, float):
        if not text.is_integer():
          raise ValueError
        return int(text)
      if isinstance(text, int):
        return text
      try:
        return int(str(text), 10)
      except ValueError:
        as_float = float(str(text))  # accept 1e5 or 3000.0 when they are whole numbers
        if not math.isfinite(as_float) or not as_float.is_integer():
          raise
        return int(as_float)
    if typ is float:
      if isinstance(text, bool):
        raise ValueError
      value = float(text)
      if not math.isfinite(value):
        raise ValueError
      return value
    if typ is str:
      if not isinstance(text, str):
        raise ValueError
      return text
  except (ValueError, TypeError, OverflowError):
    pass
  else:
    raise ConfigError(f"internal: key '{key}' has unsupported type {typ}")
  name = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}[typ]
  if optional:
    name += " or none"
  raise ConfigError(
      f"Bad value for '{key}': {short(raw)} is not {name}. Example: --set {key}={_example(key)}"
  )


def _example(key: str) -> str:
  if key in CHOICES:
    return CHOICES[key][0]
  return str(get(Config(), key))


def _replace(node: Any, parts: list[str], value: Any) -> Any:
  if len(parts) == 1:
    return dataclasses.replace(node, **{parts[0]: value})
  child = getattr(node, parts[0])
  return dataclasses.replace(node, **{parts[0]: _replace(child, parts[1:], value)})


def set_key(cfg: Config, key: str, raw: Any) -> Config:
  """Returns cfg with one dotted key set; raises ConfigError for unknown keys or bad values."""
  all_keys = keys(cfg)
  if key not in all_keys or key == "version":
    close = difflib.get_close_matches(str(key), all_keys, n=3, cutoff=0.6)
    close += [k for k in all_keys if k.split(".")[-1] == str(key).split(".")[-1] and k not in close]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"Unknown config key {short(str(key))}.{hint} Valid keys:"
        f" {', '.join(k for k in all_keys if k != 'version')}."
    )
  value = _parse(key, _field_type(cfg, key), raw)
  return _replace(cfg, key.split("."), value)


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
  for key, raw in overrides.items():
    cfg = set_key(cfg, key, raw)
  return cfg


def parse_assignment(text: str) -> tuple[str, str]:
  """'a.b=3' -> ('a.b', '3'); raises ConfigError on anything else."""
  if not isinstance(text, str) or "=" not in text:
    raise ConfigError(
        f"Bad --set argument {short(text)}: expected key=value, e.g. --set optim.d_lr=2e-4."
    )
  key, value = text.split("=", 1)
  key = key.strip()
  if not key:
    raise ConfigError(f"Bad --set argument {short(text)}: the key before '=' is empty.")
  return key, value


def validate(cfg: Config) -> Config:
  """Checks choices, ranges and cross-key constraints that need no registry. Returns cfg unchanged.
  The whole check, with the registered architectures and losses and what only a model's family
  knows, is gen_models.families.validate (this module imports nothing of the project)."""
  for key, allowed in CHOICES.items():
    value = get(cfg, key)
    if value not in allowed:
      raise ConfigError(f"Bad value for '{key}': {short(value)}. Allowed: {', '.join(allowed)}.")
  for key, (low, high, low_inclusive, *rest) in RANGES.items():
    high_inclusive = rest[0] if rest else True
    value = get(cfg, key)
    if value is None:
      continue
    too_low = value < low if low_inclusive else value <= low
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
      low_text = f">= {low}" if low_inclusive else f"> {low}"
      high_text = "" if high is None else f" and {'<=' if high_inclusive else '<'} {high}"
      raise ConfigError(f"Bad value for '{key}': {value!r}. It must be {low_text}{high_text}.")
  if cfg.data.sampling == "sequential" and cfg.data.name != "gaussian1d":
    raise ConfigError(
        "'data.sampling=sequential' (the seed's fixed minibatches) only exists for "
        "data.name=gaussian1d; use data.sampling=random for image data."
    )
  if cfg.data.name == "gaussian1d" and cfg.train.batch_size > cfg.data.num_real:
    raise ConfigError(
        f"'train.batch_size'={cfg.train.batch_size} is larger than the dataset "
        f"(data.num_real={cfg.data.num_real}). Lower train.batch_size."
    )
  if cfg.ckpt.every > 0 and cfg.ckpt.every % cfg.train.log_every != 0:
    raise ConfigError(
        f"'ckpt.every'={cfg.ckpt.every} must be a multiple of 'train.log_every'="
        f"{cfg.train.log_every} (checkpoints are written at log points, so a resumed "
        "run logs exactly what an uninterrupted one does)."
    )
  if cfg.version != CONFIG_VERSION:
    raise ConfigError(
        f"This config has version {cfg.version}, but this code reads version "
        f"{CONFIG_VERSION}. Start a new run (a new --out directory) instead of --resume."
    )
  return cfg


def to_dict(cfg: Config) -> dict:
  return dataclasses.asdict(cfg)


def from_dict(d: dict) -> Config:
  """Inverse of to_dict, for config.json files written by earlier runs."""
  version = d.get("version", 0)
  if version != CONFIG_VERSION:
    raise ConfigError(
        f"The saved config has version {version}, but this code reads version "
        f"{CONFIG_VERSION}. Start a new run (a new --out directory) instead of --resume."
    )
  flat = {}

  def walk(node, prefix):
    for k, v in node.items():
      if isinstance(v, dict):
        walk(v, prefix + k + ".")
      else:
        flat[prefix + k] = v

  walk(d, "")
  flat.pop("version", None)
  return apply_overrides(Config(), flat)


def flatten(cfg: Config) -> dict[str, Any]:
  return {k: get(cfg, k) for k in keys(cfg)}
